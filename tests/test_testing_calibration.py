"""Tests of the tests: every statistical helper of ``mcgen.testing``, and every error bar mcgen
reports, is calibrated (an exact sampler fails at the stated rate, within binomial bounds,
over hundreds of seeds) and has power (a sampler with a planted bias of stated size fails with
probability at least 0.9).

A helper that became lenient (a z-bound that lost its absolute value, an invariance check
compared against dependent draws, an inflated error bar) passes every sampler; these tests do
not.  Exact samplers are vectorized (iid numpy draws, or one ``vmap`` over seeds), so the
whole module runs in well under a minute.  Seeds fixed.
"""

import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import mcgen as mc
from mcgen import testing
from mcgen.testing.sbc import _ranks
from mcgen.types import Kernel
from tests.joint_gaussian import logdensity, prior, simulate
from tests.test_geweke import tempered

TAIL = 1e-4  # each binomial bound is exceeded by a calibrated helper with probability < 1e-4


def binomial_bounds(n: int, p: float) -> tuple[int, int]:
    """Counts outside [lo, hi] have probability < TAIL each under Binomial(n, p)."""
    return int(stats.binom.ppf(TAIL, n, p)), int(stats.binom.isf(TAIL, n, p))


def assert_rate(count: int, n: int, p: float, what: str):
    lo, hi = binomial_bounds(n, p)
    assert lo <= count <= hi, f"{what}: {count} of {n} (stated rate {p:.4f}: expected {lo}..{hi})"


# ----------------------------------------------------------------------------- check_moments


def _iid_chains(rng, n_seeds, mean_shift=0.0, sd=1.0, chains=4):
    """Exact iid N(0, 1) draws shaped (seeds, chains, draws=500, d=3), optionally biased in coordinate 0."""
    x = rng.standard_normal((n_seeds, chains, 500, 3))
    x[..., 0] = mean_shift + sd * x[..., 0]
    return x


def test_check_moments_false_alarm_rate_is_the_stated_one():
    # z = 2 on 6 independent z-scores (3 means, 3 variances): stated rate 1 - (1 - 2 Phi(-2))^6.
    # A one-sided check (z without absolute value) would fail at about half that rate.
    n = 400
    x = _iid_chains(np.random.default_rng(0), n)
    fails = sum(not testing.check_moments(x[s], np.zeros(3), np.ones(3), z=2.0).passed for s in range(n))
    assert_rate(fails, n, 1 - (1 - 2 * stats.norm.sf(2.0)) ** 6, "check_moments false alarms")


@pytest.mark.parametrize(
    "shift, sd",
    [(-0.15, 1.0), (0.15, 1.0), (0.0, np.sqrt(0.8)), (0.0, np.sqrt(1.2))],
    ids=["mean_low", "mean_high", "var_low", "var_high"],
)
def test_check_moments_power_in_both_directions(shift, sd):
    # 2000 draws: a mean bias of 0.15 sd is 6.7 MCSE, a 20% variance error 6.3: both directions
    # must fail the default z = 4 check at least 90% of the time.
    n = 40
    x = _iid_chains(np.random.default_rng(1), n, shift, sd)
    fails = sum(not testing.check_moments(x[s], np.zeros(3), np.ones(3)).passed for s in range(n))
    assert fails >= 0.9 * n, f"power {fails}/{n}"
    with pytest.raises(AssertionError):
        testing.assert_moments(x[0], np.zeros(3), np.ones(3))


def test_check_moments_across_runs_false_alarm_rate_is_the_stated_one():
    # 16 one-chain runs of 500 draws, runs=16: Student-t statistics with 15 dof, reported as normal deviates of the same tail
    # probability; at z = 2 the stated rate is the normal one.  Comparing the raw t with 2
    # would fail about 1.3 times as often (327 against 244 of 1000).
    n = 1000
    x = _iid_chains(np.random.default_rng(2), n, chains=16)
    fails = sum(not testing.check_moments(x[s], np.zeros(3), np.ones(3), z=2.0, runs=16).passed for s in range(n))
    assert_rate(fails, n, 1 - (1 - 2 * stats.norm.sf(2.0)) ** 6, "check_moments(runs=16) false alarms")


