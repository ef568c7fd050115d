"""Random numbers for the NUTS loop: Threefry-2x32 written out, fused into the arithmetic.

``jax.random`` generates bits with Threefry-2x32 (Salmon et al. 2011).  On a CPU its
implementation runs the 20 rounds as a small loop of its own, several kernels per round
group, which costs more than a whole leapfrog step on a small target; a NUTS transition that
draws one uniform per leaf would spend most of its time there.  :func:`threefry2x32` is the
same function written out (it reproduces ``jax.random``'s blocks bit for bit), so XLA fuses it
into the computation that consumes its output.  Distinct counter blocks of one key give
independent streams: stream 0 feeds the momentum and the per-doubling draws, stream 1 the
per-leaf uniforms.

References
----------
Salmon, J. K., Moraes, M. A., Dror, R. O. and Shaw, D. E. (2011). Parallel random numbers:
as easy as 1, 2, 3. SC11.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

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
    return ((bits >> 8).astype(dtype) + 0.5) * (2.0 ** -24)


def _key_words(key):
    """The two 32-bit words of a threefry key (typed or raw), or None for other generators."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return (data[0].astype(U32), data[1].astype(U32)) if data.shape == (2,) else None


def nuts_draws(key, dim: int, max_depth: int, dtype):
    """Standard normal (dim,), directions (max_depth,), log-uniforms (max_depth,), key words."""
    words = _key_words(key)
    if words is None or dtype != jnp.float32:  # other generators, other precisions: plain jax.random
        key_normal, key_rest, key_leaf = jax.random.split(key, 3)
        z = jax.random.normal(key_normal, (dim,), dtype)
        rest = jax.random.bits(key_rest, (2 * max_depth,), U32)
        words = tuple(jax.random.bits(key_leaf, (2,), U32))
    else:  # stream 0 of the key: one threefry block per pair of words
        half = (dim + 2 * max_depth + 1) // 2
        bits = jnp.concatenate(threefry2x32(*words, jnp.arange(half, dtype=U32), jnp.zeros((half,), U32)))
        # materialized once: otherwise XLA may fuse (and so recompute) the generator into each consumer
        bits = jax.lax.optimization_barrier(bits)
        z = jnp.sqrt(2.0).astype(dtype) * jax.scipy.special.erfinv(2.0 * open_uniform(bits[:dim], dtype) - 1.0)
        rest = bits[dim:]
    forward = (rest[:max_depth] >> 31) == 1
    log_u_merge = jnp.log(open_uniform(rest[max_depth:2 * max_depth], dtype))
    return z, forward, log_u_merge, jnp.stack(words)
