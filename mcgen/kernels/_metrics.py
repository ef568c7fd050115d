"""Euclidean metrics for the gradient kernels: momenta, kinetic energy, the U-turn test.

Hamiltonian Monte Carlo augments a position :math:`q \\in \\mathbb R^d` with a momentum
:math:`p \\sim N(0, M)` and simulates the Hamiltonian

.. math::

    H(q, p) = -\\log \\pi(q) + \\tfrac12 p^\\top M^{-1} p .

mcgen stores the *inverse* mass matrix :math:`A = M^{-1}` in ``state.params.inverse_mass``,
because that is what warmup estimates (the posterior covariance, Stan's convention).  It is a
vector of shape ``(d,)`` for a diagonal metric, a matrix ``(d, d)`` for a dense one, or a
:class:`LowRankInverseMass` for a diagonal plus low-rank one,

.. math::

    A = S \\bigl(I + U (\\Lambda - I) U^\\top\\bigr) S ,

with :math:`S = \\operatorname{diag}(s)`, :math:`U` a ``(d, k)`` matrix of orthonormal columns
and :math:`\\Lambda` the ``(k,)`` eigenvalues (an eigenvalue of 1 has no effect).  Every
function here dispatches on the type and shape at trace time, so one kernel serves all three;
the low-rank metric is applied in :math:`O(dk)` and never formed as a ``(d, d)`` matrix, and
only its columns that carry a correction are used (:func:`by_kept_columns`).

The velocity :math:`v = A p = \\dot q` is computed once per leapfrog step and reused for the
kinetic energy :math:`\\tfrac12 p^\\top v` and the U-turn test.  The generalized U-turn
criterion (Betancourt 2013) declares a trajectory segment with end velocities
:math:`v^-, v^+` and summed momentum :math:`\\rho = \\sum_i p_i` to be turning when

.. math::

    v^{-\\top} \\rho \\le 0 \\quad\\text{or}\\quad v^{+\\top} \\rho \\le 0 ,

a test that is symmetric in its two ends, so it does not care in which direction in time the
segment was integrated.

References
----------
Betancourt, M. (2013). Generalizing the No-U-Turn Sampler to Riemannian manifolds.
arXiv:1304.1920.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from mcgen.adaptation.low_rank import LowRankInverseMass, low_rank_diagonal
from mcgen.kernels import _random

MASS_KINDS = ("diag", "dense", "grad_diag", "low_rank")


def check_positive(value, name: str, who: str) -> None:
    """Raise a clear ``ValueError`` unless the setting ``name`` is a positive number."""
    if not float(value) > 0.0:
        raise ValueError(f"{who}: {name} must be positive, got {value!r}")


def check_num_steps(value, name: str, who: str) -> None:
    """Raise a clear ``ValueError`` unless the setting ``name`` is an integer >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who}: {name} must be an integer >= 1, got {value!r}")


def check_mass(mass: str, who: str) -> None:
    """Raise a clear ``ValueError`` for an unknown metric name."""
    if mass not in MASS_KINDS:
        raise ValueError(f"{who}: mass must be one of {', '.join(map(repr, MASS_KINDS))}, got {mass!r}")


def check_step_size(step_size, who: str) -> None:
    """``step_size`` must be ``None`` (adapted) or a positive finite number."""
    if step_size is None:
        return
    try:
        value = float(step_size)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: step_size must be a positive number, got {step_size!r}") from None
    if not (value > 0.0 and value < float("inf")):
        raise ValueError(f"{who}: step_size must be a positive finite number, got {step_size!r}")


InverseMass = jax.Array | LowRankInverseMass  # diagonal (d,), dense (d, d), or diagonal plus low rank


def identity_inverse_mass(mass: str, dim: int, dtype, rank: int = 0):
    """The starting metric: the identity, ``(d, d)`` for ``"dense"``, ones ``(d,)`` for the
    diagonal ones, and for ``"low_rank"`` ones with ``min(rank, d)`` void directions."""
    if mass == "low_rank":
        k = min(rank, dim)
        return LowRankInverseMass(jnp.ones((dim,), dtype), jnp.zeros((dim, k), dtype), jnp.ones((k,), dtype))
    return jnp.eye(dim, dtype=dtype) if mass == "dense" else jnp.ones((dim,), dtype)


