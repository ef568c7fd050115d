"""Dual averaging (Nesterov 2009) for a scalar tunable that controls an acceptance rate.

Hoffman & Gelman (2014, section 3.2.1) adapt the log step size :math:`\\log\\epsilon` so that
the mean acceptance statistic approaches a target :math:`\\delta`:

.. math::

    \\bar H_t = (1 - \\tfrac{1}{t + t_0}) \\bar H_{t-1} + \\tfrac{1}{t + t_0}(\\delta - a_t),
    \\qquad
    \\log\\epsilon_t = \\mu - \\tfrac{\\sqrt{t}}{\\gamma} \\bar H_t,
    \\qquad
    \\log\\bar\\epsilon_t = t^{-\\kappa}\\log\\epsilon_t + (1 - t^{-\\kappa})\\log\\bar\\epsilon_{t-1}.

The iterate :math:`\\epsilon_t` explores; the weighted average :math:`\\bar\\epsilon_t` is used
after warmup.  The defaults :math:`\\gamma = 0.05, t_0 = 10, \\kappa = 0.75` are those of the
paper (and of Stan).  mcgen uses the same scheme for the random-walk scale, where larger
values lower the acceptance rate just as a larger step size does.

References
----------
Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn Sampler. JMLR 15, 1593–1623.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class DualAveragingState(NamedTuple):
    log_x: jax.Array  # current iterate (log of the tunable)
    log_x_avg: jax.Array  # averaged iterate, used once adaptation ends
    h_avg: jax.Array  # running mean of (target - accept_prob)
    count: jax.Array  # number of updates so far
    mu: jax.Array  # shrinkage point


def da_init(x0: jax.Array, mu_factor: float = 10.0) -> DualAveragingState:
    """Start from ``x0``; the iterates shrink towards ``log(mu_factor * x0)``."""
    log_x = jnp.log(jnp.asarray(x0))
    zero = jnp.zeros_like(log_x)
    return DualAveragingState(log_x, zero, zero, jnp.zeros((), jnp.int32), log_x + jnp.log(mu_factor))


def da_update(
    state: DualAveragingState,
    accept_prob: jax.Array,
    target: float,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> DualAveragingState:
    """One dual-averaging update from the latest acceptance statistic."""
    count = state.count + 1
    t = count.astype(state.log_x.dtype)
    accept_prob = jnp.nan_to_num(jnp.asarray(accept_prob, state.log_x.dtype), nan=0.0)
    w = 1.0 / (t + t0)
    h_avg = (1.0 - w) * state.h_avg + w * (target - accept_prob)
    log_x = state.mu - jnp.sqrt(t) / gamma * h_avg
    eta = t ** (-kappa)
    log_x_avg = eta * log_x + (1.0 - eta) * state.log_x_avg
    return DualAveragingState(log_x, log_x_avg, h_avg, count, state.mu)


def da_final(state: DualAveragingState) -> jax.Array:
    """The adapted value: the averaged iterate (the current one if no update happened)."""
    return jnp.exp(jnp.where(state.count > 0, state.log_x_avg, state.log_x))
