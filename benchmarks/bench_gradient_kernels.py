"""Cost per gradient of vmapped HMC and MALA, mcgen against BlackJAX, with the adaptation taken out.

Issue 14's item 5: the per-gradient scrutiny of NUTS (``bench_nuts_leaf.py``) for the two other
gradient kernels.  Both libraries run the same algorithm with the same fixed step size (and, for
HMC, the same inverse mass and number of leapfrog steps) from the same points: ``--draws``
transitions of ``--chains`` vmapped chains in one compiled ``lax.scan``.  Reported: the
steady-state time per gradient evaluation of one chain-batch (best of ``--repeats``; the
libraries alternate), the time of the vmapped log-density value-and-gradient alone (the floor
no sampler can go below), and the ratios to both.

- HMC: ``mc.hmc(num_integration_steps=L, step_size=eps, adapt=False)`` against
  ``blackjax.hmc(logdensity, eps, inverse_mass, L)``; ``L`` gradients per transition.
  mcgen's default jitter of the step size (a uniform draw per transition) is kept; ``--no-jitter``
  turns it off.
- MALA: ``mc.mala(step_size=eps, adapt=False)`` against ``blackjax.mala(logdensity, eps**2 / 2)``
  (the same proposal: BlackJAX's step size is the Langevin time, mcgen's the leapfrog step); one
  gradient per transition.  BlackJAX's MALA has no mass matrix, so both run with the identity
  metric and the step size ``--mala-scale`` times the NUTS step size times the smallest
  standard deviation of the NUTS metric.

Targets: the toy targets of ``bench_nuts_leaf.py`` (``--target``) or an Inference Gym target
(``--gym NAME``, the ``bench`` extra; step size, inverse mass and starts from a short mcgen
NUTS warmup).  Compile time is printed apart.

Usage: python benchmarks/bench_gradient_kernels.py [--target funnel_10] [--chains 4 128]
       python benchmarks/bench_gradient_kernels.py --gym StochasticVolatilitySP500Small --chains 4
"""

from __future__ import annotations

import argparse
import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from bench_nuts_leaf import SETUPS, _starts, add_gym_target, blackjax_scan, gradient_cost, mcgen_scan

import mcgen as mc


def loops(target: str, chains: int, draws: int, num_steps: int, mala_scale: float, jitter: bool):
    """The compiled-loop builders: name -> (function of (x0, key), gradients per transition)."""
    ld, imm, eps = SETUPS[target]
    dim = imm.shape[0]
    x0 = _starts(target, chains, imm)
    eps_hmc = eps
    eps_mala = mala_scale * float(jnp.sqrt(jnp.min(imm))) * eps

    def mcgen_loop(kernel, inverse_mass):
        return mcgen_scan(kernel, ld, inverse_mass, chains, draws, lambda info: info.is_accepted)

    def blackjax_loop(algorithm):
        return blackjax_scan(algorithm, chains, draws, lambda info: info.is_accepted)

    hmc_kernel = mc.hmc(num_steps, step_size=eps_hmc, adapt=False, jitter=0.5 if jitter else 0.0)
    mala_kernel = mc.mala(step_size=eps_mala, adapt=False)
    return x0, {
        "hmc": {
            "mcgen": (mcgen_loop(hmc_kernel, imm), num_steps),
            "blackjax": (blackjax_loop(blackjax.hmc(ld, eps_hmc, imm, num_steps)), num_steps),
        },
        "mala": {
            "mcgen": (mcgen_loop(mala_kernel, jnp.ones(dim)), 1),
            "blackjax": (blackjax_loop(blackjax.mala(ld, 0.5 * eps_mala**2)), 1),
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="funnel_10", choices=list(SETUPS))
    parser.add_argument("--gym", help="an Inference Gym target (overrides --target)")
    parser.add_argument("--chains", type=int, nargs="+", default=[4, 128])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-steps", type=int, default=10, help="HMC's leapfrog steps per transition")
    parser.add_argument("--mala-scale", type=float, default=0.5)
    parser.add_argument("--no-jitter", action="store_true", help="mcgen's HMC without step-size jitter")
    parser.add_argument("--kernels", nargs="+", default=["hmc", "mala"], choices=["hmc", "mala"])
    args = parser.parse_args()
    if args.gym:
        args.target = add_gym_target(args.gym)
    key = jax.random.key(1)
    for chains in args.chains:
        x0, table = loops(args.target, chains, args.draws, args.num_steps, args.mala_scale, not args.no_jitter)
        grad = gradient_cost(args.target, chains)
        for kernel in args.kernels:
            fns = table[kernel]
            compiled, best, accept = {}, {}, {}
            for name, (fn, _) in fns.items():
                start = time.perf_counter()
                compiled[name] = jax.jit(fn).lower(x0, key).compile()
                compile_s = time.perf_counter() - start
                accept[name] = float(np.asarray(compiled[name](x0, key)).mean())
                best[name] = np.inf
                print(f"{args.target} chains={chains:4d} {kernel} {name:8s} compile {compile_s:.2f} s")
            for _ in range(args.repeats):
                for name in fns:
                    start = time.perf_counter()
                    jax.block_until_ready(compiled[name](x0, key))
                    best[name] = min(best[name], time.perf_counter() - start)
            per = {name: 1e6 * best[name] / (args.draws * grads) for name, (_, grads) in fns.items()}
            print(
                f"{args.target} chains={chains:4d} {kernel}: us per gradient mcgen {per['mcgen']:.2f}, "
                f"blackjax {per['blackjax']:.2f}, gradient alone {grad:.2f}; "
                f"mcgen/blackjax {per['mcgen'] / per['blackjax']:.2f}, mcgen/gradient {per['mcgen'] / grad:.2f}, "
                f"blackjax/gradient {per['blackjax'] / grad:.2f}; acceptance mcgen {accept['mcgen']:.2f}, "
                f"blackjax {accept['blackjax']:.2f}"
            )


if __name__ == "__main__":
    main()
