"""Neural networks as targets: energy log-densities, scores, annealed Langevin dynamics."""

from mcgen.neural.annealed_langevin import annealed_langevin, geometric_sigmas
from mcgen.neural.energy import energy_logdensity, energy_score_fn, score_fn_from_logdensity

__all__ = ["annealed_langevin", "geometric_sigmas", "energy_logdensity", "energy_score_fn", "score_fn_from_logdensity"]
