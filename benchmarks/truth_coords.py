"""The coordinates of a NUTS run on a Gym target that stand farthest from the ground truth.

``bench_gym.py`` reports the largest |z| over a target's coordinates.  This reruns one of its
runs (``mc.nuts(**settings)``, ``bench_gym.py``'s starting points and seed for ``--rep``, any
number of chains) and prints the coordinates of largest |z| with the draws' mean, the truth,
the standard deviation, the truth's own standard error, the ESS of the mean and R-hat, scored
as ``bench_gym.py`` scores them.  A coordinate far off in every seed, and more so with more
chains, points at a bias (of the sampler or of the stored truth); one that moves from seed to
seed, at the Monte-Carlo error.

Usage::

    python benchmarks/truth_coords.py RadonContextualEffectsHalfNormalMinnesota --rep 8
    python benchmarks/truth_coords.py RadonContextualEffectsHalfNormalMinnesota --rep 0 --chains 128 mass=diag
"""

from __future__ import annotations

import argparse
import warnings

import jax.numpy as jnp
import numpy as np
from bench_gym import make_target, nuts_settings

import mcgen as mc


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a Gym name (bench_gym.py's targets)")
    parser.add_argument("settings", nargs="*", help="nuts() settings NAME=VALUE (default: nuts())")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--rep", type=int, default=0, help="bench_gym.py's rep: starting points and seed")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--show", type=int, default=8, help="the number of coordinates printed")
    args = parser.parse_intermixed_args(argv)
    warnings.simplefilter("ignore")
    import arviz as az

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
    x = np.asarray(target.constrain_flat(jnp.asarray(res.samples)), np.float64)
    score = target.score_constrained(x)  # bench_gym.py's figures, to check against its table
    ds = az.convert_to_dataset({"x": x})
    ess_mean = np.asarray(az.ess(ds, method="mean")["x"])
    rhat = np.asarray(az.rhat(ds)["x"])
    sd = target.truth_sd if target.has_truth_sd else x.std(axis=(0, 1))
    mcse = np.sqrt(sd**2 / np.maximum(ess_mean, 1.0) + target.truth_se**2)
    mean = x.mean(axis=(0, 1))
    z = (mean - target.truth_mean) / mcse
    print(
        f"{args.target}, {args.chains} chains, rep {args.rep}, nuts({', '.join(args.settings)}): max |z| "
        f"{score['z']:.2f} (limit {target.z_threshold():.2f}), R-hat {score['rhat']:.3f}, min bulk ESS {score['ess']:.0f}"
    )
    names = getattr(target, "coord_names", None) or [""] * z.size
    for i in np.argsort(-np.abs(z))[: args.show]:
        print(
            f"  coordinate {i:4d} {names[i]}: z {z[i]:+.2f}  mean {mean[i]:.4f}  truth {target.truth_mean[i]:.4f}  sd {sd[i]:.4f}"
            f"  truth's se {target.truth_se[i]:.5f}  ESS {ess_mean[i]:.0f}  R-hat {rhat[i]:.3f}"
        )


if __name__ == "__main__":
    main()
