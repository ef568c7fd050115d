"""What a collective costs between simulated CPU devices, by collectives per loop iteration.

A pooling warmup (ChEES-HMC, MAMS, MEADS) split over devices makes a few collectives in every
warmup step, each a rendezvous of all the devices (``mcgen.adaptation.ensemble``).  This times
a ``fori_loop`` of ``--iterations`` iterations in ``jax.shard_map`` over ``--devices``
simulated CPU devices, each iteration ``k`` times some elementwise work on a ``(--size,)``
vector per device (``--work`` rounds of a sine; none by default) followed by an
all-reduce of it, for each ``k`` of ``--per-iteration``; it prints microseconds per iteration,
and beside it the same loop without the all-reduces, so that the difference is what the
collectives cost; with ``--operands K`` also the loop whose all-reduces each sum a tuple of
``K`` pieces of the vector (one all-reduce operation in the program, as ``jax.lax.psum`` of a
list makes), which XLA:CPU runs as ``K`` rendezvous.  No peer: the figure is a property of XLA:CPU's in-process
collectives, the floor under any library's pooled warmup on such devices.  Pin the process to
the devices' cores (``taskset -c 0,1`` for 2).

Usage: python benchmarks/bench_collectives.py [--devices 2] [--per-iteration 1 2 4] [--work 6 --size 4096 --operands 4]
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


def loop(mesh: Mesh, per_iteration: int, iterations: int, work: int, collective: bool = True, operands: int = 1):
    """The jitted loop: ``iterations`` iterations of ``per_iteration`` rounds of work, each
    followed by an all-reduce (or, with ``collective=False``, not) of the vector cut into
    ``operands`` pieces (one all-reduce of a tuple)."""

    def body(_, x):
        for _ in range(per_iteration):
            for _ in range(work):
                x = jnp.sin(x) * 1.0001 + 1e-3
            y = jnp.array_split(0.5 * x, operands, axis=-1)
            y = jax.lax.psum(y, "devices") if collective else y
            x = jnp.concatenate(y, axis=-1) * 0.5 + 1e-3
        return x + 1e-6

    def run(x):
        return jax.lax.fori_loop(0, iterations, body, x)

    return jax.jit(jax.shard_map(run, mesh=mesh, in_specs=P("devices"), out_specs=P("devices"), check_vma=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--per-iteration", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=int, default=0, help="rounds of elementwise work before each all-reduce")
    parser.add_argument("--size", type=int, default=32, help="length of each device's vector")
    parser.add_argument(
        "--operands", type=int, default=1, help="also time each all-reduce as a tuple of this many pieces"
    )
    args = parser.parse_args()
    mesh = Mesh(np.array(jax.devices()[: args.devices]), ("devices",))
    x = jnp.ones((args.devices, args.size))
    print(
        f"{args.devices} simulated CPU devices, {args.iterations} iterations, {args.work} rounds of work on "
        f"{args.size} floats per device before each all-reduce, best of {args.repeats}"
    )
    for k in args.per_iteration:
        best = {}
        for collective in (True, False):
            fn = loop(mesh, k, args.iterations, args.work, collective)
            jax.block_until_ready(fn(x))
            best[collective] = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                jax.block_until_ready(fn(x))
                best[collective] = min(best[collective], time.perf_counter() - start)
        with_, without = (1e6 * best[c] / args.iterations for c in (True, False))
        line = f"  {k} all-reduces per iteration: {with_:8.2f} us per iteration, {without:8.2f} without them"
        if args.operands > 1:
            fn = loop(mesh, k, args.iterations, args.work, True, args.operands)
            jax.block_until_ready(fn(x))
            pieces = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                jax.block_until_ready(fn(x))
                pieces = min(pieces, time.perf_counter() - start)
            line += f", {1e6 * pieces / args.iterations:8.2f} with each a tuple of {args.operands} pieces"
        print(line, flush=True)


if __name__ == "__main__":
    main()
