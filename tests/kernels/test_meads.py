"""Statistical tests of MEADS (mcgen.kernels.meads).

Invariance of the frozen generalized-HMC kernel (persistent momentum and slice variable, exact
start, KS and moment z-scores after several steps); the warmup's cross-chain use against
known answers (each fold's step size, damping and metric recomputed by hand from the chains
of the previous fold with the pairwise formulas, the held-out fold unmoved, padding chains
ignored, finalize pooling all chains); moments within 4 MCSE after the ensemble warmup on the
100-d Gaussian with scales over two decades.  Seeds fixed.
"""

import importlib
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from mcgen import testing
from mcgen.adaptation import ensemble
from mcgen.kernels.meads import meads

MEADS_MODULE = importlib.import_module("mcgen.kernels.meads")

sys.path.insert(0, str(Path(__file__).parent))
from gradient_targets import GAUSS10, SCALES, gaussian_100, run  # noqa: E402


@pytest.mark.parametrize(
    "kwargs",
    [dict(step_size=0.0), dict(damping=-1.0), dict(num_folds=1), dict(num_folds=0), dict(max_energy_error=0.0)],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        meads(**kwargs)


def test_invariance_of_the_frozen_kernel():
    # a large step (a third rejected, so the slice variable and the momentum flip matter) and
    # weak damping (the momentum persists over the 12 steps)
    kernel = meads(step_size=0.6, damping=0.1, adapt=False)
    testing.assert_invariance(kernel, GAUSS10.logdensity_fn, GAUSS10.sample, num_chains=4000, num_steps=12)


def test_extended_target_is_invariant():
    """Position, momentum and slice variable start from pi(x) N(p; 0, I) U(s; -1, 1) and stay there.

    At stationarity |s| is uniform and independent of the proposal, so the frequency of
    acceptance equals the mean Metropolis probability min(1, exp(-Delta H)): a sensitive check
    of the slice variable's bookkeeping (z-score over independent chains).
    """
    kernel = meads(step_size=0.6, damping=0.1, adapt=False)  # acceptance ~2/3; stability limit ~0.77
    n, steps = 4000, 20
    k_x, k_p, k_s, k_steps, k_fresh = jax.random.split(jax.random.key(5), 5)
    states = jax.vmap(kernel.init, in_axes=(0, None))(GAUSS10.sample(k_x, n), GAUSS10.logdensity_fn)
    params = states.params._replace(
        momentum=jax.random.normal(k_p, (n, 10)),
        slice=jax.random.uniform(k_s, (n,), minval=-1.0, maxval=1.0),
        fresh=jnp.zeros(n, bool),
    )
    states = states._replace(params=params)

    @jax.jit
    def run_steps(states, key):
        def body(st, k):
            st, info = jax.vmap(kernel.step, in_axes=(0, 0, None))(jax.random.split(k, n), st, GAUSS10.logdensity_fn)
            return st, info.is_accepted.astype(jnp.float32) - info.accept_prob

        return jax.lax.scan(body, states, jax.random.split(key, steps))

    final, gap = run_steps(states, k_steps)
    per_chain = np.asarray(gap, np.float64).mean(axis=0)  # chains are independent
    z = per_chain.mean() / (per_chain.std() / np.sqrt(n))
    assert abs(z) < 4.0, f"acceptance frequency - mean acceptance probability: z = {z:.1f}"
    x = np.asarray(final.position, np.float64)
    report = testing.two_sample_test(x, np.asarray(GAUSS10.sample(k_fresh, n), np.float64), method="ks", alpha=1e-3)
    assert report.passed, report
    threshold = 1e-3 / 11  # Bonferroni over the momentum's 10 coordinates and the slice variable
    for j in range(10):
        assert scipy.stats.kstest(np.asarray(final.params.momentum[:, j]), "norm").pvalue > threshold, j
    assert scipy.stats.kstest(np.asarray(final.params.slice), "uniform", args=(-1.0, 2.0)).pvalue > threshold


def _pairwise_ratio(y, centered):
    """tr(S^2) / tr(S) with the plain pairwise sums (the reference for the Gram-matrix shortcut)."""
    m = y.shape[0]
    dots = y @ y.T
    off = (np.sum(dots**2) - np.sum(np.diag(dots) ** 2)) / (m * (m - 1))
    return off / (np.sum(y**2) / (m - 1 if centered else m))


def _reference(x, g, count):
    """MEADS's (step size, damping, inverse mass) from one group of chains, by hand."""
    var = x.var(axis=0, ddof=1)
    sd = np.sqrt(var)
    eps = 0.5 / np.sqrt(_pairwise_ratio(g * sd, centered=False))
    gamma = max(1.0 / np.sqrt(_pairwise_ratio((x - x.mean(0)) / sd, centered=True)), 1.0 / (eps * (count + 1)))
    return eps, gamma, var


SD = np.array([0.5, 1.0, 2.0, 3.0, 0.7, 1.5, 1.2, 0.9])


def _logdensity(x):
    return -0.5 * jnp.sum((x / SD[: x.shape[0]]) ** 2)


@pytest.mark.parametrize("dim, step", [(3, 2), (8, 6)])  # fewer dimensions than chains per fold, and more
def test_each_fold_adapts_from_the_previous_fold_and_padding_counts_for_nothing(dim, step):
    num_real, num_total, folds = 20, 22, 4  # about 5 chains per fold; chains 20 and 21 are padding
    kernel = meads(num_folds=folds)
    warm = kernel.warmup(10)
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(num_total, dim)) * SD[:dim] + 0.3).astype(np.float32)
    x[num_real:] = 1e3  # padding chains: far away; they must not change anything
    states = jax.vmap(kernel.init, in_axes=(0, None))(jnp.asarray(x), _logdensity)
    g = np.asarray(states.logdensity_grad, np.float64)
    keys = jax.random.split(jax.random.key(0), num_total)
    # step 2: the identity assignment (chain i in fold i % 4); step 6: the second epoch's permutation
    fold_of = np.asarray(MEADS_MODULE._fold_rows(num_total, step // folds, num_real)) % folds
    assert (step < folds) == np.array_equal(fold_of, np.arange(num_total) % folds)

    def one_step(states):
        ws = jax.vmap(warm.init, axis_name="chains")(states)
        ws = ws._replace(count=jnp.full((num_total,), step, jnp.int32))  # fold step % 4 is held out
        new, _ = jax.vmap(warm.step, in_axes=(0, 0, None), axis_name="chains")(keys, ws, _logdensity)
        return new, jax.vmap(warm.finalize, axis_name="chains")(new)

    with ensemble._chain_axis("vectorized", num_real):
        new, final = jax.jit(one_step)(states)
    x64 = x.astype(np.float64)
    real = np.arange(num_real)
    for fold in range(folds):
        source = real[fold_of[:num_real] == (fold - 1) % folds]
        eps, gamma, var = _reference(x64[source], g[source], step)
        for i in real[fold_of[:num_real] == fold]:
            np.testing.assert_allclose(new.state.params.step_size[i], eps, rtol=2e-4)
            np.testing.assert_allclose(new.state.params.damping[i], gamma, rtol=2e-4)
            np.testing.assert_allclose(new.state.params.inverse_mass[i], var, rtol=2e-4)
    held = fold_of[:num_real] == step % folds
    np.testing.assert_array_equal(np.asarray(new.state.position)[:num_real][held], x[:num_real][held])
    assert np.any(np.asarray(new.state.position)[:num_real][~held] != x[:num_real][~held])
    # finalize: every chain gets the values of all requested chains (at their new positions)
    xs = np.asarray(new.state.position, np.float64)[:num_real]
    gs = np.asarray(new.state.logdensity_grad, np.float64)[:num_real]
    eps, gamma, var = _reference(xs, gs, step + 1)
    np.testing.assert_allclose(final.params.step_size[:num_real], eps, rtol=2e-4)
    np.testing.assert_allclose(final.params.damping[:num_real], gamma, rtol=2e-4)
    np.testing.assert_allclose(final.params.inverse_mass[:num_real], np.broadcast_to(var, xs.shape), rtol=2e-4)


def test_gaussian_100d_ensemble_adaptation():
    res = run(gaussian_100, meads(), init=jnp.zeros(100), chains=128, samples=200, warmup=400)
    # every fifth coordinate (scales 0.01 .. 1): 40 compared quantities
    testing.assert_moments(res.samples[..., ::5], jnp.zeros(20), SCALES[::5] ** 2)
    params = res.last_state.params
    for leaf in (params.step_size, params.damping, params.inverse_mass):
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))  # pooled: one value
    # the metric is the cross-chain variance of 128 chains at the last step (relative sd 12.5%
    # per coordinate): the log-ratios to the true variances centre on 0 and none is off by 2x
    log_ratio = np.log(np.asarray(params.inverse_mass[0]) / np.asarray(SCALES) ** 2)
    assert abs(np.mean(log_ratio)) < 0.06 and np.max(np.abs(log_ratio)) < 0.7, log_ratio
    # whitened standard Gaussian: lambda_max = 1, so eps near 1/2 and gamma near 1
    assert 0.4 < float(params.step_size[0]) < 0.55 and 0.8 < float(params.damping[0]) < 1.3
    assert 0.8 < float(np.mean(res.stats["accept_prob"])) < 0.97


