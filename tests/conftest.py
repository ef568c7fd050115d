"""Test configuration shared by the whole suite.

JAX's dtype promotion is strict here so that silent float64/int promotion in mcgen code is a
test failure.  Rank promotion is left at JAX's default because NumPyro's distributions rely on
implicit broadcasting internally.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
