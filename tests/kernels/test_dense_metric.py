"""Dense metrics where they matter: a non-diagonal inverse mass matrix on a correlated target.

The other gradient-kernel tests check invariance with the *starting* metric (the identity),
where a dense code path that mixes up a Cholesky factor with its transpose, or the metric
with its inverse, gives the right answer.  Here every gradient kernel takes steps with a
non-diagonal metric (invariance from exact draws: the chains are independent, so the test is
exact), and warmup must adapt a non-diagonal metric that matches the target covariance and
then sample the right moments.  Seeds fixed.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from tests.kernels.gradient_targets import GAUSS10, assert_invariant_with_metric, run

# a metric that is neither the identity nor the target covariance: A = 0.7 Sigma + 0.3 R,
# R a fixed random SPD matrix (so that no symmetry of the target hides a transposed factor)
_R = np.random.default_rng(0).standard_normal((10, 10))
METRIC = jnp.asarray(0.7 * np.asarray(GAUSS10.cov) + 0.3 * (_R @ _R.T / 10 + 0.1 * np.eye(10)), jnp.float32)

KERNELS = {
    "mala": (lambda: mc.mala(mass="dense", adapt=False), 0.4),
    "hmc": (lambda: mc.hmc(5, mass="dense", adapt=False), 0.35),
    "nuts": (lambda: mc.nuts(mass="dense", max_tree_depth=6, adapt=False), 0.4),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_invariance_with_a_non_diagonal_metric(name):
    make, step_size = KERNELS[name]
    assert_invariant_with_metric(make(), METRIC, step_size)


def test_warmup_adapts_a_dense_metric_and_samples_the_target():
    # HMC: its warmup draws are nearly independent, so the metric estimate is accurate (MALA's
    # are strongly autocorrelated; its dense path is covered by the invariance test above)
    res = run(GAUSS10.logdensity_fn, mc.hmc(10, mass="dense"), init=GAUSS10.init, chains=4, samples=1000, warmup=1000)
    adapted = np.asarray(res.last_state.params.inverse_mass)
    assert adapted.shape == (4, 10, 10)
    cov = np.asarray(GAUSS10.cov)
    # the estimate from ~700 slow-window draws per chain: correlation error well under 0.2
    sd = np.sqrt(np.diagonal(adapted, axis1=1, axis2=2))
    corr = adapted / sd[:, :, None] / sd[:, None, :]
    true_corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.max(np.abs(corr - true_corr)) < 0.25, np.max(np.abs(corr - true_corr))
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)


def test_dense_factors_have_the_right_covariances():
    # exact linear algebra on the metric: A^{1/2} z ~ N(0, A) (MALA's noise), the momentum
    # p ~ N(0, A^{-1}), and the Mahalanobis norm r^T A^{-1} r.  A transposed Cholesky factor
    # changes MALA's stationary law only slightly (hard to see in draws), but not these.
    import jax

    from mcgen.kernels._metrics import inverse_mass_quadratic, momentum_from_normal, sqrt_inverse_mass

    eye = jnp.eye(10)
    a = np.asarray(METRIC, np.float64)
    s = np.asarray(jax.vmap(sqrt_inverse_mass(METRIC))(eye), np.float64).T  # columns: S e_i
    np.testing.assert_allclose(s @ s.T, a, rtol=1e-4, atol=1e-4)
    m = np.asarray(jax.vmap(momentum_from_normal(METRIC))(eye), np.float64).T
    np.testing.assert_allclose(m @ m.T, np.linalg.inv(a), rtol=1e-3, atol=1e-3)
    r = np.random.default_rng(1).standard_normal(10)
    assert float(inverse_mass_quadratic(METRIC)(jnp.asarray(r, jnp.float32))) == pytest.approx(
        r @ np.linalg.solve(a, r), rel=1e-4
    )
