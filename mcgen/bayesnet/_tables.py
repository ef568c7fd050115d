"""A network as a few flat, padded arrays: what the compiled samplers read.

The samplers loop over variables with ``lax.fori_loop``, reading each variable's parents,
strides and CPT rows from arrays, so the compiled code does not grow with the network and
is reused by every network with the same padded shapes (and, for forward sampling and
likelihood weighting, by every evidence set).

A CPT of shape ``(*parent_cards, card)`` is indexed by a *row*, the parents' state indices
raveled in C order (``row = sum_k x_{pa_k} * stride_k``), plus the variable's
``row_offset`` into the shared tables.  With ``K`` the largest cardinality (at least 2) and
``P`` / ``C`` the largest number of parents / children (at least 1), :class:`FlatNet` holds

* ``logp`` ``(R, K)``: log-probabilities, ``-inf`` for impossible and padded states;
* ``cdf`` ``(R, K - 1)``: the cumulative row sums without the last entry.  A state is drawn
  as the number of thresholds a uniform ``u`` passes (inverse CDF).  Thresholds from the
  last state with positive probability on are set to 2, never passed, so float rounding can
  never select a state of probability zero (or a padded one);
* ``parents``/``strides`` ``(V, P)`` (padding: stride 0), ``children``/``child_stride``/
  ``child_valid`` ``(V, C)`` (the stride of the variable in each child's CPT).

Variables are in the network's topological order.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = ["FlatNet", "flatten_network", "inverse_cdf", "joint_logdensity_fn", "position_vector"]


class FlatNet(NamedTuple):
    """Padded arrays describing a network (a pytree; see the module docstring)."""

    card: jnp.ndarray
    parents: jnp.ndarray
    strides: jnp.ndarray
    row_offset: jnp.ndarray
    logp: jnp.ndarray
    cdf: jnp.ndarray
    children: jnp.ndarray
    child_stride: jnp.ndarray
    child_valid: jnp.ndarray


def _strides(cards: list[int]) -> list[int]:
    out, acc = [], 1
    for c in reversed(cards):
        out.append(acc)
        acc *= c
    return out[::-1]


def _cdf_rows(table: np.ndarray, width: int) -> np.ndarray:
    rows, card = table.shape
    cdf = np.full((rows, width), 2.0)
    cdf[:, : card - 1] = np.cumsum(table, axis=-1)[:, :-1]
    last = card - 1 - np.argmax(table[:, ::-1] > 0, axis=-1)  # last state of positive probability
    cdf[np.arange(width)[None, :] >= last[:, None]] = 2.0
    return cdf


def flatten_network(bn) -> FlatNet:
    """The :class:`FlatNet` of a :class:`~mcgen.bayesnet.BayesNet` (cached on it)."""
    if "flat" in bn._cache:
        return bn._cache["flat"]
    names = bn.variables
    index = {v: i for i, v in enumerate(names)}
    V = len(names)
    K = max(2, max(len(bn.states[v]) for v in names))
    P = max(1, max(len(bn.parents[v]) for v in names))
    C = max(1, max(len(bn.children[v]) for v in names))
    parents, strides = np.zeros((V, P), np.int32), np.zeros((V, P), np.int32)
    children, child_stride = np.zeros((V, C), np.int32), np.zeros((V, C), np.int32)
    child_valid = np.zeros((V, C), bool)
    logp_rows, cdf_rows, offsets, offset = [], [], [], 0
    for i, v in enumerate(names):
        pa = bn.parents[v]
        st = _strides([len(bn.states[p]) for p in pa])
        parents[i, : len(pa)] = [index[p] for p in pa]
        strides[i, : len(pa)] = st
        for j, c in enumerate(bn.children[v]):
            children[i, j] = index[c]
            child_stride[i, j] = _strides([len(bn.states[p]) for p in bn.parents[c]])[bn.parents[c].index(v)]
            child_valid[i, j] = True
        table = bn.cpts[v].reshape(-1, len(bn.states[v]))
        padded = np.zeros((table.shape[0], K))
        padded[:, : table.shape[1]] = table
        with np.errstate(divide="ignore"):
            logp_rows.append(np.log(padded))
        cdf_rows.append(_cdf_rows(table, K - 1))
        offsets.append(offset)
        offset += table.shape[0]
    flat = FlatNet(
        card=jnp.asarray([len(bn.states[v]) for v in names], jnp.int32),
        parents=jnp.asarray(parents),
        strides=jnp.asarray(strides),
        row_offset=jnp.asarray(offsets, jnp.int32),
        logp=jnp.asarray(np.concatenate(logp_rows), jnp.float32),
        cdf=jnp.asarray(np.concatenate(cdf_rows), jnp.float32),
        children=jnp.asarray(children),
        child_stride=jnp.asarray(child_stride),
        child_valid=jnp.asarray(child_valid),
    )
    bn._cache["flat"] = flat
    return flat


def inverse_cdf(logits, u):
    """Index drawn from ``softmax(logits)`` with the uniform ``u`` (never a ``-inf`` state)."""
    p = jnp.exp(logits - jnp.max(logits))
    cdf = jnp.cumsum(p)
    x = jnp.sum((u * cdf[-1] >= cdf[:-1]).astype(jnp.int32))
    last = logits.shape[0] - 1 - jnp.argmax(jnp.flip(p > 0)).astype(jnp.int32)
    return jnp.minimum(x, last)


def position_vector(position, names) -> jnp.ndarray:
    """A dict position ``{name: int}`` as one int32 vector in ``names`` order."""
    return jnp.stack([jnp.asarray(position[v]).astype(jnp.int32) for v in names], axis=-1)


def joint_logdensity_fn(bn):
    """``f(position) -> sum_i log p(x_i | x_pa(i))`` for a dict position over all variables."""
    flat = flatten_network(bn)
    names = bn.variables

    def logdensity_fn(position):
        x = position_vector(position, names)  # (..., V)
        rows = flat.row_offset + jnp.sum(x[..., flat.parents] * flat.strides, axis=-1)
        return jnp.sum(flat.logp[rows, x], axis=-1)

    return logdensity_fn
