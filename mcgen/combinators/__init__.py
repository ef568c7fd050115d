"""Combinators: kernels that hold kernels (Gibbs, composition, mixture, parallel tempering)."""

from mcgen.combinators.compose import compose, mixture
from mcgen.combinators.gibbs import gibbs
from mcgen.combinators.tempering import PriorLikelihood, parallel_tempering

__all__ = ["PriorLikelihood", "compose", "gibbs", "mixture", "parallel_tempering"]
