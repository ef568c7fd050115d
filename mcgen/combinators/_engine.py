"""The machinery ``gibbs``, ``compose`` and ``mixture`` share: updates of one shared position.

Each combinator holds *items*: an inner kernel (or, for a Gibbs block, an exact conditional
sampler) together with the part of the position it moves (``get`` / ``put``) and the target
it sees there (``lambda v: logdensity_fn(put(x, v))``: the conditional of a Gibbs block, the
whole target for ``compose`` and ``mixture``).  A step either runs every item in turn
(:func:`sweep`: systematic-scan Gibbs, ``compose``) or one item picked at random
(:func:`pick_one`: random-scan Gibbs, ``mixture``).

**The stale-cache trap, and how it is avoided.**  An inner kernel's state caches facts about
the target it last saw: the log-density of its position (``logdensity``), its gradient
(``logdensity_grad``)...  When another Gibbs block moves, every other block's conditional
changes; when another kernel of a ``compose`` moves the position, every other kernel's cache
describes a point the chain has left.  A Metropolis ratio computed against such a cache
compares log-densities of two different targets, and the chain silently samples the wrong
distribution.  So the combinators never *store* an inner kernel's state.  They store the one
shared position, the joint log-density there, and per item only the inner kernel's tunables
(``state.params``, the common field name for them).  Before an item steps, its state is
rebuilt by the kernel's own ``init`` at the current value under the current target, with the
stored tunables put back::

    state = kernel.init(value, target)._replace(params=stored_params)

``init`` recomputes every cache the kernel keeps, whatever it is called, so the rebuild is
right for any kernel whose state is a function of its position, its target and its
``params`` (every kernel in mcgen, and the combinators themselves).  Under ``jit`` the
tunables ``init`` would have computed are dead code; what is left costs one log-density (one
gradient, for gradient kernels) per inner step.

During warmup the stored object is the item's adaptation state.  Adaptation states hold the
kernel state they adapt in a field named ``state`` (the convention of every ``Warmup`` in
mcgen); :func:`refresh` rebuilds that kernel state as above and leaves the adaptation
statistics alone.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from mcgen.kernels import _random
from mcgen.kernels._proposal import scalar_logdensity
from mcgen.types import Kernel, Warmup, no_warmup


class Item(NamedTuple):
    """One update of a combinator: a kernel (or exact sampler) and the part it moves."""

    name: str  # key of the item in the combinator's params / info dicts
    update: Any  # a Kernel, or an exact sampler ``f(key, position) -> new value``
    is_kernel: bool
    get: Callable[[Any], Any]  # position -> the value the item moves
    put: Callable[[Any, Any], Any]  # (position, new value) -> position


class Mode(NamedTuple):
    """How an item's stored object becomes a kernel state, steps, and is stored again."""

    prepare: Callable  # (item, stored, value, target) -> state to step
    step: Callable  # (item, key, state, target) -> (state, info)
    store: Callable  # state after the step -> what the combinator keeps


def params_of(state) -> Any:
    """The tunables of a kernel state (``None`` when it has none)."""
    return getattr(state, "params", None)


def rebuild(kernel: Kernel, position, logdensity_fn: Callable, params) -> Any:
    """``kernel``'s state at ``position`` under ``logdensity_fn``, with tunables ``params``."""
    state = kernel.init(position, logdensity_fn)
    if "params" in getattr(state, "_fields", ()):
        state = state._replace(params=params)
    return state


def kernel_state(state) -> Any:
    """The kernel state inside an adaptation state (descending ``state`` fields)."""
    while "state" in getattr(state, "_fields", ()):
        state = state.state
    return state


def refresh(kernel: Kernel, state, position, logdensity_fn: Callable) -> Any:
    """``state`` (a kernel state, or an adaptation state wrapping one) moved to ``position``
    under ``logdensity_fn``: every cache recomputed, tunables and adaptation kept."""
    if "state" in getattr(state, "_fields", ()):
        return state._replace(state=refresh(kernel, state.state, position, logdensity_fn))
    return rebuild(kernel, position, logdensity_fn, params_of(state))


def warmup_of(kernel: Kernel, num_steps: int) -> Warmup:
    """The kernel's warmup, or a plain burn-in when it has nothing to adapt."""
    return (kernel.warmup or no_warmup(kernel))(num_steps)


