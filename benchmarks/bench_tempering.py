"""Non-reversible vs reversible parallel tempering: round trips per 1000 steps.

Syed et al. (2022) show that with the deterministic even/odd (DEO, non-reversible) swaps the
round-trip rate of the index process tends to a positive limit as the number of replicas
grows, :math:`\\tau = 1/(2 + 2\\Lambda)`, while with random even/odd swaps (SEO, reversible)
the index process is a random walk and the rate collapses like :math:`1/N`.  This script
measures both on

* ``grid16``: the 2-d mixture of 16 equal Gaussians (sd 0.5) on a 4 x 4 grid with spacing 10,
  reference N(0, 15^2 I);
* ``mix50``: a 50-d mixture 0.5 N(-1, I) + 0.5 N(+1, I) (modes 14 sd apart), moment-matched
  reference N(0, 2 I);

with random-walk Metropolis inside on ``grid16`` and HMC (5 leapfrog steps) on ``mix50``
(random-walk moves decorrelate too slowly in 50-d for any round trip in a short run), the
schedule adapted during warmup and then fixed.
Round trips per 1000 sampling steps are averaged over independent PT ensembles (chains).

Run: ``python benchmarks/bench_tempering.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc
from mcgen.combinators.tempering import parallel_tempering

_GRID = jnp.arange(4, dtype=jnp.float32) * 10.0 - 15.0
MODES = jnp.stack(jnp.meshgrid(_GRID, _GRID, indexing="ij"), -1).reshape(-1, 2)


def grid16(x):
    return jax.nn.logsumexp(-0.5 * jnp.sum((x - MODES) ** 2, -1) / 0.25)


def grid16_reference(x):
    return jnp.sum(-0.5 * (x / 15.0) ** 2 - jnp.log(15.0 * jnp.sqrt(2.0 * jnp.pi)))


def mix50(x):
    return jnp.logaddexp(-0.5 * jnp.sum((x - 1.0) ** 2), -0.5 * jnp.sum((x + 1.0) ** 2))


def mix50_reference(x):  # N(0, 2 I): the mixture's own mean and variance per coordinate
    return jnp.sum(-0.25 * x**2 - 0.5 * jnp.log(4.0 * jnp.pi))


def _hmc():
    from mcgen.kernels.hmc import hmc

    return hmc(num_integration_steps=5)


TARGETS = {"grid16": (grid16, grid16_reference, 2, mc.rwmh), "mix50": (mix50, mix50_reference, 50, _hmc)}


def round_trip_rate(target: str, swap: str, num_temps: int, num_steps: int, num_chains: int, seed: int = 0):
    logdensity, reference, dim, inner = TARGETS[target]
    pt = parallel_tempering(inner(), num_temps=num_temps, swap=swap, reference=reference)
    res = mc.run_chains(
        logdensity,
        pt,
        init=jnp.zeros(dim),
        num_chains=num_chains,
        num_samples=num_steps,
        num_warmup=num_steps,
        seed=seed,
        progress=False,
        warn=False,
        init_batched=False,
    )
    trips = res.stats["round_trips"][:, -1].astype(float) * 1000.0 / num_steps
    barrier = float(np.mean(res.stats["barrier"][:, -1]))
    return trips.mean(), trips.std(ddof=1) / np.sqrt(num_chains), barrier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    args = parser.parse_args()
    temps = (8, 16) if args.quick else (8, 16, 32)
    steps = 1000 if args.quick else 2000
    print(f"round trips per 1000 steps (mean +- se over 4 ensembles; {steps} warmup + {steps} steps)")
    print(f"{'target':8} {'N':>3} {'Lambda':>7} {'non-reversible':>16} {'reversible':>16} {'ratio':>6}")
    for target in args.targets:
        for n in temps:
            start = time.perf_counter()
            nr, nr_se, lam = round_trip_rate(target, "nonreversible", n, steps, 4)
            rv, rv_se, _ = round_trip_rate(target, "reversible", n, steps, 4)
            print(
                f"{target:8} {n:3d} {lam:7.2f} {nr:9.2f} +- {nr_se:4.2f} {rv:9.2f} +- {rv_se:4.2f} "
                f"{nr / max(rv, 1e-9):6.2f}   ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
