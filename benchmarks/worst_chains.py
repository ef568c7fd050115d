"""The worst chains of a many-chain NUTS run on a Gym target: where they stand and what the warmup left them.

A vmapped batch pays at every draw for its slowest chain, and one chain stuck where every
trajectory diverges shows only as a poor R-hat.  This script runs ``mc.nuts(**settings)`` with
``bench_gym.py``'s starting points and seed for ``--rep`` and prints, for the chains with the
most divergences and the most gradients per draw (and the one of highest log-density): their adapted step size, the dual-averaging
step size over the warmup (medians of 50-step blocks, and the last steps), their mean
log-density over the draws against the chains' median, and the quantiles of the coordinates
given by ``--coords`` in their draws beside those of all chains' draws.  A chain whose mean
log-density stands far above the others' sits in a narrow region of high density, such as a
funnel's neck; the header counts those more than 40 above the median, and the chains whose
step size is below half the median.

Usage::

    python benchmarks/worst_chains.py BrownianMotionUnknownScalesMissingMiddleObservations --rep 1 --coords 0 1
    python benchmarks/worst_chains.py BrownianMotionUnknownScalesMissingMiddleObservations --rep 0 mass=diag
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from bench_gym import make_target, nuts_settings

import mcgen as mc


def _quantiles(x) -> str:
    return " ".join(f"{v:.2f}" for v in np.quantile(x, [0.01, 0.1, 0.5, 0.9, 0.99]))


def add_run_arguments(parser: argparse.ArgumentParser, chains: int) -> None:
    """The arguments of :func:`run`: a target, ``nuts()`` settings, chains, rep, warmup, draws."""
    parser.add_argument("target", help="a Gym name (bench_gym.py's targets)")
    parser.add_argument("settings", nargs="*", help="nuts() settings NAME=VALUE (default: nuts())")
    parser.add_argument("--chains", type=int, default=chains)
    parser.add_argument("--rep", type=int, default=0, help="bench_gym.py's rep: starting points and seed")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)


def run(args):
    """``(target, result)``: ``mc.nuts(**settings)`` from ``bench_gym.py``'s starts and seed for ``args.rep``."""
    target = make_target(args.target)
    kernel = mc.nuts(**nuts_settings("nuts:" + ",".join(args.settings))) if args.settings else mc.nuts()
    res = mc.run_chains(
        target.logdensity,
        kernel,
        init=target.inits(args.chains, args.rep),
        init_batched=True,
        num_chains=args.chains,
        num_samples=args.draws,
        num_warmup=args.warmup,
        seed=args.rep,
        progress=False,
        warn=False,
    )
    return target, res


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, chains=128)
    parser.add_argument("--coords", type=int, nargs="*", default=[0], help="unconstrained coordinates to locate")
    parser.add_argument("--worst", type=int, default=3)
    args = parser.parse_intermixed_args(argv)

    target, res = run(args)
    x = np.asarray(res.samples)
    div = np.asarray(res.stats["is_divergent"]).sum(1)
    grads = np.asarray(res.stats["num_grad_evals"]).mean(1)
    eps = np.broadcast_to(np.asarray(res.last_state.params.step_size), div.shape)
    logp = np.asarray(jax.vmap(jax.vmap(target.logdensity))(jnp.asarray(x))).mean(axis=1)
    high = logp - np.median(logp)
    assert res.warmup_stats is not None
    trace = np.asarray(res.warmup_stats["step_size"])
    print(f"{args.target}, {args.chains} chains, rep {args.rep}, nuts({', '.join(args.settings)})")
    print(
        f"divergences {div.sum()} in {np.sum(div > 0)} chains; gradients per draw: median chain {np.median(grads):.1f}"
    )
    print(f"step size: median {np.median(eps):.3g}, smallest {eps.min():.3g}")
    print(
        f"chains with a step size below half the median: {np.sum(eps < 0.5 * np.median(eps))}; with a mean"
        f" log-density more than 40 above the median ({np.median(logp):.1f}): {np.sum(high > 40)}"
        f" (the highest {high.max():+.1f})"
    )
    for j in args.coords:
        print(f"coordinate {j}, all draws, quantiles 1/10/50/90/99%: {_quantiles(x[..., j])}")
    worst = list(
        dict.fromkeys([*np.argsort(-div)[: args.worst], *np.argsort(-grads)[: args.worst], *np.argsort(-high)[:1]])
    )
    blocks = range(0, trace.shape[1], 50)
    for c in worst:
        print(
            f"chain {c}: {div[c]} divergences, {grads[c]:.1f} gradients per draw, step size {eps[c]:.3g},"
            f" mean log-density {high[c]:+.1f} from the median"
        )
        print(
            "  warmup step size, 50-step medians:", " ".join(f"{np.median(trace[c, i : i + 50]):.3g}" for i in blocks)
        )
        print("  last 10 warmup steps:", " ".join(f"{v:.3g}" for v in trace[c, -10:]))
        for j in args.coords:
            print(f"  coordinate {j}, its draws: {_quantiles(x[c, :, j])}")


if __name__ == "__main__":
    main()
