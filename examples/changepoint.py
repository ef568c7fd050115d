r"""A Poisson change-point model: a discrete and a continuous block, against the exact answer.

Counts ``y_t ~ Poisson(lambda_1)`` before the change point ``tau`` and ``Poisson(lambda_2)``
from it on (``t = 0..T-1``), ``tau`` uniform on ``0..T-1``, ``lambda_k ~ Gamma(2, 1)``,
sampled as ``log_rate`` (Jacobian included).  Gibbs with two blocks:

* ``tau`` by ``mc.categorical_gibbs(num_categories=T)``: the full conditional is enumerated
  from the joint log-density, vectorized over the T values; nothing is derived by hand;
* ``log_rate`` by one of: exact conjugate draws ``Gamma(a + S_k, b + n_k)``; ``mc.rwmh()``
  (Metropolis-within-Gibbs); NUTS (NUTS-within-Gibbs).  The kernel blocks adapt their own
  tunables during warmup, on their own conditional.

Conjugacy gives the exact posterior by enumerating ``tau``:
:math:`p(\tau \mid y) \propto \prod_k \Gamma(a + S_k) / (b + n_k)^{a + S_k}`, and
``E[log lambda_k | tau] = digamma(a + S_k) - log(b + n_k)``.  The script prints each
sampler's estimates, their errors in MCSE units, ESS and time.

Run: ``python examples/changepoint.py``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import digamma, gammaln, polygamma

import mcgen as mc
from mcgen.combinators import gibbs
from mcgen.kernels.categorical_gibbs import categorical_gibbs

T, TRUE_TAU, TRUE_RATES, A, B = 60, 24, (3.5, 1.2), 2.0, 1.0
rng = np.random.default_rng(2024)
COUNTS = np.concatenate([rng.poisson(TRUE_RATES[0], TRUE_TAU), rng.poisson(TRUE_RATES[1], T - TRUE_TAU)])
Y, TIMES = jnp.asarray(COUNTS, jnp.float32), jnp.arange(T)


def logdensity(p):
    log_rate = p["log_rate"]
    segment = (TIMES >= p["tau"]).astype(jnp.int32)
    return jnp.sum(Y * log_rate[segment] - jnp.exp(log_rate[segment])) + jnp.sum(A * log_rate - B * jnp.exp(log_rate))


def draw_rates(key, p):
    before = (TIMES < p["tau"]).astype(jnp.float32)
    sums, counts = jnp.stack([Y @ before, Y @ (1 - before)]), jnp.stack([before.sum(), T - before.sum()])
    return jnp.log(jax.random.gamma(key, A + sums) / (B + counts))


def exact_posterior():
    taus = np.arange(T)
    cum = np.concatenate([[0], np.cumsum(COUNTS)])
    stats = [(cum[taus], taus), (cum[-1] - cum[taus], T - taus)]
    logp = sum(gammaln(A + s) - (A + s) * np.log(B + n) for s, n in stats)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    m = np.stack([digamma(A + s) - np.log(B + n) for s, n in stats])
    v = np.stack([polygamma(1, A + s) for s, _ in stats])
    mean_rate = m @ p
    return (
        {"log_rate": mean_rate, "tau": p @ taus},
        {"log_rate": (v + m**2) @ p - mean_rate**2, "tau": p @ taus**2 - (p @ taus) ** 2},
    )


def main():
    mean, var = exact_posterior()
    print(f"T = {T}, true change point {TRUE_TAU}, true rates {TRUE_RATES}")
    print(
        f"exact: E[tau] = {mean['tau']:.3f} (sd {np.sqrt(var['tau']):.3f}), "
        f"E[log_rate] = {np.round(mean['log_rate'], 4)}"
    )
    rate_blocks = {"conjugate": draw_rates, "rwmh (MH-within-Gibbs)": mc.rwmh()}
    try:
        from mcgen.kernels.nuts import nuts

        rate_blocks["nuts (NUTS-within-Gibbs)"] = nuts()
    except ImportError:
        print("(mcgen.kernels.nuts not available: NUTS-within-Gibbs skipped)")
    print(
        f"\n{'log_rate block':<26} {'E[tau]':>8} {'E[log l1]':>10} {'E[log l2]':>10} {'max|z|':>7} "
        f"{'ESS tau':>8} {'ESS rates':>10} {'s':>6}"
    )
    for name, update in rate_blocks.items():
        kernel = gibbs({"tau": categorical_gibbs(num_categories=T), "log_rate": update})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mc.SamplingWarning)
            res = mc.run_chains(
                logdensity,
                kernel,
                init={"tau": jnp.asarray(T // 2, jnp.int32), "log_rate": jnp.zeros(2)},
                num_chains=4,
                num_samples=4000,
                num_warmup=1000,
                seed=0,
                progress=False,
            )
        report = mc.testing.check_moments(res.samples, mean, var)
        diag = res.diagnostics()
        est = {k: np.mean(v, axis=(0, 1)) for k, v in res.samples.items()}
        print(
            f"{name:<26} {est['tau']:>8.3f} {est['log_rate'][0]:>10.4f} {est['log_rate'][1]:>10.4f} "
            f"{report.max_abs_z:>7.2f} {float(np.min(diag['tau']['ess_bulk'])):>8.0f} "
            f"{float(np.min(diag['log_rate']['ess_bulk'])):>10.0f} {res.sampling_time:>6.2f}"
        )


if __name__ == "__main__":
    main()
