"""One process of a two-process jax.distributed run on 127.0.0.1 (CPU, gloo collectives).

Usage: python multiprocess_run.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR
Each process has 2 simulated CPU devices (XLA_FLAGS set by the caller), so the chains are
sharded over 4 devices in 2 processes.  Writes OUT_DIR/process_<id>.npz with the gathered
draws and the process-local draws.
"""

import sys
import warnings

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
process_id, num_processes, port, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
jax.distributed.initialize(
    f"127.0.0.1:{port}", num_processes=num_processes, process_id=process_id, initialization_timeout=60
)

import numpy as np  # noqa: E402

import mcgen as mc  # noqa: E402
from mcgen import testing  # noqa: E402

warnings.simplefilter("ignore")
target = testing.dict_gaussian()
run = dict(init=target.init, num_chains=8, num_samples=40, num_warmup=30, progress=False, seed=3, warn=False)
full = mc.run_chains(target.logdensity_fn, mc.rwmh(), **run)
local = mc.run_chains(target.logdensity_fn, mc.rwmh(), gather=False, **run)
idata = full.to_arviz()
# NUTS runs its warmup and sampling as one program (mcgen.run's whole run), sharded too
nuts = mc.run_chains(target.logdensity_fn, mc.nuts(mass="diag"), **run)
# ChEES's warmup pools across chains: each device maps its own chains, the pooled sums go
# across the devices of both processes (compared after 5 steps, where rounding is all that differs)
chees = mc.run_chains(target.logdensity_fn, mc.chees_hmc(), **{**run, "num_warmup": 5, "num_samples": 2})
from mcgen._driver.placement import _host_value  # noqa: E402

chees_params = [_host_value(x) for x in jax.tree_util.tree_leaves(chees.last_state.params)]
np.savez(
    f"{out_dir}/process_{process_id}.npz",
    loc=full.samples["loc"],
    log_scale=full.samples["log_scale"],
    local_loc=local.samples["loc"],
    local_ids=local.chain_ids,
    num_devices=len(jax.devices()),
    arviz_shape=np.array(idata.posterior["loc"].shape),
    nuts_loc=nuts.samples["loc"],
    nuts_steps=nuts.stats["num_grad_evals"],
    nuts_times=np.array([nuts.warmup_time, nuts.sampling_time]),
    **{f"chees_{i}": x for i, x in enumerate(chees_params)},
)
jax.distributed.shutdown()
