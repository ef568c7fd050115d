"""The per-chain diagnostics of ``benchmarks/bench_gym.py`` (``--per-chain``).

Known answers: on the 100-d Gaussian toy target (exact truth), four chains of independent
draws from the truth, one of them shifted by 3 standard deviations in one coordinate (a chain
stuck in another mode): the coordinate with the largest R-hat, listed first, must be that one,
with the stuck chain's mean near the shifted value and the others' near the truth; each chain's
step size, divergences and gradients per draw are printed as given.
"""

import re
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
G = pytest.importorskip("bench_gym")


def test_coordinate_names_follow_ravel_order():
    tree = {"b": np.zeros((2, 2)), "a": np.zeros(())}
    assert G._coordinate_names(tree) == ["['a']", "['b'][0, 0]", "['b'][0, 1]", "['b'][1, 0]", "['b'][1, 1]"]


def test_per_chain_finds_the_stuck_chain():
    target = G.make_target("toy:gaussian_100")
    rng = np.random.default_rng(0)
    draws = target.truth_mean + target.truth_sd * rng.standard_normal((4, 400, 100))
    stuck = 37
    draws[2, :, stuck] += 3.0 * target.truth_sd[stuck]
    chain = G._per_chain(np.array([0.1, 0.2, 0.3, 0.4]), np.zeros((4, 400), bool), np.full((4, 400), 7))
    chain["div"][1] = 5
    text = target.per_chain(draws.astype(np.float32), chain, coords=2)
    lines = text.splitlines()
    assert len(lines) == 1 + 4 + 2
    # the chain table: step size, divergences, gradients per draw as given
    assert lines[2].split()[:4] == ["1", "0.2", "5", "7.0"]
    # the worst coordinate first, with the stuck chain's mean 3 sd off and the others within 0.3 sd
    first = lines[5]
    assert first.split()[0] == f"x[{stuck}]"
    rhat = float(re.search(r"R-hat\s+([0-9.]+)", first).group(1))
    assert rhat > 1.3  # 3 sd between chain means with 400 draws each: R-hat about 1.5
    means = np.array(re.search(r"chain means\s+(.*?)\s+truth", first).group(1).split(), float)
    z = (means - target.truth_mean[stuck]) / target.truth_sd[stuck]
    assert abs(z[2] - 3.0) < 0.3 and np.all(np.abs(np.delete(z, 2)) < 0.3)


