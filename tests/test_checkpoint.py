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
from mcgen.kernels._metrics import dense_inverse_mass

pytestmark = pytest.mark.exact_bits  # run under XLA's default optimization (dev.py test)

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
_spec = importlib.util.spec_from_file_location("checkpoint_kill", SCRIPTS / "checkpoint_kill.py")
kill_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_script)


@pytest.fixture(scope="module")
def references():
    return {name: kill_script.arrays(kill_script.run(name)) for name in kill_script.RUNS}


def _env(tmp_path, devices: int) -> dict:
    return {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
        "MCGEN_TEST_JAX_CACHE": str(tmp_path / "jax-cache"),
    }


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


def _assert_identical(got: dict, ref: dict, skip: tuple = ()) -> None:
    for name in set(ref) - set(skip):
        assert set(got[name]) == set(ref[name]), name
        for key in ref[name]:
            np.testing.assert_array_equal(got[name][key], ref[name][key], err_msg=f"{name}: {key}")


def test_sigkill_anywhere_then_rerun_is_bit_identical(tmp_path, references):
    got = _kill_and_resume(tmp_path, 1, dies=["checkpoint:5", "draws:9"], random_kills=1, seed=0)
    _assert_identical(got, references)


def test_sigkill_on_8_simulated_devices_is_bit_identical(tmp_path, references):
    got = _kill_and_resume(tmp_path, 8, dies=["checkpoint:13"], random_kills=1, seed=1)
    # NUTS's default low-rank metric agrees across device counts to rounding only (mcgen.run)
    _assert_identical(got, references, skip=("nuts_default",))


# ------------------------------------------------------------------ in-process: refusals and failures

DICT = mc.testing.dict_gaussian()
SMALL = dict(num_chains=3, num_samples=24, num_warmup=12, chunk_size=5, seed=4, progress=False, warn=False)


def _small(**kwargs):
    kwargs = {**SMALL, **kwargs}
    return mc.run_chains(
        DICT.logdensity_fn, kwargs.pop("kernel", mc.rwmh()), init=kwargs.pop("init", DICT.init), **kwargs
    )


