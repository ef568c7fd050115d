"""The NUTS trajectory, built leaf by leaf in one ``while_loop``.

NUTS (Hoffman & Gelman 2014) grows a trajectory by doubling: at depth :math:`j` it draws a
direction at random and integrates a new subtree of :math:`2^j` leapfrog steps from the end
of the trajectory on that side.  The recursive description is a binary tree; this module
builds the same tree *iteratively*, one leaf per loop iteration, in a single flat
``lax.while_loop`` (no nested loops, no recursion).  Under ``vmap`` each iteration does one
leapfrog step for every chain, and a chain whose tree is finished idles until the longest
tree of the batch is done; from 64 chains on (CPU), the trees still growing are gathered into
smaller batches as the others finish (:func:`_grow_compacting`).

**Multinomial sampling.**  Each leaf :math:`z_i` carries the weight
:math:`w_i = e^{H_0 - H(z_i)}`.  Inside a subtree the candidate is drawn progressively,
leaf :math:`i` replacing it with probability :math:`w_i / \\sum_{k \\le i} w_k`, which
selects each leaf with probability proportional to its weight.  When a finished subtree
:math:`S` joins the trajectory :math:`T` its candidate replaces the current one with
probability :math:`\\min(1, W_S / W_T)` (biased progressive sampling, Betancourt 2017).

**U-turns inside a subtree** (Phan, Pradhan & Jankowiak 2019).  Leaf :math:`n` (numbered
from 0 within the subtree) closes the sub-subtrees of sizes :math:`2, 4, \\dots, 2^k`, where
:math:`k` is the number of trailing one bits of :math:`n`.  Even leaves open sub-subtrees and
store a checkpoint in slot :math:`\\operatorname{popcount}(n \\gg 1)`; odd leaves test the
slots :math:`\\operatorname{popcount}(n \\gg 1) - k + 1, \\dots, \\operatorname{popcount}(n
\\gg 1)`, so at most ``max_tree_depth - 1`` checkpoints are alive.  With :math:`R_n` the
momentum sum of the subtree up to leaf :math:`n`, a checkpoint keeps the first momentum
:math:`p_s`, the momentum :math:`p_{s-1}` before it and :math:`R_{s-1}`; every test is then
an inner product with :math:`A R_n` or :math:`v_n`, so all slots are tested at once with two
small matrix-vector products per leaf.  Stan's *additional checks across sub-trees* (Stan >= 2.26)
are included: for a closed sub-subtree with halves :math:`L, R` the criterion must also hold
on :math:`L` plus the first leaf of :math:`R` (decided when that leaf is integrated and
stored as a flag) and on the last leaf of :math:`L` plus :math:`R`.  The same three checks
are made when a subtree joins the trajectory.

A subtree that turns or diverges (energy error above ``max_energy_error``, or a NaN) is
discarded whole and the trajectory stops; otherwise the trajectory stops when it turns or
after ``max_tree_depth`` doublings (:math:`2^{\\text{depth}} - 1` leapfrog steps).

**Randomness.**  All of it comes from the transition's key through Threefry-2x32
(:mod:`mcgen.kernels._random`): stream 0 gives the momentum, the doubling directions and the
merge uniforms before the loop, and the uniform of leaf :math:`t` is block :math:`(t, 1)`,
computed inside the loop body, where the unrolled generator fuses into the arithmetic.

References
----------
Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn Sampler. JMLR 15, 1593–1623.
Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo. arXiv:1701.02434.
Phan, D., Pradhan, N. and Jankowiak, M. (2019). Composable effects for flexible and
accelerated probabilistic programming in NumPyro. arXiv:1912.11554.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.extend
import jax.numpy as jnp

from mcgen.adaptation.low_rank import LowRankInverseMass
from mcgen.kernels import _integrators
from mcgen.kernels._metrics import momentum_from_normal, velocity
from mcgen.kernels._random import U32, nuts_draws, open_uniform, threefry2x32

# A leaf reads at most this many checkpoint slots as a window of its own size (the slots it
# tests are the same in every growing tree); one that closes more reads all of them.
_WINDOW = 3
# From this many vmapped chains on, a target of at most `_SMALL_DIM` coordinates computes a
# leaf's per-chain decisions behind a `cond` and rewrites only the rows a leaf changes,
# except at the loop iterations that open or close a subtree (see `_grow`).
_DECISIONS_FENCE_MIN_BATCH = 32
# From this many vmapped chains on (on the CPU, by default), the loop gathers the trees still
# growing into smaller batches once few enough grow (see `_stage_sizes` and `_grow_compacting`).
_COMPACT_MIN_BATCH = 64
_COMPACT_LANES = 8  # stage sizes are multiples of this (XLA:CPU's vector width for float32)
# ... for a log-density (value and gradient) of at most this many equations: each stage
# compiles it again (see `_stage_sizes` for the figures)
_COMPACT_MAX_EQUATIONS = 1000


class Setup(NamedTuple):  # per-transition constants of one chain
    step_size: jax.Array
    inverse_mass: jax.Array
    h0: jax.Array
    by_depth: jax.Array  # (max_depth, 3): forward in time?, reverses direction?, log merge uniform
    seeds: jax.Array  # (2,) uint32 key words; leaf t's uniform is threefry(seeds, (t, 1))
    # int32 (), the most doublings of this trajectory where a run sets it below max_depth
    # (build_tree's depth_limit: the warmup's cap); None: max_depth
    depth_limit: jax.Array | None = None


# The loop state is packed into five arrays: few arrays mean few kernels per iteration, which
# is what a small leapfrog step costs on a CPU.  Rows of `vecs` (each of length d):
TIP, FAR = 0, 4  # [q, p, v, g] of the last leaf integrated and of the other end
NEAR_P, NEAR_V = 8, 9  # the trajectory end the current subtree grows from
SUB_RHO, RHO = 10, 11  # momentum sums of the subtree so far (R_n) and of the trajectory
SUB_Q, SUB_G, Q, G = 12, 13, 14, 15  # candidates of the subtree and of the trajectory (the draw)
# A non-diagonal metric adds a row: A R_n, kept as a running sum of the leaves' velocities
# (A p summed as p is) so that a leaf applies A twice (the drift's velocity and the leaf's),
# not three times; a diagonal metric's product costs less than the row.
SUB_AR = 16
# Entries of `scal` (floats):
(LOGW_SUB, LOGW, SUB_LOGDENSITY, SUB_ENERGY, LOGDENSITY, ENERGY, SUM_ACCEPT, TIP_PV, FAR_PV, NEAR_PV, PREV_VR) = range(
    11
)
# Entries of `ints`:
DEPTH, LEAF, NUM_LEAVES, MOVED, DIVERGENT, NONFINITE, DONE, FIRST_TURNING = range(8)


class Tree(NamedTuple):
    vecs: jax.Array  # (16, d), rows above; (17, d) with SUB_AR (:func:`_tracks_ar`)
    ck: jax.Array  # (3, S, d): checkpoint rows p_s, p_{s-1}, R_{s-1}
    ck_scal: jax.Array  # (3, S): v_s.R_{s-1}, v_{s-1}.(R_{s-1} - p_{s-1}), left-plus-first flag
    scal: jax.Array  # (11,): scalars above
    ints: jax.Array  # (8,) int32: counters and flags above


class TreeResult(NamedTuple):
    q: jax.Array
    logdensity: jax.Array
    g: jax.Array
    energy: jax.Array
    accept_prob: jax.Array
    num_leaves: jax.Array
    depth: jax.Array
    moved: jax.Array
    divergent: jax.Array
    nonfinite: jax.Array


# XLA:CPU hands a reduction whose operand has at least this many elements to YNNPACK, which is
# slow on the small reductions of a leaf; smaller ones it compiles into its own loops.
_LIBRARY_REDUCE_SIZE = 4096
_MAX_PIECES = 4
_SMALL_DIM = 16
# Up to this many coordinates over the batch (chains times d), every leaf computes the products
# of every checkpoint slot and skips the `switch` that picks the slots it tests: on a 2-d target
# the `switch` costs more than the products it saves (see `_grow`).
_EVERY_SLOT_MAX_ELEMENTS = 256


def _rowdots(rows, x, batch: int, max_pieces: int = _MAX_PIECES):
    """``rows @ x`` for one chain of ``batch`` vmapped together, without a library call.

    A batched matrix-vector product is an Eigen call on the CPU, and Eigen's thread pool
    makes its time differ from one process to the next (by up to 2x on the 100-d Gaussian at
    4 chains).  A sum over the major axis of ``rows.T * x`` compiles into XLA's own vectorized
    loop instead, as long as each reduction stays below XLA's library threshold, so the sum
    over ``d`` is split into a few pieces; when that would take many pieces (many chains,
    many checkpoint rows) the product is the cheaper choice and is used.
    """
    k, d = rows.shape
    per = max(1, (_LIBRARY_REDUCE_SIZE - 1) // (batch * k))
    if -(-d // per) > max_pieces:
        return rows @ x
    terms = rows.T * x[:, None]  # (d, k)
    pieces = [jnp.sum(terms[i : i + per], axis=0) for i in range(0, d, per)]
    return functools.reduce(jnp.add, pieces)


def _turning(a, b):
    return (a <= 0.0) | (b <= 0.0)


def _start(key, q, logdensity, g, step_size, inverse_mass, depth_limit, max_depth: int, num_slots: int):
    """Draw the transition's randomness and the one-point trajectory (``num_slots`` checkpoints)."""
    dtype, dim = q.dtype, q.shape[0]
    z, directions, log_u_merge, seeds = nuts_draws(key, dim, max_depth, dtype)
    p0 = momentum_from_normal(inverse_mass)(z)
    v0 = velocity(inverse_mass, p0)
    pv0 = jnp.dot(p0, v0)
    h0 = -logdensity + 0.5 * pv0
    zeros = jnp.zeros_like(q)
    rows = [q, p0, v0, g, q, p0, v0, g, zeros, zeros, zeros, p0, q, g, q, g]
    vecs = jnp.stack(rows + [zeros] if _tracks_ar(inverse_mass) else rows)
    zero = jnp.zeros((), dtype)
    scal = jnp.stack([zero, zero, logdensity, h0, logdensity, h0, zero, pv0, pv0, zero, zero])
    tree = Tree(
        vecs, jnp.zeros((3, num_slots, dim), dtype), jnp.zeros((3, num_slots), dtype), scal, jnp.zeros((8,), jnp.int32)
    )
    reverses = jnp.concatenate([jnp.zeros((1,), bool), directions[1:] != directions[:-1]])
    by_depth = jnp.stack([directions.astype(dtype), reverses.astype(dtype), log_u_merge], axis=1)
    if depth_limit is not None:  # 0: no limit below max_depth
        limit = jnp.asarray(depth_limit, jnp.int32)
        depth_limit = jnp.where(limit > 0, jnp.minimum(limit, max_depth), max_depth)
    return Setup(step_size, inverse_mass, h0, by_depth, seeds, depth_limit), tree


