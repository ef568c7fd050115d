"""Two-component 1-d Gaussian mixture: Gibbs on assignments and means recovers the means.

Data: n = 200 points, 40% from N(-3, 1) and 60% from N(3, 1) (fixed seed).  Model: known
weights (0.4, 0.6) and unit variances, ``mu_k ~ N(0, 10^2)``, assignments ``z_i``.  Gibbs:

* ``z | mu``: the n assignments are conditionally independent given the means, so they are
  drawn in *one* vectorized categorical draw (no loop over points);
* ``mu | z``: the conjugate normal update.

The exact posterior of the means (``z`` summed out) is two-dimensional: its mean and variance
come from quadrature on a fine grid, and the Gibbs estimates must lie within 4 MCSE of them.
The same posterior is reached with the assignments drawn by ``categorical_gibbs(2,
parallel=True)`` from the joint alone.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.combinators import gibbs
from mcgen.kernels.categorical_gibbs import categorical_gibbs

N, TRUE_MEANS, WEIGHTS, PRIOR_SD = 200, np.array([-3.0, 3.0]), np.array([0.4, 0.6]), 10.0
_rng = np.random.default_rng(42)
_labels = (_rng.random(N) < WEIGHTS[1]).astype(int)
DATA = jnp.asarray(TRUE_MEANS[_labels] + _rng.normal(size=N), jnp.float32)
LOG_W = jnp.log(jnp.asarray(WEIGHTS, jnp.float32))


def logdensity(p):
    mu = p["mu"]
    log_lik = LOG_W[p["z"]] - 0.5 * (DATA - mu[p["z"]]) ** 2
    return jnp.sum(log_lik) - 0.5 * jnp.sum(mu**2) / PRIOR_SD**2


def draw_assignments(key, p):
    """z_i | mu: one categorical draw for all points at once."""
    logits = LOG_W - 0.5 * (DATA[:, None] - p["mu"][None, :]) ** 2
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def draw_means(key, p):
    """mu_k | z ~ N(s_k / (n_k + 1/s0^2), 1 / (n_k + 1/s0^2))."""
    onehot = jax.nn.one_hot(p["z"], 2, dtype=jnp.float32)
    precision = onehot.sum(0) + 1.0 / PRIOR_SD**2
    return (DATA @ onehot) / precision + jax.random.normal(key, (2,)) / jnp.sqrt(precision)


@functools.lru_cache(maxsize=None)
def exact_posterior():
    """Mean and variance of (mu_0, mu_1) by quadrature of p(mu | y) (assignments summed out)."""
    y = np.asarray(DATA, np.float64)
    centre = np.array([y[y < 0].mean(), y[y > 0].mean()])
    half = 8.0 / np.sqrt([np.sum(y < 0), np.sum(y > 0)])
    g0, g1 = (np.linspace(c - h, c + h, 201) for c, h in zip(centre, half))  # spacing 0.08 sd
    m0, m1 = np.meshgrid(g0, g1, indexing="ij")
    comp0 = np.log(WEIGHTS[0]) - 0.5 * (y[None, :] - g0[:, None]) ** 2  # (grid, n)
    comp1 = np.log(WEIGHTS[1]) - 0.5 * (y[None, :] - g1[:, None]) ** 2
    loglik = np.stack([np.logaddexp(c0[None, :], comp1).sum(-1) for c0 in comp0])  # (grid0, grid1)
    logp = loglik - 0.5 * (m0**2 + m1**2) / PRIOR_SD**2
    p = np.exp(logp - logp.max())
    p /= p.sum()
    mean = np.array([np.sum(p * m0), np.sum(p * m1)])
    var = np.array([np.sum(p * (m0 - mean[0]) ** 2), np.sum(p * (m1 - mean[1]) ** 2)])
    return mean, var


INIT = {"z": jnp.zeros(N, jnp.int32), "mu": jnp.array([-1.0, 1.0])}


@pytest.mark.parametrize("assignments", ["vectorized_exact", "categorical_gibbs"])
def test_gibbs_recovers_the_means(assignments):
    z_update = draw_assignments if assignments == "vectorized_exact" else categorical_gibbs(2, parallel=True)
    num_samples = 3000 if assignments == "vectorized_exact" else 1000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        res = mc.run_chains(
            logdensity,
            gibbs({"z": z_update, "mu": draw_means}),
            init=INIT,
            num_chains=4,
            num_samples=num_samples,
            num_warmup=100,
            progress=False,
            seed=5,
        )
    mean, var = exact_posterior()
    testing.assert_moments(res.samples["mu"], mean, var)
    # and the posterior sits on the truth: within 4 posterior sd of the generating means
    assert np.all(np.abs(res.samples["mu"].mean(axis=(0, 1)) - TRUE_MEANS) < 4 * np.sqrt(var))
    # the assignments agree with the generating labels for almost every point
    agreement = np.mean(res.samples["z"][:, -1, :] == _labels)
    assert agreement > 0.97, agreement
