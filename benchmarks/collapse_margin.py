"""How close healthy chains come to the warmup's collapse guard, target by target.

The windowed warmup sends a chain back to its start when, in the initial buffer, its step size
(dual averaging's iterate) falls below 1e-4 of the largest step size at which one of its
transitions had an acceptance statistic of at least 0.5 (``window_adaptation``'s
``collapse_restarts``).  A false alarm costs a healthy chain part of its initial buffer; a
threshold too loose misses the chains it is for.  This runs the initial buffer (the only steps
where the guard acts) of the default NUTS on each target, from the benchmarks' starts and with
``run_chains``'s keys, and prints per target the restarts, the chains restarted, and the
*margin*: the smallest ratio of the iterate to that working step size over all chains and
steps (before any restart), against the threshold 1e-4.  A chain that collapses shows a
ratio below it.

Usage::

    python benchmarks/collapse_margin.py                  # bench_gym's targets and toys, 64 chains
    python benchmarks/collapse_margin.py SyntheticLogGaussianCoxProcess --chains 128 --seed 1
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
from mcgen.adaptation import window as W  # noqa: E402
from mcgen.kernels import _random  # noqa: E402


def margin(name: str, chains: int, seed: int, warmup: int = 1000) -> dict:
    target = bench_gym.make_target(name)
    kernel = mc.nuts()
    warm = kernel.warmup(warmup)
    buffer = int(np.flatnonzero(W.early_schedule(warmup)["collect"])[0])
    keys = _chain_keys(chains, seed)[1]
    x0 = target.inits(chains, seed)

    def one_chain(key, x):
        ws = warm.init(kernel.init(x, target.logdensity))

        def body(ws, i):
            ws, _ = warm.step(_random.fold_in(key, i), ws, target.logdensity)
            # the iterate against the step size that worked, before the guard's restart (if any)
            ratio = jnp.where(ws.guard.working > 0, jnp.exp(ws.dual_averaging.log_x) / ws.guard.working, jnp.inf)
            ratio = jnp.where(ws.trace.restarted[i], 0.0, ratio)  # a restart: the iterate had fallen below
            return ws, ratio

        ws, ratios = jax.lax.scan(body, ws, jnp.arange(buffer, dtype=jnp.uint32))
        return jnp.sum(ws.trace.restarted), jnp.min(ratios)

    t0 = time.perf_counter()
    restarts, ratios = jax.jit(jax.vmap(one_chain))(keys, x0)
    restarts, ratios = np.asarray(restarts), np.asarray(ratios)
    healthy = ratios[restarts == 0]
    return dict(
        target=name,
        chains=chains,
        restarts=int(restarts.sum()),
        restarted=np.flatnonzero(restarts).tolist(),
        margin=float(healthy.min()) if healthy.size else float("nan"),
        seconds=time.perf_counter() - t0,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", default=bench_gym.TARGETS + bench_gym.TOY_TARGETS)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.default_backend()}; threshold {W._COLLAPSE:g}; {args.chains} chains")
    for name in args.targets:
        try:
            r = margin(name, args.chains, args.seed)
        except Exception as err:  # a Gym target that needs data this machine lacks
            print(f"{name:55s} failed: {type(err).__name__}: {str(err)[:200]}", flush=True)
            continue
        print(
            f"{r['target']:55s} restarts {r['restarts']:3d} (chains {r['restarted']})  "
            f"smallest ratio of a chain not restarted {r['margin']:.3g}  ({r['seconds']:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
