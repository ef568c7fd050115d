"""First call and per-gradient sampling time of NUTS: this tree against an earlier commit, in one process.

The earlier commit's ``mcgen`` is extracted with ``git archive`` into a temporary directory and
renamed ``mcgen_old`` (every ``mcgen`` name in it rewritten), so both versions import side by
side; runs alternate between them (and, for this tree, its two-program driver, ``_WHOLE_RUN``
off), from cold caches, on an Inference Gym target (the ``bench`` extra).  Absolute times on a
shared machine are noise; the ratios of alternated runs are the figure.  Pin the process to one
core from its start (``taskset -c 0``).

``--devices N`` shards the chains over N simulated CPU devices (``XLA_FLAGS`` is set before JAX
starts); ``--no-two-programs`` leaves out this tree's two-program driver.

Usage: python benchmarks/bench_against_commit.py --commit 054a2a9 [--target T] [--reps 4] [--kinds diag default]
    [--devices N] [--no-two-programs]
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

if "--devices" in sys.argv:  # before JAX starts: the device count is fixed then
    _n = sys.argv[sys.argv.index("--devices") + 1]
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_n}"

import jax  # noqa: E402
from bench_gym import make_target

import mcgen
import mcgen.run as run_module

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _old_mcgen(commit: str, where: pathlib.Path):
    archive = subprocess.run(["git", "archive", commit, "mcgen"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    (where / "mcgen").rename(where / "mcgen_old")
    for path in (where / "mcgen_old").rglob("*.py"):
        path.write_text(re.sub(r"\bmcgen\b", "mcgen_old", path.read_text()))
    sys.path.insert(0, str(where))
    return importlib.import_module("mcgen_old")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", required=True)
    parser.add_argument("--target", default="BrownianMotionUnknownScalesMissingMiddleObservations")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--kinds", nargs="+", default=["diag", "default"], choices=["diag", "default"])
    parser.add_argument("--devices", type=int, default=None, help="shard the chains over N simulated devices")
    parser.add_argument("--no-two-programs", action="store_true", help="leave out the two-program driver")
    args = parser.parse_args()
    devices = None if args.devices is None else jax.devices()[: args.devices]
    warnings.simplefilter("ignore")
    target = make_target(args.target)
    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = _old_mcgen(args.commit, pathlib.Path(tmp))
        versions = [("old", old, True), ("new", mcgen, True), ("new_two_programs", mcgen, False)]
        if args.no_two_programs:
            versions = versions[:2]
        for rep in range(args.reps):
            for name, module, whole in versions if rep % 2 == 0 else versions[::-1]:
                for kind in args.kinds:
                    run_module._WHOLE_RUN = whole
                    kernel = module.nuts(mass="diag") if kind == "diag" else module.nuts()
                    module.run.clear_cache()
                    jax.clear_caches()
                    start = time.perf_counter()
                    res = module.run_chains(
                        target.logdensity,
                        kernel,
                        init=target.inits(4, rep),
                        init_batched=True,
                        num_chains=4,
                        num_warmup=1000,
                        num_samples=1000,
                        seed=rep,
                        progress=False,
                        warn=False,
                        devices=devices,
                    )
                    first = time.perf_counter() - start
                    lockstep = res.stats["num_grad_evals"].max(axis=0).sum()
                    per_grad = 1e6 * res.sampling_time / lockstep
                    rows.setdefault((name, kind), []).append((first, res.compile_time, per_grad))
                    print(
                        f"rep {rep} {name:16s} {kind:8s} first call {first:6.2f} s, compile {res.compile_time:6.2f} s,"
                        f" {per_grad:7.2f} us per lockstep gradient",
                        flush=True,
                    )
        run_module._WHOLE_RUN = True
    on = "" if args.devices is None else f", sharded over {args.devices} devices"
    print(f"{args.target}, 4 chains, 1000 + 1000{on}, medians of {args.reps}:")
    for kind in args.kinds:
        base = [statistics.median(c) for c in zip(*rows[("old", kind)])]
        for name, _, _ in versions:
            med = [statistics.median(c) for c in zip(*rows[(name, kind)])]
            print(
                f"  {kind:8s} {name:16s} first call {med[0]:6.2f} s ({med[0] / base[0]:.2f}x old), compile"
                f" {med[1]:6.2f} s, per gradient {med[2]:7.2f} us ({med[2] / base[2]:.3f}x old)"
            )


if __name__ == "__main__":
    main()
