"""Time of one MEADS sampling step at many chains: mcgen against BlackJAX's ``ghmc``, and the share of the noise.

Both libraries run generalized HMC with the same fixed step size, damping and identity metric
from the same points: ``--draws`` transitions of ``--chains`` vmapped chains in one compiled
``lax.scan`` (mcgen through ``run_chains`` with ``mc.meads(adapt=False)`` and no warmup, so
its driver's per-step key derivation and per-draw statistics are counted; BlackJAX as
``bench_many_chains.py`` samples).  A third run is mcgen's step with its random numbers
replaced by constants (the momentum noise by zeros, the slice variable's first draw by 0.5,
so no key is split or hashed either): the difference to the first is what generating the
random numbers costs inside the step.  A fourth is mcgen's step with the generator MEADS used
before ``_random.ghmc_draws`` (``split`` of the step key, ``normal`` and ``uniform``).  The four
alternate, ``--repeats`` times each; the best time per step of each is reported, with the
ratios, and the median ratio over the repeats of BlackJAX's time to mcgen's (each repeat's
runs are back to back, so a load that changes between repeats cancels in it).

Usage::

    python benchmarks/bench_meads_step.py                                # eight_schools_nc, 1024 chains
    python benchmarks/bench_meads_step.py --targets eight_schools_nc gaussian_100 --chains 1024 4096
"""

from __future__ import annotations

import argparse
import importlib
import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from bench_nuts import TARGETS, initial_positions

import mcgen as mc
from mcgen.kernels import _random as mcgen_random

STEP_SIZE, DAMPING = 0.1, 0.5


def _mcgen_time(logdensity, init, num_chains, draws, seed, step_size):
    # a distinct step size per variant: run_chains's compiled programs are cached per kernel
    kernel = mc.meads(step_size=step_size, damping=DAMPING, adapt=False)
    res = mc.run_chains(
        logdensity,
        kernel,
        init=init,
        init_batched=True,
        num_chains=num_chains,
        num_samples=draws,
        num_warmup=0,
        seed=seed,
        progress=False,
        warn=False,
    )
    return res.sampling_time / draws


def _without_noise(fn):
    """Run ``fn`` with mcgen's generator replaced by constants (traced inside, so it takes effect)."""
    meads_module = importlib.import_module("mcgen.kernels.meads")
    saved = meads_module._random
    stub = type(
        "NoNoise",
        (),
        {
            "split": staticmethod(lambda key, num=2: jnp.stack([key] * num)),
            "normal": staticmethod(lambda key, shape=(), dtype=jnp.float32: jnp.zeros(shape, dtype)),
            "uniform": staticmethod(lambda key, shape=(), dtype=jnp.float32, *a: jnp.full(shape, 0.5, dtype)),
            "ghmc_draws": staticmethod(lambda key, dim, dtype: (jnp.zeros((dim,), dtype), jnp.full((), 0.5, dtype))),
        },
    )
    meads_module._random = stub
    try:
        return fn()
    finally:
        meads_module._random = saved


def _previous_generator(key, dim, dtype):
    """MEADS's draws before ``ghmc_draws``: two keys, then ``normal`` and ``uniform``."""
    key_momentum, key_slice = mcgen_random.split(key, 2)
    return mcgen_random.normal(key_momentum, (dim,), dtype), mcgen_random.uniform(key_slice, (), dtype, -1.0, 1.0)


def _with_previous_generator(fn):
    saved = mcgen_random.ghmc_draws
    mcgen_random.ghmc_draws = _previous_generator
    try:
        return fn()
    finally:
        mcgen_random.ghmc_draws = saved


def _blackjax_fn(logdensity, num_chains, draws, dim):
    alpha = float(-np.expm1(-2.0 * STEP_SIZE * DAMPING))

    def sample(key, states):
        step = blackjax.ghmc(logdensity, STEP_SIZE, jnp.ones(dim), alpha, alpha / 2).step

        def body(s, k):
            s, _ = jax.vmap(step)(jax.random.split(k, num_chains), s)
            return s, s.position

        return jax.lax.scan(body, states, jax.random.split(key, draws))[1]

    return jax.jit(sample)


def bench(name, num_chains, draws, repeats):
    logdensity, init0 = TARGETS[name]
    init = initial_positions(init0, num_chains, 0)
    dim = jax.flatten_util.ravel_pytree(init0)[0].size
    key = jax.random.key(0)
    states = jax.vmap(lambda x, k: blackjax.ghmc.init(x, logdensity, k))(init, jax.random.split(key, num_chains))
    compiled = _blackjax_fn(logdensity, num_chains, draws, dim).lower(key, states).compile()
    times = {"mcgen": [], "mcgen, no noise": [], "mcgen, previous generator": [], "blackjax": []}
    for rep in range(repeats):
        times["mcgen"].append(_mcgen_time(logdensity, init, num_chains, draws, rep, STEP_SIZE))
        times["mcgen, no noise"].append(
            _without_noise(lambda: _mcgen_time(logdensity, init, num_chains, draws, rep, STEP_SIZE * (1 + 1e-6)))
        )
        times["mcgen, previous generator"].append(
            _with_previous_generator(
                lambda: _mcgen_time(logdensity, init, num_chains, draws, rep, STEP_SIZE * (1 + 2e-6))
            )
        )
        start = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(rep), states))
        times["blackjax"].append((time.perf_counter() - start) / draws)
    best = {k: min(v) * 1e3 for k, v in times.items()}
    median_ratio = np.median(np.array(times["blackjax"]) / np.array(times["mcgen"]))
    print(
        f"| {name} | {dim} | {num_chains} | {best['mcgen']:.3f} | {best['mcgen, no noise']:.3f} "
        f"| {best['mcgen, previous generator']:.3f} | {best['blackjax']:.3f} "
        f"| {1 - best['mcgen, no noise'] / best['mcgen']:.0%} "
        f"| {best['blackjax'] / best['mcgen']:.2f} | {median_ratio:.2f} |",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=["eight_schools_nc"], choices=list(TARGETS))
    parser.add_argument("--chains", type=int, nargs="+", default=[1024])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.draws} steps, best of {args.repeats}")
    print(
        "| target | d | chains | mcgen ms/step | mcgen without noise | mcgen, previous generator "
        "| BlackJAX ghmc ms/step | noise share of mcgen's step | BlackJAX time / mcgen time (best) "
        "| (median of repeats) |"
    )
    print("|---" * 10 + "|")
    for num_chains in args.chains:
        for name in args.targets:
            bench(name, num_chains, args.draws, args.repeats)


if __name__ == "__main__":
    jnp.zeros(())
    main()
