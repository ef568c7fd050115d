"""A subset of the cases of tests/determinism_cases.py (every kernel family and one of each
combinator kind) on 1 device and sharded over 8 (simulated) devices; prints one JSON line per
case, {case: identical}.  Started by tests/test_determinism.py with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the flag must be set before JAX starts) as
``python -m tests.scripts.determinism_devices`` from the repository root.
Sharded compiles are slow on CPU, so the subset is small; tests/test_sharding.py covers rwmh
and adaptive_mh."""

import json

import jax

from tests.determinism_cases import first_chains_equal, run

DEVICE_CASES = ("hmc", "mala", "nuts", "gibbs_mh", "mixture")

print(json.dumps({"num_devices": len(jax.devices())}), flush=True)
for name in DEVICE_CASES:
    one = run(name, 8, devices=jax.devices()[:1])
    eight = run(name, 8)  # sharded over the 8 devices (the default), one chain per device
    print(json.dumps({name: first_chains_equal(one, eight, 8)}), flush=True)
