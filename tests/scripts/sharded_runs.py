"""Run the same chains on 1, 2, 4 and 8 (simulated) devices; print whether draws match.

Started by tests/test_sharding.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the flag must be set before JAX starts).
"""

import json
import sys
import warnings

import jax
import numpy as np

import mcgen as mc
from mcgen import testing

warnings.simplefilter("ignore")
target = testing.dict_gaussian()
run = dict(init=target.init, num_chains=12, num_samples=60, num_warmup=40, progress=False, seed=3, warn=False)
kernels = {"rwmh": mc.rwmh(), "adaptive_mh": mc.adaptive_mh()}
out = {"num_devices": len(jax.devices())}
for name, kernel in kernels.items():
    ref = mc.run_chains(target.logdensity_fn, kernel, chain_method="vectorized", **run)
    for n in (1, 2, 4, 8):
        res = mc.run_chains(target.logdensity_fn, kernel, devices=jax.devices()[:n], **run)
        same = all(
            np.array_equal(a, b)
            for a, b in zip(jax.tree_util.tree_leaves(ref.samples), jax.tree_util.tree_leaves(res.samples))
        )
        out[f"{name}_{n}"] = same
    # the default on 8 devices is sharded; the last state lives across the devices
    res = mc.run_chains(target.logdensity_fn, kernel, **run)
    out[f"{name}_default_sharded"] = len(res.last_state.position["loc"].sharding.device_set) == 8
    cont = mc.run_chains(
        target.logdensity_fn, kernel, init=res, num_chains=12, num_samples=10, progress=False, warn=False
    )
    out[f"{name}_resume"] = cont.samples["loc"].shape == (12, 10, 2)
# NUTS and MALA run warmup and sampling as one program (mcgen.run's whole run), sharded too,
# with the draws of one device; in chunks, one program serves warmup and sampling chunks
from mcgen._driver import compile as compiled  # noqa: E402
from mcgen._driver import steps  # noqa: E402

for name, kernel in {"nuts_diag": mc.nuts(mass="diag"), "mala": mc.mala()}.items():
    for chunk in (None, 20):
        ref = mc.run_chains(target.logdensity_fn, kernel, chain_method="vectorized", chunk_size=chunk, **run)
        mc.run.clear_cache()
        res = mc.run_chains(target.logdensity_fn, kernel, devices=jax.devices()[:4], chunk_size=chunk, **run)
        programs = [k[0] for k in compiled._CACHE]
        out[f"{name}_{chunk}_4"] = all(
            np.array_equal(a, b)
            for a, b in zip(
                jax.tree_util.tree_leaves((ref.samples, ref.stats)), jax.tree_util.tree_leaves((res.samples, res.stats))
            )
        )
        out[f"{name}_{chunk}_one_program"] = (
            (steps._whole_run in programs) if chunk is None else programs.count(steps._steps) == 1
        ) and steps._sample_chunk not in programs
        out[f"{name}_{chunk}_sharded"] = len(res.last_state.position["loc"].sharding.device_set) == 4
        # each device loops over its own chains: no collective in the loop program (partitioned
        # over all devices, NUTS's leaf loop would reduce its condition over every chain)
        loop = [v for k, v in compiled._CACHE.items() if k[0] in (steps._whole_run, steps._steps)]
        out[f"{name}_{chunk}_per_device"] = bool(loop) and all("all-reduce" not in p.as_text() for p in loop)
seq = mc.run_chains(target.logdensity_fn, mc.rwmh(), chain_method="sequential", **run)
vec = mc.run_chains(target.logdensity_fn, mc.rwmh(), chain_method="vectorized", **run)
out["sequential_close"] = bool(np.allclose(seq.samples["loc"], vec.samples["loc"], atol=1e-4))
json.dump(out, sys.stdout)
