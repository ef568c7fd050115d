"""The first chains of a ``bench_chain_groups.py`` run again, with ``Result.chain_summary()``.

``bench_chain_groups.py`` names the chains that ended more than 5 sd from the truth; this
reruns the default NUTS (``mc.nuts()``, or ``nuts:NAME=VALUE,...`` as there) on the first
``--first`` of its ``--chains`` starting points, one chain after another, and prints the
per-chain table (step size, divergences, share at the maximum tree depth, warmup gradients,
E-BFMI, distance from the other chains) beside each chain's distance from the truth, and the
warmup step sizes of ``--show`` chains and of those more than 5 sd from the truth.  Chain ``i`` has the same key whatever the number of
chains (``fold_in(key(seed), i)``); the default's draws agree across chain counts to rounding,
so a chain usually, but not surely, repeats its fate.

Usage::

    python benchmarks/chain_table.py SyntheticLogGaussianCoxProcess --chains 128 --first 60 --seed 1 --show 59
"""

from __future__ import annotations

import argparse

import bench_chain_groups as C
import bench_gym as G
import jax.numpy as jnp
import numpy as np
import pandas as pd

import mcgen as mc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target")
    parser.add_argument("--chains", type=int, default=128, help="the chain count of the run whose starts are taken")
    parser.add_argument("--first", type=int, default=32, help="how many of its chains to run again")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--library", default="default", help="as in bench_chain_groups.py, except blackjax")
    parser.add_argument("--show", type=int, nargs="*", default=[], help="chains whose warmup step sizes to print")
    args = parser.parse_args(argv)
    target = G.make_target(args.target)
    init = target.inits(args.chains, args.seed)[: args.first]
    res = mc.run_chains(
        target.logdensity,
        C.kernel(args.library),
        init=init,
        init_batched=True,
        num_chains=args.first,
        num_samples=1000,
        num_warmup=1000,
        seed=args.seed,
        progress=False,
        warn=False,
        chain_method="sequential",
    )
    table = res.chain_summary()
    x = np.asarray(target.constrain_flat(jnp.asarray(res.samples)), np.float64)
    table["truth_off_sd"] = np.max(np.abs(x.mean(axis=1) - target.truth_mean) / target.truth_sd, axis=1)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.sort_values("truth_off_sd").to_string())
    lost = np.flatnonzero(table["truth_off_sd"].to_numpy() > C.LOST_SD).tolist()
    print(f"chains more than {C.LOST_SD} sd from the truth: {lost}")
    for i in sorted(set(args.show) | set(lost)):
        assert res.warmup_stats is not None
        print(f"chain {i}: warmup step size every 50 steps", np.asarray(res.warmup_stats["step_size"])[i, ::50])


if __name__ == "__main__":
    main()
