"""Flow sampling with temperature and log-likelihood rejection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mcgen.generative import flow_log_prob, sample_flow, sample_flow_rejection

MU = jnp.array([1.0, -2.0])
A = jnp.array([[1.5, 0.0], [0.8, 0.5]])


def affine_forward(z):
    return MU + A @ z


def affine_inverse(x):
    return jnp.linalg.solve(A, x - MU)


def sinh_forward(z):  # a non-linear flow
    return jnp.sinh(z) + 0.5 * z


N = 4000


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.7])
def test_affine_flow_covariance_scales_with_temperature_squared(temperature):
    x = np.asarray(sample_flow(jax.random.key(0), affine_forward, (2,), N, temperature), np.float64)
    cov = temperature**2 * np.asarray(A @ A.T, np.float64)
    se_mean = np.sqrt(np.diag(cov) / N)
    assert np.all(np.abs(x.mean(0) - np.asarray(MU)) < 4 * se_mean)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / N)
    assert np.all(np.abs(np.cov(x.T) - cov) < 4 * se_cov), (np.cov(x.T), cov)


def test_nonlinear_flow_latents_have_temperature_scale():
    temperature = 0.4
    x = sample_flow(jax.random.key(1), sinh_forward, (3,), N, temperature)
    # Invert elementwise with Newton steps and check the latent law N(0, T^2).
    z = jnp.asarray(x)
    for _ in range(30):
        z = z - (jnp.sinh(z) + 0.5 * z - x) / (jnp.cosh(z) + 0.5)
    z = np.asarray(z).ravel()
    assert stats.kstest(z, stats.norm(0, temperature).cdf).pvalue > 1e-3


def test_flow_log_prob_matches_gaussian():
    log_prob = flow_log_prob(affine_inverse)
    x = jnp.array([0.3, -1.0])
    ref = stats.multivariate_normal(np.asarray(MU), np.asarray(A @ A.T)).logpdf(np.asarray(x))
    assert float(log_prob(x)) == pytest.approx(ref, rel=1e-5)


def test_rejection_by_log_likelihood():
    """Affine flow: log p(x) >= tau  <=>  |z|^2 <= r^2, so the latents of kept draws follow a
    chi distribution truncated at r; check the kept fraction of each radius by a KS test."""
    log_prob = flow_log_prob(affine_inverse)
    log_det = -float(jnp.linalg.slogdet(A)[1])
    r2 = 2.0
    tau = -0.5 * r2 - np.log(2 * np.pi) + log_det
    x, valid = sample_flow_rejection(jax.random.key(2), affine_forward, log_prob, (2,), 2000, tau)
    assert x.shape == (2000, 2) and bool(jnp.all(valid))
    assert bool(jnp.all(jax.vmap(log_prob)(x) >= tau))
    radius2 = np.asarray(jnp.sum(jax.vmap(affine_inverse)(x) ** 2, axis=1))
    # |z|^2 ~ chi2(2) truncated to [0, r2].
    cdf = lambda v: stats.chi2(2).cdf(v) / stats.chi2(2).cdf(r2)  # noqa: E731
    assert stats.kstest(radius2, cdf).pvalue > 1e-3
    # The draws are distinct (each round's accepted proposals fill distinct slots).
    assert len(np.unique(np.asarray(x[:, 0]))) == 2000


def test_rejection_runs_out_of_rounds():
    log_prob = flow_log_prob(affine_inverse)
    x, valid = sample_flow_rejection(
        jax.random.key(3), affine_forward, log_prob, (2,), 50, threshold=100.0, max_rounds=3
    )
    assert not bool(jnp.any(valid)) and bool(jnp.all(x == 0))


def test_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        sample_flow(jax.random.key(0), affine_forward, (2,), 10, temperature=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        sample_flow(jax.random.key(0), affine_forward, (2,), 0)
    with pytest.raises(ValueError, match="max_rounds"):
        sample_flow_rejection(jax.random.key(0), affine_forward, lambda x: 0.0, (2,), 10, 0.0, max_rounds=0)


@pytest.mark.parametrize("temperature", [0.6, 1.5])
def test_rejection_honours_temperature(temperature):
    """At temperature T the proposals are z ~ N(0, T^2 I), so kept latents have |z|^2 / T^2
    ~ chi2(2) truncated at r^2 / T^2 (the rejection path must not fall back to T = 1)."""
    log_prob = flow_log_prob(affine_inverse)
    log_det = -float(jnp.linalg.slogdet(A)[1])
    r2 = 2.0
    tau = -0.5 * r2 - np.log(2 * np.pi) + log_det
    x, valid = sample_flow_rejection(
        jax.random.key(5), affine_forward, log_prob, (2,), 2000, tau, temperature=temperature
    )
    assert bool(jnp.all(valid))
    radius2 = np.asarray(jnp.sum(jax.vmap(affine_inverse)(x) ** 2, axis=1)) / temperature**2
    bound = r2 / temperature**2
    cdf = lambda v: stats.chi2(2).cdf(v) / stats.chi2(2).cdf(bound)  # noqa: E731
    assert stats.kstest(radius2, cdf).pvalue > 1e-3
