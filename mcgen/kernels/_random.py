"""Random numbers for the hot path: Threefry-2x32 written out, fused into the arithmetic.

``jax.random`` generates bits with Threefry-2x32 (Salmon et al. 2011).  On a CPU, JAX lowers
the 20 rounds as a small rolled loop (to keep compile times short), which XLA cannot fuse
with anything: every ``split``, ``fold_in``, ``normal`` and ``uniform`` becomes a loop of its
own, and on a small target the generator costs many times the log-density (10-30x for
random-walk Metropolis on a 10-d Gaussian).  :func:`threefry2x32` is the same function
written out, so XLA fuses it into the computation that consumes its output.

:func:`split`, :func:`fold_in`, :func:`uniform` and :func:`normal` are drop-in replacements
for their ``jax.random`` namesakes.  ``split``, ``fold_in`` and ``uniform`` return **the same
values bit for bit** (tested) whenever the key is a Threefry key and
``jax_threefry_partitionable`` is on (the default since JAX 0.5); ``normal`` transforms the
same uniforms with a fusable inverse error function (:func:`erfinv_f32`) and agrees to about
1e-5.  For any other generator or setting they call ``jax.random``.

For NUTS, :func:`nuts_draws` takes its randomness from distinct counter blocks of one key:
stream 0 feeds the momentum and the per-doubling draws, stream 1 the per-leaf uniforms.
For generalized HMC (MEADS), :func:`ghmc_draws` takes the momentum noise and the slice
variable from one call on the step key: a logarithm computed from the float's bits
(:func:`log_f32`) in the inverse error function, and both words of each Threefry block from
16 coordinates up.

References
----------
Salmon, J. K., Moraes, M. A., Dror, R. O. and Shaw, D. E. (2011). Parallel random numbers:
as easy as 1, 2, 3. SC11.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

U32 = jnp.uint32


def _rotl(x, r: int):
    return (x << U32(r)) | (x >> U32(32 - r))


def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), unrolled: the generator of
    ``jax.random``, bit for bit, written out so that XLA fuses it into the surrounding
    arithmetic instead of running it as a loop of its own."""
    ks = (k0, k1, k0 ^ k1 ^ U32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + U32(i + 1)
    return x0, x1


def open_uniform(bits, dtype):
    """Uniform on (0, 1) from the top 24 bits (exact in float32)."""
    return ((bits >> 8).astype(dtype) + 0.5) * (2.0**-24)


def _threefry_key(key):
    """``(k0, k1, wrap)`` for a Threefry key (typed or raw) under the partitionable layout, else None.

    ``wrap(k0, k1)`` rebuilds a key of the same kind as ``key`` from two words.
    """
    if not jax.config.jax_threefry_partitionable:  # pyright: ignore[reportAttributeAccessIssue]
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(key)
        if str(impl) != "threefry2x32" or key.shape != ():
            return None
        data = jax.random.key_data(key)
        return data[0], data[1], lambda a, b: jax.random.wrap_key_data(jnp.stack([a, b], -1), impl=impl)
    impl_name = str(jax.config.jax_default_prng_impl)  # pyright: ignore[reportAttributeAccessIssue]
    if key.shape != (2,) or key.dtype != U32 or impl_name != "threefry2x32":
        return None
    return key[0], key[1], lambda a, b: jnp.stack([a, b], -1)


def _blocks(k0, k1, shape):
    """Threefry of the counters ``(0, i)``, ``i`` the flat index over ``shape`` (both output words)."""
    count = jnp.arange(math.prod(shape), dtype=U32).reshape(shape)
    if count.size > 1:
        # the key is computed once: otherwise XLA fuses the hashing that derived it (a split,
        # a fold_in) into the loop over the counters and repeats it for every element
        k0, k1 = jax.lax.optimization_barrier((k0, k1))
    return threefry2x32(k0, k1, jnp.zeros_like(count), count)


def split(key, num: int = 2):
    """``jax.random.split(key, num)``, bit for bit, fused."""
    words = _threefry_key(key)
    if words is None:
        return jax.random.split(key, num)
    k0, k1, wrap = words
    return wrap(*_blocks(k0, k1, (num,)))


def fold_in(key, data):
    """``jax.random.fold_in(key, data)``, bit for bit, fused (``data`` a scalar integer)."""
    words = _threefry_key(key)
    if words is None:
        return jax.random.fold_in(key, data)
    k0, k1, wrap = words
    return wrap(*threefry2x32(k0, k1, U32(0), jnp.asarray(data).astype(U32)))


def _bits(key, shape, width: int):
    """``jax.random.bits``-equivalent words of ``width`` bits, or None where we must defer."""
    words = _threefry_key(key)
    if words is None or width not in (32, 64):
        return None
    y0, y1 = _blocks(words[0], words[1], shape)
    if width == 32:
        return y0 ^ y1
    u64 = jnp.uint64
    return (y0.astype(u64) << u64(32)) | y1.astype(u64)


def uniform(key, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0):
    """``jax.random.uniform``, bit for bit, fused (float32, or float64 under x64)."""
    shape = tuple(shape)
    dtype = jnp.dtype(dtype)
    info = jnp.finfo(dtype)
    bits = _bits(key, shape, info.bits) if info.bits in (32, 64) else None
    if bits is None:
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    uint = bits.dtype
    one = jnp.asarray(np.array(1.0, dtype).view(uint), uint)
    floats = jax.lax.bitcast_convert_type((bits >> uint.type(info.bits - info.nmant)) | one, dtype) - dtype.type(1.0)
    minval, maxval = jnp.asarray(minval, dtype), jnp.asarray(maxval, dtype)
    return jnp.maximum(minval, floats * (maxval - minval) + minval)


# Giles (2010), single-precision erfinv: w = -log(1 - x^2); a degree-8 polynomial in w - 2.5
# for w < 5 and in sqrt(w) - 3 beyond.  XLA:CPU's own erf_inv costs ~10 ns per element
# (more than generating the bits); this one fuses and vectorizes, and is more accurate on
# the uniforms ``normal`` feeds it (max relative error 3e-7 against scipy's float64 erfinv).
_ERFINV_CENTRAL = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_ERFINV_TAIL = (
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
)


def _horner(coefficients, w):
    p = jnp.asarray(coefficients[0], w.dtype)
    for c in coefficients[1:]:
        p = c + p * w
    return p


# log(1 + x) = x - x^2 / 2 + x^3 P(x) on [sqrt(1/2) - 1, sqrt(2) - 1]: P of degree 6 fitted by
# weighted least squares (relative error of the logarithm) on Chebyshev nodes, in float64;
# largest relative error of the formula 3.4e-8 there, below float32's rounding.
_LOG_P = (
    0.08506953716278076,
    -0.14197471737861633,
    0.14950978755950928,
    -0.165879487991333,
    0.19960597157478333,
    -0.250009685754776,
    0.33333972096443176,
)
_SQRT_HALF_BITS = 0x3F3504F3  # float32 bits of sqrt(1/2)


def log_f32(y):
    """Natural logarithm of positive, finite, normal float32 values (no zeros, subnormals, inf or NaN).

    ``y = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` read off the bits (subtracting the bits
    of ``sqrt(1/2)`` moves the exponent's boundary there), then ``e log 2 + log m`` by the
    polynomial above: a few integer and float operations that fuse and vectorize, where
    XLA:CPU's ``log`` costs about 2.5 ns per element (more than the Threefry bits of a normal
    draw).  Error within a few float32 roundings (tested).
    """
    i = jax.lax.bitcast_convert_type(y, jnp.int32) - jnp.int32(_SQRT_HALF_BITS)
    e = (i >> 23).astype(jnp.float32)  # arithmetic shift: the exponent relative to sqrt(1/2)
    m = jax.lax.bitcast_convert_type((i & jnp.int32(0x7FFFFF)) + jnp.int32(_SQRT_HALF_BITS), jnp.float32)
    x = m - 1.0
    x2 = x * x
    return e * np.float32(np.log(2.0)) + (x - 0.5 * x2 + x2 * x * _horner(_LOG_P, x))


def _erfinv(x, log):
    w = -log((1.0 - x) * (1.0 + x))
    central = _horner(_ERFINV_CENTRAL, w - 2.5)
    tail = _horner(_ERFINV_TAIL, jnp.sqrt(w) - 3.0)
    return jnp.where(w < 5.0, central, tail) * x


def erfinv_f32(x):
    """Inverse error function on (-1, 1) in float32 (Giles 2010), fusable."""
    return _erfinv(x, jnp.log)


def erfinv_fast_f32(x):
    """:func:`erfinv_f32` with :func:`log_f32` for its logarithm (agrees to about 1e-6, tested)."""
    return _erfinv(x, log_f32)


def normal(key, shape=(), dtype=jnp.float32):
    """``jax.random.normal`` for real dtypes, fused.

    The same uniforms as ``jax.random.normal`` (bit for bit); in float32 they go through
    :func:`erfinv_f32` instead of XLA's ``erf_inv``, so values agree with ``jax.random.normal``
    to about 1e-5 (both within float32 rounding of the exact transform, ours closer).  Other
    dtypes and generators: ``jax.random.normal`` itself.  (Using both output words of each
    Threefry block instead of XOR-ing them was measured too: no faster once fused.)
    """
    dtype = jnp.dtype(dtype)
    if dtype != jnp.float32 or _threefry_key(key) is None:
        return jax.random.normal(key, shape, dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = uniform(key, shape, dtype, lo, 1.0)  # pyright: ignore[reportArgumentType]
    return erfinv_f32(u) * np.array(np.sqrt(2), dtype)


def nuts_draws(key, dim: int, max_depth: int, dtype):
    """Standard normal (dim,), directions (max_depth,), log-uniforms (max_depth,), key words."""
    threefry = _threefry_key(key)
    if threefry is None or dtype != jnp.float32:  # other generators, other precisions: plain jax.random
        key_normal, key_rest, key_leaf = jax.random.split(key, 3)
        z = jax.random.normal(key_normal, (dim,), dtype)
        rest = jax.random.bits(key_rest, (2 * max_depth,), U32)
        words = tuple(jax.random.bits(key_leaf, (2,), U32))
    else:  # stream 0 of the key: one threefry block per pair of words
        words = threefry[:2]
        half = (dim + 2 * max_depth + 1) // 2
        bits = jnp.concatenate(threefry2x32(*words, jnp.arange(half, dtype=U32), jnp.zeros((half,), U32)))
        # materialized once: otherwise XLA may fuse (and so recompute) the generator into each consumer
        bits = jax.lax.optimization_barrier(bits)
        z = np.float32(np.sqrt(2)) * erfinv_f32(2.0 * open_uniform(bits[:dim], dtype) - 1.0)
        rest = bits[dim:]
    forward = (rest[:max_depth] >> 31) == 1
    log_u_merge = jnp.log(open_uniform(rest[max_depth : 2 * max_depth], dtype))
    return z, forward, log_u_merge, jnp.stack(words)


# below this many coordinates ghmc_draws hashes one block per normal: slicing the words of a
# (chains, d + 2) block layout cost more than the hashing it saves (1024 chains, d = 10:
# 0.26 ms per step against 0.13; d = 25: 0.20 against 0.19; d = 100: 0.66 against 0.75)
_BOTH_WORDS_MIN_DIM = 16


def ghmc_draws(key, dim: int, dtype):
    """Momentum noise ``(dim,)`` standard normal and a uniform on ``(-1, 1)``: one call per GHMC step.

    Straight from the step's key (no ``split``).  From ``_BOTH_WORDS_MIN_DIM`` coordinates up,
    counter blocks ``0 .. ceil((dim + 1) / 2) - 1`` of stream 0, both output words of each
    (the normals from the first ``dim`` words, the uniform from the next), stored once (a
    fence) before they are transformed, else XLA fuses each block into two consumers and
    computes it twice.  Below, one block per normal (its two words XOR-ed, as ``jax.random``
    does) and the uniform from block 0 of stream 1.  The normals use :func:`erfinv_fast_f32`.
    Other generators and precisions: ``jax.random``.
    """
    threefry = _threefry_key(key)
    if threefry is None or dtype != jnp.float32:
        key_normal, key_uniform = jax.random.split(key)
        return jax.random.normal(key_normal, (dim,), dtype), jax.random.uniform(key_uniform, (), dtype, -1.0, 1.0)
    k0, k1 = jax.lax.optimization_barrier(threefry[:2])  # the key once, not per element
    if dim < _BOTH_WORDS_MIN_DIM:
        count = jnp.arange(dim, dtype=U32)
        y0, y1 = threefry2x32(k0, k1, jnp.zeros_like(count), count)
        x = 2.0 * open_uniform(y0 ^ y1, dtype) - 1.0  # open interval (-1, 1), symmetric
        u = 2.0 * open_uniform(threefry2x32(k0, k1, U32(1), U32(0))[0], dtype) - 1.0
    else:
        count = jnp.arange((dim + 2) // 2, dtype=U32)
        bits = jax.lax.optimization_barrier(jnp.concatenate(threefry2x32(k0, k1, jnp.zeros_like(count), count)))
        x = 2.0 * open_uniform(bits[: dim + 1], dtype) - 1.0
        x, u = x[:dim], x[dim]
    return np.float32(np.sqrt(2)) * erfinv_fast_f32(x), u