SAMPLING = Mode(
    prepare=lambda item, stored, value, target: rebuild(item.update, value, target, stored),
    step=lambda item, key, state, target: item.update.step(key, state, target),
    store=lambda state: params_of(kernel_state(state)),
)


def warmup_mode(warmups: dict) -> Mode:
    """Items step through their own warmups; the combinator keeps their adaptation states."""
    return Mode(
        prepare=lambda item, stored, value, target: refresh(item.update, stored, value, target),
        step=lambda item, key, state, target: warmups[item.name].step(key, state, target),
        store=lambda state: state,
    )


def target_of(item: Item, logdensity_fn: Callable, position) -> Callable:
    """What ``item`` sees: the target with everything but its own value held at ``position``."""
    return lambda value: logdensity_fn(item.put(position, value))


def init_params(items, position, logdensity_fn) -> dict:
    """Starting tunables of every item's kernel (``None`` for exact samplers)."""
    return {
        it.name: params_of(it.update.init(it.get(position), target_of(it, logdensity_fn, position)))
        if it.is_kernel
        else None
        for it in items
    }


def step_item(item: Item, mode: Mode, key, position, stored, logdensity_fn, check: Callable):
    """One update of one item: ``(position, logdensity or None, stored, info)``."""
    if not item.is_kernel:
        new = check(item, item.update(key, position), item.get(position))
        return item.put(position, new), None, stored, None
    target = target_of(item, logdensity_fn, position)
    state = mode.prepare(item, stored, item.get(position), target)
    state, info = mode.step(item, key, state, target)
    inner = kernel_state(state)
    return item.put(position, inner.position), getattr(inner, "logdensity", None), mode.store(state), info


def _joint(logdensity, logdensity_fn, position, dtype):
    value = scalar_logdensity(logdensity_fn, position) if logdensity is None else logdensity
    return jnp.asarray(value).astype(dtype)


def sweep(key, items, mode, position, stored: dict, logdensity_fn, dtype, check):
    """Every item in turn; item ``i`` steps with ``fold_in(key, i)``.

    Returns ``(position, logdensity, stored, infos)`` with ``infos`` keyed by item name."""
    infos, logdensity = {}, None
    for i, item in enumerate(items):
        position, logdensity, kept, infos[item.name] = step_item(
            item, mode, _random.fold_in(key, i), position, stored[item.name], logdensity_fn, check
        )
        stored = {**stored, item.name: kept}
    return position, _joint(logdensity, logdensity_fn, position, dtype), stored, infos


def pick_one(key, items, log_weights, mode, position, stored: dict, logdensity_fn, dtype, check):
    """One item drawn with probabilities ``exp(log_weights)`` (key ``fold_in(key, n)``), run
    with ``fold_in(key, i)``.  Items not chosen report all-zero infos.

    Returns ``(position, logdensity, stored, infos, updated)``; ``updated`` marks the choice."""
    n = len(items)
    choice = jax.random.categorical(_random.fold_in(key, n), jnp.asarray(log_weights, jnp.float32))

    def run(j):
        def branch(position, stored):
            item = items[j]
            position, logdensity, kept, info = step_item(
                item, mode, _random.fold_in(key, j), position, stored[item.name], logdensity_fn, check
            )
            logdensity = _joint(logdensity, logdensity_fn, position, dtype)
            return position, logdensity, {**stored, item.name: kept}, info

        return branch

    shapes = [jax.eval_shape(run(j), position, stored)[3] for j in range(n)]

    def with_zeros(j):
        def branch(position, stored):
            position, logdensity, stored, info = run(j)(position, stored)
            infos = {
                it.name: info if k == j else jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[k])
                for k, it in enumerate(items)
            }
            return position, logdensity, stored, infos

        return branch

    position, logdensity, stored, infos = jax.lax.switch(choice, [with_zeros(j) for j in range(n)], position, stored)
    return position, logdensity, stored, infos, {it.name: choice == k for k, it in enumerate(items)}


def any_flag(infos: dict, name: str) -> jax.Array:
    """OR of the inner infos' field ``name`` (``is_divergent``, ``is_nonfinite``), False if none."""
    flags = [jnp.any(jnp.asarray(getattr(info, name))) for info in infos.values() if hasattr(info, name)]
    return jnp.any(jnp.stack(flags)) if flags else jnp.zeros((), bool)


