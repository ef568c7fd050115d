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
from worst_chains import add_run_arguments, run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, chains=4)
    parser.add_argument("--show", type=int, default=8, help="the number of coordinates printed")
    args = parser.parse_intermixed_args(argv)
    warnings.simplefilter("ignore")

    target, res = run(args)
    x = np.asarray(target.constrain_flat(jnp.asarray(res.samples)), np.float64)
    c = target.coordinate_scores(x)  # bench_gym.py's scoring, coordinate by coordinate
    z = c["z"]
    print(
        f"{args.target}, {args.chains} chains, rep {args.rep}, nuts({', '.join(args.settings)}): max |z| "
        f"{np.max(np.abs(z)):.2f} (limit {target.z_threshold():.2f}), R-hat {np.max(c['rhat']):.3f},"
        f" min bulk ESS {np.min(c['ess_bulk']):.0f}"
    )
    names = getattr(target, "coord_names", None) or [""] * z.size
    for i in np.argsort(-np.abs(z))[: args.show]:
        print(
            f"  coordinate {i:4d} {names[i]}: z {z[i]:+.2f}  mean {c['mean'][i]:.4f}  truth {target.truth_mean[i]:.4f}"
            f"  sd {c['sd'][i]:.4f}  truth's se {target.truth_se[i]:.5f}  ESS {c['ess_mean'][i]:.0f}"
            f"  R-hat {c['rhat'][i]:.3f}"
        )


if __name__ == "__main__":
    main()
