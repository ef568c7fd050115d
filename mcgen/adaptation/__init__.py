"""Warmup adaptation: dual averaging, Welford covariance estimates, window schedules, and
statistics pooled across chains (:mod:`mcgen.adaptation.ensemble`)."""
from mcgen.adaptation import ensemble
from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.adaptation.window import window_adaptation, window_schedule
from mcgen.adaptation.welford import WelfordState, welford_covariance, welford_init, welford_update

__all__ = [
    "DualAveragingState",
    "WelfordState",
    "ensemble",
    "da_final",
    "da_init",
    "da_update",
    "welford_covariance",
    "welford_init",
    "welford_update",
    "window_adaptation",
    "window_schedule",
]
