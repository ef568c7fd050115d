r"""The replica-exchange pieces of :mod:`mcgen.combinators.tempering`: swaps, the index process,
the schedule update and the stepping-stone estimator.  Everything here works on arrays with a
leading *temperature* axis of length :math:`N` (pairs: :math:`N-1`) and is pure JAX.

Notation.  Replica :math:`k` targets :math:`\log\pi_{\beta_k}(x) = \ell_0(x) + \beta_k V(x)`
with :math:`\ell_0` the log-reference and :math:`V` the log-likelihood (target minus reference).
Swapping the states of replicas :math:`i, i+1` is accepted with probability

.. math::

    \alpha_i = \min\big(1, \exp\{(\beta_{i+1} - \beta_i)(V(x_i) - V(x_{i+1}))\}\big),

computed from the cached :math:`V` of each replica: no log-density evaluation.

**Schedule** (Syed et al. 2022, section 5.1 / Algorithm 4).  With :math:`r_i = 1 - \alpha_i`
averaged over a round, the cumulative barrier :math:`\Lambda(\beta_k) = \sum_{i<k} r_i` is
interpolated (piecewise linearly; monotone) and the new schedule puts :math:`\Lambda` at equal
steps, :math:`\beta'_k = \Lambda^{-1}(\Lambda\,k/(N-1))`, :math:`\Lambda = \Lambda(1)` being
the global communication barrier.  The end points are kept.

**Stepping stone**.  With :math:`\beta_0 = 0` and a normalized reference,

.. math::

    \log Z = \sum_{i=0}^{N-2} \log \mathbb{E}_{\pi_{\beta_i}}
    \big[e^{(\beta_{i+1}-\beta_i) V(x)}\big],

each expectation a running mean (kept as a running log-sum-exp) over the draws of replica
:math:`i`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mcgen.kernels import _random

# Floor on the per-pair rejection rate when inverting the barrier: keeps Lambda strictly
# increasing (so the interpolation is invertible) where a pair never rejected in a round.
_MIN_REJECTION = 1e-4

# Replicas when neither num_temps nor betas is given (Syed et al. find a few times the global
# barrier Lambda suffices; 8 covers Lambda up to about 3).
_DEFAULT_NUM_TEMPS = 8


class SwapStats(NamedTuple):
    """Running sums over the steps since the last reset (the sampling phase after warmup)."""

    rejection_sum: jax.Array  # (N-1,) sum of 1 - alpha_i
    log_stepping_stone: jax.Array  # (N-1,) log sum of exp((b_{i+1} - b_i) V(x_i))
    count: jax.Array  # int32, steps accumulated


class IndexProcess(NamedTuple):
    """Which machine (replica label) sits at each temperature, and its round-trip progress."""

    machine: jax.Array  # (N,) int32: machine at temperature k
    from_bottom: jax.Array  # (N,) bool per machine: visited beta_0 since the start
    visited_top: jax.Array  # (N,) bool per machine: reached beta_{N-1} since its last beta_0
    round_trips: jax.Array  # int32, completed bottom -> top -> bottom trips


def swap_stats_init(num_temps: int, dtype) -> SwapStats:
    return SwapStats(
        jnp.zeros(num_temps - 1, dtype), jnp.full(num_temps - 1, -jnp.inf, dtype), jnp.zeros((), jnp.int32)
    )


def index_init(num_temps: int) -> IndexProcess:
    false = jnp.zeros(num_temps, bool)
    return IndexProcess(jnp.arange(num_temps, dtype=jnp.int32), false, false, jnp.zeros((), jnp.int32))


def swap_accept_prob(betas: jax.Array, log_likelihood: jax.Array) -> jax.Array:
    """:math:`\\alpha_i` of every adjacent pair, shape ``(N-1,)``."""
    log_ratio = (betas[1:] - betas[:-1]) * (log_likelihood[:-1] - log_likelihood[1:])
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    return jnp.exp(jnp.minimum(log_ratio, 0.0))


def propose_swaps(key, accept_prob: jax.Array, step: jax.Array, reversible: bool):
    """Which pairs swap: ``(is_swapped (N-1,), permutation (N,))``.

    Non-reversible (DEO): pairs of the parity of ``step`` are attempted.  Reversible (SEO):
    the parity is a fair coin each step.
    """
    key_parity, key_accept = _random.split(key)
    parity = jax.random.bernoulli(key_parity).astype(jnp.int32) if reversible else step % 2
    pairs = jnp.arange(accept_prob.shape[0], dtype=jnp.int32)
    attempted = (pairs % 2) == parity
    u = _random.uniform(key_accept, accept_prob.shape, accept_prob.dtype)
    swapped = attempted & (u < accept_prob)
    no = jnp.zeros(1, bool)
    up, down = jnp.concatenate([swapped, no]), jnp.concatenate([no, swapped])
    perm = jnp.arange(accept_prob.shape[0] + 1, dtype=jnp.int32) + up.astype(jnp.int32) - down.astype(jnp.int32)
    return swapped, perm


def index_update(index: IndexProcess, perm: jax.Array) -> IndexProcess:
    """Permute machines with the swaps; count a round trip when a machine returns to
    :math:`\\beta_0` after reaching :math:`\\beta_{N-1}`."""
    machine = index.machine[perm]
    top, bottom = machine[-1], machine[0]
    visited_top = index.visited_top.at[top].set(index.visited_top[top] | index.from_bottom[top])
    trip = visited_top[bottom] & index.from_bottom[bottom]
    visited_top = visited_top.at[bottom].set(False)
    from_bottom = index.from_bottom.at[bottom].set(True)
    return IndexProcess(machine, from_bottom, visited_top, index.round_trips + trip.astype(jnp.int32))


def swap_stats_update(stats: SwapStats, betas, log_likelihood, accept_prob) -> SwapStats:
    """Accumulate rejections and stepping-stone terms (at the replicas' pre-swap states)."""
    increment = (betas[1:] - betas[:-1]) * log_likelihood[:-1]
    return SwapStats(
        stats.rejection_sum + (1.0 - accept_prob), jnp.logaddexp(stats.log_stepping_stone, increment), stats.count + 1
    )


def barrier(stats: SwapStats) -> jax.Array:
    """Estimated global communication barrier :math:`\\Lambda = \\sum_i r_i`."""
    n = jnp.maximum(stats.count, 1).astype(stats.rejection_sum.dtype)
    return jnp.sum(stats.rejection_sum) / n


def log_normalizer(stats: SwapStats, betas: jax.Array, valid: bool) -> jax.Array:
    """Stepping-stone :math:`\\log Z`; NaN without a reference or with :math:`\\beta_0 > 0`."""
    n = jnp.maximum(stats.count, 1).astype(stats.log_stepping_stone.dtype)
    estimate = jnp.sum(stats.log_stepping_stone - jnp.log(n))
    ok = (betas[0] == 0.0) & valid & (stats.count > 0)
    return jnp.where(ok, estimate, jnp.nan)


def equalize_barrier(betas: jax.Array, rejection: jax.Array) -> jax.Array:
    """New schedule with equal barrier between neighbours (end points kept)."""
    r = jnp.maximum(rejection, _MIN_REJECTION)
    cumulative = jnp.concatenate([jnp.zeros(1, r.dtype), jnp.cumsum(r)])
    targets = cumulative[-1] * jnp.linspace(0.0, 1.0, betas.shape[0], dtype=r.dtype)
    new = jnp.interp(targets, cumulative, betas)
    return new.at[0].set(betas[0]).at[-1].set(betas[-1])


def round_ends(num_steps: int) -> tuple[int, ...]:
    """Steps (0-based, inclusive) after which the schedule is re-estimated during warmup.

    Rounds double in length (Syed et al. 2022) and the last half of the warmup is one round
    with the schedule fixed, so the replicas' own adaptation settles on the final betas.
    """
    ends, length, t = [], max(1, num_steps // 64), 0
    while t + length <= num_steps // 2:
        t += length
        ends.append(t - 1)
        length *= 2
    return tuple(ends)


def default_betas(num_temps: int, has_reference: bool, min_beta: float) -> tuple:
    """Equally spaced from 0 with a reference; geometric from ``min_beta`` without."""
    if has_reference:
        return tuple(float(b) for b in np.linspace(0.0, 1.0, num_temps))
    return tuple(float(b) for b in np.geomspace(min_beta, 1.0, num_temps))


def check_settings(num_temps, betas, swap) -> tuple[int, tuple[float, ...] | None]:
    """Validated ``(num_temps, betas as a tuple or None)``; ValueError on bad settings."""
    if swap not in ("nonreversible", "reversible"):
        raise ValueError(f"parallel_tempering: swap must be 'nonreversible' or 'reversible', got {swap!r}")
    if betas is not None:
        b = np.asarray(betas, dtype=np.float64)
        if b.ndim != 1 or b.shape[0] < 2 or not np.all(np.diff(b) > 0) or b[-1] != 1.0 or b[0] < 0:
            raise ValueError(f"parallel_tempering: betas must be strictly increasing from >= 0 to 1, got {betas!r}")
        if num_temps is not None and num_temps != b.shape[0]:
            raise ValueError(f"parallel_tempering: num_temps={num_temps} but {b.shape[0]} betas given")
        return b.shape[0], tuple(float(x) for x in b)
    num_temps = _DEFAULT_NUM_TEMPS if num_temps is None else num_temps
    if not isinstance(num_temps, (int, np.integer)) or num_temps < 2:
        raise ValueError(f"parallel_tempering: num_temps must be an integer >= 2, got {num_temps!r}")
    return int(num_temps), None
