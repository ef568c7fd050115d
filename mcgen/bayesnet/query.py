r"""Posterior queries on a Bayesian network: ``bn.query(variables, evidence, method=...)``.

Every method answers the same question, the posterior marginals :math:`p(x_q \mid e)` of the
query variables (and their joint on request), and returns a :class:`QueryResult` whose
sampled answers carry a Monte-Carlo standard error:

============================  ==============================================================
``"exact"``                   variable elimination with a min-fill order (:mod:`.exact`).
``"forward"``/``"rejection"`` ancestral sampling, draws disagreeing with the evidence
                              rejected; MCSE :math:`\sqrt{p(1-p)/n_{\rm accepted}}`; the
                              acceptance rate is reported and a
                              :class:`LowAcceptanceWarning` raised when it is tiny.
``"likelihood_weighting"``    evidence clamped, draws weighted by its likelihood; the
                              self-normalized estimate with its delta-method MCSE and
                              Kish's ESS; the draws are kept as a
                              :class:`mcgen.direct.WeightedSamples` in ``info``.
``"gibbs"``                   Markov-blanket Gibbs (:mod:`.gibbs`) on many chains through
                              :func:`mcgen.run.run_chains`; chains start from importance
                              resampled likelihood-weighting draws; MCSE, bulk ESS and
                              R-hat of each state's indicator come from ArviZ.
============================  ==============================================================

All methods first prune the network to the ancestors of the query and evidence variables
(the other nodes sum out to one), which is exact and often makes sampling much cheaper.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from mcgen.bayesnet._errors import EvidenceError, LowAcceptanceWarning
from mcgen.bayesnet.results import JointDistribution, QueryResult

__all__ = ["METHODS", "query"]

METHODS = ("exact", "forward", "rejection", "likelihood_weighting", "gibbs")
MIN_ACCEPTED = 1000
"""Fewer accepted rejection draws than this (or an acceptance rate under 1%) warns."""
MAX_JOINT_SIZE = 1 << 20
"""Largest joint table a query may ask for."""
SMALL_JOINT = 4096
"""Exact marginals come from one joint elimination when the joint has at most this many
states, otherwise from one elimination per variable."""


# ------------------------------------------------------------------ estimators


def _snis(index: np.ndarray, weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Self-normalized estimates of ``P(index = k)`` and their delta-method MCSE.

    With normalized weights :math:`\bar w_i`, :math:`\hat p_k = \sum_i \bar w_i 1[x_i = k]`
    and :math:`\widehat{\rm Var} = \sum_i \bar w_i^2 (1[x_i = k] - \hat p_k)^2`, expanded so
    one weighted ``bincount`` per moment suffices.  Float64 on the host: a float32 sum over
    millions of weights drifts by more than the standard error.
    """
    p = np.bincount(index, weights=weights, minlength=size)
    s2 = np.bincount(index, weights=weights**2, minlength=size)
    var = s2 * (1.0 - 2.0 * p) + p**2 * np.sum(weights**2)
    return p, np.sqrt(np.maximum(var, 0.0))


def _weighted_answer(values, logw, variables, cards, joint):
    """Estimates of every state indicator (and joint state) from weighted draws, Kish's ESS."""
    lw = np.asarray(logw, np.float64)
    weights = np.exp(lw - lw[np.isfinite(lw)].max())
    weights /= weights.sum()
    series = {v: np.asarray(values[v]) for v in variables}
    sizes = {v: cards[v] for v in variables}
    if joint:
        index = np.zeros_like(series[variables[0]])
        for v in variables:
            index = index * cards[v] + series[v]
        series["__joint__"], sizes["__joint__"] = index, math.prod(cards[v] for v in variables)
    means, mcse = {}, {}
    for k, x in series.items():
        means[k], mcse[k] = _snis(x, weights, sizes[k])
    return means, mcse, float(1.0 / np.sum(weights**2))


# ------------------------------------------------------------------ methods


def _exact(bn, variables, ev, joint):
    from mcgen.bayesnet.exact import variable_elimination

    if joint or math.prod(len(bn.states[v]) for v in variables) <= SMALL_JOINT:
        table = variable_elimination(bn, variables, ev)
        axes = range(len(variables))
        probs = {v: table.sum(axis=tuple(a for a in axes if a != k)) for k, v in enumerate(variables)}
        if not joint:
            return probs, {v: np.zeros_like(p) for v, p in probs.items()}, None, None, {}
        return probs, {v: np.zeros_like(p) for v, p in probs.items()}, table, np.zeros_like(table), {}
    probs = {v: variable_elimination(bn, [v], ev) for v in variables}
    return probs, {v: np.zeros_like(p) for v, p in probs.items()}, None, None, {}


