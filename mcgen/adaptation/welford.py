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


# Bounds of a gradient-informed variance (nutpie clamps its estimate the same way, in float64):
# they only stop a coordinate whose draws or scores did not vary from giving 0 or inf.
_FISHER_BOUNDS = (1e-10, 1e10)


def fisher_diagonal(draws: WelfordState, scores: WelfordState) -> jax.Array:
    """The diagonal inverse mass that minimizes a Fisher divergence, from draws and scores.

    For a diagonal preconditioner :math:`A`, the Fisher divergence between the target and
    its Gaussian approximation is minimized per coordinate by

    .. math::

        A_{ii} = \\sqrt{\\operatorname{Var}(x_i) / \\operatorname{Var}(\\partial_i \\log\\pi(x))}

    (Seyboldt et al.; nutpie's default).  On a Gaussian with covariance :math:`\\Sigma` it
    is :math:`\\sqrt{\\Sigma_{ii} / (\\Sigma^{-1})_{ii}}`: :math:`\\Sigma_{ii}` when the
    target is uncorrelated, and between the marginal and the conditional variance when it
    is not (the draws' variance alone gives the marginal one).  ``draws`` and ``scores`` are
    Welford estimates (diagonal) over the same points.  Clamped to ``[1e-10, 1e10]``.

    References
    ----------
    Seyboldt, A., Carlson, E. and Carpenter, B. (2026). Preconditioning Hamiltonian Monte
    Carlo by minimizing Fisher Divergence. arXiv:2603.18845.
    """
    var_x = welford_covariance(draws, regularize=False)
    var_g = welford_covariance(scores, regularize=False)
    ratio = jnp.sqrt(var_x / var_g)
    ratio = jnp.where(jnp.isnan(ratio), 1.0, ratio)  # a coordinate that never moved: 0 / 0
    return jnp.clip(ratio, *_FISHER_BOUNDS).astype(draws.mean.dtype)