def test_chain_groups_score_each_group_of_four():
    """``bench_chain_groups.score_groups`` against known answers on the 100-d Gaussian toy
    target: a group of independent draws from the truth (1600 draws for 4000 gradients) has a
    minimum bulk ESS over the 100 coordinates a little under its draw count (0.25-0.45 per
    gradient) and stays within the truth; a group with one chain shifted by 3 sd in one
    coordinate has R-hat above 1.05; a group whose four chains are all shifted by 0.3 sd in one
    coordinate (z about 12) leaves the truth; a group whose coordinate 7 is an AR(1)
    chain (coefficient 0.9: ESS about 1/19 of the draws, 84) scores about a nineteenth as much."""
    C = pytest.importorskip("bench_chain_groups")
    target = G.make_target("toy:gaussian_100")
    rng = np.random.default_rng(1)
    iid = target.truth_mean + target.truth_sd * rng.standard_normal((4, 400, 100))
    shifted = target.truth_mean + target.truth_sd * rng.standard_normal((4, 400, 100))
    shifted[2, :, 7] += 3 * target.truth_sd[7]
    biased = target.truth_mean + target.truth_sd * rng.standard_normal((4, 400, 100))
    biased[:, :, 7] += 0.3 * target.truth_sd[7]
    noise = rng.standard_normal((4, 400, 100))
    ar = noise.copy()
    for t in range(1, 400):
        ar[:, t, 7] = 0.9 * ar[:, t - 1, 7] + np.sqrt(1 - 0.81) * noise[:, t, 7]
    ar = target.truth_mean + target.truth_sd * ar
    x = np.concatenate([iid, shifted, biased, ar])
    scores = C.score_groups(target, x, np.full(16, 1000.0))
    e = scores["ess_per_grad"]
    assert 250 < e[0] < 450, e
    assert list(scores["beyond"]) == [False, False, True, False]
    assert list(scores["high_rhat"]) == [False, True, False, False]
    assert 1 / 40 < e[3] / e[0] < 1 / 8, e
    assert list(scores["lost"]) == []  # the shifted chain is 3 sd off: not lost
    far = x.copy()
    far[13, :, 50] += 6 * target.truth_sd[50]
    lost = C.score_groups(target, far, np.full(16, 1000.0))["lost"]
    assert list(lost) == [13], lost
    line = C.line(
        "toy", "lib", dict(accept=0.8, eps=[0.1], div=np.zeros(16), grads=[1.0]), dict(scores, lost=lost), None
    )
    assert line.endswith("chains more than 5 sd from the truth 1 (chains 13)"), line
    # run_chains's after-run checks: R-hat above 1.01 (the shifted chain) and fewer than 100
    # effective draws per chain (the AR(1) coordinate: about 84 for 4 chains) warn; the group
    # whose chains are all biased alike passes them, a silent wrong answer; a divergence warns
    div = np.zeros(16)
    checked = C.score_groups(target, x, np.full(16, 1000.0), raw=x, div=div)
    assert list(checked["warned"]) == [False, True, False, True], checked["warned"]
    out = dict(accept=0.8, eps=[0.1], div=div, grads=[1.0])
    assert "beyond truth 1 (1 of them unwarned; 2 groups warned)" in C.line("toy", "lib", out, checked, None)
    div[9] = 1
    warned = C.score_groups(target, x, np.full(16, 1000.0), raw=x, div=div)["warned"]
    assert list(warned) == [False, True, True, True], warned
    # and an E-BFMI below 0.3 warns: energies that random-walk in one chain of the first group
    energy = rng.standard_normal((16, 400))
    div[9] = 0
    assert list(C.score_groups(target, x, np.full(16, 1000.0), raw=x, div=div, energy=energy)["warned"]) == [
        False,
        True,
        False,
        True,
    ]
    energy[1] = np.cumsum(energy[1])
    warned = C.score_groups(target, x, np.full(16, 1000.0), raw=x, div=div, energy=energy)["warned"]
    assert list(warned) == [True, True, False, True], warned
    # and a transition at the maximum tree depth warns: one in a chain of the third group
    max_depth = np.zeros((16, 400), bool)
    assert list(C.score_groups(target, x, np.full(16, 1000.0), raw=x, div=div, max_depth=max_depth)["warned"]) == [
        False,
        True,
        False,
        True,
    ]
    max_depth[10, 5] = True
    warned = C.score_groups(target, x, np.full(16, 1000.0), raw=x, div=div, max_depth=max_depth)["warned"]
    assert list(warned) == [False, True, True, True], warned


def test_chain_groups_pool_the_groups_against_the_truth():
    """``bench_chain_groups.pooled_z``: 16 groups of independent draws from the truth stay
    within the Bonferroni limit when pooled; the same draws with every chain shifted by 0.15 sd
    in one coordinate (12 standard errors of the pooled mean, 3 of one group's) leave it."""
    C = pytest.importorskip("bench_chain_groups")
    target = G.make_target("toy:gaussian_100")
    x = target.truth_mean + target.truth_sd * np.random.default_rng(2).standard_normal((64, 100, 100))
    assert C.pooled_z(target, x) < target.z_threshold()
    x[:, :, 7] += 0.15 * target.truth_sd[7]
    assert C.pooled_z(target, x) > target.z_threshold() + 1.0


