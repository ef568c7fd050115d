"""energy_logdensity and score helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen.neural import energy_logdensity, energy_score_fn, score_fn_from_logdensity


def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (m, n)) / np.sqrt(m), jnp.zeros(n)) for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def _mlp_energy(params, x):
    """A small MLP energy in the Flax-Linen style ``apply(params, x)``; output shape (1,)."""
    h = x
    for w, b in params[:-1]:
        h = jnp.tanh(h @ w + b)
    w, b = params[-1]
    return h @ w + b + 0.5 * jnp.sum(x**2)


def test_plain_function_and_temperature():
    energy = lambda x: 0.5 * jnp.sum(x**2)  # noqa: E731
    x = jnp.array([1.0, 2.0])
    assert float(energy_logdensity(energy)(x)) == pytest.approx(-2.5)
    assert float(energy_logdensity(energy, temperature=2.0)(x)) == pytest.approx(-1.25)
    # An array temperature works and is traced (no retrace per temperature).
    traced = jax.jit(lambda t, x: energy_logdensity(energy, temperature=t)(x))
    assert float(traced(jnp.float32(4.0), x)) == pytest.approx(-0.625)


def test_network_with_params_jit_vmap_grad():
    params = _mlp_init(jax.random.key(0), [3, 8, 1])
    logdensity = energy_logdensity(_mlp_energy, params, temperature=0.5)
    x = jax.random.normal(jax.random.key(1), (4, 3))
    vals = jax.jit(jax.vmap(logdensity))(x)
    ref = jnp.stack([-2.0 * _mlp_energy(params, xi)[0] for xi in x])
    np.testing.assert_allclose(vals, ref, rtol=1e-5)
    score = energy_score_fn(_mlp_energy, params, temperature=0.5)
    np.testing.assert_allclose(jax.vmap(score)(x), jax.vmap(jax.grad(logdensity))(x), rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(score_fn_from_logdensity(logdensity))(x), jax.vmap(score)(x), rtol=1e-6)


def test_pytree_position():
    energy = lambda p: jnp.sum(p["a"] ** 2) + p["b"] ** 2  # noqa: E731
    pos = {"a": jnp.ones(2), "b": jnp.float32(3.0)}
    assert float(energy_logdensity(energy)(pos)) == pytest.approx(-11.0)
    grad = score_fn_from_logdensity(energy_logdensity(energy))(pos)
    np.testing.assert_allclose(grad["a"], -2.0 * jnp.ones(2))


def test_quadratic_energy_score_is_gaussian_score():
    prec = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    score = energy_score_fn(lambda p, x: 0.5 * x @ p @ x, prec, temperature=2.0)
    x = jnp.array([0.3, -1.0])
    np.testing.assert_allclose(score(x), -(prec @ x) / 2.0, rtol=1e-6)


def test_non_scalar_energy_is_rejected():
    logdensity = energy_logdensity(lambda x: x**2)
    with pytest.raises(ValueError, match="scalar"):
        logdensity(jnp.ones(3))
    with pytest.raises(ValueError, match="scalar"):
        jax.jit(logdensity)(jnp.ones(3))


def test_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        energy_logdensity(lambda x: jnp.sum(x), temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        energy_score_fn(lambda x: jnp.sum(x), temperature=-1.0)
