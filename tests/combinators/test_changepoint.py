"""A change-point model mixing a discrete and a continuous block, against exact enumeration.

Counts ``y_t ~ Poisson(lambda_1)`` for ``t < tau`` and ``Poisson(lambda_2)`` for ``t >= tau``,
``t = 0..T-1``, with ``tau`` uniform on ``0..T-1`` and ``lambda_k ~ Gamma(2, 1)``; the rates
are sampled as ``log_rate`` (Jacobian included).  Conjugacy gives the exact posterior by
enumerating ``tau``:

.. math::

    p(\\tau \\mid y) \\propto \\prod_k \\frac{\\Gamma(a + S_k)}{(b + n_k)^{a + S_k}},\\qquad
    \\lambda_k \\mid \\tau, y \\sim \\mathrm{Gamma}(a + S_k, b + n_k),

so ``E[log lambda_k | tau] = digamma(a + S_k) - log(b + n_k)`` and the variance is
``trigamma(a + S_k)``.  Gibbs: ``tau`` by ``categorical_gibbs`` (the full conditional
enumerated from the joint), the rates by (1) exact conjugate draws, (2) Metropolis-within-Gibbs
(``rwmh``, scale adapted in warmup), (3) NUTS-within-Gibbs (step size and mass matrix adapted
in warmup), all through ``run_chains``.  Means and variances of ``tau`` and ``log_rate`` within
4 MCSE.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import digamma, gammaln, polygamma

import mcgen as mc
from mcgen import testing
from mcgen.combinators import gibbs
from mcgen.kernels.categorical_gibbs import categorical_gibbs

T, TRUE_TAU, TRUE_RATES, A, B = 40, 15, (4.0, 1.5), 2.0, 1.0
_rng = np.random.default_rng(7)
COUNTS = np.concatenate([_rng.poisson(TRUE_RATES[0], TRUE_TAU), _rng.poisson(TRUE_RATES[1], T - TRUE_TAU)])
Y = jnp.asarray(COUNTS, jnp.float32)
TIMES = jnp.arange(T)


def logdensity(p):
    rates_log = p["log_rate"]
    segment = (TIMES >= p["tau"]).astype(jnp.int32)
    log_lik = jnp.sum(Y * rates_log[segment] - jnp.exp(rates_log[segment]))
    return log_lik + jnp.sum(A * rates_log - B * jnp.exp(rates_log))  # Gamma(a, b) prior on exp(log_rate)


def draw_rates(key, p):
    """lambda_k | tau, y ~ Gamma(a + S_k, b + n_k), returned as log lambda."""
    before = (TIMES < p["tau"]).astype(jnp.float32)
    sums = jnp.stack([Y @ before, Y @ (1.0 - before)])
    counts = jnp.stack([before.sum(), T - before.sum()])
    return jnp.log(jax.random.gamma(key, A + sums) / (B + counts))


@functools.lru_cache(maxsize=None)
def exact_posterior():
    """Means and variances of tau and log_rate by enumeration of tau."""
    taus = np.arange(T)
    cum = np.concatenate([[0], np.cumsum(COUNTS)])
    s1, s2 = cum[taus], cum[-1] - cum[taus]
    n1, n2 = taus, T - taus
    logp = sum(gammaln(A + s) - (A + s) * np.log(B + n) for s, n in ((s1, n1), (s2, n2)))
    p = np.exp(logp - logp.max())
    p /= p.sum()
    mean_log = np.stack([digamma(A + s1) - np.log(B + n1), digamma(A + s2) - np.log(B + n2)])
    var_log = np.stack([polygamma(1, A + s1), polygamma(1, A + s2)])
    tau_mean = p @ taus
    rate_mean = mean_log @ p
    rate_var = (var_log + mean_log**2) @ p - rate_mean**2
    return {"log_rate": rate_mean, "tau": tau_mean}, {"log_rate": rate_var, "tau": p @ taus**2 - tau_mean**2}


INIT = {"tau": jnp.asarray(T // 2, jnp.int32), "log_rate": jnp.zeros(2)}


def _rate_kernel(name):
    if name == "nuts":
        return pytest.importorskip("mcgen.kernels.nuts").nuts()
    return {"conjugate": draw_rates, "rwmh": mc.rwmh()}[name]


@pytest.mark.parametrize("rates", ["conjugate", "rwmh", "nuts"])
def test_changepoint_posterior_against_enumeration(rates):
    kernel = gibbs({"tau": categorical_gibbs(num_categories=T), "log_rate": _rate_kernel(rates)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        res = mc.run_chains(
            logdensity, kernel, init=INIT, num_chains=4, num_samples=2000, num_warmup=500, progress=False, seed=11
        )
    mean, var = exact_posterior()
    testing.assert_moments(res.samples, mean, var)
    assert abs(mean["tau"] - TRUE_TAU) < 3  # the data do locate the change
    if rates != "conjugate":  # the continuous block kept (and adapted) its own tunables
        params = res.last_state.params
        assert params["tau"] is None and params["log_rate"] is not None
        assert res.stats["blocks.log_rate.accept_prob"].mean() > 0.2


def exact_sampler(key, n):
    """Exact posterior draws: tau from its enumerated marginal, then the conjugate rates."""
    taus = np.arange(T)
    cum = np.concatenate([[0], np.cumsum(COUNTS)])
    stats = ((cum[taus], taus), (cum[-1] - cum[taus], T - taus))
    logp = sum(gammaln(A + s) - (A + s) * np.log(B + m) for s, m in stats)
    key_tau, key_rates = jax.random.split(key)
    tau = jax.random.categorical(key_tau, jnp.asarray(logp, jnp.float32), shape=(n,)).astype(jnp.int32)
    log_rate = jax.vmap(draw_rates)(jax.random.split(key_rates, n), {"tau": tau})
    return {"log_rate": log_rate, "tau": tau}


def test_invariance_discrete_and_metropolis_blocks():
    # Every move of tau changes the conditional of the rates a lot: this is where a cached
    # log-density of the rates block that is not refreshed after tau moves (the stale-cache
    # trap) breaks invariance.
    kernel = gibbs({"tau": categorical_gibbs(num_categories=T), "log_rate": mc.rwmh(0.3, adapt=False)})
    testing.assert_invariance(kernel, logdensity, exact_sampler, num_steps=10)
