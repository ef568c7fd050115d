"""The mass-matrix estimators of the windowed warmup recover known metrics, and sample right.

Each estimator has a known answer on a Gaussian :math:`N(\\mu, \\Sigma)`:

* Stan's (``mass="diag"`` / ``"dense"``): the variances :math:`\\Sigma_{ii}` / the covariance
  :math:`\\Sigma`;
* the Fisher-divergence diagonal (``mass="grad_diag"``): :math:`\\sqrt{\\Sigma_{ii} /
  (\\Sigma^{-1})_{ii}}`, equal to :math:`\\Sigma_{ii}` when :math:`\\Sigma` is diagonal.

First the estimators alone on exact independent draws (n = 20 000): the log of each
estimated entry has standard deviation about :math:`\\sqrt{2/n} = 1\\%` (a variance) or
:math:`\\sqrt{1/n} = 0.7\\%` (the Fisher ratio, half the log of a ratio of two variances), so a
4% bound is at least 4 standard deviations for every entry.  Then through a whole warmup of
HMC (whose warmup draws are nearly independent), where each chain's last window holds about
700 draws: entries within 25% (more than 4 standard deviations of the autocorrelated
estimate), and the draws after warmup match the target's moments in MCSE units.
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.adaptation import welford_covariance, welford_init, welford_update
from mcgen.adaptation.welford import fisher_diagonal

sys.path.insert(0, str(Path(__file__).parent / "kernels"))
from gradient_targets import GAUSS10, run  # noqa: E402

from tests.scripted_kernel import ScriptedInfo as _Info  # noqa: E402
from tests.scripted_kernel import ScriptedParams as _Params  # noqa: E402
from tests.scripted_kernel import ScriptedState as _Scripted  # noqa: E402

SCALES = jnp.asarray([0.1, 0.5, 1.0, 3.0, 20.0], jnp.float32)


def diagonal_gaussian(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


def _estimates(logdensity_fn, draws):
    """Stan's diagonal and dense estimates and the Fisher diagonal, from draws in one pass."""
    grads = jax.vmap(jax.grad(logdensity_fn))(draws)
    dim = draws.shape[1]

    def body(carry, xg):
        diag, dense, scores = carry
        x, g = xg
        return (welford_update(diag, x), welford_update(dense, x), welford_update(scores, g)), None

    init = (welford_init(dim, False), welford_init(dim, True), welford_init(dim, False))
    diag, dense, scores = jax.lax.scan(body, init, (draws, grads))[0]
    return (
        np.asarray(welford_covariance(diag, regularize=False)),
        np.asarray(welford_covariance(dense, regularize=False)),
        np.asarray(fisher_diagonal(diag, scores)),
    )


def test_estimators_recover_the_metric_of_a_diagonal_gaussian():
    draws = SCALES * jax.random.normal(jax.random.key(0), (20000, 5))
    diag, dense, fisher = _estimates(diagonal_gaussian, draws)
    truth = np.asarray(SCALES) ** 2
    np.testing.assert_allclose(diag, truth, rtol=0.04)
    np.testing.assert_allclose(np.diag(dense), truth, rtol=0.04)
    np.testing.assert_allclose(fisher, truth, rtol=0.04)


def test_estimators_recover_the_metric_of_a_correlated_gaussian():
    draws = GAUSS10.sample(jax.random.key(1), 20000)
    diag, dense, fisher = _estimates(GAUSS10.logdensity_fn, draws)
    cov = np.asarray(GAUSS10.cov, np.float64)
    np.testing.assert_allclose(diag, np.diag(cov), rtol=0.04)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(dense / np.outer(sd, sd), cov / np.outer(sd, sd), atol=0.04)
    fisher_truth = np.sqrt(np.diag(cov) / np.diag(np.linalg.inv(cov)))
    np.testing.assert_allclose(fisher, fisher_truth, rtol=0.04)
    # on a correlated target the Fisher diagonal is not the marginal variance: the test can tell
    assert np.min(np.abs(fisher_truth / np.diag(cov) - 1.0)) > 0.1


def test_a_coordinate_that_never_moves_gives_a_finite_metric():
    state, scores = welford_init(2, False), welford_init(2, False)
    for _ in range(3):
        state = welford_update(state, jnp.asarray([1.0, 2.0]))
        scores = welford_update(scores, jnp.asarray([0.5, -1.0]))
    assert np.all(np.isfinite(np.asarray(fisher_diagonal(state, scores))))