class _Drift(NamedTuple):  # per-chain values of a leaf known before its gradient
    opening: jax.Array
    row: jax.Array  # by_depth row of the current doubling
    log_u_leaf: jax.Array
    origin: jax.Array  # (4, d) [q, p, v, g] of the end the leaf grows from
    far: jax.Array
    origin_pv: jax.Array
    far_pv: jax.Array
    eps: jax.Array  # signed step size
    p_half: jax.Array  # momentum after the first half kick
    q1: jax.Array  # the new point, where the gradient is taken


def _drift(t: Tree, c: Setup) -> _Drift:
    """First half of a leaf: pick the end to grow from, half kick, drift to the new point."""
    vecs, sc, ints = t.vecs, t.scal, t.ints
    dtype = vecs.dtype
    n, depth = ints[LEAF], ints[DEPTH]
    opening = n == 0
    u_bits, _ = threefry2x32(c.seeds[0], c.seeds[1], ints[NUM_LEAVES].astype(U32), U32(1))  # stream 1
    row, log_u_leaf = c.by_depth[depth], jnp.log(open_uniform(u_bits, dtype))
    forward = row[0] > 0
    # at the first leaf of a subtree that grows the other way, the far end becomes the origin
    turn_around = opening & (row[1] > 0)
    origin = jnp.where(turn_around, vecs[FAR : FAR + 4], vecs[TIP : TIP + 4])
    far = jnp.where(turn_around, vecs[TIP : TIP + 4], vecs[FAR : FAR + 4])
    origin_pv = jnp.where(turn_around, sc[FAR_PV], sc[TIP_PV])
    far_pv = jnp.where(turn_around, sc[TIP_PV], sc[FAR_PV])
    eps = jnp.where(forward, c.step_size, -c.step_size)
    p_half = origin[1] + (0.5 * eps) * origin[3]
    q1 = origin[0] + eps * velocity(c.inverse_mass, p_half)
    return _Drift(opening, row, log_u_leaf, origin, far, origin_pv, far_pv, eps, p_half, q1)


