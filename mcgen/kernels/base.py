"""Building blocks for writing a kernel, under public names, and the checker of the rules.

A new Markov kernel in mcgen is a constructor decorated with :func:`cached_constructor` that
returns ``Kernel(init, step, warmup)``.  This module gathers what such a kernel needs, so a
kernel writer imports from one place:

* **accept step**: :func:`mh_accept` (the Metropolis–Hastings decision, with NaN / +inf
  proposals rejected and flagged), :func:`select` (keep the new or the old state, leaf by
  leaf), :func:`scalar_logdensity` (evaluate a log-density and insist on a scalar);
* **gradient kernels**: :class:`GradientState` / :class:`GradientParams` (position,
  log-density, gradient, step size and inverse mass), :func:`gradient_init`, :func:`flatten`
  (flat position, flat gradient, flat value-and-grad), :func:`rebuild` (a state at a new flat
  point) and :func:`gradient_warmup` (Stan's windowed adaptation of step size and mass);
* **scalar tuning**: :func:`da_init`, :func:`da_update`, :func:`da_final` (dual averaging of
  a scale towards a target acceptance rate);
* **random numbers**: :func:`split`, :func:`fold_in`, :func:`uniform`, :func:`normal`,
  drop-in replacements for their ``jax.random`` namesakes that XLA fuses into the step
  (same bits for ``split``, ``fold_in`` and ``uniform``);
* **compilation**: :func:`cached_constructor`, which makes two calls with the same settings
  return the same ``Kernel`` object, so ``run_chains`` compiles once;
* **checks**: :func:`check_kernel` runs a kernel once through ``init``, ``step`` and its
  warmup and checks the rules that ``run_chains`` and the combinators rely on
  (:class:`mcgen.types.KernelState`, :class:`mcgen.types.TunableState`,
  :class:`mcgen.types.AdaptationState`, :data:`mcgen.types.INFO_FIELDS`).

The guide page "Writing a kernel" has a complete skeleton built from these pieces.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.adaptation.ensemble import CHAIN_AXIS
from mcgen.kernels._gradient import (
    GradientParams,
    GradientState,
    check_target_accept,
    flatten,
    gradient_init,
    gradient_warmup,
    rebuild,
)
from mcgen.kernels._integrators import flat_value_and_grad
from mcgen.kernels._metrics import check_mass, check_step_size
from mcgen.kernels._proposal import cached_constructor, is_bad_logdensity, mh_accept, scalar_logdensity, select
from mcgen.kernels._random import fold_in, normal, split, uniform
from mcgen.types import INFO_FIELDS, AdaptationState, Kernel, KernelState, TunableState, Warmup

__all__ = [
    "DualAveragingState",
    "GradientParams",
    "GradientState",
    "Kernel",
    "Warmup",
    "cached_constructor",
    "check_kernel",
    "check_mass",
    "check_step_size",
    "check_target_accept",
    "da_final",
    "da_init",
    "da_update",
    "flat_value_and_grad",
    "flatten",
    "fold_in",
    "gradient_init",
    "gradient_warmup",
    "is_bad_logdensity",
    "mh_accept",
    "normal",
    "rebuild",
    "scalar_logdensity",
    "select",
    "split",
    "uniform",
]

_BOOL_FIELDS = ("is_accepted", "is_nonfinite", "is_divergent")


def _structure(tree):
    return jax.tree_util.tree_structure(tree)


def _fail(who: str, message: str):
    raise AssertionError(f"{who}: {message}")


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _check_state(who: str, state, position, logdensity_fn: Callable, needs_params: bool) -> None:
    if not _is_namedtuple(state):
        _fail(who, f"the state must be a NamedTuple, got {type(state).__name__}")
    if not isinstance(state, KernelState):
        _fail(who, f"the state needs fields `position` and `logdensity`, has {state._fields}")
    if needs_params and not isinstance(state, TunableState):
        _fail(
            who,
            f"a kernel with a warmup keeps its tunables in a field `params`; state has {getattr(state, '_fields', ())}",
        )
    if _structure(state.position) != _structure(position):
        _fail(who, "state.position must have the pytree structure of the position given to init")
    if jnp.shape(state.logdensity) != ():
        _fail(who, f"state.logdensity must be a scalar, got shape {jnp.shape(state.logdensity)}")
    expected = float(logdensity_fn(state.position))
    if not np.isclose(float(state.logdensity), expected, rtol=1e-5, atol=1e-6):
        _fail(who, f"state.logdensity is {float(state.logdensity)} but the log-density at state.position is {expected}")


def _check_info(who: str, info) -> None:
    if not _is_namedtuple(info):
        _fail(who, f"step must return (state, info) with info a NamedTuple, got {type(info).__name__}")
    fields = set(info._fields)
    for name in _BOOL_FIELDS:
        if name in fields and jnp.result_type(getattr(info, name)) != jnp.bool_:
            _fail(who, f"info.{name} must be a bool ({INFO_FIELDS[name]})")
    if "accept_prob" in fields:
        a = float(info.accept_prob)
        if not 0.0 <= a <= 1.0:
            _fail(who, f"info.accept_prob must lie in [0, 1], got {a}")


def _check_rebuild(who: str, kernel: Kernel, state, logdensity_fn: Callable) -> None:
    """``init(position)`` with the tunables put back reproduces the state (the combinators' rule)."""
    again = kernel.init(state.position, logdensity_fn)
    if "params" in state._fields:
        again = again._replace(params=state.params)
    if _structure(again) != _structure(state):
        _fail(who, "init at the state's position does not give a state of the same structure")
    for a, b in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(state)):
        if not np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-4, atol=1e-5):
            _fail(
                who,
                "every field of the state must be a function of (position, target, params): "
                "init(state.position) with state.params put back differs from the state",
            )