@pytest.mark.parametrize(
    "shift, sd",
    [(-0.11, 1.0), (0.11, 1.0), (0.0, np.sqrt(0.8)), (0.0, np.sqrt(1.2))],
    ids=["mean_low", "mean_high", "var_low", "var_high"],
)
def test_check_moments_across_runs_power_in_both_directions(shift, sd):
    # 8000 draws in 16 runs: a mean bias of 0.11 sd is 9.8 standard errors, a 20% variance error
    # 12.6; with 15 dof the z = 4 bound sits at |t| = 5.5.  Both must fail at least 90% of the time.
    n = 40
    x = _iid_chains(np.random.default_rng(3), n, shift, sd, chains=16)
    fails = sum(not testing.check_moments(x[s], np.zeros(3), np.ones(3), runs=16).passed for s in range(n))
    assert fails >= 0.9 * n, f"power {fails}/{n}"
    with pytest.raises(AssertionError):
        testing.assert_moments(x[0], np.zeros(3), np.ones(3), runs=16)


@pytest.mark.parametrize("runs", [1, 3, 2.0, True])
def test_check_moments_runs_must_split_the_chains(runs):
    x = _iid_chains(np.random.default_rng(4), 1, chains=16)[0]
    with pytest.raises(ValueError, match="runs"):
        testing.check_moments(x, np.zeros(3), np.ones(3), runs=runs)


# ----------------------------------------------------------------------------- two_sample_test


def test_two_sample_ks_false_alarm_rate():
    # Bonferroni over 2 independent coordinates at alpha = 0.1: rate 1 - (1 - 0.05)^2
    n, rng = 400, np.random.default_rng(2)
    fails = sum(
        not testing.two_sample_test(rng.standard_normal((500, 2)), rng.standard_normal((500, 2)), alpha=0.1).passed
        for _ in range(n)
    )
    assert_rate(fails, n, 1 - 0.95**2, "KS false alarms")


def test_two_sample_ks_power():
    # a location shift of 0.4 sd in one of two coordinates, 500 draws each, default alpha 1e-3
    n, rng = 40, np.random.default_rng(3)
    fails = sum(
        not testing.two_sample_test(rng.standard_normal((500, 2)) + [0.4, 0.0], rng.standard_normal((500, 2))).passed
        for _ in range(n)
    )
    assert fails >= 0.9 * n, f"power {fails}/{n}"


def test_two_sample_energy_false_alarm_rate_and_power():
    # the permutation p-value (count + 1) / (B + 1) is exact: with B = 49 and alpha = 0.1 a
    # correct sampler fails with probability 5 / 50 = 0.1
    n, rng = 200, np.random.default_rng(4)
    fails = sum(
        not testing.two_sample_test(
            rng.standard_normal((30, 2)),
            rng.standard_normal((30, 2)),
            method="energy",
            alpha=0.1,
            num_permutations=49,
            seed=s,
        ).passed
        for s in range(n)
    )
    assert_rate(fails, n, 0.1, "energy false alarms")
    # power: correlation 0.95 against independence (equal marginals: KS cannot see it), 150 draws
    cov = np.array([[1.0, 0.95], [0.95, 1.0]])
    fails = sum(
        not testing.two_sample_test(
            rng.multivariate_normal(np.zeros(2), cov, 150),
            rng.standard_normal((150, 2)),
            method="energy",
            alpha=0.05,
            num_permutations=49,
            seed=s,
        ).passed
        for s in range(20)
    )
    assert fails >= 18, f"energy power {fails}/20"


# ----------------------------------------------------------------------------- check_invariance


def _ar1_kernel(rho: float, innovation_scale: float = 1.0) -> Kernel:
    """x' = rho x + sqrt(1 - rho^2) s xi: exactly N(0, 1)-invariant for s = 1, and strongly
    dependent on its start (a slowly mixing exact kernel)."""
    from typing import NamedTuple

    class S(NamedTuple):
        position: jax.Array
        logdensity: jax.Array

    def init(position, logdensity_fn):
        return S(position, logdensity_fn(position))

    def step(key, state, logdensity_fn):
        x = rho * state.position + np.sqrt(1 - rho**2) * innovation_scale * jax.random.normal(key, (1,))
        return S(x, logdensity_fn(x)), None

    return Kernel(init, step)