class _Kick(NamedTuple):
    p1: jax.Array
    v1: jax.Array
    rho_before: jax.Array
    sub_rho: jax.Array
    a_r: jax.Array
    slot: jax.Array  # checkpoint slot this leaf opened (num_slots: none)
    ck: jax.Array  # checkpoints with this leaf's (if it opens one) written in


def _kick(t: Tree, c: Setup, dr: _Drift, g1) -> _Kick:
    """Second half kick; the checkpoint an even leaf opens is written before the tests read it."""
    num_slots = t.ck.shape[1]
    active = t.ints[DONE] == 0
    n = t.ints[LEAF]
    p1 = dr.p_half + (0.5 * dr.eps) * g1
    v1 = velocity(c.inverse_mass, p1)
    rho_before = jnp.where(dr.opening, 0.0, t.vecs[SUB_RHO])
    sub_rho = rho_before + p1  # R_n
    # even leaves open a checkpoint in slot `top` (odd leaves and finished trees write nothing)
    odd = (n & 1) == 1
    slot = jnp.where(odd | ~active, num_slots, jax.lax.population_count(n >> 1))
    ck = t.ck.at[:, slot].set(jnp.stack([p1, dr.origin[1], rho_before]), mode="drop")
    if t.vecs.shape[0] > SUB_AR:  # the row _start added (_tracks_ar): A R_n = A R_{n-1} + A p_n
        a_r = jnp.where(dr.opening, 0.0, t.vecs[SUB_AR]) + v1
    else:
        a_r = velocity(c.inverse_mass, sub_rho)
    return _Kick(p1, v1, rho_before, sub_rho, a_r, slot, ck)


def _tracks_ar(inverse_mass) -> bool:
    """Whether the tree keeps :math:`A R_n` in a row (``SUB_AR``): for a low-rank or dense
    metric, whose product with a vector costs more than the row's upkeep.

    On the Gym's stochastic volatility (d = 103) with 128 chains a product with the low-rank
    metric's 16 columns took about 20 us per vmapped leaf, of 270 for the whole leaf.
    """
    return isinstance(inverse_mass, LowRankInverseMass) or inverse_mass.ndim == 2


def _leaf_of(it):
    """Leaf ``it`` (from 0) of a transition is leaf ``n`` of doubling ``j`` in every growing
    tree: ``(j, n) = (floor(log2(it + 1)), it + 1 - 2^j)``."""
    doubling = 31 - jax.lax.clz(it + 1)
    return doubling, it + 1 - jnp.left_shift(1, doubling)


