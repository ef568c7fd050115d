"""An independent ground truth for the Gym's BrownianMotionUnknownScalesMissingMiddleObservations.

The model: innovation and observation scales ``s_i, s_o ~ LogNormal(0, 2)``; a Gaussian random
walk ``locs[0] ~ N(0, s_i)``, ``locs[t] ~ N(locs[t-1], s_i)`` for 30 steps; observations
``y[t] ~ N(locs[t], s_o)`` at 20 of them (the middle ten are missing).  Given the two scales,
the locations are jointly Gaussian and integrate out in closed form:
``y ~ N(0, s_i^2 K + s_o^2 I)`` with ``K[s, t] = min(s, t) + 1`` on the observed steps.  The
posterior of ``(log s_i, log s_o)`` is then a two-dimensional density, integrated here on a
fine grid (the one eigendecomposition of ``K`` makes each grid point O(n)); the locations'
posterior means and variances are mixtures over the grid of their Gaussian conditionals.  No
sampling and no Stan: the only error is the quadrature's, checked by halving the grid step.

The Gym's stored truth comes from 20,000 Stan draws.  This script prints both, and the gap in
units of the standard error the Gym states for its own means.

Usage: python benchmarks/brownian_truth.py [--step 0.01]
"""

from __future__ import annotations

import argparse

import numpy as np

NUM_STEPS = 30


def observed():
    from inference_gym.internal.datasets import brownian_motion_missing_middle_observations as data

    y = np.asarray(data.OBSERVED_LOC, np.float64)
    return y, np.flatnonzero(np.isfinite(y))


def posterior_moments(step: float = 0.01, lo: float = -16.0, hi: float = 5.0, prior_sd: float = 2.0):
    """Posterior means and standard deviations of (s_i, s_o, locs[0..29]) by grid quadrature."""
    y, obs = observed()
    t = np.arange(NUM_STEPS)
    k_full = np.minimum(t[:, None], t[None, :]) + 1.0  # Cov(locs) / s_i^2
    lam, u = np.linalg.eigh(k_full[np.ix_(obs, obs)])
    c = u.T @ y[obs]  # y in the eigenbasis
    kx = k_full[:, obs] @ u  # Cov(locs, y) / s_i^2 in the eigenbasis, (30, n)
    grid = np.arange(lo, hi + step / 2, step)
    log_si, log_so = np.meshgrid(grid, grid, indexing="ij")
    log_si, log_so = log_si.ravel(), log_so.ravel()
    logp = np.empty(log_si.size)
    for i in range(0, log_si.size, 200_000):  # in blocks: memory
        sl = slice(i, i + 200_000)
        d = np.exp(2 * log_si[sl])[:, None] * lam + np.exp(2 * log_so[sl])[:, None]  # eigenvalues of Cov(y)
        loglik = -0.5 * (np.sum(np.log(d), 1) + np.sum(c**2 / d, 1))
        logp[sl] = loglik - 0.5 * (log_si[sl] ** 2 + log_so[sl] ** 2) / prior_sd**2
    w = np.exp(logp - logp.max())
    w /= w.sum()
    keep = w > 1e-16 * w.max()  # points that matter
    w, log_si, log_so = w[keep], log_si[keep], log_so[keep]
    si2, so2 = np.exp(2 * log_si), np.exp(2 * log_so)
    d = si2[:, None] * lam + so2[:, None]
    mean_locs = si2[:, None] * ((c / d) @ kx.T)  # E[locs | y, scales], (points, 30)
    var_locs = si2[:, None] * np.diag(k_full) - si2[:, None] ** 2 * ((1.0 / d) @ (kx**2).T)
    m1 = {
        "innovation_noise_scale": w @ np.exp(log_si),
        "observation_noise_scale": w @ np.exp(log_so),
        "locs": w @ mean_locs,
    }
    m2 = {"innovation_noise_scale": w @ si2, "observation_noise_scale": w @ so2, "locs": w @ (mean_locs**2 + var_locs)}
    sd = {k: np.sqrt(np.maximum(m2[k] - m1[k] ** 2, 0.0)) for k in m1}
    return m1, sd


def gym_truth():
    from inference_gym import using_jax as gym

    ident = gym.targets.BrownianMotionUnknownScalesMissingMiddleObservations().sample_transformations["identity"]
    return ident.ground_truth_mean, ident.ground_truth_standard_deviation, ident.ground_truth_mean_standard_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=0.01)
    args = parser.parse_args(argv)
    mean, sd = posterior_moments(args.step)
    mean2, sd2 = posterior_moments(2 * args.step)
    gmean, gsd, gse = gym_truth()
    print(f"quadrature step {args.step} (and {2 * args.step} to show its error)\n")
    print("| coordinate | quadrature mean | step x2 | Gym mean | Gym s.e. | gap / Gym s.e. | quadrature sd | Gym sd |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for key in ["innovation_noise_scale", "observation_noise_scale", "locs"]:
        for j in range(np.size(mean[key])):
            q, q2, g = np.ravel(mean[key])[j], np.ravel(mean2[key])[j], np.ravel(gmean[key])[j]
            se, s, gs = np.ravel(gse[key])[j], np.ravel(sd[key])[j], np.ravel(gsd[key])[j]
            z = (g - q) / se
            worst = max(worst, abs(z))
            name = key if np.ndim(mean[key]) == 0 else f"{key}[{j}]"
            print(f"| {name} | {q:.5f} | {q2:.5f} | {g:.5f} | {se:.5f} | {z:+.1f} | {s:.5f} | {gs:.5f} |")
    print(f"\nlargest |gap| / Gym s.e.: {worst:.1f}")
    return mean, sd


if __name__ == "__main__":
    main()
