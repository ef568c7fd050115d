"""Welford's running mean and covariance, with shrinkage regularization.

Welford (1962) updates the mean and the sum of outer products of deviations in one pass,
stable in floating point:

.. math::

    n \\leftarrow n + 1,\\quad \\delta = x - m,\\quad m \\leftarrow m + \\delta / n,\\quad
    M_2 \\leftarrow M_2 + \\delta (x - m)^\\top .

The regularized estimate follows Stan: :math:`\\hat\\Sigma = \\frac{n}{n + 5} S +
\\frac{5}{n + 5} 10^{-3} I` with :math:`S = M_2 / (n - 1)`, shrinking towards a small
multiple of the identity while few draws have been seen.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class WelfordState(NamedTuple):
    count: jax.Array
    mean: jax.Array  # (d,)
    m2: jax.Array  # (d, d) if dense else (d,)


def welford_init(dim: int, dense: bool = True, dtype=jnp.float32) -> WelfordState:
    m2 = jnp.zeros((dim, dim) if dense else (dim,), dtype)
    return WelfordState(jnp.zeros((), jnp.int32), jnp.zeros((dim,), dtype), m2)


def welford_update(state: WelfordState, x: jax.Array) -> WelfordState:
    count = state.count + 1
    delta = x - state.mean
    mean = state.mean + delta / count.astype(x.dtype)
    if state.m2.ndim == 2:
        m2 = state.m2 + jnp.outer(delta, x - mean)
    else:
        m2 = state.m2 + delta * (x - mean)
    return WelfordState(count, mean, m2)


def welford_covariance(state: WelfordState, regularize: bool = True) -> jax.Array:
    """Sample covariance (or variances); regularized towards ``1e-3 I`` as in Stan."""
    n = state.count.astype(state.mean.dtype)
    cov = state.m2 / jnp.maximum(n - 1.0, 1.0)
    if not regularize:
        return cov
    shrink = 5.0 / (n + 5.0)
    eye = jnp.eye(state.mean.shape[0], dtype=cov.dtype) if cov.ndim == 2 else jnp.ones_like(cov)
    return (1.0 - shrink) * cov + shrink * 1e-3 * eye
