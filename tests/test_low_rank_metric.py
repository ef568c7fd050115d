"""The low-rank plus diagonal metric (``mass="low_rank"``): its estimator, its operators, its kernels.

* **Estimator, exact answer.**  On a Gaussian :math:`N(\\mu, \\Sigma)` the score is linear,
  :math:`g = -\\Sigma^{-1}(x - \\mu)`, so the Fisher-divergence fit :math:`A C_g A = C_x` is
  :math:`A = \\Sigma` *exactly* from any :math:`n \\ge d` draws (whatever the diagonal scaling):
  with every direction kept (rank :math:`d`, cutoff 1) the estimate must equal the covariance
  up to the regularization :math:`\\gamma = 10^{-3}` and float32 rounding (1% is ample).
* **Estimator, truncation.**  A covariance :math:`S (I + U (\\Lambda - I) U^\\top) S` whose
  directions are Hadamard vectors (all entries :math:`\\pm 1/\\sqrt d`) and whose eigenvalues
  come in pairs :math:`\\lambda, 1/\\lambda` has Fisher diagonal exactly :math:`S^2`; with
  rank 4 the estimator must find :math:`\\Lambda` and the span of :math:`U`.  Only the
  diagonal is estimated with noise (log-sd :math:`\\sqrt{1/n} = 1.6\\%` per entry at
  :math:`n = 4000`), so eigenvalues within 10% and subspace cosines above 0.97 are > 4 sd.
* **Operators.**  Velocity, kinetic energy, momentum, :math:`A^{1/2}` and :math:`r^\\top
  A^{-1} r`, all :math:`O(dk)`, against the dense matrix they represent (float32 rounding).
* **Kernels.**  Invariance of NUTS, HMC and MALA under a fixed non-trivial low-rank metric
  from exact draws (4000 independent chains, so the test is exact); NUTS with a low-rank
  warmup learns the covariance (exact on a Gaussian, as above) and samples the right moments
  in MCSE units.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.adaptation import window
from mcgen.adaptation.low_rank import (
    LowRankInverseMass,
    _select,
    buffer_add,
    buffer_init,
    buffer_recent,
    buffer_switch,
    buffer_weights,
    fit_span,
    log_condition,
    low_rank_estimate,
)
from mcgen.adaptation.window import _foreground_rows, early_schedule
from mcgen.kernels._gradient import GradientParams, GradientState
from mcgen.kernels._integrators import hamiltonian
from mcgen.kernels._metrics import (
    dense_inverse_mass,
    identity_inverse_mass,
    inverse_mass_diagonal,
    inverse_mass_quadratic,
    momentum_from_normal,
    sqrt_inverse_mass,
    velocity,
)
from tests.kernels.gradient_targets import GAUSS10, assert_invariant_with_metric, run


def _fit(draws, grads, weights=None, **settings):
    return jax.jit(functools.partial(low_rank_estimate, **settings))(draws, grads, weights)


def _gaussian_draws(cov, n, seed):
    x = np.random.default_rng(seed).multivariate_normal(np.zeros(len(cov)), cov, n)
    return jnp.asarray(x, jnp.float32), jnp.asarray(-x @ np.linalg.inv(cov), jnp.float32)


def _whitened_eigenvalues(a, cov):
    """Eigenvalues of :math:`L^{-1} A L^{-\\top}`: all 1 iff :math:`A = \\Sigma`."""
    chol = np.linalg.cholesky(cov)
    w = np.linalg.solve(chol, np.linalg.solve(chol, np.asarray(a, np.float64)).T)
    return np.linalg.eigvalsh(0.5 * (w + w.T))


def test_full_rank_estimate_is_the_covariance_of_a_gaussian():
    cov = np.asarray(GAUSS10.cov, np.float64) * np.outer(np.logspace(-1, 1, 10), np.logspace(-1, 1, 10))
    draws, grads = _gaussian_draws(cov, 400, 0)
    metric = _fit(draws, grads, rank=10, cutoff=1.0)
    eig = _whitened_eigenvalues(dense_inverse_mass(metric), cov)
    np.testing.assert_allclose(eig, 1.0, atol=0.01)
    # masked rows are ignored: junk in them changes nothing
    junk = jnp.concatenate([draws, 100.0 + draws[:50]]), jnp.concatenate([grads, -grads[:50]])
    weights = jnp.concatenate([jnp.ones(400), jnp.zeros(50)])
    masked = _fit(*junk, weights, rank=10, cutoff=1.0)
    np.testing.assert_allclose(dense_inverse_mass(masked), dense_inverse_mass(metric), rtol=1e-3, atol=1e-5)


def _hadamard_target():
    h = np.array([[1.0]])
    for _ in range(4):
        h = np.block([[h, h], [h, -h]])  # 16 x 16
    u = h[:, [1, 2, 5, 9]] / 4.0
    vals = np.array([10.0, 0.1, 4.0, 0.25])
    scale = np.logspace(-1, 1, 16)
    inner = np.eye(16) + (u * (vals - 1.0)) @ u.T
    return scale[:, None] * inner * scale[None, :], u, vals, scale


def test_rank_k_estimate_finds_the_eigen_directions_and_eigenvalues():
    cov, u, vals, scale = _hadamard_target()
    fisher = np.sqrt(np.diag(cov) / np.diag(np.linalg.inv(cov)))
    np.testing.assert_allclose(fisher, scale**2, rtol=1e-12)  # the construction is right
    draws, grads = _gaussian_draws(cov, 4000, 1)
    metric = _fit(draws, grads, rank=4, cutoff=2.0)
    found = np.asarray(metric.vals, np.float64)
    order = np.argsort(found)
    np.testing.assert_allclose(found[order], np.sort(vals), rtol=0.1)
    np.testing.assert_allclose(np.asarray(metric.scale, np.float64) ** 2, scale**2, rtol=0.08)
    # the estimated directions span the true ones: principal-angle cosines near 1
    cosines = np.linalg.svd(u.T @ np.asarray(metric.vecs, np.float64), compute_uv=False)
    assert cosines.min() > 0.97, cosines
    # each estimated direction matches the true one of its eigenvalue
    for j in range(4):
        true_j = np.argmin(np.abs(np.log(vals / found[j])))
        assert abs(float(u[:, true_j] @ np.asarray(metric.vecs[:, j], np.float64))) > 0.97
    # a cutoff above every eigenvalue drops all the corrections: the diagonal alone
    diagonal_only = _fit(draws, grads, rank=4, cutoff=20.0)
    assert np.all(np.asarray(diagonal_only.vals) == 1.0)


def _spread_target():
    """A 24-d Gaussian with a lopsided spectrum: 16 eigenvalues spread over [0.02, 0.3] and 8
    over [4, 400], along random directions."""
    rng = np.random.default_rng(5)
    vals = np.concatenate([np.geomspace(0.02, 0.3, 16), np.geomspace(4.0, 400.0, 8)])
    q, _ = np.linalg.qr(rng.standard_normal((24, 24)))
    return (q * vals) @ q.T


def test_regularization_shrinks_the_eigenvalues_as_stated():
    """``gamma`` adds ``r = gamma * level`` to both scaled second moments (``level``: their mean
    diagonal).  On a Gaussian, in the eigenbasis of its scaled covariance, they are
    ``diag(lambda)`` and ``diag(1 / lambda)`` and commute, so the fitted eigenvalue is
    ``sqrt((lambda + r) / (1 / lambda + r))``: known answers for the largest one (211 here),
    94.7 at the default ``gamma = 1e-3`` and 200 at ``1e-5``, from 2000 exact draws within 10%."""
    cov = _spread_target()
    fisher = np.sqrt(np.diag(cov) / np.diag(np.linalg.inv(cov)))
    lam = np.linalg.eigvalsh(cov / np.sqrt(np.outer(fisher, fisher)))
    level = 0.5 * (np.sum(lam) + np.sum(1.0 / lam)) / 24
    draws, grads = _gaussian_draws(cov, 2000, 4)
    for gamma in (1e-3, 1e-5):
        r = gamma * level
        expected = np.sqrt((lam[-1] + r) / (1.0 / lam[-1] + r))
        found = float(np.max(np.asarray(_fit(draws, grads, rank=6, cutoff=2.0, gamma=gamma).vals)))
        assert found == pytest.approx(expected, rel=0.1), (gamma, found, expected)


def _select_reference(lam, used, split):
    """The rule of :func:`_select` by brute force in float64: the ``used`` largest ``|log
    lambda|``, or the two-ended choice that leaves the narrowest range where it is narrower by
    more than ``split**2``."""
    log_lam = np.log(lam)
    m = len(lam)

    def left_range(chosen):
        left = np.delete(log_lam, chosen)
        return max(left.max(initial=0.0), 0.0) - min(left.min(initial=0.0), 0.0)

    first = np.argsort(-np.abs(log_lam), kind="stable")[:used]
    order = np.argsort(log_lam)
    ends = [np.r_[order[: used - t], order[m - t :]].astype(int) for t in range(used + 1)]
    two_ended = min(ends, key=left_range)
    return set(two_ended) if left_range(first) - left_range(two_ended) > 2 * np.log(split) else set(first)


def test_corrections_come_from_both_ends_only_where_that_narrows_the_spectrum():
    """A lopsided spectrum (50 eigenvalues in [0.01, 0.1], 16 in [20, 1000]) with 16
    corrections: the largest ``|log lambda|`` would take the 11 largest and 5 of the smallest,
    leaving a range of 74.5 in its square root; the 16 largest leave 10, so the split takes
    them unless ``split`` asks for more than 7.45.  On random spectra the rule is the brute-force one, and
    both outcomes occur."""
    lam = np.concatenate([np.geomspace(0.01, 0.1, 50), np.geomspace(20.0, 1000.0, 16)])
    reliable = jnp.ones(lam.shape, bool)
    for split, expected in ((1.5, set(range(50, 66))), (7.0, set(range(50, 66))), (8.0, None)):
        chosen = set(np.asarray(_select(jnp.asarray(lam, jnp.float32), reliable, 16, split)).tolist())
        assert chosen == (expected or _select_reference(lam, 16, np.inf)), split
    assert _select_reference(lam, 16, np.inf) != set(range(50, 66))
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(100):
        m = int(rng.integers(5, 40))
        used = int(rng.integers(1, m))
        lam = np.exp(rng.normal(rng.choice([-2.0, 0.0, 2.0]), rng.choice([1.0, 2.0, 4.0]), m)).astype(np.float32)
        chosen = set(np.asarray(_select(jnp.asarray(lam), jnp.ones(m, bool), used, 1.5)).tolist())
        assert chosen == _select_reference(lam.astype(np.float64), used, 1.5)
        outcomes.add(chosen == _select_reference(lam.astype(np.float64), used, np.inf))
    assert outcomes == {True, False}  # the split was taken on some spectra and not on others
    for bad in (0.5, float("nan")):
        with pytest.raises(ValueError, match="split must be at least 1"):
            low_rank_estimate(jnp.ones((4, 3)), jnp.ones((4, 3)), rank=2, split=bad)


def test_the_fit_of_a_lopsided_gaussian_corrects_its_largest_directions():
    """A rotated 40-d Gaussian with 32 eigenvalues in [0.01, 0.1] and 8 in [10, 1000], rank 8,
    from 2000 exact draws: the fit corrects the span of the 8 largest (principal cosines
    above 0.9; 0.96 to 0.99 here).  Ranked by ``|log lambda|`` alone (``split=inf``) it would spend half the
    corrections on the small end (cosines near 0 for 4 of them)."""
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    cov = (q * np.concatenate([np.geomspace(0.01, 0.1, 32), np.geomspace(10.0, 1000.0, 8)])) @ q.T
    draws, grads = _gaussian_draws(cov, 2000, 1)
    for split, found in ((None, 8), (np.inf, 4)):
        metric = _fit(draws, grads, rank=8, **({} if split is None else {"split": split}))
        kept = np.asarray(metric.vals) != 1.0
        assert kept.sum() == 8
        cosines = np.linalg.svd(q[:, -8:].T @ np.asarray(metric.vecs, np.float64)[:, kept], compute_uv=False)
        assert np.sum(cosines > 0.9) == found, (split, cosines)


def test_mass_gamma_reaches_the_warmup_fit():
    """``nuts(mass_gamma=...)`` is the fit's regularization: on the lopsided Gaussian the
    largest eigenvalue of the adapted metric is several times larger at ``1e-5`` than at
    ``1e-2`` (exact fits: 200 against 31), one chain, same seed."""
    cov = _spread_target()
    prec = jnp.asarray(np.linalg.inv(cov), jnp.float32)

    def logdensity(x):
        return -0.5 * x @ prec @ x

    top = []
    for gamma in (1e-5, 1e-2):
        res = mc.run_chains(
            logdensity,
            mc.nuts(mass_gamma=gamma),
            init=jnp.zeros(24),
            num_chains=1,
            num_samples=5,
            num_warmup=400,
            seed=2,
            progress=False,
            warn=False,
        )
        top.append(float(np.max(np.asarray(res.last_state.params.inverse_mass.vals))))
    assert top[0] > 3.0 * top[1], top


def test_fit_from_fewer_than_min_draws_is_the_diagonal_alone():
    # on the Hadamard target 30 rows find the corrections (every whitened eigenvalue is
    # exact for a Gaussian); with min_draws above the rows used the fit is the diagonal alone,
    # and the weights count the rows (30 of 60 rows weighted: no correction at min_draws=40)
    cov, _, _, _ = _hadamard_target()
    draws, grads = _gaussian_draws(cov, 60, 2)
    fitted = _fit(draws[:30], grads[:30], rank=4, cutoff=2.0, min_draws=30)
    assert np.sum(np.asarray(fitted.vals) != 1.0) == 4
    for rows, weights in ((30, None), (60, jnp.arange(60) < 30)):
        alone = _fit(draws[:rows], grads[:rows], weights, rank=4, cutoff=2.0, min_draws=40)
        assert np.all(np.asarray(alone.vals) == 1.0) and np.all(np.asarray(alone.vecs) == 0.0)
        np.testing.assert_array_equal(alone.scale, _fit(draws[:rows], grads[:rows], weights, rank=4, cutoff=2.0).scale)


def test_early_windows_below_mass_min_draws_get_the_diagonal_alone():
    # a 150-step early warmup: its windows hold fewer than 100 draws, so mass_min_draws=100 (the
    # whole buffer) leaves every chain with the diagonal alone, where the default fits the
    # correlated Gaussian's directions (its whitened eigenvalues under the Fisher diagonal
    # reach 0.29 and 2.28, outside the cutoff's [1/2, 2])
    settings = dict(init=GAUSS10.init, chains=2, samples=50, warmup=150)
    few = run(GAUSS10.logdensity_fn, mc.nuts(max_tree_depth=6, mass_min_draws=100), **settings)
    assert np.all(np.asarray(few.last_state.params.inverse_mass.vals) == 1.0)
    default = run(GAUSS10.logdensity_fn, mc.nuts(max_tree_depth=6), **settings)
    assert np.all(np.sum(np.asarray(default.last_state.params.inverse_mass.vals) != 1.0, axis=1) > 0)


def _scale_mixture_draws(n, dim, seed):
    """Exact draws and scores of a funnel: :math:`v \\sim N(0, 1.5^2)`, :math:`x_i | v \\sim N(0, e^v)`.

    Its draws and its scores are uncorrelated between coordinates (each :math:`x_i` is symmetric
    given the rest), so the Fisher-divergence fit of a large sample is the diagonal alone: any
    correction fitted to a few draws is noise.
    """
    rng = np.random.default_rng(seed)
    v = 1.5 * rng.normal(size=n)
    x = rng.normal(size=(n, dim - 1)) * np.exp(v / 2)[:, None]
    gv = -v / 1.5**2 - (dim - 1) / 2 + 0.5 * np.sum(x**2, 1) * np.exp(-v)
    draws, grads = np.column_stack([v, x]), np.column_stack([gv, -x * np.exp(-v)[:, None]])
    return jnp.asarray(draws, jnp.float32), jnp.asarray(grads, jnp.float32)


def test_log_condition_is_the_condition_number_the_metric_leaves():
    # the Hadamard target scaled by its exact diagonal: the draws' covariance is I + U (L - I) U^T
    # with eigenvalues 10 ... 0.1, the scores' its inverse, so lambda_max(C_x) lambda_max(C_g) =
    # 10 * 10; under the exact correction both are I (log 0).  From 20,000 draws the top sample
    # eigenvalue of a 16-d covariance lies within a few sqrt(16 / 20000) = 3% of the truth.
    cov, u, vals, scale = _hadamard_target()
    x, g = _gaussian_draws(cov, 20_000, 0)
    xs, gs, w = (x - x.mean(0)) / scale, (g - g.mean(0)) * scale, jnp.ones(20_000)
    assert abs(float(log_condition(xs, gs, w)) - np.log(100.0)) < 0.15
    exact = log_condition(xs, gs, w, jnp.asarray(u, jnp.float32), jnp.asarray(vals, jnp.float32))
    assert 0.0 <= float(exact) < 0.15
    # the weights choose the rows: the first half alone gives the same (within its noise)
    half = log_condition(xs, gs, (jnp.arange(20_000) < 10_000).astype(jnp.float32))
    assert abs(float(half) - np.log(100.0)) < 0.2


def test_holdout_keeps_what_held_out_draws_confirm():
    # a Gaussian's fit is exact from any few draws, so it wins on the held-out half and stays;
    # a funnel's correction from 20 or 100 draws is noise (the fit of a large sample is the
    # diagonal), kept by the plain fit in every one of 20 windows and dropped by the held-out
    # check in every one (the margins are wide: the held-out condition number grows 2-10-fold)
    cov, _, _, _ = _hadamard_target()
    fold = jnp.arange(20) < 10
    for seed in range(10):
        x, g = _gaussian_draws(cov, 20, seed)
        plain, checked = _fit(x, g, rank=4, cutoff=2.0), _fit(x, g, rank=4, cutoff=2.0, holdout=fold)
        assert np.sum(np.asarray(plain.vals) != 1.0) == 4
        np.testing.assert_array_equal(checked.vals, plain.vals)
        np.testing.assert_array_equal(checked.vecs, plain.vecs)
    for rows in (20, 100):
        fold = jnp.arange(rows) < rows // 2
        for seed in range(20):
            x, g = _scale_mixture_draws(rows, 16, seed)
            assert np.sum(np.asarray(_fit(x, g, rank=4, cutoff=2.0).vals) != 1.0) > 0
            checked = _fit(x, g, rank=4, cutoff=2.0, holdout=fold)
            assert np.all(np.asarray(checked.vals) == 1.0) and np.all(np.asarray(checked.vecs) == 0.0)
            np.testing.assert_array_equal(checked.scale, _fit(x, g, rank=4, cutoff=2.0).scale)


def test_mass_holdout_leaves_a_funnel_the_diagonal_and_a_gaussian_its_fit():
    # the warmup splits each window into its older and newer half: on a 10-d funnel the fits of
    # an early warmup are noise and every chain ends on the diagonal alone (the plain fit ends
    # with spurious directions in some chains); on the correlated Gaussian the check keeps the fit
    def funnel(x):
        return -0.5 * x[0] ** 2 / 2.25 - 0.5 * jnp.sum(x[1:] ** 2) * jnp.exp(-x[0]) - 4.5 * x[0]

    settings = dict(init=jnp.zeros(10), chains=4, samples=20, warmup=150)
    plain = run(funnel, mc.nuts(max_tree_depth=6), **settings)
    assert np.any(np.asarray(plain.last_state.params.inverse_mass.vals) != 1.0)
    checked = run(funnel, mc.nuts(max_tree_depth=6, mass_holdout=True), **settings)
    assert np.all(np.asarray(checked.last_state.params.inverse_mass.vals) == 1.0)
    settings = dict(init=GAUSS10.init, chains=2, samples=20, warmup=150)
    gauss = run(GAUSS10.logdensity_fn, mc.nuts(max_tree_depth=6, mass_holdout=True), **settings)
    assert np.all(np.sum(np.asarray(gauss.last_state.params.inverse_mass.vals) != 1.0, axis=1) > 0)


def _reference_fit(draws, grads, rank, cutoff, gamma=1e-3):
    """The estimator of the module doc in float64 numpy, with an SVD basis of the span of the
    scaled draws and scores where the estimator takes a QR basis: the fit is basis-free, so
    the dense metrics must agree."""
    x, g = np.asarray(draws, np.float64), np.asarray(grads, np.float64)
    dx, dg = x - x.mean(0), g - g.mean(0)
    scale = np.sqrt(np.sqrt(np.sum(dx * dx, 0) / np.sum(dg * dg, 0)))
    xs, gs = dx / scale, dg * scale
    left, sing, _ = np.linalg.svd(np.concatenate([xs, gs]).T, full_matrices=False)
    basis = left[:, : min(x.shape[1], 2 * x.shape[0])]
    px, pg = xs @ basis, gs @ basis
    cx, cg = px.T @ px / len(x), pg.T @ pg / len(x)
    level = 0.5 * (np.trace(cx) + np.trace(cg)) / basis.shape[1]
    cx, cg = cx + gamma * level * np.eye(len(cx)), cg + gamma * level * np.eye(len(cg))
    e, v = np.linalg.eigh(cg)
    half, inv_half = (v * np.sqrt(e)) @ v.T, (v / np.sqrt(e)) @ v.T
    e2, v2 = np.linalg.eigh(half @ cx @ half)
    a = inv_half @ ((v2 * np.sqrt(e2)) @ v2.T) @ inv_half
    lam, vecs = np.linalg.eigh(0.5 * (a + a.T))
    top = np.argsort(-np.abs(np.log(lam)))[:rank]
    lam, u = lam[top], basis @ vecs[:, top]
    lam = np.where((lam > cutoff) | (lam < 1 / cutoff), lam, 1.0)
    inner = np.eye(len(scale)) + (u * (lam - 1.0)) @ u.T
    return scale[:, None] * inner * scale[None, :]


@pytest.mark.parametrize("n_rows", [40, 12])
def test_fit_does_not_depend_on_the_basis_of_the_span(n_rows):
    # n = 40 > d = 30: C_x and C_g have full rank; n = 12 < d: the regularization alone sets
    # some directions, and the fit must still match float64 (no covariance is formed in float32);
    # 2n = 24 < d: the fit works in the QR basis of the span, not in the standard one
    cov, _, _, _ = _hadamard_target()
    cov = np.kron(np.eye(2), cov)[:30, :30]
    draws, grads = _gaussian_draws(cov, n_rows, 2)
    rank = min(30, 2 * n_rows)  # every direction of the span kept: no near-tie decides which
    metric = dense_inverse_mass(_fit(draws, grads, rank=rank, cutoff=1.0))
    reference = _reference_fit(draws, grads, rank, 1.0)
    np.testing.assert_allclose(
        np.asarray(metric, np.float64), reference, rtol=2e-3, atol=1e-3 * np.abs(reference).max()
    )


def _ring(draws, grads, size, switches):
    """A buffer of ``size`` slots fed ``draws, grads`` row by row, switched (keeping the
    background, as the early schedule does) after the rows numbered in ``switches``."""
    buf = buffer_init(size, draws.shape[1], draws.dtype)
    for j in range(len(draws)):
        buf = buffer_add(buf, draws[j], grads[j])
        if j in switches:
            buf = buffer_switch(buf, True)
    return buf


@pytest.mark.parametrize("dim", [60, 100])
def test_fit_from_the_newest_slots_is_the_fit_of_the_whole_buffer(dim):
    # A window of 11 draws in a 40-slot ring that has wrapped (57 draws written; switches after
    # draws 45 and 50, so the foreground is the 11 since draw 45): the fit from the newest 16
    # slots, with the whole buffer's subspace dimension for the level, must give the whole
    # buffer's metric, to float32 rounding.  dim 60: the whole buffer's fit is in the standard
    # basis; dim 100 > 2 * 40: in a QR basis of 80.  (gamma 1e-2: the level of a 32-dimensional
    # fit, were it taken over its own dimensions, would move the metric by 1e-3 of its largest
    # entry, 1e-4 at gamma 1e-3.)
    cov, _, _, _ = _hadamard_target()
    cov = np.kron(np.eye(dim // 10 + 1), cov)[:dim, :dim]
    draws, grads = _gaussian_draws(cov, 57, 5)
    buf = _ring(draws, grads, 40, switches={45, 50})
    assert float(jnp.sum(buffer_weights(buf))) == 11
    settings = dict(rank=16, cutoff=1.5, gamma=1e-2, diag=jnp.asarray(np.diag(cov), jnp.float32))
    whole = _fit(buf.draws, buf.grads, buffer_weights(buf), **settings)
    recent = buffer_recent(buf, 16)
    assert float(jnp.sum(buffer_weights(recent))) == 11
    part = _fit(recent.draws, recent.grads, buffer_weights(recent), level_dim=fit_span(dim, 40), **settings)
    assert np.sum(np.asarray(whole.vals) != 1.0) >= 3  # the window's correlations are corrected
    a, b = dense_inverse_mass(whole), dense_inverse_mass(part)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5 * np.abs(a).max())


def test_foreground_rows_are_those_the_buffer_holds():
    # the static count of rows that decides which fits use the newest slots only, against the
    # buffer driven along the early schedule of a 300-step warmup with 40 slots
    sched = early_schedule(300, update_every=20)
    rows = _foreground_rows(sched, True, 40)
    buf = buffer_init(40, 2, jnp.float32)
    x = jnp.zeros(2)
    for i in range(300):
        buf = buffer_add(buf, x, x, bool(sched["collect"][i]))
        assert int(jnp.sum(buffer_weights(buf))) == rows[i], i
        buf = buffer_switch(buf, True, bool(sched["switch"][i]))
    assert rows[sched["update"]].min() == 3 and rows[sched["update"]].max() == 40


class _FakeInfo(NamedTuple):
    accept_prob: jax.Array
    num_grad_evals: jax.Array


def _walk_step(key, state, logdensity_fn):
    """A transition that ignores the metric: a random walk scored by a correlated Gaussian."""
    del logdensity_fn
    q = 0.9 * state.position + 0.3 * jax.random.normal(key, state.position.shape, state.position.dtype)
    grad = -(q @ _WALK_PRECISION).astype(q.dtype)
    return state._replace(position=q, logdensity_grad=grad), _FakeInfo(jnp.float32(0.8), jnp.int32(1))


_WALK_PRECISION = jnp.asarray(np.linalg.inv(np.kron(np.eye(6), _hadamard_target()[0])[:60, :60]), jnp.float32)


@pytest.mark.parametrize("steps", [96, 316, 400])
def test_the_warmup_fits_short_windows_from_the_newest_slots(monkeypatch, steps):
    # The early schedule's fit after step 95 uses a window of 11 draws (from the newest slots of
    # the buffer); after step 315, one of 31 draws, and after step 399 the buffer's 100 rows
    # (both from the whole buffer).  The
    # transition ignores the metric, so with the newest-slot fits switched off
    # (_RECENT_ROWS = 0) the warmup sees the same draws, and its metric must be the same to
    # float32 rounding.
    def metric(recent_rows):
        monkeypatch.setattr(window, "_RECENT_ROWS", recent_rows)
        monkeypatch.setattr(window, "_RECENT_MIN_WORK", 0)  # the small program at any chain count
        warmup = window.window_adaptation(
            _walk_step, 1000, target_accept=0.8, estimator="low_rank", schedule="early", update_every=20
        )

        def one(key):
            q = jnp.ones((60,), jnp.float32)
            start = GradientState(
                q,
                jnp.float32(0.0),
                -q,
                GradientParams(jnp.float32(0.5), identity_inverse_mass("low_rank", 60, jnp.float32, 16)),
            )
            ws = warmup.init(start)
            ws, _ = jax.lax.scan(lambda c, k: (warmup.step(k, c, None)[0], None), ws, jax.random.split(key, steps))
            return ws.state.params.inverse_mass

        return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), 2))

    recent, whole = metric(16), metric(0)
    assert np.sum(np.asarray(whole.vals) != 1.0) >= 4  # the fits corrected some directions
    for c in range(2):
        a = dense_inverse_mass(jax.tree_util.tree_map(lambda x: x[c], whole))
        b = dense_inverse_mass(jax.tree_util.tree_map(lambda x: x[c], recent))
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5 * np.abs(a).max())


def test_newest_slot_fits_are_built_only_where_the_chains_repay_their_compile():
    # the small fit program costs about 1.4 s of compile and saves about 0.016 s of warmup
    # per chain at d = 100: built from chains * d >= _RECENT_MIN_WORK (8192) of run_chains'
    # requested chains, padding left out; outside run_chains the count is taken as 1
    from mcgen.adaptation.ensemble import _chain_axis

    assert window._RECENT_MIN_WORK == 8192
    assert not window._newest_slot_fits(100)
    for chains, dim, built in [(4, 100, False), (64, 100, False), (82, 100, True), (128, 100, True), (16, 512, True)]:
        with _chain_axis("vectorized", chains):
            assert window._newest_slot_fits(dim) == built, (chains, dim)
    with _chain_axis("vectorized", 4, split=("devices", 16)):  # padding and devices do not count
        assert not window._newest_slot_fits(100)
    with _chain_axis("sequential", 128):
        assert window._newest_slot_fits(100)


def test_fit_on_a_diagonal_gaussian_corrects_nothing():
    # On a diagonal Gaussian the score is g_i = -x_i / sigma_i^2 coordinate by coordinate, so
    # the scaled draws and scores are exact negatives, C_x = C_g, and the fit is A = I (no
    # correction) exactly, from any number of rows.  With as many rows as dimensions (the
    # 100-draw buffer at d = 100) C_x has eigenvalues down to the regularization; a fit that
    # forms C_g^{1/2} C_x C_g^{1/2} in float32 returned eigenvalues 1.1 to 1.6 here.
    scales = np.logspace(-2, 0, 100)
    fit = jax.jit(functools.partial(low_rank_estimate, rank=100, cutoff=1.0))  # every direction kept
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((100, 100)) * scales
        draws, grads = jnp.asarray(x, jnp.float32), jnp.asarray(-x / scales**2, jnp.float32)
        metric = fit(draws, grads)
        np.testing.assert_allclose(np.asarray(metric.vals), 1.0, atol=1e-3)
        np.testing.assert_allclose(np.asarray(metric.scale) ** 2, scales**2, rtol=1e-4)


def test_fit_under_vmap_is_the_fit_of_each_chain():
    # The fit's SVDs have their own batching rule (one matrix at a time on CPU): under vmap,
    # nested vmap and with an unbatched operand, each chain must get its own fit, as alone.
    cov, _, _, _ = _hadamard_target()
    draws = jnp.stack([_gaussian_draws(cov, 12, seed)[0] for seed in range(6)]).reshape(2, 3, 12, -1)
    grads = jnp.stack([_gaussian_draws(cov, 12, seed)[1] for seed in range(6)]).reshape(2, 3, 12, -1)
    fit = functools.partial(low_rank_estimate, rank=16, cutoff=1.0)  # all kept: no near-tie picks
    nested = jax.jit(jax.vmap(jax.vmap(fit)))(draws, grads)
    shared = jax.jit(jax.vmap(fit, in_axes=(0, None)))(draws[0], grads[0, 0])
    for i in range(2):
        for j in range(3):
            alone = dense_inverse_mass(jax.jit(fit)(draws[i, j], grads[i, j]))
            one = jax.tree_util.tree_map(lambda a: a[i, j], nested)
            np.testing.assert_allclose(dense_inverse_mass(one), alone, rtol=1e-4, atol=1e-5)
    alone = dense_inverse_mass(jax.jit(fit)(draws[0, 2], grads[0, 0]))
    one = jax.tree_util.tree_map(lambda a: a[2], shared)
    np.testing.assert_allclose(dense_inverse_mass(one), alone, rtol=1e-4, atol=1e-5)


def _random_metric(d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    vecs, _ = np.linalg.qr(rng.standard_normal((d, k)))
    metric = LowRankInverseMass(
        jnp.asarray(np.exp(rng.normal(size=d)), jnp.float32),
        jnp.asarray(vecs, jnp.float32),
        jnp.asarray([7.0, 0.2, 1.0], jnp.float32),
    )
    return metric, np.asarray(dense_inverse_mass(metric), np.float64)


def test_low_rank_operators_agree_with_the_dense_matrix():
    metric, a = _random_metric()
    d = a.shape[0]
    rng = np.random.default_rng(1)
    p = rng.standard_normal(d)
    pj = jnp.asarray(p, jnp.float32)
    np.testing.assert_allclose(velocity(metric, pj), a @ p, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(inverse_mass_diagonal(metric), np.diag(a), rtol=1e-5)
    kinetic = float(hamiltonian(jnp.zeros(()), pj, metric))  # H at log-density 0
    assert kinetic == pytest.approx(0.5 * p @ a @ p, rel=1e-5)
    eye = jnp.eye(d)
    s = np.asarray(jax.vmap(sqrt_inverse_mass(metric))(eye), np.float64).T  # columns: A^{1/2} e_i
    np.testing.assert_allclose(s @ s.T, a, rtol=1e-4, atol=1e-5)
    m = np.asarray(jax.vmap(momentum_from_normal(metric))(eye), np.float64).T  # p = B z: cov B B^T
    np.testing.assert_allclose(m @ m.T, np.linalg.inv(a), rtol=1e-4, atol=1e-4)
    r = rng.standard_normal(d)
    quad = float(inverse_mass_quadratic(metric)(jnp.asarray(r, jnp.float32)))
    assert quad == pytest.approx(r @ np.linalg.solve(a, r), rel=1e-4)


def _metric_keeping(kept, k=16, d=20, seed=0):
    """A metric of ``k`` columns whose first ``kept`` carry a correction; the others are void
    (eigenvalue 1) but hold random vectors, which must then change nothing."""
    rng = np.random.default_rng(seed)
    vecs, _ = np.linalg.qr(rng.standard_normal((d, k)))
    vals = np.where(np.arange(k) < kept, np.exp(rng.normal(0.0, 1.5, k)), 1.0)
    return LowRankInverseMass(
        jnp.asarray(np.exp(rng.normal(size=d)), jnp.float32),
        jnp.asarray(vecs, jnp.float32),
        jnp.asarray(vals, jnp.float32),
    )


def _operators(metric, x):
    return (
        velocity(metric, x),
        momentum_from_normal(metric)(x),
        sqrt_inverse_mass(metric)(x),
        inverse_mass_quadratic(metric)(x),
        hamiltonian(jnp.zeros(()), x, metric),
    )


def _dense_operators(metric, x):
    """The operators from the metric's parts in float64 numpy, every column included."""
    scale, u, vals = (np.asarray(a, np.float64) for a in metric)
    x = np.asarray(x, np.float64)

    def factor(f):  # I + U diag(f(vals) - 1) U^T
        return np.eye(len(scale)) + (u * (f(vals) - 1.0)) @ u.T

    a = scale[:, None] * factor(lambda v: v) * scale[None, :]
    return (
        a @ x,
        factor(lambda v: v**-0.5) @ x / scale,
        scale * (factor(np.sqrt) @ x),
        x @ np.linalg.solve(a, x),
        0.5 * x @ a @ x,
    )