def test_grad_diag_warmup_learns_the_fisher_metric_and_samples_the_target():
    cov = np.asarray(GAUSS10.cov, np.float64)
    truth = np.sqrt(np.diag(cov) / np.diag(np.linalg.inv(cov)))
    res = run(
        GAUSS10.logdensity_fn, mc.hmc(10, mass="grad_diag"), init=GAUSS10.init, chains=4, samples=1000, warmup=1000
    )
    adapted = np.asarray(res.last_state.params.inverse_mass)
    assert adapted.shape == (4, 10)
    np.testing.assert_allclose(adapted / truth, 1.0, atol=0.25)
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)


def test_nuts_with_grad_diag_samples_a_correlated_gaussian():
    # sampling uses the metric as "diag" does; this checks the whole path, warmup included
    res = run(
        GAUSS10.logdensity_fn,
        mc.nuts(mass="grad_diag", max_tree_depth=6),
        init=GAUSS10.init,
        chains=4,
        samples=500,
        warmup=300,
    )
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)


def test_unknown_mass_names_the_choices():
    with pytest.raises(ValueError, match="'diag', 'dense', 'grad_diag'"):
        mc.nuts(mass="fisher")


def test_early_schedule_learns_the_metric_and_samples_the_target():
    # warmup 1000: the metric freezes at step 849 on a foreground of the 475 draws since the
    # last-but-one switch (step 374), so each entry's sd is under 5%: a 20% bound is over 4 sd
    cov = np.asarray(GAUSS10.cov, np.float64)
    truth = np.sqrt(np.diag(cov) / np.diag(np.linalg.inv(cov)))
    res = run(
        GAUSS10.logdensity_fn,
        mc.hmc(10, mass="grad_diag", warmup_schedule="early"),
        init=GAUSS10.init,
        chains=4,
        samples=1000,
        warmup=1000,
    )
    np.testing.assert_allclose(np.asarray(res.last_state.params.inverse_mass) / truth, 1.0, atol=0.2)
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)
    # the metric moved after every step before the freeze, and was recorded at each of the 24
    # switches (22 of 10 draws, then after 80 and 120) and at the freeze
    assert res.warmup_stats["window_end"].shape[1] == 25


def test_early_schedule_structure():
    from mcgen.adaptation.window import early_schedule

    sched = early_schedule(1000)
    # Stan's initial buffer (75 steps: step size only), then the draws until the final 15%
    assert not sched["collect"][850:].any() and sched["collect"][75:850].all() and not sched["collect"][:75].any()
    assert not sched["update"][:75].any()
    switches = np.flatnonzero(sched["switch"])
    assert switches[0] == 84  # 10 draws from step 75 on
    assert np.all(np.diff(switches[switches < 300]) == 10)
    # after 30% of the warmup each window is 1.5 times the one before (nutpie's growth), and a
    # switch is made only where the next window fits before the freeze: the final foreground
    # holds the draws since step 375 (the switch at 674 would leave 176 of the next 270 draws)
    assert np.diff(switches[switches >= 294]).tolist() == [80, 120]
    assert early_schedule(1000, window_growth=1.0)["switch"][294:].nonzero()[0].tolist() == [0, 80, 160, 240, 320, 400]
    assert np.diff(np.flatnonzero(early_schedule(2000)["switch"])[-4:]).tolist() == [120, 180, 270]
    for n in range(300, 3000, 23):  # a switch is made only where the next, grown window fits
        switch = np.flatnonzero(early_schedule(n)["switch"])
        late = switch[np.searchsorted(switch, int(0.3 * n)) - 1 :]  # from the last early switch
        windows = np.diff(late).tolist()
        if windows:
            assert windows == [round(80 * 1.5**j) for j in range(len(windows))]
            assert late[-1] + round(windows[-1] * 1.5) <= n - int(0.15 * n)
    with pytest.raises(ValueError, match="window_growth must be >= 1"):
        early_schedule(1000, window_growth=0.9)
    assert np.flatnonzero(sched["search"]).tolist() == [77] and np.flatnonzero(sched["freeze"]).tolist() == [849]
    assert not any(early_schedule(19)[k].any() for k in sched)  # too short: step size only
    assert np.flatnonzero(early_schedule(100)["collect"])[0] == 15  # a short warmup: 15% of it
    assert np.flatnonzero(early_schedule(1000, initial_buffer=0)["switch"])[0] == 9
    assert np.flatnonzero(early_schedule(1000, initial_buffer=847)["update"]).tolist() == [849]
    for bad in (-1, 848):  # 3 draws must fit before the freeze at step 849
        with pytest.raises(ValueError, match="initial_buffer must be between 0 and 847"):
            early_schedule(1000, initial_buffer=bad)
    assert np.flatnonzero(sched["update"]).tolist() == list(range(77, 850))  # update_every=1: every step
    # a costly fit every 20 steps: also at the step after each switch (a fresh foreground) and
    # at the last step before the freeze; the switches and the freeze do not move
    sparse = early_schedule(1000, update_every=20)
    updates = np.flatnonzero(sparse["update"])
    assert updates[0] == 77 and updates[-1] == 849 and np.all(np.diff(updates) <= 20)
    assert set((switches + 1).tolist()) <= set(updates.tolist())
    assert all(np.array_equal(sparse[k], sched[k]) for k in ("collect", "switch", "search", "freeze"))
    assert len(updates) < 100
    with pytest.raises(ValueError, match="warmup_schedule"):
        mc.nuts(warmup_schedule="nutpie")


