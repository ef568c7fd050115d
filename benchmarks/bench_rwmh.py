"""Per-step cost of mcgen's random-walk Metropolis against the bare log-density and BlackJAX.

For a 10-d and a 100-d correlated Gaussian (dense precision matrix) and 1, 16, 256, 4096
chains, three compiled ``lax.scan`` loops run the same number of steps, all chains vmapped:

* ``logdensity``: evaluate the log-density of every chain once per step (the floor: no
  sampler can be cheaper than evaluating its target once per step);
* ``mcgen``: ``mc.rwmh().step``, keys from ``fold_in`` as ``run_chains`` derives them (with
  mcgen's fused ``fold_in``, bit for bit ``jax.random.fold_in``);
* ``blackjax``: ``blackjax.rmh`` with an additive Gaussian proposal of the same scale.

Compile time is measured apart (AOT ``lower().compile()``); steady-state time is the best of
``--repeats`` runs.  Printed: microseconds per step, and the ratios mcgen / logdensity and
mcgen / blackjax.  Also ``run_chains``: the full driver (draws stored and copied to the host)
per step, as a ratio to the bare log-density.

Usage: python benchmarks/bench_rwmh.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc
from mcgen.kernels._random import fold_in  # the driver's key derivation (fused jax.random.fold_in)


def gaussian(dim: int):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(dim, dim))
    precision = jnp.asarray(a @ a.T / dim + np.eye(dim), jnp.float32)

    def logdensity(x):
        return -0.5 * x @ (precision @ x)

    return logdensity


def timed(fn, *args, repeats: int):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return compile_s, best


def loops(logdensity, dim, chains, steps, scale):
    x0 = jnp.zeros((chains, dim), jnp.float32) + 0.1
    key = jax.random.key(0)

    def bare(x):
        def body(x, _):
            ld = jax.vmap(logdensity)(x)
            return x + 1e-6 * ld[:, None], None  # carry a dependency: nothing is hoisted

        return jax.lax.scan(body, x, None, length=steps)[0]

    kernel = mc.rwmh(scale, adapt=False)

    def mcgen_loop(x, key):
        states = jax.vmap(kernel.init, in_axes=(0, None))(x, logdensity)
        chain_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(chains, dtype=jnp.uint32))

        def body(st, t):
            def one(s, k):
                return kernel.step(fold_in(k, t), s, logdensity)[0]

            return jax.vmap(one)(st, chain_keys), None

        return jax.lax.scan(body, states, jnp.arange(steps, dtype=jnp.uint32))[0].position

    rmh = blackjax.rmh(logdensity, lambda k, x: x + scale * jax.random.normal(k, x.shape, x.dtype))

    def blackjax_loop(x, key):
        states = jax.vmap(rmh.init)(x)

        def body(st, k):
            return jax.vmap(rmh.step)(jax.random.split(k, chains), st)[0], None

        return jax.lax.scan(body, states, jax.random.split(key, steps))[0].position

    return x0, key, bare, mcgen_loop, blackjax_loop


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and chain counts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    chain_counts = [1, 16, 256] if args.quick else [1, 16, 256, 4096]
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; blackjax {blackjax.__version__}")
    header = (
        f"{'dim':>4} {'chains':>6} {'steps':>6} | {'logdens us':>10} {'mcgen us':>9} {'bjax us':>9} "
        f"{'driver us':>9} | {'mcgen/ld':>8} {'mcgen/bjax':>10} {'driver/ld':>9} | compile s (mcgen, bjax)"
    )
    print(header)
    print("-" * len(header))
    for dim in (10, 100):
        logdensity = gaussian(dim)
        scale = 2.38 / np.sqrt(dim)
        for chains in chain_counts:
            steps = int(np.clip(4e6 / (chains * dim * dim), 200, 4000))
            if args.quick:
                steps = max(100, steps // 4)
            x0, key, bare, mloop, bloop = loops(logdensity, dim, chains, steps, scale)
            _, t_bare = timed(bare, x0, repeats=args.repeats)
            c_m, t_m = timed(mloop, x0, key, repeats=args.repeats)
            c_b, t_b = timed(bloop, x0, key, repeats=args.repeats)
            driver = np.nan
            if chains <= 256:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run = dict(
                        init=jnp.zeros(dim),
                        num_chains=chains,
                        num_samples=steps,
                        num_warmup=0,
                        progress=False,
                        warn=False,
                    )
                    mc.run_chains(logdensity, mc.rwmh(scale, adapt=False), **run)  # compile
                    driver = min(
                        mc.run_chains(logdensity, mc.rwmh(scale, adapt=False), seed=s, **run).sampling_time
                        for s in range(args.repeats)
                    )
            per = lambda t: 1e6 * t / steps  # noqa: E731
            print(
                f"{dim:>4} {chains:>6} {steps:>6} | {per(t_bare):>10.2f} {per(t_m):>9.2f} {per(t_b):>9.2f} "
                f"{per(driver):>9.2f} | {t_m / t_bare:>8.2f} {t_m / t_b:>10.2f} {driver / t_bare:>9.2f} | "
                f"{c_m:.2f}, {c_b:.2f}"
            )


if __name__ == "__main__":
    main()
