"""Direct samplers: independent or weighted draws, not Markov chains."""

from mcgen.direct.ancestral import ancestral_sample
from mcgen.direct.importance import importance_sample
from mcgen.direct.rejection import (
    EstimatedBoundWarning,
    RejectionBoundWarning,
    RejectionResult,
    rejection_sample,
)
from mcgen.direct.weighted import Estimate, ImportanceWeightWarning, WeightedSamples, resample_indices

__all__ = [
    "Estimate",
    "EstimatedBoundWarning",
    "ImportanceWeightWarning",
    "RejectionBoundWarning",
    "RejectionResult",
    "WeightedSamples",
    "ancestral_sample",
    "importance_sample",
    "rejection_sample",
    "resample_indices",
]
