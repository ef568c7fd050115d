"""The default NUTS (low-rank metric fitted in the warmup) sharded over as many simulated CPU
devices as the machine has cores; prints "done" when the run returns.

Started by tests/test_sharding.py with XLA_FLAGS=--xla_force_host_platform_device_count=N.
Batched decompositions in the metric's fit once deadlocked XLA:CPU's thread pool here (every
pool thread a device's program waiting for its own split-off LAPACK pieces); the fit now
runs chain by chain on the CPU (``mcgen.adaptation.low_rank.one_chain_at_a_time``).
"""

import warnings

import jax
import numpy as np

import mcgen as mc
from mcgen import testing

warnings.simplefilter("ignore")
target = testing.correlated_gaussian(32)
res = mc.run_chains(
    target.logdensity_fn,
    mc.nuts(),
    init=target.init,
    num_chains=8,
    num_warmup=200,
    num_samples=50,
    seed=1,
    progress=False,
    warn=False,
)
assert len(res.last_state.position.sharding.device_set) == len(jax.devices()) > 1
assert np.all(np.isfinite(res.samples))
print("done", flush=True)