def _window(it):
    """The checkpoint slots that leaf ``it`` of the transition tests: ``(start, size)``.

    The tree's shape does not depend on the chain: leaf ``it`` (from 0) is leaf
    :math:`n = it + 1 - 2^j` of the subtree of doubling :math:`j = \\lfloor \\log_2(it + 1)
    \\rfloor` in every tree still growing.  An odd leaf tests the slots it closes,
    ``top - closed + 1 .. top``; an even one opens slot ``top`` and decides the pair
    ``(top - 1, top)`` (the left-plus-first check), so it reads slot ``top - 1`` only.
    """
    _, n = _leaf_of(it)
    top = jax.lax.population_count(n >> 1)
    closed = jax.lax.population_count((~n & (n + 1)) - 1)
    odd = (n & 1) == 1
    size = jnp.where(odd, closed, jnp.minimum(top, 1))
    start = jnp.where(odd, top - closed + 1, top - 1)
    return jnp.maximum(start, 0), size


def _slot_products(ck, a_r, v1, start, size: int | None, batch: int, first_v: int = 1):
    """Inner products of checkpoint slots ``start .. start + size - 1`` (all of them when
    ``size`` is None) with :math:`A R_n` and :math:`v_n`: rows ``p_s.A R_n, p_{s-1}.A R_n``
    and ``p_{s-1}.v_n, R_{s-1}.v_n`` (preceded by ``p_s.v_n`` when ``first_v`` is 0, for the
    trapezoid criterion), each ``(rows, slots)``; the other slots are zero.

    All slots at once (a leaf closing more than ``_WINDOW`` of them): on more than
    ``_SMALL_DIM`` coordinates matrix-vector products, which beat split sums with many rows
    (16.4 against 20.7 us per leaf on the Gym's 100-d ill-conditioned Gaussian, 4 chains).
    """
    num_slots, dim = ck.shape[1:]
    rows_v = 3 - first_v
    if size is None:
        if dim <= _SMALL_DIM:  # up to `dim` split sums beat a batched product
            rows = ck.reshape(3 * num_slots, dim)
            s_ar = _rowdots(rows, a_r, batch, max_pieces=dim).reshape(3, num_slots)[:2]
            s_v = _rowdots(rows, v1, batch, max_pieces=dim).reshape(3, num_slots)[first_v:]
            return s_ar, s_v
        # all three rows against both vectors: slicing rows would copy them
        return jnp.einsum("ksd,d->ks", ck, a_r)[:2], jnp.einsum("ksd,d->ks", ck, v1)[first_v:]
    zeros = jnp.zeros((3, num_slots), ck.dtype)
    if size == 0:
        return zeros[:2], zeros[first_v:]
    window = jax.lax.dynamic_slice_in_dim(ck, start, size, axis=1)
    s_ar = _rowdots(window[:2].reshape(2 * size, dim), a_r, batch).reshape(2, size)
    s_v = _rowdots(window[first_v:].reshape(rows_v * size, dim), v1, batch).reshape(rows_v, size)
    place = functools.partial(jax.lax.dynamic_update_slice_in_dim, start_index=start, axis=1)
    return place(zeros[:2], s_ar), place(zeros[first_v:], s_v)


