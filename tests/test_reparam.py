"""Reparameterized draws: exact distributions and gradients (analytic, finite differences)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from scipy import stats

from mcgen import reparam

PROBS = np.array([0.05, 0.15, 0.3, 0.1, 0.4])


def test_gaussian_pathwise_gradient_matches_analytic():
    """d/dmu E[x^2] = 2 mu and d/dsigma E[x^2] = 2 sigma, averaged over per-draw gradients."""
    mu, sigma, n = 0.7, 1.3, 20_000
    grad = jax.grad(lambda m, s, k: reparam.gaussian(k, m, s) ** 2, argnums=(0, 1))
    per_draw = jax.jit(jax.vmap(grad, (None, None, 0)))
    g_mu, g_sigma = (np.asarray(g, np.float64) for g in per_draw(mu, sigma, jax.random.split(jax.random.key(0), n)))
    assert abs(g_mu.mean() - 2 * mu) < 4 * g_mu.std(ddof=1) / np.sqrt(n)
    assert abs(g_sigma.mean() - 2 * sigma) < 4 * g_sigma.std(ddof=1) / np.sqrt(n)


def test_gaussian_moments_and_finite_differences():
    x = np.asarray(reparam.gaussian(jax.random.key(1), jnp.array([-1.0, 2.0]), 0.5, shape=(20_000,)), np.float64)
    assert x.shape == (20_000, 2)
    assert np.all(np.abs(x.mean(0) - [-1.0, 2.0]) < 4 * 0.5 / np.sqrt(20_000))
    assert np.all(np.abs(x.var(0) - 0.25) < 4 * np.sqrt(2 * 0.25**2 / 20_000))
    key = jax.random.key(2)
    f = lambda m, s: jnp.sum(jnp.sin(reparam.gaussian(key, m, s, shape=(3,))))  # noqa: E731
    check_grads(f, (jnp.array([0.3, -0.2]), jnp.array([0.8, 1.1])), order=1, modes=("fwd", "rev"), eps=1e-2)


def test_gumbel_max_frequencies_chi_square():
    n = 100_000
    draws = reparam.gumbel_max(jax.random.key(3), jnp.log(jnp.asarray(PROBS, jnp.float32)) + 1.7, shape=(n,))
    counts = np.bincount(np.asarray(draws), minlength=len(PROBS))
    assert stats.chisquare(counts, n * PROBS).pvalue > 1e-3


def test_gumbel_max_batched_axis():
    logits = jnp.log(jnp.asarray(np.stack([PROBS, PROBS[::-1]]), jnp.float32))
    draws = np.asarray(reparam.gumbel_max(jax.random.key(4), logits.T, axis=0, shape=(50_000,)))
    assert draws.shape == (50_000, 2)
    for j, p in enumerate((PROBS, PROBS[::-1])):
        assert stats.chisquare(np.bincount(draws[:, j], minlength=5), 50_000 * p).pvalue > 1e-3


def test_gumbel_softmax_soft_gradient_finite_differences():
    key = jax.random.key(5)
    w = jnp.arange(1.0, 6.0)
    f = lambda logits, t: jnp.dot(reparam.gumbel_softmax(key, logits, t), w)  # noqa: E731
    args = (jnp.log(jnp.asarray(PROBS, jnp.float32)), jnp.asarray(0.7))
    check_grads(f, args, order=1, modes=("fwd", "rev"), eps=1e-2)


def test_gumbel_softmax_hard_is_exact_draw_with_straight_through_gradient():
    key, logits = jax.random.key(6), jnp.log(jnp.asarray(PROBS, jnp.float32))
    hard = jax.jit(lambda lg: reparam.gumbel_softmax(key, lg, 0.5, hard=True, shape=(1000,)))(logits)
    exact = jax.jit(lambda lg: reparam.gumbel_max(key, lg, shape=(1000,)))(logits)
    np.testing.assert_array_equal(np.asarray(hard), np.asarray(jax.nn.one_hot(exact, 5)))
    w = jnp.arange(1.0, 6.0)

    def grad(hard):
        return jax.jit(jax.grad(lambda lg: jnp.sum(reparam.gumbel_softmax(key, lg, 0.5, hard=hard, shape=(8,)) @ w)))

    g_hard, g_soft = grad(True)(logits), grad(False)(logits)
    np.testing.assert_allclose(np.asarray(g_hard), np.asarray(g_soft), rtol=1e-6)
    assert float(jnp.abs(g_soft).sum()) > 0


def test_gumbel_softmax_low_temperature_approaches_one_hot():
    key, logits = jax.random.key(7), jnp.log(jnp.asarray(PROBS, jnp.float32))
    soft = reparam.gumbel_softmax(key, logits, 0.01, shape=(200,))
    exact = jax.nn.one_hot(reparam.gumbel_max(key, logits, shape=(200,)), 5)
    assert float(jnp.mean(jnp.abs(soft - exact).sum(-1))) < 0.05


@settings(max_examples=5, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    k=st.integers(2, 5),
    temperature=st.floats(0.1, 5.0),
)
def test_gumbel_softmax_shapes_and_simplex(batch, k, temperature):
    logits = jnp.zeros(tuple(batch) + (k,))
    y = _jit_gumbel_softmax(jax.random.key(8), logits, jnp.asarray(temperature, jnp.float32))
    assert y.shape == (2, *batch, k)
    np.testing.assert_allclose(np.asarray(y.sum(-1)), 1.0, rtol=1e-5)
    assert jax.eval_shape(lambda lg: reparam.gumbel_max(jax.random.key(8), lg, shape=(2,)), logits).shape == (2, *batch)


_jit_gumbel_softmax = jax.jit(lambda key, logits, t: reparam.gumbel_softmax(key, logits, t, shape=(2,)))


def test_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        reparam.gumbel_softmax(key, jnp.zeros(3), 0.0)
    with pytest.raises(ValueError, match="sigma must be non-negative"):
        reparam.gaussian(key, 0.0, -1.0)
    with pytest.raises(ValueError, match="at least one axis"):
        reparam.gumbel_max(key, 1.0)
    with pytest.raises(TypeError, match="hard must be a bool"):
        reparam.gumbel_softmax(key, jnp.zeros(3), 1.0, hard=1)
