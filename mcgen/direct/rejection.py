r"""Rejection sampling, vectorized: batches of proposals inside one ``lax.while_loop``.

Given an unnormalized target density :math:`\tilde p` and a proposal :math:`q` with a bound
:math:`M` such that :math:`\tilde p(x) \le M q(x)` everywhere, draw :math:`x \sim q` and
:math:`u \sim \mathcal U(0, 1)` and keep :math:`x` when

.. math::

    \log u < \log \tilde p(x) - \log q(x) - \log M .

Kept draws are exact, independent draws from :math:`p = \tilde p / Z`, and each proposal is
kept with probability :math:`Z / M` (:math:`1/M` for a normalized target).

Here ``batch_size`` proposals are drawn and tested at once; the accepted ones are written, in
order, into a buffer of fixed shape ``(num_samples, ...)`` until it is full.  Acceptances past
the last free slot are dropped, and ``num_proposals`` counts proposals up to and including the
one that filled the buffer, so the output and the count are exactly those of the one-at-a-time
sampler (``num_proposals`` is negative-binomial with success probability :math:`Z/M`).  The
whole sampler is jit- and vmap-compatible.

When ``log_M`` is not given it is *estimated*: the largest :math:`\log\tilde p - \log q` among
``num_pilot`` proposal draws, refined by BFGS from the ``num_starts`` best of them.  An estimate
can fall short of the true supremum (a missed mode), so the sampler says that it estimated, and
every run records the largest observed :math:`\log\tilde p - \log q - \log M`; a positive value
means the bound was violated, the draws over-represent that region, and a warning reports the
excess.

References
----------
J. von Neumann (1951). Various techniques used in connection with random digits.
C. P. Robert and G. Casella (2004). Monte Carlo Statistical Methods, 2nd ed., section 2.3.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.optimize import minimize

from mcgen.direct._proposal import check_positive_int, check_proposal, is_concrete, log_ratios
from mcgen.types import Array, ArrayTree, PRNGKey

__all__ = ["EstimatedBoundWarning", "RejectionBoundWarning", "RejectionResult", "rejection_sample"]

_BOUND_TOLERANCE = 1e-3
"""Observed log-ratio excess ignored as rounding: float32 log-densities near 1e2 carry errors of
about 1e-5, and an excess of 1e-3 changes the accepted density by at most 0.1% where it occurs."""


class RejectionBoundWarning(UserWarning):
    """A proposal had ``log_target - log_q > log_M``: the bound was wrong and draws are biased."""


class EstimatedBoundWarning(UserWarning):
    """``log_M`` was not given and was estimated numerically."""


class RejectionResult(NamedTuple):
    """What :func:`rejection_sample` returns.

    Attributes
    ----------
    samples
        Pytree of accepted draws, leaves of shape ``(num_samples, *event_shape)``.  When
        ``max_proposals`` ran out first, rows from ``num_accepted`` on are NaN (0 for integers).
    num_accepted
        Number of filled rows (``num_samples`` unless ``max_proposals`` ran out).
    num_proposals
        Proposals drawn up to and including the one that filled the last row.
    acceptance_rate
        ``num_accepted / num_proposals``; estimates :math:`Z / M`.
    log_M
        The log bound used (given or estimated).
    max_log_excess
        Largest observed ``log_target - log_q - log_M``; above 0 the bound was violated.
    """

    samples: ArrayTree
    num_accepted: Array
    num_proposals: Array
    acceptance_rate: Array
    log_M: Array
    max_log_excess: Array


def _estimate_log_M(key: PRNGKey, log_target: Callable, proposal: Any, num_pilot: int, num_starts: int) -> Array:
    """Largest ``log_target - log_q`` over pilot draws, refined by BFGS from the best of them."""
    draws = proposal.sample(key, (num_pilot,))
    log_p, log_q = log_ratios(log_target, proposal, draws)
    pilot = jnp.where(jnp.isfinite(log_p - log_q), log_p - log_q, -jnp.inf)
    leaves = jax.tree_util.tree_leaves(draws)
    if not all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in leaves):
        return jnp.max(pilot)  # discrete draws: no gradient to follow
    _, best = jax.lax.top_k(pilot, min(num_starts, num_pilot))
    starts = jax.tree_util.tree_map(lambda leaf: leaf[best], draws)
    _, unravel = ravel_pytree(jax.tree_util.tree_map(lambda leaf: leaf[0], draws))

    def log_ratio(flat):
        x = unravel(flat)
        return log_target(x) - proposal.log_prob(x)

    def refine(x0):
        flat0, _ = ravel_pytree(x0)
        result = minimize(lambda z: -log_ratio(z), flat0, method="BFGS")
        value = log_ratio(result.x)
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    refined = jax.vmap(refine)(starts)
    return jnp.maximum(jnp.max(pilot), jnp.max(refined))


class _LoopCarry(NamedTuple):
    """State of the proposal loop of :func:`rejection_sample`."""

    batch: Array  # batches of proposals drawn so far
    key: PRNGKey
    buffer: ArrayTree  # accepted draws, rows from num_accepted on still unfilled
    num_accepted: Array
    num_proposals: Array  # proposals up to and including the one that filled the last row
    max_log_excess: Array  # largest log_target - log_q - log_M seen (> 0: bound violated)


def _warn_excess(excess: Any, num_accepted: Any, num_samples: int) -> None:
    excess, num_accepted = float(excess), int(num_accepted)
    if excess > _BOUND_TOLERANCE:
        warnings.warn(
            f"rejection bound violated: a proposal had log_target - log_q - log_M = {excess:.4g} "
            f"> 0, so M is too small by a factor of at least {np.exp(excess):.4g} and the draws "
            f"are biased; pass a larger log_M (by at least {excess:.4g}).",
            RejectionBoundWarning,
            stacklevel=3,
        )
    if num_accepted < num_samples:
        warnings.warn(
            f"max_proposals ran out with {num_accepted} of {num_samples} draws accepted; the "
            f"remaining rows are NaN.  Raise max_proposals or use a tighter proposal.",
            RuntimeWarning,
            stacklevel=3,
        )


def rejection_sample(
    key: PRNGKey,
    log_target: Callable[[ArrayTree], Array],
    proposal: Any,
    log_M: Any = None,
    *,
    num_samples: int,
    batch_size: int | None = None,
    max_proposals: int | None = None,
    num_pilot: int = 1024,
    num_starts: int = 8,
) -> RejectionResult:
    """Draw exactly ``num_samples`` independent draws from ``exp(log_target)`` by rejection.

    Parameters
    ----------
    key
        PRNG key.
    log_target
        ``log_target(x) -> scalar``: log of the target density, normalized or not.
    proposal
        Object with ``sample(key, shape)`` and ``log_prob(x)`` (e.g. a NumPyro distribution).
    log_M
        Log of a bound with ``log_target(x) - log_prob(x) <= log_M`` for all ``x``.  ``None``
        estimates it (see the module docstring) and emits an :class:`EstimatedBoundWarning`.
    num_samples
        Number of accepted draws returned (the output's leading axis).
    batch_size
        Proposals tested per loop iteration; default ``min(num_samples, 65536)``.
    max_proposals
        Stop after about this many proposals even if the buffer is not full (guards against a
        near-zero acceptance rate); default ``10_000 * num_samples``, capped by the integer range.
    num_pilot, num_starts
        Pilot draws and BFGS starts used when estimating ``log_M``.

    Returns
    -------
    RejectionResult
        ``samples``, ``num_accepted``, ``num_proposals``, ``acceptance_rate``, ``log_M`` and
        ``max_log_excess``.  Outside ``jit`` a violated bound warns here; inside ``jit`` check
        ``max_log_excess > 0`` yourself.

    Examples
    --------
    >>> import jax, numpyro.distributions as dist
    >>> log_p = lambda x: dist.Normal(1.0, 0.5).log_prob(x)
    >>> res = rejection_sample(jax.random.key(0), log_p, dist.Normal(0.0, 2.0), 1.6, num_samples=1000)
    >>> res.samples.shape
    (1000,)
    """
    check_proposal(log_target, proposal)
    num_samples = check_positive_int(num_samples, "num_samples")
    batch_size = check_positive_int(min(num_samples, 65536) if batch_size is None else batch_size, "batch_size")
    int_max = int(jnp.iinfo(jnp.asarray(0).dtype).max) - batch_size
    max_proposals = min(
        int_max,
        10_000 * num_samples if max_proposals is None else check_positive_int(max_proposals, "max_proposals"),
    )
    max_batches = max(1, -(-max_proposals // batch_size))
    key_bound, key_loop = jax.random.split(key)
    if log_M is None:
        warnings.warn(
            f"log_M not given: estimating it as the largest log_target - log_q over {num_pilot} "
            f"proposal draws refined by BFGS from {num_starts} starts.  An estimate can miss a "
            "mode; pass log_M for an exact sampler (violations are still detected and reported).",
            EstimatedBoundWarning,
            stacklevel=2,
        )
        log_M = _estimate_log_M(key_bound, log_target, proposal, num_pilot, num_starts)
    elif is_concrete(log_M):
        value = np.asarray(log_M)
        if value.shape != () or not np.isfinite(value):
            raise ValueError(
                f"log_M must be a finite scalar (the log of a bound M with p(x) <= M q(x)), "
                f"got {value!r}; pass None to estimate it"
            )
    draws_shape = jax.eval_shape(lambda k: proposal.sample(k, (batch_size,)), key_loop)
    buffer = jax.tree_util.tree_map(
        lambda s: jnp.full(
            (num_samples,) + s.shape[1:], jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact) else 0, s.dtype
        ),
        draws_shape,
    )
    log_M = jnp.asarray(log_M, dtype=jnp.result_type(float))
    index = jnp.arange(batch_size)

    def cond(carry: _LoopCarry):
        return (carry.num_accepted < num_samples) & (carry.batch < max_batches)

    def body(carry: _LoopCarry):
        num_acc = carry.num_accepted
        key, key_draw, key_u = jax.random.split(carry.key, 3)
        draws = proposal.sample(key_draw, (batch_size,))
        log_p, log_q = log_ratios(log_target, proposal, draws)
        log_excess = log_p - log_q - log_M
        log_u = -jax.random.exponential(key_u, (batch_size,), dtype=log_excess.dtype)
        accept = log_u < log_excess  # NaN ratios are rejected
        slot = num_acc + jnp.cumsum(accept) - 1
        keep = accept & (slot < num_samples)
        filled = num_acc + jnp.sum(accept) >= num_samples
        last = jnp.argmax(keep & (slot == num_samples - 1))
        used = jnp.where(filled, last + 1, batch_size)
        target_rows = jnp.where(keep, slot, num_samples)  # out of range -> dropped
        buffer = jax.tree_util.tree_map(lambda buf, new: buf.at[target_rows].set(new, mode="drop"), carry.buffer, draws)
        seen = jnp.where((index < used) & ~jnp.isnan(log_excess), log_excess, -jnp.inf)
        return _LoopCarry(
            batch=carry.batch + 1,
            key=key,
            buffer=buffer,
            num_accepted=jnp.minimum(num_acc + jnp.sum(keep), num_samples),
            num_proposals=carry.num_proposals + used,
            max_log_excess=jnp.maximum(carry.max_log_excess, jnp.max(seen)),
        )

    zero = jnp.zeros((), dtype=int)
    start = _LoopCarry(
        batch=zero,
        key=key_loop,
        buffer=buffer,
        num_accepted=zero,
        num_proposals=zero,
        max_log_excess=jnp.asarray(-jnp.inf, log_M.dtype),
    )
    end = jax.lax.while_loop(cond, body, start)
    samples, num_acc, num_prop, excess = end.buffer, end.num_accepted, end.num_proposals, end.max_log_excess
    rate = num_acc.astype(log_M.dtype) / jnp.maximum(num_prop, 1).astype(log_M.dtype)
    result = RejectionResult(samples, num_acc, num_prop, rate, log_M, excess)
    if is_concrete((excess, num_acc)):
        _warn_excess(excess, num_acc, num_samples)
    else:
        jax.debug.callback(functools.partial(_warn_excess, num_samples=num_samples), excess, num_acc)
    return result
