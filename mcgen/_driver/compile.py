"""The cache of compiled functions, and the clock that keeps compile time apart.

Compiled functions are cached on (function, static settings, argument shapes, dtypes and
shardings).  A second call with the same ``logdensity_fn`` object, an equal kernel (kernel
constructors return the same object for the same settings) and the same shapes compiles
nothing, whatever the seed or initial values.
"""

from __future__ import annotations

import collections
import concurrent.futures
import time
from typing import Any, Callable

import jax

from mcgen._driver.placement import _mesh_of, _tracing_on

_CACHE: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()
_CACHE_SIZE = 128


class _Clock:
    """Accumulates compile seconds of one run; ``on_compile()`` is called before each compile."""

    def __init__(self, on_compile: Callable[[], None] | None = None) -> None:
        self.compile = 0.0
        self.on_compile = on_compile


_AHEAD: concurrent.futures.ThreadPoolExecutor | None = None


def _key(fn: Callable, static: tuple, args: tuple):
    flat, treedef = jax.tree_util.tree_flatten(args)
    return (fn, static, treedef, tuple((jax.typeof(x), getattr(x, "sharding", None)) for x in flat))


def _store(key, compiled) -> None:
    _CACHE[key] = compiled
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


def _lower(fn: Callable, static: tuple, args: tuple):
    with _tracing_on(_mesh_of(args)):  # the mesh for the steps that each device loops over alone
        return jax.jit(lambda *a: fn(*static, *a)).lower(*args)


def _call(clock: _Clock, fn: Callable, static: tuple, *args, lowered: Callable | None = None):
    """Run ``fn(*static, *args)`` compiled; compile once per (fn, static, avals, shardings).

    ``lowered(out_info)``, if given, is called between lowering and compiling (with the
    shapes of the outputs) when this call compiles: the place to start compiling the next
    program ahead (:func:`_compile_ahead`) while XLA compiles this one.
    """
    key = _key(fn, static, args)
    compiled = _CACHE.get(key)
    if isinstance(compiled, concurrent.futures.Future):  # compiled ahead, maybe still compiling
        if not compiled.done() and clock.on_compile is not None:
            clock.on_compile()
        start = time.perf_counter()
        try:
            compiled = compiled.result()
        except Exception:  # compile here instead, so that an error is raised where it belongs
            compiled = None
        clock.compile += time.perf_counter() - start
        if compiled is None:
            del _CACHE[key]
        else:
            _CACHE[key] = compiled
    if compiled is None:
        if clock.on_compile is not None:
            clock.on_compile()
        start = time.perf_counter()
        lowering = _lower(fn, static, args)
        if lowered is not None:
            lowered(lowering.out_info)
        compiled = lowering.compile()
        clock.compile += time.perf_counter() - start
        _store(key, compiled)
    else:
        _CACHE.move_to_end(key)
    return compiled(*args)


def _compile_ahead(fn: Callable, static: tuple, *args) -> None:
    """Trace ``fn(*static, *args)`` here and compile it on a background thread (``args`` may
    be ``jax.ShapeDtypeStruct`` with the sharding the real arguments will have).

    XLA compiles without Python's global lock, so on a machine with a free core the program
    is ready, or nearly, when :func:`_call` asks for it with arguments of the same shapes,
    dtypes and shardings; with other arguments the compiled program is simply not used.
    Tracing stays on the calling thread: a log-density may keep global state while it is
    traced (NumPyro's handler stack does), so two traces must never overlap.
    """
    global _AHEAD
    key = _key(fn, static, args)
    if key in _CACHE:
        return
    lowering = _lower(fn, static, args)
    if _AHEAD is None:
        _AHEAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcgen-compile")
    _store(key, _AHEAD.submit(lowering.compile))


def clear_cache() -> None:
    """Forget every compiled function (frees memory; the next run compiles afresh)."""
    _CACHE.clear()
