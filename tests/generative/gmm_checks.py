"""Shared by the generative and neural tests: an analytic Gaussian mixture and its checks.

Imported as ``tests.generative.gmm_checks`` by the test modules; not a test module itself.
"""

import jax.numpy as jnp
import numpy as np
from scipy import stats

WEIGHTS = np.array([0.2, 0.5, 0.3])
MEANS = np.array([[-3.0, 0.0], [3.0, 1.0], [0.0, 5.5]])
COVS = np.array([[[0.5, 0.2], [0.2, 0.3]], [[0.3, 0.0], [0.0, 0.6]], [[0.4, -0.15], [-0.15, 0.4]]])


def gmm_failures(x, weights=WEIGHTS, means=MEANS, covs=COVS, num_se=4.0, rel_bias=0.0):
    """List of failed checks of samples ``x`` against a well-separated Gaussian mixture.

    Each draw is assigned to its most probable component.  Mode weights must lie within
    ``num_se`` binomial standard errors (a zero weight must get no draws); per-mode means within ``num_se`` standard errors;
    per-mode covariance entries within ``num_se`` standard errors of the sample covariance
    (normal theory: ``var(S_ij) = (S_ii S_jj + S_ij^2) / n``), plus ``rel_bias`` times the
    scale ``sqrt(S_ii S_jj)`` for samplers with a known discretization bias.
    """
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    logp = np.stack(
        [np.log(max(w, 1e-300)) + stats.multivariate_normal(m, c).logpdf(x) for w, m, c in zip(weights, means, covs)],
        axis=1,
    )
    label = np.argmax(logp, axis=1)
    failures = []
    for k, (w, m, c) in enumerate(zip(weights, means, covs)):
        frac = np.mean(label == k)
        if w == 0.0:  # an absent mode must get no draws at all
            if frac > 0.0:
                failures.append(f"weight[{k}] {frac:.4f} vs 0")
            continue
        se = np.sqrt(w * (1 - w) / n)
        if abs(frac - w) > num_se * se:
            failures.append(f"weight[{k}] {frac:.4f} vs {w} ({(frac - w) / se:+.1f} se)")
        xk = x[label == k]
        nk = xk.shape[0]
        mean_se = np.sqrt(np.diag(c) / nk)
        z = (xk.mean(0) - m) / mean_se
        if np.any(np.abs(z) > num_se):
            failures.append(f"mean[{k}] {xk.mean(0)} vs {m} (z={z})")
        s = np.cov(xk.T)
        cov_se = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / nk)
        scale = np.sqrt(np.outer(np.diag(c), np.diag(c)))
        if np.any(np.abs(s - c) > num_se * cov_se + rel_bias * scale):
            failures.append(f"cov[{k}] {s.ravel()} vs {c.ravel()} (z={((s - c) / cov_se).ravel()})")
    return failures


def gmm_params():
    """The mixture as float32 JAX arrays ``(weights, means, covs)``."""
    return (jnp.asarray(WEIGHTS, jnp.float32), jnp.asarray(MEANS, jnp.float32), jnp.asarray(COVS, jnp.float32))