def _std_normal_1d(x):
    return -0.5 * jnp.sum(x**2)


def _exact_1d(key, n):
    return jax.random.normal(key, (n, 1))


EXACT_AR1 = _ar1_kernel(0.9)
BIASED_AR1 = _ar1_kernel(0.9, 1.3)


def test_check_invariance_false_alarm_rate_with_a_slowly_mixing_exact_kernel():
    # KS only (z = 10 disables the moment bound), alpha = 0.1 on one coordinate.  After 3 steps
    # of the AR(1) kernel the chains are correlated 0.73 with their starts: a check that
    # compared them with their own starting draws (dependent) instead of fresh exact ones
    # would almost never fail.
    n = 200
    fails = sum(
        not testing.check_invariance(
            EXACT_AR1, _std_normal_1d, _exact_1d, num_chains=400, num_steps=3, seed=s, alpha=0.1, z=10.0
        ).passed
        for s in range(n)
    )
    assert_rate(fails, n, 0.1, "check_invariance false alarms")


def test_check_invariance_power():
    # innovation 1.3x too wide: after 3 steps the variance is 1.33 instead of 1 (defaults:
    # alpha 1e-3, z 4, 4000 chains)
    n = 20
    fails = sum(
        not testing.check_invariance(BIASED_AR1, _std_normal_1d, _exact_1d, num_steps=3, seed=s).passed
        for s in range(n)
    )
    assert fails >= 0.9 * n, f"power {fails}/{n}"


# ----------------------------------------------------------------------------- reported error bars


def _log_normalizer_z_scores(n: int, seed: int = 0) -> np.ndarray:
    """|estimate - log Z| / MCSE of importance sampling's log-normalizer over ``n`` seeds: Z = 3,
    the target 3 N(1, 0.5^2), proposal N(0, 2^2) (finite weight variance), 2000 draws."""

    def log_target(x):
        return jnp.log(3.0) + dist.Normal(1.0, 0.5).log_prob(x)

    proposal = dist.Normal(0.0, 2.0)

    @jax.jit
    @jax.vmap
    def z_score(key):
        est = mc.importance_sample(key, log_target, proposal, 2000).log_normalizer()
        return (est.mean - jnp.log(3.0)) / est.mcse

    return np.abs(np.asarray(z_score(jax.random.split(jax.random.key(seed), n))))


def test_importance_sampling_log_normalizer_mcse_is_calibrated():
    # Over 300 seeds (estimate - log 3) / MCSE must behave like N(0, 1): the fractions beyond 1
    # and 2 MCSE within binomial bounds (an MCSE inflated 1.5x halves the first).
    n = 300
    zs = _log_normalizer_z_scores(n)
    assert_rate(int(np.sum(zs > 1)), n, 2 * stats.norm.sf(1), "log-normalizer |z| > 1")
    assert_rate(int(np.sum(zs > 2)), n, 2 * stats.norm.sf(2), "log-normalizer |z| > 2")


def _snis_z_scores(n: int, seed: int = 1) -> np.ndarray:
    """|estimate - truth| / MCSE ``(n, 2)`` of self-normalized E[x] = 1 and E[x^2] = 1.25 under
    N(1, 0.5^2), proposal N(0, 2^2), 2000 draws, over ``n`` seeds."""

    def log_target(x):
        return dist.Normal(1.0, 0.5).log_prob(x)

    proposal = dist.Normal(0.0, 2.0)

    @jax.jit
    @jax.vmap
    def z_scores(key):
        ws = mc.importance_sample(key, log_target, proposal, 2000)
        est = ws.expectation(lambda x: jnp.stack([x, x**2]))
        return (est.mean - jnp.array([1.0, 1.25])) / est.mcse

    return np.abs(np.asarray(z_scores(jax.random.split(jax.random.key(seed), n))))


def test_snis_expectation_mcse_is_calibrated():
    # Over 300 seeds (estimate - truth) / MCSE of each behaves like N(0, 1) (the delta-method
    # MCSE centers f at the estimate; an uncentered one is several times too large)
    n = 300
    zs = _snis_z_scores(n)
    for j, what in enumerate(["E[x]", "E[x^2]"]):
        assert_rate(int(np.sum(zs[:, j] > 1)), n, 2 * stats.norm.sf(1), f"SNIS {what} |z| > 1")
        assert_rate(int(np.sum(zs[:, j] > 2)), n, 2 * stats.norm.sf(2), f"SNIS {what} |z| > 2")


