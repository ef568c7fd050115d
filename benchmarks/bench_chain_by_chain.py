"""One chain at a time: which chains of a ``bench_chain_groups.py`` run get stuck, and how.

``bench_chain_groups.py`` runs all chains in one vmapped batch, so one chain whose trajectories
run to the maximum tree depth at every transition (1023 leapfrog steps) makes the whole batch as
slow as itself; such a run can take hours and says nothing until it ends.  This script takes the
same initial points and the same per-chain keys as ``bench_chain_groups.py`` (``--seed``,
``--chains``) and runs BlackJAX's ``window_adaptation`` NUTS (as in ``bench_gym.py``) on each
chain alone, with one compiled program for all, and prints one line per chain as it finishes:
the seconds it took, its adapted step size, its gradients in warmup and sampling, the share of
its sampling transitions that stopped at the maximum tree depth, its divergences, and how far its
mean lies from the ground truth in posterior standard deviations (the largest over the
constrained coordinates; a chain that samples somewhere else shows as several).

A chain run alone need not repeat its vmapped run bit for bit (XLA may order a batched
reduction differently), and chaotic dynamics amplify such differences, so this measures how
often the warmup loses a chain, not which chain the vmapped run lost.

Usage::

    python benchmarks/bench_chain_by_chain.py SyntheticLogGaussianCoxProcess --chains 32 --seed 1
"""

from __future__ import annotations

import argparse
import time

import bench_chain_groups as C
import bench_gym as G
import jax
import jax.numpy as jnp
import numpy as np

MAX_LEAPFROG = 2**10 - 1  # BlackJAX's default max_num_doublings = 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="a bench_gym.py target (a Gym model's name, or toy:NAME)")
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the runs and of the initial points")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="run only these chains")
    args = parser.parse_args(argv)
    target = G.make_target(args.target)
    n = args.chains
    init = target.inits(n, args.seed)  # as bench_chain_groups.py
    keys = jax.random.split(jax.random.key(args.seed), 2 * n)  # as bench_chain_groups.py's BlackJAX run
    warm, sample = G.blackjax_programs(target, args.warmup, args.draws)
    print(f"jax {jax.__version__}; {args.target}, BlackJAX window_adaptation, chains of {n} run one at a time")
    print("chain  seconds  step_size  warmup_grads  sampling_grads  at_max_depth  divergent  max|mean-truth|/sd")
    lost = 0
    for k in args.only if args.only is not None else range(n):
        t0 = time.perf_counter()
        states, params, _, wgrads = warm(keys[k : k + 1], init[k : k + 1])
        positions, steps, divergent, _, _ = sample(keys[n + k : n + k + 1], states, params)
        steps = np.asarray(steps)
        seconds = time.perf_counter() - t0
        x = np.asarray(target.constrain_flat(jnp.asarray(positions)), np.float64)[0]
        off = float(np.max(np.abs(x.mean(0) - target.truth_mean) / target.truth_sd))
        lost += off > C.LOST_SD
        print(
            f"{k:5d}  {seconds:7.1f}  {float(params['step_size'][0]):9.2e}  {int(wgrads[0]):12d}  "
            f"{int(steps.sum()):14d}  {float(np.mean(steps >= MAX_LEAPFROG)):12.3f}  "
            f"{int(np.sum(divergent)):9d}  {off:18.2f}",
            flush=True,
        )
    print(f"chains with a mean more than {C.LOST_SD:g} posterior sd from the truth: {lost}")


if __name__ == "__main__":
    main()
