"""Warmup and sampling cost per gradient of mcgen's kernels on one device and split over N devices.

Each kernel runs the same chains (an Inference Gym target, the ``bench`` extra) on the first
device alone and split over ``--devices`` simulated CPU devices (``XLA_FLAGS`` is set before
JAX starts), from cold caches, one after the other in one process.  Reported per run:
microseconds of warmup and of sampling per gradient and chain (the kernel's ``num_grad_evals``
summed over the draws, divided by the chain count; the warmup's gradients are taken to be the
sampling's, per step, for the ensemble kernels, whose warmup records none), compile seconds,
and on several devices the collectives (all-reduce, all-gather) in the run's compiled programs.

The point is the ensemble kernels (ChEES-HMC, MAMS, MEADS): their warmups pool statistics
across chains, and across devices each device maps its own chains and pools through
``mcgen.adaptation.ensemble`` (a device's chains, then across devices).  A warmup that is one
program partitioned over all devices would reduce the loop condition of every leapfrog step
over every chain instead.  No peer runs here: BlackJAX's ensemble adaptations are single
programs with no per-device form.  Pin the process to the simulated devices' cores
(``taskset -c 0,1`` for 2).

Usage: python benchmarks/bench_sharded_warmup.py [--devices 2] [--chains 64] [--warmup 500] [--draws 500]
    [--target BrownianMotionUnknownScalesMissingMiddleObservations] [--kernels chees mams meads nuts]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

if "--devices" in sys.argv:  # before JAX starts: the device count is fixed then
    _n = sys.argv[sys.argv.index("--devices") + 1]
else:
    _n = "2"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_n}"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from bench_gym import make_target  # noqa: E402

import mcgen as mc  # noqa: E402

KERNELS = {
    "chees": lambda: mc.chees_hmc(),
    "mams": lambda: mc.mams(),
    "meads": lambda: mc.meads(),
    "nuts": lambda: mc.nuts(mass="diag"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--target", default="BrownianMotionUnknownScalesMissingMiddleObservations")
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    target = make_target(args.target)
    init = target.inits(args.chains, 0)
    print(f"{args.target}, {args.chains} chains, {args.warmup} + {args.draws}; us per gradient and chain")
    for name in args.kernels:
        for devices in (jax.devices()[:1], jax.devices()[: args.devices]):
            mc.run.clear_cache()
            jax.clear_caches()
            res = mc.run_chains(
                target.logdensity,
                KERNELS[name](),
                init=init,
                init_batched=True,
                num_chains=args.chains,
                num_warmup=args.warmup,
                num_samples=args.draws,
                seed=0,
                progress=False,
                warn=False,
                devices=devices,
            )
            per_chain = float(np.sum(res.stats["num_grad_evals"])) / args.chains  # sampling gradients
            warm = res.warmup_grad_evals()
            warm_per_chain = (
                float(np.sum(warm)) / args.chains if warm is not None else per_chain * args.warmup / args.draws
            )
            collectives = _collectives() if len(devices) > 1 else ""
            print(
                f"  {name:6s} {len(devices)} device(s): warmup {1e6 * res.warmup_time / warm_per_chain:8.2f},"
                f" sampling {1e6 * res.sampling_time / per_chain:8.2f}, compile {res.compile_time:5.1f} s"
                f"{collectives}",
                flush=True,
            )


def _collectives() -> str:
    """The collectives in the run's compiled programs (each a rendezvous of every device)."""
    from mcgen._driver import compile as compiled

    counts = {op: 0 for op in ("all-reduce", "all-gather")}
    for program in compiled._CACHE.values():
        text = program.as_text()
        for op in counts:
            counts[op] += len(re.findall(rf" {op}(-start)?\(", text))
    return "; collectives: " + ", ".join(f"{n} {op}" for op, n in counts.items())


if __name__ == "__main__":
    main()