def cast_like(item: Item, new, old):
    """Check an exact sampler's output against the value it replaces (shapes) and cast dtypes."""
    new_leaves, new_tree = jax.tree_util.tree_flatten(new)
    old_leaves, old_tree = jax.tree_util.tree_flatten(old)
    if new_tree != old_tree:
        raise ValueError(
            f"the update of block {item.name!r} returned a value of structure {new_tree}, but the block is {old_tree}"
        )
    out = []
    for a, b in zip(new_leaves, old_leaves):
        a, b = jnp.asarray(a), jnp.asarray(b)
        if a.shape != b.shape:
            raise ValueError(
                f"the update of block {item.name!r} returned shape {a.shape}, but the block has shape {b.shape}"
            )
        out.append(a.astype(b.dtype))
    return jax.tree_util.tree_unflatten(old_tree, out)


class CombinedWarmupState(NamedTuple):
    """Warmup state of a combinator: its own state and its items' adaptation states."""

    state: Any  # the combinator's state (position, logdensity, params), params kept current
    inner: dict  # item name -> that item's adaptation state (None for exact samplers)


def build(
    items,
    make_state: Callable,
    make_info: Callable,
    *,
    log_weights=None,
    check: Callable = cast_like,
    validate: Callable = lambda position: None,
) -> Kernel:
    """A :class:`~mcgen.types.Kernel` running ``items`` in turn (``log_weights is None``) or
    one at random.

    ``make_state(position, logdensity, params)`` and ``make_info(infos, updated)`` build the
    combinator's own NamedTuples; ``validate(position)`` raises on a position it cannot move.
    """

    def advance(key, mode, position, stored, logdensity_fn, dtype):
        if log_weights is None:
            position, logdensity, stored, infos = sweep(key, items, mode, position, stored, logdensity_fn, dtype, check)
            updated = None
        else:
            position, logdensity, stored, infos, updated = pick_one(
                key, items, log_weights, mode, position, stored, logdensity_fn, dtype, check
            )
        return position, logdensity, stored, make_info(infos, updated)

    def init(position, logdensity_fn):
        validate(position)
        logdensity = scalar_logdensity(logdensity_fn, position)
        return make_state(position, logdensity, init_params(items, position, logdensity_fn))

    def step(key, state, logdensity_fn):
        validate(state.position)
        position, logdensity, params, info = advance(
            key, SAMPLING, state.position, state.params, logdensity_fn, state.logdensity.dtype
        )
        return make_state(position, logdensity, params), info

    def warmup(num_steps: int) -> Warmup:
        warmups = {it.name: warmup_of(it.update, num_steps) for it in items if it.is_kernel}
        mode = warmup_mode(warmups)

        def current_params(inner):
            return {it.name: params_of(kernel_state(inner[it.name])) if it.is_kernel else None for it in items}

        def w_init(state) -> CombinedWarmupState:
            # Warmup.init sees no target: the items' states start from a placeholder target
            # and, as before every step, are rebuilt under the real one before they move.
            def placeholder(value):
                return jnp.zeros((), state.logdensity.dtype)

            x = state.position
            inner = {
                it.name: warmups[it.name].init(rebuild(it.update, it.get(x), placeholder, state.params[it.name]))
                if it.is_kernel
                else None
                for it in items
            }
            return CombinedWarmupState(state, inner)

        def w_step(key, ws: CombinedWarmupState, logdensity_fn):
            validate(ws.state.position)
            position, logdensity, inner, info = advance(
                key, mode, ws.state.position, ws.inner, logdensity_fn, ws.state.logdensity.dtype
            )
            return CombinedWarmupState(make_state(position, logdensity, current_params(inner)), inner), info

        def w_finalize(ws: CombinedWarmupState):
            params = {
                it.name: params_of(warmups[it.name].finalize(ws.inner[it.name])) if it.is_kernel else None
                for it in items
            }
            return ws.state._replace(params=params)

        return Warmup(w_init, w_step, w_finalize)

    has_warmup = any(it.is_kernel and it.update.warmup is not None for it in items)
    return Kernel(init, step, warmup if has_warmup else None)
