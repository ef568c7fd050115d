"""Diagnostics through ArviZ: the one module of mcgen that touches ArviZ.

Everything that builds an ``InferenceData``, computes ESS / R-hat / MCSE, smooths importance
weights (PSIS) or plots goes through here.  ArviZ 0.2x (Python 3.11) works on
``InferenceData``; ArviZ 1.x moved to xarray ``DataTree``.  Supporting 1.x is a change to this
module alone.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

with warnings.catch_warnings():
    # ArviZ 0.2x announces its 1.x refactor with a FutureWarning on import.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

__all__ = [
    "SamplingWarning",
    "az",
    "chain_summary",
    "chains_to_arviz",
    "check_run",
    "default_superchains",
    "e_bfmi",
    "ess_rhat",
    "nested_rhat",
    "plot_trace",
    "psis_smooth",
    "summary",
    "weighted_to_arviz",
]


def psis_smooth(log_weights: Any, reff: float = 1.0) -> tuple[np.ndarray, float]:
    """Pareto-smoothed importance sampling (Vehtari et al. 2024) of one weight vector.

    Parameters
    ----------
    log_weights
        Unnormalized log importance weights, shape ``(n,)``.
    reff
        Relative efficiency of the draws (1 for independent draws).

    Returns
    -------
    smoothed_log_weights, pareto_k
        Normalized smoothed log weights (shape ``(n,)``) and the Pareto shape estimate
        ``k-hat``; ``k-hat > 0.7`` means the estimate is unreliable.
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    if lw.ndim != 1:
        raise ValueError(f"psis_smooth expects a 1-d vector of log weights, got shape {lw.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on k > 0.7 itself; callers decide.
        smoothed, k = az.psislw(lw, reff=reff)
    return np.asarray(smoothed), float(np.asarray(k))


def leaf_names(tree: Any, bare: str = "x") -> list[str]:
    """One name per leaf of ``tree``: dict keys, fields and indices joined with ``.``; ``bare``
    for a tree that is a single leaf."""
    import jax

    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = []
        for p in path:
            if isinstance(p, jax.tree_util.DictKey):
                parts.append(str(p.key))
            elif isinstance(p, jax.tree_util.GetAttrKey):
                parts.append(p.name)
            elif isinstance(p, jax.tree_util.SequenceKey):
                parts.append(str(p.idx))
            else:
                parts.append(str(p))
        names.append(".".join(parts) if parts else bare)
    return names


def _variables(tree: Any, prefix: str = "x") -> dict[str, np.ndarray]:
    """Flatten a pytree of arrays into ``{name: array}`` with names from :func:`leaf_names`."""
    import jax

    return {name: np.asarray(leaf) for name, leaf in zip(leaf_names(tree, prefix), jax.tree_util.tree_leaves(tree))}


def weighted_to_arviz(samples: Any, log_weights: Any) -> "az.InferenceData":
    """InferenceData for weighted draws: one chain; normalized log weights in ``sample_stats``.

    ``samples`` is a pytree with leaves of shape ``(n, *event)``; the weights are kept as
    ``sample_stats.log_weight`` (normalized so that ``logsumexp == 0``).
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    lw = lw - np.logaddexp.reduce(lw)
    posterior = {k: v[None] for k, v in _variables(samples).items()}
    return az.from_dict(posterior=posterior, sample_stats={"log_weight": lw[None]})


# ----------------------------------------------------------------------------- chains

# mcgen Info field -> ArviZ sample_stats name (so plot_energy, divergence plots work).
ARVIZ_STAT_NAMES = {
    "accept_prob": "acceptance_rate",
    "is_divergent": "diverging",
    "logdensity": "lp",
    "num_grad_evals": "n_steps",
    "tree_depth": "tree_depth",
    "step_size": "step_size",
    "energy": "energy",
}


class SamplingWarning(UserWarning):
    """A run finished but its diagnostics say the draws may not be trustworthy."""


def chains_to_arviz(samples: Any, stats: Mapping[str, Any]) -> "az.InferenceData":
    """InferenceData with ``posterior`` (from the sample pytree) and ``sample_stats``.

    Leaves have shape ``(chains, draws, *event)``; dict keys and NamedTuple fields become
    variable names (nested names joined with ``.``); a bare array is called ``x``.  Info
    fields are renamed to ArviZ's conventions (``is_divergent`` -> ``diverging``,
    ``accept_prob`` -> ``acceptance_rate``, ``logdensity`` -> ``lp``...).
    """
    posterior = _variables(samples)
    sample_stats = {ARVIZ_STAT_NAMES.get(k, k): np.asarray(v) for k, v in stats.items()}
    if "diverging" in sample_stats:
        sample_stats["diverging"] = sample_stats["diverging"].astype(bool)
    return az.from_dict(posterior=posterior, sample_stats=sample_stats)


def summary(idata: "az.InferenceData", **kwargs) -> Any:
    """ArviZ summary: mean, sd, hdi, mcse, ess_bulk, ess_tail, r_hat (a pandas DataFrame)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return az.summary(idata, **kwargs)


