"""mcgen: composable, fast, statistically honest sampling on JAX."""
from mcgen.types import Kernel, Warmup

__all__ = ["Kernel", "Warmup"]
__version__ = "0.1.0"
