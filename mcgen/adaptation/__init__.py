"""Warmup adaptation: dual averaging, Welford covariance estimates, window schedules, and
statistics pooled across chains (:mod:`mcgen.adaptation.ensemble`)."""

from mcgen.adaptation import ensemble
from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.adaptation.welford import WelfordState, fisher_diagonal, welford_covariance, welford_init, welford_update
from mcgen.adaptation.window import WarmupTrace, early_schedule, window_adaptation, window_schedule

__all__ = [
    "DualAveragingState",
    "WarmupTrace",
    "WelfordState",
    "ensemble",
    "da_final",
    "da_init",
    "da_update",
    "early_schedule",
    "fisher_diagonal",
    "welford_covariance",
    "welford_init",
    "welford_update",
    "window_adaptation",
    "window_schedule",
]