def plot_trace(idata: "az.InferenceData", path: str | None = None, **kwargs) -> Any:
    """ArviZ trace plot; saved to ``path`` (PNG, PDF...) when one is given."""
    import matplotlib

    if path is not None and matplotlib.get_backend().lower() not in ("agg", "pdf", "svg"):
        matplotlib.use("Agg")
    axes = az.plot_trace(idata, **kwargs)
    if path is not None:
        import matplotlib.pyplot as plt

        fig = np.ravel(axes)[0].figure
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return axes


def ess_rhat(samples: Any) -> dict[str, dict[str, np.ndarray]]:
    """Per-variable ``ess_bulk``, ``ess_tail``, ``r_hat`` (arrays of the event shape)."""
    variables = {k: np.asarray(v, dtype=np.float64) for k, v in _variables(samples).items()}
    num_chains = next(iter(variables.values())).shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)  # "more chains than draws" on short runs
        dataset = az.convert_to_dataset(variables)
        bulk = az.ess(dataset, method="bulk")
        tail = az.ess(dataset, method="tail")
        rhat = az.rhat(dataset) if num_chains > 1 else None
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in variables:
        r = (
            np.asarray(rhat[name])  # pyright: ignore[reportIndexIssue]
            if rhat is not None
            else np.full(variables[name].shape[2:], np.nan)
        )
        out[name] = {"ess_bulk": np.asarray(bulk[name]), "ess_tail": np.asarray(tail[name]), "r_hat": r}
    return out


def default_superchains(num_chains: int) -> int:
    """Superchains for :func:`nested_rhat` when none are given: the largest divisor of
    ``num_chains`` not above :math:`\\sqrt{\\text{num\\_chains}}` (1024 chains: 32 superchains
    of 32), so both the number of superchains and their size grow with the ensemble."""
    k = max(1, int(np.sqrt(num_chains)))
    while num_chains % k:
        k -= 1
    return k