def _finish(
    t: Tree,
    c: Setup,
    dr: _Drift,
    kick: _Kick,
    s_ar,
    s_v,
    logdensity1,
    g1,
    max_depth: int,
    max_energy_error: float,
    batch: int,
    trapezoid: bool,
    keep=lambda x: x,
    special=None,
) -> Tree:
    """Update the tree with the new leaf: energies, multinomial choice, U-turn tests, merge.

    Every U-turn test is ``v_a . rho <= 0 or v_b . rho <= 0`` for a span of leaves with ends
    ``a, b`` and momentum sum ``rho``; with ``trapezoid`` the sum is taken by the trapezoid
    rule, ``rho - (p_a + p_b) / 2``, which subtracts ``(p_a.v_a + p_b.v_a) / 2`` from the first
    product and ``(p_b.v_b + p_a.v_b) / 2`` from the second (``p_b.v_a = p_a.v_b``).

    A finished tree keeps its results: once a chain's tree is done its working entries may
    change, but never those that make the result (the draw, counters, flags).

    ``keep`` passes the leaf's per-chain decisions through unchanged (a fusion fence at many
    chains; see :func:`_grow`); ``special``, when given, is true at the loop iterations whose
    leaves open or close a subtree, and the others rewrite only the rows a leaf changes.
    """
    vecs, sc, ints = t.vecs, t.scal, t.ints
    dtype = vecs.dtype
    num_slots = t.ck.shape[1]
    tracks_ar = vecs.shape[0] > SUB_AR  # the row _start added (_tracks_ar)
    slots = jnp.arange(num_slots)
    active = ints[DONE] == 0
    n, depth = ints[LEAF], ints[DEPTH]
    opening, row, origin, far = dr.opening, dr.row, dr.origin, dr.far
    q1, p1, v1, sub_rho = dr.q1, kick.p1, kick.v1, kick.sub_rho
    rho_t = vecs[RHO]
    near = jnp.where(opening, origin[1:3], vecs[NEAR_P : NEAR_V + 1])
    near_pv = jnp.where(opening, dr.origin_pv, sc[NEAR_PV])
    pv, vr, vt, vn = _rowdots(jnp.stack([p1, sub_rho, rho_t, near[0]]), v1, batch)
    if trapezoid:  # p_n.v_far as well
        ft, fr, c_far = _rowdots(jnp.stack([rho_t, sub_rho, p1]), far[2], batch)
    else:
        ft, fr = _rowdots(jnp.stack([rho_t, sub_rho]), far[2], batch)
    nr = jnp.dot(near[1], sub_rho)

    h1 = -logdensity1 + 0.5 * pv
    nonfinite = jnp.isnan(h1) | (logdensity1 == jnp.inf)
    logw1 = jnp.where(nonfinite, -jnp.inf, c.h0 - h1)
    diverging = -logw1 > max_energy_error

    # progressive multinomial sampling within the subtree
    sub_logw = jnp.where(opening, logw1, jnp.logaddexp(sc[LOGW_SUB], logw1))
    take = opening | (dr.log_u_leaf < logw1 - sub_logw)

    # U-turn tests of the checkpoint slots closed by an odd leaf, and across their halves
    odd = (n & 1) == 1
    top = jax.lax.population_count(n >> 1)
    slot = kick.slot
    ck_sc = t.ck_scal
    if (
        trapezoid
    ):  # s_v rows: p_s.v_n, p_{s-1}.v_n, R_{s-1}.v_n; p_s.v_s / 2 is in ck_sc[0], p_{s-1}.v_{s-1} / 2 in ck_sc[1]
        c_s, c_prev, r_prev = s_v[0], s_v[1], s_v[2]
        whole = _turning(s_ar[0] - ck_sc[0] - 0.5 * c_s, vr - r_prev - 0.5 * (pv + c_s))
        plus_right = _turning(s_ar[1] - ck_sc[1] - 0.5 * c_prev, vr - r_prev + 0.5 * c_prev - 0.5 * pv)
    else:
        whole = _turning(s_ar[0] - ck_sc[0], vr - s_v[1])
        plus_right = _turning(s_ar[1] - ck_sc[1], vr - s_v[1] + s_v[0])
    across = jnp.concatenate([(plus_right | (ck_sc[2] > 0))[1:], jnp.zeros((1,), bool)])
    closed = jax.lax.population_count((~n & (n + 1)) - 1)  # trailing one bits of n
    tested = odd & (slots <= top) & (slots > top - closed)
    sub_turning = jnp.any(tested & (whole | (across & (slots < top))))
    left_plus_first = jnp.any(whole & (slots == top - 1))  # pair (top - 1, top), known now
    # v_n.R_{n-1} and v_{n-1}.(R_{n-1} - p_{n-1}) from scalars already known (trapezoid: plus
    # p_n.v_n / 2 and p_{n-1}.v_{n-1} / 2, the halved ends of the spans they begin)
    prev_vr = jnp.where(opening, 0.0, sc[PREV_VR])
    if trapezoid:
        first_rows = [vr - 0.5 * pv, prev_vr - 0.5 * dr.origin_pv]
    else:
        first_rows = [vr - pv, prev_vr - dr.origin_pv]
    row_scalars = jnp.stack([*first_rows, left_plus_first.astype(dtype)])
    ck_sc = jnp.where(slots == slot, row_scalars[:, None], ck_sc)

    # a finished subtree joins the trajectory: checks on the whole, trajectory + first leaf
    # (decided at the first leaf, where R_n = p_n) and trajectory's near end + subtree
    if trapezoid:
        far_a, far_b = ft + fr - 0.5 * (dr.far_pv + c_far), vt + vr - 0.5 * (pv + c_far)
        near_a, near_b = 0.5 * (near_pv - vn) + nr, 0.5 * (vn - pv) + vr
    else:
        far_a, far_b, near_a, near_b = ft + fr, vt + vr, near_pv + nr, vn + vr
    first_turning = jnp.where(opening, _turning(far_a, far_b), ints[FIRST_TURNING] > 0)
    merge = (n == (1 << depth) - 1) & ~diverging & ~sub_turning
    turning = _turning(far_a, far_b) | first_turning | _turning(near_a, near_b)
    accept_sub = active & merge & (row[2] < sub_logw - sc[LOGW])
    last = depth + 1 >= (max_depth if c.depth_limit is None else c.depth_limit)
    done = diverging | sub_turning | (merge & (turning | last))
    take, merge, accept_sub, done, diverging, nonfinite, first_turning, sub_logw, logw1, h1 = keep(
        (take, merge, accept_sub, done, diverging, nonfinite, first_turning, sub_logw, logw1, h1)
    )

    sub_cand = jnp.where(take, jnp.stack([q1, g1]), vecs[SUB_Q : SUB_G + 1])
    sub_scalars = jnp.where(take, jnp.stack([logdensity1, h1]), sc[SUB_LOGDENSITY : SUB_ENERGY + 1])

    def all_rows(_):
        return jnp.concatenate(
            [
                jnp.stack([q1, p1, v1, g1]),
                far,
                near,
                jnp.stack([sub_rho, jnp.where(merge, rho_t + sub_rho, rho_t)]),
                sub_cand,
                jnp.where(accept_sub, sub_cand, vecs[Q : G + 1]),
            ]
            + ([kick.a_r[None]] if tracks_ar else [])
        )

    def leaf_rows(_):
        out = jax.lax.dynamic_update_slice_in_dim(vecs, jnp.stack([q1, p1, v1, g1]), TIP, axis=0)
        out = jax.lax.dynamic_update_slice_in_dim(out, sub_rho[None], SUB_RHO, axis=0)
        if tracks_ar:
            out = jax.lax.dynamic_update_slice_in_dim(out, kick.a_r[None], SUB_AR, axis=0)
        return jax.lax.dynamic_update_slice_in_dim(out, sub_cand, SUB_Q, axis=0)

    new_vecs = all_rows(None) if special is None else jax.lax.cond(special, all_rows, leaf_rows, None)
    new_scal = jnp.concatenate(
        [
            jnp.stack([sub_logw, jnp.where(merge, jnp.logaddexp(sc[LOGW], sub_logw), sc[LOGW])]),
            sub_scalars,
            jnp.where(accept_sub, sub_scalars, sc[LOGDENSITY : ENERGY + 1]),
            jnp.stack(
                [sc[SUM_ACCEPT] + jnp.where(active, jnp.exp(jnp.minimum(logw1, 0.0)), 0.0), pv, dr.far_pv, near_pv, vr]
            ),
        ]
    )
    flags = [ints[MOVED] > 0, ints[DIVERGENT] > 0, ints[NONFINITE] > 0, ints[DONE] > 0]
    flags = [
        flags[0] | accept_sub,
        flags[1] | (active & diverging),
        flags[2] | (active & nonfinite),
        flags[3] | (active & done),
        first_turning,
    ]
    new_ints = jnp.concatenate(
        [
            jnp.stack(
                [
                    jnp.where(active & merge, depth + 1, depth),
                    jnp.where(merge, 0, n + 1),
                    ints[NUM_LEAVES] + active.astype(jnp.int32),
                ]
            ),
            jnp.stack(flags).astype(jnp.int32),
        ]
    )
    return Tree(new_vecs, kick.ck, ck_sc, new_scal, new_ints)


