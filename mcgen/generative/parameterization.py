r"""Converters between the noise, score and data parameterizations of a diffusion model.

With :math:`x_t = \alpha_t x_0 + \sigma_t \varepsilon` (a VP
:class:`~mcgen.generative.NoiseSchedule`), a network may predict the noise
:math:`\hat\varepsilon(x_t, t)`, the clean data :math:`\hat x_0(x_t, t)` or the score
:math:`\nabla \log p_t(x_t)`.  At the optimum they are tied by Tweedie's formula:

.. math::

    \hat x_0 = \frac{x_t - \sigma_t \hat\varepsilon}{\alpha_t}, \qquad
    \nabla \log p_t(x_t) = -\frac{\hat\varepsilon}{\sigma_t}.

:func:`~mcgen.generative.sample_diffusion` takes an ``eps_fn``; the ``*_fn_to_eps_fn``
wrappers turn a score or data network into one.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from mcgen.generative.schedules import NoiseSchedule
from mcgen.types import Array, ArrayLike

__all__ = [
    "eps_to_x0",
    "x0_to_eps",
    "eps_to_score",
    "score_to_eps",
    "score_fn_to_eps_fn",
    "x0_fn_to_eps_fn",
    "eps_fn_to_score_fn",
    "eps_fn_to_x0_fn",
]


def eps_to_x0(x: ArrayLike, eps: ArrayLike, t: ArrayLike, schedule: NoiseSchedule) -> Array:
    r""":math:`\hat x_0 = (x_t - \sigma_t \hat\varepsilon) / \alpha_t`."""
    return (jnp.asarray(x) - schedule.sigma(t) * jnp.asarray(eps)) / schedule.alpha(t)


def x0_to_eps(x: ArrayLike, x0: ArrayLike, t: ArrayLike, schedule: NoiseSchedule) -> Array:
    r""":math:`\hat\varepsilon = (x_t - \alpha_t \hat x_0) / \sigma_t`."""
    return (jnp.asarray(x) - schedule.alpha(t) * jnp.asarray(x0)) / schedule.sigma(t)


def eps_to_score(eps: ArrayLike, t: ArrayLike, schedule: NoiseSchedule) -> Array:
    r""":math:`\nabla \log p_t = -\hat\varepsilon / \sigma_t`."""
    return -jnp.asarray(eps) / schedule.sigma(t)


def score_to_eps(score: ArrayLike, t: ArrayLike, schedule: NoiseSchedule) -> Array:
    r""":math:`\hat\varepsilon = -\sigma_t \nabla \log p_t`."""
    return -schedule.sigma(t) * jnp.asarray(score)


def score_fn_to_eps_fn(score_fn: Callable, schedule: NoiseSchedule) -> Callable:
    """Wrap ``score_fn(x, t, *args)`` into an ``eps_fn(x, t, *args)``."""
    return lambda x, t, *args: score_to_eps(score_fn(x, t, *args), t, schedule)


def x0_fn_to_eps_fn(x0_fn: Callable, schedule: NoiseSchedule) -> Callable:
    """Wrap a data predictor ``x0_fn(x, t, *args)`` into an ``eps_fn(x, t, *args)``."""
    return lambda x, t, *args: x0_to_eps(x, x0_fn(x, t, *args), t, schedule)


def eps_fn_to_score_fn(eps_fn: Callable, schedule: NoiseSchedule) -> Callable:
    """Wrap ``eps_fn(x, t, *args)`` into a ``score_fn(x, t, *args)``."""
    return lambda x, t, *args: eps_to_score(eps_fn(x, t, *args), t, schedule)


def eps_fn_to_x0_fn(eps_fn: Callable, schedule: NoiseSchedule) -> Callable:
    """Wrap ``eps_fn(x, t, *args)`` into a data predictor ``x0_fn(x, t, *args)``."""
    return lambda x, t, *args: eps_to_x0(x, eps_fn(x, t, *args), t, schedule)
