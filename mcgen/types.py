"""The types every part of mcgen shares.

A Markov kernel is a pair of pure functions::

    state = kernel.init(position, logdensity_fn)
    state, info = kernel.step(key, state, logdensity_fn)

``position`` is any pytree; ``logdensity_fn`` is passed at call time, never baked into the
kernel, so one kernel serves many targets (a Gibbs block's conditional, a tempered replica).
Tunable parameters live in ``state.params`` so that each chain, block and temperature carries
its own.

A kernel may also carry a ``warmup`` factory.  ``kernel.warmup(num_steps)`` returns a
:class:`Warmup`: a kernel over an *adaptation state* that wraps the kernel's own state and
rewrites its ``params`` while it runs for ``num_steps`` steps; ``finalize`` hands back the
inner kernel's state with the adapted (frozen) parameters.  ``run_chains`` uses it
automatically when ``num_warmup > 0``, and combinators build their warmup from those of the
kernels they hold.  Draws returned by ``run_chains`` always come from the frozen kernel, so
adaptation never breaks invariance of the reported draws.

**Cross-chain statistics.**  A warmup may pool statistics across chains (ensemble adaptation:
ChEES, MEADS, MAMS).  ``run_chains`` maps ``Warmup.init``, ``step`` and ``finalize`` over the
chains with a named axis, ``"chains"`` (``vmap(..., axis_name="chains")``), and inside them
:func:`mcgen.adaptation.ensemble.chain_mean` / ``chain_sum`` (or raw ``jax.lax.pmean``/``psum``
over ``"chains"``) reduce over all chains, of every device and host.  Use the ``ensemble``
functions: they leave out the padding chains the driver may add, which raw collectives count,
and across devices they let each device run its own chains' steps (a raw collective makes the
warmup one program partitioned over all devices, slower).
The rules: ``Kernel.init`` and ``Kernel.step`` stay per-chain (draws come from a kernel whose
chains are independent given the frozen tunables); only a warmup pools; a kernel that pools
nothing is unchanged by the named axis (bit for bit); and ``chain_method="sequential"``
(``lax.map``, no chain axis) refuses a warmup that pools with a ``ValueError``.  Pooled values
agree across device counts to rounding of the reduction order, not bit for bit, and an
ensemble warmup amplifies such differences as it runs (see :mod:`mcgen.adaptation.ensemble`
for what exactly is guaranteed).

State conventions: NamedTuples with the common field names ``position``,
``logdensity``, ``logdensity_grad`` (where there is one) and ``params`` (tunables).  ``Info``
NamedTuples use the same names across kernels where the meaning is the same (see
:data:`INFO_FIELDS`).  The rules the combinators and the driver rely on are written as the
protocols :class:`KernelState`, :class:`TunableState` and :class:`AdaptationState`, and
checked for every kernel of mcgen by :func:`mcgen.kernels.base.check_kernel`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol, runtime_checkable

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
ArrayTree = Any
"""Any pytree whose leaves are arrays (an array, a dict of arrays, a NamedTuple...)."""
PRNGKey = jax.Array

LogDensityFn = Callable[[ArrayTree], Array]
"""``logdensity_fn(position) -> scalar``: log of an (unnormalized) target density."""


class InitFn(Protocol):
    def __call__(self, position: ArrayTree, logdensity_fn: LogDensityFn) -> Any: ...


class StepFn(Protocol):
    def __call__(self, key: PRNGKey, state: Any, logdensity_fn: LogDensityFn) -> tuple[Any, Any]: ...


@runtime_checkable
class KernelState(Protocol):
    """What every kernel state holds (a NamedTuple with at least these fields).

    ``position`` is the current point (any pytree, the structure ``init`` was given) and
    ``logdensity`` the scalar log-density there.  Every other field must be a function of
    ``position``, the log-density function and ``params``: combinators rebuild a state with
    ``kernel.init(position, logdensity_fn)._replace(params=params)`` whenever the target
    changes under a kernel (another Gibbs block moved, another tempered replica swapped in).
    """

    position: ArrayTree
    logdensity: Array


@runtime_checkable
class TunableState(KernelState, Protocol):
    """A kernel state with tunables (step size, scale, mass matrix...) in a field ``params``.

    Required of every kernel that has a warmup: each chain, Gibbs block and temperature keeps
    its own ``params``, and combinators store nothing else of an inner kernel between steps.
    """

    params: Any


@runtime_checkable
class AdaptationState(Protocol):
    """A warmup state: it holds the kernel state it adapts in a field named ``state``.

    Combinators reach the kernel state inside any nesting of warmups by following ``state``
    fields, so every ``Warmup.init`` must return such a NamedTuple.
    """

    state: Any


INFO_FIELDS: dict[str, str] = {
    "accept_prob": "float in [0, 1]: the Metropolis-Hastings acceptance probability",
    "is_accepted": "bool: the proposal was accepted",
    "is_nonfinite": "bool: the proposal's log-density was NaN or +inf (and it was rejected)",
    "is_divergent": "bool: the trajectory's energy error exceeded the divergence threshold",
    "num_grad_evals": "int: gradient evaluations spent by the step",
    "step_size": "float: the step size used",
    "energy": "float: the Hamiltonian at the new state",
    "reached_max_treedepth": "bool: the trajectory used every doubling its maximum tree depth allows",
}
"""The common ``Info`` field names and what they mean.  A kernel that reports one of these
quantities uses this name (``run_chains`` and the ArviZ bridge read them); it may add fields
of its own under other names."""


class Warmup(NamedTuple):
    """An adaptation phase for a kernel.

    Attributes
    ----------
    init
        ``init(state) -> warmup_state``: wraps an initialized kernel state (so a warmup can
        start from the last state of an earlier run) in a NamedTuple that keeps it in a field
        named ``state`` (:class:`AdaptationState`).
    step
        ``step(key, warmup_state, logdensity_fn) -> (warmup_state, info)``: one kernel step
        followed by an update of the tunables in the wrapped state.
    finalize
        ``finalize(warmup_state) -> state``: the wrapped kernel state with adapted parameters,
        ready for sampling with the kernel's own ``step``.
    """

    init: Callable[[Any], Any]
    step: Callable[..., tuple[Any, Any]]
    finalize: Callable[[Any], Any]
    parts: "WarmupParts | None" = None


class WarmupParts(NamedTuple):
    """A warmup step taken apart around the kernel's own step (optional, :attr:`Warmup.parts`).

    ``Warmup.step(key, ws, logdensity_fn)`` must equal
    ``absorb(ws, *kernel_step(key, prepare(ws), logdensity_fn))`` bit for bit.  With the parts
    in hand, and ``kernel_step`` the very ``Kernel.step`` object of the kernel being run,
    ``run_chains`` runs warmup and sampling as one loop that calls the kernel's step in one
    place, so the model's gradient (and a NUTS trajectory) is compiled once, not once per
    phase.  Warmups that do more than one kernel step per warmup step leave ``parts`` as None
    and run as two programs.  A warmup that pools statistics across chains may have parts: the
    one loop maps the chains over the named chain axis as a warmup program does (across
    devices each device maps its own chains, and the helpers of
    :mod:`mcgen.adaptation.ensemble` reduce over them and then across the devices; a raw
    collective makes the whole loop one program over all devices).

    Attributes
    ----------
    prepare
        ``prepare(warmup_state) -> state``: the kernel state the warmup steps from (e.g. with
        the step size that dual averaging tries next).
    kernel_step
        The kernel step the warmup takes: ``kernel_step(key, state, logdensity_fn)``.
    absorb
        ``absorb(warmup_state, state, info) -> (warmup_state, info)``: the adaptation's update
        after the step.
    """

    prepare: Callable[[Any], Any]
    kernel_step: Callable[..., tuple[Any, Any]]
    absorb: Callable[[Any, Any, Any], tuple[Any, Any]]


class Kernel(NamedTuple):
    """A Markov transition kernel: ``init`` and ``step``, plus an optional warmup factory.

    Attributes
    ----------
    init
        ``init(position, logdensity_fn) -> state``.
    step
        ``step(key, state, logdensity_fn) -> (state, info)``.
    warmup
        ``warmup(num_steps) -> Warmup`` or ``None`` when the kernel has nothing to adapt.
    """

    init: InitFn
    step: StepFn
    warmup: Callable[[int], Warmup] | None = None


def isolated_step(step: StepFn, key: PRNGKey, state: Any, logdensity_fn: LogDensityFn) -> tuple[Any, Any]:
    """``step(key, state, logdensity_fn)`` fenced off from the code around it.

    An optimization barrier on the state that goes in and on the state and info that come
    out keeps XLA from fusing the step's arithmetic with its neighbours', which it would do
    differently in the warmup program, the sampling program and the one program of a whole
    run (there the step's inputs and outputs pass through ``cond``s): fenced, the step rounds
    the same in each, so where a run is cut never changes a draw.
    """
    return jax.lax.optimization_barrier(step(key, jax.lax.optimization_barrier(state), logdensity_fn))


def no_warmup(kernel: Kernel) -> Callable[[int], Warmup]:
    """A warmup that only runs the kernel (burn-in without adaptation)."""

    def factory(num_steps: int) -> Warmup:
        del num_steps
        return Warmup(
            init=lambda state: state,
            step=lambda key, state, logdensity_fn: isolated_step(kernel.step, key, state, logdensity_fn),
            finalize=lambda state: state,
            parts=WarmupParts(lambda state: state, kernel.step, lambda _, state, info: (state, info)),
        )

    return factory


def __getattr__(name: str):
    # WeightedSamples is one of the shared types; it lives with the direct
    # samplers (mcgen/direct/weighted.py) and is re-exported here lazily to avoid a cycle.
    if name == "WeightedSamples":
        from mcgen.direct.weighted import WeightedSamples

        return WeightedSamples
    raise AttributeError(f"module 'mcgen.types' has no attribute {name!r}")