def _one_chain(fn: Callable) -> Callable:
    """``fn`` for one chain, run inside a ``vmap`` of size one over the ``"chains"`` axis."""

    def run(*args):
        batched = jax.tree_util.tree_map(lambda x: x[None], args)
        out = jax.vmap(lambda a: fn(*a), axis_name=CHAIN_AXIS)(batched)
        return jax.tree_util.tree_map(lambda x: x[0], out)

    return run


def check_kernel(kernel: Kernel, position, logdensity_fn: Callable, *, num_steps: int = 5, seed: int = 0) -> None:
    """Check the rules that ``run_chains`` and the combinators rely on; raise if one is broken.

    Runs ``init``, ``num_steps`` steps under ``jit`` and, when the kernel has one, its warmup
    for ``num_steps`` steps, and checks that

    * ``kernel`` is a :class:`~mcgen.types.Kernel`;
    * every state is a NamedTuple with ``position`` (same pytree structure as ``position``) and
      a scalar ``logdensity`` equal to ``logdensity_fn(position)``
      (:class:`~mcgen.types.KernelState`), and with ``params`` when the kernel has a warmup
      (:class:`~mcgen.types.TunableState`);
    * ``step`` returns ``(state, info)`` with the state's structure unchanged and a NamedTuple
      ``info`` whose common fields (:data:`~mcgen.types.INFO_FIELDS`) have the right types;
    * ``kernel.init(state.position, logdensity_fn)._replace(params=state.params)`` rebuilds the
      state (what combinators do when the target moves under a kernel);
    * a warmup state keeps the kernel state in a field named ``state``
      (:class:`~mcgen.types.AdaptationState`) and ``finalize`` returns a kernel state.

    Parameters
    ----------
    kernel
        The kernel to check.
    position
        A starting position (any pytree).
    logdensity_fn
        A log-density defined at ``position``.
    num_steps
        Steps of sampling, and of warmup, to run.
    seed
        Seed of the PRNG key.

    Raises
    ------
    AssertionError
        Saying which rule is broken.

    Examples
    --------
    >>> import jax.numpy as jnp, mcgen as mc
    >>> from mcgen.kernels.base import check_kernel
    >>> check_kernel(mc.rwmh(), jnp.zeros(2), lambda x: -0.5 * jnp.sum(x**2))
    """
    who = "check_kernel"
    if not isinstance(kernel, Kernel):
        _fail(who, f"expected an mcgen.Kernel, got {type(kernel).__name__}")
    has_warmup = kernel.warmup is not None
    state = jax.jit(kernel.init, static_argnums=1)(position, logdensity_fn)
    _check_state(f"{who} (init)", state, position, logdensity_fn, has_warmup)
    step = jax.jit(kernel.step, static_argnums=2)
    keys = split(jax.random.key(seed), num_steps + 1)
    for i in range(num_steps):
        new_state, info = step(keys[i], state, logdensity_fn)
        if _structure(new_state) != _structure(state):
            _fail(f"{who} (step)", "step must return a state with the structure of its input")
        _check_state(f"{who} (step)", new_state, position, logdensity_fn, has_warmup)
        _check_info(f"{who} (step)", info)
        state = new_state
    _check_rebuild(f"{who} (rebuild)", kernel, state, logdensity_fn)
    if not has_warmup or kernel.warmup is None:
        return
    warmup = kernel.warmup(num_steps)
    if not isinstance(warmup, Warmup):
        _fail(f"{who} (warmup)", f"kernel.warmup(num_steps) must return a Warmup, got {type(warmup).__name__}")
    # one chain in a chain axis of size one, as run_chains maps warmups (they may pool)
    wstate = jax.jit(_one_chain(warmup.init))(state)
    if not isinstance(wstate, AdaptationState):
        _fail(f"{who} (warmup)", "a warmup state must keep the kernel state in a field named `state`")
    if _structure(wstate.state) != _structure(state):
        _fail(f"{who} (warmup)", "warmup_state.state must be a kernel state of the same structure")
    wstep = jax.jit(_one_chain(lambda key, ws: warmup.step(key, ws, logdensity_fn)))
    for i in range(num_steps):
        wstate, info = wstep(jax.random.fold_in(keys[-1], i), wstate)
        _check_state(f"{who} (warmup step)", wstate.state, position, logdensity_fn, True)
        _check_info(f"{who} (warmup step)", info)
    final = jax.jit(_one_chain(warmup.finalize))(wstate)
    if _structure(final) != _structure(state):
        _fail(f"{who} (finalize)", "finalize must return a kernel state of the structure init returns")
    _check_state(f"{who} (finalize)", final, position, logdensity_fn, True)