@pytest.mark.parametrize(
    "method, evidence",
    [("forward", None), ("rejection", {"smoke": "yes"}), ("likelihood_weighting", {"xray": "yes", "smoke": "no"})],
)
def test_bayesnet_query_mcse_is_calibrated(method, evidence):
    # asia: P(lung | evidence) and P(bronc | evidence) against variable elimination; over 150
    # seeds of 2500 draws the z-scores (estimate - exact) / MCSE behave like N(0, 1)
    zs = _bayesnet_z_scores(method, evidence, 150)
    n = zs.size  # two variables per seed: nearly independent (lung and bronc are d-separated given smoke)
    assert_rate(int(np.sum(zs > 1)), n, 2 * stats.norm.sf(1), f"{method} |z| > 1")
    assert_rate(int(np.sum(zs > 2)), n, 2 * stats.norm.sf(2), f"{method} |z| > 2")


def _bayesnet_z_scores(method: str, evidence: dict | None, n: int) -> np.ndarray:
    """|estimate - exact| / MCSE of P(lung | evidence) and P(bronc | evidence) on asia, ``n`` seeds of 2500 draws."""
    from mcgen import bayesnet

    bn = bayesnet.read_bif(pathlib.Path(__file__).parent / "data" / "asia.bif")
    exact = bayesnet.query(bn, ["lung", "bronc"], evidence, method="exact")
    zs = []
    for s in range(n):
        res = bayesnet.query(bn, ["lung", "bronc"], evidence, method=method, num_samples=2500, seed=s)
        for v in ("lung", "bronc"):
            zs.append((res.probs[v][0] - exact.probs[v][0]) / res.stderr[v][0])
    return np.abs(np.array(zs))


def _ar1_chains(rng, n_seeds: int, rho: float = 0.8) -> np.ndarray:
    """Exact stationary AR(1) chains ``(seeds, 4, 1000)`` with N(0, 1) marginals."""
    e = rng.standard_normal((n_seeds, 4, 1000))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]
    for t in range(1, 1000):  # (a recursion over time; vectorized over seeds and chains)
        x[..., t] = rho * x[..., t - 1] + np.sqrt(1 - rho**2) * e[..., t]
    return x


def test_mcmc_mean_mcse_is_calibrated_on_autocorrelated_chains():
    # the MCSE behind every moment check (ESS-based, ArviZ) on the draws it is used for:
    # exact AR(1) chains x_t = 0.8 x_{t-1} + 0.6 e_t started at stationarity (N(0, 1) marginal,
    # integrated autocorrelation time 9), 4 chains of 1000 draws, 300 seeds.  z = mean / MCSE
    # must behave like N(0, 1): an iid MCSE (sd / sqrt(N), 3x too small) or one inflated 1.5x
    # fails the bounds.
    n = 300
    x = _ar1_chains(np.random.default_rng(5), n)
    zs = np.abs([testing.check_moments(x[s, :, :, None], np.zeros(1)).mean_z[0] for s in range(n)])
    assert_rate(int(np.sum(zs > 1)), n, 2 * stats.norm.sf(1), "MCMC mean |z| > 1")
    assert_rate(int(np.sum(zs > 2)), n, 2 * stats.norm.sf(2), "MCMC mean |z| > 2")


# ----------------------------------------------------------------------------- SBC


class _Position(NamedTuple):
    position: jax.Array
    logdensity: jax.Array


def _exact_gaussian_kernel(rho: float = 0.0) -> Kernel:
    """Each step is an independent exact draw from a Gaussian target, whatever the state: the
    mean and precision come from the gradient and Hessian of the log-density (one Newton step).
    ``rho > 0``: an exact but slowly mixing kernel, ``x' = m + rho (x - m) + sqrt(1 - rho^2) e``
    (autocorrelation ``rho`` per step)."""

    def init(x, f):
        return _Position(x, f(x))

    def step(key, state, f):
        x = state.position
        chol = jnp.linalg.cholesky(-jax.hessian(f)(x))
        mean = x + jax.scipy.linalg.cho_solve((chol, True), jax.grad(f)(x))
        noise = jax.scipy.linalg.solve_triangular(chol.T, jax.random.normal(key, x.shape), lower=False)
        draw = mean + rho * (x - mean) + np.sqrt(1 - rho**2) * noise
        return _Position(draw, f(draw)), None

    return Kernel(init, step)


