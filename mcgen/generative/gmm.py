r"""Gaussian mixtures: exact scores and noise predictors for testing samplers.

For a data distribution :math:`p_0 = \sum_k w_k \mathcal N(\mu_k, \Sigma_k)`, every noised
marginal is again a Gaussian mixture, so the ideal networks of score-based and diffusion models
are known in closed form.  Under the VP forward process
:math:`x_t = \alpha_t x_0 + \sigma_t \varepsilon`,

.. math::

    p_t(x) = \sum_k w_k\, \mathcal N\big(x;\ \alpha_t \mu_k,\ \alpha_t^2 \Sigma_k + \sigma_t^2 I\big),

and the minimum-MSE noise predictor is
:math:`\varepsilon^*(x, t) = -\sigma_t \nabla_x \log p_t(x)` with

.. math::

    \nabla_x \log p_t(x) = -\sum_k r_k(x)\, C_k^{-1} (x - \alpha_t \mu_k), \qquad
    r_k(x) \propto w_k \mathcal N(x; \alpha_t\mu_k, C_k),\ C_k = \alpha_t^2\Sigma_k + \sigma_t^2 I .

Under variance-exploding noise :math:`x_\sigma = x_0 + \sigma \varepsilon` (annealed Langevin,
NCSN) the covariances are :math:`\Sigma_k + \sigma^2 I` instead.  These functions let users test
their own samplers against a known answer (mode weights, means, covariances).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mcgen.generative.schedules import NoiseSchedule
from mcgen.types import Array, ArrayLike, PRNGKey

__all__ = ["gmm_log_prob", "gmm_score", "gmm_sample", "gmm_eps_fn", "gmm_noised_score_fn"]


def _check(weights, means, covs):
    weights, means, covs = jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs)
    if means.ndim != 2 or covs.shape != means.shape + means.shape[-1:] or weights.shape != means.shape[:1]:
        raise ValueError(
            f"need weights (K,), means (K, d), covs (K, d, d); got {weights.shape}, {means.shape}, {covs.shape}"
        )
    return weights, means, covs


def _log_prob_and_score(x: Array, weights: Array, locs: Array, covs: Array) -> tuple[Array, Array]:
    """Mixture log density ``(n,)`` and score ``(n, d)`` at points ``x`` of shape ``(n, d)``.

    The Cholesky factors are computed once per call (not per point); each point then costs
    ``K`` triangular solves of size ``d``.
    """
    chol = jnp.linalg.cholesky(covs)  # (K, d, d)
    eye = jnp.eye(covs.shape[-1], dtype=covs.dtype)
    chol_inv = jax.vmap(lambda c: jax.scipy.linalg.solve_triangular(c, eye, lower=True))(chol)
    resid = x[:, None, :] - locs[None, :, :]  # (n, K, d)
    white = jnp.einsum("kij,nkj->nki", chol_inv, resid)  # L^-1 r
    prec_resid = jnp.einsum("kji,nkj->nki", chol_inv, white)  # L^-T L^-1 r
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    d = x.shape[-1]
    log_comp = jnp.log(weights) - 0.5 * (jnp.sum(white**2, -1) + log_det + d * jnp.log(2.0 * jnp.pi))
    resp = jax.nn.softmax(log_comp, axis=-1)  # (n, K)
    return jax.nn.logsumexp(log_comp, axis=-1), -jnp.einsum("nk,nkd->nd", resp, prec_resid)


def gmm_log_prob(x: ArrayLike, weights: ArrayLike, means: ArrayLike, covs: ArrayLike) -> Array:
    """Log density of a Gaussian mixture at points ``x`` of shape ``(..., d)``."""
    weights, means, covs = _check(weights, means, covs)
    x = jnp.asarray(x)
    return _log_prob_and_score(x.reshape(-1, x.shape[-1]), weights, means, covs)[0].reshape(x.shape[:-1])


def gmm_score(x: ArrayLike, weights: ArrayLike, means: ArrayLike, covs: ArrayLike) -> Array:
    r"""Score :math:`\nabla_x \log p(x)` of a Gaussian mixture at points ``x`` of shape ``(..., d)``."""
    weights, means, covs = _check(weights, means, covs)
    x = jnp.asarray(x)
    return _log_prob_and_score(x.reshape(-1, x.shape[-1]), weights, means, covs)[1].reshape(x.shape)


def gmm_sample(
    key: PRNGKey, weights: ArrayLike, means: ArrayLike, covs: ArrayLike, num_samples: int
) -> tuple[Array, Array]:
    """Exact draws from a Gaussian mixture.

    Returns
    -------
    samples
        ``(num_samples, d)``.
    components
        ``(num_samples,)`` integer index of the component each draw came from.
    """
    weights, means, covs = _check(weights, means, covs)
    key_comp, key_noise = jax.random.split(key)
    comp = jax.random.categorical(key_comp, jnp.log(weights), shape=(num_samples,))
    z = jax.random.normal(key_noise, (num_samples, means.shape[-1]), dtype=means.dtype)
    chol = jnp.linalg.cholesky(covs)
    return means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z), comp


def gmm_eps_fn(
    weights: ArrayLike, means: ArrayLike, covs: ArrayLike, schedule: NoiseSchedule
) -> Callable[[Array, ArrayLike], Array]:
    r"""The exact noise predictor of a Gaussian-mixture data distribution (VP forward process).

    Parameters
    ----------
    weights, means, covs
        Mixture weights ``(K,)`` (summing to one), means ``(K, d)``, covariances ``(K, d, d)``.
    schedule
        The :class:`~mcgen.generative.NoiseSchedule` of the forward process.

    Returns
    -------
    eps_fn
        ``eps_fn(x, t)`` with ``x`` of shape ``(n, d)`` and scalar continuous time ``t``;
        returns :math:`\varepsilon^*(x, t) = -\sigma_t \nabla \log p_t(x)`, shape ``(n, d)``.

    Example
    -------
    >>> import jax.numpy as jnp
    >>> from mcgen.generative import linear_schedule, gmm_eps_fn
    >>> eps_fn = gmm_eps_fn(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(2)[None], linear_schedule())
    >>> eps_fn(jnp.ones((3, 2)), 0.5).shape
    (3, 2)
    """
    weights, means, covs = _check(weights, means, covs)
    eye = jnp.eye(means.shape[-1], dtype=means.dtype)

    def eps_fn(x, t):
        log_alpha = schedule.log_alpha(t)
        alpha, var = jnp.exp(log_alpha), -jnp.expm1(2.0 * log_alpha)
        noised = alpha**2 * covs + var * eye
        return -jnp.sqrt(var) * _log_prob_and_score(x, weights, alpha * means, noised)[1]

    return eps_fn


def gmm_noised_score_fn(weights: ArrayLike, means: ArrayLike, covs: ArrayLike) -> Callable[[Array, ArrayLike], Array]:
    r"""Exact score of a Gaussian mixture convolved with :math:`\mathcal N(0, \sigma^2 I)`.

    This is the ideal noise-conditional score network of NCSN (Song & Ermon 2019) and the
    ``score_fn(x, sigma)`` that :func:`mcgen.neural.annealed_langevin` takes.

    Returns
    -------
    score_fn
        ``score_fn(x, sigma)`` with ``x`` of shape ``(n, d)`` and scalar ``sigma``.
    """
    weights, means, covs = _check(weights, means, covs)
    eye = jnp.eye(means.shape[-1], dtype=means.dtype)

    def score_fn(x, sigma):
        noised = covs + jnp.asarray(sigma) ** 2 * eye
        return _log_prob_and_score(x, weights, means, noised)[1]

    return score_fn
