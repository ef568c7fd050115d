"""A low-rank plus diagonal metric from the draws and gradients of a warmup window.

The diagonal metric of :func:`~mcgen.adaptation.welford.fisher_diagonal` cannot undo a
correlation; a dense one needs :math:`O(d^2)` memory and work per leapfrog step and many draws
to estimate.  In between, Seyboldt, Carlson and Carpenter (2026, the estimator of nutpie)
correct the diagonal along a few directions, chosen as those where a Gaussian approximation
fitted by minimizing a Fisher divergence differs most from the diagonal one:

1. **Scale.**  Each coordinate is scaled by :math:`s_i = (\\operatorname{Var} x_i /
   \\operatorname{Var} g_i)^{1/4}`, so that :math:`s_i^2` is the Fisher diagonal: centred
   draws become :math:`\\tilde x = (x - \\bar x) / s` and centred scores (gradients of the
   log-density) :math:`\\tilde g = (g - \\bar g)\\, s`.
2. **Subspace.**  With :math:`n` draws and scores, all the information lies in the span of
   the :math:`2n` vectors :math:`\\tilde x_j, \\tilde g_j`; an orthonormal basis
   :math:`Q` (``(d, m)``, :math:`m = \\min(d, 2n)`) comes from one thin QR factorization
   (where :math:`d \\le 2n` the span is all of :math:`\\mathbb R^d` and :math:`Q = I`).
3. **Fit.**  In that basis, with the regularized second moments
   :math:`C_x = \\tfrac1n \\sum_j Q^\\top \\tilde x_j \\tilde x_j^\\top Q + \\gamma \\ell I` and
   :math:`C_g` alike (:math:`\\ell` the mean of their diagonals: about 1 near the typical set,
   larger in the transient), the affine Fisher-divergence optimum is the metric :math:`A` with
   :math:`A\\, C_g\\, A = C_x`: the geometric mean

   .. math::

       A = C_x \\,\\#\\, C_g^{-1} = C_g^{-1/2} \\bigl(C_g^{1/2} C_x C_g^{1/2}\\bigr)^{1/2} C_g^{-1/2} .

   On a Gaussian target :math:`C_g \\to \\Sigma^{-1}` and :math:`C_x \\to \\Sigma` (scaled),
   so :math:`A \\to \\Sigma`: the exact covariance, from draws *and* gradients.
4. **Truncate.**  Of the eigenpairs :math:`(\\lambda_j, v_j)` of :math:`A`, the ``rank`` with
   the largest :math:`|\\log \\lambda_j|` are kept, unless taking them from the two ends of
   the sorted spectrum leaves the others a far narrower range (``split``: the lopsided
   spectra where the first rule corrects the crowded end and leaves the extreme one), and
   among them only those outside :math:`[1/c, c]` (``cutoff`` :math:`c`); the others get
   :math:`\\lambda = 1`, no effect.
   So do eigenvalues below :math:`10^{-5}` times the largest, which float32 does not resolve.

The metric is then :math:`S (I + U (\\Lambda - I) U^\\top) S` with :math:`U = Q V`
(:class:`LowRankInverseMass`), the kept directions first, applied in :math:`O(dk)` per leapfrog
step, and in fact :math:`O(dc)` with ``c`` the kept ones rounded up
(:func:`~mcgen.kernels._metrics.by_kept_columns`).  The work of an update is :math:`O(d n^2 + n^3)`, spent only at the steps where the
warmup sets the metric.

The window keeps its last draws and scores in a ring buffer of fixed size
(:class:`LowRankBuffer`, ``(size, d)`` twice per chain); ``stamp`` records which draw each
slot holds, so the foreground of the warmup (the draws since its last switch) is a mask over
the slots and every shape stays fixed.

References
----------
Seyboldt, A., Carlson, E. and Carpenter, B. (2026). Preconditioning Hamiltonian Monte Carlo by
minimizing Fisher Divergence. arXiv:2603.18845.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, TypeVar, cast

import jax
import jax.numpy as jnp

# Bounds of the diagonal part (as for the Fisher diagonal): they only stop a coordinate whose
# draws or scores did not vary from giving 0 or inf.
_SCALE_BOUNDS = (1e-5, 1e5)
# Smallest eigenvalue of the fitted metric, relative to its largest, that float32 resolves.
_RELIABLE = 1e-5


class LowRankInverseMass(NamedTuple):
    """A diagonal plus low-rank inverse mass :math:`A = S (I + U (\\Lambda - I) U^\\top) S`.

    Shapes are fixed (``k`` is a setting): a direction that carries no correction has
    eigenvalue 1 (its column of ``vecs`` may then be anything, zeros included).
    """

    scale: jax.Array  # (d,) s: the square root of the diagonal part
    vecs: jax.Array  # (d, k) U: orthonormal columns (where vals != 1)
    vals: jax.Array  # (k,) Lambda: eigenvalues of the scaled metric along U


# the fewest draws a warmup window must hold for its low-rank fit (window_adaptation's
# min_draws, the kernels' mass_min_draws); from fewer, the diagonal alone.  3: every window
# is fitted, as nutpie does (40 was measured and not kept: docs, "Held out: the Gym's
# real-data targets")
LOW_RANK_MIN_DRAWS = 3

# the regularization of the fit (low_rank_estimate's gamma, the kernels' mass_gamma): gamma
# times the mean scaled second moment is added to both second moments
LOW_RANK_GAMMA = 1e-3

# the fit's corrections are split between the two ends of the spectrum where that leaves the
# uncorrected eigenvalues a range narrower by this factor, in its square root, than the
# largest |log lambda| (low_rank_estimate's split; the gradient-kernel docs: "Corrections
# from both ends where it pays: the rotated Gaussian (session 30)")
LOW_RANK_SPLIT = 1.5


def is_low_rank(inverse_mass) -> bool:
    return isinstance(inverse_mass, LowRankInverseMass)


def low_rank_diagonal(m: LowRankInverseMass) -> jax.Array:
    """The diagonal of the metric :math:`A`, ``(d,)``."""
    return m.scale**2 * (1.0 + (m.vecs**2) @ (m.vals - 1.0))


class LowRankBuffer(NamedTuple):
    """The last ``size`` draws and scores of a window, in a ring (``size`` 0: none kept)."""

    draws: jax.Array  # (size, d)
    grads: jax.Array  # (size, d)
    stamp: jax.Array  # (size,) int32: the number of the draw in each slot (-1: empty)
    collected: jax.Array  # () int32: draws added so far
    start: jax.Array  # () int32: number of the first draw of the foreground
    background_start: jax.Array  # () int32: number of the first draw of the background


def buffer_init(size: int, dim: int, dtype) -> LowRankBuffer:
    zero = jnp.zeros((), jnp.int32)
    return LowRankBuffer(
        jnp.zeros((size, dim), dtype), jnp.zeros((size, dim), dtype), jnp.full((size,), -1, jnp.int32), zero, zero, zero
    )


def buffer_add(buf: LowRankBuffer, x: jax.Array, g: jax.Array, active: bool | jax.Array = True) -> LowRankBuffer:
    """Write a draw and its score over the oldest slot (nothing where ``active`` is False).

    Only the written row is selected on ``active``: a select over the whole buffer would copy
    ``2 * size * d`` numbers at every warmup step.
    """
    active = jnp.asarray(active)
    slot = buf.collected % buf.stamp.shape[0]
    return buf._replace(
        draws=buf.draws.at[slot].set(jnp.where(active, x, buf.draws[slot])),
        grads=buf.grads.at[slot].set(jnp.where(active, g.astype(x.dtype), buf.grads[slot])),
        stamp=buf.stamp.at[slot].set(jnp.where(active, buf.collected, buf.stamp[slot])),
        collected=buf.collected + active.astype(buf.collected.dtype),
    )


def buffer_switch(buf: LowRankBuffer, keep_background: bool, active: bool | jax.Array = True) -> LowRankBuffer:
    """End of a foreground: the background becomes it (``keep_background``) or it restarts empty.

    Nothing changes where ``active`` is False; the draws themselves are never copied.
    """
    start = buf.background_start if keep_background else buf.collected
    return buf._replace(
        start=jnp.where(active, start, buf.start),
        background_start=jnp.where(active, buf.collected, buf.background_start),
    )


def buffer_weights(buf: LowRankBuffer) -> jax.Array:
    """1 for the slots that hold a draw of the foreground, else 0 (``(size,)``)."""
    return ((buf.stamp >= buf.start) & (buf.stamp >= 0)).astype(buf.draws.dtype)


def buffer_recent(buf: LowRankBuffer, rows: int) -> LowRankBuffer:
    """The last ``rows`` slots of the ring written (newest first), as a buffer of that size.

    Where the foreground holds at most ``rows`` draws, all of them are among these slots, so
    a fit from this view (with ``level_dim`` the ``m`` of the whole buffer's fit) gives the
    metric of the whole buffer's fit, at the cost of a fit in at most ``2 * rows``
    dimensions: the early schedule's first 23 fits of a 1000-step warmup use 3 to 11 draws
    of a 100-slot buffer (``window_adaptation``).
    """
    size = buf.stamp.shape[0]
    idx = (buf.collected - 1 - jnp.arange(min(rows, size))) % max(size, 1)
    return buf._replace(draws=buf.draws[idx], grads=buf.grads[idx], stamp=buf.stamp[idx])


def fit_span(dim: int, rows: int) -> int:
    """The dimension ``m`` of the subspace in which :func:`low_rank_estimate` fits ``rows`` rows of ``dim``."""
    return dim if dim <= 2 * rows else 2 * rows


def low_rank_estimate(
    draws: jax.Array,
    grads: jax.Array,
    weights: jax.Array | None = None,
    *,
    rank: int,
    cutoff: float = 2.0,
    gamma: float = LOW_RANK_GAMMA,
    diag: jax.Array | None = None,
    min_draws: int = 3,
    holdout: jax.Array | None = None,
    level_dim: int | None = None,
    split: float = LOW_RANK_SPLIT,
) -> LowRankInverseMass:
    """The low-rank plus diagonal metric of the module doc from ``n`` draws and their scores.

    Parameters
    ----------
    draws, grads
        ``(n, d)``: positions and the gradients of the log-density there.
    weights
        ``(n,)`` 0/1 mask of the rows to use (default: all).
    rank
        Number ``k`` of directions kept (the shape of the result; at most ``min(d, 2n)`` of
        them can carry a correction).
    cutoff
        Eigenvalues inside ``[1/cutoff, cutoff]`` are set to 1 (no correction).
    gamma
        Regularization of the scaled second moments, relative to their mean diagonal.
    diag
        The diagonal part :math:`s^2` (default: the Fisher diagonal of these rows); the
        warmup passes the one of its whole window.
    min_draws
        Fewest rows (at least 3) from which a correction is made; below, the diagonal alone.
    holdout
        ``(n,)`` 0/1 labels that split the rows in two folds (the warmup: a window's older
        and newer half).  The correction is then kept only where it beats the diagonal on
        draws it was not fitted to: each fold's fit is scored on the other fold by
        :func:`log_condition`, the log of the condition number that the metric leaves, and
        the correction of all rows stays only where the two scores sum below the diagonal's.
        Default: no such check.
    level_dim
        The number of dimensions over which the mean of the scaled second moments' diagonals
        (the level that ``gamma`` is relative to) is taken; default the fit's own :math:`m =
        \\min(d, 2n)`.  A fit from a few of the rows of a larger buffer passes the ``m`` of the
        whole buffer, so that it gives the same metric as the fit of the whole buffer with the
        other rows masked out (:func:`buffer_recent`).
    split
        Which directions get the ``rank`` corrections: those of the largest :math:`|\\log
        \\lambda|`, unless taking them from the two ends of the spectrum leaves the
        uncorrected eigenvalues a range narrower by more than ``split`` (in its square root);
        ``inf``: always the former.

    Returns
    -------
    LowRankInverseMass
        With ``k = min(rank, d)`` directions.  Where the fit is not finite (or fewer than
        ``min_draws`` rows are used) the correction is dropped: the diagonal metric alone.

    Example
    -------
    >>> import numpy as np
    >>> cov = np.array([[1.0, 0.95], [0.95, 1.0]])
    >>> x = np.random.default_rng(0).multivariate_normal([0, 0], cov, 4000)
    >>> m = low_rank_estimate(jnp.asarray(x), jnp.asarray(-x @ np.linalg.inv(cov)), rank=2)
    >>> # the variances along (1, -1) and (1, 1): 0.05 and 1.95, less the regularization
    >>> sorted(round(float(v), 2) for v in m.vals * m.scale[0] ** 2)
    [0.05, 1.93]
    """
    if not split >= 1.0:  # also NaN
        raise ValueError(f"split must be at least 1 (inf: never split), got {split!r}")
    n_rows, dim = draws.shape
    dtype = draws.dtype
    grads = grads.astype(dtype)
    w = jnp.ones((n_rows,), dtype) if weights is None else weights.astype(dtype)
    n = jnp.sum(w)
    safe_n = jnp.maximum(n, 1.0)
    mean_x = (w @ draws) / safe_n
    mean_g = (w @ grads) / safe_n
    dx = (draws - mean_x) * w[:, None]
    dg = (grads - mean_g) * w[:, None]
    if diag is None:
        ratio = jnp.sqrt(jnp.sum(dx * dx, 0) / jnp.sum(dg * dg, 0))
        diag = jnp.where(jnp.isnan(ratio), 1.0, ratio)
    scale = jnp.clip(jnp.sqrt(diag.astype(dtype)), *_SCALE_BOUNDS)
    xs, gs = dx / scale, dg * scale
    root_n = jnp.sqrt(safe_n)
    if fit_span(dim, n_rows) == dim:  # the span is (generically) all of R^d: the standard basis will do
        basis = None
        px, pg = xs / root_n, gs / root_n  # C_x = px^T px, C_g = pg^T pg (unregularized)
    else:
        basis, _ = jnp.linalg.qr(jnp.concatenate([xs, gs], axis=0).T)  # (d, m)
        px, pg = xs @ basis / root_n, gs @ basis / root_n
    m = px.shape[1]
    # gamma is relative to the mean scaled variance (about 1 near the typical set, far larger
    # in the transient, where an absolute gamma would leave C_g too ill-conditioned to invert)
    level = jnp.maximum(0.5 * (jnp.sum(px * px) + jnp.sum(pg * pg)) / (level_dim or m), jnp.finfo(dtype).tiny)
    metric = _geometric_mean(px, pg, gamma * level)
    lam, vecs = jnp.linalg.eigh(metric)
    k = min(rank, dim)
    used = min(k, m)
    # an eigenvalue far below the largest one is lost to rounding (it may even come out
    # negative): such a direction is left uncorrected, never shrunk by a noise eigenvalue
    reliable = jnp.isfinite(lam) & (lam > _RELIABLE * jnp.max(lam))
    idx = _select(lam, reliable, used, split)
    vals, directions = lam[idx], vecs[:, idx] if basis is None else basis @ vecs[:, idx]
    keep = ((vals > cutoff) | (vals < 1.0 / cutoff)) & reliable[idx]
    ok = jnp.all(jnp.isfinite(vals)) & jnp.all(jnp.isfinite(directions)) & (n >= max(3, min_draws))
    keep = keep & ok
    if holdout is not None:
        fold = holdout.astype(dtype)
        gain = jnp.zeros((), dtype)
        for train in (fold, 1.0 - fold):
            fit = low_rank_estimate(
                draws,
                grads,
                w * train,
                rank=rank,
                cutoff=cutoff,
                gamma=gamma,
                diag=diag,
                min_draws=min_draws,
                level_dim=level_dim,
                split=split,
            )
            test = w * (1.0 - train)
            gain = gain + log_condition(xs, gs, test, fit.vecs, fit.vals) - log_condition(xs, gs, test)
        keep = keep & jnp.isfinite(gain) & (gain < 0)
    vals = jnp.where(keep, vals, 1.0)
    directions = jnp.where(keep[None, :], directions, 0.0)
    if used < k:  # fewer directions exist than asked: pad with void ones
        vals = jnp.concatenate([vals, jnp.ones((k - used,), dtype)])
        directions = jnp.concatenate([directions, jnp.zeros((dim, k - used), dtype)], axis=1)
    return LowRankInverseMass(scale.astype(dtype), directions.astype(dtype), vals.astype(dtype))


def _select(lam: jax.Array, reliable: jax.Array, used: int, split: float) -> jax.Array:
    r"""Indices of the ``used`` eigenvalues (of the ``m`` of ``lam``) that the fit corrects, the
    largest :math:`|\log \lambda|` first.

    A corrected direction is whitened (variance 1 under the metric); an uncorrected one keeps
    its eigenvalue.  The first choice is the ``used`` largest :math:`|\log \lambda|`.  The
    alternative takes ``t`` from the top of the sorted spectrum and ``used - t`` from the
    bottom, with ``t`` the split that leaves the narrowest range :math:`\max(1, \lambda_{hi})
    / \min(1, \lambda_{lo})` of the uncorrected ones.  It is taken only where its range is
    narrower by more than ``split**2`` (``split`` in the square root of the range, which is
    what a NUTS draw costs: trajectory length over step size).  Where the spectrum is lopsided
    (a few huge eigenvalues and many small ones, as on the Inference Gym's rotated
    ill-conditioned Gaussian), the first choice spends corrections on the crowded small end
    and leaves huge ones; elsewhere the two agree or differ little, and the first choice is
    kept (always taking the split lost 20-25% on the Gym's Brownian bridge, where the fitted
    ranges differ by less).  Unresolved eigenvalues (not ``reliable``) count as 1 and are
    taken last."""
    m = lam.shape[0]
    log_lam = jnp.where(reliable, jnp.log(jnp.where(reliable, lam, 1.0)), 0.0)
    score = jnp.where(reliable, jnp.abs(log_lam), -1.0)
    _, idx = jax.lax.top_k(score, used)
    if used >= m or split == float("inf"):
        return idx
    order = jnp.argsort(log_lam)
    ranked = log_lam[order]
    t = jnp.arange(used + 1)  # taken from the top; the rest of ``used`` from the bottom
    ranges = jnp.maximum(ranked[m - 1 - t], 0.0) - jnp.minimum(ranked[used - t], 0.0)
    top = jnp.argmin(ranges)
    j = jnp.arange(used)
    two_ended = jnp.where(j < used - top, order[j], order[jnp.minimum(m - used + j, m - 1)])
    two_ended = two_ended[jnp.argsort(-score[two_ended], stable=True)]
    left = jnp.ones((m,), bool).at[idx].set(False)
    first_range = jnp.maximum(jnp.max(jnp.where(left, log_lam, 0.0)), 0.0) - jnp.minimum(
        jnp.min(jnp.where(left, log_lam, 0.0)), 0.0
    )
    return jnp.where(first_range - ranges[top] > 2.0 * jnp.log(split), two_ended, idx)


def log_condition(
    xs: jax.Array, gs: jax.Array, w: jax.Array, vecs: jax.Array | None = None, vals: jax.Array | None = None
) -> jax.Array:
    """The log of :math:`\\lambda_{max}(C_x)\\, \\lambda_{max}(C_g)` for the rows where ``w`` is 1,
    after the correction ``I + U (\\Lambda - I) U^\\top`` (none by default).

    ``xs, gs`` ``(n_rows, d)``: centred draws and scores, scaled by the diagonal; ``C_x`` and
    ``C_g`` their second moments after the metric's whitening (draws times
    :math:`A^{-1/2}`, scores times :math:`A^{1/2}`).  Leapfrog's stable step shrinks as
    :math:`\\lambda_{max}(C_g)^{-1/2}` and a trajectory must span
    :math:`\\lambda_{max}(C_x)^{1/2}`, so NUTS needs about the square root of their product in
    steps per independent draw: 1 for a Gaussian under its exact covariance.
    """
    if vecs is not None and vals is not None:
        xs = xs + ((xs @ vecs) * (vals**-0.5 - 1.0)) @ vecs.T
        gs = gs + ((gs @ vecs) * (vals**0.5 - 1.0)) @ vecs.T
    xs, gs = xs * w[:, None], gs * w[:, None]
    n = jnp.maximum(jnp.sum(w), 1.0)
    return jnp.log(_top_eigenvalue(xs) / n) + jnp.log(_top_eigenvalue(gs) / n)


# power iterations for the largest eigenvalue in log_condition (from the longest row, which
# lies near the top direction; the Rayleigh quotient approaches the eigenvalue from below, and
# within a cluster of near-equal top eigenvalues it lands inside the cluster)
_POWER_STEPS = 30


def _top_eigenvalue(rows: jax.Array) -> jax.Array:
    """The largest eigenvalue of ``rows^T rows``, by power iteration (an eigen-decomposition
    of the ``(d, d)`` matrix would cost more than the fit itself on the CPU)."""

    def unit(v):
        return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(rows.dtype).tiny)

    v = unit(rows[jnp.argmax(jnp.sum(rows * rows, axis=1))])
    v = jax.lax.fori_loop(0, _POWER_STEPS, lambda _, v: unit((rows @ v) @ rows), v)
    return jnp.sum((rows @ v) ** 2)


def _geometric_mean(px: jax.Array, pg: jax.Array, reg: jax.Array) -> jax.Array:
    """:math:`A` with :math:`A C_g A = C_x`, where :math:`C_x = p_x^\\top p_x + r I` and
    :math:`C_g = p_g^\\top p_g + r I`, from the factors ``px, pg`` (``(n, m)``) themselves.

    The formula :math:`A = C_g^{-1/2} (C_g^{1/2} C_x C_g^{1/2})^{1/2} C_g^{-1/2}` passes
    through the matrix in the middle, whose eigenvalues are the *products* of those of
    :math:`C_x` and :math:`C_g`: down to :math:`r^2` in the directions that few draws
    support.  Formed and decomposed in float32, it loses those directions to rounding
    (relative error :math:`\\epsilon \\lambda_{max}^2 / r^2`, of order 1 at :math:`r = 10^{-3}`)
    and the fit returns spurious corrections of several-fold on a target that needs none.  So
    no covariance is formed.  Any square root of :math:`C_g` will do in place of
    :math:`C_g^{1/2}`: the triangular factor :math:`R` of the stacked factor
    :math:`[p_g; \\sqrt r I] = Q R` has :math:`C_g = R^\\top R`, and with
    :math:`B = [p_x; \\sqrt r I]\\, R^\\top` (so :math:`B^\\top B = R C_x R^\\top`)

    .. math::

        A = R^{-1} (B^\\top B)^{1/2} R^{-\\top} = W W^\\top, \\qquad
        W = R^{-1} V^\\top S^{1/2},

    where :math:`B` has singular values :math:`S` and right singular vectors :math:`V`
    (:math:`A R^\\top R A = R^{-1} (B^\\top B) R^{-\\top} = C_x`).  One QR, one QR and SVD,
    one triangular solve, where two symmetric square roots by SVD took twice as many
    decompositions (the whole fit: 18.5 against 30-50 ms for 4 chains at ``d = n = 100`` on a
    loaded core, ``benchmarks/bench_warmup_cost.py --fit-only``).
    """
    m = px.shape[1]
    root = jnp.sqrt(reg) * jnp.eye(m, dtype=px.dtype)
    r = jnp.linalg.qr(jnp.concatenate([pg, root]), mode="r")  # C_g = R^T R
    s, v = _right_singular(jnp.concatenate([px, root]) @ r.T)  # (R C_x R^T)^{1/2} = V^T S V
    w = jax.scipy.linalg.solve_triangular(r, v.T * jnp.sqrt(s), lower=False)
    a = w @ w.T
    return 0.5 * (a + a.T)


def _right_singular(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Singular values and right singular vectors (rows of ``v``) of a tall ``a`` (``(n + m, m)``).

    Those of the triangular factor of ``a = QR``: the same, but an SVD of ``(m, m)`` after a
    QR that forms no ``Q`` costs less than half the SVD of ``a`` itself, which computes its
    ``(n + m, m)`` left vectors.
    """
    return _svd_each(jnp.linalg.qr(a, mode="r"))


def _svd(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    _, s, v = jnp.linalg.svd(a, full_matrices=False)
    return s, v


_F = TypeVar("_F", bound=Callable[..., Any])


def one_chain_at_a_time(fn: _F) -> _F:
    """``fn`` that, vmapped on the CPU, runs for one chain after another (``lax.map``).

    Under ``vmap`` a decomposition (QR, ``eigh``, SVD) becomes one batched LAPACK call, which
    XLA:CPU splits over its intra-op thread pool and waits for.  When the chains are sharded
    over as many simulated CPU devices as there are cores (``XLA_FLAGS=
    --xla_force_host_platform_device_count=N``, a common way to run chains on every core),
    every pool thread can be a device's program waiting for its own split-off pieces: the run
    deadlocked (the low-rank fit on two devices and two cores, in the batched QR).  One
    matrix at a time is the same LAPACK routine for each, so the values do not change; other
    platforms keep the batched call.  Cost on one device (``benchmarks/bench_warmup_cost.py
    --dims 32 100 --chains 4``, the low-rank early warmup per step): 45.8 and 315 us against
    42.0 and 328 us batched, within the run-to-run spread.
    """

    @jax.custom_batching.custom_vmap
    def each(*args):
        return fn(*args)

    @each.def_vmap
    def each_batched(axis_size, in_batched, *args):
        del axis_size
        flat, tree = jax.tree_util.tree_flatten(args)
        flags = jax.tree_util.tree_leaves(in_batched)
        batched = [x for x, b in zip(flat, flags) if b]
        if not batched:
            out = fn(*args)
            return out, jax.tree_util.tree_map(lambda _: False, out)

        def one(slices):
            it = iter(slices)
            return fn(*jax.tree_util.tree_unflatten(tree, [next(it) if b else x for x, b in zip(flat, flags)]))

        out = jax.lax.platform_dependent(
            *batched, cpu=lambda *xs: jax.lax.map(one, xs), default=lambda *xs: jax.vmap(one)(xs)
        )
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return cast(_F, each)


# XLA:CPU ran a batch of SVDs as one LAPACK call over the batch in 2.3 times the time of the same
# SVDs one after the other (8 against 3.4 ms for 4 matrices of 100 x 100; ``benchmarks/
# bench_warmup_cost.py --fit-only``), another reason to map them one by one on the CPU; each
# matrix then gets the same SVD whatever the batch around it.
_svd_each = one_chain_at_a_time(_svd)


def run_if(flag: jax.Array, fn: Callable[..., object], otherwise, operands: tuple = ()):
    """``fn(*operands)`` where ``flag`` else ``otherwise``, computing ``fn`` only when some chain needs it.

    A one-iteration ``while_loop``: under ``vmap`` it runs (for the whole batch, each chain
    keeping its own result) only when ``flag`` holds for at least one chain, where a ``cond``
    would become a ``select`` that computes ``fn`` at every step.  The operands ride in the
    loop's carry and the body overwrites them: were ``fn`` to read values that the loop
    leaves unchanged, XLA's loop-invariant code motion would hoist the whole of ``fn`` out of
    the loop, and it would run at every step after all.
    """

    def body(carry):
        _, ops, _ = carry
        return jnp.zeros_like(carry[0]), jax.tree_util.tree_map(jnp.zeros_like, ops), fn(*ops)

    return jax.lax.while_loop(lambda carry: carry[0], body, (jnp.asarray(flag), operands, otherwise))[2]
