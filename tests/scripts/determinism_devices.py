"""Every case of tests/determinism_cases.py on 1 device and sharded on 8 (simulated) devices;
prints a JSON line {case: identical}.  Started by tests/test_determinism.py with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the flag must be set before JAX starts)."""
import json
import pathlib
import sys

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from determinism_cases import CASES, first_chains_equal, run  # noqa: E402

out = {"num_devices": len(jax.devices())}
for name in CASES:
    one = run(name, 16, devices=jax.devices()[:1])
    eight = run(name, 16)  # sharded over the 8 devices (the default)
    out[name] = first_chains_equal(one, eight, 16)
json.dump(out, sys.stdout)