def _low_rank_apply(m: LowRankInverseMass, factor: jax.Array, w: jax.Array) -> jax.Array:
    """:math:`(I + U \\operatorname{diag}(f) U^\\top) w` in :math:`O(dk)`."""
    return w + m.vecs @ (factor * (w @ m.vecs))


def _column_ladder(k: int) -> tuple[int, ...]:
    """The column counts a low-rank metric of ``k`` columns may be cut to: 0, 1 and ``k``.

    0 runs the diagonal metric's arithmetic (a fit that kept no direction costs what the
    diagonal metric costs) and 1 pays for itself, but no count in between does: with 2 or 8
    of 16 columns kept, the leaf cut to 2 or 8 columns was slower than the uncut one, and each
    rung is one more branch of every metric product to compile.  Leaf time as a multiple of
    the diagonal metric's, 4 chains, for 0 / 1 / 2 / 8 / 16 kept columns
    (``benchmarks/bench_metric_leaf.py --metrics diag low_rank:0 low_rank:1 low_rank:2
    low_rank:8 low_rank:16``, and ``--ladder 0,1`` for this ladder):

    * d = 100 (``gaussian_100``): rungs 0, 1, 2, 8, 16: 1.03 / 1.43 / 1.95 / 1.81 / 1.66;
      rungs 0, 1, 16: 0.99 / 1.40 / 1.63 / 1.60 / 1.60; no cut: 1.56-1.59 throughout;
    * d = 32 (Gym Brownian motion): rungs 0, 1, 2, 8, 16: 1.02 / - / 1.32 / - / 1.25; rungs
      0, 1, 16: 1.01 / 1.11 / 1.21 / - / 1.17;
    * d = 2519 (Gym stochastic volatility, where the gradient dominates): rungs 0, 1, 2, 8,
      16: 1.00 / 1.07 / 1.13 / 1.08 / 1.08; rungs 0, 1, 16: 0.99 / 1.06 / 1.07 / 1.09 / 1.10.

    The first call of ``run_chains`` with ``mc.nuts()`` (4 chains, 1000 + 1000) took 9.2 s
    with these three rungs against 10.3 s with five on the Gym's eight schools, 16.0 against
    17.3 s on its Brownian motion (``benchmarks/bench_first_call.py``; ``mass="diag"``: 6.6 and
    13.4 s).
    """
    return tuple(sorted({c for c in (0, 1) if c < k} | {k}))


def _rung(vals: jax.Array, ladder: tuple[int, ...]) -> jax.Array:
    """Index of the smallest count in ``ladder`` that holds every column with an eigenvalue other than 1.

    ``vals`` may carry leading batch axes: the count is then the largest over them.
    """
    k = vals.shape[-1]
    needed = jnp.max(jnp.where(vals != 1.0, jnp.arange(1, k + 1, dtype=jnp.int32), 0))
    return jnp.sum(jnp.asarray(ladder[:-1], jnp.int32) < needed)


def by_kept_columns(apply: Callable, m: LowRankInverseMass, x):
    """``apply(m, x)`` with ``m`` cut to the leading columns that carry a correction.

    A column whose eigenvalue is 1 changes nothing, and the warmup's fit leaves void every
    column past the ``r`` directions it keeps (ranked first), yet a product with the whole
    ``(d, k)`` factor costs as much whether ``r`` is ``k`` or 0.  So the factor is cut at
    run time to the first ``c`` columns, ``c`` the smallest of 0, 1 and ``k`` that holds all
    of them (:func:`_column_ladder`): :math:`O(d c)`, and with ``c = 0`` the diagonal
    metric's own arithmetic.  The choice is a ``switch``, which under ``vmap`` would become a select
    that computes every branch; a custom batching rule instead takes ``c`` over the whole
    batch (the largest any member needs), so the switch stays a branch (also under nested
    ``vmap``: the rule recurses).  The result is the same function of ``(m, x)`` whichever
    ``c`` is used, up to the rounding of the matrix products.
    """
    ladder = _column_ladder(m.vals.shape[-1])
    if len(ladder) == 1:
        return apply(m, x)
    branches = [functools.partial(_apply_cut, apply, c) for c in ladder]

    @jax.custom_batching.custom_vmap
    def run(m, x):
        return jax.lax.switch(_rung(m.vals, ladder), branches, m, x)

    @run.def_vmap
    def run_batched(axis_size, in_batched, m, x):
        del axis_size
        axes = jax.tree_util.tree_map(lambda b: 0 if b else None, tuple(in_batched))
        out = by_kept_columns(jax.vmap(apply, in_axes=axes), m, x)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return run(m, x)


