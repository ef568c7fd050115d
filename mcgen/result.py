"""The result of ``run_chains``: draws, per-draw statistics, the last state, timings.

A ``Result`` is plain data.  Everything that talks to ArviZ goes through
:mod:`mcgen.diagnostics`; the ``InferenceData`` is built on first use and kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mcgen.types import ArrayTree, Kernel


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """Draws from ``run_chains``.

    Attributes
    ----------
    samples
        Pytree of draws; every leaf has shape ``(num_chains, num_samples, *event_shape)``.
    stats
        Dict of per-draw kernel statistics (the kernel's ``Info`` fields, flattened with ``.``
        for nested infos, plus ``logdensity``), each of shape ``(num_chains, num_samples)``.
    last_state
        Kernel state of every chain after the last draw (leading chain axis).  Pass the
        ``Result`` as ``init`` to ``run_chains`` to continue these chains.
    kernel
        The kernel that produced the draws.
    num_chains, num_samples, num_warmup, thin, seed
        The settings of the run.
    compile_time
        Seconds spent tracing and compiling (zero when everything came from the cache).
    warmup_time, sampling_time
        Wall-clock seconds of the compiled warmup and sampling phases, compile excluded (where
        both ran as one program, split at the moment the program reported its warmup's end).
    messages
        The diagnostic warnings raised after sampling (R-hat, ESS, divergences, E-BFMI,
        NUTS trajectories at the maximum tree depth).
    chain_ids
        Global index of each chain held (all chains, or this process's with ``gather=False``).
    warmup_stats
        What the warmup did, per chain, for kernels with Stan's windowed warmup (``nuts``,
        ``hmc``, ``mala``, ``barker``); ``None`` otherwise.  A dict of numpy arrays:
        ``num_grad_evals`` ``(num_chains, num_warmup)``, the gradients each warmup transition
        spent (Stan's step-size search included: it runs on warmup transitions;
        :meth:`warmup_grad_evals` sums them);
        ``step_size`` ``(num_chains, num_warmup)``, the step size of each warmup transition;
        ``window_end`` ``(num_chains, num_windows)``, the warmup steps after which the metric
        was set; ``inverse_mass`` ``(num_chains, num_windows, d)``, the diagonal of the
        inverse mass set at each of them; ``restarted`` ``(num_chains, num_warmup)``, whether
        the initial buffer's collapse guard sent the chain back to its start after that step
        (:func:`~mcgen.adaptation.window.window_adaptation`'s ``collapse_restarts``).
    """

    samples: ArrayTree
    stats: dict[str, np.ndarray]
    last_state: Any
    kernel: Kernel
    num_chains: int
    num_samples: int
    num_warmup: int
    thin: int
    seed: int
    compile_time: float
    warmup_time: float
    sampling_time: float
    messages: tuple[str, ...] = ()
    chain_ids: Any = None
    warmup_stats: dict[str, np.ndarray] | None = None
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def to_arviz(self):
        """``arviz.InferenceData`` with groups ``posterior`` and ``sample_stats``."""
        if "idata" not in self._cache:
            from mcgen.diagnostics import chains_to_arviz

            self._cache["idata"] = chains_to_arviz(self.samples, self.stats)
        return self._cache["idata"]

    def summary(self, **kwargs):
        """ArviZ summary table (mean, sd, hdi, mcse, ess_bulk, ess_tail, r_hat)."""
        from mcgen.diagnostics import summary

        return summary(self.to_arviz(), **kwargs)

    def plot_trace(self, path: str | None = None, **kwargs):
        """ArviZ trace plot; written to ``path`` when given.  Returns the matplotlib axes."""
        from mcgen.diagnostics import plot_trace

        return plot_trace(self.to_arviz(), path=path, **kwargs)

    def diagnostics(self) -> dict[str, dict[str, np.ndarray]]:
        """Per variable: ``ess_bulk``, ``ess_tail``, ``r_hat`` arrays of the event shape."""
        if "diag" not in self._cache:
            from mcgen.diagnostics import ess_rhat

            self._cache["diag"] = ess_rhat(self.samples)
        return self._cache["diag"]

    def warmup_grad_evals(self) -> np.ndarray | None:
        """Gradients spent in warmup by each chain, ``(num_chains,)`` (``None`` if not recorded).

        Add ``stats['num_grad_evals'].sum(1)`` for the whole cost of the run.
        """
        if self.warmup_stats is None:
            return None
        return np.sum(self.warmup_stats["num_grad_evals"], axis=1)

    def nested_rhat(self, superchains: int | None = None) -> dict[str, np.ndarray]:
        """Nested R-hat per variable (:func:`mcgen.diagnostics.nested_rhat`): the convergence
        check for many short chains, with chains cut into ``superchains`` consecutive groups
        (default: about the square root of the number of chains)."""
        from mcgen.diagnostics import nested_rhat

        return nested_rhat(self.samples, superchains)

    def e_bfmi(self) -> np.ndarray:
        """E-BFMI per chain (:func:`mcgen.diagnostics.e_bfmi`) from ``stats['energy']``, which the
        Hamiltonian kernels (``nuts``, ``hmc``, ``chees_hmc``) record; below 0.3 the momentum
        draws move the energy too little (``run_chains`` warns). Not a diagnostic for ``meads``,
        whose momentum persists from one step to the next."""
        if "energy" not in self.stats:
            raise ValueError(
                "e_bfmi: this run recorded no Hamiltonian 'energy' (only nuts, hmc, chees_hmc and "
                f"meads kernels do); its stats are {sorted(self.stats)}"
            )
        from mcgen.diagnostics import e_bfmi

        return e_bfmi(self.stats["energy"])

    def chain_summary(self):
        """One row per chain (a ``pandas.DataFrame``, :func:`mcgen.diagnostics.chain_summary`):
        how far its mean lies from the other chains' in their standard deviations
        (``off_sd``), its step size, acceptance, divergences, share of NUTS transitions at the
        maximum tree depth, gradients per draw and in warmup, restarts of the warmup's
        collapse guard, and E-BFMI.  The after-run
        warnings name chains; this says what sets them apart (a chain whose warmup ended at a
        tiny step size shows it here)."""
        from mcgen.diagnostics import chain_summary

        restarts = None
        if self.warmup_stats is not None and "restarted" in self.warmup_stats:
            restarts = np.sum(self.warmup_stats["restarted"], axis=1)
        return chain_summary(self.samples, self.stats, self.warmup_grad_evals(), self.chain_ids, restarts)

    def acceptance_rate(self) -> np.ndarray:
        """Mean acceptance probability per chain (from ``stats['accept_prob']``)."""
        return np.mean(self.stats["accept_prob"], axis=1)

    def __repr__(self) -> str:
        import jax

        shapes = jax.tree_util.tree_map(lambda x: tuple(np.shape(x)), self.samples)
        return (
            f"Result(chains={self.num_chains}, samples={self.num_samples}, warmup={self.num_warmup}, "
            f"shapes={shapes}, compile={self.compile_time:.2f}s, sampling={self.sampling_time:.2f}s)"
        )
