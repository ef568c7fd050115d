"""mcgen: composable, fast, statistically honest sampling on JAX.

The public names, nothing else.
"""

from importlib import metadata as _metadata

from mcgen import adaptation, bayesnet, diagnostics, direct, generative, neural, reparam, testing
from mcgen.blackjax_bridge import from_blackjax
from mcgen.combinators import PriorLikelihood, compose, gibbs, mixture, parallel_tempering
from mcgen.diagnostics import SamplingWarning
from mcgen.direct import (
    Estimate,
    RejectionResult,
    WeightedSamples,
    ancestral_sample,
    importance_sample,
    rejection_sample,
    resample_indices,
)
from mcgen.kernels import (
    adaptive_mh,
    barker,
    categorical_gibbs,
    chees_hmc,
    hmc,
    independent_mh,
    mala,
    mams,
    meads,
    nuts,
    rwmh,
    ula,
)
from mcgen.numpyro_bridge import NumPyroTarget, from_numpyro
from mcgen.result import Result
from mcgen.run import CheckpointError, run_chains
from mcgen.types import Kernel, Warmup

__all__ = [
    "CheckpointError",
    "Estimate",
    "NumPyroTarget",
    "from_blackjax",
    "from_numpyro",
    "chees_hmc",
    "hmc",
    "mala",
    "mams",
    "meads",
    "nuts",
    "ula",
    "PriorLikelihood",
    "categorical_gibbs",
    "compose",
    "gibbs",
    "mixture",
    "parallel_tempering",
    "Kernel",
    "RejectionResult",
    "WeightedSamples",
    "ancestral_sample",
    "direct",
    "generative",
    "neural",
    "importance_sample",
    "rejection_sample",
    "reparam",
    "resample_indices",
    "Result",
    "SamplingWarning",
    "Warmup",
    "adaptation",
    "bayesnet",
    "adaptive_mh",
    "barker",
    "diagnostics",
    "independent_mh",
    "run_chains",
    "rwmh",
    "testing",
]
try:  # the version is written once, in pyproject.toml
    __version__ = _metadata.version("mcgen")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
