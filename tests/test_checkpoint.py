"""Checkpoints: SIGKILL at random moments (and in the middle of writes), rerun, and the draws
are bit-identical to a run never interrupted; runs from another call and corrupt checkpoints
are refused by name; bad paths and a full disk give clear errors and keep the last good
checkpoint; draws streamed to a zarr store read back lazily and through ArviZ."""
import errno
import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen._driver import checkpoint as ckpt_module

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
_spec = importlib.util.spec_from_file_location("checkpoint_kill", SCRIPTS / "checkpoint_kill.py")
kill_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_script)


@pytest.fixture(scope="module")
def references():
    return {name: kill_script.arrays(kill_script.run(name)) for name in kill_script.RUNS}


def _env(tmp_path, devices: int) -> dict:
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
            "MCGEN_TEST_JAX_CACHE": str(tmp_path / "jax-cache")}


def _checkpoints(root: pathlib.Path) -> set:
    return {str(p) for p in root.glob("*/checkpoint-*")}


def _kill_and_resume(tmp_path, devices: int, dies: list[str], random_kills: int, seed: int) -> dict:
    """Run the script killed in writes (``dies``) and at random moments, then to the end."""
    root = tmp_path / "runs"
    root.mkdir()
    env = _env(tmp_path, devices)
    command = [sys.executable, str(SCRIPTS / "checkpoint_kill.py"), str(root)]
    for die in dies:  # the process kills itself half-way through a checkpoint or draws write
        out = subprocess.run(command + [die], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    rng = np.random.default_rng(seed)
    for _ in range(random_kills):  # killed at a random moment once it has made progress
        seen = _checkpoints(root)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 200
        while _checkpoints(root) == seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-3000:]
    assert f"devices {devices}" in out.stdout
    return {name: dict(np.load(root / f"{name}.npz")) for name in kill_script.RUNS}


def _assert_identical(got: dict, ref: dict) -> None:
    for name in ref:
        assert set(got[name]) == set(ref[name]), name
        for key in ref[name]:
            np.testing.assert_array_equal(got[name][key], ref[name][key], err_msg=f"{name}: {key}")


def test_sigkill_anywhere_then_rerun_is_bit_identical(tmp_path, references):
    got = _kill_and_resume(tmp_path, 1, dies=["checkpoint:5", "draws:9"], random_kills=2, seed=0)
    _assert_identical(got, references)


def test_sigkill_on_8_simulated_devices_is_bit_identical(tmp_path, references):
    got = _kill_and_resume(tmp_path, 8, dies=["checkpoint:13"], random_kills=1, seed=1)
    _assert_identical(got, references)
