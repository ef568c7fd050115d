"""Ancestral sampling of NumPyro models: exact joint draws, observed sites re-drawn."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from mcgen.direct import ancestral_sample


def model(y=None):
    z = numpyro.sample("z", dist.Normal(1.0, 2.0))
    numpyro.deterministic("z2", z**2)
    with numpyro.plate("data", 3):
        numpyro.sample("y", dist.Normal(z, 0.5), obs=y)
    # c | z ~ Bernoulli(sigmoid(z)), written as a Categorical (NumPyro's Bernoulli.sample
    # fails under the suite's strict dtype promotion)
    numpyro.sample("c", dist.Categorical(logits=jnp.stack([jnp.zeros_like(z), z])))


def test_joint_moments_with_observed_site_redrawn():
    n = 20_000
    draws = jax.jit(lambda k: ancestral_sample(k, model, n, y=jnp.full(3, 10.0)))(jax.random.key(0))
    assert set(draws) == {"z", "z2", "y", "c"} and draws["y"].shape == (n, 3)
    z, y = np.asarray(draws["z"], np.float64), np.asarray(draws["y"], np.float64)
    assert abs(z.mean() - 1.0) < 4 * 2.0 / np.sqrt(n)
    resid = (y - z[:, None]).ravel()  # y | z ~ N(z, 0.5): mean 0, E[resid^2] = 0.25, Var(resid^2) = 2 * 0.25^2
    assert abs(resid.mean()) < 4 * 0.5 / np.sqrt(resid.size)
    assert abs((resid**2).mean() - 0.25) < 4 * np.sqrt(2 * 0.25**2 / resid.size)
    np.testing.assert_allclose(np.asarray(draws["z2"]), z**2, rtol=1e-5)
    # c | z ~ Bernoulli(sigmoid(z)): E[c - sigmoid(z)] = 0
    dc = np.asarray(draws["c"], np.float64) - 1 / (1 + np.exp(-z))
    assert abs(dc.mean()) < 4 * dc.std() / np.sqrt(n)


def test_draws_do_not_depend_on_num_samples():
    a = jax.jit(lambda k: ancestral_sample(k, model, 5))(jax.random.key(1))
    b = jax.jit(lambda k: ancestral_sample(k, model, 9))(jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(a["z"]), np.asarray(b["z"])[:5])


def test_under_jit():
    draws = jax.jit(lambda k: ancestral_sample(k, model, 100))(jax.random.key(2))
    assert draws["z"].shape == (100,)


def test_bad_input():
    with pytest.raises(ValueError, match="positive"):
        ancestral_sample(jax.random.key(0), model, 0)
    with pytest.raises(TypeError, match="callable"):
        ancestral_sample(jax.random.key(0), "model", 10)