def test_operators_cut_to_the_kept_columns_over_a_batch():
    # metrics of 16 columns keeping 0, 1 and 5 directions: alone they are cut to 0, 1 and 16
    # columns, vmapped together to 16 (the largest need), under nested vmap too; every operator
    # must equal the one computed in float64 with every column
    metrics = [_metric_keeping(kept, seed=kept) for kept in (0, 1, 5)]
    x = jnp.asarray(np.random.default_rng(3).standard_normal((3, 20)), jnp.float32)
    dense = [_dense_operators(m, xi) for m, xi in zip(metrics, x)]
    alone = [jax.jit(_operators)(m, xi) for m, xi in zip(metrics, x)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *metrics)
    batched = jax.jit(jax.vmap(_operators))(stacked, x)
    nested = jax.jit(jax.vmap(jax.vmap(_operators)))(
        jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), stacked), jnp.stack([x, x])
    )
    for i in range(3):
        for j, want in enumerate(dense[i]):
            for got in (alone[i][j], batched[j][i], nested[j][1, i]):
                np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
    # the cut is a branch taken once for the batch, not a select that computes every branch
    assert "cond[" in str(jax.make_jaxpr(jax.vmap(velocity))(stacked, x))
    nested_args = jax.tree_util.tree_map(lambda a: a[None], (stacked, x))
    assert "cond[" in str(jax.make_jaxpr(jax.vmap(jax.vmap(velocity)))(*nested_args))


