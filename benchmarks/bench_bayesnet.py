"""Bayesian-network sampling and exact inference: mcgen.bayesnet against pgmpy.

For each network in ``tests/data`` (weather 4 nodes, Asia 8, random40 40) and each sample
size, measures in one process:

* forward sampling: ``mcgen.bayesnet.sampling.draw`` (all variables, to host NumPy arrays)
  vs pgmpy ``BayesianModelSampling.forward_sample``;
* likelihood weighting with evidence on some leaves: ``draw(mode="likelihood_weighting")``
  vs ``BayesianModelSampling.likelihood_weighted_sample``;
* Gibbs sampling of the whole joint (every variable, no evidence, as pgmpy's sampler does):
  ``run_chains`` with ``gibbs_kernel`` on many chains vs ``GibbsSampling.sample``, whose
  kernel construction enumerates every joint state of the other variables and so is only
  feasible on tiny networks (it is skipped above ``PGMPY_GIBBS_MAX_STATES``) and fails on
  CPTs with zero entries (Asia's deterministic ``either``); pgmpy draws
  fewer samples (``--pgmpy-gibbs-samples``) and per-sample throughput is compared;
* exact queries: ``bn.query(..., method="exact")`` vs ``VariableElimination.query`` (median
  over repeats of the same queries, after one warm call each).

mcgen's compile time is measured apart (first call minus a warm call of the same size) and
excluded from its throughput.  Throughputs are samples per second; ``ratio`` is mcgen over
pgmpy (for exact queries: pgmpy's time over mcgen's).  Run from the repository root::

    python benchmarks/bench_bayesnet.py                 # sizes 1e5 and 1e6
    python benchmarks/bench_bayesnet.py --sizes 100000  # quicker
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pathlib
import statistics
import subprocess
import sys
import time
import warnings

import jax

from mcgen import bayesnet
from mcgen.bayesnet.sampling import CHUNK_SIZE, draw
from mcgen.run import run_chains

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"
NETWORKS = {
    "weather": (
        {"wet_grass": "T"},
        [(["cloudy"], {"wet_grass": "T"}), (["sprinkler"], {"wet_grass": "T", "rain": "T"})],
    ),
    "asia": (
        {"dysp": "yes", "xray": "yes"},
        [(["lung", "bronc"], {"dysp": "yes", "xray": "yes"}), (["tub"], {"asia": "yes", "dysp": "no"})],
    ),
    "random40": (
        {"n39": "s0", "n35": "s1", "n30": "s1", "n16": "s0"},
        [
            (["n00", "n20"], {"n39": "s0", "n35": "s1"}),
            (["n25"], {"n03": "s2", "n38": "s1"}),
            (["n12", "n31"], {"n39": "s1", "n16": "s0", "n30": "s1"}),
        ],
    ),
}
PGMPY_GIBBS_MAX_STATES = 10_000
"""pgmpy's GibbsSampling tabulates, for each variable, every joint state of all the others."""
GIBBS_CHAINS = 1000
PGMPY_MEMORY_LIMIT = 8 << 30
"""Address-space cap of each pgmpy worker process (bytes)."""


def _timed(fn, repeats=1):
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def mcgen_direct(bn, n, evidence, mode, repeats):
    small = lambda: draw(bn, CHUNK_SIZE, evidence=evidence, mode=mode, seed=1)  # noqa: E731
    first, _ = _timed(small)
    warm, _ = _timed(small)
    seconds, _ = _timed(lambda: draw(bn, n, evidence=evidence, mode=mode, seed=2), repeats)
    return n / seconds, max(first - warm, 0.0)


def mcgen_gibbs(bn, n):
    chains = min(GIBBS_CHAINS, n)
    draws = math.ceil(n / chains)
    start = bn.sample(chains, seed=3)
    kernel, logdensity_fn = bayesnet.gibbs_kernel(bn), bn.logdensity_fn()
    res = run_chains(
        logdensity_fn,
        kernel,
        init=start,
        init_batched=True,
        num_chains=chains,
        num_samples=draws,
        num_warmup=0,
        seed=4,
        progress=False,
        warn=False,
    )
    return chains * draws / res.sampling_time, res.compile_time


def mcgen_exact(bn, queries, repeats):
    for q, ev in queries:
        bn.query(q, ev)
    times = [_timed(lambda: [bn.query(q, ev) for q, ev in queries])[0] / len(queries) for _ in range(repeats)]
    return statistics.median(times)


