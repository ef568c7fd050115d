r"""Gibbs sampling: update the blocks of a dict position one at a time, each from its conditional.

Split the position into blocks, :math:`x = (x_{b_1}, \dots, x_{b_m})`.  A Gibbs update of
block :math:`b` replaces :math:`x_b` by a draw from a kernel :math:`K_b` that leaves the full
conditional invariant,

.. math::

    x_b' \sim K_b(x_b, \cdot \mid x_{-b}),\qquad
    \pi(x_b \mid x_{-b}) \propto \pi(x_b, x_{-b}),

so it leaves the joint :math:`\pi` invariant.  :math:`K_b` is either

* an **exact conditional sampler** ``f(key, position) -> new_block`` that the user derived
  (a conjugate update, a vectorized categorical draw over data points...), or
* **any mcgen kernel**, run on the conditional log-density
  ``lambda xb: logdensity_fn({**x, b: xb})``: Metropolis-, HMC- or NUTS-within-Gibbs,
  ``categorical_gibbs`` for integer blocks, or another combinator.  The unnormalized
  conditional is the joint with the other blocks held fixed: no constant is needed.

A *systematic scan* updates every block in the order given (a composition of
:math:`\pi`-invariant kernels is :math:`\pi`-invariant); a *random scan* updates one block
chosen uniformly at random per step (a mixture; reversible when every :math:`K_b` is).

A block is one key of the position, or a tuple of keys updated *jointly* (its value is then a
dict of those keys): blocking strongly correlated coordinates together is the cure for slow
Gibbs mixing.  Keys not named in any block are held fixed.

**State.** :class:`GibbsState` holds the position, the joint log-density there and, per block,
only the inner kernel's tunables (``params[block]``; ``None`` for an exact sampler).  Before
a block's kernel steps, its state is rebuilt at the block's value under the *current*
conditional, so a cached log-density or gradient is never stale after another block moved
(see :mod:`mcgen.combinators._engine`).  This costs one conditional log-density (and gradient,
for gradient kernels) per kernel block per sweep.

**Warmup.** Each kernel block runs its own warmup on its own conditional, so each block adapts
its own tunables (a step size here, a proposal scale there); exact blocks adapt nothing.

**Keys.** Block ``i`` (in the order of ``updates``) steps with ``fold_in(key, i)``; a random
scan picks the block with ``fold_in(key, num_blocks)``.

References
----------
Geman, S. and Geman, D. (1984). Stochastic relaxation, Gibbs distributions, and the Bayesian
restoration of images. IEEE PAMI 6, 721–741.
Gelfand, A. E. and Smith, A. F. M. (1990). Sampling-based approaches to calculating marginal
densities. JASA 85, 398–409.
Liu, J. S., Wong, W. H. and Kong, A. (1994). Covariance structure of the Gibbs sampler.
Biometrika 81, 27–40 (blocking and collapsing).

Example
-------
>>> import jax, jax.numpy as jnp, mcgen as mc
>>> rho = 0.9
>>> def logdensity(p):
...     x, y = p["x"], p["y"]
...     return -0.5 * (x**2 - 2 * rho * x * y + y**2) / (1 - rho**2)
>>> def draw_x(key, p):  # x | y ~ N(rho y, 1 - rho^2)
...     return rho * p["y"] + jnp.sqrt(1 - rho**2) * jax.random.normal(key)
>>> kernel = mc.gibbs({"x": draw_x, "y": mc.rwmh()})   # exact x, Metropolis-within-Gibbs y
>>> res = mc.run_chains(logdensity, kernel, init={"x": 0.0, "y": 0.0}, progress=False)
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, NamedTuple

import jax

from mcgen.combinators._engine import Item, any_flag, build, cast_like
from mcgen.kernels._proposal import cached_constructor
from mcgen.types import Kernel

__all__ = ["GibbsInfo", "GibbsState", "gibbs"]


class GibbsState(NamedTuple):
    position: dict
    logdensity: jax.Array  # joint log-density at position
    params: dict  # block name -> the block kernel's tunables (None for an exact sampler)


class GibbsInfo(NamedTuple):
    blocks: dict  # block name -> the block kernel's info (None for an exact sampler)
    updated: dict | None  # random scan: block name -> whether it was the block updated
    is_divergent: jax.Array  # any block's kernel diverged
    is_nonfinite: jax.Array  # any block's kernel met a NaN / +inf log-density


def _block_name(block) -> str:
    return ",".join(map(str, block)) if isinstance(block, tuple) else str(block)


def _item(block, update) -> Item:
    if isinstance(block, tuple):
        if not block or len(set(block)) != len(block):
            raise ValueError(f"gibbs: a tuple block must name distinct keys, got {block!r}")
        keys = block

        def get(x):  # pyright: ignore[reportRedeclaration]
            return {k: x[k] for k in keys}

        def put(x, value):
            return {**x, **{k: value[k] for k in keys}}
    else:

        def get(x):
            return x[block]

        def put(x, value):
            return {**x, block: value}

    if isinstance(update, Kernel):
        return Item(_block_name(block), update, True, get, put)
    if callable(update):
        return Item(_block_name(block), update, False, get, put)
    raise TypeError(
        f"gibbs: the update of block {block!r} must be an mcgen Kernel or a function "
        f"f(key, position) -> new block value, got {type(update).__name__}"
    )


def _check_exact(blocks: dict) -> Callable:
    def check(item: Item, new, old):
        keys = blocks[item.name]
        if isinstance(keys, tuple) and isinstance(new, (tuple, list)):
            if len(new) != len(keys):
                raise ValueError(
                    f"gibbs: the update of block {item.name!r} returned {len(new)} values for {len(keys)} keys"
                )
            new = dict(zip(keys, new))
        return cast_like(item, new, old)

    return check


@cached_constructor
def _gibbs(pairs: tuple, scan: str) -> Kernel:
    items = tuple(_item(block, update) for block, update in pairs)
    names = [it.name for it in items]
    if len(set(names)) != len(names):
        raise ValueError(f"gibbs: two blocks have the same name: {names}")
    blocks = {it.name: block for it, (block, _) in zip(items, pairs)}
    keys = [k for block, _ in pairs for k in (block if isinstance(block, tuple) else (block,))]

    def validate(position):
        if not isinstance(position, dict):
            raise ValueError(f"gibbs: the position must be a dict keyed by block, got {type(position).__name__}")
        unknown = [k for k in keys if k not in position]
        if unknown:
            raise ValueError(
                f"gibbs: unknown block key(s) {unknown}; the position has keys {sorted(map(str, position))}"
            )

    def make_info(infos, updated):
        return GibbsInfo(infos, updated, any_flag(infos, "is_divergent"), any_flag(infos, "is_nonfinite"))

    log_weights = None if scan == "systematic" else (0.0,) * len(items)
    return build(items, GibbsState, make_info, log_weights=log_weights, check=_check_exact(blocks), validate=validate)


def gibbs(updates: Mapping[Hashable | tuple, Any], scan: str = "systematic") -> Kernel:
    """Gibbs sampler over the blocks of a dict position.

    Parameters
    ----------
    updates
        Maps a block (a key of the position, or a tuple of keys updated jointly) to its update:
        an exact conditional sampler ``f(key, position) -> new_block`` (for a tuple block a
        dict, or a tuple in the block's order), or an mcgen :class:`~mcgen.types.Kernel` run
        on the block's conditional log-density.  Blocks are updated in this order.
    scan
        ``"systematic"`` (every block per step, in order) or ``"random"`` (one block per step,
        chosen uniformly; under ``vmap`` every block's update is computed and one is kept).

    Returns
    -------
    Kernel
        State :class:`GibbsState` (``position``, ``logdensity``, per-block ``params``), info
        :class:`GibbsInfo` (per-block infos under ``blocks``), and a warmup in which each
        kernel block adapts its own tunables.  The same ``updates`` give the same object, so
        ``run_chains`` compiles once.

    Raises
    ------
    ValueError
        ``updates`` empty, ``scan`` unknown, a bad tuple block; at ``init`` / ``step``, a block
        key that is not in the position.
    """
    if not isinstance(updates, Mapping) or not updates:
        raise ValueError("gibbs: updates must be a non-empty dict {block: sampler or kernel}")
    if scan not in ("systematic", "random"):
        raise ValueError(f"gibbs: scan must be 'systematic' or 'random', got {scan!r}")
    return _gibbs(tuple(updates.items()), scan)
