"""Statistical tests of static HMC (mcgen.kernels.hmc).

Same targets as ``test_nuts.py``: a correlated 10-d Gaussian, a 100-d Gaussian with scales
log-spaced over two decades, eight schools (non-centered) and a logistic regression against
stored BlackJAX reference runs; means and variances within 4 MCSE.  Fixed-length HMC is run
with step-size jitter in the moment tests (a fixed trajectory length resonates on Gaussians,
which makes ESS, and so the MCSE, unreliable); the invariance checks use fixed step sizes,
with and without jitter.  Seeds fixed.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from mcgen import testing
from mcgen.kernels.hmc import hmc
from tests.kernels.gradient_targets import (
    EIGHT,
    EIGHT_SITES,
    EIGHT_TARGET,
    GAUSS10,
    LOGI,
    SCALES,
    assert_matches_reference,
    gaussian_100,
    logistic,
    run,
)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_integration_steps=0),
        dict(num_integration_steps=2.0),
        dict(mass="unit"),
        dict(step_size=0.0),
        dict(jitter=1.0),
        dict(jitter=-0.1),
        dict(target_accept=0.0),
    ],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        hmc(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(mass="diag"), dict(mass="dense"), dict(mass="diag", jitter=0.5)])
def test_invariance_with_fixed_step_size(kwargs):
    kernel = hmc(5, step_size=0.3, adapt=False, **kwargs)
    testing.assert_invariance(kernel, GAUSS10.logdensity_fn, GAUSS10.sample, num_chains=4000, num_steps=3)


@pytest.mark.parametrize("mass", ["diag", "dense"])
def test_correlated_gaussian_moments(mass):
    res = run(GAUSS10.logdensity_fn, hmc(10, mass=mass, jitter=0.5), init=GAUSS10.init)
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)
    assert 0.55 < float(np.mean(res.stats["accept_prob"])) < 0.9  # target 0.65


def test_gaussian_100d_log_spaced_scales():
    res = run(gaussian_100, hmc(10, jitter=0.5), init=jnp.zeros(100))
    # every fifth coordinate (scales 0.01 .. 1): 40 compared quantities, ~0.3% false failures
    testing.assert_moments(res.samples[..., ::5], jnp.zeros(20), SCALES[::5] ** 2)


def test_eight_schools_against_reference():
    res = run(EIGHT_TARGET, hmc(10, jitter=0.5), samples=3000)
    assert_matches_reference(res.samples, EIGHT, EIGHT_SITES)


def test_logistic_regression_against_reference():
    res = run(logistic, hmc(8, jitter=0.5), init=jnp.zeros(25))
    assert_matches_reference({"beta": res.samples}, LOGI, ("beta",))


def test_info_reports_energy_and_divergence():
    res = run(GAUSS10.logdensity_fn, hmc(5, step_size=5.0, adapt=False), init=GAUSS10.init, warmup=0, samples=200)
    assert res.stats["is_divergent"].mean() > 0.5 and res.stats["accept_prob"].mean() < 0.05
    assert np.all(res.stats["num_grad_evals"] == 5) and np.all(np.isfinite(res.stats["energy"]))
    assert "energy" in res.to_arviz().sample_stats
