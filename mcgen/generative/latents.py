r"""Latent-space tools for VAEs and GANs: prior draws, interpolation, truncation.

*Prior with temperature*: :math:`z \sim \mathcal N(0, T^2 I)`; :math:`T < 1` favours typical,
high-fidelity decodes.

*Interpolation*.  :func:`lerp` is :math:`(1 - t) a + t b`.  Gaussian latents in high
dimension concentrate on a sphere, and a straight line between two of them passes through
atypically short vectors, so :func:`slerp` moves along the great circle instead (Shoemake
1985; White 2016).  Writing :math:`a = r_a u` and :math:`b = r_b (\cos\Omega\, u + \sin\Omega\, v)`
with orthonormal :math:`u, v`,

.. math::

    \mathrm{slerp}(a, b; t) = \big((1 - t) r_a + t r_b\big)\,
        \big(\cos(t\Omega)\, u + \sin(t\Omega)\, v\big),

which equals the classical :math:`\frac{\sin((1-t)\Omega)}{\sin\Omega} a +
\frac{\sin(t\Omega)}{\sin\Omega} b` when :math:`r_a = r_b`, and stays finite where that formula
divides by :math:`\sin\Omega = 0`: :math:`\Omega` is computed as
:math:`2\,\mathrm{atan2}(\lVert u - \hat b\rVert, \lVert u + \hat b\rVert)` (accurate at
both ends), parallel vectors reduce to :func:`lerp`, and for antiparallel vectors (any great
circle joins them) a fixed direction :math:`v \perp u` is chosen.

*Truncation*.  The truncation trick of StyleGAN pulls a latent towards the average latent,
:math:`w' = \bar w + \psi (w - \bar w)`.  BigGAN's truncation resamples every coordinate of
:math:`z \sim \mathcal N(0, I)` whose magnitude exceeds a threshold until none does, which
draws exactly from the truncated normal on :math:`[-c, c]^d`; :func:`truncated_prior` does this
with a fixed-shape ``lax.while_loop``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from mcgen.types import Array, ArrayLike, PRNGKey

__all__ = ["sample_prior", "lerp", "slerp", "interpolate", "truncation_trick", "truncated_prior"]

_PARALLEL_TOL = 1e-4  # |component of b orthogonal to a| / |b| below which v is chosen by hand


def sample_prior(key: PRNGKey, shape: tuple[int, ...], num_samples: int, temperature: ArrayLike = 1.0) -> Array:
    """Draw ``(num_samples, *shape)`` latents from ``N(0, temperature^2 I)``."""
    if isinstance(temperature, (int, float)) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return jnp.asarray(temperature) * jax.random.normal(key, (num_samples,) + tuple(shape))


def lerp(a: ArrayLike, b: ArrayLike, t: ArrayLike) -> Array:
    """Linear interpolation ``(1 - t) a + t b``."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    return a + t * (b - a)


def _unit(x: Array, fallback: Array) -> tuple[Array, Array]:
    norm = jnp.linalg.norm(x)
    ok = norm > 0.0
    return jnp.where(ok, x / jnp.where(ok, norm, 1.0), fallback), norm


