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
    "az",
    "psis_smooth",
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


def _variables(tree: Any, prefix: str = "x") -> dict[str, np.ndarray]:
    """Flatten a pytree of arrays into ``{name: array}`` with names from dict keys / fields."""
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out: dict[str, np.ndarray] = {}
    for path, leaf in leaves:
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
        name = ".".join(parts) if parts else prefix
        out[name] = np.asarray(leaf)
    return out


def weighted_to_arviz(samples: Any, log_weights: Any) -> "az.InferenceData":
    """InferenceData for weighted draws: one chain; normalized log weights in ``sample_stats``.

    ``samples`` is a pytree with leaves of shape ``(n, *event)``; the weights are kept as
    ``sample_stats.log_weight`` (normalized so that ``logsumexp == 0``).
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    lw = lw - np.logaddexp.reduce(lw)
    posterior = {k: v[None] for k, v in _variables(samples).items()}
    return az.from_dict(posterior=posterior, sample_stats={"log_weight": lw[None]})
