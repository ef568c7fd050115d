"""Chain-steps per second with chains sharded over 1, 2, 4, 8 (simulated) CPU devices.

For each device count a worker process starts with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and measures, on a 100-d Gaussian with
a dense precision matrix:

* mcgen ``run_chains`` (sharded across the N devices) with ``rwmh`` — and ``hmc`` when the
  gradient kernels are installed — timing the warmup phase, which runs the same compiled
  chunked scan as sampling without storing draws (``Result.warmup_time``);
* BlackJAX ``rmh`` under ``jax.pmap`` (a vmap over each device's chains inside), the way
  BlackJAX users spread chains over devices.

Compile time is excluded from both.  Prints chain-steps/s and the ratio mcgen / BlackJAX.
Simulated devices share this machine's real cores, so scaling beyond the number of physical
cores is not expected; on a GPU host the same script measures the real thing.

Usage: python benchmarks/bench_sharding.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

DIM = 100


def worker(chain_counts: list[int], steps: int) -> None:
    import blackjax
    import jax
    import jax.numpy as jnp
    import numpy as np

    import mcgen as mc

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(DIM, DIM))
    precision = jnp.asarray(a @ a.T / DIM + np.eye(DIM), jnp.float32)

    def logdensity(x):
        return -0.5 * x @ (precision @ x)

    kernels = {"rwmh": mc.rwmh(2.38 / np.sqrt(DIM), adapt=False)}
    try:
        kernels["hmc"] = mc.hmc(num_integration_steps=10)
    except AttributeError:
        pass
    n_dev = len(jax.devices())
    rows = []
    for chains in chain_counts:
        row = {"devices": n_dev, "chains": chains}
        for name, kernel in kernels.items():
            run = dict(
                init=jnp.zeros(DIM), num_chains=chains, num_samples=1, num_warmup=steps, progress=False, warn=False
            )
            mc.run_chains(logdensity, kernel, **run)  # compile
            t = min(mc.run_chains(logdensity, kernel, seed=s, **run).warmup_time for s in range(2))
            row[f"mcgen_{name}"] = chains * steps / t
        # BlackJAX rmh under pmap: devices x (chains / devices) vmapped
        per = chains // n_dev
        scale = 2.38 / np.sqrt(DIM)
        rmh = blackjax.rmh(logdensity, lambda k, x: x + scale * jax.random.normal(k, x.shape, x.dtype))

        def device_loop(x, key):
            states = jax.vmap(rmh.init)(x)

            def body(st, k):
                return jax.vmap(rmh.step)(jax.random.split(k, per), st)[0], None

            return jax.lax.scan(body, states, jax.random.split(key, steps))[0].position

        loop = jax.pmap(device_loop)
        x0 = jnp.zeros((n_dev, per, DIM))
        keys = jax.random.split(jax.random.key(0), n_dev)
        jax.block_until_ready(loop(x0, keys))
        best = np.inf
        for _ in range(2):
            start = time.perf_counter()
            jax.block_until_ready(loop(x0, keys))
            best = min(best, time.perf_counter() - start)
        row["blackjax_rmh_pmap"] = per * n_dev * steps / best
        rows.append(row)
    print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", type=str, default=None)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        worker(spec["chains"], spec["steps"])
        return
    chain_counts = [1000, 10000] if args.quick else [1000, 10000, 100000]
    steps = 20 if args.quick else 50
    print(f"100-d Gaussian, {steps} steps; chain-steps per second (higher is better)")
    header = f"{'devices':>7} {'chains':>7} | {'mcgen rwmh':>11} {'bjax rmh pmap':>13} {'ratio':>6} | {'mcgen hmc':>10}"
    print(header)
    print("-" * len(header))
    for n_dev in (1, 2, 4, 8):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_dev}", "JAX_PLATFORMS": "cpu"}
        spec = json.dumps({"chains": chain_counts, "steps": steps})
        out = subprocess.run([sys.executable, __file__, "--worker", spec], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:])
            continue
        for row in json.loads(out.stdout.strip().splitlines()[-1]):
            hmc = f"{row['mcgen_hmc']:>10.3g}" if "mcgen_hmc" in row else f"{'n/a':>10}"
            print(
                f"{row['devices']:>7} {row['chains']:>7} | {row['mcgen_rwmh']:>11.3g} {row['blackjax_rmh_pmap']:>13.3g} "
                f"{row['mcgen_rwmh'] / row['blackjax_rmh_pmap']:>6.2f} | {hmc}"
            )


if __name__ == "__main__":
    main()