def _pgmpy_measure(name, what, n, evidence, queries, repeats):
    """One pgmpy measurement, run in a fresh process (pgmpy's memory is not returned otherwise)."""
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from pgmpy.factors.discrete import State
    from pgmpy.inference import VariableElimination
    from pgmpy.readwrite import BIFReader
    from pgmpy.sampling import BayesianModelSampling, GibbsSampling

    model = BIFReader(str(DATA / f"{name}.bif")).get_model()
    sampler = BayesianModelSampling(model)
    if what == "forward":
        return n / _timed(lambda: sampler.forward_sample(size=n, show_progress=False, seed=0))[0]
    if what == "likelihood_weighting":
        states = [State(v, s) for v, s in evidence.items()]
        return (
            n
            / _timed(lambda: sampler.likelihood_weighted_sample(evidence=states, size=n, show_progress=False, seed=0))[
                0
            ]
        )
    if what == "gibbs":
        joint_states = math.prod(int(model.get_cardinality(v)) for v in model.nodes())  # no int64 overflow
        if joint_states > PGMPY_GIBBS_MAX_STATES:
            return None, f"infeasible: kernel table has {joint_states:.1e} joint states"
        try:
            t_setup, gibbs = _timed(lambda: GibbsSampling(model))
            return n / _timed(lambda: gibbs.sample(size=n, seed=0))[0], t_setup
        except ValueError as err:  # zero CPT entries give 0/0 rows in pgmpy's kernel tables
            return None, f"pgmpy failed: {err}"
    ve = VariableElimination(model)
    for q, ev in queries:
        ve.query(q, evidence=ev, joint=False, show_progress=False)
    return statistics.median(
        _timed(lambda: [ve.query(q, evidence=ev, joint=False, show_progress=False) for q, ev in queries])[0]
        / len(queries)
        for _ in range(repeats)
    )


def pgmpy_all(name, n_list, evidence, queries, gibbs_samples, repeats):
    """pgmpy's forward / likelihood-weighting throughput, Gibbs (rate, setup) and exact time.

    Each measurement runs in a fresh interpreter (``--pgmpy-worker``) whose address space is
    capped at ``PGMPY_MEMORY_LIMIT`` bytes, so pgmpy's memory is returned between runs.
    """
    out = {}

    def measure(what, n):
        job = json.dumps([name, what, n, evidence, queries, repeats])
        done = subprocess.run([sys.executable, __file__, "--pgmpy-worker", job], capture_output=True, text=True)
        if done.returncode != 0:
            return None if what != "gibbs" else (None, f"pgmpy worker failed: {done.stderr.strip()[-200:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return tuple(result) if isinstance(result, list) else result

    for n in n_list:
        for what in ("forward", "likelihood_weighting"):
            out[(what, n)] = measure(what, n)
    out["gibbs"] = measure("gibbs", gibbs_samples)
    out["exact"] = measure("exact", 0)
    return out


def _pgmpy_worker(job: str) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (PGMPY_MEMORY_LIMIT, PGMPY_MEMORY_LIMIT))
    name, what, n, evidence, queries, repeats = json.loads(job)
    print(json.dumps(_pgmpy_measure(name, what, n, evidence, queries, repeats)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--pgmpy-gibbs-samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pgmpy-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pgmpy_worker:
        return _pgmpy_worker(args.pgmpy_worker)
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; Gibbs: {GIBBS_CHAINS} chains, no warmup\n")
    print("| network | method | samples | mcgen | compile s | pgmpy | ratio | note |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.networks:
        evidence, queries = NETWORKS[name]
        bn = bayesnet.read_bif(DATA / f"{name}.bif")
        theirs = pgmpy_all(name, args.sizes, evidence, queries, args.pgmpy_gibbs_samples, args.repeats)
        for n in args.sizes:
            for mode in ("forward", "likelihood_weighting"):
                rate, compile_s = mcgen_direct(bn, n, evidence if mode != "forward" else None, mode, args.repeats)
                _row(name, mode, n, rate, compile_s, theirs[(mode, n)], "")
            rate, compile_s = mcgen_gibbs(bn, n)
            pg_rate, note = theirs["gibbs"]
            note = f"pgmpy: {args.pgmpy_gibbs_samples} draws, setup {note:.2f}s" if pg_rate else note
            _row(name, "gibbs", n, rate, compile_s, pg_rate, note)
        ours = mcgen_exact(bn, queries, args.repeats)
        pg = theirs["exact"]
        pg_text, ratio = (f"{pg * 1e3:.2f} ms", f"{pg / ours:.1f}x") if pg else ("n/a", "n/a")
        print(
            f"| {name} | exact (per query) | | {ours * 1e3:.2f} ms | | {pg_text} | {ratio} "
            f"| median of {args.repeats} x {len(queries)} queries |",
            flush=True,
        )


def _row(name, method, n, ours, compile_s, pg, note):
    ratio = f"{ours / pg:.0f}x" if pg else "n/a"
    pg_text = f"{pg:,.0f}/s" if pg else "n/a"
    print(
        f"| {name} | {method} | {n:.0e} | {ours:,.0f}/s | {compile_s:.2f} | {pg_text} | {ratio} | {note} |", flush=True
    )


if __name__ == "__main__":
    main()
