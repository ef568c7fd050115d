"""The particle filter of ``benchmarks/sv_truth.py`` against a quadrature on a three-day series.

Given ``(phi, s, lam)`` the log-volatilities ``x = mu + z`` (``z`` a stationary AR(1)) are
jointly Gaussian once ``mu ~ N(0, 25 / lam)`` is integrated out, so with three returns the
likelihood ``p(r | phi, s, lam)``, the first two moments of ``mu`` and the means of the
log-volatilities given ``r`` are three-dimensional integrals, done here on a grid.  The filter (bootstrap over ``x``, ``mu`` marginalized
along each particle's path) must reproduce both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sv_truth  # noqa: E402


def _quadrature(r, phi, s, lam, points=161, width=8.0):
    """log p(r | phi, s, lam), E[mu | r, .] and E[mu^2 | r, .] on a grid over x (len(r) dimensions)."""
    n = len(r)
    v0 = 25.0 / lam
    # x = mu + z: mu ~ N(0, v0), z a stationary AR(1) with variance s^2 / (1 - phi^2)
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    cov = v0 + s**2 / (1.0 - phi**2) * phi**lag
    prec = np.linalg.inv(cov)
    sd = np.sqrt(np.diag(cov))
    g = np.linspace(-width, width, points)
    x = np.stack(np.meshgrid(*[g * sd[t] for t in range(n)], indexing="ij"), -1)
    logp = -0.5 * np.einsum("...i,ij,...j->...", x, prec, x) - 0.5 * np.log(np.linalg.det(2 * np.pi * cov))
    loglik = sum(-0.5 * np.log(2 * np.pi) - 0.5 * x[..., t] - 0.5 * r[t] ** 2 * np.exp(-x[..., t]) for t in range(n))
    w = np.exp(logp + loglik) * np.prod((g[1] - g[0]) * sd)
    ones = np.ones(n)
    mu_mean = np.einsum("i,ij,...j->...", v0 * ones, prec, x)
    mu_var = v0 - v0**2 * ones @ prec @ ones
    x_mean = (w[..., None] * x).reshape(-1, n).sum(0) / w.sum()
    return np.log(w.sum()), (w * mu_mean).sum() / w.sum(), (w * (mu_mean**2 + mu_var)).sum() / w.sum(), x_mean


@pytest.mark.parametrize("phi, s, lam", [(0.9, 0.5, 1.0), (0.98, 0.3, 2.0), (0.5, 1.0, 4.0)])
def test_particle_filter_matches_quadrature_on_three_days(phi, s, lam):
    r = np.array([1.3, -40.0, 6.0])
    log_l, mean_mu, second_mu, mean_x = _quadrature(r, phi, s, lam)
    runs = 16
    run = sv_truth.make_filter(r, particles=20000)
    keys = jax.random.split(jax.random.key(0), runs)
    ll, e1, e2, x1, _ = (
        np.asarray(o, np.float64) for o in run(keys, np.full(runs, phi), np.full(runs, s), np.full(runs, lam))
    )
    # the likelihood estimate is unbiased: average it over the runs, and the moments with the same
    # weights; tolerances of four standard errors from the runs' own spread
    w = np.exp(ll - ll.max())
    assert abs(np.log(w.mean()) + ll.max() - log_l) < 4 * ll.std(ddof=1) / np.sqrt(runs)
    assert abs((w * e1).sum() / w.sum() - mean_mu) < 4 * e1.std(ddof=1) / np.sqrt(runs)
    assert abs((w * e2).sum() / w.sum() - second_mu) < 4 * e2.std(ddof=1) / np.sqrt(runs)
    # the log-volatilities of each day, from the particles' paths traced back
    np.testing.assert_array_less(np.abs(w @ x1 / w.sum() - mean_x), 4 * x1.std(axis=0, ddof=1) / np.sqrt(runs))


def test_grid_holds_the_prior_mass_of_its_box():
    # the grid's weights are the priors' densities times the cells: they sum to the prior mass of
    # the box (all of the persistence's and lam's, the shock scale's between 0.03 and 3)
    _, _, _, logw = sv_truth.grid(0.2, 16)
    inside = 2.0 / np.pi * (np.arctan(3.0 / 2.0) - np.arctan(0.03 / 2.0))
    assert np.exp(logw).sum() == pytest.approx(inside, rel=0.01)


def test_stored_corrections():
    # what bench_gym.py scores the stochastic-volatility model against in place of the Gym's:
    # mean_log_volatility and the 100 log-volatilities, each with a standard error and a
    # standard deviation
    corrections = sv_truth.corrections()
    assert set(corrections) == {"['mean_log_volatility']"} | {f"['log_volatility'][{i}]" for i in range(100)}
    values = np.array(list(corrections.values()))
    assert np.all(np.isfinite(values)) and np.all(values[:, 1:] > 0)
    mean, se, sd = corrections["['mean_log_volatility']"]
    assert 7.85 < mean < 7.88 and 0 < se < 0.01 and 1.2 < sd < 1.35
