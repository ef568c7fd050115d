"""The random numbers of one MEADS step alone: ``split`` + ``normal`` + ``uniform`` against ``ghmc_draws``.

``--chains`` chains each draw ``d`` standard normals and one uniform on (-1, 1) per step from
the step key the driver derives (``fold_in(chain key, t)``), vmapped over chains inside a
``lax.scan`` of ``--steps`` steps; the draws are summed into a carry so nothing is dropped.
Variants: the generator MEADS used before (``_random.split`` into two keys, ``_random.normal``
and ``_random.uniform``), ``_random.ghmc_draws`` (one call, both words of each Threefry block,
``log_f32`` in the inverse error function), and the step key alone (the floor).  The variants
alternate, ``--repeats`` times each; the median and best time per step are reported.

Usage::

    python benchmarks/bench_ghmc_draws.py --dims 10 100
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from mcgen.kernels import _random


def split_normal_uniform(key, dim):
    key_momentum, key_slice = _random.split(key, 2)
    return _random.normal(key_momentum, (dim,)), _random.uniform(key_slice, (), jnp.float32, -1.0, 1.0)


def ghmc(key, dim):
    return _random.ghmc_draws(key, dim, jnp.float32)


def key_only(key, dim):
    words = jax.random.key_data(key)
    return jnp.zeros((dim,)) + words[0].astype(jnp.float32), words[1].astype(jnp.float32)


VARIANTS = {"split + normal + uniform": split_normal_uniform, "ghmc_draws": ghmc, "step key only": key_only}


def compiled(fn, keys, dim, steps):
    def run(keys, acc):
        def body(a, t):
            z, u = jax.vmap(lambda k: fn(_random.fold_in(k, t), dim))(keys)
            return a + z * u[:, None], None

        return jax.lax.scan(body, acc, jnp.arange(steps, dtype=jnp.uint32))[0]

    acc = jnp.zeros((keys.shape[0], dim))
    return jax.jit(run).lower(keys, acc).compile(), acc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=1024)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.chains} chains, {args.steps} steps")
    print("| d | variant | median ms/step | best ms/step | ns per normal (best) |")
    print("|---|---|---|---|---|")
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(args.chains, dtype=jnp.uint32))
    for dim in args.dims:
        programs = {name: compiled(fn, keys, dim, args.steps) for name, fn in VARIANTS.items()}
        times = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):
            for name, (program, acc) in programs.items():
                start = time.perf_counter()
                jax.block_until_ready(program(keys, acc))
                times[name].append((time.perf_counter() - start) / args.steps)
        for name, t in times.items():
            best = min(t)
            print(
                f"| {dim} | {name} | {np.median(t) * 1e3:.3f} | {best * 1e3:.3f} "
                f"| {best / (args.chains * dim) * 1e9:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