@pytest.mark.parametrize("name", ["nuts", "hmc", "mala"])
def test_a_low_rank_metric_that_corrects_nothing_samples_as_the_diagonal_one(name):
    # the warmup's fit kept no direction (every eigenvalue 1, whatever the vectors): the kernel
    # must run the diagonal metric's arithmetic, so its draws are those of the diagonal metric
    # s^2, bit for bit (and it costs what the diagonal one costs)
    make = {
        "nuts": lambda mass: mc.nuts(mass=mass, max_tree_depth=6, step_size=0.4, adapt=False),
        "hmc": lambda mass: mc.hmc(5, mass=mass, step_size=0.3, adapt=False),
        "mala": lambda mass: mc.mala(mass=mass, step_size=0.4, adapt=False),
    }[name]
    void = _metric_keeping(0, k=4, d=10)
    diag = void.scale * void.scale

    def draws(kernel, inverse_mass):
        def chain(key):
            state = kernel.init(GAUSS10.init, GAUSS10.logdensity_fn)
            state = state._replace(params=state.params._replace(inverse_mass=inverse_mass))

            def body(state, k):
                state, _ = kernel.step(k, state, GAUSS10.logdensity_fn)
                return state, state.position

            return jax.lax.scan(body, state, jax.random.split(key, 30))[1]

        return np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(5), 4)))

    low_rank, diagonal = draws(make("low_rank"), void), draws(make("diag"), diag)
    assert np.abs(np.diff(diagonal, axis=1)).max() > 0  # the chains moved
    np.testing.assert_array_equal(low_rank, diagonal)


