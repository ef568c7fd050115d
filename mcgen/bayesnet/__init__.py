"""Discrete Bayesian networks: build or load (BIF), query exactly or by sampling, fast.

>>> from mcgen import bayesnet
>>> bn = bayesnet.read_bif("tests/data/weather.bif")                      # doctest: +SKIP
>>> res = bn.query("cloudy", {"wet_grass": "T"}, method="gibbs")          # doctest: +SKIP
>>> res["cloudy"]["T"], res.mcse["cloudy"]["T"], res.r_hat                # doctest: +SKIP
"""
from mcgen.bayesnet._errors import (
    BayesNetError,
    BIFSyntaxError,
    CPTError,
    CycleError,
    EvidenceError,
    GibbsErgodicityWarning,
    LowAcceptanceWarning,
)
from mcgen.bayesnet.bif import parse_bif, read_bif, to_bif, write_bif
from mcgen.bayesnet.exact import elimination_order, variable_elimination
from mcgen.bayesnet.gibbs import GibbsInfo, GibbsState, gibbs_kernel
from mcgen.bayesnet.network import BayesNet, Variable
from mcgen.bayesnet.query import METHODS, query
from mcgen.bayesnet.results import JointDistribution, QueryResult
from mcgen.bayesnet.sampling import forward_sample, likelihood_weighting, rejection_sample

__all__ = [
    "BIFSyntaxError",
    "BayesNet",
    "BayesNetError",
    "CPTError",
    "CycleError",
    "EvidenceError",
    "GibbsErgodicityWarning",
    "GibbsInfo",
    "GibbsState",
    "JointDistribution",
    "LowAcceptanceWarning",
    "METHODS",
    "QueryResult",
    "Variable",
    "elimination_order",
    "forward_sample",
    "gibbs_kernel",
    "likelihood_weighting",
    "parse_bif",
    "query",
    "read_bif",
    "rejection_sample",
    "to_bif",
    "variable_elimination",
    "write_bif",
]
