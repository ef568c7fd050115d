"""Cost per leapfrog leaf of vmapped NUTS by metric: diagonal against low-rank with ``r`` kept directions.

Every run is mcgen's NUTS with the same fixed step size and the same points, ``--draws``
transitions of ``--chains`` vmapped chains in one compiled ``lax.scan`` (as
``bench_nuts_leaf.py``), with one of these inverse mass matrices:

* ``diag``: the diagonal :math:`s^2` of ``bench_nuts_leaf.py``'s setup;
* ``low_rank:R``: :math:`S (I + U (\\Lambda - I) U^\\top) S` with the same :math:`s` and
  ``--rank`` columns in :math:`U` (16, the default ``mass_rank``), of which the first ``R``
  carry a correction (eigenvalue 1.5 along random orthonormal directions) and the rest are
  void (eigenvalue 1, zero columns: what the warmup's fit leaves where it keeps fewer than
  ``--rank`` directions).  ``low_rank:0`` is the diagonal metric in low-rank form: its
  trajectories are those of ``diag``.

Reported: the lockstep leapfrog iterations (the per-draw maxima over chains, summed) and the
steady-state microseconds per iteration (best of ``--repeats``, metrics alternating), with
the ratio to ``diag``, and the time of the bare vmapped gradient.

Usage::

    python benchmarks/bench_metric_leaf.py                                   # gaussian_100, 4 chains
    python benchmarks/bench_metric_leaf.py --gym StochasticVolatilitySP500Small
    python benchmarks/bench_metric_leaf.py --metrics diag low_rank:0 low_rank:1 low_rank:16 --chains 4 128
    python benchmarks/bench_metric_leaf.py --ladder 0,16      # cut to no column or none at all
"""

from __future__ import annotations

import argparse
import time

import bench_nuts_leaf as L
import jax
import jax.numpy as jnp
import numpy as np

from mcgen.adaptation.low_rank import LowRankInverseMass
from mcgen.kernels import _metrics
from mcgen.kernels.nuts import nuts


def metric(spec: str, diag: jax.Array, rank: int, chains: int):
    """The inverse mass of ``spec`` (``diag`` or ``low_rank:R``), one per chain."""
    dim = diag.shape[0]
    if spec == "diag":
        return jnp.broadcast_to(diag, (chains, dim))
    kept = int(spec.split(":")[1])
    k = min(rank, dim)
    if not 0 <= kept <= k:
        raise ValueError(f"{spec}: the kept directions must be between 0 and {k}")
    basis, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(7), (dim, k), diag.dtype))
    mask = jnp.arange(k) < kept
    m = LowRankInverseMass(
        jnp.sqrt(diag), jnp.where(mask[None, :], basis, 0.0), jnp.where(mask, 1.5, 1.0).astype(diag.dtype)
    )
    return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (chains, *a.shape)), m)


def loop(target: str, chains: int, draws: int, inverse_mass):
    ld, diag, eps = L.SETUPS[target]
    kernel = nuts(step_size=eps, adapt=False)

    def run(x0, key):
        st = jax.vmap(kernel.init, in_axes=(0, None))(x0, ld)
        st = st._replace(params=st.params._replace(inverse_mass=inverse_mass))

        def body(s, k):
            s, info = jax.vmap(lambda kk, ss: kernel.step(kk, ss, ld))(jax.random.split(k, chains), s)
            return s, info.num_grad_evals

        return jax.lax.scan(body, st, jax.random.split(key, draws))[1]

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="gaussian_100", choices=list(L.SETUPS))
    parser.add_argument("--gym", help="an Inference Gym target (overrides --target)")
    parser.add_argument("--chains", type=int, nargs="+", default=[4])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rank", type=int, default=16, help="columns of the low-rank factor (mass_rank)")
    parser.add_argument(
        "--ladder", help="column counts the factor may be cut to, e.g. 0,1,16 (default: _metrics._column_ladder)"
    )
    parser.add_argument(
        "--metrics", nargs="+", default=["diag", "low_rank:0", "low_rank:1", "low_rank:4", "low_rank:16"]
    )
    args = parser.parse_args()
    if args.ladder:
        counts = tuple(int(c) for c in args.ladder.split(","))
        _metrics._column_ladder = lambda k: tuple(c for c in counts if c < k) + (k,)
    if args.gym:
        args.target = L.add_gym_target(args.gym)
    _, diag, _ = L.SETUPS[args.target]
    key = jax.random.key(1)
    for chains in args.chains:
        x0 = L._starts(args.target, chains, diag)
        compiled, best, iters = {}, {}, {}
        for spec in args.metrics:
            fn = loop(args.target, chains, args.draws, metric(spec, diag, args.rank, chains))
            compiled[spec] = jax.jit(fn).lower(x0, key).compile()
            leaves = np.asarray(compiled[spec](x0, key))
            iters[spec] = int(leaves.max(1).sum())
            best[spec] = np.inf
        for _ in range(args.repeats):
            for spec in args.metrics:
                start = time.perf_counter()
                jax.block_until_ready(compiled[spec](x0, key))
                best[spec] = min(best[spec], time.perf_counter() - start)
        grad = L.gradient_cost(args.target, chains)
        base = 1e6 * best[args.metrics[0]] / iters[args.metrics[0]]
        print(f"{args.target} chains={chains}: the vmapped gradient alone {grad:.2f} us")
        for spec in args.metrics:
            per = 1e6 * best[spec] / iters[spec]
            print(
                f"  {spec:12s} lockstep iterations {iters[spec]:6d}, {per:7.2f} us per iteration, "
                f"{per / base:.2f}x {args.metrics[0]}"
            )


if __name__ == "__main__":
    main()
