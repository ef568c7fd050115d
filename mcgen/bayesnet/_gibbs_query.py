"""The ``method="gibbs"`` answer of :func:`mcgen.bayesnet.query`.

Chains start from a pool of likelihood-weighting draws (``INIT_CANDIDATES`` per chain)
resampled by their weights, so every chain starts at an assignment of positive probability
that agrees with the evidence, spread roughly like the posterior; then :func:`mcgen.run.run_chains` runs the
Markov-blanket Gibbs kernel on all chains at once.  Each state of each query variable gives
an indicator series per chain; ArviZ (through :mod:`mcgen.diagnostics`) turns those into the
posterior mean, its MCSE, bulk ESS and R-hat.
"""

from __future__ import annotations

import math
import warnings

import jax
import numpy as np

from mcgen.bayesnet._errors import EvidenceError, GibbsErgodicityWarning

INIT_CANDIDATES = 64
"""Likelihood-weighting draws in the pool from which chain starts are resampled, per chain."""
RHAT_THRESHOLD = 1.01
"""Gibbs answers warn when an indicator's R-hat exceeds this (Vehtari et al. 2021)."""
INIT_STREAM = 0x7FFF_FFF1
"""``fold_in`` tag of the initialization key, far from the chain indices run_chains folds in."""


def _keep(bn, variables):
    key = ("keep", tuple(variables))
    if key not in bn._cache:  # one object per query set, so run_chains reuses its compiled run
        bn._cache[key] = lambda position: {v: position[v] for v in variables}
    return bn._cache[key]


def _initial_positions(bn, ev, num_chains, seed):
    """One start per chain, resampled from a pool of likelihood-weighting draws by weight."""
    from mcgen.bayesnet.sampling import draw

    key = jax.random.fold_in(jax.random.key(seed), INIT_STREAM)
    pool = num_chains * INIT_CANDIDATES
    values, logw = draw(bn, pool, evidence=ev, mode="likelihood_weighting", seed=key)
    logw = np.asarray(logw, np.float64)
    if not np.isfinite(logw).any():
        raise EvidenceError(
            f"none of {pool} likelihood-weighting draws agrees with the evidence {ev}; "
            "it may have probability zero (check with method='exact')"
        )
    weights = np.exp(logw - logw.max())
    pick = np.random.default_rng(seed).choice(pool, size=num_chains, p=weights / weights.sum())
    return {v: x[pick].astype(np.int32) for v, x in values.items()}


def _indicator_stats(indicators: dict[str, np.ndarray]):
    from mcgen.diagnostics import az

    dataset = az.convert_to_dataset(indicators)
    num_chains = next(iter(indicators.values())).shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mcse = az.mcse(dataset, method="mean")
        ess = az.ess(dataset, method="bulk")
        rhat = az.rhat(dataset) if num_chains > 1 else None
    out = {}
    for name, x in indicators.items():
        constant = bool(np.all(x == x.flat[0]))
        se = 0.0 if constant else float(mcse[name])  # pyright: ignore[reportIndexIssue]
        r = float(rhat[name]) if rhat is not None and not constant else math.nan  # pyright: ignore[reportIndexIssue]
        out[name] = (float(x.mean()), se, float(ess[name]), r)
    return out


def gibbs_answer(bn, variables, ev, joint, num_samples, seed, num_chains, num_warmup):
    """``(probs, stderr, joint_table, joint_se, extra)`` for a Gibbs query on pruned ``bn``."""
    from mcgen.bayesnet.gibbs import gibbs_kernel
    from mcgen.diagnostics import SamplingWarning
    from mcgen.run import run_chains

    if not isinstance(num_chains, (int, np.integer)) or num_chains < 1:
        raise ValueError(f"num_chains must be a positive integer, got {num_chains!r}")
    draws = math.ceil(num_samples / num_chains)
    num_warmup = min(1000, draws) if num_warmup is None else int(num_warmup)
    init = _initial_positions(bn, ev, int(num_chains), seed)
    free = [v for v in bn.variables if v not in ev]
    zeros = [
        v for v in bn.variables if np.any(bn.cpts[v] == 0) and (v in free or any(p in free for p in bn.parents[v]))
    ]
    if zeros:
        warnings.warn(
            f"the CPTs of {zeros} have zero entries, which can make single-site Gibbs "
            "reducible (chains stuck in one region); compare with method='exact' or "
            "'likelihood_weighting' and check R-hat",
            GibbsErgodicityWarning,
            stacklevel=4,
        )
    result = run_chains(
        bn.logdensity_fn(),
        gibbs_kernel(bn, tuple(ev)),
        init=init,
        init_batched=True,
        num_chains=int(num_chains),
        num_samples=draws,
        num_warmup=num_warmup,
        seed=seed,
        progress=False,
        transform=_keep(bn, variables),
        warn=False,
    )
    cards = {v: len(bn.states[v]) for v in variables}
    samples = {v: np.asarray(result.samples[v]) for v in variables}
    series = dict(samples)
    if joint:
        index = np.zeros_like(samples[variables[0]])
        for v in variables:
            index = index * cards[v] + samples[v]
        series["__joint__"] = index
        cards["__joint__"] = math.prod(cards[v] for v in variables)
    indicators = {f"{v}__{k}": (series[v] == k).astype(np.float64) for v in series for k in range(cards[v])}
    stats = _indicator_stats(indicators)

    def arrays(v, j):
        return np.array([stats[f"{v}__{k}"][j] for k in range(cards[v])])

    probs = {v: arrays(v, 0) for v in variables}
    stderr = {v: arrays(v, 1) for v in variables}
    r_hat = {v: arrays(v, 3) for v in variables}
    ess = [s[2] for s in stats.values() if np.isfinite(s[2])]
    worst = max((r for r in (s[3] for s in stats.values()) if np.isfinite(r)), default=math.nan)
    if np.isfinite(worst) and worst > RHAT_THRESHOLD:
        warnings.warn(
            f"Gibbs chains have not mixed: max R-hat over the query indicators is {worst:.3f} "
            f"> {RHAT_THRESHOLD}; run longer or use another method",
            SamplingWarning,
            stacklevel=4,
        )
    table = table_se = None
    if joint:
        shape = tuple(cards[v] for v in variables)
        table = arrays("__joint__", 0).reshape(shape)
        table_se = arrays("__joint__", 1).reshape(shape)
    extra = {
        "ess": min(ess) if ess else math.nan,
        "r_hat": r_hat,
        "result": result,
        "num_samples": draws * int(num_chains),
        "max_r_hat": worst,
    }
    return probs, stderr, table, table_se, extra
