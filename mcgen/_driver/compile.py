"""The cache of compiled functions, and the clock that keeps compile time apart.

Compiled functions are cached on (function, static settings, argument shapes, dtypes and
shardings).  A second call with the same ``logdensity_fn`` object, an equal kernel (kernel
constructors return the same object for the same settings) and the same shapes compiles
nothing, whatever the seed or initial values.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

import jax

_CACHE: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()
_CACHE_SIZE = 128


class _Clock:
    """Accumulates compile seconds of one run; ``on_compile()`` is called before each compile."""

    def __init__(self, on_compile: Callable[[], None] | None = None) -> None:
        self.compile = 0.0
        self.on_compile = on_compile


def _call(clock: _Clock, fn: Callable, static: tuple, *args):
    """Run ``fn(*static, *args)`` compiled; compile once per (fn, static, avals, shardings)."""
    flat, treedef = jax.tree_util.tree_flatten(args)
    key = (fn, static, treedef, tuple((jax.typeof(x), getattr(x, "sharding", None)) for x in flat))
    compiled = _CACHE.get(key)
    if compiled is None:
        if clock.on_compile is not None:
            clock.on_compile()
        start = time.perf_counter()
        compiled = jax.jit(lambda *a: fn(*static, *a)).lower(*args).compile()
        clock.compile += time.perf_counter() - start
        _CACHE[key] = compiled
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return compiled(*args)


def clear_cache() -> None:
    """Forget every compiled function (frees memory; the next run compiles afresh)."""
    _CACHE.clear()