def _apply_cut(apply: Callable, c: int, m: LowRankInverseMass, x):
    return apply(LowRankInverseMass(m.scale, m.vecs[..., :c], m.vals[..., :c]), x)


def _velocity_low_rank(m: LowRankInverseMass, p: jax.Array) -> jax.Array:
    s = m.scale
    if m.vecs.shape[-1] == 0:  # the diagonal metric's arithmetic
        return (s * s) * p
    return s * _low_rank_apply(m, m.vals - 1.0, s * p)


def velocity(inverse_mass: InverseMass, p: jax.Array) -> jax.Array:
    """:math:`v = M^{-1} p`."""
    if isinstance(inverse_mass, LowRankInverseMass):
        return by_kept_columns(_velocity_low_rank, inverse_mass, p)
    return inverse_mass * p if inverse_mass.ndim == 1 else inverse_mass @ p


def inverse_mass_diagonal(inverse_mass: InverseMass) -> jax.Array:
    """The diagonal of :math:`A`, ``(d,)`` (for records and plots)."""
    if isinstance(inverse_mass, LowRankInverseMass):
        return low_rank_diagonal(inverse_mass)
    return inverse_mass if inverse_mass.ndim == 1 else jnp.diagonal(inverse_mass)


def dense_inverse_mass(inverse_mass: InverseMass) -> jax.Array:
    """The ``(d, d)`` matrix :math:`A` (for tests and small problems: :math:`O(d^2)` memory)."""
    if isinstance(inverse_mass, LowRankInverseMass):
        m = inverse_mass
        inner = jnp.eye(m.scale.shape[0], dtype=m.scale.dtype) + (m.vecs * (m.vals - 1.0)) @ m.vecs.T
        return m.scale[:, None] * inner * m.scale[None, :]
    return jnp.diag(inverse_mass) if inverse_mass.ndim == 1 else inverse_mass


def fixed_order_sum(x: jax.Array) -> jax.Array:
    """Sum over the last axis in a fixed pairwise order, whatever the batch around it.

    ``jnp.sum`` and ``jnp.dot`` under ``vmap`` become one reduction over a batch of rows, and
    XLA:CPU picks its vectorization (across the rows, or along each row) by the batch size,
    so the same row can round differently with 2 chains than with 8.  Here the sum is a
    tree of elementwise adds of halves (``log2(d)`` of them, ``O(d)`` work): elementwise
    arithmetic has one rounding per element, so a chain's sum never depends on how many
    chains are batched beside it.
    """
    while x.shape[-1] > 1:
        n = x.shape[-1]
        half = n // 2
        head = x[..., :half] + x[..., half : 2 * half]
        x = jnp.concatenate([head, x[..., 2 * half :]], axis=-1) if n % 2 else head
    return x[..., 0]


def kinetic_energy(p: jax.Array, v: jax.Array, inverse_mass: InverseMass | None = None) -> jax.Array:
    """:math:`\\tfrac12 p^\\top M^{-1} p` from the momentum and its velocity.

    Summed in a fixed order (:func:`fixed_order_sum`), so that a chain's Hamiltonian, and
    with it every accept decision, is the same whatever the number of chains beside it.
    With a diagonal ``inverse_mass`` the terms are :math:`v_i^2 / A_{ii}` (equal to
    :math:`p_i v_i`): XLA:CPU lets LLVM contract a product feeding an add into a fused
    multiply-add, and whether it does depends on how the batch is vectorized, so the terms
    must not be bare products.  A dense metric goes through a batched matrix product, which
    XLA may round differently by batch size anyway (the documented exception in
    :mod:`mcgen.run`).
    """
    if isinstance(inverse_mass, LowRankInverseMass):
        return by_kept_columns(_kinetic_low_rank, inverse_mass, (p, v))
    if inverse_mass is not None and inverse_mass.ndim == 1:
        terms = v * v / inverse_mass  # a division ends each term: nothing to contract
    else:
        terms = p * v
    return 0.5 * fixed_order_sum(terms)


def _kinetic_low_rank(m: LowRankInverseMass, pv) -> jax.Array:
    p, v = pv
    terms = v * v / (m.scale * m.scale) if m.vecs.shape[-1] == 0 else p * v
    return 0.5 * fixed_order_sum(terms)


