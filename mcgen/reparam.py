r"""Reparameterized draws: random variables written as differentiable functions of noise.

Writing :math:`x = g_\theta(\varepsilon)` with noise :math:`\varepsilon` free of
:math:`\theta` lets gradients of expectations pass inside the integral (the pathwise or
reparameterization estimator):

.. math::

    \nabla_\theta \, E[f(x)] = E_\varepsilon[\nabla_\theta f(g_\theta(\varepsilon))] .

* :func:`gaussian`: :math:`x = \mu + \sigma \varepsilon`, :math:`\varepsilon \sim N(0, 1)`.
* :func:`gumbel_max`: with i.i.d. standard Gumbel :math:`G_k = -\log(-\log U_k)`,
  :math:`\arg\max_k (\ell_k + G_k)` is an *exact* categorical draw with probabilities
  :math:`\operatorname{softmax}(\ell)` (Gumbel 1954; Maddison et al. 2014).  It is not
  differentiable in :math:`\ell`.
* :func:`gumbel_softmax`: the relaxation :math:`y = \operatorname{softmax}((\ell + G)/\tau)`
  (Jang et al. 2017; Maddison et al. 2017), a point of the simplex that tends to the one-hot
  Gumbel-max draw as :math:`\tau \to 0`.  Its gradients are exact for the relaxed variable and
  biased for the discrete one.  ``hard=True`` is the straight-through estimator: the forward
  value is the exact one-hot draw, the gradient is that of the relaxed :math:`y`.

References
----------
D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes.
E. Jang, S. Gu, B. Poole (2017). Categorical reparameterization with Gumbel-softmax.
C. J. Maddison, A. Mnih, Y. W. Teh (2017). The Concrete distribution.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from mcgen.types import Array, ArrayLike, PRNGKey

__all__ = ["gaussian", "gumbel_max", "gumbel_softmax"]


def _as_float(x: ArrayLike, name: str) -> Array:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return x
    if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
        return x.astype(jnp.result_type(float))
    raise TypeError(f"{name} must be a real array, got dtype {x.dtype}")


def _check_positive(x: Array, name: str, allow_zero: bool) -> None:
    """Raise ``ValueError`` for values out of range, when they are known (not traced)."""
    if isinstance(x, Tracer):
        return
    values = np.asarray(x)
    bad = ~(values >= 0) if allow_zero else ~(values > 0)
    if np.any(bad):
        need = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {need} (and not NaN), got {values[bad].ravel()[:3]}")


def gaussian(key: PRNGKey, mu: ArrayLike, sigma: ArrayLike, shape: Sequence[int] = ()) -> Array:
    r"""Reparameterized normal draw :math:`\mu + \sigma \varepsilon`.

    Parameters
    ----------
    key
        PRNG key.
    mu, sigma
        Mean and standard deviation (broadcast together); ``sigma >= 0``.
    shape
        Sample shape prepended to the broadcast shape of ``mu`` and ``sigma``.

    Returns
    -------
    Array of shape ``(*shape, *broadcast(mu, sigma).shape)``, differentiable in ``mu`` and
    ``sigma`` with :math:`\partial x/\partial\mu = 1`, :math:`\partial x/\partial\sigma = \varepsilon`.
    """
    mu, sigma = _as_float(mu, "mu"), _as_float(sigma, "sigma")
    _check_positive(sigma, "sigma", allow_zero=True)
    dtype = jnp.promote_types(mu.dtype, sigma.dtype)
    eps = jax.random.normal(key, tuple(shape) + jnp.broadcast_shapes(mu.shape, sigma.shape), dtype)
    return mu.astype(dtype) + sigma.astype(dtype) * eps


def _perturbed(key: PRNGKey, logits: ArrayLike, shape: Sequence[int]) -> Array:
    logits = _as_float(logits, "logits")
    if logits.ndim == 0:
        raise ValueError("logits must have at least one axis (the categories)")
    noise = jax.random.gumbel(key, tuple(shape) + logits.shape, logits.dtype)
    return logits + noise


def gumbel_max(key: PRNGKey, logits: ArrayLike, axis: int = -1, shape: Sequence[int] = ()) -> Array:
    r"""Exact categorical draw :math:`\arg\max_k(\ell_k + G_k)` with Gumbel noise :math:`G`.

    Parameters
    ----------
    key
        PRNG key.
    logits
        Unnormalized log-probabilities; the categories lie along ``axis``.
    axis
        Category axis of ``logits``.
    shape
        Sample shape prepended to ``logits.shape`` before reducing ``axis``.

    Returns
    -------
    Integer array: ``logits.shape`` without ``axis``, prefixed by ``shape``.
    """
    axis = axis if axis < 0 else axis - jnp.ndim(logits)  # count from the end: shape is prepended
    return jnp.argmax(_perturbed(key, logits, shape), axis=axis)


def gumbel_softmax(
    key: PRNGKey,
    logits: ArrayLike,
    temperature: Any,
    hard: bool = False,
    axis: int = -1,
    shape: Sequence[int] = (),
) -> Array:
    r"""Relaxed one-hot draw :math:`\operatorname{softmax}((\ell + G)/\tau)`.

    Parameters
    ----------
    key
        PRNG key (the same key gives the same Gumbel noise as :func:`gumbel_max`).
    logits
        Unnormalized log-probabilities; categories along ``axis``.
    temperature
        :math:`\tau > 0`; small values approach one-hot draws but give high-variance gradients.
    hard
        Return the exact one-hot Gumbel-max draw in the forward pass while differentiating
        through the relaxed draw (straight-through estimator).
    axis
        Category axis of ``logits``.
    shape
        Sample shape prepended to ``logits.shape``.

    Returns
    -------
    Array of shape ``(*shape, *logits.shape)`` on the probability simplex along ``axis``.
    """
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be a bool, got {type(hard).__name__}")
    temperature = _as_float(temperature, "temperature")
    _check_positive(temperature, "temperature", allow_zero=False)
    axis = axis if axis < 0 else axis - jnp.ndim(logits)
    perturbed = _perturbed(key, logits, shape)
    soft = jax.nn.softmax(perturbed / temperature.astype(perturbed.dtype), axis=axis)
    if not hard:
        return soft
    one_hot = jax.nn.one_hot(jnp.argmax(perturbed, axis=axis), soft.shape[axis], axis=axis, dtype=soft.dtype)
    # forward value: exactly one_hot (soft - soft == 0); gradient: that of soft
    return one_hot + (soft - jax.lax.stop_gradient(soft))
