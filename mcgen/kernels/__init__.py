"""Markov transition kernels: one algorithm per module."""
from mcgen.kernels.adaptive_mh import adaptive_mh
from mcgen.kernels.categorical_gibbs import categorical_gibbs
from mcgen.kernels.independent_mh import independent_mh
from mcgen.kernels.rwmh import rwmh

__all__ = ["adaptive_mh", "categorical_gibbs", "independent_mh", "rwmh"]
