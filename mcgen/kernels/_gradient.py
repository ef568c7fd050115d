"""The state shared by the gradient kernels (MALA, HMC, NUTS) and their common warmup.

Every gradient kernel keeps the log-density *and its gradient* at the current position in its
state, so a transition costs exactly the gradients of the new points it visits: the starting
point's gradient is never recomputed.  The tunables live in ``state.params``: the step size
:math:`\\epsilon` and the inverse mass matrix :math:`A` (a ``(d,)`` vector for ``mass="diag"``,
a ``(d, d)`` matrix for ``mass="dense"``; ``"grad_diag"`` is a diagonal one too, estimated
differently in warmup; ``"low_rank"`` a :class:`~mcgen.kernels._metrics.LowRankInverseMass`),
one per chain.  Positions are any pytree; the
kernels work on the flattened vector.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mcgen.adaptation.low_rank import LOW_RANK_GAMMA, LOW_RANK_MIN_DRAWS
from mcgen.adaptation.window import window_adaptation
from mcgen.kernels._integrators import find_reasonable_step_size, flat_value_and_grad
from mcgen.kernels._metrics import LowRankInverseMass, check_positive, identity_inverse_mass
from mcgen.types import Warmup

# Step size used before any adaptation when none is given (Stan's default, stepsize=1).
DEFAULT_STEP_SIZE = 1.0


class GradientParams(NamedTuple):
    step_size: jax.Array  # scalar
    inverse_mass: jax.Array | LowRankInverseMass  # (d,) diagonal, (d, d) dense, or diagonal plus low rank
    # NUTS only (None elsewhere): int32 (), the most doublings of the next trajectory where
    # it is below the kernel's max_tree_depth (the warmup's cap, nuts' warmup_max_tree_depth);
    # 0: no cap (sampling)
    depth_cap: jax.Array | None = None


class GradientState(NamedTuple):
    position: Any
    logdensity: jax.Array
    logdensity_grad: Any  # same pytree structure as position
    params: GradientParams


def gradient_init(
    position, logdensity_fn: Callable, step_size, mass: str, rank: int = 0, depth_cap: bool = False
) -> GradientState:
    """Evaluate the log-density and gradient at ``position`` and set the starting tunables
    (``rank``: the number of directions of a ``"low_rank"`` metric; ``depth_cap``: NUTS's
    ``params.depth_cap``, 0)."""
    flat, unravel = ravel_pytree(position)
    if not jnp.issubdtype(flat.dtype, jnp.floating):
        raise ValueError(f"gradient kernels need a floating-point position, got dtype {flat.dtype}")
    logdensity, grad = flat_value_and_grad(logdensity_fn, unravel)(flat)
    eps = DEFAULT_STEP_SIZE if step_size is None else step_size
    params = GradientParams(
        jnp.asarray(eps, flat.dtype),
        identity_inverse_mass(mass, flat.shape[0], flat.dtype, rank),
        jnp.zeros((), jnp.int32) if depth_cap else None,
    )
    return GradientState(position, logdensity.astype(flat.dtype), unravel(grad), params)


def flatten(state: Any, logdensity_fn: Callable):
    """``(q, g, f, unravel)``: flat position and gradient, flat value-and-grad, inverse map (any state
    with ``position`` and ``logdensity_grad`` fields: the gradient kernels', ChEES's, MAMS's)."""
    q, unravel = ravel_pytree(state.position)
    g, _ = ravel_pytree(state.logdensity_grad)
    return q, g, flat_value_and_grad(logdensity_fn, unravel), unravel


def rebuild(state: GradientState, unravel: Callable, q, logdensity, g) -> GradientState:
    """A state at the flat point ``q`` with the same tunables."""
    return GradientState(unravel(q), logdensity.astype(q.dtype), unravel(g), state.params)


def initial_step_size(key, state: Any, logdensity_fn: Callable, active):
    """Stan's step-size heuristic at the current state: ``(step_size, gradients spent)``.

    No gradient is spent where ``active`` is False.
    """
    q, g, f, _ = flatten(state, logdensity_fn)
    return find_reasonable_step_size(
        key, f, state.params.inverse_mass, q, state.logdensity, g, state.params.step_size, active
    )


def gradient_warmup(
    step: Callable,
    target_accept: float,
    mass: str = "diag",
    schedule: str = "stan",
    low_rank: LowRankSettings | None = None,
    depth_cap: int | None = None,
    pool: str | None = None,
) -> Callable[[int], Warmup]:
    """``warmup(num_steps)``: Stan's windowed adaptation of step size and metric.

    Dual averaging starts from the state's step size (the user's, or 1.0) with no search
    first, as BlackJAX does; Stan's heuristic runs on the warmup's transitions after each
    metric update (:class:`~mcgen.adaptation.window.StepSizeSearch`; why none runs at the
    start: ``window_adaptation``'s ``find_initial``).  ``mass="grad_diag"`` sets the diagonal metric from the draws *and* gradients of each window (the Fisher-divergence
    optimum, :func:`~mcgen.adaptation.welford.fisher_diagonal`); ``"diag"`` and ``"dense"``
    from the draws' covariance, as Stan does; ``"low_rank"`` corrects the Fisher diagonal along
    a few directions fitted to the window's last draws and gradients (``low_rank`` settings,
    :func:`~mcgen.adaptation.low_rank.low_rank_estimate`).  ``schedule`` is Stan's doubling windows
    (``"stan"``) or an early, frequent update in nutpie's manner (``"early"``, see
    :func:`~mcgen.adaptation.window.early_schedule`).  ``depth_cap``: NUTS's trajectories
    stop after that many doublings in warmup (``window_adaptation``'s ``depth_cap``).
    ``pool``: fit the metric (``"metric"``) or the metric and the step size (``"all"``) to all
    chains' warmup draws together (``window_adaptation``'s ``pool``).
    """
    estimator = {"grad_diag": "fisher", "low_rank": "low_rank"}.get(mass, "welford")
    settings = (low_rank or LowRankSettings())._asdict() if mass == "low_rank" else {}

    def factory(num_steps: int) -> Warmup:
        return window_adaptation(
            step,
            num_steps,
            target_accept=target_accept,
            estimator=estimator,
            schedule=schedule,
            depth_cap=depth_cap,
            pool=pool,
            **settings,
        )

    return factory


class LowRankSettings(NamedTuple):
    """The settings of a ``mass="low_rank"`` metric (the kernels' ``mass_rank``,
    ``mass_eigval_cutoff``, ``mass_buffer``, ``mass_min_draws``, ``mass_holdout`` and ``mass_gamma``)."""

    rank: int = 16
    eigval_cutoff: float = 2.0
    buffer_size: int = 100
    # warmup_schedule="early": refit every this many steps (nutpie's update frequency for its
    # low-rank metric), not after every step: a fit costs eigen-decompositions of (2n, 2n)
    update_every: int = 20
    min_draws: int = LOW_RANK_MIN_DRAWS
    holdout: bool = False
    # regularization of the scaled second moments (low_rank_estimate's gamma)
    gamma: float = LOW_RANK_GAMMA


def low_rank_settings(
    rank,
    eigval_cutoff,
    buffer_size,
    who: str,
    min_draws: int = LOW_RANK_MIN_DRAWS,
    holdout: bool = False,
    gamma: float = LOW_RANK_GAMMA,
) -> LowRankSettings:
    """Validate the low-rank settings of kernel ``who``; clear errors for bad values."""
    checked = ((rank, "mass_rank", 1), (buffer_size, "mass_buffer", 3), (min_draws, "mass_min_draws", 3))
    for value, name, least in checked:
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{who}: {name} must be an integer >= {least}, got {value!r}")
    check_positive(eigval_cutoff, "mass_eigval_cutoff", who)
    if not float(eigval_cutoff) >= 1.0:
        raise ValueError(f"{who}: mass_eigval_cutoff must be >= 1, got {eigval_cutoff!r}")
    if not isinstance(holdout, bool):
        raise ValueError(f"{who}: mass_holdout must be True or False, got {holdout!r}")
    check_positive(gamma, "mass_gamma", who)
    return LowRankSettings(
        rank, float(eigval_cutoff), buffer_size, min_draws=min_draws, holdout=holdout, gamma=float(gamma)
    )


WARMUP_SCHEDULES = ("stan", "early")


def check_warmup_schedule(schedule: str, who: str) -> None:
    if schedule not in WARMUP_SCHEDULES:
        raise ValueError(f"{who}: warmup_schedule must be 'stan' or 'early', got {schedule!r}")


WARMUP_POOLS = (None, "metric", "all")


def check_warmup_pool(pool, who: str) -> None:
    if pool not in WARMUP_POOLS:
        raise ValueError(f"{who}: warmup_pool must be None, 'metric' or 'all', got {pool!r}")


def check_target_accept(target_accept: float, who: str) -> None:
    if not 0.0 < float(target_accept) < 1.0:
        raise ValueError(f"{who}: target_accept must lie in (0, 1), got {target_accept!r}")
