"""Calibration and power figures of every statistical helper of ``mcgen.testing`` and of the error
bars mcgen reports: one table, the figures behind the claims of tests/test_testing_calibration.py,
tests/test_sbc.py, tests/test_geweke.py and tests/test_exact_invariance.py.

Usage: python tools/calibration_report.py [--quick] [row ...]

For each helper: the stated false-alarm rate at the level used, the rate observed over N >= 200
seeds of an exact sampler with its 95% Clopper-Pearson interval, a planted bias of stated size,
the power observed over further seeds (the fraction of seeds at which the helper fails the
biased sampler, at the helper's default level unless said), and the wall time of the row.  The
exact and biased samplers are the tests' own (imported from ``tests/``), so the figures are
those of the suite's settings, with more seeds.

Error bars (MCSE rows): over N seeds of the estimator, ``|estimate - truth| / MCSE`` must be
like ``|N(0, 1)|``: the row gives the fraction beyond 2 (stated 0.0455).  Its "power" is that of
the suite's test (both fractions beyond 1 and 2 MCSE inside binomial bounds of tail 1e-4, N
seeds) against the same MCSE inflated 1.5x: the probability that Binomial(N, p) leaves the
bounds, with p the fraction beyond 1 observed with the inflated MCSE.

Takes several minutes (it is not a test): compiles dominate; ``--quick`` uses fewer seeds (not
the figures to quote).  Rows: run ``--list`` for their names.
"""

from __future__ import annotations

import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from mcgen import testing  # noqa: E402
from tests import test_exact_invariance as tei  # noqa: E402
from tests import test_geweke as tg  # noqa: E402
from tests import test_sbc as ts  # noqa: E402
from tests import test_sbc_models as tsm  # noqa: E402
from tests import test_testing_calibration as tc  # noqa: E402
from tests.joint_gaussian import logdensity, prior, simulate  # noqa: E402

QUICK = "--quick" in sys.argv
N_CAL = 60 if QUICK else 200  # calibration seeds (>= 200 for the quoted figures)
N_POW = 20 if QUICK else 100  # power seeds


def interval(k: int, n: int) -> str:
    ci = stats.binomtest(k, n).proportion_ci(method="exact")
    return f"{k}/{n} = {k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def rate(fails) -> tuple[int, int]:
    fails = list(fails)
    return int(sum(fails)), len(fails)


def row(helper, stated, cal, bias, power):
    return {"helper": helper, "stated": stated, "cal": interval(*cal), "bias": bias, "power": interval(*power)}


# ----------------------------------------------------------------------------- the rows


def check_moments():
    x = tc._iid_chains(np.random.default_rng(10), 2 * N_CAL)
    cal = rate(not testing.check_moments(x[s], np.zeros(3), np.ones(3), z=2.0).passed for s in range(2 * N_CAL))
    out = []
    stated = f"{1 - (1 - 2 * stats.norm.sf(2.0)) ** 6:.4f} (z=2, 6 z-scores)"
    for name, shift, sd in [
        ("mean -0.15 sd", -0.15, 1.0),
        ("mean +0.15 sd", 0.15, 1.0),
        ("var x0.8", 0.0, np.sqrt(0.8)),
        ("var x1.2", 0.0, np.sqrt(1.2)),
    ]:
        xb = tc._iid_chains(np.random.default_rng(11), N_POW, shift, sd)
        power = rate(not testing.check_moments(xb[s], np.zeros(3), np.ones(3)).passed for s in range(N_POW))
        out.append(row("check_moments", stated, cal, f"{name}, 2000 draws (z=4)", power))
    return out


def mcse_row(helper: str, zs: np.ndarray, suite_n: int = 300):
    """zs: |z| over seeds (flat).  Calibration: fraction beyond 2; power of the suite's test (its
    ``suite_n`` z-scores) against the MCSE inflated 1.5x."""
    n = zs.size
    p_inflated = float(np.mean(zs / 1.5 > 1))
    lo, hi = tc.binomial_bounds(suite_n, 2 * stats.norm.sf(1))
    # the |z| > 1 count alone (the |z| > 2 bound only adds power)
    power = stats.binom.cdf(lo - 1, suite_n, p_inflated) + stats.binom.sf(hi, suite_n, p_inflated)
    bounds = [tc.binomial_bounds(n, 2 * stats.norm.sf(c)) for c in (1, 2)]
    within = all(b[0] <= int(np.sum(zs > c)) <= b[1] for b, c in zip(bounds, (1, 2)))
    r = row(helper, "0.0455 (|z| > 2)", (int(np.sum(zs > 2)), n), "MCSE x1.5", (0, 1))
    r["power"] = f"{power:.3f} (|z|>1 rate {p_inflated:.3f}; bounds hold unbiased: {within})"
    return [r]


