"""Pieces shared by the Metropolis–Hastings kernels: the accept step and the cache of settings.

The Metropolis–Hastings rule accepts a proposal :math:`y` from :math:`x` with probability

.. math::

    \\alpha(x, y) = \\min\\Big(1, \\frac{\\pi(y)\\, q(x \\mid y)}{\\pi(x)\\, q(y \\mid x)}\\Big).

A proposal whose log-density is NaN or :math:`+\\infty` is rejected (its acceptance
probability is zero) and flagged in ``Info.is_nonfinite``: a numerical failure of the
log-density never poisons the chain.  :math:`-\\infty` is a legitimate zero density (outside
the support) and is simply rejected.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mcgen.kernels import _random
from mcgen.types import ArrayTree


def is_bad_logdensity(logdensity: jax.Array) -> jax.Array:
    """True where a proposal's log-density is NaN or +inf (counted as a rejected proposal)."""
    return jnp.isnan(logdensity) | (logdensity == jnp.inf)


def mh_accept(key: jax.Array, log_ratio: jax.Array, proposal_logdensity: jax.Array):
    """Decide a Metropolis–Hastings move.

    Parameters
    ----------
    key
        PRNG key for the uniform draw.
    log_ratio
        Log of the Metropolis–Hastings ratio (target ratio times proposal-density ratio).
    proposal_logdensity
        Log-density at the proposal; NaN or +inf there forces a rejection.

    Returns
    -------
    do_accept, accept_prob, is_nonfinite
    """
    is_nonfinite = is_bad_logdensity(proposal_logdensity)
    log_ratio = jnp.where(is_nonfinite | jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    accept_prob = jnp.exp(jnp.minimum(log_ratio, 0.0))
    log_u = jnp.log(_random.uniform(key, dtype=accept_prob.dtype))
    do_accept = log_u < log_ratio
    return do_accept, accept_prob, is_nonfinite


def select(do_accept: jax.Array, new: ArrayTree, old: ArrayTree) -> ArrayTree:
    """``new`` where ``do_accept`` else ``old``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(do_accept, a, b), new, old)


def scalar_logdensity(logdensity_fn: Callable, position: ArrayTree) -> jax.Array:
    """Evaluate ``logdensity_fn`` and insist on a scalar (raised at trace time)."""
    value = jnp.asarray(logdensity_fn(position))
    if value.shape != ():
        raise ValueError(
            f"logdensity_fn must return a scalar, got an array of shape {value.shape}. "
            "Sum the log-density over data points and dimensions (e.g. `jnp.sum(...)`)."
        )
    if not jnp.issubdtype(value.dtype, jnp.floating):
        value = value.astype(jnp.float32)
    return value


def cached_constructor(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Memoize a kernel constructor on its (hashable) settings.

    Two calls with the same settings return the *same* ``Kernel`` object, so ``run_chains``
    can reuse what it compiled for the first.  Unhashable settings (arrays) skip the cache.
    Settings equal in value but not in type are told apart (``typed``): ``True == 1``, and
    without it a call with ``True`` after one with ``1`` would skip its own validation.
    """
    cached = functools.lru_cache(maxsize=256, typed=True)(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return cached(*args, **kwargs)
        except TypeError as err:  # unhashable argument
            if "unhashable" not in str(err):
                raise
            return fn(*args, **kwargs)

    return wrapper


def random_walk_move(
    key, position: ArrayTree, logdensity: jax.Array, logdensity_fn: Callable, perturb: Callable[[jax.Array], jax.Array]
):
    """One symmetric random-walk Metropolis move on the flattened position.

    ``perturb(z)`` maps a standard normal vector ``z`` (shape ``(d,)``) to the increment.
    Returns ``(position, logdensity, accept_prob, is_accepted, is_nonfinite)``.
    """
    key_proposal, key_accept = _random.split(key)
    flat, unravel = ravel_pytree(position)
    noise = _random.normal(key_proposal, flat.shape, flat.dtype)
    proposal = unravel(flat + perturb(noise))
    proposal_logdensity = scalar_logdensity(logdensity_fn, proposal)
    do_accept, accept_prob, is_nonfinite = mh_accept(key_accept, proposal_logdensity - logdensity, proposal_logdensity)
    new_position, new_logdensity = select(do_accept, (proposal, proposal_logdensity), (position, logdensity))
    return new_position, new_logdensity, accept_prob, do_accept, is_nonfinite
