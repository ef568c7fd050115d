"""mcgen: composable, fast, statistically honest sampling on JAX.

The public names, nothing else (see DESIGN.md for the layout).
"""
from mcgen import adaptation, bayesnet, diagnostics, direct, generative, neural, reparam, testing
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
from mcgen.kernels import adaptive_mh, categorical_gibbs, hmc, independent_mh, mala, nuts, rwmh, ula
from mcgen.numpyro_bridge import NumPyroTarget, from_numpyro
from mcgen.result import Result
from mcgen.run import CheckpointError, run_chains
from mcgen.types import Kernel, Warmup

__all__ = [
    "CheckpointError",
    "Estimate",
    "NumPyroTarget",
    "from_numpyro",
    "hmc",
    "mala",
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
    "diagnostics",
    "independent_mh",
    "run_chains",
    "rwmh",
    "testing",
]
__version__ = "0.1.0"
