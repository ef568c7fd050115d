r"""Exact inference by variable elimination with a greedy min-fill order.

The posterior of query variables :math:`Q` given evidence :math:`E = e` is

.. math::

    p(q \mid e) \propto \sum_{h} \prod_i p(x_i \mid x_{\mathrm{pa}(i)})\big|_{E = e},

summed over the hidden variables :math:`H`.  Variable elimination pushes each sum inside the
product: to eliminate :math:`h` it multiplies only the factors that mention :math:`h` and sums
:math:`h` out of that product, leaving one new factor (Zhang and Poole 1994).  The cost is
exponential in the largest factor created, which depends on the order.  The order here is
the greedy **min-fill** heuristic: eliminate next the variable whose elimination adds the
fewest new edges among its neighbours in the interaction graph (ties: the smallest new
factor, then the topological order), re-scored after every step (Kjaerulff 1990).

Before eliminating, the network is pruned to the ancestors of :math:`Q \cup E` (barren nodes
sum to one) and the evidence is applied by slicing each CPT, so evidence variables never
enter a factor.  Factors are NumPy arrays in float64; each new factor is rescaled by its
maximum so long products cannot underflow (the scale cancels on normalization).

References
----------
Zhang, N. L. and Poole, D. (1994). A simple approach to Bayesian network computations.
Kjaerulff, U. (1990). Triangulation of graphs: algorithms giving small total state space.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from mcgen.bayesnet._errors import EvidenceError

__all__ = ["elimination_order", "variable_elimination"]

Factor = tuple[tuple[str, ...], np.ndarray]


def _product_sum(factors: list[Factor], keep: tuple[str, ...]) -> np.ndarray:
    """``sum over all but keep`` of the product of ``factors``, axes in ``keep`` order."""
    names = sorted({v for f in factors for v in f[0]} | set(keep))
    label = {v: i for i, v in enumerate(names)}
    if len(names) > 52:
        raise MemoryError(f"variable elimination built a factor over {len(names)} variables")
    operands: list[Any] = []
    for fvars, table in factors:
        operands += [table, [label[v] for v in fvars]]
    if not operands:
        return np.ones(())
    return np.einsum(*operands, [label[v] for v in keep])


def elimination_order(
    factors: Sequence[tuple[str, ...]], eliminate: Sequence[str], cards: Mapping[str, int]
) -> list[str]:
    """Greedy min-fill order for ``eliminate`` given the variable sets of the factors.

    Ties are broken by the size (number of entries) of the factor the elimination would
    create, then by the position in ``eliminate``.
    """
    neighbours: dict[str, set[str]] = {}
    for scope in factors:
        for v in scope:
            neighbours.setdefault(v, set()).update(u for u in scope if u != v)
    rank = {v: i for i, v in enumerate(eliminate)}
    left = set(eliminate)
    order = []
    while left:
        best, best_score = None, None
        for v in left:
            nb = list(neighbours.get(v, ()))
            fill = sum(1 for a in range(len(nb)) for b in range(a + 1, len(nb)) if nb[b] not in neighbours[nb[a]])
            size = math.prod(cards[u] for u in nb)
            score = (fill, size, rank[v])
            if best_score is None or score < best_score:
                best, best_score = v, score
        assert best is not None  # left is not empty
        nb = neighbours.pop(best, set())
        for a in nb:
            neighbours[a].discard(best)
            neighbours[a].update(nb - {a})
        left.remove(best)
        order.append(best)
    return order


def variable_elimination(bn, variables: Sequence[str], evidence: Mapping[str, Any] | None = None) -> np.ndarray:
    """Exact joint posterior of ``variables`` given ``evidence``.

    Parameters
    ----------
    bn
        The network.
    variables
        Query variables (distinct, not observed).
    evidence
        ``{variable: state}`` with state names or indices.

    Returns
    -------
    numpy.ndarray
        ``p(variables | evidence)``, one axis per query variable in the order given
        (float64, sums to one).

    Raises
    ------
    EvidenceError
        If the evidence has probability zero.
    """
    ev = bn.evidence_indices(evidence)
    variables = tuple(variables)
    sub = bn.subnetwork(list(variables) + list(ev))
    factors: list[Factor] = []
    for v in sub.variables:
        scope = sub.parents[v] + (v,)
        table = sub.cpts[v]
        index = tuple(ev.get(u, slice(None)) for u in scope)
        factors.append((tuple(u for u in scope if u not in ev), table[index]))
    hidden = [v for v in sub.variables if v not in ev and v not in variables]
    cards = {v: len(sub.states[v]) for v in sub.variables}
    for h in elimination_order([f[0] for f in factors], hidden, cards):
        touching = [f for f in factors if h in f[0]]
        factors = [f for f in factors if h not in f[0]]
        scope = tuple(sorted({u for f in touching for u in f[0]} - {h}, key=sub.variables.index))
        table = _product_sum(touching, scope)
        peak = table.max() if table.size else 1.0
        factors.append((scope, table / peak if peak > 0 else table))
    joint = _product_sum(factors, variables)
    total = joint.sum()
    if not total > 0:
        raise EvidenceError(f"the evidence {dict(evidence or {})} has probability zero")
    return joint / total