# a fixed metric that is neither the identity nor the target covariance
_U, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((10, 2)))
METRIC = LowRankInverseMass(
    jnp.asarray(np.sqrt(np.diag(np.asarray(GAUSS10.cov))) * 0.8, jnp.float32),
    jnp.asarray(_U, jnp.float32),
    jnp.asarray([3.0, 0.4], jnp.float32),
)

KERNELS = {
    "mala": (lambda: mc.mala(mass="low_rank", mass_rank=2, adapt=False), 0.4),
    "hmc": (lambda: mc.hmc(5, mass="low_rank", mass_rank=2, adapt=False), 0.3),
    "nuts": (lambda: mc.nuts(mass="low_rank", mass_rank=2, max_tree_depth=6, adapt=False), 0.4),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_invariance_with_a_low_rank_metric(name):
    make, step_size = KERNELS[name]
    assert_invariant_with_metric(make(), METRIC, step_size)


def test_nuts_default_is_the_low_rank_metric_on_the_early_schedule():
    # mc.nuts()'s default (chosen in issue 15) is mass="low_rank" on the early schedule, bit for
    # bit.  On this correlated Gaussian the fit is exact (the gradients are linear in x) and the
    # cutoff c = 2 leaves only corrections inside [1/2, 2] undone, so every whitened eigenvalue
    # of the final metric lies in [1/2, 2] up to the 1e-3 regularization; Stan's diagonal
    # (0.37-2.94 here) and the Fisher diagonal (0.29-2.28) do not
    settings = dict(init=GAUSS10.init, chains=4, samples=400, warmup=300)
    res = run(GAUSS10.logdensity_fn, mc.nuts(max_tree_depth=6), **settings)
    explicit = mc.nuts(max_tree_depth=6, mass="low_rank", warmup_schedule="early")
    np.testing.assert_array_equal(res.samples, run(GAUSS10.logdensity_fn, explicit, **settings).samples)
    metric = res.last_state.params.inverse_mass
    cov = np.asarray(GAUSS10.cov, np.float64)
    for c in range(4):
        eig = _whitened_eigenvalues(dense_inverse_mass(jax.tree_util.tree_map(lambda x, c=c: x[c], metric)), cov)
        assert 0.45 < eig.min() and eig.max() < 2.2, (c, eig)
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)


