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
