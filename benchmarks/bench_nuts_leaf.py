"""Cost per leapfrog leaf of vmapped NUTS, mcgen against BlackJAX, with the adaptation taken out.

Both libraries run NUTS with the same fixed step size and inverse mass matrix from the same
points, ``--draws`` transitions of ``--chains`` vmapped chains in one compiled ``lax.scan``.
Reported: the total of per-draw maxima of leapfrog steps over chains (the loop iterations a
vmapped NUTS must run: every chain waits for the longest tree), and the steady-state time per
such iteration (best of ``--repeats``; the two libraries alternate).  Equal iteration counts
show that the two build the same trees; the time per iteration is then the per-leaf overhead.

Also printed: the time of the vmapped log-density gradient alone, the part no sampler can save,
and the time per draw of the whole batch.  Where mcgen's default gathers the trees still growing
into smaller batches (``nuts(gather=...)``, from 64 chains on the CPU), ``mcgen_1stage`` is the
same loop without it (``gather=False``).

Inference Gym targets (``--gym NAME``, the ``bench`` extra) get their step size and inverse
mass (medians over 4 chains) and starting points from a short mcgen warmup.
``--fence on|off`` sets ``mcgen.kernels._integrators.FENCE`` (fence every log-density's
gradient behind a ``cond``, or none; by default ``fence_pays`` decides per log-density and
batch size), which is how the fenced / not fenced figures of ``docs/gradient_kernels.md`` and
``mcgen/kernels/_integrators.py`` are measured.  ``--every-slot on|off`` likewise forces
``mcgen.kernels._trajectory._EVERY_SLOT_MAX_ELEMENTS`` (read every checkpoint slot at each leaf,
or pick the tested ones with a ``switch``), and ``--step-size`` replaces the adapted step size
(a smaller one grows deeper trees, where the per-leaf cost dominates the per-draw cost).

Usage: python benchmarks/bench_nuts_leaf.py [--target gaussian_100|funnel_10|logistic_1000x25]
       [--chains 4 128]
       python benchmarks/bench_nuts_leaf.py --gym StochasticVolatilitySP500Small --chains 4 \
       [--fence on]
"""

from __future__ import annotations

import argparse
import time

import bench_nuts as B
import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from mcgen.kernels import _trajectory
from mcgen.kernels.nuts import nuts

SETUPS = {  # log-density, inverse mass, step size (trees of a few doublings)
    "gaussian_100": (B.gaussian_100, B._SCALES**2, 0.6),
    "funnel_10": (B.funnel_10, jnp.array([9.0] + [1.0] * 9), 0.9),
    # with this metric and step size every tree has 7 leaves, as with the adapted ones in bench_nuts.py
    "logistic_1000x25": (B.logistic_regression, jnp.full(25, 0.01), 0.45),
}


STARTS: dict = {}  # target -> starting points (chains, d) where the random ones would be poor


def add_gym_target(name: str, warmup: int = 200) -> str:
    """Register an Inference Gym target: step size, inverse mass and starts from an mcgen warmup."""
    from bench_gym import GymTarget

    import mcgen as mc

    target = GymTarget(name)
    res = mc.run_chains(
        target.logdensity,
        nuts(mass="diag"),
        init=target.inits(4, 0),
        init_batched=True,
        num_chains=4,
        num_samples=10,
        num_warmup=warmup,
        seed=0,
        progress=False,
        warn=False,
    )
    params = res.last_state.params
    SETUPS[name] = (
        target.logdensity,
        jnp.median(params.inverse_mass, axis=0),
        float(np.median(np.asarray(params.step_size))),
    )
    STARTS[name] = jnp.asarray(res.last_state.position)
    return name


def _starts(target: str, chains: int, imm):
    if target in STARTS:
        start = STARTS[target]
        return start[jnp.arange(chains) % start.shape[0]]
    return jax.random.normal(jax.random.key(0), (chains, imm.shape[0])) * jnp.sqrt(imm)


def gradient_cost(target: str, chains: int, calls: int = 2000, repeats: int = 5) -> float:
    """Steady-state microseconds of one vmapped value-and-gradient of the target for all chains,
    its outputs stored: the loop carries the value and gradient (as ``bench_gym.bare_gradient``),
    so XLA cannot fuse the gradient into the next point's update and recompute its scalar
    arithmetic per element (which made this figure exceed a whole HMC leapfrog step on the
    Gym's Brownian motion at 128 chains)."""
    ld, imm, _ = SETUPS[target]
    f = jax.vmap(jax.value_and_grad(ld))

    def loop(x):
        def body(_, carry):
            x, value, grad = carry
            x = x + 1e-6 * grad + 1e-9 * value[:, None]
            value, grad = f(x)
            return x, value, grad

        return jax.lax.fori_loop(0, calls, body, (x, *f(x)))

    x0 = _starts(target, chains, imm)
    compiled = jax.jit(loop).lower(x0).compile()
    jax.block_until_ready(compiled(x0))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(x0))
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / calls


