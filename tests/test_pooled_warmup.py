"""The warmup pooled over the chains (``window_adaptation(pool=...)``, the gradient kernels'
``warmup_pool``): every metric update is the estimator applied to all chains' window draws
together, and with ``pool="all"`` every chain's step size follows dual averaging on the
chains' mean acceptance statistic.

Known answers: a scripted kernel (its transitions replay a table of draws, scores and
acceptance statistics per chain) is vmapped over the chain axis, so the metric a window end
sets must equal the estimator of the concatenated table rows of that window (Stan's
regularized covariance, diagonal and dense, or the low-rank fit), and the step sizes those of
one chain fed the mean statistic.  The chains' tables have different means, so a pooled
estimate that forgot the spread between the chains (or used one chain's rows) is caught.
Then whole NUTS runs with a pooled warmup sample a correlated Gaussian (moments in MCSE units).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.adaptation.low_rank import LowRankInverseMass, low_rank_estimate
from mcgen.adaptation.welford import WelfordState, welford_init, welford_update
from mcgen.adaptation.window import _pool_welford, window_adaptation, window_schedule
from tests.kernels.gradient_targets import GAUSS10, run
from tests.scripted_kernel import ScriptedInfo, ScriptedParams, ScriptedState

CHAINS, STEPS, DIM = 4, 100, 4
# Stan's schedule for 100 steps: step size alone for 15, one window of 75 draws, 10 more
SLOW, END = window_schedule(STEPS)
WINDOW_END = int(np.flatnonzero(END)[0])


def _tables(seed=0):
    """Per chain: draws of a correlated Gaussian shifted by a chain-specific mean, scores
    that are not a linear function of them, and acceptance statistics in eighths (so that
    their mean over 4 chains is exact in float32)."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.9, 0, 0], [0.9, 1.0, 0, 0], [0, 0, 4.0, 0], [0, 0, 0, 0.01]])
    draws = rng.multivariate_normal(np.zeros(DIM), cov, (CHAINS, STEPS))
    draws += rng.normal(0.0, 2.0, (CHAINS, 1, DIM))  # the chains disagree: the pooled spread is wider
    scores = -draws @ np.linalg.inv(cov) + 0.3 * rng.standard_normal(draws.shape)
    accept = rng.integers(5, 9, (CHAINS, STEPS)) / 8.0  # 0.625-1: no chain collapses (and restarts)
    return draws.astype(np.float32), scores.astype(np.float32), accept.astype(np.float32)


def _run_scripted(inverse_mass, accept_override=None, **settings):
    """Run ``window_adaptation`` over the scripted chains; return the warmup states after every step."""
    draws, scores, accept = _tables()
    if accept_override is not None:
        accept = accept_override
    xs, gs, acc = jnp.asarray(draws), jnp.asarray(scores), jnp.asarray(accept)

    def step(key, s, logdensity_fn):
        del key, logdensity_fn
        c = s.t // STEPS  # the chain, carried in t (so that a chain knows its table row)
        i = s.t % STEPS
        info = ScriptedInfo(acc[c, i], jnp.bool_(True), jnp.bool_(False), jnp.int32(3))
        return s._replace(position=xs[c, i], logdensity_grad=gs[c, i], t=s.t + 1), info

    warmup = window_adaptation(step, STEPS, target_accept=0.8, **settings)
    chains = acc.shape[0]

    def start(c):
        return ScriptedState(
            jnp.zeros(DIM), jnp.zeros(DIM), ScriptedParams(jnp.float32(0.5), inverse_mass), jnp.int32(c * STEPS)
        )

    def one_step(ws):
        return warmup.step(jax.random.key(0), ws, None)[0]

    ws = jax.vmap(lambda c: warmup.init(start(c)))(jnp.arange(chains))
    step_all = jax.jit(jax.vmap(one_step, axis_name="chains"))
    states = []
    for _ in range(STEPS):
        ws = step_all(ws)
        states.append(ws)
    assert not np.asarray(ws.trace.restarted).any()  # no collapse-guard restart shifts a chain's table
    return states, draws, scores


