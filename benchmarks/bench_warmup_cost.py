"""What the windowed warmup costs per step beyond the transition, by mass-matrix estimator.

Two measurements, both vmapped over ``--chains`` chains and compiled first:

* **machinery**: the warmup (:func:`mcgen.adaptation.window.window_adaptation`) driven by a
  fake transition that spends no gradient (a random-walk move and the score of a fixed
  Gaussian), so what is timed is the adaptation alone: Welford updates, the ring buffer of
  the low-rank estimator, the metric fits, the record; microseconds per warmup step for all
  chains, with ``"stan"`` and ``"early"`` schedules (the low-rank fit every
  ``LowRankSettings.update_every`` steps on the early one, as the kernels do; after every
  step in the next to last column, for comparison, and with ``mass_holdout``'s check of each
  fit in the last);
* **fit**: one :func:`~mcgen.adaptation.low_rank.low_rank_estimate` from a full buffer
  (``--buffer`` draws and scores per chain), microseconds for all chains; with ``--fit-only``
  also the SVDs of ``--chains`` square ``(d, d)`` matrices, vmapped and one by one.

Usage::

    python benchmarks/bench_warmup_cost.py                 # d = 10 and 100, 4 chains
    python benchmarks/bench_warmup_cost.py --dims 10 100 500 --steps 500
    python benchmarks/bench_warmup_cost.py --dims 100 --fit-only   # one fit, microseconds
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mcgen.adaptation.low_rank import low_rank_estimate
from mcgen.adaptation.window import window_adaptation
from mcgen.kernels._gradient import GradientParams, GradientState, LowRankSettings
from mcgen.kernels._metrics import identity_inverse_mass

ESTIMATORS = {"diag": "welford", "grad_diag": "fisher", "low_rank": "low_rank"}


class _Info(NamedTuple):
    accept_prob: jax.Array
    num_grad_evals: jax.Array


def _fake_step(key, state, logdensity_fn):
    q = 0.9 * state.position + 0.3 * jax.random.normal(key, state.position.shape, state.position.dtype)
    grad = -q / jnp.arange(1, q.shape[0] + 1, dtype=q.dtype)
    return state._replace(position=q, logdensity_grad=grad), _Info(jnp.float32(0.8), jnp.int32(1))


def _best_of(compiled, args, repeats: int) -> float:
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return best


def machinery(
    mass: str,
    schedule: str,
    dim: int,
    chains: int,
    steps: int,
    repeats: int,
    update_every: int | None = None,
    holdout: bool = False,
) -> float:
    """Microseconds per warmup step (all chains) of the adaptation alone."""
    if update_every is None:  # the kernels' setting
        update_every = LowRankSettings().update_every if mass == "low_rank" else 1
    warmup = window_adaptation(
        _fake_step,
        steps,
        target_accept=0.8,
        estimator=ESTIMATORS[mass],
        schedule=schedule,
        update_every=update_every,
        holdout=holdout,
    )

    def run(keys, q0):
        def one(key, q):
            metric = identity_inverse_mass(mass, dim, jnp.float32, 16)
            ws = warmup.init(GradientState(q, jnp.float32(0.0), -q, GradientParams(jnp.float32(0.5), metric)))
            ws, _ = jax.lax.scan(lambda c, k: (warmup.step(k, c, None)[0], None), ws, jax.random.split(key, steps))
            return warmup.finalize(ws).params

        return jax.vmap(one)(keys, q0)

    args = (jax.random.split(jax.random.key(0), chains), jnp.ones((chains, dim), jnp.float32))
    return 1e6 * _best_of(jax.jit(run).lower(*args).compile(), args, repeats) / steps


def fit(dim: int, chains: int, buffer: int, repeats: int) -> float:
    """Microseconds of one low-rank fit from a full buffer (all chains)."""
    x = jax.random.normal(jax.random.key(1), (chains, buffer, dim), jnp.float32)
    f = jax.vmap(lambda x, g: low_rank_estimate(x, g, rank=16))
    return 1e6 * _best_of(jax.jit(f).lower(x, -x).compile(), (x, -x), repeats)


def svd_batch(dim: int, chains: int, repeats: int) -> tuple[float, float]:
    """Microseconds of the SVDs (values and vectors) of ``chains`` matrices ``(dim, dim)``:
    vmapped (one batched LAPACK call on CPU) and one after the other (``lax.map``), the two
    paths of :func:`mcgen.adaptation.low_rank.one_chain_at_a_time`, which the fit uses."""
    a = jax.random.normal(jax.random.key(2), (chains, dim, dim), jnp.float32)

    def one(m):
        return jnp.linalg.svd(m, full_matrices=False)

    batched = _best_of(jax.jit(jax.vmap(one)).lower(a).compile(), (a,), repeats)
    mapped = _best_of(jax.jit(lambda a: jax.lax.map(one, a)).lower(a).compile(), (a,), repeats)
    return 1e6 * batched, 1e6 * mapped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--buffer", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fit-only", action="store_true", help="only one fit, and the SVDs vmapped and one by one")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.chains} chains, {args.steps} warmup steps")
    heads = [f"{m} {s} us/step" for s in ("stan", "early") for m in ESTIMATORS]
    heads += ["low_rank early, fit every step", "low_rank early, mass_holdout"]
    heads = ["vmapped SVDs us", "SVDs one by one us"] if args.fit_only else heads
    print("| d | fit us | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for dim in args.dims:
        cells = [f"{fit(dim, args.chains, args.buffer, args.repeats):.0f}"]
        if args.fit_only:
            cells += [f"{t:.0f}" for t in svd_batch(dim, args.chains, args.repeats)]
            print(f"| {dim} | " + " | ".join(cells) + " |", flush=True)
            continue
        for schedule in ("stan", "early"):
            for mass in ESTIMATORS:
                cells.append(f"{machinery(mass, schedule, dim, args.chains, args.steps, args.repeats):.1f}")
        cells.append(f"{machinery('low_rank', 'early', dim, args.chains, args.steps, args.repeats, 1):.1f}")
        cells.append(f"{machinery('low_rank', 'early', dim, args.chains, args.steps, args.repeats, holdout=True):.1f}")
        print(f"| {dim} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
