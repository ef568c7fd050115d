"""Statistical tests of the Langevin kernels (mcgen.kernels.langevin): MALA and ULA.

MALA is exact: on a correlated 10-d Gaussian, a 100-d Gaussian with log-spaced scales,
eight schools (non-centered) and a logistic regression (against stored BlackJAX reference
runs) its means and variances lie within 4 MCSE of the truth, and 4000 chains started at
exact draws stay distributed as the target.  ULA is biased by design: on a Gaussian its
stationary variance is the known discretized value, not the target's, and the test checks
exactly that (to 4 MCSE), for the log-density kernel and the score-only kernel.  Seeds fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen import testing
from mcgen.kernels.langevin import mala, ula, ula_step
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

# ----------------------------------------------------------------------------- MALA


@pytest.mark.parametrize(
    "kwargs", [dict(step_size=0.0), dict(step_size=-0.1), dict(mass="identity"), dict(target_accept=1.5)]
)
def test_mala_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        mala(**kwargs)


@pytest.mark.parametrize("mass", ["diag", "dense"])
def test_mala_invariance_with_fixed_step_size(mass):
    testing.assert_invariance(
        mala(0.5, mass, adapt=False), GAUSS10.logdensity_fn, GAUSS10.sample, num_chains=4000, num_steps=5
    )


def test_mala_correlated_gaussian_moments():
    res = run(GAUSS10.logdensity_fn, mala(), init=GAUSS10.init, samples=2500, thin=2)
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)
    assert 0.5 < float(np.mean(res.stats["accept_prob"])) < 0.75  # target 0.574


def test_mala_gaussian_100d_log_spaced_scales():
    res = run(gaussian_100, mala(), init=jnp.zeros(100), samples=2500, thin=4, warmup=2000)
    # every fifth coordinate (scales 0.01 .. 1): 40 compared quantities, ~0.3% false failures
    testing.assert_moments(res.samples[..., ::5], jnp.zeros(20), SCALES[::5] ** 2)


def test_mala_eight_schools_against_reference():
    res = run(EIGHT_TARGET, mala(), samples=2500, thin=4, warmup=2000)
    assert_matches_reference(res.samples, EIGHT, EIGHT_SITES)


def test_mala_logistic_regression_against_reference():
    res = run(logistic, mala(), init=jnp.zeros(25), samples=2000, thin=3)
    assert_matches_reference({"beta": res.samples}, LOGI, ("beta",))


# ----------------------------------------------------------------------------- ULA


def ula_stationary_variance(sigma2, eps):
    """x' = x + (eps^2/2)(-x/sigma^2) + eps xi is AR(1) with a = 1 - eps^2/(2 sigma^2)."""
    a = 1.0 - eps**2 / (2.0 * sigma2)
    return eps**2 / (1.0 - a**2)


@pytest.mark.parametrize("step_size", [None, 0.0, -0.5, float("nan")])
def test_ula_bad_step_size_raises(step_size):
    with pytest.raises(ValueError):
        ula(step_size)


def test_ula_has_the_predicted_bias():
    sigma2 = jnp.array([0.5, 1.0, 2.0])
    eps = 0.6

    def logdensity(x):
        return -0.5 * jnp.sum(x**2 / sigma2)

    res = run(logdensity, ula(eps), init=jnp.zeros(3), samples=4000, warmup=200)
    biased = ula_stationary_variance(np.asarray(sigma2), eps)
    testing.assert_moments(res.samples, jnp.zeros(3), biased)
    # and the bias is real: where it is largest (sigma^2 = 0.5: +22%) the target's variance is
    # many MCSE away
    report = testing.check_moments(res.samples, jnp.zeros(3), sigma2)
    assert report.var_z[0] > 4


def test_ula_from_score_alone():
    sigma2 = 2.0

    def score(x):  # no log-density anywhere
        return {"a": -x["a"] / sigma2}

    kernel = ula(0.5, from_score=True)
    res = run(score, kernel, init={"a": jnp.zeros(2)}, init_batched=False, samples=4000, warmup=200)
    testing.assert_moments(res.samples, {"a": jnp.zeros(2)}, {"a": jnp.full(2, ula_stationary_variance(sigma2, 0.5))})
    # the step function alone, on a pytree
    x = ula_step(jax.random.key(0), {"a": jnp.ones(2)}, score, 0.5)
    assert x["a"].shape == (2,) and np.all(np.isfinite(x["a"]))
