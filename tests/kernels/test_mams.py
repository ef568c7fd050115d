"""Statistical tests of MAMS (mcgen.kernels.mams).

The isokinetic velocity update against its small-step limit; invariance of the frozen kernel
(fixed step size and trajectory length, exact start, KS and moment z-scores); moments within
4 MCSE after the ensemble warmup on the 100-d Gaussian with scales over two decades; pooled
tunables.  Seeds fixed.
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen import testing
from mcgen.diagnostics import ess_rhat
from mcgen.kernels.mams import _velocity_update, mams

sys.path.insert(0, str(Path(__file__).parent))
from gradient_targets import GAUSS10, SCALES, gaussian_100, run  # noqa: E402


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(step_size=0.0),
        dict(trajectory_length=-1.0),
        dict(target_accept=1.0),
        dict(length_factor=0.0),
        dict(max_num_steps=0),
        dict(max_energy_error=0.0),
        dict(learning_rate=0.0),
    ],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        mams(**kwargs)


def test_velocity_update_keeps_unit_norm_and_matches_small_step_limit():
    key_u, key_g = jax.random.split(jax.random.key(0))
    u = jax.random.normal(key_u, (20,))
    u = u / jnp.linalg.norm(u)
    g = jax.random.normal(key_g, (20,))
    new, change = _velocity_update(u, g, 1e-3)
    np.testing.assert_allclose(jnp.linalg.norm(new), 1.0, rtol=1e-6)
    # for small tau the kinetic energy change is tau * g.u (so the energy error vanishes)
    np.testing.assert_allclose(change, 1e-3 * jnp.dot(g, u), rtol=2e-2, atol=1e-6)
    # two half updates compose to one full update (the flow property of the exact solution)
    half, c1 = _velocity_update(u, g, 0.5)
    full, c = _velocity_update(half, g, 0.5)
    one, c0 = _velocity_update(u, g, 1.0)
    np.testing.assert_allclose(full, one, atol=1e-5)
    np.testing.assert_allclose(c1 + c, c0, rtol=1e-4)


def test_invariance_of_the_frozen_kernel():
    kernel = mams(step_size=1.0, trajectory_length=2.0, adapt=False)
    testing.assert_invariance(kernel, GAUSS10.logdensity_fn, GAUSS10.sample, num_chains=4000, num_steps=3)


def test_gaussian_100d_ensemble_adaptation():
    res = run(gaussian_100, mams(), init=jnp.zeros(100), chains=128, samples=100, warmup=400)
    testing.assert_moments(res.samples[..., ::5], jnp.zeros(20), SCALES[::5] ** 2)
    assert np.all(res.stats["num_grad_evals"] == res.stats["num_grad_evals"][:1])
    params = res.last_state.params
    for leaf in (params.step_size, params.trajectory_length, params.inverse_mass):
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))
    ratio = np.asarray(params.inverse_mass[0]) / np.asarray(SCALES) ** 2
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    assert 0.8 < float(np.mean(res.stats["accept_prob"])) < 0.97  # target 0.9


def _eight_schools_centered(x):
    """The Inference Gym's eight schools (centered): mu ~ N(0, 10), log tau ~ N(5, 1), theta ~ N(mu, tau)."""
    y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    mu, log_tau, theta = x[0], x[1], x[2:]
    return (
        -0.5 * (mu / 10.0) ** 2
        - 0.5 * (log_tau - 5.0) ** 2
        - jnp.sum(0.5 * ((theta - mu) / jnp.exp(log_tau)) ** 2 + log_tau)
        - jnp.sum(0.5 * ((y - theta) / sigma) ** 2)
    )


def test_chains_started_in_the_neck_leave_it():
    # a quarter of the chains start at log tau = -2 with theta of order 1: posterior mass ~e^-40,
    # where the pooled step size (fitted to the bulk, log tau ~ 2.5) rejects every adjusted
    # proposal; the unadjusted start of warmup moves them to the bulk (without it they stay,
    # accepting nothing, for good)
    init = jax.random.uniform(jax.random.key(3), (64, 10), minval=-2.0, maxval=2.0)
    init = init.at[:, 1].set(jnp.where(jnp.arange(64) % 4 == 0, -2.0, 2.5))
    res = run(_eight_schools_centered, mams(), init=init, chains=64, samples=20, warmup=100, init_batched=True)
    log_tau = np.asarray(res.samples[..., 1])
    assert np.all(log_tau.mean(axis=1) > 0.5), np.sort(log_tau.mean(axis=1))[:8]
    assert np.all(np.asarray(res.stats["is_accepted"]).mean(axis=1) > 0), "a chain never moved"


def test_unadjusted_fraction_must_be_a_fraction():
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="unadjusted_fraction"):
            mams(unadjusted_fraction=bad)


def _rotated_gaussian(d=50, long_sd=30.0, seed=1):
    """A randomly rotated Gaussian: unit scales and one direction of scale ``long_sd``."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    sds = np.concatenate([np.ones(d - 1), [long_sd]])
    cov = (q * sds**2) @ q.T
    precision = jnp.asarray(np.linalg.inv(cov), jnp.float32)
    return (lambda x: -0.5 * x @ precision @ x), cov, q[:, -1]


def test_rotated_gaussian_trajectory_length_adapted():
    # d = 50, rotated, one direction 30x the others: the diagonal metric cannot whiten it (in
    # whitened coordinates that direction's scale is ~6.8 against sqrt(d) = 7.1).  With L fixed
    # at sqrt(d) (adapt_length=False) the chains barely move along it within the run: ESS of
    # that coordinate 88 of 3200 draws, R-hat 2.43.  The pooled ChEES criterion lengthens L
    # (~5x): ESS 666, R-hat 1.07.  Moments in MCSE units; the second moment along the long
    # direction also with the standard error of the 64 chains' means (independent chains).
    logdensity, cov, v = _rotated_gaussian()
    init = jax.random.uniform(jax.random.key(2), (64, 50), minval=-2.0, maxval=2.0)
    res = run(logdensity, mams(), init=init, chains=64, samples=50, warmup=150, init_batched=True)
    testing.assert_moments(res.samples[..., ::5], np.zeros(10), np.diag(cov)[::5])
    y2 = np.asarray(res.samples @ jnp.asarray(v, jnp.float32), np.float64) ** 2  # (chains, draws)
    chain_means = y2.mean(axis=1)
    z = (chain_means.mean() - 30.0**2) / (chain_means.std(ddof=1) / np.sqrt(chain_means.size))
    assert abs(z) < 4.0, z
    y = np.asarray(res.samples @ jnp.asarray(v, jnp.float32))[..., None]
    diag = ess_rhat({"y": y})["y"]
    assert float(diag["ess_bulk"][0]) > 5 * 64 and float(diag["r_hat"][0]) < 1.2, diag
    params = res.last_state.params
    for leaf in (params.step_size, params.trajectory_length, params.inverse_mass):
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))
    assert float(params.trajectory_length[0]) > 2 * np.sqrt(50), params.trajectory_length[0]
