"""Geweke's joint-distribution test (mcgen.testing.geweke): calibrated on a correct kernel over
200 seeds, powerful against a kernel that targets a tempered posterior, and run on a Gibbs
sweep.  Model: theta ~ N(0, I_2), y_i ~ N(theta, I_2), i = 1..5.  Seeds fixed.
"""

import pytest
from scipy import stats

import mcgen as mc
from mcgen import testing
from mcgen.combinators import gibbs
from mcgen.types import Kernel
from tests.joint_gaussian import logdensity, logdensity_dict, prior, prior_dict, simulate, simulate_dict

MALA = mc.mala(0.5, adapt=False)


def tempered(kernel: Kernel, beta: float) -> Kernel:
    """A planted bug: ``kernel`` on ``beta * log p``."""
    return Kernel(
        lambda x, f: kernel.init(x, lambda z: beta * f(z)), lambda key, s, f: kernel.step(key, s, lambda z: beta * f(z))
    )


def test_geweke_false_alarm_rate():
    # alpha 0.1, Bonferroni over 4 test functions (theta and theta^2): stated rate about
    # 1 - (1 - 0.025)^4 for independent statistics
    n = 200
    fails = sum(
        not testing.geweke(
            MALA, prior, simulate, logdensity, num_chains=100, num_steps=40, num_marginal=5000, seed=s, alpha=0.1
        ).passed
        for s in range(n)
    )
    p = 1 - 0.975**4
    lo, hi = stats.binom.ppf(1e-4, n, p), stats.binom.isf(1e-4, n, p)
    assert lo <= fails <= hi, (fails, lo, hi)


def test_geweke_power_and_report():
    # a kernel on the posterior tempered to beta = 0.7 (posterior variance 1/0.7 too wide)
    bad = tempered(MALA, 0.7)
    reports = [testing.geweke(bad, prior, simulate, logdensity, seed=s) for s in range(10)]
    assert sum(not r.passed for r in reports) >= 9, [r.p_value for r in reports]
    assert set(reports[0].failing) & {"g[2]", "g[3]"}, str(reports[0])  # the second moments disagree
    assert "disagree" in str(reports[0])
    with pytest.raises(ValueError):
        testing.geweke(MALA, prior, simulate, logdensity, num_chains=2)


def test_geweke_on_a_gibbs_sweep():
    sweep = gibbs({"a": mc.rwmh(0.6, adapt=False), "b": mc.mala(0.5, adapt=False)})
    report = testing.geweke(
        sweep,
        prior_dict,
        simulate_dict,
        logdensity_dict,
        num_chains=200,
        num_steps=50,
        steps_per_data=2,
        names=["a", "b", "a^2", "b^2"],
    )
    assert report.passed, str(report)
    bad = testing.geweke(
        gibbs({"a": mc.rwmh(0.6, adapt=False), "b": tempered(mc.mala(0.5, adapt=False), 0.6)}),
        prior_dict,
        simulate_dict,
        logdensity_dict,
        num_chains=200,
        num_steps=50,
        steps_per_data=2,
        names=["a", "b", "a^2", "b^2"],
    )
    assert not bad.passed and "b^2" in bad.failing, str(bad)
