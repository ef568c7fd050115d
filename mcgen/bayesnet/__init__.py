"""Discrete Bayesian networks: build or load (BIF), query exactly or by sampling, fast.

>>> from mcgen import bayesnet
>>> bn = bayesnet.parse_bif('''
... network tiny { }
... variable cloudy { type discrete [ 2 ] { T, F }; }
... variable rain { type discrete [ 2 ] { T, F }; }
... probability ( cloudy ) { table 0.5, 0.5; }
... probability ( rain | cloudy ) { (T) 0.8, 0.2; (F) 0.2, 0.8; }
... ''')
>>> bn.query("cloudy", {"rain": "T"})["cloudy"]["T"]      # exact: 0.8   # doctest: +ELLIPSIS
0.8...
>>> res = bn.query("cloudy", {"rain": "T"}, method="gibbs", num_samples=20_000, seed=0)
>>> bool(abs(res["cloudy"]["T"] - 0.8) < 4 * res.mcse["cloudy"]["T"])
True
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
