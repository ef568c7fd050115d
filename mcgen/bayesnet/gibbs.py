r"""Single-site Gibbs sampling of a Bayesian network, as an :class:`mcgen.Kernel`.

A systematic-scan Gibbs sweep visits the free variables in a fixed order and redraws each
from its full conditional given all the others,

.. math::

    p(x_v \mid x_{-v}) \propto p(x_v \mid x_{\mathrm{pa}(v)})
        \prod_{c \in \mathrm{ch}(v)} p(x_c \mid x_{\mathrm{pa}(c)}),

which in a Bayesian network involves only the Markov blanket of :math:`v` (its parents,
children and the children's other parents).  Each redraw leaves the joint invariant, so the
sweep does (Geman and Geman 1984).  A redraw is an inverse-CDF draw from the normalized
conditional with one uniform per site, clamped so that it never picks a state of
log-probability :math:`-\infty`.

:func:`gibbs_kernel` reads the Markov-blanket factors from the network's CPTs, costing
:math:`O(|\mathrm{blanket}|)` per site, where the generic
``categorical_gibbs`` kernel (``mcgen/kernels/categorical_gibbs.py``) evaluates the whole joint at every state of every
site.  Its sweep is a ``fori_loop`` over the free variables reading the flat tables of
:mod:`._tables`, so it compiles in the same time for any network size.  It still takes
``logdensity_fn`` at call time, as every kernel does, to keep ``state.logdensity``; it must
be the network's joint, ``bn.logdensity_fn()``, for the two to describe the same target.

Positions are dicts ``{name: int32 scalar}`` over *all* the network's variables; evidence
variables are simply not among the updated sites, so they keep their observed values.

Zero entries in CPTs can make single-site Gibbs reducible: two regions of positive
probability may be linked by no path of single-variable changes (Asia's ``either = tub OR
lung`` with ``either`` unobserved), and a chain then never leaves the region it starts in.
R-hat reveals it only when chains start in different regions in the wrong proportions;
compare with exact inference or likelihood weighting.

References
----------
Geman, S. and Geman, D. (1984). Stochastic relaxation, Gibbs distributions, and the Bayesian
restoration of images.  Pearl, J. (1987). Evidential reasoning using stochastic simulation.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from mcgen.bayesnet._tables import FlatNet, flatten_network, inverse_cdf, position_vector
from mcgen.types import Array, Kernel

__all__ = ["GibbsInfo", "GibbsState", "gibbs_kernel"]


class GibbsState(NamedTuple):
    """State of a Gibbs chain: the assignment, its log-density and (empty) tunables."""

    position: dict
    logdensity: Array
    params: dict


class GibbsInfo(NamedTuple):
    """``num_changed``: how many sites took a new value during the sweep."""

    num_changed: Array


def _init(position, logdensity_fn):
    position = {k: jnp.asarray(v).astype(jnp.int32) for k, v in position.items()}
    return GibbsState(position, jnp.asarray(logdensity_fn(position), jnp.float32), {})


def _blanket_logits(flat: FlatNet, x, i):
    """Unnormalized log conditional of variable ``i`` given the rest, ``(K,)`` (padded -inf)."""
    num_states = flat.logp.shape[1]
    own_row = flat.row_offset[i] + jnp.sum(x[flat.parents[i]] * flat.strides[i])
    logits = flat.logp[own_row]
    children, stride = flat.children[i], flat.child_stride[i]
    # each child's row with x_i's contribution removed, then one row per candidate state of x_i
    base = flat.row_offset[children] + jnp.sum(x[flat.parents[children]] * flat.strides[children], axis=-1)
    base = base - x[i] * stride
    rows = base[:, None] + jnp.arange(num_states, dtype=jnp.int32)[None, :] * stride[:, None]
    rows = jnp.minimum(rows, flat.logp.shape[0] - 1)  # padded states of x_i: any row, masked below
    child_terms = flat.logp[rows, x[children][:, None]]
    return logits + jnp.sum(jnp.where(flat.child_valid[i][:, None], child_terms, jnp.float32(0.0)), axis=0)


def gibbs_kernel(bn, observed: Sequence[str] = ()) -> Kernel:
    """Markov-blanket Gibbs kernel for a Bayesian network.

    Parameters
    ----------
    bn
        The network.
    observed
        Variables held fixed (the evidence); every other variable is updated each sweep, in
        topological order.

    Returns
    -------
    Kernel
        Over dict positions ``{name: int32}`` covering every variable of ``bn``; use it with
        ``logdensity_fn = bn.logdensity_fn()``.  The same kernel object is returned for the
        same network and observed set, so compiled runs are reused.

    Example
    -------
    >>> from mcgen.bayesnet import BayesNet
    >>> bn = BayesNet.from_dict({
    ...     "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
    ...     "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
    ... })
    >>> import jax.numpy as jnp, mcgen
    >>> kernel = gibbs_kernel(bn, observed=["rain"])
    >>> init = {"cloudy": jnp.zeros(8, jnp.int32), "rain": jnp.zeros(8, jnp.int32)}   # rain = T
    >>> res = mcgen.run_chains(bn.logdensity_fn(), kernel, init=init, init_batched=True, num_chains=8,
    ...                        num_samples=500, num_warmup=0, progress=False, warn=False)
    >>> p = float((res.samples["cloudy"] == 0).mean())   # P(cloudy = T | rain = T) = 0.8
    >>> bool(abs(p - 0.8) < 4 * (0.8 * 0.2 / 4000) ** 0.5)   # one free variable: iid exact draws
    True
    """
    for name in observed:
        bn._check_name(name)
    key = ("gibbs_kernel", frozenset(observed))
    if key in bn._cache:
        return bn._cache[key]
    flat = flatten_network(bn)
    names = bn.variables
    free = jnp.asarray([i for i, v in enumerate(names) if v not in set(observed)], jnp.int32)

    def step(key, state: GibbsState, logdensity_fn):
        u = jax.random.uniform(key, (free.shape[0],), jnp.float32)
        start = position_vector(state.position, names)

        def visit(s, x):
            i = free[s]
            return x.at[i].set(inverse_cdf(_blanket_logits(flat, x, i), u[s]))

        x = jax.lax.fori_loop(0, free.shape[0], visit, start)
        position = {v: x[k] for k, v in enumerate(names)}
        changed = jnp.sum((x != start).astype(jnp.int32))
        return GibbsState(position, jnp.asarray(logdensity_fn(position), jnp.float32), state.params), GibbsInfo(changed)

    kernel = Kernel(init=_init, step=step)
    bn._cache[key] = kernel
    return kernel