def nested_rhat(samples: Any, superchains: int | None = None) -> dict[str, np.ndarray]:
    """Nested :math:`\\hat R` (Margossian et al. 2024) for many short chains.

    The chains are cut into ``superchains`` groups of :math:`M` consecutive chains (chain
    ``k*M .. k*M + M - 1`` form superchain ``k``; ideally the chains of a superchain start
    from one point).  With :math:`N` draws :math:`f_{nmk}`, chain means
    :math:`\\bar f_{\\cdot mk}`, superchain means :math:`\\bar f_{\\cdot\\cdot k}` and their
    mean :math:`\\bar f`,

    .. math::

        \\hat B_\\nu = \\tfrac{1}{K-1}\\sum_k (\\bar f_{\\cdot\\cdot k} - \\bar f)^2, \\qquad
        \\hat W_\\nu = \\tfrac1K \\sum_k \\Big(\\tfrac{1}{M-1}\\sum_m
            (\\bar f_{\\cdot mk} - \\bar f_{\\cdot\\cdot k})^2
            + \\tfrac1M \\sum_m \\tfrac{1}{N-1}\\sum_n (f_{nmk} - \\bar f_{\\cdot mk})^2\\Big),

    and :math:`\\mathfrak{n}\\hat R = \\sqrt{1 + \\hat B_\\nu / \\hat W_\\nu}` (the first term
    of :math:`\\hat W_\\nu` is 0 when :math:`M = 1`, the second when :math:`N = 1`).  Unlike
    :math:`\\hat R`, it does not need each chain to be long: superchain means average over
    :math:`M` chains, so the between-superchain variance is small once the chains have
    forgotten where they started, even with a few draws per chain.  Values near 1 (below
    1.01) say the chains agree.

    Parameters
    ----------
    samples
        Pytree of draws, leaves of shape ``(chains, draws, *event)``.
    superchains
        Number of superchains :math:`K \\ge 2`; it must divide the number of chains.  Default
        :func:`default_superchains`.

    Returns
    -------
    dict
        Per variable, an array of the event shape.

    References
    ----------
    Margossian, C. C., Hoffman, M. D., Sountsov, P., Riou-Durand, L., Vehtari, A. and
    Gelman, A. (2024). Nested R-hat: assessing the convergence of Markov chain Monte Carlo
    when running many short chains. Bayesian Analysis.

    Example
    -------
    >>> import numpy as np
    >>> from mcgen.diagnostics import nested_rhat
    >>> x = np.random.default_rng(0).normal(size=(64, 10))
    >>> bool(nested_rhat(x, superchains=8)["x"] < 1.01)
    True
    """
    variables = {k: np.asarray(v, dtype=np.float64) for k, v in _variables(samples).items()}
    out = {}
    for name, x in variables.items():
        if x.ndim < 2:
            raise ValueError(f"nested_rhat: {name} needs shape (chains, draws, ...), got {x.shape}")
        chains, draws = x.shape[:2]
        k = default_superchains(chains) if superchains is None else superchains
        if not isinstance(k, (int, np.integer)) or k < 2 or chains % k:
            raise ValueError(
                f"nested_rhat: superchains must be an integer >= 2 that divides the {chains} chains, got {k!r}"
            )
        m = chains // k
        x = x.reshape(k, m, draws, *x.shape[2:])
        chain_mean = x.mean(axis=2)  # (K, M, ...)
        super_mean = chain_mean.mean(axis=1)  # (K, ...)
        between_super = super_mean.var(axis=0, ddof=1)
        between_chain = chain_mean.var(axis=1, ddof=1) if m > 1 else np.zeros_like(super_mean)
        within_chain = x.var(axis=2, ddof=1).mean(axis=1) if draws > 1 else np.zeros_like(super_mean)
        within_super = (between_chain + within_chain).mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.sqrt(1.0 + between_super / within_super)
    return out


# Many short chains: at least this many chains, and fewer draws per chain than chains, make
# the after-run checks use nested R-hat and an ensemble-wide ESS floor (classical R-hat needs
# long chains; 100 effective draws *per chain* is meaningless with 1000 chains of 50 draws).
MANY_CHAINS = 64
# ESS floor for the whole ensemble (Vehtari et al. 2021: 100 per chain for 4 chains).
MIN_TOTAL_ESS = 400


# E-BFMI below this says the momentum draws cannot move the chain across the energy levels it
# must visit (ArviZ's and CmdStan's threshold; Betancourt 2016).
EBFMI_THRESHOLD = 0.3
# With fewer draws per chain the energies of all chains are pooled into one estimate: one
# chain's estimate from a few draws is too noisy to judge, and judging each of thousands of
# short chains would make the warning depend on how many there are.
EBFMI_MIN_DRAWS = 50
# Stats that mark a kernel whose momentum persists between transitions (MEADS: partial
# refreshment), where the energy changes slowly by design and E-BFMI does not apply.
_PERSISTENT_MOMENTUM_STATS = ("damping",)
# Stan warns about any transition whose trajectory used every doubling ``max_tree_depth`` allows:
# it was cut short, and the chain explores with shorter steps than NUTS would choose.
_TREEDEPTH_ADVICE = (
    "their trajectories were cut short, which slows exploration: raise max_tree_depth, or if the adapted "
    "step size is tiny, reparameterize."
)
_EBFMI_ADVICE = "the momentum draws move the energy too little: heavy tails or a funnel, consider a reparameterization."


