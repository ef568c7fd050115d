"""Checkpointed runs that tests/test_checkpoint.py kills with SIGKILL and starts again.

Usage: python checkpoint_kill.py ROOT [DIE]

Runs four small checkpointed runs in turn (NUTS, a Gibbs combinator, parallel tempering, NUTS
with its default metric),
each with ``checkpoint=ROOT/<name>`` and a checkpoint at every chunk; a run whose checkpoint
is finished is read back.  When all are done, writes ROOT/<name>.npz (draws, stats, last
state leaves) for each and prints "done".

DIE makes this process kill itself with SIGKILL in the middle of a write:
``checkpoint:N``: after half of the N-th checkpoint file is written;
``draws:N``: after the N-th draws write has stored half of its chains.
Imported by the test for ``RUNS`` and ``run`` (the reference runs, without a checkpoint).
"""

import os
import pathlib
import signal
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc


def _gauss(x):
    return -0.5 * jnp.sum(x**2)


def _pair(x):
    return -0.5 * (x["a"] ** 2 + (x["b"] - 0.5 * x["a"]) ** 2)


def _bimodal(x):
    return jnp.logaddexp(-0.5 * jnp.sum((x - 2.0) ** 2), -0.5 * jnp.sum((x + 2.0) ** 2))


RUNS = {
    "nuts": (
        _gauss,
        mc.nuts(max_tree_depth=4, mass="diag"),
        dict(init=jnp.zeros(2), num_chains=3, num_samples=60, num_warmup=40, chunk_size=8, seed=11),
    ),
    "gibbs": (
        _pair,
        mc.gibbs({"a": mc.rwmh(), "b": mc.rwmh()}),
        dict(
            init={"a": jnp.zeros(()), "b": jnp.zeros(())},
            num_chains=4,
            num_samples=80,
            num_warmup=30,
            chunk_size=9,
            seed=12,
        ),
    ),
    "pt": (
        _bimodal,
        mc.parallel_tempering(mc.rwmh(), num_temps=3),
        dict(init=jnp.zeros(1), num_chains=2, num_samples=70, num_warmup=30, chunk_size=7, seed=13),
    ),
    # NUTS's default: the low-rank metric on the early schedule, whose warmup state (the draws
    # and gradients of the fit's buffer) must survive a kill; last, so the kill points above
    # stay where they are.  Bit-identical across device counts only with mass="diag" (above).
    "nuts_default": (
        _gauss,
        mc.nuts(max_tree_depth=4),
        dict(init=jnp.zeros(2), num_chains=3, num_samples=30, num_warmup=60, chunk_size=8, seed=14),
    ),
}


def run(name, **extra):
    logdensity, kernel, kwargs = RUNS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mc.run_chains(logdensity, kernel, progress=False, warn=False, init_batched=False, **kwargs, **extra)


def arrays(res) -> dict:
    out = {f"sample_{i}": np.asarray(x) for i, x in enumerate(jax.tree_util.tree_leaves(res.samples))}
    out.update({f"stat_{k}": np.asarray(v) for k, v in res.stats.items()})
    out.update(
        {
            f"state_{i}": np.asarray(
                jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
            )
            for i, x in enumerate(jax.tree_util.tree_leaves(res.last_state))
        }
    )
    return out


def _die_in(spec: str) -> None:
    where, n = spec.split(":")
    count = {"n": 0}
    if where == "checkpoint":
        from mcgen._driver import checkpoint

        def write(path, data):
            count["n"] += 1
            if count["n"] == int(n):
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return original(path, data)

        original = checkpoint._write_file
        checkpoint._write_file = write
    else:
        from mcgen._driver.store import DrawStore

        def put(array, t0, chunk, keep):
            count["n"] += 1
            if count["n"] == int(n):
                block = np.swapaxes(np.asarray(chunk), 0, 1)[keep]
                half = max(1, block.shape[0] // 2)
                wrong = np.logical_not(block[:half]) if block.dtype == np.bool_ else block[:half] + 1
                array[:half, t0 : t0 + block.shape[1]] = wrong  # half of the chains written, and wrong
                os.kill(os.getpid(), signal.SIGKILL)
            return original(array, t0, chunk, keep)

        original = DrawStore._put
        DrawStore._put = staticmethod(put)


if __name__ == "__main__":
    # reruns load what earlier processes compiled (the kills make many short processes)
    jax.config.update("jax_compilation_cache_dir", os.environ.get("MCGEN_TEST_JAX_CACHE", "/tmp/mcgen-jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    root = pathlib.Path(sys.argv[1])
    if len(sys.argv) > 2:
        _die_in(sys.argv[2])
    for name in RUNS:
        res = run(name, checkpoint=root / name, checkpoint_every=0)
        np.savez(root / f"{name}.npz", **arrays(res))
    print("devices", len(jax.devices()))
    print("done")
