"""Stan's windowed warmup: dual-averaging step size and a Welford mass matrix, by schedule.

The gradient kernels (MALA, HMC, NUTS) have two kinds of tunables.  The step size is *fast*:
dual averaging (:mod:`mcgen.adaptation.dual_averaging`) drives the mean acceptance
statistic to its target within tens of iterations.  The inverse mass matrix is *slow*: it is
the posterior (co)variance, and estimating it needs hundreds of draws from near the typical
set.  Stan's schedule (Stan Reference Manual, "HMC algorithm parameters") interleaves them:

1. an initial fast buffer (75 steps by default): step size only, while the chain travels
   from its starting point to the typical set;
2. slow windows of doubling length (25, 50, 100, ...), the last stretched to end at the
   final buffer: draws are accumulated with Welford's algorithm and, at the end of each
   window, the inverse mass matrix becomes their regularized covariance

   .. math::

       A = \\frac{n}{n + 5}\\, \\hat\\Sigma + \\frac{5}{n + 5}\\, 10^{-3} I ,

   the estimate is reset, the step size is re-initialized by Stan's heuristic for the new
   metric and dual averaging restarts from it (the heuristic runs on the warmup's own
   transitions: :class:`StepSizeSearch`);
3. a final fast buffer (50 steps): step size only, for the final metric.

With fewer than 150 warmup steps the buffers shrink to 15% / 75% / 10% of them (Stan's
rule); with fewer than 20 only the step size is adapted.  After warmup the averaged dual
averaging iterate is the step size, and both tunables are frozen.

Everything is data: :func:`window_schedule` turns the schedule into two boolean arrays
indexed by the warmup step, so the warmup step has no Python control flow.

Two variations, both off by default.  The *estimator* set at a window end can be the
Fisher-divergence diagonal of the window's draws and gradients
(:func:`~mcgen.adaptation.welford.fisher_diagonal`, ``estimator="fisher"``) instead of the
draws' covariance.  The *schedule* can be :func:`early_schedule` (``schedule="early"``,
after nutpie, following Stan's initial buffer of step-size adaptation alone): the metric is
set often (after every step; every 20 steps and after each switch for the costly low-rank
fit) from a foreground estimate that a background one replaces every 10 draws, later after
windows of 80, 120, 180, ... draws, so it follows the chain from its first draws in the
typical set and ends on a long window; dual averaging then runs
through, restarting only after the first update and when the metric freezes for the final
15% of the warmup.  Each warmup step records its step size
and gradient count, and each update the metric's diagonal, in a :class:`WarmupTrace`.

References
----------
Stan Development Team. Stan Reference Manual, section "HMC algorithm parameters".
Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn Sampler. JMLR 15, 1593–1623.
Seyboldt, A., Carlson, E. and Carpenter, B. (2026). Preconditioning Hamiltonian Monte Carlo by
minimizing Fisher Divergence. arXiv:2603.18845.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.adaptation.ensemble import _same_in_every_chain, chain_gather, chain_mean, requested_chains
from mcgen.adaptation.low_rank import (
    LOW_RANK_GAMMA,
    LOW_RANK_MIN_DRAWS,
    LowRankBuffer,
    buffer_add,
    buffer_init,
    buffer_recent,
    buffer_switch,
    buffer_weights,
    fit_span,
    is_low_rank,
    low_rank_diagonal,
    low_rank_estimate,
    one_chain_at_a_time,
    run_if,
)
from mcgen.adaptation.welford import WelfordState, fisher_diagonal, welford_covariance, welford_init, welford_update
from mcgen.types import Warmup, WarmupParts, isolated_step


def window_schedule(
    num_steps: int, initial_buffer: int = 75, final_buffer: int = 50, first_window: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """Stan's adaptation schedule as two boolean arrays of length ``num_steps``.

    Returns
    -------
    slow
        True at the steps whose draws feed the mass-matrix estimate.
    window_end
        True at the last step of each slow window (the metric is updated after it).

    Example
    -------
    >>> slow, end = window_schedule(1000)
    >>> np.flatnonzero(end).tolist()
    [99, 149, 249, 449, 949]
    """
    slow = np.zeros(num_steps, bool)
    end = np.zeros(num_steps, bool)
    if num_steps < 20:
        return slow, end
    if initial_buffer + first_window + final_buffer > num_steps:
        initial_buffer = int(0.15 * num_steps)
        final_buffer = int(0.1 * num_steps)
        first_window = num_steps - initial_buffer - final_buffer
    last = num_steps - final_buffer  # first step of the final buffer
    start, size = initial_buffer, first_window
    while start < last:
        stop = start + size
        if stop + 2 * size > last:  # the next window would not fit: stretch this one
            stop = last
        slow[start:stop] = True
        end[stop - 1] = True
        start, size = stop, 2 * size
    return slow, end


class WarmupTrace(NamedTuple):
    """What a warmup did, step by step: its cost and the path of its tunables (for plots).

    Kept in the warmup state (so a checkpoint carries it) and handed to the user as
    ``Result.warmup_stats``.  Cheap by design: two scalars per step and one vector of
    length ``d`` per slow window.
    """

    step_size: jax.Array  # (num_steps,) the step size of each warmup transition
    num_grad_evals: jax.Array  # (num_steps,) gradients the transition spent (the step-size search runs on transitions)
    window_end: jax.Array  # (num_windows,) int32: the warmup step after which each metric was set
    inverse_mass: jax.Array  # (num_windows, d): the diagonal of the inverse mass set at each window end
    restarted: jax.Array  # (num_steps,) bool: the chain went back to its start after this step (collapse guard)


def early_schedule(
    num_steps: int,
    early_window: float = 0.3,
    final_window: float = 0.15,
    early_switch: int = 10,
    late_switch: int = 80,
    update_every: int = 1,
    initial_buffer: int | None = None,
    window_growth: float = 1.5,
) -> dict[str, np.ndarray]:
    """An early, frequent schedule in the manner of nutpie, as boolean arrays over the steps.

    The first ``initial_buffer`` steps (default: Stan's 75, or 15% of a shorter warmup) adapt
    the step size alone, at the starting metric, while the chain travels to the typical set:
    a metric fitted to the draws of that transient can trap a chain (below).  From there
    every draw before the final ``final_window`` share of the warmup feeds two estimates, a
    foreground and a background one; the metric is set from the foreground every
    ``update_every`` steps (once it holds 3 draws; 1: after *every* step), at the step after
    each switch and at the last step before the final share, and the background replaces the
    foreground (and restarts empty) each time it holds ``early_switch`` draws in the first
    ``early_window`` share of the warmup; later it holds ``late_switch`` draws at the first
    switch and ``window_growth`` times as many at each next one (80, 120, 180, ...), a switch
    being made only where the next window fits before the final share.  So the metric follows
    the chain from its first steps in the typical set on short windows, and the final one
    rests on long ones: of a 1000-step warmup, the 475 draws since step 375 (with constant
    windows, ``window_growth=1``, the 235 since step 615).  The final share adapts the step
    size only, for the final metric.  A costly estimate (the low-rank fit:
    eigen-decompositions) takes ``update_every`` 20, as nutpie does; a diagonal one costs
    nothing and is set after every step.

    The growing windows are nutpie's since 2026 (its ``mass_matrix_window_growth``, 1.5).  On
    the Inference Gym's curved 2-d banana they took the low-rank default from 0.71 to 1.21
    times BlackJAX's effective draws per gradient (median of 8 runs of 4 chains), and on the
    benchmark suite they changed no median (``benchmarks/bench_gym.py``; the docs have both
    tables).

    nutpie starts at once.  Here, without the buffer, on the Inference Gym's log-Gaussian Cox
    process (one run in three), a chain whose metric was fitted in its first steps to its way
    in went on into a region where the float32 log-density is rounding noise and stayed there
    (step size 1e-4, 1,023 leapfrog steps per draw, R-hat 1.5).  After the initial buffer the
    chains stand where Stan's windowed warmup has them when its first window opens, and none
    of 24 ran away (6 runs).

    Returns
    -------
    dict
        ``collect`` (draw feeds both estimates), ``update`` (metric set after the step),
        ``switch`` (background replaces foreground after it), ``search`` (run the step-size
        heuristic before the next step: after the first update), ``freeze`` (last update:
        dual averaging restarts from its average for the final share).

    Example
    -------
    >>> sched = early_schedule(1000)
    >>> int(np.flatnonzero(sched["collect"])[0]), np.flatnonzero(sched["switch"])[[0, 1, -3, -2, -1]].tolist()
    (75, [84, 94, 294, 374, 494])
    >>> int(np.flatnonzero(sched["freeze"])[0])
    849
    >>> np.flatnonzero(early_schedule(100, update_every=20)["update"]).tolist()
    [17, 25, 45, 65, 84]
    """
    steps = np.arange(num_steps)
    names = ("collect", "update", "switch", "search", "freeze")
    out = {name: np.zeros(num_steps, bool) for name in names}
    if num_steps < 20:
        return out
    final_start = num_steps - int(final_window * num_steps)
    if initial_buffer is None:
        initial_buffer = min(_INITIAL_BUFFER, int(0.15 * num_steps))
    elif not 0 <= initial_buffer <= final_start - 3:
        raise ValueError(
            f"early_schedule: initial_buffer must be between 0 and {final_start - 3} for {num_steps} steps "
            f"(3 draws must be collected before the final {final_window:.0%} of the warmup), got {initial_buffer}"
        )
    if not window_growth >= 1.0:
        raise ValueError(f"early_schedule: window_growth must be >= 1, got {window_growth!r}")
    early_end = int(early_window * num_steps)
    out["collect"] = (steps >= initial_buffer) & (steps < final_start)
    foreground = background = 0
    last_update, switched, late = initial_buffer - update_every, False, late_switch
    for i in range(initial_buffer, final_start):
        foreground, background = foreground + 1, background + 1
        due = switched or i - last_update >= update_every or i == final_start - 1
        if foreground >= 3 and due:
            out["update"][i], last_update = True, i
        is_early = i < early_end
        freq = early_switch if is_early else late
        # the window after this one: as long in the early share, else grown by window_growth
        following = freq if is_early else round(late * window_growth)
        switched = background >= freq and i + following <= final_start
        if switched:
            out["switch"][i] = True
            foreground, background = background, 0
            if not is_early:
                late = following
    updates = np.flatnonzero(out["update"])
    out["search"][updates[0]] = True
    out["freeze"][updates[-1]] = True
    return out


# window_adaptation(pool=...)'s cap on the draws of a pooled low-rank fit, over all chains.
POOL_ROWS = 400

# Stan's initial fast buffer: steps of the step size alone before the first draw is collected.
_INITIAL_BUFFER = 75

# A low-rank fit from a window of at most this many draws runs on the newest this many slots
# of the buffer only (:func:`~mcgen.adaptation.low_rank.buffer_recent`): the same metric, from
# decompositions of at most 2 * 16 dimensions in place of min(d, 2 * buffer_size).
_RECENT_ROWS = 16
# ... a second compiled fit, built only where the run's chains times the dimension reach this
# (chains known when tracing, 1 outside run_chains): it compiles in about 1.4 s and saves about
# 0.016 s of warmup per chain at d = 100 (4 chains: 12% of the first call on the Gym's rotated
# Gaussian lost, not won; the gradient-kernel docs, "The small fit program only where it pays")
_RECENT_MIN_WORK = 8192


def _newest_slot_fits(dim: int) -> bool:
    """Whether the short windows' fits get their own small program (see ``_RECENT_MIN_WORK``)."""
    return (requested_chains() or 1) * dim >= _RECENT_MIN_WORK


def _foreground_rows(sched: dict[str, np.ndarray], keep_background: bool, buffer_size: int) -> np.ndarray:
    """The draws of the foreground in the low-rank buffer after each step (after its draw is
    added, before a switch): the rows its fit at that step uses.  The schedule fixes them."""
    rows = np.zeros(sched["collect"].shape[0], np.int64)
    foreground = background = 0
    for i, (collect, switch) in enumerate(zip(sched["collect"], sched["switch"])):
        foreground, background = foreground + collect, background + collect
        rows[i] = min(foreground, buffer_size)
        if switch:
            foreground, background = (background if keep_background else 0), 0
    return rows


def _stan_schedule(num_steps: int) -> dict[str, np.ndarray]:
    """Stan's windows in the form of :func:`early_schedule` (no background estimate)."""
    slow, end = window_schedule(num_steps)
    return {"collect": slow, "update": end, "switch": end, "search": end, "freeze": np.zeros_like(end)}


# The step-size heuristic gives up after this many doublings or halvings (a factor 2**40).
_MAX_SEARCH = 40
# Stan's heuristic looks for the step size whose acceptance statistic crosses 0.8, whatever
# the kernel's target; dual averaging then takes over.
_SEARCH_ACCEPT = 0.8


class StepSizeSearch(NamedTuple):
    """Stan's step-size heuristic as a state machine over warmup transitions.

    While ``active``, each warmup transition runs at a trial step size and its acceptance
    statistic decides the next: the first transition fixes the ``direction`` (double while
    the statistic exceeds 0.8, otherwise halve), and the first trial across 0.8 ends the
    search, dual averaging restarting from it.  Stan's version (Hoffman & Gelman 2014,
    algorithm 4) tries one leapfrog step per candidate and keeps none of them; here every
    trial is a transition of the kernel, kept as a warmup draw and counted in its gradients.
    So the search compiles no log-density gradient of its own (the model's gradient appears
    once in the warmup program, in the kernel's transition), and the acceptance it looks at
    is that of a whole transition, the statistic dual averaging then targets.
    """

    active: jax.Array  # bool: the next transition is a trial
    direction: jax.Array  # int32: +1 doubling, -1 halving (set by the first trial)
    tries: jax.Array  # int32: trials run so far


def _search(active) -> StepSizeSearch:
    return StepSizeSearch(jnp.asarray(active), jnp.ones((), jnp.int32), jnp.zeros((), jnp.int32))


def search_step(search: StepSizeSearch, step_size, accept_prob) -> tuple[StepSizeSearch, jax.Array]:
    """After a trial at ``step_size`` with acceptance statistic ``accept_prob``: the search's
    next state and the step size of the next transition (the one that crossed 0.8 when the
    search ends).  Only meaningful where ``search.active``."""
    up = jnp.nan_to_num(accept_prob, nan=0.0) > _SEARCH_ACCEPT
    first = search.tries == 0
    direction = jnp.where(first, jnp.where(up, 1, -1), search.direction).astype(jnp.int32)
    crossed = ~first & jnp.where(direction > 0, ~up, up)
    stop = crossed | (search.tries + 1 >= _MAX_SEARCH)
    factor = jnp.where(direction > 0, 2.0, 0.5).astype(step_size.dtype)
    next_step_size = jnp.where(stop, step_size, step_size * factor)
    return StepSizeSearch(search.active & ~stop, direction, search.tries + 1), next_step_size


class CollapseGuard(NamedTuple):
    """What the initial buffer's collapse guard keeps (see ``window_adaptation``'s ``collapse_restarts``)."""

    start: Any  # the kernel state the chain started from, without its params
    working: jax.Array  # the largest step size at which a transition has had an acceptance statistic >= 0.5
    restarts: jax.Array  # int32: restarts so far


# The collapse guard: in the initial buffer, a chain whose dual-averaging iterate falls below
# this share of the largest step size that has worked for it goes back to its start.
_COLLAPSE = 1e-4
# ... where a transition "worked" if its acceptance statistic was at least this.
_WORKED = 0.5


class WindowAdaptationState(NamedTuple):
    state: Any  # the kernel's state, whose params are rewritten
    dual_averaging: DualAveragingState
    welford: WelfordState  # the (foreground) estimate of the draws' covariance
    count: jax.Array  # warmup steps taken
    search: StepSizeSearch  # the step-size heuristic, run on the warmup's own transitions
    trace: WarmupTrace
    scores: WelfordState  # the same for the gradients (dimension 0 unless estimator="fisher")
    background: tuple  # (draws, scores) Welford estimates that replace the foreground at a switch
    # (dimension 0 unless schedule="early")
    buffer: LowRankBuffer  # the window's last draws and scores (size 0 unless estimator="low_rank")
    guard: CollapseGuard  # the initial buffer's collapse guard


def window_adaptation(
    step: Callable,
    num_steps: int,
    *,
    target_accept: float,
    find_initial: bool = False,
    restart: str = "search",
    estimator: str = "welford",
    schedule: str = "stan",
    rank: int = 16,
    eigval_cutoff: float = 2.0,
    buffer_size: int = 100,
    gamma: float = LOW_RANK_GAMMA,
    update_every: int = 1,
    collapse_restarts: int = 3,
    min_draws: int = LOW_RANK_MIN_DRAWS,
    holdout: bool = False,
    depth_cap: int | None = None,
    pool: str | None = None,
    pool_rows: int = POOL_ROWS,
) -> Warmup:
    """The windowed warmup of a kernel whose ``state.params`` has ``step_size, inverse_mass``.

    Parameters
    ----------
    step
        The kernel's ``step(key, state, logdensity_fn) -> (state, info)``; ``info`` must have
        ``accept_prob`` (and ``num_grad_evals`` to be counted in the trace).
    num_steps
        Length of the warmup (fixes the schedule).
    target_accept
        Target of dual averaging (0.8 for NUTS, 0.65 for HMC, 0.574 for MALA).
    find_initial
        Start with Stan's step-size heuristic; by default dual averaging starts from the
        state's step size, as BlackJAX does.  The heuristic runs on the warmup's own
        transitions (:class:`StepSizeSearch`): each trial is a transition at a doubled or
        halved step size, until the acceptance statistic crosses 0.8.  From far-off starting
        points that is not safe: on the Inference Gym's log-Gaussian Cox process it lost one
        chain in 3 of 10 seeded runs in a region where the float32 log-density is rounding
        noise (step size 1e-7); with the default none of the same seeds failed.
    restart
        Where dual averaging restarts after a window end: ``"search"`` (Stan) runs the
        heuristic under the new metric; ``"average"`` (BlackJAX) starts from the window's
        averaged step size.
    estimator
        The metric set at a window end: ``"welford"`` (Stan) the regularized covariance of
        the window's draws (diagonal or dense, as the state's ``inverse_mass``);
        ``"fisher"`` the diagonal :func:`~mcgen.adaptation.welford.fisher_diagonal` from the
        window's draws and their gradients (``state.logdensity_grad``); ``"low_rank"`` that
        diagonal corrected along ``rank`` directions estimated from the last ``buffer_size``
        draws and gradients of the window
        (:func:`~mcgen.adaptation.low_rank.low_rank_estimate`, with ``eigval_cutoff`` and
        ``gamma``); the state's ``inverse_mass`` must then be a
        :class:`~mcgen.adaptation.low_rank.LowRankInverseMass`.  Where the schedule gives a
        window of at most 16 draws, its fit runs on the buffer's 16 newest slots alone: the
        same metric, from decompositions of at most 32 dimensions.
    schedule
        ``"stan"``: :func:`window_schedule`; ``"early"``: :func:`early_schedule` (after an
        initial buffer of 75 steps, the metric set after every step from the last tens of
        draws; dual averaging runs on and restarts only after the first update and when the
        metric freezes).
    update_every
        For ``schedule="early"``: set the metric every this many steps (and after each
        switch) rather than after every step; see :func:`early_schedule`.
    min_draws
        For ``estimator="low_rank"``: the fewest draws of the window (at most ``buffer_size``)
        from which the directions are fitted; from fewer, the metric is the Fisher diagonal
        alone (default 3: every window, as nutpie).  The early schedule's first windows
        hold 10 to 20 draws; 40 leaves them to the diagonal.  On the Inference Gym's German
        credit sparse logistic regression, where a fit to so few draws took 1.5 times the
        warmup gradients of the diagonal, 40 gave 1.14 and 1.56 times the effective draws per
        gradient in two paired runs; on the rotated ill-conditioned Gaussian, whose early
        fits are exact, 0.72 times.
    holdout
        For ``estimator="low_rank"``: keep a fit's correction only where it beats the
        diagonal on the window's draws it was not fitted to (``low_rank_estimate``'s
        ``holdout``, the window split into its older and newer half; three fits in place of
        one at each update).
    depth_cap
        For NUTS (a state whose ``params.depth_cap`` is set, as ``nuts()``'s is): every
        warmup transition stops after at most this many doublings (``2**depth_cap - 1``
        leapfrog steps); sampling keeps the kernel's ``max_tree_depth``.  The kernel's step is
        the same program in both phases (the cap is a value in the state).  States without
        the field (another kernel's) are not capped.  Default: no cap.  Why and what it
        gives: ``nuts()``'s ``warmup_max_tree_depth``.
    collapse_restarts
        The collapse guard of the initial buffer (the steps before the first draw is
        collected, where the chain travels from its start to the typical set): a chain whose
        step size (dual averaging's iterate) falls below 1e-4 of the largest step size at
        which one of its transitions had an acceptance statistic of at least 0.5 goes back
        to the state it started from, with dual averaging restarted from that step size, at
        most this many times (0: never).  Such a collapse is the mark of a chain that one
        energetic first trajectory has thrown into a region where the float32 log-density is
        rounding noise: on the Inference Gym's log-Gaussian Cox process, 6 of 320 chains of
        BlackJAX's windowed warmup, and without the guard about 3 of 128 of Stan's diagonal
        here and 1 of 256 of ``mc.nuts()``'s (step size 4e-7 within 20 steps, then 1,023
        leapfrog steps per draw and never back); with the guard, none of those runs lost a
        chain (the chains thrown restarted once each).  Its later transitions use new keys, so a
        restart from the same start rarely repeats the throw (11 of 12 chains from that
        chain's start were not thrown).  A healthy chain's iterate stays at least 100 times above
        the threshold (no restart in 64 chains on each of ten benchmark targets, the
        smallest ratio 0.01: ``benchmarks/collapse_margin.py``); a target whose scale truly
        shrinks 10,000-fold on the way in loses at most this many restarts' worth of the
        initial buffer.  Restarts are recorded per step in the trace's ``restarted``.
    pool
        ``None`` (default): each chain adapts on its own draws, so a chain's warmup does not
        depend on the other chains.  ``"metric"``: every metric update is fitted to the
        windows of *all* chains (the same estimator, on their draws and gradients pooled: the
        Welford estimates combined exactly, the low-rank buffers stacked, see ``pool_rows``)
        and every chain gets that one metric; the step size stays each chain's own.
        ``"all"``: the step size too (dual averaging, the step-size search and the collapse
        guard see the acceptance statistic averaged over the chains, so chains that start from
        the same step size, as ``run_chains``' do, keep the same one).  Pooling needs a chain
        axis (:mod:`mcgen.adaptation.ensemble`: ``run_chains``' vectorized or sharded chains,
        or a user's ``vmap`` with ``axis_name="chains"``), and a chain's draws then depend on
        the other chains.  What
        it is for: a chain whose window lies in a funnel's neck fits itself a metric as
        narrow as the neck, keeps its trajectories short and may stay there for the rest of
        the run (the gradient-kernel docs, "A warmup pooled over the chains").
    pool_rows
        For ``pool`` with ``estimator="low_rank"``: the pooled fit uses at most this many
        buffered draws in all, the newest ``min(buffer_size, ceil(pool_rows / chains))`` of
        each chain (4 chains of the default 100-draw buffer: all of them; 128 chains: 4
        each).  The fit is computed once for all chains, not once per chain.

    Returns
    -------
    Warmup
        Whose ``finalize`` returns the kernel state with the adapted, frozen parameters.  The
        warmup state's ``trace`` (:class:`WarmupTrace`) records the step size and gradient
        count of every step and the metric set at every window end (at every switch and at
        the freeze for ``schedule="early"``).
    """
    sched = _stan_schedule(num_steps) if schedule == "stan" else early_schedule(num_steps, update_every=update_every)
    recorded = sched["switch"] | sched["freeze"]
    collect, update_metric, switch = (jnp.asarray(sched[k]) for k in ("collect", "update", "switch"))
    search = jnp.asarray(sched["search"] if restart == "search" else np.zeros(num_steps, bool))
    average_np = sched["freeze"] | (sched["switch"] if restart == "average" else False)
    average, uses_average = jnp.asarray(average_np), bool(average_np.any())
    is_recorded = jnp.asarray(recorded)
    ends_np = np.flatnonzero(recorded).astype(np.int32)
    # the record that step i writes (only read where it writes one)
    record_index = jnp.asarray(np.maximum(np.cumsum(recorded) - 1, 0).astype(np.int32))
    early = schedule == "early"
    with_scores = estimator in ("fisher", "low_rank")
    low_rank = estimator == "low_rank"
    if depth_cap is not None and not (
        isinstance(depth_cap, (int, np.integer)) and not isinstance(depth_cap, bool) and depth_cap >= 1
    ):
        raise ValueError(f"window_adaptation: depth_cap must be None or an integer >= 1, got {depth_cap!r}")
    if pool not in (None, "metric", "all"):
        raise ValueError(f"window_adaptation: pool must be None, 'metric' or 'all', got {pool!r}")
    if not (isinstance(pool_rows, (int, np.integer)) and not isinstance(pool_rows, bool) and pool_rows >= 3):
        raise ValueError(f"window_adaptation: pool_rows must be an integer >= 3, got {pool_rows!r}")
    pool_step = pool == "all"
    if not (isinstance(collapse_restarts, (int, np.integer)) and collapse_restarts >= 0):
        raise ValueError(f"collapse_restarts must be a non-negative integer, got {collapse_restarts!r}")
    # the initial buffer: the steps before the first collected draw (none below 20 steps)
    first_collect = int(np.flatnonzero(sched["collect"])[0]) if sched["collect"].any() else 0
    guard_on = collapse_restarts > 0 and first_collect > 0
    # the low-rank fits whose window holds few draws run on the newest slots of the buffer alone
    recent_np = np.zeros(num_steps, bool)
    if low_rank:
        recent_np = sched["update"] & (_foreground_rows(sched, early, buffer_size) <= _RECENT_ROWS)
    recent_fit = jnp.asarray(recent_np)

    def init(state) -> WindowAdaptationState:
        inverse_mass = state.params.inverse_mass
        if low_rank != is_low_rank(inverse_mass):
            have = (
                "a low-rank" if is_low_rank(inverse_mass) else f"a {'dense' if inverse_mass.ndim == 2 else 'diagonal'}"
            )
            want = 'mass="low_rank" (mc.nuts()\'s default)' if low_rank else "a diagonal or dense mass"
            raise ValueError(
                f"the initial state carries {have} inverse mass matrix, but this kernel adapts {want}: "
                "a Result or state from a run with another mass= cannot warm-start it; pass the same mass= "
                "as that run (e.g. mc.nuts(mass='diag')), or start from its positions "
                "(init=result.last_state.position, init_batched=True)"
            )
        like = inverse_mass.scale if low_rank else inverse_mass
        dim, dtype = like.shape[0], like.dtype
        dense = like.ndim == 2
        welford = welford_init(dim, dense, dtype)
        trace = WarmupTrace(
            jnp.zeros((num_steps,), state.params.step_size.dtype),
            jnp.zeros((num_steps,), jnp.int32),
            jnp.asarray(ends_np),
            jnp.zeros((ends_np.size, dim), dtype),
            jnp.zeros((num_steps,), bool),
        )
        scores = welford_init(dim if with_scores else 0, False, dtype)
        background = (
            welford_init(dim if early else 0, dense, dtype),
            welford_init(dim if early and with_scores else 0, False, dtype),
        )
        return WindowAdaptationState(
            state,
            da_init(state.params.step_size),
            welford,
            jnp.zeros((), jnp.int32),
            _search(find_initial),
            trace,
            scores,
            background,
            buffer_init(buffer_size if low_rank else 0, dim if low_rank else 0, dtype),
            CollapseGuard(
                state._replace(params=None) if guard_on else None,
                jnp.zeros((), state.params.step_size.dtype),
                jnp.zeros((), jnp.int32),
            ),
        )

    def prepare(ws: WindowAdaptationState):
        # the state at the current iterate of dual averaging, or the search's trial (da.log_x)
        state = ws.state
        step_size = jnp.exp(ws.dual_averaging.log_x).astype(state.params.step_size.dtype)
        params = state.params._replace(step_size=step_size)
        if depth_cap is not None and getattr(params, "depth_cap", None) is not None:
            params = params._replace(depth_cap=jnp.full_like(params.depth_cap, depth_cap))
        return state._replace(params=params)

    def update(key, ws: WindowAdaptationState, logdensity_fn):
        return absorb(ws, *isolated_step(step, key, prepare(ws), logdensity_fn))

    def absorb(ws: WindowAdaptationState, state, info):
        # fenced like the step: the same rounding inline (warmup program) or in a cond (whole run)
        barrier = jax.lax.optimization_barrier
        return barrier(_absorb(*barrier((ws, state, info))))

    def _absorb(ws: WindowAdaptationState, state, info):
        dtype = state.params.step_size.dtype
        step_size = jnp.exp(ws.dual_averaging.log_x).astype(dtype)  # the one prepare() set
        accept_prob = info.accept_prob
        if pool_step:  # every chain's tunables see the chains' mean (a divergent NaN counts 0)
            accept_prob = chain_mean(jnp.nan_to_num(jnp.asarray(accept_prob, dtype), nan=0.0))
        searched, trial = search_step(ws.search, step_size, accept_prob)
        # a search's trials leave dual averaging alone; the next trial (or the step size that
        # crossed, when the search ends) becomes the iterate from which it restarts
        da = _where(ws.search.active, da_init(trial), da_update(ws.dual_averaging, accept_prob, target_accept))
        search_state = _where(ws.search.active, searched, ws.search)

        i = jnp.minimum(ws.count, max(num_steps - 1, 0))
        in_slow, is_update, is_switch = collect[i], update_metric[i], switch[i]
        flat, _ = ravel_pytree(state.position)
        welford = jax.tree_util.tree_map(
            lambda new, old: jnp.where(in_slow, new, old), welford_update(ws.welford, flat), ws.welford
        )
        if uses_average:  # (built only where used: XLA may round the update otherwise)
            da = _where(average[i], da_init(da_final(da).astype(dtype)), da)
        guard, restarted = ws.guard, jnp.zeros((), bool)
        if guard_on:
            state, da, guard, restarted = _collapse_guard(
                guard, i < first_collect, collapse_restarts, state, da, step_size, accept_prob
            )
        scores, (bg_draws, bg_scores) = ws.scores, ws.background
        if early:
            bg_draws = _where(in_slow, welford_update(bg_draws, flat), bg_draws)
        buffer = ws.buffer
        if with_scores:
            grad, _ = ravel_pytree(state.logdensity_grad)
            scores = _where(in_slow, welford_update(scores, grad.astype(flat.dtype)), scores)
            if early:
                bg_scores = _where(in_slow, welford_update(bg_scores, grad.astype(flat.dtype)), bg_scores)
        if low_rank:
            buffer = buffer_add(buffer, flat, grad, in_slow)

            def fit(buffer, welford, scores, level_dim=None):
                older = None
                if holdout:  # the window's rows in the buffer, split at their middle draw
                    oldest = jnp.maximum(buffer.start, buffer.collected - buffer_size)
                    older = (buffer.stamp < (oldest + buffer.collected) // 2).astype(flat.dtype)
                return low_rank_estimate(
                    buffer.draws,
                    buffer.grads,
                    buffer_weights(buffer),
                    rank=rank,
                    cutoff=eigval_cutoff,
                    gamma=gamma,
                    diag=fisher_diagonal(welford, scores),
                    min_draws=min(min_draws, buffer_size),
                    holdout=older,
                    level_dim=level_dim,
                )

            # the fit (eigen-decompositions) runs only at the steps that set the metric
            # (chain by chain on the CPU: batched decompositions could deadlock there, see the helper)
            fit_each = one_chain_at_a_time(fit)
            operands = (buffer, welford, scores)
            span = fit_span(flat.shape[0], buffer_size)
            if pool:

                def fit_pooled(buffer, welford, scores):
                    per_chain = min(buffer_size, -(-pool_rows // _num_chains()))
                    if per_chain < buffer_size:
                        buffer = buffer_recent(buffer, per_chain)
                    (buffer, welford, scores), weights = chain_gather((buffer, welford, scores))
                    # every chain's window is the same draws of its own (one schedule): the
                    # buffers' counters are the first chain's, the rows all chains'
                    kept = weights[:, None, None] > 0  # a padding chain's rows: zeros, weight 0
                    rows = buffer._replace(
                        draws=jnp.where(kept, buffer.draws, 0.0).reshape(-1, buffer.draws.shape[-1]),
                        grads=jnp.where(kept, buffer.grads, 0.0).reshape(-1, buffer.grads.shape[-1]),
                        stamp=jnp.where(weights[:, None] > 0, buffer.stamp, -1).reshape(-1),
                        collected=buffer.collected[0],
                        start=buffer.start[0],
                        background_start=buffer.background_start[0],
                    )
                    return fit(rows, _pool_welford(welford, weights), _pool_welford(scores, weights))

                inverse_mass = _pooled_update(is_update, fit_pooled, state.params.inverse_mass, operands)
            elif recent_np.any() and 2 * _RECENT_ROWS < span and _newest_slot_fits(flat.shape[0]):
                # a window of at most _RECENT_ROWS draws: the same metric from the newest slots,
                # fitted in a subspace of at most 2 * _RECENT_ROWS dimensions (not min(d, 2 * size))
                def fit_recent(buffer, welford, scores):
                    return fit(buffer_recent(buffer, _RECENT_ROWS), welford, scores, span)

                small = recent_fit[i]
                inverse_mass = run_if(is_update & ~small, fit_each, state.params.inverse_mass, operands)
                inverse_mass = run_if(is_update & small, one_chain_at_a_time(fit_recent), inverse_mass, operands)
            else:
                inverse_mass = run_if(is_update, fit_each, state.params.inverse_mass, operands)
        else:

            def estimate(welford, scores):
                if estimator == "fisher":
                    return fisher_diagonal(welford, scores)
                return welford_covariance(welford).astype(flat.dtype)

            if pool:

                def estimate_pooled(welford, scores):
                    (welford, scores), weights = chain_gather((welford, scores))
                    return estimate(_pool_welford(welford, weights), _pool_welford(scores, weights))

                inverse_mass = _pooled_update(is_update, estimate_pooled, state.params.inverse_mass, (welford, scores))
            else:
                inverse_mass = jnp.where(is_update, estimate(welford, scores), state.params.inverse_mass)
        # a switch: the background estimate (Stan: none, so a fresh one) becomes the foreground
        fresh = welford_init(flat.shape[0], ws.welford.m2.ndim == 2, flat.dtype)
        fresh_scores = welford_init(scores.mean.shape[0], False, flat.dtype)
        welford = jax.tree_util.tree_map(
            lambda new, old: jnp.where(is_switch, new, old), bg_draws if early else fresh, welford
        )
        scores = _where(is_switch, bg_scores if early else fresh_scores, scores)
        if early:
            bg_draws = _where(is_switch, fresh, bg_draws)
            bg_scores = _where(is_switch, fresh_scores, bg_scores)
        if low_rank:
            buffer = buffer_switch(buffer, early, is_switch)
        params = state.params._replace(step_size=jnp.exp(da.log_x).astype(dtype), inverse_mass=inverse_mass)
        if depth_cap is not None and getattr(params, "depth_cap", None) is not None:
            params = params._replace(depth_cap=ws.state.params.depth_cap)  # prepare()'s cap: warmup only
        trace = _record(
            ws.trace,
            i,
            step_size,
            getattr(info, "num_grad_evals", 0),
            is_recorded[i],
            record_index[i],
            inverse_mass,
            restarted,
        )
        return WindowAdaptationState(
            state._replace(params=params),
            da,
            welford,
            ws.count + 1,
            _where(search[i], _search(True), search_state),  # a window end starts a search
            trace,
            scores,
            (bg_draws, bg_scores),
            buffer,
            guard,
        ), info

    def finalize(ws: WindowAdaptationState):
        state = ws.state
        step_size = da_final(ws.dual_averaging).astype(state.params.step_size.dtype)
        return state._replace(params=state.params._replace(step_size=step_size))

    return Warmup(init, update, finalize, WarmupParts(prepare, step, absorb))


def _collapse_guard(guard: CollapseGuard, active, limit: int, state, da: DualAveragingState, step_size, accept_prob):
    """The initial buffer's collapse guard after one transition at ``step_size``.

    Returns the state (the start, with the current params, after a restart), dual averaging
    (restarted from the largest step size that has worked), the guard and whether it
    restarted.
    """
    accept_prob = jnp.nan_to_num(jnp.asarray(accept_prob, step_size.dtype), nan=0.0)
    working = jnp.where(active & (accept_prob >= _WORKED), jnp.maximum(guard.working, step_size), guard.working)
    collapsed = jnp.exp(da.log_x) < _COLLAPSE * working
    restart = active & collapsed & (guard.restarts < limit)
    start = guard.start._replace(params=state.params)
    state = _where(restart, start, state)
    da = _where(restart, da_init(working), da)
    return state, da, CollapseGuard(guard.start, working, guard.restarts + restart.astype(jnp.int32)), restart


def _num_chains() -> int:
    """The length of the chain axis (padding included), known when tracing."""
    return chain_gather(jnp.zeros(()))[1].shape[0]


def _pool_welford(stacked: WelfordState, weights: jax.Array) -> WelfordState:
    """The Welford estimate of all chains' draws together from each chain's (stacked along a
    leading axis; ``weights`` 0 drops a chain): Chan et al.'s exact combination, so the
    pooled covariance counts the spread between the chains' means as well as within them."""
    keep = weights > 0
    counts = jnp.where(keep, stacked.count, 0)
    total = jnp.sum(counts)
    n = counts.astype(stacked.mean.dtype)
    # where, not a product: a dropped chain's values may be anything (NaN included)
    means = jnp.where(keep[:, None], stacked.mean, 0.0)
    mean = (n @ means) / jnp.maximum(total, 1).astype(n.dtype)
    dev = jnp.where(keep[:, None], means - mean, 0.0)
    m2 = jnp.where(keep.reshape((-1,) + (1,) * (stacked.m2.ndim - 1)), stacked.m2, 0.0).sum(0)
    if stacked.m2.ndim == 3:  # dense
        m2 = m2 + jnp.einsum("c,ci,cj->ij", n, dev, dev)
    else:
        m2 = m2 + n @ (dev * dev)
    return WelfordState(total.astype(stacked.count.dtype), mean, m2)


def _pooled_update(flag, fit: Callable, current, operands: tuple):
    """``fit(*operands)`` (whose collectives make it the same for every chain) where ``flag``,
    else ``current``.  ``flag`` is the schedule's, the same in every chain, so this is a
    branch under ``vmap`` and the gather and the fit run only at the steps that set the metric,
    once for all chains."""
    return jax.lax.cond(
        _same_in_every_chain(flag),
        lambda ops, _: fit(*ops),
        lambda _, kept: kept,
        operands,
        current,
    )


def _where(flag, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(flag, a, b), new, old)


def _record(trace: WarmupTrace, i, step_size, num_grad_evals, is_end, window, inverse_mass, restarted) -> WarmupTrace:
    """Write step ``i`` (and, at a window end, the new metric's diagonal) into the trace."""
    if trace.step_size.shape[0] == 0:
        return trace
    if is_low_rank(inverse_mass):
        diag = low_rank_diagonal(inverse_mass)
    else:
        diag = inverse_mass if inverse_mass.ndim == 1 else jnp.diagonal(inverse_mass)
    metrics = trace.inverse_mass
    if metrics.shape[0] > 0:
        metrics = metrics.at[window].set(jnp.where(is_end, diag, metrics[window]))
    return trace._replace(
        step_size=trace.step_size.at[i].set(step_size),
        num_grad_evals=trace.num_grad_evals.at[i].set(jnp.asarray(num_grad_evals, jnp.int32)),
        inverse_mass=metrics,
        restarted=trace.restarted.at[i].set(restarted),
    )
