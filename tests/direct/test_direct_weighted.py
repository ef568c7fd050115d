"""WeightedSamples: resampling schemes (unbiased, variance), Kish ESS, ArviZ bridge, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen.direct import WeightedSamples, resample_indices

METHODS = ("multinomial", "systematic", "stratified", "residual")
WEIGHTS = np.array([0.05, 0.31, 0.002, 0.238, 0.17, 0.23])  # sums to 1, no n * w integral


@functools.lru_cache(maxsize=None)
def _counts(method, n=50, reps=4000, seed=0):
    log_w = jnp.log(jnp.asarray(WEIGHTS, jnp.float32)) + 3.0  # unnormalized on purpose

    def one(key):
        idx = resample_indices(key, log_w, n, method)
        return jnp.zeros(len(WEIGHTS), jnp.int32).at[idx].add(1)

    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), reps)), np.float64)


@pytest.mark.parametrize("method", METHODS)
def test_resampling_is_unbiased(method):
    """Each index is copied n * w_i times on average (4 MCSE over 4000 repetitions)."""
    n, reps = 50, 4000
    counts = _counts(method)  # defaults: n=50, reps=4000 (cached for the next test)
    assert np.all(counts.sum(1) == n)
    mcse = counts.std(0, ddof=1) / np.sqrt(reps)
    # an index with a deterministic count must hit n * w_i up to float32 rounding
    assert np.all(np.abs(counts.mean(0) - n * WEIGHTS) <= 4 * mcse + 1e-4 * n), (counts.mean(0), n * WEIGHTS)


def test_low_variance_schemes_beat_multinomial():
    var = {m: _counts(m).var(0, ddof=1).sum() for m in METHODS}
    expected_multinomial = 50 * np.sum(WEIGHTS * (1 - WEIGHTS))
    assert abs(var["multinomial"] / expected_multinomial - 1) < 0.15
    for m in ("systematic", "stratified", "residual"):
        assert var[m] < 0.7 * var["multinomial"], var


def test_resample_returns_pytree_rows():
    ws = WeightedSamples({"a": jnp.arange(5.0), "b": jnp.arange(10.0).reshape(5, 2)}, jnp.log(jnp.arange(1.0, 6.0)))
    out = ws.resample(jax.random.key(0), 7, method="systematic")
    assert out["a"].shape == (7,) and out["b"].shape == (7, 2)
    np.testing.assert_array_equal(np.asarray(out["b"])[:, 0], 2 * np.asarray(out["a"]))


def test_kish_ess_matches_formula():
    lw = np.array([0.3, -1.2, 2.0, 0.0, -0.5])
    w = np.exp(lw)
    ws = WeightedSamples(jnp.zeros(5), jnp.asarray(lw, jnp.float32))
    assert float(ws.ess()) == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-5)
    assert float(WeightedSamples(jnp.zeros(4), jnp.full(4, -700.0)).ess()) == pytest.approx(4.0, rel=1e-5)


def test_to_arviz_keeps_weights():
    lw = jnp.asarray([0.0, 1.0, 2.0, 3.0])
    idata = WeightedSamples({"x": jnp.arange(8.0).reshape(4, 2)}, lw).to_arviz()
    assert idata.posterior["x"].shape[:2] == (1, 4)
    np.testing.assert_allclose(
        np.asarray(idata.sample_stats["log_weight"]).ravel(), np.asarray(lw - jax.nn.logsumexp(lw)), atol=1e-6
    )


def test_smooth_returns_normalized_weights():
    lw = jax.random.normal(jax.random.key(0), (1000,)) * 2.0
    sm = WeightedSamples(jnp.zeros(1000), lw).smooth()
    assert sm.log_weights.shape == (1000,)
    assert float(jax.nn.logsumexp(sm.log_weights)) == pytest.approx(0.0, abs=1e-5)


def test_host_diagnostics_refuse_tracers():
    ws = WeightedSamples(jnp.zeros(20), jnp.zeros(20))
    with pytest.raises(TypeError, match="outside jax.jit"):
        jax.jit(lambda w: w.pareto_k())(ws)


def test_bad_input():
    ws = WeightedSamples(jnp.zeros(5), jnp.zeros(5))
    with pytest.raises(ValueError, match="method must be one of"):
        ws.resample(jax.random.key(0), 3, method="magic")
    with pytest.raises(ValueError, match="positive"):
        ws.resample(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="leading axis"):
        WeightedSamples(jnp.zeros(4), jnp.zeros(5)).expectation()
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        WeightedSamples(jnp.zeros(4), jnp.zeros((4, 1))).expectation()
