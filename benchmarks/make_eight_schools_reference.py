"""Long reference runs for the statistical tests of the gradient kernels, independent of mcgen.

Writes two files under ``tests/data/``:

* ``eight_schools_reference.npz``: posterior means and variances of eight schools
  (non-centered: ``mu ~ N(0, 5)``, ``tau ~ HalfCauchy(5)``, ``theta_tilde ~ N(0, 1)``,
  ``theta = mu + tau * theta_tilde``, ``y_j ~ N(theta_j, sigma_j)``) for the sites ``mu``,
  ``tau``, ``theta``, ``theta_tilde``, with their Monte-Carlo standard errors.
* ``logistic_regression_reference.npz``: the fixed synthetic data set (n = 1000, d = 25,
  ``X ~ N(0, 1)``, ``beta ~ N(0, 0.5^2)``, ``y ~ Bernoulli(sigmoid(X beta))``, numpy seed 0)
  and the posterior means, variances and MCSEs of ``beta`` under a ``N(0, 1)`` prior.

Both posteriors are sampled with **BlackJAX** NUTS (Stan's window adaptation, then many long
vmapped chains); the eight-schools log-density and its constraining transform come from
**NumPyro** (``initialize_model``).  No mcgen code is involved, so the tests compare mcgen with
an independent implementation.  The reference MCSEs are ~50x (eight schools) and ~20x
(logistic regression) smaller than a test run's, so the reference error is negligible at
the tests' 4-MCSE tolerance.

Run (about 10 minutes on one CPU core)::

    python benchmarks/make_eight_schools_reference.py
"""

from __future__ import annotations

import pathlib
import time

import arviz as az
import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer.util import initialize_model

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], np.float32)
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], np.float32)


def eight_schools(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def logistic_data(n: int = 1000, d: int = 25, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    beta = 0.5 * rng.standard_normal(d).astype(np.float32)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-x @ beta))).astype(np.float32)
    return x, y


def logistic_logdensity(x, y):
    """Bernoulli-logit log-likelihood of data ``(x, y)`` plus a ``N(0, 1)`` prior on the coefficients."""

    def logdensity(beta):
        logits = x @ beta
        return jnp.sum(y * logits - jnp.logaddexp(0.0, logits)) - 0.5 * jnp.sum(beta**2)

    return logdensity


def blackjax_nuts(logdensity, init, num_chains, num_warmup, num_draws, seed):
    """Stan-style warmup per chain, then ``num_draws`` NUTS draws per chain (vmapped)."""
    adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=0.9)
    keys = jax.random.split(jax.random.key(seed), 2 * num_chains)

    @jax.jit
    def warm(keys, positions):
        (state, params), _ = jax.vmap(lambda k, x: adapt.run(k, x, num_steps=num_warmup))(keys, positions)
        return state, params

    @jax.jit
    def sample(keys, states, params):
        def one_chain(k, state, p):
            step = blackjax.nuts(logdensity, **p).step

            def body(s, kk):
                s, _ = step(kk, s)
                return s, s.position

            return jax.lax.scan(body, state, jax.random.split(k, num_draws))[1]

        return jax.vmap(one_chain)(keys, states, params)

    states, params = warm(keys[:num_chains], init)
    return sample(keys[num_chains:], states, params)


def moments(draws: dict) -> dict:
    """Mean, variance and their MCSEs (ArviZ) of every site; draws are (chains, draws, ...)."""
    out = {}
    for name, x in draws.items():
        x = np.asarray(x, np.float64)
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        mean = flat.mean(axis=(0, 1))
        sq = (flat - mean) ** 2
        out[f"{name}_mean"] = mean.reshape(x.shape[2:])
        out[f"{name}_var"] = sq.mean(axis=(0, 1)).reshape(x.shape[2:])
        out[f"{name}_mean_mcse"] = np.array(
            [az.mcse(flat[..., j], method="mean") for j in range(flat.shape[-1])]
        ).reshape(x.shape[2:])
        out[f"{name}_var_mcse"] = np.array([az.mcse(sq[..., j], method="mean") for j in range(flat.shape[-1])]).reshape(
            x.shape[2:]
        )
        out[f"{name}_min_ess"] = np.array(min(float(az.ess(flat[..., j])) for j in range(flat.shape[-1])))
    return out


def main(num_chains: int = 64, num_draws: int = 20_000) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.time()

    info = initialize_model(
        jax.random.key(0), eight_schools, model_args=(jnp.asarray(SIGMA),), model_kwargs={"y": jnp.asarray(Y)}
    )
    potential, postprocess = info.potential_fn, info.postprocess_fn
    z0 = info.param_info.z
    init = jax.tree_util.tree_map(
        lambda v: v + jax.random.uniform(jax.random.key(1), (num_chains,) + v.shape, minval=-1, maxval=1), z0
    )
    draws = blackjax_nuts(lambda z: -potential(z), init, num_chains, 1000, num_draws, seed=2)
    constrained = jax.vmap(jax.vmap(postprocess))(draws)
    eight = moments({k: constrained[k] for k in ("mu", "tau", "theta", "theta_tilde")})
    np.savez(OUT / "eight_schools_reference.npz", y=Y, sigma=SIGMA, num_chains=num_chains, num_draws=num_draws, **eight)
    print(
        f"eight schools: {time.time() - start:.0f} s; min ESS",
        {k: int(v) for k, v in eight.items() if k.endswith("min_ess")},
    )

    x, y = logistic_data()
    logistic = logistic_logdensity(jnp.asarray(x), jnp.asarray(y))
    chains, n = num_chains // 2, num_draws // 2
    init = 0.1 * jax.random.normal(jax.random.key(3), (chains, x.shape[1]))
    beta = blackjax_nuts(logistic, init, chains, 1000, n, seed=4)
    logi = moments({"beta": beta})
    np.savez(OUT / "logistic_regression_reference.npz", x=x, y=y, num_chains=chains, num_draws=n, **logi)
    print(f"logistic regression: {time.time() - start:.0f} s; min ESS {int(logi['beta_min_ess'])}")


if __name__ == "__main__":
    main()
