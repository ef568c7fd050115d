"""Shared pieces of the direct samplers: argument checks and batched log-density ratios.

A *proposal* is any object with ``sample(key, shape)`` and ``log_prob(x)``; every NumPyro
distribution qualifies.  Draws may be pytrees; the leading axis of every leaf is the draw axis.
``log_prob`` and the target's log-density are evaluated one draw at a time under ``jax.vmap``,
so a proposal whose ``log_prob`` only handles a single point works too.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from mcgen.types import Array, ArrayTree

__all__ = ["check_positive_int", "check_proposal", "is_concrete", "log_ratios"]


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as a Python ``int``, raising a clear error when it is not a positive one."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(
                f"{name} must be a Python int (it fixes an array shape), got {type(value).__name__}"
            ) from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def check_proposal(log_target: Callable, proposal: Any) -> None:
    """Raise ``TypeError`` when ``log_target`` is not callable or ``proposal`` is not a proposal."""
    if not callable(log_target):
        raise TypeError(f"log_target must be a function x -> scalar log-density, got {type(log_target).__name__}")
    missing = [m for m in ("sample", "log_prob") if not callable(getattr(proposal, m, None))]
    if missing:
        raise TypeError(
            f"proposal must have sample(key, shape) and log_prob(x) methods (a NumPyro "
            f"distribution works); {type(proposal).__name__} lacks {', '.join(missing)}"
        )


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds a value now (not a tracer inside ``jit`` / ``vmap``)."""
    return not any(isinstance(leaf, Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _check_scalar_per_draw(fn: Callable, draws: ArrayTree, what: str, fix: str) -> None:
    """Raise ``ValueError`` unless ``fn`` maps one draw to a scalar (checked on shapes only)."""
    one = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype), draws)
    out = jax.eval_shape(fn, one)
    if not hasattr(out, "shape") or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{what} must return one scalar per draw, got shape {shape}; {fix}")


def log_ratios(log_target: Callable, proposal: Any, draws: ArrayTree) -> tuple[Array, Array]:
    """``log_target(x_i)`` and ``proposal.log_prob(x_i)`` for every draw ``x_i``.

    Returns
    -------
    log_p, log_q
        Arrays of shape ``(num_draws,)``.
    """
    _check_scalar_per_draw(log_target, draws, "log_target", "sum over the event dimensions inside log_target")
    _check_scalar_per_draw(
        proposal.log_prob,
        draws,
        "proposal.log_prob",
        "for a NumPyro distribution with a batch shape use `.to_event()` so that it is one "
        "distribution over the whole vector",
    )
    log_p = jax.vmap(log_target)(draws)
    log_q = jax.vmap(proposal.log_prob)(draws)
    return jnp.asarray(log_p), jnp.asarray(log_q)
