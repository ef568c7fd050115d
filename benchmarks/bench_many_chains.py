"""Many chains: ChEES-HMC, MEADS, MAMS (mcgen and BlackJAX) against mcgen's vmapped NUTS, one process.

For each target and chain count, three samplers run from the same per-chain initial positions
(``bench_nuts.initial_positions``) with ``--warmup`` warmup and ``--draws`` kept draws:

* **mcgen ChEES**: ``mc.run_chains(logdensity, mc.chees_hmc(), ...)`` (ensemble warmup:
  step size, trajectory length and diagonal metric pooled over all chains).
* **mcgen MAMS**: ``mc.run_chains(logdensity, mc.mams(), ...)`` (ensemble warmup of step size
  and metric; BlackJAX's ``adjusted_mclmc`` is not run yet: its tuning is per chain).
* **mcgen MEADS**: ``mc.run_chains(logdensity, mc.meads(), ...)`` (generalized HMC, one
  gradient per draw; fold-wise cross-chain warmup of step size, damping and metric).  The
  one-step samplers (both MEADS) run ``--ghmc-factor`` times the warmup and the draws of the
  others (default 10), so that every sampler spends a comparable number of gradients.
* **mcgen NUTS**: ``mc.run_chains(logdensity, mc.nuts(), ...)``, vmapped (per-chain Stan
  warmup).
* **BlackJAX ChEES**: ``blackjax.chees_adaptation(...).run(..., optax.adam(0.025), ...)``,
  then a ``lax.scan`` of the vmapped ``blackjax.dynamic_hmc`` step with the adapted
  parameters (its documented recipe; identity metric, as BlackJAX adapts none).
* **BlackJAX MEADS**: ``blackjax.meads_adaptation(logdensity, num_chains).run(...)``, then a
  ``lax.scan`` of the vmapped ``blackjax.ghmc`` step with the adapted parameters (its
  documented recipe; the chain count must be a multiple of 4).

Reported per target: the minimum bulk ESS over all coordinates (ArviZ), **gradients paid**
(a vmapped batch pays, at every draw, the chain count times the longest trajectory in the
batch: ``chains * sum_t max_i n_{t,i}``; for ChEES every chain takes the same number of
steps, so paid = used), ESS per paid gradient, steady sampling seconds (compile and warmup
excluded), ESS/s, the largest |z| of the second moments against the known answer where there
is one (``z = (mean of x^2 - E[x^2]) / MCSE``), and the ratios mcgen ChEES / peer of ESS per
paid gradient and of ESS/s.  The table's last two columns are each mcgen sampler's ESS per
paid gradient over mcgen NUTS's and its ESS/s over BlackJAX's implementation of the same
algorithm (where BlackJAX has one in the run).

Targets (from ``bench_nuts.py``): the 100-d Gaussian with scales log-spaced in [0.01, 1]
(ill-conditioned), Neal's funnel (non-centered, 10-d), eight schools (non-centered),
Bayesian logistic regression (n = 1000, d = 25); and Inference Gym targets built as in
``bench_gym.py`` (``gym_IllConditionedGaussian``, ``gym_EightSchools``, ``gym_Brownian``,
also ``gym_<any Gym name>``): the flat unconstrained log-density, starts uniform in [-2, 2]
as there, ESS of the draws mapped to the constrained space and the largest |z| of their
means against the Gym's ground truth (``z = (mean - truth) / MCSE``, the MCSE from the
truth's standard deviation and the ESS of the mean, as ``bench_gym.py`` scores).

Usage::

    python benchmarks/bench_many_chains.py                          # 128 and 1024 chains
    python benchmarks/bench_many_chains.py --chains 4096 --targets gaussian_100
    python benchmarks/bench_many_chains.py --quick                  # 128 chains, 200 + 100
    python benchmarks/bench_many_chains.py --chains 1024 --warmup 300 --draws 100 \
        --targets gym_Brownian --samplers mcgen_meads blackjax_meads mcgen_nuts
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from bench_nuts import CLOCK, TARGETS, initial_positions

import mcgen as mc
from mcgen.diagnostics import ess_rhat

# E[x^2] where it is known: the Gaussian (scales^2) and the non-centered funnel (9, then 1s)
SECOND_MOMENTS = {
    "gaussian_100": np.logspace(-2, 0, 100) ** 2,
    "funnel_10_nc": np.array([9.0] + [1.0] * 9),
}


def _flat_draws(samples) -> np.ndarray:
    leaves = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(samples)]
    c, n = leaves[0].shape[:2]
    return np.concatenate([x.reshape(c, n, -1) for x in leaves], axis=-1)


def second_moment_z(name: str, samples) -> float:
    """Largest |z| of the second moments against the known answer (NaN where unknown)."""
    if name not in SECOND_MOMENTS:
        return float("nan")
    x2 = _flat_draws(samples) ** 2  # (chains, draws, d)
    diag = ess_rhat({"x2": x2})["x2"]
    mcse = x2.reshape(-1, x2.shape[-1]).std(axis=0) / np.sqrt(diag["ess_bulk"])
    return float(np.max(np.abs(x2.mean(axis=(0, 1)) - SECOND_MOMENTS[name]) / mcse))


def summarize(name, samples, paid, sample_time):
    diag = ess_rhat(samples)
    ess = min(float(np.min(d["ess_bulk"])) for d in diag.values())
    return {
        "ess": ess,
        "paid": float(paid),
        "ess_per_grad": ess / float(paid),
        "sample": sample_time,
        "ess_s": ess / sample_time,
        "z2": second_moment_z(name, samples),
    }


def run_mcgen(kernel):
    def run(name, logdensity, init, num_chains, warmup, draws, seed):
        res = mc.run_chains(
            logdensity,
            kernel,
            init=init,
            init_batched=True,
            num_chains=num_chains,
            num_samples=draws,
            num_warmup=warmup,
            seed=seed,
            progress=False,
            warn=False,
        )
        steps = np.asarray(res.stats["num_grad_evals"])  # (chains, draws)
        paid = num_chains * steps.max(axis=0).sum()
        return summarize(name, res.samples, paid, res.sampling_time)

    return run


_BJ: dict = {}


def run_blackjax_chees(name, logdensity, init, num_chains, warmup, draws, seed):
    import blackjax
    import optax

    key_warm, key_sample = jax.random.split(jax.random.key(seed))
    adapt = blackjax.chees_adaptation(logdensity, num_chains)
    (states, params), _ = adapt.run(key_warm, init, step_size=0.1, optim=optax.adam(0.025), num_steps=warmup)
    states = jax.block_until_ready(states)
    if (logdensity, num_chains, draws) not in _BJ:

        def sample(key, states, step_size, inverse_mass_matrix, integration_steps_params):
            step = blackjax.dynamic_hmc(
                logdensity,
                step_size=step_size,
                inverse_mass_matrix=inverse_mass_matrix,
                next_random_arg_fn=params["next_random_arg_fn"],
                integration_steps_fn=params["integration_steps_fn"],
                integration_steps_params=integration_steps_params,
            ).step

            def body(s, k):
                s, info = jax.vmap(step)(jax.random.split(k, num_chains), s)
                return s, (s.position, info.num_integration_steps)

            return jax.lax.scan(body, states, jax.random.split(key, draws))[1]

        _BJ[(logdensity, num_chains, draws)] = jax.jit(sample)
    numeric = (params["step_size"], params["inverse_mass_matrix"], params["integration_steps_params"])
    compiled = _BJ[(logdensity, num_chains, draws)].lower(key_sample, states, *numeric).compile()
    start = time.perf_counter()
    positions, steps = jax.block_until_ready(compiled(key_sample, states, *numeric))
    sample_time = time.perf_counter() - start
    samples = jax.tree_util.tree_map(lambda x: np.swapaxes(np.asarray(x), 0, 1), positions)
    paid = num_chains * np.asarray(steps).max(axis=1).sum()  # steps: (draws, chains)
    return summarize(name, samples, paid, sample_time)


SAMPLERS = {
    "mcgen_chees": run_mcgen(mc.chees_hmc()),
    "mcgen_mams": run_mcgen(mc.mams()),
    "mcgen_nuts": run_mcgen(mc.nuts()),
    "blackjax_chees": run_blackjax_chees,
}


def bench(targets, chain_counts, warmup, draws, seed, samplers):
    rows = {}
    for num_chains in chain_counts:
        for name in targets:
            logdensity, init0 = TARGETS[name]
            init = initial_positions(init0, num_chains, seed)
            for sampler in samplers:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    c0 = CLOCK.seconds
                    r = SAMPLERS[sampler](name, logdensity, init, num_chains, warmup, draws, seed)
                r["compile"] = CLOCK.seconds - c0
                rows[(num_chains, name, sampler)] = r
                print(
                    f"  {num_chains:5d} {name:18s} {sampler:15s} " + "  ".join(f"{k}={v:.4g}" for k, v in r.items()),
                    flush=True,
                )
    return rows


def table(rows, targets, chain_counts, samplers):
    lines = [
        "| chains | target | sampler | min ESS | grads paid | ESS/paid grad | sampling s | ESS/s "
        "| max abs z (x^2) | ChEES/peer ESS per grad | ChEES/peer ESS/s |",
        "|---" * 11 + "|",
    ]
    for num_chains in chain_counts:
        for name in targets:
            ours = rows[(num_chains, name, "mcgen_chees")] if "mcgen_chees" in samplers else None
            for sampler in samplers:
                r = rows[(num_chains, name, sampler)]
                g = s = ""
                if ours is not None and sampler != "mcgen_chees":
                    g, s = f"{ours['ess_per_grad'] / r['ess_per_grad']:.2f}", f"{ours['ess_s'] / r['ess_s']:.2f}"
                lines.append(
                    f"| {num_chains} | {name} | {sampler} | {r['ess']:.0f} | {r['paid']:.3g} "
                    f"| {r['ess_per_grad']:.2e} | {r['sample']:.2f} | {r['ess_s']:.0f} | {r['z2']:.1f} "
                    f"| {g} | {s} |"
                )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--quick", action="store_true", help="128 chains, 200 warmup + 100 draws")
    args = parser.parse_args(argv)
    if args.quick:
        args.chains, args.warmup, args.draws = [128], 200, 100
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; warmup {args.warmup}, draws {args.draws}")
    rows = bench(args.targets, args.chains, args.warmup, args.draws, args.seed, args.samplers)
    print(table(rows, args.targets, args.chains, args.samplers))


if __name__ == "__main__":
    jnp.zeros(())  # start JAX before the clock listens
    main()
