"""Simulation-based calibration (mcgen.testing.sbc): the rank test is calibrated on exact
posterior draws and has power against posteriors that are too narrow, too wide or shifted;
``sbc`` passes a correct kernel (its calibration and power over seeds:
tests/test_testing_calibration.py).

The model is conjugate: theta ~ N(0, I_2), y_i ~ N(theta, I_2) for i = 1..5, so the posterior is
N(sum(y) / 6, I / 6) and exact posterior draws are one numpy call for hundreds of seeds.  Seeds fixed.
"""

import numpy as np
import pytest
from scipy import stats

import mcgen as mc
from mcgen import testing
from tests.joint_gaussian import N_OBS, logdensity, logdensity_dict, prior, prior_dict, simulate, simulate_dict

L = 99


def _exact_ranks(rng, seeds, sims, sd_factor=1.0, shift=0.0):
    """Ranks of the truth among L exact (or deliberately wrong) posterior draws: (seeds, sims, 2)."""
    theta = rng.standard_normal((seeds, sims, 1, 2))
    ybar = theta + rng.standard_normal((seeds, sims, 1, 2)) / np.sqrt(N_OBS)
    mean, sd = N_OBS * ybar / (N_OBS + 1), 1.0 / np.sqrt(N_OBS + 1)
    draws = mean + shift * sd + sd_factor * sd * rng.standard_normal((seeds, sims, L, 2))
    return np.sum(draws < theta, axis=2)


def test_rank_test_false_alarm_rate():
    # 300 seeds of 200 simulations, exact posterior draws, alpha = 0.1 Bonferroni over 2
    # coordinates: stated rate 1 - 0.95^2 (chi-square approximation with 20 bins of 10 expected)
    n = 300
    ranks = _exact_ranks(np.random.default_rng(0), n, 200)
    fails = sum(not testing.SBCReport(r, L, testing.rank_uniformity(r, L), 0.1, ["a", "b"]).passed for r in ranks)
    lo, hi = stats.binom.ppf(1e-4, n, 0.0975), stats.binom.isf(1e-4, n, 0.0975)
    assert lo <= fails <= hi, (fails, lo, hi)


@pytest.mark.parametrize(
    "sd_factor, shift", [(0.7, 0.0), (1.6, 0.0), (1.0, 0.5)], ids=["too_narrow", "too_wide", "shifted"]
)
def test_rank_test_power(sd_factor, shift):
    # 200 simulations at alpha = 1e-3: a posterior sd 30% too small or 60% too large, or a
    # mean shifted by 0.5 posterior sd, fails at least 90% of the time
    n = 40
    ranks = _exact_ranks(np.random.default_rng(1), n, 200, sd_factor, shift)
    fails = sum(min(1.0, 2 * np.min(testing.rank_uniformity(r, L))) < 1e-3 for r in ranks)
    assert fails >= 0.9 * n, f"power {fails}/{n}"


def test_sbc_passes_a_correct_kernel():
    # MALA with its warmup, thinned; the rank test's power against wrong posteriors (a tempered
    # kernel) is in tests/test_testing_calibration.py (over seeds, with an exact kernel)
    good = testing.sbc(mc.mala(), prior, simulate, logdensity, num_simulations=300, thin=3, num_warmup=150, seed=0)
    assert good.passed, str(good)
    assert good.ranks.shape == (300, 2) and good.ranks.max() <= L


def test_sbc_report_plot_and_errors():
    # the report of exact ranks (no sampler to compile: sbc itself runs in the tests above)
    ranks = _exact_ranks(np.random.default_rng(2), 1, 40)[0]
    rep = testing.SBCReport(ranks, L, testing.rank_uniformity(ranks, L), 1e-3, ["a", "b"])
    assert "SBC" in str(rep) and rep.p_values.shape == (2,)
    rep.plot()
    with pytest.raises(ValueError):
        testing.sbc(mc.rwmh(), prior, simulate, logdensity, num_simulations=0)
    with pytest.raises(ValueError):
        testing.rank_uniformity(np.full((10, 1), 5), 3)


def test_sbc_of_a_gibbs_sampler():
    from mcgen.combinators import gibbs

    sweep = gibbs({"a": mc.rwmh(), "b": mc.mala()})  # each block adapts its own tunables in warmup
    rep = testing.sbc(
        sweep,
        prior_dict,
        simulate_dict,
        logdensity_dict,
        num_simulations=200,
        thin=4,
        num_warmup=150,
        seed=2,
        names=["a", "b"],
    )
    assert rep.passed, str(rep)
