"""Draws streamed to disk: peak memory and the cost of checkpoints.

Streams ``--chains`` chains x ``--draws`` draws x ``--dim`` coordinates of random-walk
Metropolis on a standard normal to a zarr store (``store=``), then the same run with
``checkpoint=`` at the default interval (the draws then go to the checkpoint's store, and
every checkpoint fsyncs them).  Each run is its own process, so each peak resident memory
(``ru_maxrss``) is that run's alone.  Prints one line per run and the checkpoint overhead:
(wall time with checkpoints - wall time with the store alone) / wall time with the store alone,
compile time excluded from both.

    python benchmarks/bench_store.py                        # 4 x 2.5e6 x 100 (4 GB of draws)
    python benchmarks/bench_store.py --draws 250000         # a quick look

Measured (2-core x86-64 VM shared with other jobs, one core pinned, zarr 3.1, 2026-11-30),
the default 4 x 2.5e6 x 100:

         store: 4 chains x 2,500,000 draws x 100-d, 0.87 GB on disk, peak RSS 591 MB, 76.2 s (compile 8.4 s apart)
    checkpoint: 4 chains x 2,500,000 draws x 100-d, 0.87 GB on disk, peak RSS 592 MB, 72.4 s (compile 8.0 s apart)
    checkpoint overhead at the default interval (60 s): -5.0% of the run's wall time   (noise: several %)
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def one_run(mode: str, draws: int, dim: int, chains: int, where: str) -> dict:
    import jax.numpy as jnp

    import mcgen as mc

    def logdensity(x):
        return -0.5 * jnp.sum(x**2)

    extra = {"store": os.path.join(where, "draws.zarr")} if mode == "store" else {"checkpoint": where}
    start = time.perf_counter()
    res = mc.run_chains(
        logdensity,
        mc.rwmh(scale=0.25),
        init=jnp.zeros(dim),
        num_chains=chains,
        num_samples=draws,
        num_warmup=1000,
        progress=False,
        warn=False,
        init_batched=False,
        **extra,
    )
    wall = time.perf_counter() - start
    last = float(res.samples[0, -1, 0])  # read one value back from disk
    return {
        "mode": mode,
        "wall_s": wall - res.compile_time,
        "compile_s": res.compile_time,
        "sampling_s": res.sampling_time,
        "warmup_s": res.warmup_time,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "disk_gb": sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(where) for f in fs) / 1e9,
        "last": last,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2_500_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one mode
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.draws, args.dim, args.chains, args.dir)))
        return
    base = args.dir or tempfile.mkdtemp(prefix="mcgen-bench-store-")
    rows = []
    for mode in ("store", "checkpoint"):
        where = os.path.join(base, mode)
        shutil.rmtree(where, ignore_errors=True)
        os.makedirs(where)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                mode,
                "--draws",
                str(args.draws),
                "--dim",
                str(args.dim),
                "--chains",
                str(args.chains),
                "--dir",
                where,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{mode:>10}: {args.chains} chains x {args.draws:,} draws x {args.dim}-d, {row['disk_gb']:.2f} GB on disk, "
            f"peak RSS {row['peak_rss_mb']:.0f} MB, {row['wall_s']:.1f} s (compile {row['compile_s']:.1f} s apart)",
            flush=True,
        )
        shutil.rmtree(where, ignore_errors=True)
    assert rows[0]["last"] == rows[1]["last"], "the two runs must give the same draws"
    overhead = (rows[1]["wall_s"] - rows[0]["wall_s"]) / rows[0]["wall_s"]
    print(f"checkpoint overhead at the default interval (60 s): {100 * overhead:+.1f}% of the run's wall time")
    if args.dir is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
