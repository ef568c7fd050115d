"""Warmup adaptation: dual averaging, Welford covariance estimates, the low-rank metric's
estimator (:mod:`mcgen.adaptation.low_rank`), window schedules, and statistics pooled across
chains (:mod:`mcgen.adaptation.ensemble`)."""

from mcgen.adaptation import ensemble
from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.adaptation.low_rank import LowRankInverseMass, low_rank_estimate
from mcgen.adaptation.welford import WelfordState, fisher_diagonal, welford_covariance, welford_init, welford_update
from mcgen.adaptation.window import WarmupTrace, early_schedule, window_adaptation, window_schedule

__all__ = [
    "DualAveragingState",
    "LowRankInverseMass",
    "WarmupTrace",
    "WelfordState",
    "ensemble",
    "da_final",
    "da_init",
    "da_update",
    "early_schedule",
    "fisher_diagonal",
    "low_rank_estimate",
    "welford_covariance",
    "welford_init",
    "welford_update",
    "window_adaptation",
    "window_schedule",
]
