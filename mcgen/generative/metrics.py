r"""Sample-quality metrics that need no pretrained network: MMD, energy distance, k-NN P/R.

*Maximum mean discrepancy* with the Gaussian (RBF) kernel
:math:`k(a, b) = \exp(-\lVert a - b\rVert^2 / 2h^2)` (Gretton et al. 2012), unbiased
U-statistic:

.. math::

    \widehat{\mathrm{MMD}}^2 = \frac{1}{n(n-1)}\sum_{i\ne j} k(x_i, x_j)
      + \frac{1}{m(m-1)}\sum_{i\ne j} k(y_i, y_j) - \frac{2}{nm}\sum_{i,j} k(x_i, y_j),

which has mean zero when both sets come from the same distribution (it can be slightly
negative).  The default bandwidth :math:`h` is the median pairwise distance of the pooled
sample (the median heuristic).

*Energy distance* (Székely & Rizzo 2013):
:math:`2\,\mathbb E\lVert X - Y\rVert - \mathbb E\lVert X - X'\rVert - \mathbb E\lVert Y - Y'\rVert`,
also as an unbiased U-statistic; zero iff the distributions agree.

*k-NN precision and recall* (Kynkäänniemi et al. 2019): each set is covered by balls around its
points whose radius is the distance to the k-th nearest neighbour in the same set; precision is
the fraction of generated points inside the real set's balls (fidelity), recall the fraction of
real points inside the generated set's balls (coverage).

Samples are arrays ``(n, *event_shape)``, flattened per sample.  Pairwise terms are summed in
row blocks (``lax.map``), so memory grows as ``block * n``, not ``n * m``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from mcgen.types import Array, ArrayLike

__all__ = ["mmd_rbf", "energy_distance", "knn_precision_recall", "median_bandwidth"]

_BLOCK = 512  # rows per block of pairwise computations


def _flat(x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[0] < 2:
        raise ValueError(f"need at least two samples along axis 0, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def _sq_dists(a: Array, b: Array) -> Array:
    d2 = jnp.sum(a**2, -1)[:, None] + jnp.sum(b**2, -1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(d2, 0.0)


def _row_blocks(x: Array, fn: Callable[[Array, Array], Array]) -> Array:
    """Apply ``fn(rows, row_index)`` to blocks of rows of x; concatenate per-row outputs."""
    n = x.shape[0]
    nb = -(-n // _BLOCK)
    pad = nb * _BLOCK - n
    xp = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(nb, _BLOCK, -1)
    idx = jnp.arange(nb * _BLOCK).reshape(nb, _BLOCK)
    out = lax.map(lambda args: fn(*args), (xp, idx))
    return out.reshape((nb * _BLOCK,) + out.shape[2:])[:n]


def _pair_mean(x: Array, y: Array, fn: Callable[[Array], Array], same: bool) -> Array:
    """Mean of ``fn(squared distance)`` over pairs (excluding i == j when ``same``)."""

    def rows(block, idx):
        vals = fn(_sq_dists(block, y))
        if same:
            vals = jnp.where(idx[:, None] == jnp.arange(y.shape[0])[None, :], 0.0, vals)
        return jnp.sum(vals, axis=1)

    total = jnp.sum(_row_blocks(x, rows))
    count = x.shape[0] * (y.shape[0] - 1) if same else x.shape[0] * y.shape[0]
    return total / count


def median_bandwidth(x: ArrayLike, y: ArrayLike, max_points: int = 1000) -> Array:
    """Median pairwise distance of the pooled sample (first ``max_points`` of each set)."""
    z = jnp.concatenate([_flat(x)[:max_points], _flat(y)[:max_points]])
    d2 = _sq_dists(z, z)
    iu = jnp.triu_indices(z.shape[0], k=1)
    return jnp.sqrt(jnp.median(d2[iu]))


@jax.jit
def _mmd(x, y, bandwidth):
    kern = lambda d2: jnp.exp(-0.5 * d2 / bandwidth**2)  # noqa: E731
    return _pair_mean(x, x, kern, True) + _pair_mean(y, y, kern, True) - 2.0 * _pair_mean(x, y, kern, False)


def mmd_rbf(x: ArrayLike, y: ArrayLike, bandwidth: ArrayLike | None = None) -> Array:
    r"""Unbiased estimate of the squared MMD between two sample sets, RBF kernel.

    Parameters
    ----------
    x, y
        Samples ``(n, *event_shape)`` and ``(m, *event_shape)``.
    bandwidth
        Kernel bandwidth :math:`h`; ``None`` uses :func:`median_bandwidth`.  Pass a fixed
        value when comparing several sets against one reference.

    Returns
    -------
    Array
        Scalar :math:`\widehat{\mathrm{MMD}}^2`.
    """
    x, y = _flat(x), _flat(y)
    if bandwidth is None:
        bandwidth = median_bandwidth(x, y)
    if isinstance(bandwidth, (int, float)) and bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    return _mmd(x, y, jnp.asarray(bandwidth, x.dtype))


@jax.jit
def _energy(x, y):
    dist = lambda d2: jnp.sqrt(d2 + 1e-30)  # noqa: E731 (offset keeps sqrt differentiable at 0)
    return 2.0 * _pair_mean(x, y, dist, False) - _pair_mean(x, x, dist, True) - _pair_mean(y, y, dist, True)


def energy_distance(x: ArrayLike, y: ArrayLike) -> Array:
    """Unbiased estimate of the energy distance between two sample sets (scalar)."""
    return _energy(_flat(x), _flat(y))


def _knn_radii(x: Array, k: int) -> Array:
    def rows(block, idx):
        d2 = _sq_dists(block, x)
        d2 = jnp.where(idx[:, None] == jnp.arange(x.shape[0])[None, :], jnp.inf, d2)
        return -lax.top_k(-d2, k)[0][:, -1]

    return _row_blocks(x, rows)


def _coverage(ref: Array, radii2: Array, query: Array) -> Array:
    def rows(block, idx):
        del idx
        return jnp.any(_sq_dists(block, ref) <= radii2[None, :], axis=1)

    return jnp.mean(_row_blocks(query, rows).astype(ref.dtype))


@jax.jit(static_argnames="k")
def _precision_recall(real, fake, k):
    precision = _coverage(real, _knn_radii(real, k), fake)
    recall = _coverage(fake, _knn_radii(fake, k), real)
    return precision, recall


def knn_precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3) -> tuple[Array, Array]:
    """Improved precision and recall of generated samples (Kynkäänniemi et al. 2019).

    Parameters
    ----------
    real, fake
        Reference and generated samples ``(n, *event_shape)``, ``(m, *event_shape)``.
    k
        Neighbourhood size for the radii.

    Returns
    -------
    precision, recall
        Scalars in [0, 1].
    """
    real, fake = _flat(real), _flat(fake)
    if not isinstance(k, int) or not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k must be an int in [1, min(n, m) - 1], got {k!r}")
    return _precision_recall(real, fake, k)
