"""What a collective costs between simulated CPU devices, by collectives per loop iteration.

A pooling warmup (ChEES-HMC, MAMS, MEADS) split over devices makes a few collectives in every
warmup step, each a rendezvous of all the devices (``mcgen.adaptation.ensemble``).  This times
a ``fori_loop`` of ``--iterations`` iterations in ``jax.shard_map`` over ``--devices``
simulated CPU devices, each iteration a little arithmetic and ``k`` all-reduces of a
``(32,)`` vector one after the other, for each ``k`` of ``--per-iteration``; it prints
microseconds per iteration.  No peer: the figure is a property of XLA:CPU's in-process
collectives, the floor under any library's pooled warmup on such devices.  Pin the process to
the devices' cores (``taskset -c 0,1`` for 2).

Usage: python benchmarks/bench_collectives.py [--devices 2] [--per-iteration 0 1 2 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "--devices" in sys.argv:  # before JAX starts: the device count is fixed then
    _n = sys.argv[sys.argv.index("--devices") + 1]
else:
    _n = "2"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_n}"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402


def loop(mesh: Mesh, per_iteration: int, iterations: int):
    """The jitted loop: ``iterations`` iterations of ``per_iteration`` dependent all-reduces."""

    def body(_, x):
        for _ in range(per_iteration):
            x = jax.lax.psum(0.5 * x, "devices") * 0.5 + 1e-3
        return x + 1e-6

    def run(x):
        return jax.lax.fori_loop(0, iterations, body, x)

    return jax.jit(jax.shard_map(run, mesh=mesh, in_specs=P("devices"), out_specs=P("devices"), check_vma=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--per-iteration", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    mesh = Mesh(np.array(jax.devices()[: args.devices]), ("devices",))
    x = jnp.ones((args.devices, 32))
    print(f"{args.devices} simulated CPU devices, {args.iterations} iterations, best of {args.repeats}")
    for k in args.per_iteration:
        fn = loop(mesh, k, args.iterations)
        jax.block_until_ready(fn(x))
        best = np.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(x))
            best = min(best, time.perf_counter() - start)
        print(f"  {k} all-reduces per iteration: {1e6 * best / args.iterations:8.2f} us per iteration", flush=True)


if __name__ == "__main__":
    main()
