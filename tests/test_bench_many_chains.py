"""The scoring of ``benchmarks/bench_many_chains.py``: the z of the second moments and R-hat.

Known answers: independent Gaussian draws with the truth's moments score |z| of a few units;
an ensemble that has not spread to the target's scales (draws near uniform starts in
[-2, 2], as a sampler that has barely moved) scores a huge |z| of the second moments while
its z of the means stays small, which is what the benchmark's extra column is for.
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
B = pytest.importorskip("bench_many_chains")


def _fake_gym_target(mean, sd):
    gym = SimpleNamespace(
        constrain_flat=lambda z: np.asarray(z),  # identity map to the constrained space
        truth_mean=np.asarray(mean, np.float64),
        truth_sd=np.asarray(sd, np.float64),
    )
    return SimpleNamespace(gym=gym, name="gym_fake")


def test_second_moment_z_known_answer():
    rng = np.random.default_rng(0)
    mean, sd = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 3.0, 0.5, 20.0])
    target = _fake_gym_target(mean, sd)
    draws = mean + sd * rng.standard_normal((64, 50, 4))
    z = B.gym_second_moment_z(target, draws)
    assert z < 4.0  # Bonferroni 1% over 4 coordinates is 3.0; a margin for the MCSE estimate

    # chains that never left uniform starts in [-2, 2]: the means look right, the scales do not
    stuck = rng.uniform(-2.0, 2.0, (64, 1, 4)) + 0.01 * rng.standard_normal((64, 50, 4))
    assert B.gym_second_moment_z(target, stuck) > 50.0


def test_unconverged_peer_is_flagged():
    row = {"ess": 1000.0, "ess_per_grad": 0.01, "ess_s": 100.0, "rhat": 1.01, "z": 1.0, "z2": 1.0, "threshold": 3.9}
    rows = {
        (8, "t", "mcgen_chees"): row,
        (8, "t", "blackjax_chees"): dict(row, ess_s=400.0, rhat=3.6),
    }
    _, ratio = B._ratios(rows, 8, "t", "mcgen_chees", ["mcgen_chees", "blackjax_chees"])
    assert ratio.startswith("0.25") and "R-hat 3.60" in ratio
    rows[(8, "t", "blackjax_chees")]["rhat"] = 1.02
    assert B._ratios(rows, 8, "t", "mcgen_chees", ["mcgen_chees", "blackjax_chees"])[1] == "0.25"


def test_convergence_rule():
    ok = {"rhat": 1.26, "z": 1.5, "z2": 2.0, "threshold": 3.9}  # autocorrelated (tau ~ 15 draws), within the truth
    assert B.converged(ok)
    assert not B.converged(dict(ok, rhat=3.4))  # an ensemble stuck near its starts
    assert not B.converged(dict(ok, z2=12.7))  # second moments off the truth
    assert not B.converged(dict(ok, z=4.5))  # means off the truth
    assert not B.converged(dict(ok, rhat=1.05, z2=4.7))  # a low R-hat does not excuse a miss
    assert not B.converged(dict(ok, z=float("nan"), z2=float("nan")))  # no known answer: R-hat alone
    assert B.converged(dict(ok, rhat=1.05, z=float("nan"), z2=float("nan")))


def test_staged_gradients_count_each_iteration_at_its_stage_size():
    # 64 chains run in stages of 64, 24 and 8 (mcgen.kernels._trajectory._stage_sizes, on the
    # CPU): a draw where one tree takes 100 leaves and the others 1 pays 64 for the first
    # iteration and 8 for each of the 99 others; with 9 trees of 100 leaves, 24 for those; with
    # 30, 64 for all 100 iterations.
    import jax.numpy as jnp

    def ld(x):
        return -0.5 * jnp.sum(x**2)

    x0 = jnp.zeros(3)

    def draw(num_long):
        leaves = np.ones((64, 1), int)
        leaves[:num_long] = 100
        return leaves

    assert B.staged_gradients(draw(1), 64, ld, x0) == 64 + 99 * 8
    assert B.staged_gradients(draw(9), 64, ld, x0) == 64 + 99 * 24
    assert B.staged_gradients(draw(30), 64, ld, x0) == 64 * 100
    both = np.concatenate([draw(1), draw(9)], axis=1)
    assert B.staged_gradients(both, 64, ld, x0) == 64 + 99 * 8 + 64 + 99 * 24
    # below 64 chains one stage: chains x the longest tree
    assert B.staged_gradients(draw(1)[:32], 32, ld, x0) == 32 * 100


# ----------------------------------------------------------------------------- time to accuracy (b^2)


def _exact_draws(rng, chains, draws, scales, factor=1.0):
    return factor * scales * rng.standard_normal((chains, draws, scales.size))


def test_b2_of_exact_draws_is_one_over_the_sample_size():
    # x_i ~ N(0, s_i^2): E[x_i^2] = s_i^2, Var[x_i^2] = 2 s_i^4.  After n draws of C independent
    # chains, each b_i^2 is chi^2_1 / (C n), so the average over d coordinates is 1 / (C n) with a
    # relative sd of sqrt(2 / d) (0.071 for d = 400); the b^2 < 0.01 crossing is at n = 1 / (0.01 C).
    rng = np.random.default_rng(1)
    chains, draws, d = 4, 400, 400
    scales = np.logspace(-2, 1, d)
    x = _exact_draws(rng, chains, draws, scales)
    avg, mx = B.b2_trace(x**2, scales**2, 2.0 * scales**4)
    assert avg.shape == mx.shape == (draws,)
    for n in (1, 10, 25, 100, 400):
        assert abs(avg[n - 1] * chains * n - 1.0) < 4.0 * np.sqrt(2.0 / d), n
    assert np.all(mx >= avg)
    n_cross = B.crossing(avg)  # 1 / (0.01 * 4) = 25; within +-25% at 4 sd of the fluctuation
    assert 19 <= n_cross <= 32
    # the max over 400 coordinates of chi^2_1 / (C n) is about 11 / (C n): it crosses about 11x later
    assert B.crossing(mx) > 5 * n_cross


def test_b2_of_biased_draws_never_crosses():
    # draws 1.2 times too wide: E[x^2] is 1.44 s^2, b_i^2 -> 0.44^2 / 2 = 0.0968 > 0.01 for good
    rng = np.random.default_rng(2)
    scales = np.logspace(-1, 0, 50)
    x = _exact_draws(rng, 64, 200, scales, factor=1.2)
    avg, mx = B.b2_trace(x**2, scales**2, 2.0 * scales**4)
    assert B.crossing(avg) is None and B.crossing(mx) is None
    assert abs(avg[-1] - 0.44**2 / 2) < 0.01


def test_crossing_counts_from_the_last_excursion_above():
    # as the MCLMC papers' find_crossing: a dip below the cutoff that does not last is not a crossing
    assert B.crossing(np.array([0.5, 0.005, 0.02, 0.009, 0.008])) == 4
    assert B.crossing(np.array([0.005, 0.004, 0.003])) == 1
    assert B.crossing(np.array([0.5, 0.005, 0.02])) is None
    assert B.crossing(np.array([0.5, np.nan, 0.005])) == 3  # a NaN counts as above


def test_cost_to_the_crossing():
    # warmup 1000 gradients and 2 s; sampling draws of 10, 30 and 60 gradients in 1 s: the first
    # two draws cost 40 gradients and 40% of the sampling seconds
    grads, seconds = B.cost_to(2, 1000, np.array([10, 30, 60]), 2.0, 1.0)
    assert grads == 1040 and seconds == pytest.approx(2.4)
    assert B.cost_to(3, 1000, np.array([10, 30, 60]), 2.0, 1.0) == (1100.0, pytest.approx(3.0))


def test_accuracy_of_a_run_with_exact_draws():
    # the toy Gaussian's exact truth, 16 chains of exact draws: b^2 ~ 1 / (16 n) crosses at n ~ 6-7
    rng = np.random.default_rng(3)
    target = SimpleNamespace(name="gaussian_100", gym=None)
    scales = np.logspace(-2, 0, 100)
    x = _exact_draws(rng, 16, 40, scales)
    paid = np.arange(1, 41) * 16  # per draw
    cost = dict(warmup_paid=5000, warmup_computed=3000, warmup_s=3.0, paid=paid, computed=paid // 2, sample_s=2.0)
    r = B.accuracy(target, x, cost)
    n = int(r["n_b2"])
    assert n == B.crossing(B.b2_trace(x**2, scales**2, 2 * scales**4)[0]) and 4 <= n <= 10
    assert r["truth_exact"] == 1.0 and r["b2"] == pytest.approx(1 / 640, rel=0.5)
    assert r["paid_b2"] == 5000 + paid[:n].sum() and r["computed_b2"] == 3000 + (paid // 2)[:n].sum()
    assert r["s_b2"] == pytest.approx(3.0 + 2.0 * paid[:n].sum() / paid.sum())
    # a Gym-style truth (mean and sd only): Gaussian Var[x^2], flagged approximate
    gym = _fake_gym_target(np.zeros(100), scales)
    gym.gym.constrain_flat = lambda z: z
    r = B.accuracy(gym, x, cost)
    assert r["truth_exact"] == 0.0 and r["n_b2"] == n
    # no known answer: NaN throughout
    assert np.isnan(B.accuracy(SimpleNamespace(name="other", gym=None), x, cost)["n_b2"])


def test_counting_warmup_records_each_steps_gradients():
    import jax.numpy as jnp

    import mcgen as mc

    def step(key, state, logdensity_fn):  # a kernel whose t-th step spends t + 2 gradients
        return state + 1, SimpleNamespace(num_grad_evals=state + 2)

    def factory(num_steps):
        return mc.Warmup(lambda s: SimpleNamespace(state=s), lambda k, ws, f: _inner(k, ws, f), lambda ws: ws.state)

    def _inner(key, ws, f):
        new, info = step(key, ws.state, f)
        return SimpleNamespace(state=new), info

    kernel = mc.Kernel(lambda x, f: jnp.asarray(0, jnp.int32), step, factory)
    counted = B.counting_warmup(kernel)
    warm = counted.warmup(5)
    ws = warm.init(kernel.init(None, None))
    for _ in range(5):
        ws, _ = warm.step(None, ws, None)
    assert list(np.asarray(ws.trace.num_grad_evals)) == [2, 3, 4, 5, 6]
    assert int(warm.finalize(ws)) == 5
    assert B.counting_warmup(kernel) is counted  # memoized: one compiled program per kernel
