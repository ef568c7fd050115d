"""Benchmark: rejection and importance sampling draws per second, mcgen vs NumPy/SciPy.

Target: the seed mixture 0.5 N(-2, 0.5) + 0.5 N(2, 0.8); proposal N(0, 3); 1e6 draws.

* ``numpy loop``: the seed's loop style, one proposal per Python iteration with
  ``scipy.stats.norm.pdf``; timed on a smaller run and reported as a rate (it would take
  minutes at 1e6).
* ``numpy vectorized``: whole-array NumPy/SciPy, batches of proposals until enough are accepted.
* ``mcgen``: ``jax.jit`` of :func:`mcgen.direct.rejection_sample` / :func:`importance_sample`
  (plus the SNIS estimate of E[X^2] and the Kish ESS); compile time (``lower().compile()``) is
  reported apart from the steady-state time (median of repeats).

Run: ``python benchmarks/bench_direct.py [--num-samples 1000000] [--loop-samples 20000]``.
NumPy runs in float64, JAX in float32 (its default).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from scipy import stats

from mcgen.direct import importance_sample, rejection_sample

W, MU, SD = (0.5, 0.5), (-2.0, 2.0), (0.5, 0.8)
Q_SD = 3.0


def log_mixture_np(x):
    return np.logaddexp(*[np.log(w) + stats.norm.logpdf(x, m, s) for w, m, s in zip(W, MU, SD)])


def log_bound() -> float:
    grid = np.linspace(-10, 10, 200_001)
    return float(np.max(log_mixture_np(grid) - stats.norm.logpdf(grid, 0, Q_SD)))


def rejection_loop(rng, n, M):
    """The seed's loop: one proposal at a time."""
    out, proposals = [], 0
    while len(out) < n:
        x = rng.normal(0.0, Q_SD)
        proposals += 1
        p = sum(w * stats.norm.pdf(x, m, s) for w, m, s in zip(W, MU, SD))
        if rng.uniform() < p / (M * stats.norm.pdf(x, 0.0, Q_SD)):
            out.append(x)
    return np.array(out)


def rejection_numpy(rng, n, log_M, batch=1 << 18):
    chunks, total = [], 0
    while total < n:
        x = rng.normal(0.0, Q_SD, batch)
        keep = np.log(rng.uniform(size=batch)) < log_mixture_np(x) - stats.norm.logpdf(x, 0, Q_SD) - log_M
        chunks.append(x[keep])
        total += int(keep.sum())
    return np.concatenate(chunks)[:n]


def importance_loop(rng, n):
    xs, lws = [], []
    for _ in range(n):
        x = rng.normal(0.0, Q_SD)
        p = sum(w * stats.norm.pdf(x, m, s) for w, m, s in zip(W, MU, SD))
        xs.append(x)
        lws.append(np.log(p) - stats.norm.logpdf(x, 0.0, Q_SD))
    lw = np.array(lws)
    w = np.exp(lw - lw.max())
    return np.sum(w * np.array(xs) ** 2) / w.sum(), w.sum() ** 2 / np.sum(w**2)


def importance_numpy(rng, n):
    x = rng.normal(0.0, Q_SD, n)
    lw = log_mixture_np(x) - stats.norm.logpdf(x, 0, Q_SD)
    w = np.exp(lw - lw.max())
    return np.sum(w * x**2) / w.sum(), w.sum() ** 2 / np.sum(w**2)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def jax_case(fn, repeats):
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(key).compile()
    compile_s = time.perf_counter() - t0
    keys = iter(jax.random.split(jax.random.key(1), repeats))
    steady, _ = timed(lambda: compiled(next(keys)), repeats)
    return compile_s, steady


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-samples", type=int, default=1_000_000)
    parser.add_argument("--loop-samples", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, n_loop, reps = args.num_samples, args.loop_samples, args.repeats
    log_M = log_bound()
    rng = np.random.default_rng(0)

    def log_p(x):
        return jnp.logaddexp(*[jnp.log(w) + dist.Normal(m, s).log_prob(x) for w, m, s in zip(W, MU, SD)])

    q = dist.Normal(0.0, Q_SD)
    rows = []  # (sampler, implementation, draws timed, compile s, steady s)
    t_loop, _ = timed(lambda: rejection_loop(rng, n_loop, np.exp(log_M)), 1)
    rows.append(("rejection", "numpy loop", n_loop, 0.0, t_loop))
    rows.append(("rejection", "numpy vectorized", n, 0.0, timed(lambda: rejection_numpy(rng, n, log_M), reps)[0]))
    for batch in (None, n):

        def rej(k, b=batch):
            return rejection_sample(k, log_p, q, log_M, num_samples=n, batch_size=b).samples

        c, s = jax_case(rej, reps)
        rows.append(("rejection", f"mcgen (batch {batch or min(n, 65536)})", n, c, s))
    t_loop, _ = timed(lambda: importance_loop(rng, n_loop), 1)
    rows.append(("importance", "numpy loop", n_loop, 0.0, t_loop))
    rows.append(("importance", "numpy vectorized", n, 0.0, timed(lambda: importance_numpy(rng, n), reps)[0]))

    def snis(k):
        ws = importance_sample(k, log_p, q, n)
        return ws.expectation(lambda x: x**2).mean, ws.ess()

    c, s = jax_case(snis, reps)
    rows.append(("importance", "mcgen", n, c, s))

    print(f"{n:.0e} draws; jax {jax.__version__} on {jax.devices()[0].platform}; steady = median of {reps}")
    header = (
        f"{'sampler':<11} {'implementation':<22} {'draws':>9} {'compile s':>9} {'steady s':>9} "
        f"{'draws/s':>11} {'vs loop':>8} {'vs numpy':>8}"
    )
    print(header)
    print("-" * len(header))
    for sampler in ("rejection", "importance"):
        mine = [r for r in rows if r[0] == sampler]
        rate = {impl: draws / steady for _, impl, draws, _, steady in mine}
        for _, impl, draws, comp, steady in mine:
            r = draws / steady
            print(
                f"{sampler:<11} {impl:<22} {draws:>9.0e} {comp:>9.3f} {steady:>9.4f} {r:>11.3e} "
                f"{r / rate['numpy loop']:>8.1f} {r / rate['numpy vectorized']:>8.2f}"
            )


if __name__ == "__main__":
    main()
