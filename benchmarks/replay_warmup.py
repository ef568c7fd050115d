"""Replay one chain of a ``bench_gym.py`` run through its warmup, step by step, and print its path.

A diagnostic for a chain that goes wrong in warmup (a step size that collapses, a metric fitted
to the wrong draws).  ``run_chains`` gives chain ``i`` the keys ``fold_in(key(seed), i)``, whatever
the number of chains beside it, and ``bench_gym.py`` seeds repetition ``r`` with ``r`` and starts
its chains at ``target.inits(num_chains, r)``; so this script, which runs chain ``i`` alone with
the same keys, start and kernel, retraces that chain's warmup (to the rounding of the batched
arithmetic, which can send a chain on the edge of a trap one way or the other).

Each printed line is one warmup step: the step size of the next transition (dual averaging's
iterate), the acceptance statistic, the leapfrog steps, divergence, whether the draw moved, the
log-density, the first two coordinates (unconstrained) and the metric's range (its diagonal's
scale, and for ``mass="low_rank"`` the smallest and largest eigenvalue of the correction).

Usage::

    python benchmarks/replay_warmup.py SyntheticLogGaussianCoxProcess --rep 2 --chain 0
    python benchmarks/replay_warmup.py SyntheticLogGaussianCoxProcess --rep 1 --chains 128 --chain 59 --steps 100
    python benchmarks/replay_warmup.py EightSchools --rep 0 --chain 1 --kernel "mass='diag'" --steps 200

It is slow by design (one compiled warmup step per Python call, so that it can stop anywhere):
about 5 s per 300 steps of the 102-d log-Gaussian Cox process on one core, more where the
trajectories are long.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_gym  # noqa: E402

import mcgen as mc  # noqa: E402
from mcgen._driver.steps import _chain_keys  # noqa: E402
from mcgen.kernels import _random  # noqa: E402


def _metric_range(inverse_mass) -> str:
    if hasattr(inverse_mass, "scale"):
        vals = np.sort(np.asarray(inverse_mass.vals))
        scale = np.asarray(inverse_mass.scale)
        return f"scale {scale.min():.3g}..{scale.max():.3g}  eigvals {vals[0]:.3g}..{vals[-1]:.3g}"
    diag = np.asarray(inverse_mass if inverse_mass.ndim == 1 else jnp.diagonal(inverse_mass))
    return f"diag {diag.min():.3g}..{diag.max():.3g}"


def replay(
    name: str, rep: int, chain: int, warmup: int, steps: int, kernel_args: str, every: int, chains: int | None = None
) -> list[dict]:
    target = bench_gym.make_target(name)
    x0 = target.inits(max(chains or 0, chain + 1), rep)[chain]
    kernel = mc.nuts(**eval(f"dict({kernel_args})"))  # noqa: S307 (a command-line tool)
    warm = kernel.warmup(warmup)
    logdensity = target.logdensity
    key = _chain_keys(chain + 1, rep)[1][chain]  # run_chains' warmup key of chain i (seed = rep)
    ws = warm.init(kernel.init(x0, logdensity))
    step = jax.jit(lambda k, s: warm.step(k, s, logdensity))
    rows, t0 = [], time.perf_counter()
    for i in range(steps):
        ws, info = step(_random.fold_in(key, i), ws)
        row = dict(
            step=i,
            step_size=float(jnp.exp(ws.dual_averaging.log_x)),
            accept=float(info.accept_prob),
            leapfrog=int(info.num_grad_evals),
            divergent=bool(info.is_divergent),
            moved=bool(info.is_accepted),
            logdensity=float(ws.state.logdensity),
        )
        rows.append(row)
        if i < 40 or i % every == 0 or i == steps - 1:
            x = np.asarray(ws.state.position)[:2]
            print(
                f"{i:5d}  eps {row['step_size']:9.3g}  acc {row['accept']:4.2f}  leapfrog {row['leapfrog']:4d}"
                f"  div {int(row['divergent'])}  moved {int(row['moved'])}  logp {row['logdensity']:10.1f}"
                f"  x[:2] {np.array2string(x, precision=2)}  {_metric_range(ws.state.params.inverse_mass)}"
                f"  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a bench_gym target (a Gym model name, or toy:NAME)")
    parser.add_argument("--rep", type=int, default=0, help="the repetition (its seed and starting points)")
    parser.add_argument("--chain", type=int, default=0)
    parser.add_argument(
        "--chains",
        type=int,
        default=None,
        help="the chain count of the run (its starting points depend on it; default: chain + 1, as bench_gym.py's)",
    )
    parser.add_argument("--warmup", type=int, default=1000, help="the warmup length of the run (fixes the schedule)")
    parser.add_argument("--steps", type=int, default=300, help="replay this many warmup steps")
    parser.add_argument("--kernel", default="mass='low_rank'", help="mc.nuts keyword arguments, as Python")
    parser.add_argument("--every", type=int, default=20, help="print every this many steps after the 40th")
    args = parser.parse_args(argv)
    replay(args.target, args.rep, args.chain, args.warmup, args.steps, args.kernel, args.every, args.chains)


if __name__ == "__main__":
    main()