def slerp(a: ArrayLike, b: ArrayLike, t: ArrayLike) -> Array:
    """Spherical interpolation between two latents (each treated as one flat vector).

    Parameters
    ----------
    a, b
        Latents of the same shape.
    t
        Scalar position on the path, 0 at ``a`` and 1 at ``b``.

    Returns
    -------
    Array
        The interpolant, same shape as ``a``.  Safe (finite, norm-interpolating) for
        parallel, antiparallel and zero vectors; jit- and vmap-compatible.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    af, bf = a.ravel(), b.ravel()
    e0 = jnp.zeros_like(af).at[0].set(1.0)
    u, r_a = _unit(af, e0)
    ub, r_b = _unit(bf, u)
    omega = 2.0 * jnp.arctan2(jnp.linalg.norm(u - ub), jnp.linalg.norm(u + ub))
    w = ub - jnp.dot(u, ub) * u
    w_norm = jnp.linalg.norm(w)
    # Fallback direction orthogonal to u: the basis vector least aligned with u, minus its
    # projection on u.
    j = jnp.argmin(jnp.abs(u))
    e_j = jnp.zeros_like(u).at[j].set(1.0)
    v_fallback = (e_j - u[j] * u) / jnp.sqrt(jnp.maximum(1.0 - u[j] ** 2, 1e-12))
    use_w = w_norm > _PARALLEL_TOL
    v = jnp.where(use_w, w / jnp.where(use_w, w_norm, 1.0), v_fallback)
    t = jnp.asarray(t)
    radius = (1.0 - t) * r_a + t * r_b
    out = radius * (jnp.cos(t * omega) * u + jnp.sin(t * omega) * v)
    return out.reshape(a.shape)


def interpolate(a: ArrayLike, b: ArrayLike, num: int, method: str = "slerp") -> Array:
    """``num`` evenly spaced points from ``a`` to ``b`` (inclusive), shape ``(num, *a.shape)``."""
    if method not in ("slerp", "lerp"):
        raise ValueError(f"method must be 'slerp' or 'lerp', got {method!r}")
    if not isinstance(num, int) or num < 2:
        raise ValueError(f"num must be an int >= 2, got {num!r}")
    fn = slerp if method == "slerp" else lerp
    return jax.vmap(lambda t: fn(a, b, t))(jnp.linspace(0.0, 1.0, num))


def truncation_trick(w: ArrayLike, w_mean: ArrayLike, psi: ArrayLike) -> Array:
    r"""StyleGAN truncation :math:`\bar w + \psi (w - \bar w)` (``psi`` = 1: no truncation)."""
    w, w_mean = jnp.asarray(w), jnp.asarray(w_mean)
    return w_mean + psi * (w - w_mean)


@partial(jax.jit, static_argnames=("shape", "num_samples", "max_rounds"))
def _truncated(key, shape, num_samples, threshold, max_rounds):
    key_init, key_loop, key_rest = jax.random.split(key, 3)
    z = jax.random.normal(key_init, (num_samples,) + shape)

    def cond(carry):
        _, z, rnd = carry
        return jnp.any(jnp.abs(z) > threshold) & (rnd < max_rounds)

    def body(carry):
        key, z, rnd = carry
        key, key_round = jax.random.split(key)
        fresh = jax.random.normal(key_round, z.shape, z.dtype)
        return key, jnp.where(jnp.abs(z) > threshold, fresh, z), rnd + 1

    _, z, _ = lax.while_loop(cond, body, (key_loop, z, jnp.int32(0)))
    # Coordinates still outside after max_rounds (only for tiny thresholds) get an exact
    # inverse-CDF draw from the same truncated normal.
    rest = jax.random.truncated_normal(key_rest, -threshold, threshold, z.shape, z.dtype)
    return jnp.where(jnp.abs(z) > threshold, rest, z)


def truncated_prior(
    key: PRNGKey, shape: tuple[int, ...], num_samples: int, threshold: ArrayLike = 2.0, max_rounds: int = 100
) -> Array:
    """Latents from ``N(0, I)`` truncated to ``[-threshold, threshold]`` by resampling (BigGAN).

    Parameters
    ----------
    key
        PRNG key.
    shape
        Shape of one latent.
    num_samples
        Number of latents.
    threshold
        Truncation bound ``c > 0``; smaller means higher fidelity and lower diversity.
    max_rounds
        Bound on resampling rounds; any coordinate left over is drawn by inverse CDF.

    Returns
    -------
    Array
        ``(num_samples, *shape)``, every entry in ``[-threshold, threshold]``.
    """
    if isinstance(threshold, (int, float)) and threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if not isinstance(max_rounds, int) or max_rounds < 0:
        raise ValueError(f"max_rounds must be a non-negative int, got {max_rounds!r}")
    return _truncated(key, tuple(shape), num_samples, threshold, max_rounds)