def _regularized(cov, n):
    shrink = 5.0 / (n + 5.0)
    return (1.0 - shrink) * cov + shrink * 1e-3 * (np.eye(cov.shape[0]) if cov.ndim == 2 else 1.0)


def test_pooled_welford_is_the_welford_estimate_of_all_chains_draws():
    rng = np.random.default_rng(1)
    draws = rng.normal(rng.normal(0, 3, (3, 1, 5)), 1.0, (3, 11, 5)).astype(np.float32)
    for dense in (False, True):

        def fold(x, dense=dense):
            return jax.lax.scan(lambda w, xi: (welford_update(w, xi), None), welford_init(5, dense), x)[0]

        stacked = jax.vmap(fold)(jnp.asarray(draws))
        # a dropped chain (padding) may hold anything: its NaN must not leak into the pooled estimate
        poisoned = stacked._replace(mean=stacked.mean.at[1].set(jnp.nan), m2=stacked.m2.at[1].set(jnp.nan))
        cases = (
            (stacked, np.ones(3), draws.reshape(-1, 5)),
            (poisoned, np.array([1.0, 0.0, 1.0]), draws[[0, 2]].reshape(-1, 5)),
        )
        for chains, weights, rows in cases:
            pooled = _pool_welford(chains, jnp.asarray(weights, jnp.float32))
            assert isinstance(pooled, WelfordState)
            assert int(pooled.count) == rows.shape[0]
            np.testing.assert_allclose(pooled.mean, rows.mean(0), rtol=1e-5, atol=1e-5)
            cov = np.cov(rows, rowvar=False) if dense else rows.var(0, ddof=1)
            np.testing.assert_allclose(np.asarray(pooled.m2) / (rows.shape[0] - 1), cov, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dense", [False, True])
def test_a_pooled_window_sets_every_chain_the_covariance_of_all_chains_draws(dense):
    start = jnp.eye(DIM) if dense else jnp.ones(DIM)
    states, draws, _ = _run_scripted(start, pool="metric")
    window = draws[:, SLOW].reshape(-1, DIM)  # all chains' draws of the window (75 each)
    cov = np.cov(window, rowvar=False) if dense else window.var(0, ddof=1)
    expected = _regularized(cov, window.shape[0])
    metric = np.asarray(states[WINDOW_END].state.params.inverse_mass)
    for c in range(CHAINS):
        np.testing.assert_allclose(metric[c], expected, rtol=2e-4, atol=1e-6)
    # before the window ends nothing is set, and unpooled each chain keeps its own (narrower) one
    np.testing.assert_array_equal(np.asarray(states[WINDOW_END - 1].state.params.inverse_mass)[0], np.asarray(start))
    own, _, _ = _run_scripted(start)
    own_metric = np.asarray(own[WINDOW_END].state.params.inverse_mass)
    own_cov = np.cov(draws[0, SLOW], rowvar=False) if dense else draws[0, SLOW].var(0, ddof=1)
    np.testing.assert_allclose(own_metric[0], _regularized(own_cov, int(SLOW.sum())), rtol=2e-4, atol=1e-6)
    assert np.max(np.abs(own_metric[0] - expected)) > 0.5


def _dense_metric(m: LowRankInverseMass) -> np.ndarray:
    s, u, lam = (np.asarray(a, np.float64) for a in m)
    return (s[:, None] * (np.eye(s.size) + (u * (lam - 1.0)) @ u.T)) * s[None, :]


def test_a_pooled_low_rank_fit_is_the_fit_of_all_chains_rows():
    start = LowRankInverseMass(jnp.ones(DIM), jnp.zeros((DIM, 2)), jnp.ones(2))
    states, draws, scores = _run_scripted(start, pool="metric", estimator="low_rank", rank=2)
    x, g = draws[:, SLOW].reshape(-1, DIM), scores[:, SLOW].reshape(-1, DIM)
    fisher = np.sqrt(x.var(0, ddof=1) / g.var(0, ddof=1))
    expected = low_rank_estimate(jnp.asarray(x), jnp.asarray(g), rank=2, diag=jnp.asarray(fisher, jnp.float32))
    assert np.any(np.asarray(expected.vals) != 1.0)  # a correction is made (the 0.9 correlation)
    metric = jax.tree_util.tree_map(lambda a: a, states[WINDOW_END].state.params.inverse_mass)
    for c in range(CHAINS):
        got = LowRankInverseMass(*(leaf[c] for leaf in metric))
        np.testing.assert_allclose(_dense_metric(got), _dense_metric(expected), rtol=1e-3, atol=1e-4)


def test_pool_all_gives_every_chain_the_step_size_of_the_mean_acceptance():
    _, _, accept = _tables()
    pooled, _, _ = _run_scripted(jnp.ones(DIM), pool="all")
    # one chain fed the chains' mean statistic (exact in float32: eighths over 4 chains)
    mean = np.broadcast_to(accept.mean(0), (1, STEPS)).astype(np.float32)
    single, _, _ = _run_scripted(jnp.ones(DIM), accept_override=mean)
    own, _, _ = _run_scripted(jnp.ones(DIM), pool="metric")
    steps = np.stack([np.asarray(ws.state.params.step_size) for ws in pooled])  # (STEPS, CHAINS)
    reference = np.stack([np.asarray(ws.state.params.step_size) for ws in single])[:, 0]
    for c in range(CHAINS):
        np.testing.assert_allclose(steps[:, c], reference, rtol=1e-5)
    own_steps = np.stack([np.asarray(ws.state.params.step_size) for ws in own])
    assert np.max(np.abs(np.log(own_steps[:, 0] / own_steps[:, 1]))) > 0.1  # unpooled they differ


@pytest.mark.parametrize(
    "kernel",
    [
        mc.nuts(max_tree_depth=6, warmup_pool="metric"),
        mc.nuts(max_tree_depth=6, mass="diag", warmup_pool="all"),
        mc.hmc(10, mass="grad_diag", warmup_pool="metric"),
    ],
    ids=["nuts-low-rank-metric", "nuts-diag-all", "hmc-grad-diag-metric"],
)
def test_a_pooled_warmup_samples_a_correlated_gaussian(kernel):
    res = run(GAUSS10.logdensity_fn, kernel, init=GAUSS10.init, chains=4, samples=500, warmup=300)
    leaves = jax.tree_util.tree_leaves(res.last_state.params.inverse_mass)
    for leaf in leaves:  # one metric for all chains
        np.testing.assert_array_equal(np.asarray(leaf), np.broadcast_to(np.asarray(leaf)[0], leaf.shape))
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)


def test_bad_pool_settings_and_the_sequential_method_are_clear_errors():
    for make in (mc.nuts, mc.hmc, mc.mala):
        with pytest.raises(ValueError, match="warmup_pool must be None, 'metric' or 'all'"):
            make(warmup_pool="chains")
    with pytest.raises(ValueError, match="pool_rows"):
        window_adaptation(lambda *a: a, 100, target_accept=0.8, pool="metric", pool_rows=2)
    with pytest.raises(ValueError, match="sequential"):
        mc.run_chains(
            GAUSS10.logdensity_fn,
            mc.nuts(warmup_pool="metric"),
            init=GAUSS10.init,
            num_chains=2,
            num_samples=2,
            num_warmup=30,
            progress=False,
            warn=False,
            chain_method="sequential",
        )


def test_a_pooled_warmup_runs_in_the_one_loop_of_warmup_and_sampling():
    # the model's gradient compiled once: the warmup comes apart around the kernel's own step
    from mcgen._driver.steps import _fusable

    for pool in ("metric", "all"):
        assert _fusable(mc.nuts(warmup_pool=pool), 100)
        assert _fusable(mc.hmc(10, warmup_pool=pool), 100)
