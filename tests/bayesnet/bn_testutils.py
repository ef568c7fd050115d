"""Shared helpers of the Bayesian-network tests: the test networks and brute-force answers."""

from __future__ import annotations

import itertools
import pathlib

import numpy as np

from mcgen import bayesnet

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
Z_MAX = 4.0
"""Sampled answers must lie within this many MCSE of the exact one (two-sided normal tail
probability 6e-5 per comparison)."""


def weather() -> bayesnet.BayesNet:
    return bayesnet.read_bif(DATA / "weather.bif")


def asia() -> bayesnet.BayesNet:
    return bayesnet.read_bif(DATA / "asia.bif")


def random40() -> bayesnet.BayesNet:
    return bayesnet.read_bif(DATA / "random40.bif")


def brute_force_joint(bn: bayesnet.BayesNet) -> np.ndarray:
    """The full joint table by enumerating every assignment (axes in ``bn.variables`` order)."""
    cards = [len(bn.states[v]) for v in bn.variables]
    index = {v: i for i, v in enumerate(bn.variables)}
    joint = np.zeros(cards)
    for x in itertools.product(*(range(c) for c in cards)):
        p = 1.0
        for v in bn.variables:
            p *= bn.cpts[v][tuple(x[index[u]] for u in bn.parents[v]) + (x[index[v]],)]
        joint[x] = p
    return joint


def brute_force_posterior(bn, variables, evidence) -> np.ndarray:
    """``p(variables | evidence)`` from the enumerated joint, one axis per query variable."""
    joint = brute_force_joint(bn)
    ev = bn.evidence_indices(evidence)
    reduced = joint[tuple(ev.get(v, slice(None)) for v in bn.variables)]
    remaining = [v for v in bn.variables if v not in ev]
    table = reduced.sum(axis=tuple(i for i, v in enumerate(remaining) if v not in variables))
    in_network_order = [v for v in remaining if v in variables]
    table = np.transpose(table, [in_network_order.index(v) for v in variables])
    return table / table.sum()


def assert_within_mcse(res, exact: dict, z: float = Z_MAX) -> None:
    """Every probability of ``res`` within ``z`` MCSE of ``exact[var]`` (arrays)."""
    for v, p in exact.items():
        est, se = res.probs[v], res.stderr[v]
        assert np.all(np.isfinite(est)), (v, est)
        tol = z * np.maximum(se, 1e-12)
        bad = np.abs(est - p) > tol
        assert not bad.any(), (
            f"{res.method}: {v} estimate {est} vs exact {p}, mcse {se}; z = {np.abs(est - p) / np.maximum(se, 1e-12)}"
        )