def test_nuts_low_rank_warmup_learns_the_covariance_and_samples_the_target():
    # every direction kept (rank 10, cutoff 1): on a Gaussian the fit is the covariance itself
    # from the window's last 100 draws and gradients, whatever their autocorrelation
    kernel = mc.nuts(mass="low_rank", warmup_schedule="stan", mass_rank=10, mass_eigval_cutoff=1.0, max_tree_depth=6)
    res = run(GAUSS10.logdensity_fn, kernel, init=GAUSS10.init, chains=4, samples=300, warmup=200)
    metric = res.last_state.params.inverse_mass
    assert metric.vecs.shape == (4, 10, 10)
    cov = np.asarray(GAUSS10.cov, np.float64)
    for c in range(4):
        chain_metric = jax.tree_util.tree_map(lambda x, c=c: x[c], metric)
        eig = _whitened_eigenvalues(dense_inverse_mass(chain_metric), cov)
        np.testing.assert_allclose(eig, 1.0, atol=0.02)
    testing.assert_moments(res.samples, GAUSS10.mean, GAUSS10.var)
    # the warmup record holds the metric's diagonal at each window end
    recorded = res.warmup_stats["inverse_mass"][:, -1]
    np.testing.assert_allclose(recorded, np.broadcast_to(np.diag(cov), recorded.shape), rtol=0.02)


