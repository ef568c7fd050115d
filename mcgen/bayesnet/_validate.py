"""Validation of a network's parts: CPT arrays and the acyclicity of the parent graph.

Both raise :class:`~mcgen.bayesnet.BayesNetError` subclasses naming the variable.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from mcgen.bayesnet._errors import CPTError, CycleError

__all__ = ["EXACT_SUM_ATOL", "ROW_SUM_ATOL", "check_cpt", "topological_order"]

ROW_SUM_ATOL = 1e-6
"""Tolerance on ``|sum(row) - 1|``; rows off by more than ``EXACT_SUM_ATOL`` are renormalized."""
EXACT_SUM_ATOL = 1e-12
"""Rows this close to 1 are kept as given (float rounding), so BIF round trips are exact."""


def check_cpt(var, shape: tuple[int, ...], atol: float) -> np.ndarray:
    """``var.cpt`` as a read-only float64 copy of ``shape``, or a :class:`CPTError`."""
    try:
        cpt = np.array(var.cpt, dtype=np.float64)  # a copy: the read-only flag must not reach the caller
    except (TypeError, ValueError) as err:
        raise CPTError(f"CPT of {var.name!r} is not a numeric array ({err})", var.name) from None
    if cpt.shape != shape:
        who = ", ".join(f"{p}" for p in var.parents) or "no parents"
        raise CPTError(
            f"CPT of {var.name!r} has shape {cpt.shape}, expected {shape} "
            f"(parent cardinalities for {who}, then {shape[-1]} states)",
            var.name,
        )
    if not np.all(np.isfinite(cpt)):
        raise CPTError(f"CPT of {var.name!r} has a NaN or infinite entry", var.name)
    if np.any(cpt < 0):
        at = tuple(int(i) for i in np.argwhere(cpt < 0)[0])
        raise CPTError(f"CPT of {var.name!r} has a negative entry {cpt[at]} at index {at}", var.name)
    sums = cpt.sum(axis=-1)
    bad = np.abs(sums - 1.0) > atol
    if np.any(bad):
        row = tuple(int(i) for i in np.argwhere(bad)[0])
        given = ", ".join(f"{p}={i}" for p, i in zip(var.parents, row)) or "the only row"
        raise CPTError(f"CPT row of {var.name!r} for {given} sums to {sums[row]:.10g}, not 1", var.name)
    if np.any(np.abs(sums - 1.0) > EXACT_SUM_ATOL):  # keep the user's numbers when they already sum to 1
        cpt = cpt / sums[..., None]
    cpt.setflags(write=False)
    return cpt


def topological_order(names: list[str], parents: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm, ties broken by the given order; a cycle raises :class:`CycleError`."""
    children: dict[str, list[str]] = {v: [] for v in names}
    indegree = {v: len(parents[v]) for v in names}
    for v in names:
        for p in parents[v]:
            children[p].append(v)
    rank = {v: i for i, v in enumerate(names)}
    ready = sorted((v for v in names if indegree[v] == 0), key=rank.__getitem__)
    order: list[str] = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for c in children[v]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
                ready.sort(key=rank.__getitem__)
    if len(order) < len(names):
        # Walk parent links among the remaining nodes until one repeats: that is a cycle.
        left = [v for v in names if indegree[v] > 0]
        path, seen, v = [], {}, left[0]
        while v not in seen:
            seen[v] = len(path)
            path.append(v)
            v = next(p for p in parents[v] if indegree[p] > 0)
        cycle = path[seen[v] :][::-1] + [path[seen[v] :][::-1][0]]
        raise CycleError(f"the parent graph has a cycle through {v!r}: {' -> '.join(cycle)}", cycle)
    return order