@pytest.mark.slow  # ~7 s each, mostly compilation
@pytest.mark.parametrize("scales", [(1.0,) * 5, (0.01, 0.1, 1.0, 10.0, 100.0)], ids=["unit", "0.01-100"])
def test_tight_start_samples(scales):
    """From one point (``run_chains``'s default jitter of 0.1) the chains must spread out.

    Unit scales: the spread of the chains is far below the target's and the gradients (``-x``)
    near zero, so the estimate ``E[(sigma g)(sigma g)^T]`` of the whitened curvature is tiny
    (about ``sigma^4``) and the uncapped step size ``1/2 lambda^(-1/2)`` was ~150: every
    proposal rejected, variance 0.003 after warmup.  Scales 0.01 to 100 (a spread 1000 times
    too small along the last): keeping the momentum ``p`` of mass ``1 / sigma^2`` while
    ``sigma`` grows inflated the whitened momentum at every step of the expansion; the chains
    overshot and froze (step size 1e-6, variances off by 1e5).
    """
    scales = jnp.asarray(scales)
    d = scales.shape[0]
    logdensity = lambda x: -0.5 * jnp.sum((x / scales) ** 2)  # noqa: E731
    res = run(logdensity, meads(), init=jnp.zeros(d), chains=64, samples=150, warmup=150)
    testing.assert_moments(res.samples, jnp.zeros(d), scales**2)
    step_size = float(res.last_state.params.step_size[0])
    assert 0.3 < step_size < 0.7, step_size  # near the 1/2 of the whitened standard Gaussian
    assert float(np.mean(res.stats["accept_prob"])) > 0.8
