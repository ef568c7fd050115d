"""Does a chain's low-rank arithmetic depend on the chains beside it?  A diagnostic (issue 15).

``mass="low_rank"`` cuts the metric's ``(d, k)`` factor to the columns the whole vmapped batch
needs (:func:`mcgen.kernels._metrics.by_kept_columns`), so chain 0's products are computed with
a number of columns that depends on its neighbours.  Two checks:

``chains`` (default): the low-rank cases of ``tests/determinism_cases.py`` (NUTS, HMC and MALA
on a correlated 4-d target, early schedule, rank 4) run with 16, 1 and 2 chains; prints the
directions each of the 16 chains keeps at the end and whether chain 0 (and 1) is bit-identical.
``--no-cut`` disables the cut (the factor always has all ``k`` columns).

``operators``: velocity, momentum, square root, quadratic form and kinetic energy, vmapped over
batches of 2-16 metrics that keep ``r`` directions, computed with the factor cut to every rung
of the ladder that holds the ``r``; counts the (d, batch, r, operator) where rungs disagree in
a bit.  ``--fold`` swaps in the session-8 prototype of the operators (each column projected
with a fixed-order sum and added in a left fold, products guarded by selects so that LLVM
cannot fuse them into adds; exact zeros from the void columns).

Measured in session 8 (2-core x86-64 with AVX2 and FMA, jax 0.10.2):

* ``chains``: nuts, hmc, mala differ at 1 and 2 chains; ``--no-cut`` too (so the cut is not
  the only cause); with ``XLA_FLAGS=--xla_cpu_max_isa=AVX`` (no FMA) 1 chain is identical
  (hmc: 1 and 2) but 2 chains still differ for nuts and mala, with or without the cut (for
  mala without the cut, chain 1 differs and chain 0 agrees: a lane effect, not a coupling).
* ``operators`` (disagreements out of 340): the current code 133 with AVX2, 47 with
  ``--xla_cpu_max_isa=AVX``; ``--fold`` 106 with AVX2 (LLVM's fused multiply-adds), **0**
  with ``--xla_cpu_max_isa=AVX``.  But ``--fold`` cost
  14.8x the diagonal metric per NUTS leaf at 16 kept columns (1.68x for the current code),
  2.53x at 8 (1.71x), ``benchmarks/bench_metric_leaf.py``.

Usage::

    python tools/low_rank_determinism.py [chains] [--no-cut]
    XLA_FLAGS=--xla_cpu_max_isa=AVX python tools/low_rank_determinism.py operators --fold
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mcgen.adaptation.low_rank import LowRankInverseMass  # noqa: E402
from mcgen.kernels import _metrics as M  # noqa: E402


def _kept_product(keep, a, b):
    return jnp.where(keep, a * b, 0.0)  # a select between the product and the add: no FMA


def _project(m, w):
    return M.fixed_order_sum(_kept_product((m.vals != 1.0)[:, None], w, m.vecs.T))


def _fold(start, terms):
    acc = start
    for j in range(terms.shape[-1]):
        acc = acc + terms[..., j]
    return acc


def _corrected(diagonal, m, row, factor, w):
    t = factor * _project(m, w)
    return _fold(diagonal, _kept_product((m.vals != 1.0)[None, :], row[:, None] * m.vecs, t))


def _corrected_sum(diagonal, m, factor, w):
    c = _project(m, w)
    return _fold(diagonal, _kept_product(m.vals != 1.0, factor * c, c))


def _velocity(m, p):
    s2 = m.scale * m.scale
    if m.vecs.shape[-1] == 0:
        return s2 * p
    return _corrected(jnp.where(s2 > 0.0, s2 * p, 0.0), m, m.scale, m.vals - 1.0, m.scale * p)


def _kinetic(m, pv):
    p, v = pv
    s2 = m.scale * m.scale
    if m.vecs.shape[-1] == 0:
        return 0.5 * M.fixed_order_sum(v * v / s2)
    vd = s2 * p
    return 0.5 * _corrected_sum(M.fixed_order_sum(vd * vd / s2), m, m.vals - 1.0, m.scale * p)


def _momentum(m, z):
    inv = jax.lax.rsqrt(m.scale * m.scale)
    if m.vecs.shape[-1] == 0:
        return inv * z
    return _corrected(jnp.where(inv > 0.0, inv * z, 0.0), m, inv, jax.lax.rsqrt(m.vals) - 1.0, z)


def _sqrt(m, z):
    root = jnp.sqrt(m.scale * m.scale)
    if m.vecs.shape[-1] == 0:
        return root * z
    return _corrected(jnp.where(root > 0.0, root * z, 0.0), m, root, jnp.sqrt(m.vals) - 1.0, z)


def _quadratic(m, r):
    diagonal = M.fixed_order_sum(r * r / (m.scale * m.scale))
    if m.vecs.shape[-1] == 0:
        return diagonal
    return _corrected_sum(diagonal, m, 1.0 / m.vals - 1.0, r / m.scale)


def use_fold():
    M._velocity_low_rank, M._kinetic_low_rank = _velocity, _kinetic
    M._momentum_low_rank, M._sqrt_low_rank, M._quadratic_low_rank = _momentum, _sqrt, _quadratic


def operators():
    rng = np.random.default_rng(0)
    fns = {
        "velocity": M._velocity_low_rank,
        "momentum": M._momentum_low_rank,
        "sqrt": M._sqrt_low_rank,
        "quadratic": M._quadratic_low_rank,
        "kinetic": lambda m, p: M._kinetic_low_rank(m, (p, M._velocity_low_rank(m, p))),
    }

    def metric(kept, d, k):
        vecs, _ = np.linalg.qr(rng.standard_normal((d, k)))
        vals = np.where(np.arange(k) < kept, np.exp(rng.normal(0, 1.5, k)), 1.0)
        cols = np.where(np.arange(k) < kept, vecs, 0.0)
        return np.exp(rng.normal(size=d)).astype(np.float32), cols.astype(np.float32), vals.astype(np.float32)

    def cut(m, c):
        return LowRankInverseMass(m.scale, m.vecs[..., :c], m.vals[..., :c])

    bad = 0
    for d, k in ((4, 4), (10, 10), (32, 16)):
        ladder = M._column_ladder(k)
        for batch in (2, 4, 8, 16):
            for kept in [r for r in (0, 1, 2, 3, 5, 9, 16) if r <= k]:
                parts = zip(*[metric(kept, d, k) for _ in range(batch)])
                m = LowRankInverseMass(*(jnp.asarray(np.stack(a)) for a in parts))
                x = jnp.asarray(rng.standard_normal((batch, d)), jnp.float32)
                for name, fn in fns.items():
                    outs = [np.asarray(jax.jit(jax.vmap(fn))(cut(m, c), x)) for c in ladder if c >= kept]
                    if not all(np.array_equal(outs[0], o) for o in outs[1:]):
                        bad += 1
                        print(f"  differ: d={d} batch={batch} kept={kept} {name}", flush=True)
    print(f"disagreements: {bad}")


def chains(no_cut: bool):
    if no_cut:
        M._column_ladder = lambda k: (k,)
    from tests.determinism_cases import LOW_RANK_CASES, first_chains_equal, kept_directions, run

    for name in LOW_RANK_CASES:
        ref = run(name, 16)
        same = {n: first_chains_equal(run(name, n), ref, n) for n in (1, 2)}
        print(f"{name}: kept directions {kept_directions(ref).tolist()}; identical to 16 chains: {same}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--fold" in args:
        use_fold()
    if "operators" in args:
        operators()
    else:
        chains("--no-cut" in args)
