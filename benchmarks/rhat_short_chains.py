"""R-hat of many short chains at stationarity: what a 60-draw run can show.

``bench_many_chains.py`` runs 1024 chains of 60 draws and reports the largest R-hat over the
coordinates (ArviZ's rank-normalized split R-hat).  Even chains that start *at* the target
have an R-hat above 1 when the draws are autocorrelated: the means of short (half) chains
vary between chains by about ``tau`` times what independent draws would give, so the median
R-hat over coordinates is close to ``1 + (tau - 1) / N`` for ``N`` draws per chain and an
integrated autocorrelation time ``tau`` (in draws), measured below.
This script measures it, so that the benchmark's convergence rule does not call a mixing
but autocorrelated run unconverged, nor a stuck one converged:

1. **AR(1) chains** started from their stationary law (known ``tau = (1 + rho) / (1 - rho)``),
   1024 chains x ``d`` = 100 independent coordinates, 60 and 240 draws: the largest and the
   median R-hat over the coordinates.
2. **Samplers started at the truth**: the Inference Gym's ill-conditioned Gaussian (exact
   draws from the model as the starts), mcgen's MAMS and ChEES with the benchmark's warmup
   and draws, against the same run from the benchmark's uniform starts in [-2, 2].

Usage::

    python benchmarks/rhat_short_chains.py              # both parts
    python benchmarks/rhat_short_chains.py --ar-only    # part 1 (seconds)
"""

from __future__ import annotations

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc


def max_rhat(x: np.ndarray) -> tuple[float, float]:
    """(largest, median) ArviZ R-hat over the coordinates of draws ``(chains, draws, d)``."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = np.asarray(az.rhat(az.convert_to_dataset({"x": x}))["x"])
    return float(np.max(r)), float(np.median(r))


def ar1_chains(tau: float, chains: int, draws: int, d: int, seed: int) -> np.ndarray:
    """Stationary AR(1) chains with unit variance and integrated autocorrelation time ``tau``."""
    rho = (tau - 1.0) / (tau + 1.0)
    rng = np.random.default_rng(seed)
    x = np.empty((chains, draws, d))
    x[:, 0] = rng.standard_normal((chains, d))
    noise = rng.standard_normal((chains, draws, d)) * np.sqrt(1.0 - rho**2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def part_ar(chains: int, seed: int) -> None:
    print("AR(1) at stationarity, 100 coordinates: largest (median) R-hat")
    print("| tau (draws) | 60 draws | 240 draws | 1 + (tau - 1) / 60 | 1 + (tau - 1) / 240 |")
    print("|---|---|---|---|---|")
    for tau in (1.0, 3.0, 7.0, 15.0, 30.0):
        cells = []
        for draws in (60, 240):
            mx, med = max_rhat(ar1_chains(tau, chains, draws, 100, seed))
            cells.append(f"{mx:.3f} ({med:.3f})")
        print(f"| {tau:g} | {cells[0]} | {cells[1]} | {1 + (tau - 1) / 60:.3f} | {1 + (tau - 1) / 240:.3f} |")


def part_samplers(chains: int, warmup: int, draws: int, seed: int) -> None:
    from bench_many_chains import Target, summarize

    target = Target("gym_IllConditionedGaussian")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from inference_gym import using_jax as gym

        exact = gym.targets.IllConditionedGaussian().sample(chains, seed=jax.random.key(seed + 11))
    starts = {"truth": jnp.asarray(exact, jnp.float32), "uniform [-2, 2]": target.inits(chains, seed)}
    print(f"\ngym_IllConditionedGaussian, {chains} chains, {warmup} warmup + {draws} draws")
    print("| sampler | starts | max R-hat | tau (chains x draws / min ESS) | max abs z (means / 2nd moments) |")
    print("|---|---|---|---|---|")
    for name, kernel in (("mams", mc.mams()), ("chees", mc.chees_hmc())):
        for label, init in starts.items():
            res = mc.run_chains(
                target.logdensity,
                kernel,
                init=init,
                init_batched=True,
                num_chains=chains,
                num_samples=draws,
                num_warmup=warmup,
                seed=seed,
                progress=False,
                warn=False,
            )
            steps = np.asarray(res.stats["num_grad_evals"])
            r = summarize(target, res.samples, chains * steps.max(axis=0).sum(), res.sampling_time)
            tau = chains * draws / r["ess"]
            print(f"| {name} | {label} | {r['rhat']:.3f} | {tau:.1f} | {r['z']:.1f} / {r['z2']:.1f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ar-only", action="store_true")
    args = parser.parse_args(argv)
    part_ar(args.chains, args.seed)
    if not args.ar_only:
        part_samplers(args.chains, args.warmup, args.draws, args.seed)


if __name__ == "__main__":
    main()
