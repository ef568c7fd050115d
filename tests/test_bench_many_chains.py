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