def test_chain_groups_count_effective_draws_from_the_error():
    """``bench_chain_groups.error_ess`` against known answers: 64 groups of 400 independent
    draws from the truth (1000 gradients a group) are worth about 400 draws each, the minimum
    over 200 estimates a little under (each within about 18%, the standard error it reports); an AR(1) coordinate with
    coefficient 0.9 is worth a nineteenth; a bias of 0.1 sd in one coordinate caps a group at
    1 / (0.1^2 + 1/400) = 80 draws, though its draws are independent."""
    C = pytest.importorskip("bench_chain_groups")
    target = G.make_target("toy:gaussian_100")
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((256, 100, 100))
    grads = np.full(256, 250.0)
    value, rel_se = C.error_ess(target, target.truth_mean + target.truth_sd * noise, grads)
    assert 250 < value < 420 and 0.12 < rel_se < 0.25, (value, rel_se)
    ar = noise.copy()
    for t in range(1, 100):
        ar[:, t, 7] = 0.9 * ar[:, t - 1, 7] + np.sqrt(1 - 0.81) * noise[:, t, 7]
    value_ar = C.error_ess(target, target.truth_mean + target.truth_sd * ar, grads)[0]
    assert 1 / 30 < value_ar / 400 < 1 / 12, value_ar
    biased = noise.copy()
    biased[:, :, 7] += 0.1
    value_biased = C.error_ess(target, target.truth_mean + target.truth_sd * biased, grads)[0]
    assert 60 < value_biased < 100, value_biased


def test_chain_groups_burn_in_check():
    """``bench_chain_groups.segment_z`` against known answers: 512 chains of 400 independent
    draws from the truth give |z| of a standard normal in the first draws and in each of 4
    stretches (below 4.5 over 5 x 100 z's); the same chains with coordinate 7 offset by 0.5 sd at
    the first draw, decaying by a factor 0.98 per draw, show the burn-in. The mean offset of the
    first stretch is 0.5 * (1 - 0.98^100) / (100 * 0.02) = 0.217 sd (z about 49), of the second
    0.029 sd (z about 6.5) and of the last 0.0005 sd (z about 0.1; one standard error is 0.0044
    sd). So the first draws and the first two stretches are outside, the bias shrinks
    between them, and the last stretch is within."""
    C = pytest.importorskip("bench_chain_groups")
    target = G.make_target("toy:gaussian_100")
    noise = np.random.default_rng(4).standard_normal((512, 400, 100))
    x = target.truth_mean + target.truth_sd * noise
    bias, z = C.segment_z(target, x, 4)
    assert bias.shape == z.shape == (5, 100)
    assert np.max(np.abs(z)) < 4.5, np.max(np.abs(z))
    decay = 0.5 * 0.98 ** np.arange(400)
    x[:, :, 7] += target.truth_sd[7] * decay
    bias, z = C.segment_z(target, x, 4)
    assert z[0, 7] > 6 and z[1, 7] > 20 and z[2, 7] > 3, z[:, 7]
    assert bias[0, 7] > bias[1, 7] > bias[2, 7], bias[:, 7]
    assert abs(z[4, 7]) < 4.5 and abs(bias[1, 7] - 0.217) < 0.02, (z[:, 7], bias[:, 7])
    assert "burn-in check, x[7]" in C.segment_line(target, x, 4)
    with pytest.raises(ValueError, match="stretches"):
        C.segment_z(target, x[:, :3], 4)


def test_chain_groups_kernel_settings():
    """``bench_chain_groups.kernel("nuts:NAME=VALUE,...")`` builds ``nuts(NAME=VALUE, ...)``:
    numbers and booleans as literals, bare words as strings; an item without a value is an error."""
    C = pytest.importorskip("bench_chain_groups")
    from mcgen.kernels.nuts import nuts

    assert C.kernel("nuts:mass=diag,mass_rank=8,adapt=True") is nuts(mass="diag", mass_rank=8, adapt=True)
    assert C.kernel("nuts:mass_eigval_cutoff=1.5") is nuts(mass_eigval_cutoff=1.5)
    assert C.kernel("nuts:mass_eigval_cutoff=1.5") is not nuts()
    with pytest.raises(ValueError, match="NAME=VALUE"):
        C.kernel("nuts:mass_rank")