def e_bfmi(energy: Any, pooled: bool = False) -> np.ndarray:
    """Energy Bayesian fraction of missing information of Hamiltonian chains.

    ``energy`` is the Hamiltonian at each draw, shape ``(chains, draws)`` (``stats["energy"]``
    of ``nuts``, ``hmc`` and ``chees_hmc``). Per chain, the mean squared change of the energy
    from one draw to the next over the variance of the energy (Betancourt 2016):

    .. math:: \\mathrm{E\\text{-}BFMI} = \\frac{\\sum_{n=2}^N (E_n - E_{n-1})^2 / N}{\\sum_{n=1}^N (E_n - \\bar E)^2 / N}

    the same as ``arviz.bfmi``. Only the momentum draw changes the energy between two draws of
    a full-refreshment Hamiltonian kernel, so a value near 0 says that the chain's energy
    random-walks across its marginal distribution (heavy tails, a funnel): below 0.3
    (``EBFMI_THRESHOLD``) the draws are suspect. For an AR(1) energy series with coefficient
    :math:`\\phi` it tends to :math:`2 (1 - \\phi)`.

    Returns one value per chain, or with ``pooled=True`` one value for all chains together:
    the squared changes summed over the chains, over the squared deviations from the mean of
    all draws (a short chain alone sees only part of the energy's distribution; many chains
    together see it whole, and chains that disagree lower the value). A chain whose energy
    never changes gives ``nan``. From thinned draws (``run_chains(..., thin=k)``) the value is
    that of every ``k``-th energy, larger than the kernel's own: the check is then less
    sensitive.
    """
    e = np.asarray(energy, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] < 2:
        raise ValueError(f"e_bfmi: energy must have shape (chains, draws) with draws >= 2, got {e.shape}")
    num = np.sum(np.square(np.diff(e, axis=1)), axis=1)
    if pooled:
        num, den = np.sum(num), np.sum(np.square(e - e.mean()))
    else:
        den = np.sum(np.square(e - e.mean(axis=1, keepdims=True)), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _chain_list(indices: np.ndarray, shown: int = 8) -> str:
    """``"0, 3, 7"``: the first ``shown`` chain indices of a warning, then ``", ..."``."""
    return ", ".join(str(i) for i in indices[:shown]) + (", ..." if indices.size > shown else "")


def _treedepth_problem(reached: Any) -> str | None:
    hit = np.asarray(reached, dtype=bool)
    if hit.ndim != 2 or not hit.any():
        return None
    per_chain = hit.sum(axis=1)
    return (
        f"{int(per_chain.sum())} of {hit.size} transitions ({100 * hit.mean():.1f}%) reached the maximum tree depth "
        f"(in chains {_chain_list(np.flatnonzero(per_chain))}; "
        f"at most {100 * (per_chain / hit.shape[1]).max():.0f}% of one chain's); {_TREEDEPTH_ADVICE}"
    )


# a chain that holds at least this many divergences, and at least half of the run's, is named
_DIVERGENT_CHAIN_MIN = 10


def _divergence_problem(divergent: Any) -> str | None:
    """The divergences of a run, and the chain that holds most of them where one does.

    With many chains a single chain can be stuck where every trajectory at its step size
    diverges (the narrow end of a funnel that it entered at the end of warmup): on the
    Inference Gym's Brownian motion with unknown scales, 756 of 889 divergences of 128 chains
    were one chain's, which never moved.  Naming it points at ``Result.chain_summary()``.
    """
    d = np.asarray(divergent, dtype=bool)
    total = int(d.sum())
    if not total:
        return None
    line = f"{total} divergent transitions after warmup; the draws may be biased."
    if d.ndim == 2 and d.shape[0] > 1:
        per_chain = d.sum(axis=1)
        worst = int(np.argmax(per_chain))
        if per_chain[worst] >= max(_DIVERGENT_CHAIN_MIN, total / 2):
            line += (
                f" {int(per_chain[worst])} of them in chain {worst} ({100 * per_chain[worst] / d.shape[1]:.0f}% of its "
                "transitions): a chain stuck where its step size is too large, often in the narrow end of a funnel "
                "(Result.chain_summary() compares it with the other chains). For NUTS, a higher target_accept "
                "(e.g. 0.9) or a warmup pooled over the chains (nuts(warmup_pool='metric'): no chain's metric "
                "fitted to its own warmup alone) often keeps a chain out of it."
            )
    return line


def _ebfmi_problem(energy: Any) -> str | None:
    e = np.asarray(energy, dtype=np.float64)
    if not np.all(np.isfinite(e)):
        return None
    if e.shape[1] >= EBFMI_MIN_DRAWS:
        per_chain = e_bfmi(e)
        low = np.flatnonzero(per_chain < EBFMI_THRESHOLD)
        if low.size:
            return (
                f"E-BFMI below {EBFMI_THRESHOLD} in {low.size} of {e.shape[0]} chains (chains {_chain_list(low)}; "
                f"lowest {np.nanmin(per_chain):.2f}); {_EBFMI_ADVICE}"
            )
        return None
    pooled = float(e_bfmi(e, pooled=True))
    if pooled < EBFMI_THRESHOLD:
        return f"E-BFMI of the chains pooled = {pooled:.2f} < {EBFMI_THRESHOLD}; {_EBFMI_ADVICE}"
    return None


def chain_summary(
    samples: Any,
    stats: Mapping[str, Any],
    warmup_grad_evals: Any = None,
    chain_ids: Any = None,
    warmup_restarts: Any = None,
) -> "pd.DataFrame":
    """One row per chain: what tells a chain that went wrong from the others.

    The after-run warnings name chains; this table says how each one differs.  Columns, each
    where ``stats`` has what it needs:

    * ``off_sd``: over all scalar coordinates of the draws, the largest distance of the
      chain's mean from the mean of the other chains, in standard deviations of the other
      chains' draws (NaN with one chain).  A chain that samples somewhere else shows as
      several; chains that agree give values of about 3 / sqrt(ESS per chain) or less.
    * ``step_size``: the median step size of its draws;
    * ``accept``: its mean acceptance statistic;
    * ``divergent``: its number of divergent transitions;
    * ``at_max_depth``: the share of its NUTS transitions that reached the maximum tree depth;
    * ``grads_per_draw``: its mean gradient evaluations per draw;
    * ``warmup_grads``: the gradients its warmup spent (given ``warmup_grad_evals``);
    * ``restarts``: the times the warmup's collapse guard sent it back to its start (given
      ``warmup_restarts``; see :func:`~mcgen.adaptation.window.window_adaptation`);
    * ``e_bfmi``: its E-BFMI (:func:`e_bfmi`; not for kernels whose momentum persists).

    Example
    -------
    >>> import numpy as np
    >>> draws = np.random.default_rng(0).standard_normal((3, 500))
    >>> draws[1] += 10.0  # chain 1 elsewhere
    >>> table = chain_summary(draws, {"is_divergent": np.zeros((3, 500), bool)})
    >>> list(table.columns), int(table["off_sd"].idxmax())
    (['off_sd', 'divergent'], 1)
    """
    import pandas as pd

    columns: dict[str, np.ndarray] = {}
    flat = [v.reshape(v.shape[0], v.shape[1], -1).astype(np.float64) for v in _variables(samples).values()]
    x = np.concatenate(flat, axis=2)  # (chains, draws, coordinates)
    chains, draws = x.shape[:2]
    if chains > 1:
        total, total_sq = x.sum(axis=(0, 1)), np.square(x).sum(axis=(0, 1))
        own, own_sq = x.sum(axis=1), np.square(x).sum(axis=1)  # (chains, coordinates)
        n_other = (chains - 1) * draws
        mean_other = (total - own) / n_other
        var_other = np.maximum((total_sq - own_sq) / n_other - np.square(mean_other), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.abs(own / draws - mean_other) / np.sqrt(var_other)
        off = np.where(np.isfinite(off), off, np.where(own / draws == mean_other, 0.0, np.inf))
        columns["off_sd"] = off.max(axis=1)
    else:
        columns["off_sd"] = np.full(chains, np.nan)
    if "step_size" in stats:
        columns["step_size"] = np.median(np.asarray(stats["step_size"], np.float64), axis=1)
    if "accept_prob" in stats:
        columns["accept"] = np.mean(np.asarray(stats["accept_prob"], np.float64), axis=1)
    if "is_divergent" in stats:
        columns["divergent"] = np.sum(np.asarray(stats["is_divergent"]), axis=1).astype(np.int64)
    if "reached_max_treedepth" in stats:
        columns["at_max_depth"] = np.mean(np.asarray(stats["reached_max_treedepth"], bool), axis=1)
    if "num_grad_evals" in stats:
        columns["grads_per_draw"] = np.mean(np.asarray(stats["num_grad_evals"], np.float64), axis=1)
    if warmup_grad_evals is not None:
        columns["warmup_grads"] = np.asarray(warmup_grad_evals).astype(np.int64)
    if warmup_restarts is not None:
        columns["restarts"] = np.asarray(warmup_restarts).astype(np.int64)
    if "energy" in stats and not any(k in stats for k in _PERSISTENT_MOMENTUM_STATS) and draws > 1:
        columns["e_bfmi"] = e_bfmi(stats["energy"])
    index = pd.Index(np.arange(chains) if chain_ids is None else np.asarray(chain_ids), name="chain")
    return pd.DataFrame(columns, index=index)


def check_run(samples: Any, stats: Mapping[str, Any], num_chains: int, superchains: int | None = None) -> list[str]:
    """One line per problem: R-hat > 1.01, ESS < 100 per chain (Stan/ArviZ), divergences, E-BFMI < 0.3,
    trajectories that reached NUTS's maximum tree depth.

    With many short chains (at least ``MANY_CHAINS`` chains and fewer draws than chains) the
    convergence check is the nested R-hat (:func:`nested_rhat`, ``superchains`` groups) and
    the ESS floor is ``MIN_TOTAL_ESS`` for the ensemble instead of 100 per chain. E-BFMI
    (:func:`e_bfmi`) is checked where ``stats`` has the Hamiltonian ``energy`` of a kernel that
    redraws the whole momentum at every transition: per chain from ``EBFMI_MIN_DRAWS`` draws
    on, below that pooled over the chains. Where ``stats`` has ``reached_max_treedepth``
    (``nuts``), any transition whose trajectory used every doubling is reported, as Stan does:
    an efficiency warning, naming the chains, since a chain stuck at a tiny step size shows
    there first.
    """
    problems: list[str] = []
    num_draws = next(iter(_variables(samples).values())).shape[1]
    if num_draws < 4:  # too few draws for ESS / R-hat
        return problems
    many = (
        num_chains >= MANY_CHAINS and num_draws < num_chains and (superchains or default_superchains(num_chains)) >= 2
    )
    diag = ess_rhat(samples)
    nested = nested_rhat(samples, superchains) if many else None
    for name, d in diag.items():
        if many:
            assert nested is not None
            nr = nested[name]
            nr = np.nanmax(nr) if np.isfinite(nr).any() else np.nan
            if np.isfinite(nr) and nr > 1.01:
                problems.append(f"{name}: max nested r_hat = {nr:.3f} > 1.01; the chains have not mixed.")
        else:
            rhat = np.nanmax(d["r_hat"]) if np.isfinite(d["r_hat"]).any() else np.nan
            if num_chains > 1 and np.isfinite(rhat) and rhat > 1.01:
                problems.append(f"{name}: max r_hat = {rhat:.3f} > 1.01; the chains have not mixed.")
        floor = MIN_TOTAL_ESS if many else 100 * num_chains
        for kind in ("ess_bulk", "ess_tail"):
            vals = d[kind][np.isfinite(d[kind])]
            if vals.size and vals.min() < floor:
                rule = f"{floor} for the ensemble" if many else f"100 per chain ({floor} for {num_chains} chains)"
                problems.append(f"{name}: min {kind} = {vals.min():.0f} < {rule}; run longer or tune the kernel.")
    if "is_divergent" in stats:
        problem = _divergence_problem(stats["is_divergent"])
        if problem:
            problems.append(problem)
    if "is_nonfinite" in stats:
        n_bad = int(np.sum(np.asarray(stats["is_nonfinite"])))
        if n_bad:
            problems.append(f"{n_bad} proposals had a NaN/+inf log-density and were rejected.")
    if "reached_max_treedepth" in stats:
        problem = _treedepth_problem(stats["reached_max_treedepth"])
        if problem:
            problems.append(problem)
    if "energy" in stats and not any(k in stats for k in _PERSISTENT_MOMENTUM_STATS):
        energy = np.asarray(stats["energy"])
        if energy.ndim == 2:
            problem = _ebfmi_problem(energy)
            if problem:
                problems.append(problem)
    return problems
