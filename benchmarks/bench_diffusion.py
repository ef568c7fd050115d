"""Steps vs sample quality of the diffusion samplers on an analytic Gaussian mixture.

The noise predictor is exact (:func:`mcgen.generative.gmm_eps_fn`), so all the error comes
from the sampler: discretization error, plus Monte-Carlo noise, which the table shows as the
"exact draws" row (MMD^2 between two independent exact sample sets).  MMD^2 is the unbiased
RBF estimate with a fixed bandwidth of 1 against one reference set of exact draws, averaged
over seeds.  Compile time (first call minus a steady-state call) is reported apart from the
steady-state run time.

Run::

    python benchmarks/bench_diffusion.py            # full table (about 1-2 minutes on 2 cores)
    python benchmarks/bench_diffusion.py --quick    # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from mcgen.generative import gmm_eps_fn, gmm_sample, linear_schedule, mmd_rbf, sample_diffusion

WEIGHTS = jnp.array([0.2, 0.5, 0.3])
MEANS = jnp.array([[-3.0, 0.0], [3.0, 1.0], [0.0, 5.5]])
COVS = jnp.array([[[0.5, 0.2], [0.2, 0.3]], [[0.3, 0.0], [0.0, 0.6]], [[0.4, -0.15], [-0.15, 0.4]]])
BANDWIDTH = 1.0


def configs(quick: bool):
    few = (10, 20) if quick else (10, 15, 20, 50)
    rows = [("ddpm", 1, s) for s in ((20, 100, 1000) if quick else (20, 50, 100, 250, 1000))]
    rows += [("ddim", 1, s) for s in ((20, 100) if quick else (10, 20, 50, 100, 250))]
    for method in ("dpm_solver", "dpm_solver++"):
        rows += [(method, order, s) for order in (1, 2, 3) for s in few]
    rows += [("ode", 4, s) for s in ((5,) if quick else (3, 5, 10))]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations and samples")
    parser.add_argument("--num-samples", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    n = args.num_samples or (1000 if args.quick else 4000)
    seeds = args.seeds or (1 if args.quick else 3)

    schedule = linear_schedule()
    eps_fn = gmm_eps_fn(WEIGHTS, MEANS, COVS, schedule)
    ref = gmm_sample(jax.random.key(12345), WEIGHTS, MEANS, COVS, n)[0]
    null = [
        float(mmd_rbf(gmm_sample(jax.random.key(1000 + s), WEIGHTS, MEANS, COVS, n)[0], ref, BANDWIDTH))
        for s in range(max(seeds, 5))
    ]

    print(
        f"# Diffusion samplers on a 3-component 2-d Gaussian mixture "
        f"(n = {n}, {seeds} seed(s), backend {jax.default_backend()})\n"
    )
    print("| method | order | steps | NFE | MMD^2 x 1e3 | compile s | run s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| exact draws | - | - | - | {1e3 * np.mean(null):.3f} ± {1e3 * np.std(null, ddof=1):.3f} (sd) | - | - |")
    for method, order, steps in configs(args.quick):
        kw = {"num_steps": steps}
        if method.startswith("dpm"):
            kw["order"] = order
        call = lambda key: sample_diffusion(key, eps_fn, schedule, (2,), n, method, **kw)  # noqa: E731
        t0 = time.perf_counter()
        call(jax.random.key(0)).block_until_ready()
        first = time.perf_counter() - t0
        mmds, runs = [], []
        for s in range(seeds):
            t0 = time.perf_counter()
            x = call(jax.random.key(s + 1)).block_until_ready()
            runs.append(time.perf_counter() - t0)
            mmds.append(float(mmd_rbf(x, ref, BANDWIDTH)))
        run = float(np.median(runs))
        nfe = steps * (4 if method == "ode" else 1)
        order_s = "RK4" if method == "ode" else ("-" if method in ("ddpm", "ddim") else str(order))
        print(
            f"| {method} | {order_s} | {steps} | {nfe} | {1e3 * np.mean(mmds):.3f} | "
            f"{max(first - run, 0.0):.2f} | {run:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
