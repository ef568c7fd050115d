"""The fused random-number helpers match ``jax.random`` (bit for bit where promised)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from mcgen.kernels import _random

pytestmark = pytest.mark.exact_bits  # run under XLA's default optimization (dev.py test)

KEYS = {"typed": jax.random.key(3), "raw": jax.random.PRNGKey(7), "derived": jax.random.fold_in(jax.random.key(11), 5)}


def _data(k):
    return jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key) else k


@pytest.mark.parametrize("name", KEYS)
@pytest.mark.parametrize(
    "ours, theirs, args",
    [
        (_random.split, jax.random.split, (3,)),
        (_random.fold_in, jax.random.fold_in, (17,)),
        (_random.uniform, jax.random.uniform, ((5, 3),)),
        (_random.uniform, jax.random.uniform, ((), jnp.float32, -1.0, 1.0)),
    ],
)
def test_bit_for_bit(name, ours, theirs, args):
    key = KEYS[name]
    a = jax.jit(lambda k: ours(k, *args))(key)
    b = jax.jit(lambda k: theirs(k, *args))(key)
    np.testing.assert_array_equal(np.asarray(_data(a)), np.asarray(_data(b)))
    keys = jax.random.split(key, 4)  # and under vmap
    a = jax.vmap(lambda k: ours(k, *args))(keys)
    b = jax.vmap(lambda k: theirs(k, *args))(keys)
    np.testing.assert_array_equal(np.asarray(_data(a)), np.asarray(_data(b)))


def test_normal_agrees_with_jax_random():
    keys = jax.random.split(jax.random.key(0), 64)
    ours = jax.vmap(lambda k: _random.normal(k, (33,)))(keys)
    theirs = jax.vmap(lambda k: jax.random.normal(k, (33,)))(keys)
    np.testing.assert_allclose(ours, theirs, atol=3e-5, rtol=0)


def test_normal_is_standard_normal():
    z = np.asarray(_random.normal(jax.random.key(1), (200_000,))).astype(np.float64)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.var() - 1) < 4 * np.sqrt(2 / z.size)


def test_erfinv_on_every_uniform_normal_feeds_it():
    # all 2**23 float32 uniforms jax.random.normal can produce, mapped to (-1, 1)
    k = np.arange(2**23, dtype=np.float64)
    lo = np.nextafter(np.float32(-1), np.float32(0))
    f = (np.float32(1) + (k / 2**23).astype(np.float32)) - np.float32(1)
    u = np.maximum(lo, f * (np.float32(1) - lo) + lo).astype(np.float32)
    ref = scipy.special.erfinv(u.astype(np.float64))
    ours = np.asarray(jax.jit(_random.erfinv_f32)(u), np.float64)
    assert np.all(np.isfinite(ours))
    assert np.max(np.abs(ours - ref)) < 2e-6


def test_other_generators_fall_back_to_jax_random():
    key = jax.random.key(0, impl="rbg")
    np.testing.assert_array_equal(_random.normal(key, (4,)), jax.random.normal(key, (4,)))
    np.testing.assert_array_equal(jax.random.key_data(_random.split(key)), jax.random.key_data(jax.random.split(key)))


def test_float64_under_x64():
    code = (
        "import jax, numpy as np\nfrom mcgen.kernels import _random\nk = jax.random.key(2)\n"
        "np.testing.assert_array_equal(_random.uniform(k, (9,), 'float64'), jax.random.uniform(k, (9,), 'float64'))\n"
        "np.testing.assert_array_equal(_random.normal(k, (9,), 'float64'), jax.random.normal(k, (9,), 'float64'))\n"
        "assert _random.uniform(k, (9,), 'float64').dtype == np.float64\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_log_f32_is_log_to_float32_rounding():
    # every binade from 2**-126 to 2**127, dense near 1 (where log is small), and every value
    # (1 - x)(1 + x) the inverse error function takes from the uniforms it is fed
    rng = np.random.default_rng(0)
    wide = np.exp2(rng.uniform(-126, 127, 200_000)).astype(np.float32)
    near_one = (1.0 + rng.uniform(-0.3, 0.3, 200_000)).astype(np.float32)
    y = np.concatenate([wide, near_one, np.float32([1.0, 2.0, 0.5, np.sqrt(0.5), np.sqrt(2.0)])])
    ref = np.log(y.astype(np.float64))
    ours = np.asarray(jax.jit(_random.log_f32)(y), np.float64)
    # within a few roundings of the float32 result: relative where |log| is large, absolute near 1
    err = np.abs(ours - ref) / np.maximum(np.abs(ref), 1.0)
    assert np.max(err) < 3e-7, np.max(err)
    near = np.abs(ref) < 0.5
    assert np.max(np.abs(ours - ref)[near] / np.abs(ref[near]).clip(1e-30)) < 5e-7


def test_fast_erfinv_on_every_uniform_normal_feeds_it():
    # as test_erfinv_on_every_uniform_normal_feeds_it, and on the symmetric grid ghmc_draws feeds
    k = np.arange(2**23, dtype=np.float64)
    lo = np.nextafter(np.float32(-1), np.float32(0))
    f = (np.float32(1) + (k / 2**23).astype(np.float32)) - np.float32(1)
    u = np.maximum(lo, f * (np.float32(1) - lo) + lo).astype(np.float32)
    grid = (2.0 * ((np.arange(2**24, dtype=np.float64) + 0.5) / 2**24) - 1.0).astype(np.float32)
    for x in (u, grid):
        ref = scipy.special.erfinv(x.astype(np.float64))
        ours = np.asarray(jax.jit(_random.erfinv_fast_f32)(x), np.float64)
        assert np.all(np.isfinite(ours))
        assert np.max(np.abs(ours - ref)) < 2e-6


def _ghmc_sample(dim, n, seed=0):
    keys = jax.random.split(jax.random.key(seed), n)
    z, u = jax.jit(jax.vmap(lambda k: _random.ghmc_draws(k, dim, jnp.float32)))(keys)
    return np.asarray(z, np.float64), np.asarray(u, np.float64)


# below 16 coordinates one block per normal and the uniform from another stream; from 16 up,
# the two words of a block feed z_j and z_j+half, or z and the uniform
@pytest.mark.parametrize("dim", [1, 10, 17, 20])
def test_ghmc_draws_are_independent_standard_normals(dim):
    """Moments in Monte-Carlo standard errors, KS of every coordinate, and no dependence between them.

    ``n`` independent keys; for N(0, 1): the mean has MCSE ``1/sqrt(n)``, the variance
    ``sqrt(2/n)``, the fourth moment (3) ``sqrt(96/n)``; a correlation between independent
    coordinates ``1/sqrt(n)``, of their squares too (both for the values and for the slice
    uniform, which shares a Threefry block with a normal).  Bonferroni at 1e-3 over all checks.
    """
    n = 40_000
    z, u = _ghmc_sample(dim, n)
    assert z.shape == (n, dim) and u.shape == (n,)
    cols = np.concatenate([z, u[:, None]], axis=1)
    num_pairs = (dim + 1) * dim // 2
    checks = 3 * dim + 2 * num_pairs + 2
    limit = scipy.stats.norm.isf(1e-3 / (2 * checks))
    assert np.all(np.abs(z.mean(0)) * np.sqrt(n) < limit), z.mean(0)
    assert np.all(np.abs(z.var(0) - 1.0) / np.sqrt(2.0 / n) < limit), z.var(0)
    assert np.all(np.abs((z**4).mean(0) - 3.0) / np.sqrt(96.0 / n) < limit), (z**4).mean(0)
    assert abs(u.mean()) * np.sqrt(3.0 * n) < limit and np.all((u > -1.0) & (u < 1.0))
    assert abs((u**2).mean() - 1.0 / 3.0) / np.sqrt(4.0 / 45.0 / n) < limit
    for a in (cols, cols**2):
        r = np.corrcoef(a.T)
        iu = np.triu_indices(dim + 1, 1)
        assert np.all(np.abs(r[iu]) * np.sqrt(n) < limit), np.max(np.abs(r[iu]))
    for j in range(dim):
        assert scipy.stats.kstest(z[:, j], "norm").pvalue > 1e-3 / (dim + 1), j
    assert scipy.stats.kstest(u, "uniform", args=(-1.0, 2.0)).pvalue > 1e-3 / (dim + 1)


def test_ghmc_draws_of_a_key_do_not_depend_on_the_batch():
    keys = jax.random.split(jax.random.key(4), 6)
    alone = [jax.jit(lambda k: _random.ghmc_draws(k, 9, jnp.float32))(k) for k in keys]
    batched = jax.jit(jax.vmap(lambda k: _random.ghmc_draws(k, 9, jnp.float32)))(keys)
    for i, (z, u) in enumerate(alone):
        np.testing.assert_array_equal(np.asarray(batched[0][i]), np.asarray(z))
        np.testing.assert_array_equal(np.asarray(batched[1][i]), np.asarray(u))


def test_ghmc_draws_fall_back_to_jax_random():
    key = jax.random.key(0, impl="rbg")
    z, u = _random.ghmc_draws(key, 4, jnp.float32)
    key_normal, key_uniform = jax.random.split(key)
    np.testing.assert_array_equal(z, jax.random.normal(key_normal, (4,)))
    np.testing.assert_array_equal(u, jax.random.uniform(key_uniform, (), jnp.float32, -1.0, 1.0))
