"""The compiled pieces of a run: chain keys, kernel init, warmup and sampling chunks.

Chain ``i`` draws all its randomness from ``fold_in(key(seed), i)``: phase keys are
``fold_in(chain_key, 0|1|2)`` (init, warmup, sampling) and step ``t`` of a phase uses
``fold_in(phase_key, t)``.  A chunk is a ``lax.scan`` over steps ``t0 .. t0 + length - 1``
of a ``vmap`` (or ``lax.map``) across chains, so where the scan is cut never changes a draw.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp

from mcgen._driver.placement import _on_each_device, _pooled_on_each_device
from mcgen.adaptation.ensemble import _LOCAL_AXIS, CHAIN_AXIS, _chain_axis
from mcgen.kernels import _random
from mcgen.types import Kernel, isolated_step


def _chain_keys(num_chains: int, seed):
    root = jax.random.key(seed)
    chain = jax.vmap(lambda i: _random.fold_in(root, i))(jnp.arange(num_chains, dtype=jnp.uint32))
    phase = jax.vmap(lambda k: jax.vmap(lambda j: _random.fold_in(k, j))(jnp.arange(3, dtype=jnp.uint32)))
    keys = phase(chain)  # (num_chains, 3): init, warmup, sampling
    return keys[:, 0], keys[:, 1], keys[:, 2]


def _over_chains(method: str, fn: Callable, num_real: int | None = None, split=None) -> Callable:
    """Map ``fn`` over the leading (chain) axis of every argument: vmap, or lax.map one by one.

    With ``num_real`` (warmups) the vmap names its axis ``"chains"`` so that ``fn`` may pool
    statistics across chains (:mod:`mcgen.adaptation.ensemble`); the first ``num_real``
    chains are the requested ones, the rest padding.  Naming the axis changes nothing for a
    function that uses no collective.  With ``split`` (a device's own chains, see
    :func:`~mcgen._driver.placement._pooled_on_each_device`) the axis is the device's, and the
    ensemble helpers reduce over it and then over the devices.
    """
    if method == "sequential":
        mapped = lambda *args: jax.lax.map(lambda a: fn(*a), args)  # noqa: E731
    elif num_real is None:
        return jax.vmap(fn)
    else:
        mapped = jax.vmap(fn, axis_name=CHAIN_AXIS if split is None else _LOCAL_AXIS)
    if num_real is None:
        return mapped

    def run(*args):
        with _chain_axis(method, num_real, split):
            return mapped(*args)

    return run


def _init_states(method, kernel: Kernel, logdensity_fn, positions):
    return _over_chains(method, lambda x: kernel.init(x, logdensity_fn))(positions)


def _warmup_of(kernel: Kernel, num_warmup: int):
    if kernel.warmup is None:
        from mcgen.types import no_warmup

        return no_warmup(kernel)(num_warmup)
    return kernel.warmup(num_warmup)


def _warmup_init(method, kernel, num_warmup, num_real, states):
    return _over_chains(method, _warmup_of(kernel, num_warmup).init, num_real)(states)


def _warmup_finalize(method, kernel, num_warmup, num_real, wstates):
    return _over_chains(method, _warmup_of(kernel, num_warmup).finalize, num_real)(wstates)


def _warmup_chunk(method, kernel, logdensity_fn, num_warmup, num_real, length, wstates, keys, t0):
    w = _warmup_of(kernel, num_warmup)

    def body(ws, t):
        def one(state, key):
            return w.step(_random.fold_in(key, t), state, logdensity_fn)[0]

        return _pooled_on_each_device(functools.partial(_over_chains, method, one, num_real))(ws, keys), None

    ts = t0 + jnp.arange(length, dtype=jnp.uint32)
    return jax.lax.scan(body, wstates, ts)[0]


def _start_and_warmup(method, kernel, logdensity_fn, num_warmup, num_real, positions, keys):
    """Kernel init, warmup init and the whole warmup as one program.

    Returns the warmup states and the initial log-density (None when the kernel's state keeps
    none), which the driver checks once the program has run.  Same draws as the three
    programs run one after the other.
    """
    # fenced, so that no constant of the initial warmup state is folded into the first step
    # (a one-step warmup's loop is unrolled): the same rounding as the warmup run in chunks
    states = _init_states(method, kernel, logdensity_fn, positions)
    wstates = jax.lax.optimization_barrier(_warmup_init(method, kernel, num_warmup, num_real, states))
    wstates = _warmup_chunk(
        method, kernel, logdensity_fn, num_warmup, num_real, num_warmup, wstates, keys, jnp.uint32(0)
    )
    return wstates, getattr(states, "logdensity", None)


def _fusable(kernel: Kernel, num_warmup: int) -> bool:
    """Whether the warmup comes apart around the kernel's own step (:class:`~mcgen.types.WarmupParts`)."""
    parts = getattr(_warmup_of(kernel, num_warmup), "parts", None)
    return parts is not None and parts.kernel_step is kernel.step


