"""First-call time of ``run_chains`` with and without the sampling program compiled ahead.

On one device ``run_chains`` compiles the first sampling chunk on a background thread while
the warmup compiles and runs (``mcgen.run._compile_ahead``).  This runs NUTS on Inference Gym
targets (the ``bench`` extra) from a cold cache, alternating the feature on and off in one
process (``clear_cache()`` and ``jax.clear_caches()`` before each run), and prints the first
call's seconds and the ratio of medians.  BlackJAX's first call is in ``bench_gym.py``.

Usage: python benchmarks/bench_compile_ahead.py [--targets EightSchools ...] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import jax
from bench_gym import GymTarget

import mcgen as mc
import mcgen.run as run_module
from mcgen.run import clear_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", nargs="+", default=["BrownianMotionUnknownScalesMissingMiddleObservations", "EightSchools"]
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    ahead = run_module._compile_ahead
    for name in args.targets:
        target = GymTarget(name)
        seconds: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(args.reps):
            for on in (True, False):
                run_module._compile_ahead = ahead if on else (lambda *a, **k: None)
                clear_cache()
                jax.clear_caches()
                start = time.perf_counter()
                mc.run_chains(
                    target.logdensity,
                    mc.nuts(mass="diag"),
                    init=target.inits(args.chains, rep),
                    init_batched=True,
                    num_chains=args.chains,
                    num_warmup=args.warmup,
                    num_samples=args.draws,
                    seed=rep,
                    progress=False,
                    warn=False,
                )
                seconds[on].append(time.perf_counter() - start)
        run_module._compile_ahead = ahead
        on, off = statistics.median(seconds[True]), statistics.median(seconds[False])
        print(
            f"{name}: first call s, compile-ahead on {[round(s, 1) for s in seconds[True]]}, "
            f"off {[round(s, 1) for s in seconds[False]]}; median ratio on/off {on / off:.2f}"
        )


if __name__ == "__main__":
    main()
