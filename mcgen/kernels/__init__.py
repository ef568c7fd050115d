"""Markov transition kernels: one algorithm per module; building blocks in :mod:`mcgen.kernels.base`."""

from mcgen.kernels import base
from mcgen.kernels.adaptive_mh import adaptive_mh
from mcgen.kernels.barker import barker
from mcgen.kernels.categorical_gibbs import categorical_gibbs
from mcgen.kernels.chees import chees_hmc
from mcgen.kernels.hmc import hmc
from mcgen.kernels.independent_mh import independent_mh
from mcgen.kernels.langevin import mala, ula, ula_step
from mcgen.kernels.mams import mams
from mcgen.kernels.meads import meads
from mcgen.kernels.nuts import nuts
from mcgen.kernels.rwmh import rwmh

__all__ = [
    "adaptive_mh",
    "barker",
    "base",
    "categorical_gibbs",
    "chees_hmc",
    "hmc",
    "independent_mh",
    "mala",
    "mams",
    "meads",
    "nuts",
    "rwmh",
    "ula",
    "ula_step",
]
