"""Test configuration shared by the whole suite.

JAX's dtype promotion is strict here so that silent float64/int promotion in mcgen code is a
test failure.  Rank promotion is left at JAX's default because NumPyro's distributions rely on
implicit broadcasting internally.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")

# pytest-xdist's controller rebuilds each warning a worker reports by importing the module of
# its class, in one thread per worker: two workers reporting an mcgen warning at once made two
# threads import mcgen (and ArviZ under it) concurrently, and the race raised "partially
# initialized module 'arviz.utils'" and took both workers down.  Imported here, once, first.
import mcgen  # noqa: E402, F401