# perf_counter() when a whole-run program (keyed by the run's token) finished its warmup
_WARMUP_DONE: dict[int, float] = {}


def _warmup_done(token, *_) -> None:
    _WARMUP_DONE[int(token)] = time.perf_counter()


def _row(transform, state, info):
    """What sampling keeps of a step: the (transformed) position and the info, flattened."""
    draw = state.position if transform is None else transform(state.position)
    return draw, _flat_info(info, state)


def _whole_run(
    method, kernel, logdensity_fn, num_warmup, num_real, thin, transform, num_samples, positions, wkeys, skeys, token
):
    """Kernel init, the whole warmup and the whole sampling as one program, which calls the
    kernel's step in one place: the model's gradient and the kernel's loop compile once.

    The loop is :func:`_steps` over all ``num_warmup + num_samples * thin`` steps.  When the
    warmup ends the program reports the time to the host (``_warmup_done(token)``), so that
    warmup and sampling seconds stay apart.  Returns the final warmup states (for their
    trace), the final states, ``(draws, info)`` laid out as a sampling chunk's and the initial
    log-density.
    """
    states = _init_states(method, kernel, logdensity_fn, positions)
    wstates = _warmup_init(method, kernel, num_warmup, num_real, states)
    finals = _warmup_finalize(method, kernel, num_warmup, num_real, wstates)
    static = (method, kernel, logdensity_fn, num_warmup, num_real, thin, transform)
    wstates, finals, rows = _steps(
        *static, num_samples, num_warmup + num_samples * thin, wstates, finals, wkeys, skeys, jnp.uint32(0), token
    )
    return wstates, finals, rows, getattr(states, "logdensity", None)