def momentum_from_normal(inverse_mass: InverseMass) -> Callable[[jax.Array], jax.Array]:
    """``momentum(z) -> p ~ N(0, M)`` from a standard normal ``z``; factorizes once.

    With :math:`A = M^{-1} = L L^\\top`, :math:`p = L^{-\\top} z` has covariance
    :math:`L^{-\\top} L^{-1} = A^{-1} = M`.  For a low-rank metric
    :math:`p = S^{-1} (I + U (\\Lambda^{-1/2} - I) U^\\top) z`, whose covariance is
    :math:`S^{-1} (I + U (\\Lambda^{-1} - I) U^\\top) S^{-1} = A^{-1}` (:math:`U` orthonormal).
    """
    if isinstance(inverse_mass, LowRankInverseMass):
        return functools.partial(by_kept_columns, _momentum_low_rank, inverse_mass)
    if inverse_mass.ndim == 1:
        scale = jax.lax.rsqrt(inverse_mass)
        return lambda z: scale * z
    chol = jnp.linalg.cholesky(inverse_mass)
    return lambda z: solve_triangular(chol.T, z, lower=False)


def _momentum_low_rank(m: LowRankInverseMass, z: jax.Array) -> jax.Array:
    if m.vecs.shape[-1] == 0:
        return jax.lax.rsqrt(m.scale * m.scale) * z
    return (1.0 / m.scale) * _low_rank_apply(m, jax.lax.rsqrt(m.vals) - 1.0, z)


def momentum_sampler(inverse_mass: InverseMass) -> Callable[[jax.Array], jax.Array]:
    """``sample(key) -> p ~ N(0, M)`` (see :func:`momentum_from_normal`)."""
    momentum = momentum_from_normal(inverse_mass)
    like = inverse_mass.scale if isinstance(inverse_mass, LowRankInverseMass) else inverse_mass
    dim, dtype = like.shape[0], like.dtype
    return lambda key: momentum(_random.normal(key, (dim,), dtype))


def sqrt_inverse_mass(inverse_mass: InverseMass) -> Callable[[jax.Array], jax.Array]:
    """``apply(z) = A^{1/2} z`` (a Cholesky factor for a dense ``A``): ``A^{1/2} z ~ N(0, A)``.

    For a low-rank metric the factor is :math:`S (I + U (\\Lambda^{1/2} - I) U^\\top)`.
    """
    if isinstance(inverse_mass, LowRankInverseMass):
        return functools.partial(by_kept_columns, _sqrt_low_rank, inverse_mass)
    if inverse_mass.ndim == 1:
        scale = jnp.sqrt(inverse_mass)
        return lambda z: scale * z
    chol = jnp.linalg.cholesky(inverse_mass)
    return lambda z: chol @ z


def _sqrt_low_rank(m: LowRankInverseMass, z: jax.Array) -> jax.Array:
    if m.vecs.shape[-1] == 0:
        return jnp.sqrt(m.scale * m.scale) * z
    return m.scale * _low_rank_apply(m, jnp.sqrt(m.vals) - 1.0, z)


def inverse_mass_quadratic(inverse_mass: InverseMass) -> Callable[[jax.Array], jax.Array]:
    """``quad(r) = r^T A^{-1} r``, the Mahalanobis norm of a Langevin increment."""
    if isinstance(inverse_mass, LowRankInverseMass):
        return functools.partial(by_kept_columns, _quadratic_low_rank, inverse_mass)
    if inverse_mass.ndim == 1:
        return lambda r: fixed_order_sum(r * r / inverse_mass)
    chol = jnp.linalg.cholesky(inverse_mass)

    def quad(r):
        w = solve_triangular(chol, r, lower=True)
        return jnp.dot(w, w)

    return quad


def _quadratic_low_rank(m: LowRankInverseMass, r: jax.Array) -> jax.Array:
    if m.vecs.shape[-1] == 0:
        return fixed_order_sum(r * r / (m.scale * m.scale))
    w = r / m.scale
    c = w @ m.vecs
    return jnp.dot(w, w) + jnp.dot((1.0 / m.vals - 1.0) * c, c)


def is_turning(v_left: jax.Array, v_right: jax.Array, rho: jax.Array) -> jax.Array:
    """Generalized U-turn test; the arguments may carry leading batch axes."""
    return (jnp.sum(v_left * rho, -1) <= 0.0) | (jnp.sum(v_right * rho, -1) <= 0.0)
