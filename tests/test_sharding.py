"""Sharded chains: identical draws on 1, 2, 4 and 8 simulated devices, and across two processes
under jax.distributed (CPU, gloo).  Both run in subprocesses, because the device count is fixed
when JAX starts."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing

pytestmark = pytest.mark.exact_bits  # run under XLA's default optimization (dev.py test)

SCRIPTS = pathlib.Path(__file__).parent / "scripts"


def _env(devices: int) -> dict:
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}


def test_identical_draws_on_1_2_4_8_devices():
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "sharded_runs.py")], env=_env(8), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result.pop("num_devices") == 8
    assert all(result.values()), result


def test_low_rank_warmup_on_as_many_devices_as_cores():
    # the default NUTS's warmup fits a low-rank metric with LAPACK decompositions; batched, they
    # deadlocked XLA:CPU's thread pool when every core was a simulated device (2 on 2 cores)
    devices = min(8, max(2, os.cpu_count() or 2))  # the deadlock needed as many devices as cores
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "low_rank_devices.py")],
        env=_env(devices),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_single_process(tmp_path):
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPTS / "multiprocess_run.py"), str(i), "2", port, str(tmp_path)],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        errs = [p.communicate(timeout=240)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(e[-2000:] for e in errs)

    target = testing.dict_gaussian()
    run = dict(init=target.init, num_chains=8, num_samples=40, num_warmup=30, progress=False, seed=3, warn=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mc.run_chains(target.logdensity_fn, mc.rwmh(), **run)
        nuts = mc.run_chains(target.logdensity_fn, mc.nuts(mass="diag"), **run)
        chees = mc.run_chains(target.logdensity_fn, mc.chees_hmc(), **{**run, "num_warmup": 5, "num_samples": 2})
    chees_params = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(chees.last_state.params)]
    ids = []
    for i in range(2):
        got = np.load(tmp_path / f"process_{i}.npz")
        assert int(got["num_devices"]) == 4
        np.testing.assert_array_equal(got["loc"], ref.samples["loc"])
        np.testing.assert_array_equal(got["log_scale"], ref.samples["log_scale"])
        np.testing.assert_array_equal(got["local_loc"], ref.samples["loc"][got["local_ids"]])
        assert tuple(got["arviz_shape"]) == (8, 40, 2)
        np.testing.assert_array_equal(got["nuts_loc"], nuts.samples["loc"])
        np.testing.assert_array_equal(got["nuts_steps"], nuts.stats["num_grad_evals"])
        assert np.all(got["nuts_times"] > 0)
        for j, want in enumerate(chees_params):  # pooled across processes: equal to rounding
            np.testing.assert_allclose(got[f"chees_{j}"], want, rtol=1e-4)
        ids.append(set(got["local_ids"].tolist()))
    assert ids[0].isdisjoint(ids[1]) and ids[0] | ids[1] == set(range(8))


@pytest.mark.parametrize("bad", [{"chain_method": "pmap"}, {"devices": []}])
def test_bad_placement_arguments(bad):
    target = testing.dict_gaussian()
    with pytest.raises(ValueError):
        mc.run_chains(target.logdensity_fn, mc.rwmh(), init=target.init, num_samples=5, progress=False, **bad)