def mcmc_mcse():
    zs = []
    for block in range(5):  # cheap: 5 x N_CAL seeds, in blocks (memory)
        x = tc._ar1_chains(np.random.default_rng(20 + block), N_CAL)
        zs += [abs(testing.check_moments(x[s, :, :, None], np.zeros(1)).mean_z[0]) for s in range(N_CAL)]
    return mcse_row("MCMC mean MCSE (ArviZ ESS; AR(1) rho 0.8)", np.array(zs))


def two_sample_ks():
    rng = np.random.default_rng(13)
    cal = rate(
        not testing.two_sample_test(rng.standard_normal((500, 2)), rng.standard_normal((500, 2)), alpha=0.1).passed
        for _ in range(2 * N_CAL)
    )
    power = rate(
        not testing.two_sample_test(rng.standard_normal((500, 2)) + [0.4, 0.0], rng.standard_normal((500, 2))).passed
        for _ in range(N_POW)
    )
    return [row("two_sample_test (ks)", "0.0975 (alpha 0.1, 2 coords)", cal, "shift 0.4 sd, 500 draws", power)]


def two_sample_energy():
    rng = np.random.default_rng(14)
    cal = rate(
        not testing.two_sample_test(
            rng.standard_normal((30, 2)),
            rng.standard_normal((30, 2)),
            method="energy",
            alpha=0.1,
            num_permutations=49,
            seed=s,
        ).passed
        for s in range(N_CAL)
    )
    cov = np.array([[1.0, 0.95], [0.95, 1.0]])
    power = rate(
        not testing.two_sample_test(
            rng.multivariate_normal(np.zeros(2), cov, 150),
            rng.standard_normal((150, 2)),
            method="energy",
            alpha=0.05,
            num_permutations=49,
            seed=s,
        ).passed
        for s in range(N_POW // 2)
    )
    return [
        row("two_sample_test (energy)", "0.1 (exact permutation p)", cal, "corr 0.95 vs 0, 150 draws (a 0.05)", power)
    ]


def check_invariance():
    cal = rate(
        not testing.check_invariance(
            tc.EXACT_AR1, tc._std_normal_1d, tc._exact_1d, num_chains=400, num_steps=3, seed=s, alpha=0.1, z=10.0
        ).passed
        for s in range(N_CAL)
    )
    power = rate(
        not testing.check_invariance(tc.BIASED_AR1, tc._std_normal_1d, tc._exact_1d, num_steps=3, seed=s).passed
        for s in range(N_POW)
    )
    return [row("check_invariance", "0.1 (KS only, alpha 0.1)", cal, "AR(1) innovation x1.3 (var 1.33)", power)]


def rank_uniformity():
    ranks = ts._exact_ranks(np.random.default_rng(15), N_CAL, 200)
    cal = rate(not testing.SBCReport(r, ts.L, testing.rank_uniformity(r, ts.L), 0.1, ["a", "b"]).passed for r in ranks)
    out = []
    for name, sdf, shift in [("sd x0.7", 0.7, 0.0), ("sd x1.6", 1.6, 0.0), ("shift 0.5 sd", 1.0, 0.5)]:
        rb = ts._exact_ranks(np.random.default_rng(16), N_POW, 200, sdf, shift)
        power = rate(
            not testing.SBCReport(r, ts.L, testing.rank_uniformity(r, ts.L), 1e-3, ["a", "b"]).passed for r in rb
        )
        out.append(row("rank_uniformity / SBCReport", "0.0975 (alpha 0.1, 2 coords)", cal, f"posterior {name}", power))
    return out


def sbc():
    cal = rate(not tc._sbc(tc.EXACT_POSTERIOR, 1000 + s, alpha=0.1).passed for s in range(N_CAL))
    out = []
    for beta in (0.4, 2.5):
        bad = tc.tempered(tc.EXACT_POSTERIOR, beta)
        power = rate(not tc._sbc(bad, 2000 + s).passed for s in range(N_POW))
        out.append(
            row(
                "sbc (exact kernel)",
                "0.0975 (alpha 0.1, 2 coords)",
                cal,
                f"posterior^{beta} (sd x{beta**-0.5:.2f})",
                power,
            )
        )
    return out


def _sbc_direct_groups(factor: float, num_groups: int, alpha: float, seed0: int, per_call: int = 20):
    """Decisions of `sbc_direct` on `num_groups` independent sets of 200 simulations: each call runs
    ``per_call`` sets at once (one compile) and each set is judged by the helper's own rank test."""
    post = tsm.importance(factor)
    fails = []
    for c in range(-(-num_groups // per_call)):
        k = min(per_call, num_groups - c * per_call)
        rep = testing.sbc_direct(
            post, tsm.normal_prior, tsm.normal_simulate, num_simulations=200 * k, num_draws=19, seed=seed0 + c
        )
        for g in range(k):
            r = rep.ranks[200 * g : 200 * (g + 1)]
            fails.append(not testing.SBCReport(r, 19, testing.rank_uniformity(r, 19), alpha, rep.names).passed)
    return rate(fails)


def sbc_direct():
    cal = _sbc_direct_groups(1.0, N_CAL, 0.1, 3000)
    power = _sbc_direct_groups(2.0, N_POW, 1e-3, 4000)
    weighted = [
        row("sbc_direct (importance, 4096 draws)", "0.0975 (alpha 0.1, 2 coords)", cal, "log weights x2", power)
    ]
    rng = np.random.default_rng(17)
    cal = rate(not tc._weighted_sbc(rng, 1.0, 0.1).passed for _ in range(N_CAL))
    power = rate(not tc._weighted_sbc(rng, 3.0, 1e-3).passed for _ in range(N_POW))
    weighted.append(
        row(
            "sbc_direct weighted ranks (400 draws)",
            "0.0975 (alpha 0.1, 2 coords)",
            cal,
            "log weights x3 (sd x0.71)",
            power,
        )
    )
    return weighted


def geweke():
    cal = rate(
        not testing.geweke(
            tg.MALA, prior, simulate, logdensity, num_chains=100, num_steps=40, num_marginal=5000, seed=s, alpha=0.1
        ).passed
        for s in range(N_CAL)
    )
    bad = tg.tempered(tg.MALA, 0.7)
    power = rate(not testing.geweke(bad, prior, simulate, logdensity, seed=s).passed for s in range(N_POW // 2))
    stated = f"{1 - 0.975**4:.4f} (alpha 0.1, 4 stats)"
    return [row("geweke (MALA)", stated, cal, "posterior^0.7 (defaults)", power)]


def exact_invariance():
    cal = rate(
        testing.exact_invariance_test(
            tei.EXACT, tei.std_normal, tei.exact, num_chains=300, max_batches=3, alpha=0.2, seed=s
        ).rejected
        for s in range(N_CAL)
    )
    power = rate(
        testing.exact_invariance_test(tei.BIASED, tei.std_normal, tei.exact, seed=s).rejected for s in range(N_POW // 2)
    )
    stated = f"{1 - 0.9 * 0.95 * 0.975:.4f} (alpha 0.2, 3 batches)"
    return [row("exact_invariance_test", stated, cal, "AR(1) innovation x1.3, 1 step (defaults)", power)]


def is_mcse():
    return mcse_row("importance log_normalizer MCSE", tc._log_normalizer_z_scores(N_CAL, seed=5))


def snis_mcse():
    zs = tc._snis_z_scores(N_CAL, seed=6)
    return mcse_row("SNIS expectation MCSE E[x]", zs[:, 0]) + mcse_row("SNIS expectation MCSE E[x^2]", zs[:, 1])


def bayesnet_mcse():
    out = []
    for method, evidence in [
        ("forward", None),
        ("rejection", {"smoke": "yes"}),
        ("likelihood_weighting", {"xray": "yes", "smoke": "no"}),
    ]:
        out += mcse_row(f"bayesnet query MCSE ({method})", tc._bayesnet_z_scores(method, evidence, N_CAL // 2 + 50))
    return out


ROWS = {
    "check_moments": check_moments,
    "mcmc_mcse": mcmc_mcse,
    "two_sample_ks": two_sample_ks,
    "two_sample_energy": two_sample_energy,
    "check_invariance": check_invariance,
    "rank_uniformity": rank_uniformity,
    "sbc": sbc,
    "sbc_direct": sbc_direct,
    "geweke": geweke,
    "exact_invariance": exact_invariance,
    "is_mcse": is_mcse,
    "snis_mcse": snis_mcse,
    "bayesnet_mcse": bayesnet_mcse,
}


def main(argv: list[str]) -> None:
    if "--list" in argv:
        print("\n".join(ROWS))
        return
    names = [a for a in argv if not a.startswith("--")] or list(ROWS)
    print(f"jax {jax.__version__}, {'quick' if QUICK else 'full'} run: {N_CAL} calibration seeds, {N_POW} power seeds")
    print("| helper | stated false-alarm rate | observed [95% CI] | planted bias | observed power [95% CI] | wall s |")
    print("|---|---|---|---|---|---|")
    for name in names:
        start = time.perf_counter()
        rows = ROWS[name]()
        wall = time.perf_counter() - start
        for r in rows:
            print(
                f"| {r['helper']} | {r['stated']} | {r['cal']} | {r['bias']} | {r['power']} | {wall:.0f} |", flush=True
            )


if __name__ == "__main__":
    main(sys.argv[1:])
