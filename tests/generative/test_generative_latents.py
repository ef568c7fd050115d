"""VAE/GAN latent helpers: slerp and truncation properties, prior temperature."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mcgen.generative import interpolate, lerp, sample_prior, slerp, truncated_prior, truncation_trick

_slerp = jax.jit(slerp)

vectors = st.integers(2, 12).flatmap(
    lambda d: st.tuples(
        st.lists(st.floats(-10, 10, width=32), min_size=d, max_size=d),
        st.lists(st.floats(-10, 10, width=32), min_size=d, max_size=d),
    )
)


def _angle(u, v):
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    return 2 * np.arctan2(np.linalg.norm(u - v), np.linalg.norm(u + v))


@settings(max_examples=60, deadline=None)
@given(vectors, st.floats(0.0, 1.0, width=32))
def test_slerp_properties(ab, t):
    a, b = (np.asarray(v, np.float32) for v in ab)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    out = np.asarray(_slerp(a, b, np.float32(t)))
    assert np.all(np.isfinite(out))
    scale = 1.0 + na + nb
    np.testing.assert_allclose(_slerp(a, b, np.float32(0.0)), a, atol=1e-5 * scale)
    np.testing.assert_allclose(_slerp(a, b, np.float32(1.0)), b, atol=1e-4 * scale)
    # The norm interpolates linearly ...
    np.testing.assert_allclose(np.linalg.norm(out), (1 - t) * na + t * nb, atol=1e-4 * scale)
    # ... and the direction moves at constant angular speed along the great circle.
    if na > 1e-2 and nb > 1e-2 and np.linalg.norm(out) > 1e-2:
        omega = _angle(a, b)
        if omega < np.pi - 1e-2:
            assert abs(_angle(a, out) - t * omega) < 2e-3
            assert abs(_angle(out, b) - (1 - t) * omega) < 2e-3


def test_slerp_equal_norms_is_classical_formula():
    a = jnp.array([1.0, 0.0, 0.0])
    b = jnp.array([0.0, 1.0, 0.0])
    for t in (0.25, 0.5, 0.9):
        classical = (np.sin((1 - t) * np.pi / 2) * a + np.sin(t * np.pi / 2) * b) / np.sin(np.pi / 2)
        np.testing.assert_allclose(slerp(a, b, t), classical, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, -1.0, 2.5, -0.3, 1.0 + 1e-7])
def test_slerp_parallel_and_antiparallel(scale):
    a = jnp.array([0.3, -1.2, 2.0, 0.5])
    b = scale * a
    for t in (0.0, 0.3, 0.5, 1.0):
        out = np.asarray(slerp(a, b, t))
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(
            np.linalg.norm(out), (1 - t) * 1.0 * np.linalg.norm(a) + t * abs(scale) * np.linalg.norm(a), rtol=1e-5
        )
        if scale > 0:
            np.testing.assert_allclose(out, lerp(a, b, t), rtol=1e-5, atol=1e-6)
    if scale < 0:  # halfway between antipodes: orthogonal to both
        mid = np.asarray(slerp(a, b, 0.5))
        assert abs(np.dot(mid, np.asarray(a))) < 1e-4 * np.linalg.norm(a) ** 2
    # Gradients stay finite too.
    g = jax.grad(lambda a: jnp.sum(slerp(a, b, 0.3)))(a)
    assert np.all(np.isfinite(np.asarray(g)))


def test_slerp_zero_vector_and_shapes():
    z = jnp.zeros((2, 3))
    b = jnp.ones((2, 3))
    out = slerp(z, b, 0.5)
    assert out.shape == (2, 3) and bool(jnp.all(jnp.isfinite(out)))
    path = interpolate(jnp.ones(4), -jnp.ones(4), 5)
    assert path.shape == (5, 4)
    np.testing.assert_allclose(jnp.linalg.norm(path, axis=1), 2.0, rtol=1e-5)
    with pytest.raises(ValueError):
        slerp(jnp.ones(3), jnp.ones(4), 0.5)
    with pytest.raises(ValueError):
        interpolate(jnp.ones(3), jnp.ones(3), 5, method="cubic")


@pytest.mark.parametrize("threshold", [0.3, 1.0, 2.0])
def test_truncated_prior_is_truncated_normal(threshold):
    z = np.asarray(truncated_prior(jax.random.key(0), (4,), 2500, threshold)).ravel()
    assert np.all(np.abs(z) <= threshold)
    ks = stats.kstest(z, stats.truncnorm(-threshold, threshold).cdf)
    assert ks.pvalue > 1e-3, ks


def test_truncated_prior_fallback_after_max_rounds():
    z = np.asarray(truncated_prior(jax.random.key(1), (2,), 2000, 0.05, max_rounds=1)).ravel()
    assert np.all(np.abs(z) <= 0.05)
    assert stats.kstest(z, stats.truncnorm(-0.05, 0.05).cdf).pvalue > 1e-3


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.5, width=32), st.integers(0, 2**31 - 1))
def test_truncation_trick_properties(psi, seed):
    rng = np.random.default_rng(seed)
    w, w_mean = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    out = np.asarray(truncation_trick(w, w_mean, np.float32(psi)))
    np.testing.assert_allclose(
        np.linalg.norm(out - w_mean, axis=1), psi * np.linalg.norm(w - w_mean, axis=1), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(truncation_trick(w, w_mean, 1.0), w, atol=1e-6)
    np.testing.assert_allclose(truncation_trick(w, w_mean, 0.0), np.broadcast_to(w_mean, w.shape), atol=1e-6)


def test_prior_temperature():
    z = np.asarray(sample_prior(jax.random.key(0), (8,), 4000, temperature=0.6))
    n = z.size
    se = 0.36 * np.sqrt(2.0 / n)
    assert abs(z.var() - 0.36) < 4 * se
    with pytest.raises(ValueError):
        sample_prior(jax.random.key(0), (2,), 3, temperature=0.0)
    with pytest.raises(ValueError):
        truncated_prior(jax.random.key(0), (2,), 3, threshold=-1.0)