def _same(a, b) -> None:
    for x, y in zip(jax.tree_util.tree_leaves(a.samples), jax.tree_util.tree_leaves(b.samples)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert set(a.stats) == set(b.stats)
    for k in a.stats:
        np.testing.assert_array_equal(np.asarray(a.stats[k]), np.asarray(b.stats[k]))
    for x, y in zip(jax.tree_util.tree_leaves(a.last_state), jax.tree_util.tree_leaves(b.last_state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(
    "change, named",
    [
        ({"seed": 5}, "seed"),
        ({"num_samples": 30}, "num_samples"),
        ({"num_warmup": 10}, "num_warmup"),
        ({"thin": 2}, "thin"),
        ({"num_chains": 4}, "num_chains"),
        ({"kernel": mc.rwmh(scale=0.3)}, "kernel"),
        ({"kernel": mc.adaptive_mh()}, "kernel"),
        ({"init": {"loc": jnp.ones(2), "log_scale": jnp.zeros(())}}, "initial_states"),
    ],
)
def test_checkpoint_from_another_run_is_refused_naming_the_difference(tmp_path, change, named):
    _small(checkpoint=tmp_path, checkpoint_every=0)
    with pytest.raises(mc.CheckpointError, match=rf"different run(.|\n)*\n  {named}: checkpoint has"):
        _small(checkpoint=tmp_path, checkpoint_every=0, **change)
    assert len(list(tmp_path.glob("checkpoint-*"))) == 1  # the refused call destroyed nothing


def _any_shape(x):
    return -0.5 * jnp.sum(x**2)


def _any_shape_too(x):
    return -0.5 * jnp.sum(x**2)


def test_checkpoint_with_other_shapes_is_refused(tmp_path):
    run = dict(
        num_chains=2, num_samples=10, num_warmup=0, progress=False, warn=False, init_batched=False, checkpoint=tmp_path
    )
    mc.run_chains(_any_shape, mc.rwmh(), init=jnp.zeros(2), **run)
    with pytest.raises(
        mc.CheckpointError, match=r"\n  state: checkpoint has .*\(2, 2\) float32.*this call has .*\(2, 3\)"
    ):
        mc.run_chains(_any_shape, mc.rwmh(), init=jnp.zeros(3), **run)
    with pytest.raises(mc.CheckpointError, match=r"\n  logdensity_fn: checkpoint has .*_any_shape"):
        mc.run_chains(_any_shape_too, mc.rwmh(), init=jnp.zeros(2), **run)


def test_finished_checkpoint_is_read_back_without_stepping(tmp_path):
    ref = _small()
    first = _small(checkpoint=tmp_path, checkpoint_every=0)
    again = _small(checkpoint=tmp_path, checkpoint_every=0)
    _same(first, ref)
    _same(again, ref)
    assert isinstance(again.samples["loc"], type(first.samples["loc"]))
    assert again.sampling_time == pytest.approx(first.sampling_time)  # nothing more was stepped


def _fail_after(monkeypatch, checkpoints: int, error=errno.ENOSPC):
    """Make every checkpoint write fail with ``error`` once ``checkpoints`` have been written."""
    original, count = ckpt_module._write_file, {"n": 0}

    def write(path, data):
        if count["n"] >= checkpoints:
            raise OSError(error, os.strerror(error))
        original(path, data)
        count["n"] += path.name == "manifest.json"

    monkeypatch.setattr(ckpt_module, "_write_file", write)


@pytest.mark.parametrize("checkpoints", [1, 4])  # the disk fills in warmup, in sampling
def test_full_disk_keeps_last_good_checkpoint_and_resumes(tmp_path, monkeypatch, checkpoints):
    ref = _small()
    _fail_after(monkeypatch, checkpoints)
    with pytest.raises(mc.CheckpointError, match=r"No space left on device(.|\n)*last good checkpoint \(checkpoint-"):
        _small(checkpoint=tmp_path, checkpoint_every=0)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []  # no half checkpoint left
    monkeypatch.undo()
    _same(_small(checkpoint=tmp_path, checkpoint_every=0), ref)


@pytest.mark.parametrize("kernel", [mc.adaptive_mh(), mc.nuts()], ids=["adaptive_mh", "nuts_one_loop"])
def test_resume_from_mid_sampling_checkpoint_and_warmup_checkpoint(tmp_path, monkeypatch, kernel):
    # Stop a run after its k-th checkpoint (in warmup, then in sampling) and resume: same draws.
    # (NUTS runs warmup and sampling chunks in one loop, mcgen.types.WarmupParts: a resumed
    # sampling phase rebuilds the warmup states that only fill that loop's carry.)
    ref = _small(kernel=kernel)
    for stop in (1, 4):
        path = tmp_path / str(stop)
        original, count = ckpt_module.Checkpointer.save, {"n": 0}

        def save(self, *args, **kwargs):
            original(self, *args, **kwargs)
            count["n"] += 1
            if count["n"] == stop:
                raise KeyboardInterrupt

        count["n"] = 0
        monkeypatch.setattr(ckpt_module.Checkpointer, "save", save)
        with pytest.raises(KeyboardInterrupt):
            _small(kernel=kernel, checkpoint=path, checkpoint_every=0)
        phase = json.loads(next(path.glob("checkpoint-*/manifest.json")).read_text())["phase"]
        assert phase == ("warmup" if stop == 1 else "sampling")
        monkeypatch.undo()
        _same(_small(kernel=kernel, checkpoint=path, checkpoint_every=0), ref)


def test_corrupt_or_truncated_checkpoint_is_named(tmp_path):
    _small(checkpoint=tmp_path, checkpoint_every=0)
    (where,) = tmp_path.glob("checkpoint-*")
    leaf = where / "leaf-0001.npy"
    good = leaf.read_bytes()
    leaf.write_bytes(good[: len(good) // 2])
    with pytest.raises(mc.CheckpointError, match="corrupt or truncated: leaf-0001.npy"):
        _small(checkpoint=tmp_path, checkpoint_every=0)
    leaf.write_bytes(good)
    manifest = (where / "manifest.json").read_bytes()
    (where / "manifest.json").write_bytes(manifest[:50])
    with pytest.raises(mc.CheckpointError, match="manifest.json cannot be read"):
        _small(checkpoint=tmp_path, checkpoint_every=0)
    (where / "manifest.json").write_bytes(manifest)
    chunk = tmp_path / "draws.zarr" / "posterior" / "loc" / "c" / "0" / "2" / "0"
    good = chunk.read_bytes()
    data = bytearray(good)
    data[-5] ^= 0xFF  # a damaged chunk file: it no longer decodes
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"draws store .* is corrupt: posterior/loc, draws 10..14"):
        _small(checkpoint=tmp_path, checkpoint_every=0)
    chunk.write_bytes(good)
    import zarr

    stats = zarr.open_group(str(tmp_path / "draws.zarr"), mode="r+")["sample_stats"]["accept_prob"]
    stats[1, 16] = 0.123  # a chunk that decodes well but holds other values: only the CRC tells
    with pytest.raises(ValueError, match=r"draws store .* is corrupt: sample_stats/accept_prob, draws 15..19"):
        _small(checkpoint=tmp_path, checkpoint_every=0)


def test_bad_paths_give_clear_errors(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        _small(checkpoint=a_file)
    with pytest.raises(OSError, match="not writable"):
        _small(checkpoint=a_file / "below")
    with pytest.raises(ValueError, match="is a file"):
        _small(store=a_file)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an mcgen store"):
        _small(store=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="checkpoint_every"):
        _small(checkpoint=tmp_path / "c", checkpoint_every=-1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OSError, match="not writable"):
        _small(checkpoint=locked)


# ------------------------------------------------------------------ draws on disk


def test_store_streams_draws_that_read_back_lazily_and_through_arviz(tmp_path):
    import xarray as xr
    import zarr

    ref = _small(num_samples=23)
    res = _small(num_samples=23, store=tmp_path / "draws")
    assert isinstance(res.samples["loc"], zarr.Array) and res.samples["loc"].shape == (3, 23, 2)
    _same(res, ref)
    assert res.to_arviz().posterior["loc"].shape == (3, 23, 2)
    idata = __import__("arviz").InferenceData.from_datatree(
        xr.open_datatree(tmp_path / "draws", engine="zarr", consolidated=False)
    )
    np.testing.assert_array_equal(idata.posterior["loc"].values, ref.samples["loc"])
    np.testing.assert_array_equal(idata.sample_stats["accept_prob"].values, ref.stats["accept_prob"])
    again = _small(num_samples=23, store=tmp_path / "draws", seed=9)  # an mcgen store is replaced
    assert not np.array_equal(np.asarray(again.samples["loc"]), ref.samples["loc"])


@pytest.mark.slow
def test_warm_start_keeps_adapted_tunables():
    def logdensity(x):
        return -0.5 * jnp.sum((x / jnp.array([1.0, 10.0])) ** 2)

    def metric(res):  # each chain's inverse mass as a (2, 2) matrix, whatever its form
        return np.asarray(jax.vmap(dense_inverse_mass)(res.last_state.params.inverse_mass))

    run = dict(num_chains=2, progress=False, warn=False)
    first = mc.run_chains(
        logdensity, mc.nuts(), init=jnp.zeros(2), num_samples=50, num_warmup=300, seed=1, init_batched=False, **run
    )
    # a warmup too short for a metric update (under 20 steps) only re-tunes the step size
    warm = mc.run_chains(logdensity, mc.nuts(), init=first, num_samples=50, num_warmup=10, seed=2, **run)
    cold = mc.run_chains(
        logdensity, mc.nuts(), init=jnp.zeros(2), num_samples=50, num_warmup=10, seed=2, init_batched=False, **run
    )
    adapted = metric(first)
    assert np.all(adapted[:, 1, 1] > 30)  # the metric learned the scale 10 (variance 100)
    np.testing.assert_array_equal(metric(warm), adapted)  # kept
    np.testing.assert_array_equal(metric(cold), np.broadcast_to(np.eye(2), adapted.shape))  # a cold start has not
    assert warm.stats["num_grad_evals"].mean() < cold.stats["num_grad_evals"].mean()  # so it samples cheaper