def _steps(
    method,
    kernel,
    logdensity_fn,
    num_warmup,
    num_real,
    thin,
    transform,
    num_rows,
    length,
    wstates,
    states,
    wkeys,
    skeys,
    u0,
    token=None,
):
    """Steps ``u0 .. u0 + length - 1`` of the one loop over warmup and sampling.

    Step ``u`` is warmup step ``u`` (``prepare``, the kernel's step, ``absorb``:
    :class:`~mcgen.types.WarmupParts`) or sampling step ``u - num_warmup`` (the kernel's step
    from the finalized state), with the keys, the order of operations and so the draws of the
    warmup and sampling programs; the kernel's step is called in one place.  Both the warmup
    states and the (finalized or sampling) states ride in the carry.  The rows kept from
    ``u0`` on are written in place into buffers of ``num_rows`` rows, returned laid out as a
    sampling chunk's ``(draws, info)`` (unused by a warmup chunk).  A chunk program serves the
    warmup's chunks and the sampling's alike where their lengths agree.  With a ``token`` the
    program reports the end of the warmup to the host (``_warmup_done``).
    """
    w = _warmup_of(kernel, num_warmup)
    assert w.parts is not None  # the driver runs the one loop only where _fusable holds
    prepare, kernel_step, absorb = w.parts

    def kept(state, key):
        return _row(transform, *kernel_step(key, state, logdensity_fn))

    spec = jax.eval_shape(_over_chains(method, kept), states, skeys)
    rows = jax.tree_util.tree_map(lambda x: jnp.zeros((x.shape[0], num_rows, *x.shape[1:]), x.dtype), spec)
    warm_steps = jnp.uint32(num_warmup)
    first_row = jnp.where(u0 < warm_steps, 0, (u0 - warm_steps) // thin)  # the draw that row 0 holds

    def one(ws, state, buffer, wkey, skey, u):
        warm = u < warm_steps
        s = u - warm_steps  # the sampling step (wraps around during warmup, where it is unused)
        key = jax.lax.cond(warm, lambda: _random.fold_in(wkey, u), lambda: _random.fold_in(skey, s))
        start = jax.lax.cond(warm, prepare, lambda _: state, ws)
        new, info = isolated_step(kernel_step, key, start, logdensity_fn)
        ws = jax.lax.cond(warm, lambda: absorb(ws, new, info)[0], lambda: ws)
        state = jax.lax.cond(warm, lambda: w.finalize(jax.lax.optimization_barrier(ws)), lambda: new)
        keep = jnp.logical_not(warm) & (s % thin == thin - 1)
        i = jnp.where(warm, 0, s // thin - first_row)
        row = jax.lax.cond(
            keep, lambda: _row(transform, new, info), lambda: jax.tree_util.tree_map(lambda b: b[i], buffer)
        )
        buffer = jax.tree_util.tree_map(lambda b, r: jax.lax.dynamic_update_index_in_dim(b, r, i, 0), buffer, row)
        return ws, state, buffer

    def each(split):
        # the chain axis named, as for a warmup program: a warmup's parts may pool statistics
        # across chains (mcgen.adaptation.ensemble); naming it changes nothing for those that do not
        def mapped(ws, st, buf, wk, sk, u):
            per_chain = lambda w, s, b, k1, k2: one(w, s, b, k1, k2, u)  # noqa: E731
            return _over_chains(method, per_chain, num_real, split)(ws, st, buf, wk, sk)

        return mapped

    def body(carry, u):
        carry = _pooled_on_each_device(each, num_shared=1)(*carry, wkeys, skeys, u)
        if token is not None and num_warmup > 0:
            step_size = jax.tree_util.tree_leaves(carry[1])[0]  # orders the report after the step
            jax.lax.cond(
                u == warm_steps - 1,
                lambda: jax.debug.callback(_warmup_done, token, step_size),
                lambda: None,
            )
        return carry, None

    steps = u0 + jnp.arange(length, dtype=jnp.uint32)
    wstates, states, rows = jax.lax.scan(body, (wstates, states, rows), steps)[0]
    return wstates, states, jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), rows)


def _warmup_trace(wstates):
    """The warmup's own record (``WarmupTrace`` of the window adaptation) as host arrays, or None.

    Read from the ``trace`` field of the outermost warmup state; warmups without one (burn-in,
    combinators) give None.  Leaves keep the leading chain axis.
    """
    trace = getattr(wstates, "trace", None)
    if trace is None:
        return None
    from mcgen._driver.placement import _host_value

    return {name: _host_value(value) for name, value in trace._asdict().items()}


def _flat_info(info, state) -> dict:
    """Info fields (nested ones joined by '.') plus the state's log-density."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(info)[0]:
        name = ".".join(getattr(p, "name", None) or str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[name or "info"] = leaf
    if hasattr(state, "logdensity"):
        out["logdensity"] = state.logdensity
    return out


def _sample_chunk(method, kernel, logdensity_fn, thin, transform, length, states, keys, t0):
    def one(state, key, t):
        if thin == 1:
            state, info = isolated_step(kernel.step, _random.fold_in(key, t), state, logdensity_fn)
        else:

            def inner(st, j):
                return isolated_step(kernel.step, _random.fold_in(key, t * thin + j), st, logdensity_fn)

            state, infos = jax.lax.scan(inner, state, jnp.arange(thin, dtype=jnp.uint32))
            info = jax.tree_util.tree_map(lambda x: x[-1], infos)
        return state, _row(transform, state, info)

    def each(sts, ks, t):
        return _over_chains(method, lambda st, k: one(st, k, t))(sts, ks)

    def body(sts, t):
        return _on_each_device(each, num_shared=1)(sts, keys, t)

    ts = t0 + jnp.arange(length, dtype=jnp.uint32)
    return jax.lax.scan(body, states, ts)