def test_low_rank_settings_are_checked():
    with pytest.raises(ValueError, match="mass_rank"):
        mc.nuts(mass="low_rank", mass_rank=0)
    with pytest.raises(ValueError, match="mass_eigval_cutoff"):
        mc.hmc(mass="low_rank", mass_eigval_cutoff=0.5)
    with pytest.raises(ValueError, match="mass_buffer"):
        mc.mala(mass="low_rank", mass_buffer=2)
    with pytest.raises(ValueError, match="mass_min_draws"):
        mc.nuts(mass_min_draws=2)
    with pytest.raises(ValueError, match="mass_holdout"):
        mc.hmc(mass_holdout="yes")
    for bad in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="mass_gamma"):
            mc.mala(mass_gamma=bad)


def test_a_state_with_another_metric_cannot_warm_start_the_default():
    # a Result of mc.nuts(mass="diag") handed to mc.nuts() (low-rank): a clear error naming the
    # way out, and the way out works
    def logdensity(x):
        return -0.5 * jnp.sum(x**2)

    settings = dict(num_chains=2, num_samples=10, num_warmup=30, progress=False, warn=False)
    first = mc.run_chains(logdensity, mc.nuts(mass="diag", max_tree_depth=4), init=jnp.zeros(3), **settings)
    with pytest.raises(ValueError, match="cannot warm-start it; pass the same mass="):
        mc.run_chains(logdensity, mc.nuts(max_tree_depth=4), init=first, **settings)
    again = mc.run_chains(
        logdensity, mc.nuts(max_tree_depth=4), init=first.last_state.position, init_batched=True, **settings
    )
    assert isinstance(again.last_state.params.inverse_mass, LowRankInverseMass)