def _grow(
    t: Tree,
    c: Setup,
    gradient,
    ld_dtype,
    mapped,
    batch: int,
    max_depth: int,
    max_energy_error: float,
    fence: bool,
    trapezoid: bool,
    it=None,
    until: int = 0,
    split_batch: int | None = None,
):
    """Run the leaf loop until at most ``until`` trees are still growing (every tree done by
    default); returns the trees and the loop counter ``it`` reached (from ``it``, 0 by default).
    ``split_batch`` (``batch`` by default) is the batch size whose split sums
    (:func:`_rowdots`) the inner products use: a stage of a larger batch keeps its pieces.

    One leaf is four pieces.  With ``fence`` (``_integrators.fence_pays``: every log-density
    but a small one of a few linear-algebra operations that never fuse) the gradient
    runs inside a ``cond`` (whose predicate,
    "some tree is still growing", always holds in the loop body): a ``cond`` is a boundary
    XLA does not fuse across, so the log-density and its gradient are computed once and
    stored, like the bare gradient.  Without it XLA:CPU inlines the cheap arithmetic of a
    structured log-density (a time series is thousands of scalar operations) into every wide
    update that depends on the leaf's energy and recomputes it for each element: 2-3x the
    gradient's cost on the Inference Gym's stochastic-volatility model, and 1.3x on a 10-d
    funnel at 128 chains.  On a log-density of a few triangular solves the ``cond`` itself
    would cost more (10-20% of a leaf on the Gym's ill-conditioned Gaussian), so it is left
    out there (figures at ``_integrators.FENCE_MIN_EQUATIONS``).  The U-turn products read only
    the checkpoint slots the leaf tests (:func:`_window`: one or two for most leaves), which
    are the same in every growing tree, so a ``switch`` on the loop's own counter picks them
    for the whole batch.  On a batch of at most ``_EVERY_SLOT_MAX_ELEMENTS`` coordinates
    (chains times d) the ``switch`` costs more than it spares, and every leaf reads every slot
    (``bench_nuts_leaf.py --every-slot on|off --step-size 0.05``, the Gym's 2-d quartic model,
    deep trees, us per lockstep iteration: 1.59 against 1.84 at 4 chains, 4.06 against 4.37
    at 128; but 10.5 against 7.0 on the Gym's 10-d funnel at 128 chains, 2.41 against 2.37 at 4).

    Many chains of a small target (``_DECISIONS_FENCE_MIN_BATCH``, ``_SMALL_DIM``): the
    per-chain decisions of a leaf (take the leaf, merge, accept the subtree, done, ...) come
    out of a ``cond`` too.  Left to fusion, XLA:CPU recomputes their scalar logic for every
    element of the wide selects that read them (every coordinate of the 16 state rows); fenced,
    they are computed once per chain: 43.4 against 40.0 us per lockstep iteration on the Gym's
    EightSchools and 43.4 against 39.8 on the 10-d funnel at 128 chains, but 3.3 against 3.5 at
    4 chains, where the ``cond`` costs more than it saves (``bench_nuts_leaf.py``).  And since
    only the first and the last leaf of a subtree move the trajectory's ends, its draw and its
    momentum sum, and those leaves come at the same loop iteration in every growing tree, the
    other leaves rewrite only the rows they change (the tip, the subtree's sum and candidate)
    under a ``cond`` on the loop counter: a further 5-12% on the same two targets, but 11% more
    on a 100-d Gaussian, where the ``cond`` copies the wider state.  The values are the same;
    only where and how they are computed changes (a finished tree's working rows may differ,
    never its results).

    ``mapped(fn)`` maps a per-chain function over the batch (``jax.vmap``, or the identity
    for one chain); ``gradient(q)`` evaluates the (batched) value, of dtype ``ld_dtype``, and
    gradient.
    """
    num_slots = t.ck.shape[-2]
    window = min(_WINDOW, num_slots)
    growing = lambda t: t.ints[..., DONE] == 0  # noqa: E731
    split = batch if split_batch is None else split_batch

    def products(size):
        first_v = 0 if trapezoid else 1

        def run(ck, a_r, v1, start):
            slot_products = functools.partial(_slot_products, start=start, size=size, batch=split, first_v=first_v)
            return mapped(slot_products)(ck, a_r, v1)

        return run

    every = products(None)
    branches = [products(size) for size in range(window + 1)] + [every]
    small_and_many = batch >= _DECISIONS_FENCE_MIN_BATCH and t.vecs.shape[-1] <= _SMALL_DIM
    every_slot = batch * t.vecs.shape[-1] <= _EVERY_SLOT_MAX_ELEMENTS

    def body(carry):
        t, it = carry
        dr = mapped(_drift)(t, c)
        idle = lambda q: (jnp.zeros(q.shape[:-1], ld_dtype), jnp.zeros_like(q))  # noqa: E731 (never taken)
        any_growing = jnp.any(growing(t))
        if fence:
            logdensity1, g1 = jax.lax.cond(any_growing, gradient, idle, dr.q1)
        else:
            logdensity1, g1 = gradient(dr.q1)
        kick = mapped(_kick)(t, c, dr, g1)
        # only a subtree's first leaf (n = 0) and its last (n = 2^j - 1) move the ends, the
        # draw or the trajectory's momentum sum
        doubling, n_shared = _leaf_of(it)
        special = (n_shared == 0) | (n_shared == jnp.left_shift(1, doubling) - 1)
        if every_slot:  # every slot's products: no window, no switch
            s_ar, s_v = every(kick.ck, kick.a_r, kick.v1, 0)
        else:
            start, size = _window(it)
            s_ar, s_v = jax.lax.switch(jnp.minimum(size, window + 1), branches, kick.ck, kick.a_r, kick.v1, start)
        keep = lambda x: x  # noqa: E731
        if small_and_many:
            zeros = lambda x: jax.tree_util.tree_map(jnp.zeros_like, x)  # noqa: E731 (never taken: see fence)
            keep = lambda x: jax.lax.cond(any_growing, lambda y: y, zeros, x)  # noqa: E731
        finish = functools.partial(
            _finish,
            max_depth=max_depth,
            max_energy_error=max_energy_error,
            batch=split,
            trapezoid=trapezoid,
            keep=keep,
            special=special if small_and_many else None,
        )
        return mapped(finish)(t, c, dr, kick, s_ar, s_v, logdensity1, g1), it + 1

    if until == 0:
        go_on = lambda carry: jnp.any(growing(carry[0]))  # noqa: E731
    else:
        go_on = lambda carry: jnp.sum(growing(carry[0]).astype(jnp.int32)) > until  # noqa: E731
    return jax.lax.while_loop(go_on, body, (t, jnp.zeros((), jnp.int32) if it is None else it))


