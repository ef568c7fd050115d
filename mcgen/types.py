"""The types every part of mcgen shares.

A Markov kernel is a pair of pure functions (DESIGN.md section 1)::

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

State conventions (STYLE.md): NamedTuples with the common field names ``position``,
``logdensity``, ``logdensity_grad`` (where there is one) and ``params`` (tunables).  ``Info``
NamedTuples use the same names across kernels where the meaning is the same:
``accept_prob``, ``is_accepted``, ``is_divergent``, ``num_grad_evals``, ``step_size``,
``energy``, ``logdensity_nonfinite``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

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


class Warmup(NamedTuple):
    """An adaptation phase for a kernel.

    Attributes
    ----------
    init
        ``init(state) -> warmup_state``: wraps an initialized kernel state (so a warmup can
        start from the last state of an earlier run).
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


def no_warmup(kernel: Kernel) -> Callable[[int], Warmup]:
    """A warmup that only runs the kernel (burn-in without adaptation)."""

    def factory(num_steps: int) -> Warmup:
        del num_steps
        return Warmup(init=lambda state: state, step=kernel.step, finalize=lambda state: state)

    return factory


def __getattr__(name: str):
    # DESIGN.md lists WeightedSamples among the shared types; it lives with the direct
    # samplers (mcgen/direct/weighted.py) and is re-exported here lazily to avoid a cycle.
    if name == "WeightedSamples":
        from mcgen.direct.weighted import WeightedSamples

        return WeightedSamples
    raise AttributeError(f"module 'mcgen.types' has no attribute {name!r}")