def test_early_schedule_waits_out_its_initial_buffer_then_feeds_every_draw():
    """A scripted kernel: during the schedule's initial buffer it travels in from far off (a
    transient whose draws must feed nothing: no metric is set, no search starts); after it,
    two transitions stay put (one of them divergent), one diverges but moves, and the rest
    are exact draws of N(0, diag(SCALES^2)).  From the third collected draw on, the metric is
    exactly the Fisher diagonal of every draw since the buffer, repeats and divergent ones
    included (as Stan counts them), and the step-size search starts at that first update."""
    from mcgen.adaptation.window import early_schedule, window_adaptation

    rng = np.random.default_rng(3)
    buffer = int(np.flatnonzero(early_schedule(100)["collect"])[0])  # 15 steps of step size only
    n = buffer + 10
    table = rng.standard_normal((n, 5)).astype(np.float32) * np.asarray(SCALES)
    table[:buffer] += np.linspace(40.0, 1.0, buffer, dtype=np.float32)[:, None]  # the way in
    stuck = np.zeros(n, bool)
    stuck[[buffer + 1, buffer + 4]] = True
    divergent = np.zeros(n, bool)
    divergent[[buffer + 2, buffer + 4]] = True
    # scores that are not a linear function of the draws (on a Gaussian's, the Fisher
    # diagonal would come out exact from any two draws, whichever were fed)
    scores = (-table / np.asarray(SCALES) ** 2 + rng.standard_normal((n, 5))).astype(np.float32)
    positions, gradients = table.copy(), scores.copy()  # where the chain is after each transition
    for t in np.flatnonzero(stuck):
        positions[t], gradients[t] = positions[t - 1], gradients[t - 1]
    xs, gs = jnp.asarray(table), jnp.asarray(scores)

    def step(key, s, logdensity_fn):
        del key, logdensity_fn
        x = jnp.where(stuck[s.t], s.position, xs[s.t])
        g = jnp.where(stuck[s.t], s.logdensity_grad, gs[s.t])
        info = _Info(jnp.float32(0.8), jnp.asarray(~stuck)[s.t], jnp.asarray(divergent)[s.t], jnp.int32(3))
        return s._replace(position=x, logdensity_grad=g, t=s.t + 1), info

    warmup = window_adaptation(step, 100, target_accept=0.8, estimator="fisher", schedule="early")
    start = jnp.full(5, 50.0)
    state = _Scripted(start, -start / SCALES**2, _Params(jnp.float32(0.1), jnp.ones(5)), 0)
    ws = warmup.init(state)
    key = jax.random.key(0)
    metrics, searching = [], []
    for _ in range(n):
        ws, _ = warmup.step(key, ws, None)
        metrics.append(np.asarray(ws.state.params.inverse_mass))
        searching.append(bool(ws.search.active))
    for t in range(buffer + 2):  # the buffer, then fewer than 3 draws: no update, no search
        np.testing.assert_array_equal(metrics[t], np.ones(5))
        assert not searching[t]
    for t in range(buffer + 2, n):
        var_x = positions[buffer : t + 1].var(0, ddof=1)
        var_g = gradients[buffer : t + 1].var(0, ddof=1)
        np.testing.assert_allclose(metrics[t], np.sqrt(var_x / var_g), rtol=1e-4)
    assert searching[buffer + 2]  # the heuristic runs after the first metric that was set
