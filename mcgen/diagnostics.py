"""Diagnostics through ArviZ: the one module of mcgen that touches ArviZ.

Everything that builds an ``InferenceData``, computes ESS / R-hat / MCSE, smooths importance
weights (PSIS) or plots goes through here.  ArviZ 0.2x (Python 3.11) works on
``InferenceData``; ArviZ 1.x moved to xarray ``DataTree``.  Supporting 1.x is a change to this
module alone.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

with warnings.catch_warnings():
    # ArviZ 0.2x announces its 1.x refactor with a FutureWarning on import.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

__all__ = [
    "SamplingWarning",
    "az",
    "chains_to_arviz",
    "check_run",
    "ess_rhat",
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
        r = (np.asarray(rhat[name]) if rhat is not None  # pyright: ignore[reportIndexIssue]
             else np.full(variables[name].shape[2:], np.nan))
        out[name] = {"ess_bulk": np.asarray(bulk[name]), "ess_tail": np.asarray(tail[name]), "r_hat": r}
    return out


def check_run(samples: Any, stats: Mapping[str, Any], num_chains: int) -> list[str]:
    """One line per problem: R-hat > 1.01, ESS < 100 per chain (Stan/ArviZ), divergences."""
    problems: list[str] = []
    num_draws = next(iter(_variables(samples).values())).shape[1]
    if num_draws < 4:  # too few draws for ESS / R-hat
        return problems
    diag = ess_rhat(samples)
    for name, d in diag.items():
        rhat = np.nanmax(d["r_hat"]) if np.isfinite(d["r_hat"]).any() else np.nan
        if num_chains > 1 and np.isfinite(rhat) and rhat > 1.01:
            problems.append(f"{name}: max r_hat = {rhat:.3f} > 1.01; the chains have not mixed.")
        for kind in ("ess_bulk", "ess_tail"):
            vals = d[kind][np.isfinite(d[kind])]
            if vals.size and vals.min() < 100 * num_chains:
                problems.append(
                    f"{name}: min {kind} = {vals.min():.0f} < 100 per chain "
                    f"({100 * num_chains} for {num_chains} chains); run longer or tune the kernel."
                )
    if "is_divergent" in stats:
        n_div = int(np.sum(np.asarray(stats["is_divergent"])))
        if n_div:
            problems.append(f"{n_div} divergent transitions after warmup; the draws may be biased.")
    if "is_nonfinite" in stats:
        n_bad = int(np.sum(np.asarray(stats["is_nonfinite"])))
        if n_bad:
            problems.append(f"{n_bad} proposals had a NaN/+inf log-density and were rejected.")
    return problems