EXACT_POSTERIOR = _exact_gaussian_kernel()


def _sbc(kernel, seed, alpha=1e-3):
    # tests/joint_gaussian.py: theta ~ N(0, I_2), 5 observations; 200 data sets, 19 draws each
    # (20 bins of 10 expected ranks); the exact kernel needs no warmup and no thinning
    return testing.sbc(
        kernel,
        prior,
        simulate,
        logdensity,
        num_simulations=200,
        num_draws=19,
        thin=1,
        num_warmup=0,
        seed=seed,
        alpha=alpha,
    )


def test_sbc_false_alarm_rate_with_an_exact_kernel():
    # the whole of `sbc` (simulation, sampling, ranks, rank test) 200 times with an exact
    # posterior sampler at alpha 0.1, Bonferroni over 2 independent coordinates: stated rate
    # 1 - 0.95^2 (one compiled program for every seed)
    n = 200
    fails = sum(not _sbc(EXACT_POSTERIOR, s, alpha=0.1).passed for s in range(n))
    assert_rate(fails, n, 1 - 0.95**2, "sbc false alarms")


@pytest.mark.parametrize("beta", [0.4, 2.5], ids=["too_wide", "too_narrow"])
def test_sbc_power_against_a_tempered_posterior(beta):
    # the exact kernel on the posterior to the power beta: its sd is off by a factor 1.58
    # (too wide or too narrow); default alpha 1e-3, 200 data sets
    n = 30
    bad = tempered(EXACT_POSTERIOR, beta)
    fails = sum(not _sbc(bad, 100 + s).passed for s in range(n))
    assert fails >= 0.9 * n, f"power {fails}/{n}"


def test_sbc_thins_a_slowly_mixing_kernel():
    # an exact kernel with autocorrelation 0.9 per step, no warmup, thin 40 (lag correlation
    # 0.9^40 = 0.015): near-independent draws, calibrated ranks.  Without the thinning the
    # draws of a data set cluster around the chain's (prior) start and the ranks are far from uniform.
    rep = testing.sbc(
        SLOW_EXACT_POSTERIOR, prior, simulate, logdensity, num_simulations=200, num_draws=19, thin=40, num_warmup=0
    )
    assert rep.passed, str(rep)


SLOW_EXACT_POSTERIOR = _exact_gaussian_kernel(0.9)


def _weighted_sbc(rng, factor, alpha, num_sims=200, num_draws=400, L=19):
    """The ranking and decision of `sbc_direct` for weighted draws: theta ~ N(0, I_2), y ~ N(theta, I_2)
    (one observation), importance draws from the prior with log weights ``factor * log p(y | theta)``
    (1: the exact posterior, effective sample size about 180)."""
    theta = rng.standard_normal((num_sims, 2))
    y = theta + rng.standard_normal((num_sims, 2))
    draws = rng.standard_normal((num_sims, num_draws, 2))
    log_w = -0.5 * factor * np.sum((y[:, None] - draws) ** 2, axis=-1)
    ranks = _ranks(theta, draws, rng, log_w, L)
    return testing.SBCReport(ranks, L, testing.rank_uniformity(ranks, L), alpha, ["a", "b"])


def test_sbc_direct_weighted_ranks_false_alarm_rate_and_power():
    # self-normalized importance draws ranked by their weighted CDF (sbc_direct's path for
    # WeightedSamples): 200 seeds at alpha 0.1 fail at the stated 1 - 0.95^2; log weights
    # tripled (a posterior sd 0.71x the true one) fail at least 90% of the time at 1e-3
    rng = np.random.default_rng(6)
    n = 200
    fails = sum(not _weighted_sbc(rng, 1.0, 0.1).passed for _ in range(n))
    assert_rate(fails, n, 1 - 0.95**2, "weighted SBC false alarms")
    n = 30
    fails = sum(not _weighted_sbc(rng, 3.0, 1e-3).passed for _ in range(n))
    assert fails >= 0.9 * n, f"power {fails}/{n}"