def _stage_sizes(batch: int, program_size: int = 0, gather: bool | None = None) -> list[int]:
    """The batch sizes of the loop's stages for ``batch`` vmapped chains.

    ``gather=False``: ``[batch]``.  ``None`` (the default of ``nuts``): ``[batch]`` below
    ``_COMPACT_MIN_BATCH`` (64) chains, above ``_COMPACT_MAX_EQUATIONS`` equations of the
    log-density, or off the CPU (on an accelerator a small target's iteration costs about the
    same at 8 or 1024 chains, so the stages would only add compile time; not measured here).
    Otherwise (and with ``gather=True`` from 16 chains on) down to ``_COMPACT_LANES`` (8)
    chains, through the geometric mean of the two rounded up to whole vectors of 8 where that
    lies strictly between: 32 chains run in stages of 32 and 8, 64 in 64, 24 and 8, 128 in 128,
    32 and 8, 1024 in 1024, 96 and 8.

    Each stage compiles the leaf and the log-density's gradient once more, so there are at
    most three, and a long log-density keeps one.  ``bench_nuts_leaf.py --chains 128``
    (compile seconds and milliseconds per draw of the batch, one stage against three):
    the Gym's NealsFunnel (115 equations) 2.6 against 5.9 s, 25.8 against 5.1 ms;
    Brownian motion (2,457) 5.4 against 12.6 s, 4.8 against 3.0 ms; stochastic volatility
    (12,189) 16.5 against 41 s, 26.1 against 19.8 ms.  For the last two the extra compile
    takes thousands of draws to pay back at 128 chains.
    """
    lanes = _COMPACT_LANES
    if gather is False or batch < 2 * lanes:
        return [batch]
    if gather is None and (
        batch < _COMPACT_MIN_BATCH or program_size > _COMPACT_MAX_EQUATIONS or jax.default_backend() != "cpu"
    ):
        return [batch]
    middle = -(-int(round((batch * lanes) ** 0.5)) // lanes) * lanes
    if middle <= 2 * lanes or middle >= batch:
        return [batch, lanes]
    return [batch, middle, lanes]


def _grow_compacting(
    t: Tree, c: Setup, gradient, consts, const_axes, ld_dtype, batch: int, program_size: int, gather, grow
) -> Tree:
    """:func:`_grow` for a batch of ``batch`` chains, in stages of shrinking size.

    A vmapped loop pays every iteration for the whole batch, and on targets whose trees vary
    in depth most iterations have few trees still growing (the Gym's 10-d funnel at 128
    chains: 54 leaves per chain and draw, 755 iterations).  So once no more than the next
    stage's size are growing, those trees (and enough finished ones to fill the stage) are
    gathered into a smaller batch, which runs on at the same loop counter; at the end the
    stages' trees are written back in reverse order.  Every stage splits the inner products'
    sums as the whole batch does (``split_batch``), so each chain's leaves are the same
    arithmetic at every stage size, and on targets of up to ``_SMALL_DIM`` coordinates the
    draws are those of the one-stage loop bit for bit (``tests/kernels/test_fence.py``; also
    measured on a 10-d funnel at 128 chains).  On larger targets the U-turn products are
    batched matrix-vector products, which XLA may round differently at another batch size (as
    it does across chain counts, :mod:`mcgen.run`), so there the draws agree to rounding.
    ``gradient(x, consts)`` is the batched value and gradient;
    ``consts`` are the log-density's closed-over values, batched where ``const_axes`` is 0.
    """
    sizes = _stage_sizes(batch, program_size, gather)
    saved = []
    it = None
    for k, size in enumerate(sizes):
        until = sizes[k + 1] if k + 1 < len(sizes) else 0
        stage_gradient = functools.partial(gradient, consts=consts)
        t, it = grow(t, c, stage_gradient, ld_dtype, jax.vmap, size, it=it, until=until, split_batch=batch)
        if until:
            # growing trees first (a stable sort keeps their order), then finished ones
            order = jnp.argsort(t.ints[:, DONE] != 0, stable=True)[:until]
            saved.append((t, order))
            t, c = jax.tree_util.tree_map(lambda x: x[order], (t, c))
            consts = [x if a is None else jnp.take(x, order, axis=a) for x, a in zip(consts, const_axes)]
    for parent, order in reversed(saved):
        t = jax.tree_util.tree_map(lambda whole, part: whole.at[order].set(part), parent, t)
    return t


def _result(t: Tree) -> TreeResult:
    i = t.ints
    return TreeResult(
        t.vecs[Q],
        t.scal[LOGDENSITY],
        t.vecs[G],
        t.scal[ENERGY],
        t.scal[SUM_ACCEPT] / i[NUM_LEAVES].astype(t.scal.dtype),
        i[NUM_LEAVES],
        i[DEPTH],
        i[MOVED] > 0,
        i[DIVERGENT] > 0,
        i[NONFINITE] > 0,
    )


def build_tree(
    key,
    f,
    inverse_mass,
    q,
    logdensity,
    g,
    step_size,
    max_depth: int,
    max_energy_error: float,
    uturn: str = "stan",
    gather: bool | None = None,
    depth_limit=None,
) -> TreeResult:
    """One NUTS transition's trajectory from ``(q, logdensity, g)``; see the module doc.

    ``uturn``: ``"stan"`` (the momentum sum of a span) or ``"trapezoid"`` (its ends halved).
    ``gather``: whether a vmapped batch gathers its growing trees into smaller stages
    (:func:`_stage_sizes`; ``None``: where it pays).  ``depth_limit``: an int32 scalar that
    stops the trajectory after that many doublings where it is below ``max_depth``, 0 for no
    such limit (a traced value: the warmup's cap and the sampling's ``max_depth`` share one
    program); ``None``: ``max_depth`` alone, with no value to read.

    ``f(q) -> (logdensity, grad)``.  Under ``vmap`` a custom batching rule runs one loop for
    the whole batch whose body is the per-chain leaf step, idempotent once a chain's tree is
    done: this spares the per-iteration copy of every loop variable that ``vmap`` of a
    ``while_loop`` otherwise makes.  Values ``f`` closes over (a Gibbs block's other blocks,
    a temperature) are passed explicitly, so they may be batched too.
    """
    closed = jax.make_jaxpr(f)(q)
    jaxpr = closed.jaxpr

    def f_with(consts):
        return lambda x: tuple(jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(jaxpr, consts))(x))

    ld_dtype = closed.out_avals[0].dtype
    num_slots = max(max_depth - 1, 1)
    size = _integrators.program_size(jaxpr)
    grow = functools.partial(
        _grow,
        max_depth=max_depth,
        max_energy_error=max_energy_error,
        fence=_integrators.fence_pays(jaxpr),
        trapezoid=uturn == "trapezoid",
    )

    @jax.custom_batching.custom_vmap
    def run(key, q, logdensity, g, step_size, inverse_mass, depth_limit, consts):
        c, t = _start(key, q, logdensity, g, step_size, inverse_mass, depth_limit, max_depth, num_slots)
        return _result(grow(t, c, f_with(consts), ld_dtype, lambda fn: fn, 1)[0])

    @run.def_vmap
    def run_batched(axis_size, in_batched, key, q, logdensity, g, step_size, inverse_mass, depth_limit, consts):
        axes = [jax.tree_util.tree_map(lambda b: 0 if b else None, b) for b in in_batched]
        start = jax.vmap(functools.partial(_start, max_depth=max_depth, num_slots=num_slots), in_axes=tuple(axes[:7]))
        c, t = start(key, q, logdensity, g, step_size, inverse_mass, depth_limit)
        batched_f = jax.vmap(lambda x, k: f_with(k)(x), in_axes=(0, axes[7]))
        t = _grow_compacting(
            t, c, lambda x, consts: batched_f(x, consts), consts, axes[7], ld_dtype, axis_size, size, gather, grow
        )
        out = jax.vmap(_result)(t)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return run(key, q, logdensity, g, step_size, inverse_mass, depth_limit, list(closed.consts))