def _sampled(bn, variables, ev, joint, method, num_samples, seed):
    from mcgen.bayesnet.sampling import draw

    mode = "likelihood_weighting" if method == "likelihood_weighting" else "forward"
    values, logw = draw(bn, num_samples, evidence=ev, mode=mode, keep=variables, seed=seed)
    cards = {v: len(bn.states[v]) for v in bn.variables}
    extra: dict[str, Any] = {}
    accepted = int(np.isfinite(logw).sum())
    if mode == "forward":
        extra["acceptance_rate"] = accepted / num_samples
        if ev and (accepted < MIN_ACCEPTED or accepted < 0.01 * num_samples):
            warnings.warn(
                f"rejection sampling accepted {accepted} of {num_samples} draws "
                f"({100 * accepted / num_samples:.3g}%); the evidence is unlikely, so the answer "
                "is noisy: use method='likelihood_weighting' or 'gibbs', or more samples",
                LowAcceptanceWarning,
                stacklevel=4,
            )
    if accepted == 0:
        if mode == "likelihood_weighting":
            warnings.warn(
                f"all {num_samples} likelihood weights are zero: the evidence has "
                "probability zero or is far too unlikely",
                LowAcceptanceWarning,
                stacklevel=4,
            )
        nan = {v: np.full(cards[v], np.nan) for v in variables}
        size = tuple(cards[v] for v in variables)
        return (
            nan,
            nan,
            np.full(size, np.nan) if joint else None,
            np.full(size, np.nan) if joint else None,
            {**extra, "ess": 0.0},
        )
    means, mcse, ess = _weighted_answer(values, logw, variables, cards, joint)
    extra["ess"] = float(accepted) if mode == "forward" else ess
    if mode == "likelihood_weighting":
        from mcgen.direct.weighted import WeightedSamples

        ws = WeightedSamples(values, logw)
        extra["weighted_samples"] = ws
        extra["log_evidence"] = float(ws.log_normalizer().mean)
    shape = tuple(cards[v] for v in variables)
    table = means.pop("__joint__").reshape(shape) if joint else None
    table_se = mcse.pop("__joint__").reshape(shape) if joint else None
    return means, mcse, table, table_se, extra


def query(
    bn,
    variables: str | Sequence[str],
    evidence: Mapping[str, Any] | None = None,
    *,
    method: str = "exact",
    num_samples: int = 100_000,
    seed: int = 0,
    joint: bool = False,
    num_chains: int = 64,
    num_warmup: int | None = None,
) -> QueryResult:
    """Posterior marginals of ``variables`` given ``evidence``.

    Parameters
    ----------
    bn
        The network.
    variables
        One variable name or a sequence of them.
    evidence
        ``{variable: state}``, each state a name or an integer index.
    method
        One of ``"exact"``, ``"forward"``, ``"rejection"``, ``"likelihood_weighting"``,
        ``"gibbs"`` (see the module docstring).
    num_samples
        Draws for sampled methods (for Gibbs: in total over all chains, after warmup).
    seed
        Integer seed; the same seed gives the same answer.
    joint
        Also return the joint posterior of the query variables (``result.joint``).
    num_chains, num_warmup
        Gibbs only: chains run in parallel and warmup sweeps per chain (default
        ``min(1000, draws per chain)``).

    Returns
    -------
    QueryResult

    Example
    -------
    >>> from mcgen.bayesnet import BayesNet
    >>> bn = BayesNet.from_dict({
    ...     "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
    ...     "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
    ... })
    >>> res = bn.query("cloudy", {"rain": "T"}, method="likelihood_weighting", seed=0)
    >>> bool(abs(res["cloudy"]["T"] - 0.8) < 4 * res.mcse["cloudy"]["T"])   # exact: 0.8
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    variables = (variables,) if isinstance(variables, str) else tuple(variables)
    if not variables:
        raise EvidenceError("query at least one variable")
    for v in variables:
        bn._check_name(v, "query variable")
    if len(set(variables)) != len(variables):
        raise EvidenceError(f"a query variable is repeated: {variables}")
    ev = bn.evidence_indices(evidence)
    both = [v for v in variables if v in ev]
    if both:
        raise EvidenceError(f"variable {both[0]!r} is both queried and observed", both[0])
    if joint and math.prod(len(bn.states[v]) for v in variables) > MAX_JOINT_SIZE:
        raise ValueError(f"the joint of {variables} has more than {MAX_JOINT_SIZE} states; query marginals")
    if method != "exact" and (not isinstance(num_samples, (int, np.integer)) or num_samples < 1):
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    sub = bn.subnetwork(list(variables) + list(ev))
    if method == "exact":
        probs, stderr, table, table_se, extra = _exact(sub, variables, ev, joint)
    elif method == "gibbs":
        from mcgen.bayesnet._gibbs_query import gibbs_answer

        probs, stderr, table, table_se, extra = gibbs_answer(
            sub, variables, ev, joint, int(num_samples), seed, num_chains, num_warmup
        )
    else:
        probs, stderr, table, table_se, extra = _sampled(sub, variables, ev, joint, method, int(num_samples), seed)
    states = {v: bn.states[v] for v in variables}
    jd = None
    if joint:
        assert table is not None and table_se is not None  # computed whenever joint=True
        jd = JointDistribution(variables, tuple(states[v] for v in variables), table, table_se)
    info = {
        "num_variables_after_pruning": len(sub),
        **{k: v for k, v in extra.items() if k not in ("ess", "acceptance_rate", "r_hat")},
    }
    return QueryResult(
        method=method,
        variables=variables,
        states=states,
        probs=probs,
        stderr=stderr,
        joint=jd,
        num_samples=None if method == "exact" else extra.get("num_samples", int(num_samples)),
        ess=extra.get("ess"),
        acceptance_rate=extra.get("acceptance_rate"),
        r_hat_arrays=extra.get("r_hat"),
        info=info,
    )
