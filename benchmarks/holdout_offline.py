"""The held-out check of the low-rank fit (``mass_holdout``) offline, on posterior draws.

For a Gym target: 4 chains of the Fisher diagonal on the early schedule (1000 + 1000, the
initial points and seed of ``bench_gym.py``'s repetition ``--rep``), their draws and the
gradients there.  Windows of ``n`` consecutive draws of one chain are fitted as the warmup
fits them (:func:`mcgen.adaptation.low_rank.low_rank_estimate`, rank 16, the window's Fisher
diagonal), and for each window two numbers, in the log condition number
:math:`\\log \\lambda_{max}(C_x) \\lambda_{max}(C_g)` after the metric's whitening (computed
here in numpy with SVDs, independently of :func:`~mcgen.adaptation.low_rank.log_condition`):

* **truth**: the whole window's fit, less the diagonal alone, scored on all 1000 draws of the
  next chain (below 0: the correction helps on draws it never saw);
* **check**: what ``mass_holdout`` decides, each half of the window fitted and scored on the
  other half, the two summed (below 0: the correction is kept).

Prints per window length the share of windows where the check keeps the fit, where the truth
says it helps, and the median truth (as a factor in condition number: above 1, the fit helps).

Usage::

    python benchmarks/holdout_offline.py GermanCreditNumericSparseLogisticRegression EightSchools
"""

from __future__ import annotations

import argparse
import warnings

import bench_gym as bg
import jax
import jax.numpy as jnp
import numpy as np

from mcgen.adaptation.low_rank import low_rank_estimate
from mcgen.kernels.nuts import nuts


def posterior(name: str, rep: int):
    target = bg.make_target(name)
    kernel = nuts(mass="grad_diag", warmup_schedule="early")
    run = bg.run_mcgen(target, target.inits(4, rep), 4, 1000, 1000, rep, kernel=kernel)
    x = np.asarray(run["draws"]).reshape(4, 1000, -1)
    g = np.asarray(jax.vmap(jax.vmap(jax.grad(target.logdensity)))(jnp.asarray(x)))
    return x, g


def log_kappa(x, g, mean_x, mean_g, scale, vecs=None, vals=None) -> float:
    xs, gs = (x - mean_x) / scale, (g - mean_g) * scale
    if vecs is not None:
        xs = xs + ((xs @ vecs) * (vals**-0.5 - 1)) @ vecs.T
        gs = gs + ((gs @ vecs) * (vals**0.5 - 1)) @ vecs.T
    n = len(xs)
    top_x = np.linalg.svd(xs / np.sqrt(n), compute_uv=False)[0] ** 2
    top_g = np.linalg.svd(gs / np.sqrt(n), compute_uv=False)[0] ** 2
    return float(np.log(top_x * top_g))


def kept(fit):
    vals = np.asarray(fit.vals, np.float64)
    keep = vals != 1.0
    return np.asarray(fit.vecs, np.float64)[:, keep], vals[keep]


def windows(x, g, n: int):
    for chain in range(x.shape[0]):
        for start in range(0, x.shape[1] - n + 1, max(n, 50)):
            yield chain, x[chain, start : start + n], g[chain, start : start + n]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+")
    parser.add_argument("--rep", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 50, 100])
    args = parser.parse_args(argv)
    for name in args.targets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, g = posterior(name, args.rep)
        for n in args.lengths:
            check, truth = [], []
            for chain, xw, gw in windows(x, g, n):
                diag = np.sqrt(xw.var(0) / gw.var(0))
                scale, d = np.sqrt(diag), jnp.asarray(diag, jnp.float32)
                score, half = 0.0, n // 2
                for a, b in ((slice(0, half), slice(half, n)), (slice(half, n), slice(0, half))):
                    vecs, vals = kept(low_rank_estimate(jnp.asarray(xw[a]), jnp.asarray(gw[a]), rank=16, diag=d))
                    mx, mg = xw[a].mean(0), gw[a].mean(0)
                    score += log_kappa(xw[b], gw[b], mx, mg, scale, vecs, vals) - log_kappa(xw[b], gw[b], mx, mg, scale)
                check.append(score < 0)
                vecs, vals = kept(low_rank_estimate(jnp.asarray(xw), jnp.asarray(gw), rank=16, diag=d))
                xo, go = x[(chain + 1) % 4], g[(chain + 1) % 4]
                mx, mg = xo.mean(0), go.mean(0)
                truth.append(log_kappa(xo, go, mx, mg, scale, vecs, vals) - log_kappa(xo, go, mx, mg, scale))
            check, truth = np.array(check), np.array(truth)
            print(
                f"{name[:40]:40s} n {n:4d}: check keeps the fit in {check.mean():.2f} of {len(check)} windows; "
                f"it helps in {np.mean(truth < 0):.2f}; median factor {np.exp(-np.median(truth)):.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
