r"""Kernel algebra on one target: ``compose`` (apply kernels in turn), ``mixture`` (pick one).

If kernels :math:`K_1, \dots, K_m` each leave :math:`\pi` invariant, so do

.. math::

    K_{\text{compose}} = K_1 K_2 \cdots K_m \qquad\text{and}\qquad
    K_{\text{mixture}} = \textstyle\sum_i w_i K_i,\quad w_i \ge 0,\ \sum_i w_i = 1 ,

because :math:`\pi K_1 = \pi` implies :math:`\pi K_1 K_2 = \pi K_2 = \pi`, and
:math:`\pi \sum_i w_i K_i = \sum_i w_i \pi = \pi` (Tierney 1994).  A mixture of reversible
kernels is reversible; a composition in general is not, but remains invariant.  Typical uses:
a cheap local move composed with an occasional global one (``compose(rwmh(), independent_mh(q))``),
or a mixture of proposal scales.  Both return a :class:`~mcgen.types.Kernel`, so they nest in
``gibbs`` and ``gibbs`` nests in them.

**State.** One shared position and its log-density, plus each kernel's own tunables in
``params[name]``.  The kernels share the target but not their caches: before a kernel steps
its state is rebuilt at the current position by its own ``init`` with its stored tunables put
back, so what it caches (log-density, gradient, proposal density...) always describes the
point the chain is at (see :mod:`mcgen.combinators._engine`).

**Warmup.** Every kernel runs its own warmup, adapting its own tunables (a ``mixture``
adapts a kernel only on the steps that pick it).

**Names and keys.** Kernels are named ``"0"``, ``"1"``, ... in the order given, or by the keys of
a dict passed instead; ``params``, infos and the warmup's states are dicts keyed by those
names.  Kernel ``i`` steps with ``fold_in(key, i)``; a mixture picks its kernel with
``fold_in(key, num_kernels)``.

References
----------
Tierney, L. (1994). Markov chains for exploring posterior distributions. Ann. Statist. 22,
1701–1728 (section 2.4, hybrid strategies).

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> kernel = mc.compose(mc.rwmh(0.1, adapt=False), mc.rwmh(3.0, adapt=False))
>>> kernel = mc.mixture([mc.rwmh(), mc.adaptive_mh()], weights=[0.3, 0.7])
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), kernel, init=jnp.zeros(3), progress=False)
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import jax
import numpy as np

from mcgen.combinators._engine import Item, any_flag, build
from mcgen.kernels._proposal import cached_constructor
from mcgen.types import Kernel

__all__ = ["ComposeInfo", "ComposeState", "MixtureInfo", "MixtureState", "compose", "mixture"]


class ComposeState(NamedTuple):
    position: object
    logdensity: jax.Array
    params: dict  # kernel name -> its tunables


class ComposeInfo(NamedTuple):
    kernels: dict  # kernel name -> its info
    is_divergent: jax.Array  # any kernel diverged
    is_nonfinite: jax.Array  # any kernel met a NaN / +inf log-density


class MixtureState(NamedTuple):
    position: object
    logdensity: jax.Array
    params: dict  # kernel name -> its tunables


class MixtureInfo(NamedTuple):
    kernels: dict  # kernel name -> its info (all zeros for the kernels not chosen)
    chosen: dict  # kernel name -> whether it was the one applied
    is_divergent: jax.Array
    is_nonfinite: jax.Array


def _whole(name: str, kernel) -> Item:
    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernel {name!r} must be an mcgen Kernel, got {type(kernel).__name__}")
    return Item(name, kernel, True, lambda x: x, lambda x, value: value)


def _named(kernels, who: str) -> tuple:
    pairs = (
        tuple(kernels.items()) if isinstance(kernels, Mapping) else tuple((str(i), k) for i, k in enumerate(kernels))
    )
    if not pairs:
        raise ValueError(f"{who}: needs at least one kernel")
    if len({str(name) for name, _ in pairs}) != len(pairs):
        raise ValueError(f"{who}: kernel names must be distinct, got {[name for name, _ in pairs]}")
    return tuple((str(name), k) for name, k in pairs)


@cached_constructor
def _compose(pairs: tuple) -> Kernel:
    items = tuple(_whole(name, k) for name, k in pairs)

    def make_info(infos, updated):
        del updated
        return ComposeInfo(infos, any_flag(infos, "is_divergent"), any_flag(infos, "is_nonfinite"))

    return build(items, ComposeState, make_info)


def compose(*kernels: Kernel | Mapping[str, Kernel]) -> Kernel:
    """Apply kernels one after another on the same target: ``K_1`` then ``K_2`` then ...

    Parameters
    ----------
    *kernels
        mcgen kernels (named ``"0"``, ``"1"``, ...), or a single dict ``{name: kernel}``.

    Returns
    -------
    Kernel
        State :class:`ComposeState` (``params[name]`` per kernel), info :class:`ComposeInfo`
        (``kernels[name]``), and a warmup in which every kernel adapts its own tunables.
    """
    source = kernels[0] if len(kernels) == 1 and isinstance(kernels[0], Mapping) else kernels
    return _compose(_named(source, "compose"))


@cached_constructor
def _mixture(pairs: tuple, log_weights: tuple) -> Kernel:
    items = tuple(_whole(name, k) for name, k in pairs)

    def make_info(infos, updated):
        return MixtureInfo(infos, updated, any_flag(infos, "is_divergent"), any_flag(infos, "is_nonfinite"))

    return build(items, MixtureState, make_info, log_weights=log_weights)


def mixture(kernels: Sequence[Kernel] | Mapping[str, Kernel], weights: Sequence[float] | None = None) -> Kernel:
    """Apply one kernel per step, kernel ``i`` with probability ``weights[i]``.

    Parameters
    ----------
    kernels
        A list of mcgen kernels (named ``"0"``, ``"1"``, ...) or a dict ``{name: kernel}``.
    weights
        Probabilities, non-negative and summing to one (within ``1e-6``), in the order of
        ``kernels``; default uniform.  Under ``vmap`` every kernel's step is computed and the
        chosen one kept, so a step costs the sum of the kernels' costs.

    Returns
    -------
    Kernel
        State :class:`MixtureState`, info :class:`MixtureInfo` (``chosen[name]`` marks the
        kernel applied), and a warmup in which every kernel adapts on the steps that pick it.

    Raises
    ------
    ValueError
        No kernels, a weight count that differs from the kernel count, a negative or
        non-finite weight, or weights that do not sum to one.
    """
    pairs = _named(kernels, "mixture")
    w = np.full(len(pairs), 1.0 / len(pairs)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(pairs),):
        raise ValueError(f"mixture: {len(pairs)} kernels but weights of shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"mixture: weights must be finite and non-negative, got {w.tolist()}")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"mixture: weights must sum to 1, got sum {w.sum():.8g}")
    log_weights = tuple(math.log(v) if v > 0 else -math.inf for v in w.tolist())
    return _mixture(pairs, log_weights)
