"""The compiled pieces of a run: chain keys, kernel init, warmup and sampling chunks.

Chain ``i`` draws all its randomness from ``fold_in(key(seed), i)``: phase keys are
``fold_in(chain_key, 0|1|2)`` (init, warmup, sampling) and step ``t`` of a phase uses
``fold_in(phase_key, t)``.  A chunk is a ``lax.scan`` over steps ``t0 .. t0 + length - 1``
of a ``vmap`` (or ``lax.map``) across chains, so where the scan is cut never changes a draw.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mcgen.adaptation.ensemble import CHAIN_AXIS, _chain_axis
from mcgen.kernels import _random
from mcgen.types import Kernel


def _chain_keys(num_chains: int, seed):
    root = jax.random.key(seed)
    chain = jax.vmap(lambda i: _random.fold_in(root, i))(jnp.arange(num_chains, dtype=jnp.uint32))
    phase = jax.vmap(lambda k: jax.vmap(lambda j: _random.fold_in(k, j))(jnp.arange(3, dtype=jnp.uint32)))
    keys = phase(chain)  # (num_chains, 3): init, warmup, sampling
    return keys[:, 0], keys[:, 1], keys[:, 2]


def _over_chains(method: str, fn: Callable, num_real: int | None = None) -> Callable:
    """Map ``fn`` over the leading (chain) axis of every argument: vmap, or lax.map one by one.

    With ``num_real`` (warmups) the vmap names its axis ``"chains"`` so that ``fn`` may pool
    statistics across chains (:mod:`mcgen.adaptation.ensemble`); the first ``num_real``
    chains are the requested ones, the rest padding.  Naming the axis changes nothing for a
    function that uses no collective.
    """
    if method == "sequential":
        mapped = lambda *args: jax.lax.map(lambda a: fn(*a), args)  # noqa: E731
    elif num_real is None:
        return jax.vmap(fn)
    else:
        mapped = jax.vmap(fn, axis_name=CHAIN_AXIS)
    if num_real is None:
        return mapped

    def run(*args):
        with _chain_axis(method, num_real):
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

        return _over_chains(method, one, num_real)(ws, keys), None

    ts = t0 + jnp.arange(length, dtype=jnp.uint32)
    return jax.lax.scan(body, wstates, ts)[0]


def _start_and_warmup(method, kernel, logdensity_fn, num_warmup, num_real, positions, keys):
    """Kernel init, warmup init and the whole warmup as one program.

    Returns the warmup states and the initial log-density (None when the kernel's state keeps
    none), which the driver checks once the program has run.  Same draws as the three
    programs run one after the other.
    """
    states = _init_states(method, kernel, logdensity_fn, positions)
    wstates = _warmup_init(method, kernel, num_warmup, num_real, states)
    wstates = _warmup_chunk(
        method, kernel, logdensity_fn, num_warmup, num_real, num_warmup, wstates, keys, jnp.uint32(0)
    )
    return wstates, getattr(states, "logdensity", None)


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
            state, info = kernel.step(_random.fold_in(key, t), state, logdensity_fn)
        else:

            def inner(st, j):
                return kernel.step(_random.fold_in(key, t * thin + j), st, logdensity_fn)

            state, infos = jax.lax.scan(inner, state, jnp.arange(thin, dtype=jnp.uint32))
            info = jax.tree_util.tree_map(lambda x: x[-1], infos)
        draw = state.position if transform is None else transform(state.position)
        return state, (draw, _flat_info(info, state))

    def body(sts, t):
        return _over_chains(method, lambda st, k: one(st, k, t))(sts, keys)

    ts = t0 + jnp.arange(length, dtype=jnp.uint32)
    return jax.lax.scan(body, states, ts)
