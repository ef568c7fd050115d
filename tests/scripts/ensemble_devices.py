"""Run the same ensemble warmup on 1 and 8 (simulated) devices; print how far the adapted
values are apart.  Started by tests/test_ensemble.py with
XLA_FLAGS=--xla_force_host_platform_device_count=8.

12 chains run as 12 on one device and as 16 on eight (two per device, 4 padding chains), so
the pooled statistics only agree if padding is excluded.
"""

import json
import pathlib
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import mcgen as mc  # noqa: E402
from mcgen._driver import placement  # noqa: E402
from tests.ensemble_kernels import pooled_rwmh  # noqa: E402

warnings.simplefilter("ignore")


def logdensity(x):
    return -0.5 * jnp.sum((x / jnp.array([1.0, 3.0, 0.5])) ** 2)


# (kernel, warmup steps): ChEES's ensemble warmup is a nonlinear system (shared step size,
# accept thresholds) that amplifies rounding differences about tenfold every five steps, so it
# is compared after 5 steps, where agreement to rounding is what can be asserted.
kernels = {
    "pooled_rwmh": (pooled_rwmh(), 60),
    "raw_pooled_rwmh": (pooled_rwmh(raw=True), 60),
    "chees_hmc": (mc.chees_hmc(), 5),
    "meads": (mc.meads(), 5),  # two fold assignments (a new permutation after 4 steps)
    "mams": (mc.mams(), 5),  # one unadjusted step, then four that adapt the trajectory length
    # NUTS's warmup pooled over the chains: the metric set at step 17 of 20 from all chains'
    # window (Stan's diagonal; the low-rank fit on the early schedule), the step size pooled too
    "nuts_pool_all": (mc.nuts(mass="diag", warmup_pool="all"), 20),
    "nuts_pool_metric": (mc.nuts(warmup_pool="metric"), 20),
}
run = dict(init=jnp.ones(3), num_chains=12, num_samples=2, progress=False, seed=1, init_jitter=1.0, warn=False)
out = {"num_devices": len(jax.devices())}
for name, (kernel, num_warmup) in kernels.items():
    one = mc.run_chains(logdensity, kernel, devices=jax.devices()[:1], num_warmup=num_warmup, **run)
    before = placement._WHOLE_BATCH_WARMUPS
    eight = mc.run_chains(logdensity, kernel, num_warmup=num_warmup, **run)
    # each device maps its own chains, pooling through the helpers; a raw pmean: one program
    per_device = placement._WHOLE_BATCH_WARMUPS == before
    diffs = [
        float(np.max(np.abs(a - b) / (np.abs(a) + 1e-30)))
        for a, b in zip(
            *(
                [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(r.last_state.params)]
                for r in (one, eight)
            )
        )
    ]
    sharded = len(jax.tree_util.tree_leaves(eight.last_state)[0].sharding.device_set) == 8
    out[name] = {"max_rel_diff": max(diffs), "sharded": sharded, "per_device": per_device}
json.dump(out, sys.stdout)