def test_collapse_margin_runs_the_initial_buffer():
    # benchmarks/collapse_margin.py on a target where no chain collapses: no restart, and the
    # smallest ratio of the step size to the one that worked lies above the guard's threshold
    M = pytest.importorskip("collapse_margin")
    r = M.margin("toy:eight_schools_nc", chains=4, seed=0)
    assert r["restarts"] == 0 and r["restarted"] == []
    assert M.W._COLLAPSE < r["margin"] < 10.0


def test_german_credit_file_is_the_uci_table(tmp_path):
    # benchmarks/data/german.data-numeric: UCI's Statlog table, 1000 applicants, 700 good (class
    # 1) and 300 bad (class 2), as the data set's documentation counts them; a table of another
    # shape is refused
    D = pytest.importorskip("gym_data")
    features, classes = D.german_credit_numeric()
    assert features.shape == (1000, 24) and np.bincount(classes).tolist() == [0, 700, 300]
    bad = tmp_path / "short"
    np.savetxt(bad, np.ones((10, 25), int), fmt="%d")
    with pytest.raises(ValueError, match="not the UCI"):
        D.german_credit_numeric(bad)


def test_german_credit_served_to_the_gym_matches_its_truth(monkeypatch):
    # the Gym's logistic regression on the served data has its mode within a fraction of a
    # posterior sd of the stored truth; with the classes swapped (the data read wrongly) the
    # same check lands many sd away, so it can fail
    pytest.importorskip("inference_gym")
    D = pytest.importorskip("gym_data")
    assert D.check_german_credit() < 1.0
    features, classes = D.german_credit_numeric()
    monkeypatch.setattr(D, "german_credit_numeric", lambda path=None: (features, 3 - classes))
    assert D.check_german_credit() > 5.0


def test_radon_served_to_the_gym_passes_its_checks():
    # Gelman and Hill's Minnesota table has 919 measurements in 85 counties; the Gym's radon
    # loader checks its own figures for each state (size of the filtered table, number of
    # counties) and raises otherwise, so both targets' log-densities evaluate only on the
    # right rows
    pytest.importorskip("inference_gym")
    D = pytest.importorskip("gym_data")
    table = D.radon()
    minnesota = table["features"]["state"] == "MN"
    assert minnesota.sum() == 919 and np.unique(table["features"]["county"][minnesota]).size == 85
    for name in ("RadonContextualEffectsMinnesota", "RadonContextualEffectsIndiana"):
        target = G.GymTarget(name)
        assert np.isfinite(float(target.logdensity(np.zeros(target.dim, np.float32))))


@pytest.mark.parametrize("low_rank", ["stan", "nutpie"])
def test_blackjax_low_rank_peer_samples_the_truth(low_rank):
    """The BlackJAX low-rank peers (``blackjax_lowrank``, ``blackjax_nutpie``) on the toy
    non-centered funnel (exact truth: independent normals, sd 3 for the first coordinate):
    4 chains of 300 draws after 200 warmup steps stay within the Bonferroni limit of the
    truth, with R-hat below 1.05 and at least 100 effective draws; the warmup's gradients are
    counted (at least one per step and chain), and the step size is the adapted one."""
    blackjax = pytest.importorskip("blackjax")
    if not hasattr(blackjax, "window_adaptation_low_rank"):
        pytest.skip("this BlackJAX has no low-rank warmup (1.7 has)")
    target = G.make_target("toy:funnel_10_nc")
    with jax.numpy_dtype_promotion("standard"):  # BlackJAX's code mixes Python ints and bools
        out = G.run_blackjax(target, target.inits(4, 0), 4, 200, 300, seed=3, low_rank=low_rank)
    scored = target.score(out["draws"])
    assert scored["z"] < target.z_threshold(), scored
    assert scored["rhat"] < 1.05 and scored["ess"] > 100, scored
    assert out["wgrads"] >= 4 * 200 and out["grads"] >= 4 * 300
    assert 0.05 < out["eps"] < 3.0
