"""First-call time of ``run_chains`` with NUTS warmups, variants alternated in one process from cold caches.

A first call traces, compiles and runs the warmup and the sampling programs.  This times it
for ``mc.nuts(mass="diag")`` (Stan's warmup), the default ``mc.nuts()`` (low-rank metric on
the early schedule) and the default with parts of it swapped out, to see where its extra
compile time goes:

* ``default_five_rungs``: the factor cut to 0, 1, 2, 8 or all columns (the ladder before
  session 12) instead of 0, 1 or all;
* ``default_uncut``: never cut (one branch);
* ``default_no_recent_fits``: every low-rank fit on the whole buffer (no second, small fit
  program for the windows of at most 16 draws: session 27's fits of short windows undone);
* ``default_recent_fits``: that small program built whatever the chain count (the default
  builds it only where the chains times the dimension reach ``window._RECENT_MIN_WORK``);
* ``default_no_fit``: the low-rank fit replaced by the diagonal alone (the metric's state and
  products stay; the fit's code is gone);
* ``grad_diag_early``: the Fisher diagonal on the early schedule (the schedule without the
  low-rank state);
* ``diag_two_programs`` and ``default_two_programs``: warmup and sampling as two compiled
  programs (the driver before session 13), where the default runs them as one program that
  compiles the NUTS step once;
* ``default_chunked`` and ``default_chunked_two_programs``: in chunks of 100 steps (as with
  a progress display or a checkpoint), where one loop program serves the warmup and the
  sampling chunks, against a warmup and a sampling chunk program;
* ``diag_sampling_only`` and ``low_rank_sampling_only``: no warmup (``adapt=False``, step
  size 0.3, the starting metric): the sampling program alone, so the cost of the low-rank
  products in one compiled NUTS step.

Every run is 4 chains (``--chains``), 1000 warmup (none for the ``sampling_only`` ones) + 1000 draws on an Inference Gym target (the ``bench``
extra), ``clear_cache()`` and ``jax.clear_caches()`` before each.  BlackJAX's first call is in
``bench_gym.py``.  Pin the process to one core from its start (``taskset -c 0``) on a shared
machine.

``--devices N`` shards the chains over N simulated CPU devices (``XLA_FLAGS`` is set before JAX
starts), where the same one-program run applies.

Usage: python benchmarks/bench_first_call.py [--target EightSchools] [--reps 3] [--chains 4] [--devices N] [--variants diag default ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

if "--devices" in sys.argv:  # before JAX starts: the device count is fixed then
    _n = sys.argv[sys.argv.index("--devices") + 1]
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_n}"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from bench_gym import make_target  # noqa: E402

import mcgen as mc  # noqa: E402
import mcgen.adaptation.window as window_module  # noqa: E402
import mcgen.run as run_module  # noqa: E402
from mcgen.adaptation.low_rank import LowRankInverseMass  # noqa: E402
from mcgen.kernels import _metrics  # noqa: E402
from mcgen.run import clear_cache  # noqa: E402

LADDER = _metrics._column_ladder
FIT = window_module.low_rank_estimate
RECENT_ROWS = window_module._RECENT_ROWS
RECENT_MIN_WORK = window_module._RECENT_MIN_WORK


def _five_rungs(k: int) -> tuple[int, ...]:
    small = {0, 1, 2} | {1 << j for j in range(3, k.bit_length())}
    return tuple(sorted({c for c in small if c < k} | {k}))


def _diagonal_only(draws, grads, weights=None, *, rank, cutoff=2.0, gamma=1e-3, diag=None):
    del grads, weights, cutoff, gamma
    dim = draws.shape[1]
    k = min(rank, dim)
    scale = jnp.sqrt(diag) if diag is not None else jnp.ones((dim,), draws.dtype)
    return LowRankInverseMass(scale.astype(draws.dtype), jnp.zeros((dim, k), draws.dtype), jnp.ones((k,), draws.dtype))


VARIANTS = {
    "diag": (lambda: mc.nuts(mass="diag"), LADDER, FIT),
    "default": (lambda: mc.nuts(), LADDER, FIT),
    "diag_two_programs": (lambda: mc.nuts(mass="diag"), LADDER, FIT),
    "default_two_programs": (lambda: mc.nuts(), LADDER, FIT),
    "default_chunked": (lambda: mc.nuts(), LADDER, FIT),
    "default_chunked_two_programs": (lambda: mc.nuts(), LADDER, FIT),
    "default_five_rungs": (lambda: mc.nuts(), _five_rungs, FIT),
    "default_uncut": (lambda: mc.nuts(), lambda k: (k,), FIT),
    "default_no_fit": (lambda: mc.nuts(), LADDER, _diagonal_only),
    "default_no_recent_fits": (lambda: mc.nuts(), LADDER, FIT),
    "default_recent_fits": (lambda: mc.nuts(), LADDER, FIT),
    "grad_diag_early": (lambda: mc.nuts(mass="grad_diag", warmup_schedule="early"), LADDER, FIT),
    "diag_sampling_only": (lambda: mc.nuts(mass="diag", adapt=False, step_size=0.3), LADDER, FIT),
    "low_rank_sampling_only": (lambda: mc.nuts(mass="low_rank", adapt=False, step_size=0.3), LADDER, FIT),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="EightSchools")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--devices", type=int, default=None, help="shard the chains over N simulated devices")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    target = make_target(args.target)
    seconds: dict[str, list[float]] = {v: [] for v in args.variants}
    try:
        for rep in range(args.reps):
            for name in args.variants:
                make, ladder, fit = VARIANTS[name]
                _metrics._column_ladder, window_module.low_rank_estimate = ladder, fit
                run_module._WHOLE_RUN = not name.endswith("two_programs")
                window_module._RECENT_ROWS = 0 if name == "default_no_recent_fits" else RECENT_ROWS
                window_module._RECENT_MIN_WORK = 0 if name == "default_recent_fits" else RECENT_MIN_WORK
                chunked = {"chunk_size": 100} if "chunked" in name else {}
                clear_cache()
                jax.clear_caches()
                start = time.perf_counter()
                res = mc.run_chains(
                    target.logdensity,
                    make(),
                    init=target.inits(args.chains, rep),
                    init_batched=True,
                    num_chains=args.chains,
                    num_warmup=0 if name.endswith("sampling_only") else 1000,
                    num_samples=1000,
                    seed=rep,
                    progress=False,
                    warn=False,
                    devices=None if args.devices is None else jax.devices()[: args.devices],
                    **chunked,
                )
                jax.block_until_ready(res.samples)
                seconds[name].append(time.perf_counter() - start)
                grads = res.stats["num_grad_evals"].sum()
                print(
                    f"  rep {rep} {name:28s} first call {seconds[name][-1]:6.2f} s (compile {res.compile_time:5.2f},"
                    f" warmup {res.warmup_time:5.2f}, sampling {res.sampling_time:5.2f} s,"
                    f" {1e6 * res.sampling_time / grads:6.2f} us per sampling gradient)",
                    flush=True,
                )
    finally:
        _metrics._column_ladder, window_module.low_rank_estimate = LADDER, FIT
        run_module._WHOLE_RUN = True
        window_module._RECENT_ROWS = RECENT_ROWS
        window_module._RECENT_MIN_WORK = RECENT_MIN_WORK
    base = statistics.median(seconds[args.variants[0]])
    on = "" if args.devices is None else f", sharded over {args.devices} devices"
    print(f"{args.target}, {args.chains} chains{on}, 1000 + 1000, median of {args.reps}:")
    for name, xs in seconds.items():
        print(f"  {name:28s} {statistics.median(xs):6.2f} s  ({statistics.median(xs) / base:.2f}x {args.variants[0]})")


if __name__ == "__main__":
    main()