def mcgen_scan(kernel, ld, inverse_mass, chains: int, draws: int, record):
    """``run(x0, key)``: ``draws`` transitions of ``chains`` vmapped mcgen chains in one ``lax.scan``
    from ``x0`` with the given inverse mass; returns ``record(info)`` per transition."""

    def run(x0, key):
        st = jax.vmap(kernel.init, in_axes=(0, None))(x0, ld)
        dim = inverse_mass.shape[0]
        st = st._replace(params=st.params._replace(inverse_mass=jnp.broadcast_to(inverse_mass, (chains, dim))))

        def body(s, k):
            s, info = jax.vmap(lambda kk, ss: kernel.step(kk, ss, ld))(jax.random.split(k, chains), s)
            return s, record(info)

        return jax.lax.scan(body, st, jax.random.split(key, draws))[1]

    return run


def blackjax_scan(algorithm, chains: int, draws: int, record):
    """The same loop for a BlackJAX ``SamplingAlgorithm``."""

    def run(x0, key):
        st = jax.vmap(algorithm.init)(x0)

        def body(s, k):
            s, info = jax.vmap(algorithm.step)(jax.random.split(k, chains), s)
            return s, record(info)

        return jax.lax.scan(body, st, jax.random.split(key, draws))[1]

    return run


def loops(target: str, chains: int, draws: int):
    ld, imm, eps = SETUPS[target]
    x0 = _starts(target, chains, imm)

    def mcgen(uturn, gather=None):
        kernel = nuts(step_size=eps, adapt=False, uturn=uturn, gather=gather)
        return mcgen_scan(kernel, ld, imm, chains, draws, lambda info: info.num_grad_evals)

    blackjax_loop = blackjax_scan(blackjax.nuts(ld, eps, imm), chains, draws, lambda info: info.num_integration_steps)
    # mcgen's default U-turn sum is the trapezoid one, as BlackJAX's; "mcgen_stan": Stan's plain sum;
    # "mcgen_1stage": the whole batch in every iteration, without gathering the growing trees
    fns = {"mcgen": mcgen("trapezoid"), "mcgen_stan": mcgen("stan"), "blackjax": blackjax_loop}
    if len(_trajectory._stage_sizes(chains)) > 1:  # the default gathers: the loop without it beside
        fns["mcgen_1stage"] = mcgen("trapezoid", gather=False)
    return x0, fns


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="gaussian_100", choices=list(SETUPS))
    parser.add_argument("--chains", type=int, nargs="+", default=[4, 128])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gym", help="an Inference Gym target (overrides --target)")
    parser.add_argument("--fence", choices=["on", "off"], help="force mcgen's gradient fence on or off")
    parser.add_argument(
        "--every-slot",
        choices=["on", "off"],
        help="force mcgen's leaves to read every checkpoint slot (on) or only the slots they test (off)",
    )
    parser.add_argument("--step-size", type=float, help="this step size instead of the adapted one (deeper trees)")
    args = parser.parse_args()
    if args.fence is not None:
        from mcgen.kernels import _integrators

        _integrators.FENCE = args.fence == "on"
    if args.every_slot is not None:
        _trajectory._EVERY_SLOT_MAX_ELEMENTS = 2**62 if args.every_slot == "on" else -1
    if args.gym:
        args.target = add_gym_target(args.gym)
    if args.step_size is not None:
        ld, imm, _ = SETUPS[args.target]
        SETUPS[args.target] = (ld, imm, args.step_size)
    key = jax.random.key(1)
    for chains in args.chains:
        x0, fns = loops(args.target, chains, args.draws)
        compiled, best, iters = {}, {}, {}
        for name, fn in fns.items():
            start = time.perf_counter()
            compiled[name] = jax.jit(fn).lower(x0, key).compile()
            compile_s = time.perf_counter() - start
            leaves = np.asarray(compiled[name](x0, key))
            iters[name] = int(leaves.max(1).sum())
            best[name] = np.inf
            print(
                f"{args.target} chains={chains:4d} {name:9s} compile {compile_s:.2f} s, "
                f"lockstep iterations {iters[name]}, mean leaves per draw {leaves.mean():.2f}"
            )
        for _ in range(args.repeats):
            for name in fns:
                start = time.perf_counter()
                jax.block_until_ready(compiled[name](x0, key))
                best[name] = min(best[name], time.perf_counter() - start)
        per = {name: 1e6 * best[name] / iters[name] for name in fns}
        grad = gradient_cost(args.target, chains)
        one_stage = f", mcgen_1stage {per['mcgen_1stage']:.2f}" if "mcgen_1stage" in per else ""
        print(
            f"{args.target} chains={chains:4d} us per iteration: mcgen {per['mcgen']:.2f}, "
            f"mcgen_stan {per['mcgen_stan']:.2f}{one_stage}, blackjax {per['blackjax']:.2f}, "
            f"ratio mcgen/blackjax {per['mcgen'] / per['blackjax']:.2f}; "
            f"the log-density gradient alone {grad:.2f}"
        )
        draw = {name: best[name] / args.draws * 1e3 for name in fns}
        print(
            f"{args.target} chains={chains:4d} ms per draw of the batch: "
            + ", ".join(f"{name} {value:.3f}" for name, value in draw.items())
            + f"; mcgen/blackjax {draw['mcgen'] / draw['blackjax']:.2f}"
        )


if __name__ == "__main__":
    main()
