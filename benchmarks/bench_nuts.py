"""NUTS benchmark: mcgen against BlackJAX and NumPyro, same targets, same chains, one process.

For each target, each library runs NUTS (diagonal metric, Stan's windowed warmup, target
acceptance 0.8, max tree depth 10) from the same per-chain initial positions, with
``--warmup`` warmup and ``--draws`` kept draws per chain:

* **mcgen**: ``mc.run_chains(logdensity, nuts(mass="diag"), ...)`` (the same warmup as the peers;
  mcgen's default low-rank metric is compared in ``bench_gym.py``).
* **BlackJAX**: ``blackjax.window_adaptation(blackjax.nuts, ...)`` vmapped over chains, then a
  ``lax.scan`` of the vmapped ``blackjax.nuts`` step (the multi-chain recipe of its docs).
* **NumPyro**: ``MCMC(NUTS(potential_fn=...), chain_method="vectorized")``; ``warmup`` then
  ``run``.

All three evaluate the same JAX log-density.  Reported per target (median of ``--reps``
repetitions with different seeds, libraries interleaved): compile time (tracing, lowering
and XLA compilation seconds from JAX's monitoring events, first repetition), steady sampling
time (the draws phase, wall clock, warmup and compilation excluded), minimum bulk ESS over
all coordinates (ArviZ), ESS per second of sampling, gradient evaluations per effective
sample, maximum R-hat, and the ratios mcgen / peer of ESS/s and of gradients per ESS.

Targets: a 100-d Gaussian with scales log-spaced in [0.01, 1]; eight schools (non-centered);
Bayesian logistic regression on fixed synthetic data (n = 1000, d = 25); Neal's funnel
(10-d, non-centered).  ``--chains 128`` shows what vmapped NUTS costs when every chain waits
for the longest trajectory of the batch.

Usage::

    python benchmarks/bench_nuts.py                 # 4 chains, 1000 + 1000, median of 3
    python benchmarks/bench_nuts.py --chains 128
    python benchmarks/bench_nuts.py --quick         # smoke run: 200 + 200, one repetition
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from make_eight_schools_reference import logistic_data, logistic_logdensity  # as in the stored reference run

import mcgen as mc
from mcgen.diagnostics import ess_rhat
from mcgen.kernels.nuts import nuts

# ----------------------------------------------------------------------------- targets

_SCALES = jnp.asarray(np.logspace(-2, 0, 100), jnp.float32)
_Y8 = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
_SIGMA8 = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def gaussian_100(x):
    return -0.5 * jnp.sum((x / _SCALES) ** 2)


def eight_schools(p):
    """Non-centered eight schools on (mu, log_tau, theta_tilde); tau ~ HalfCauchy(5)."""
    mu, log_tau, tt = p["mu"], p["log_tau"], p["theta_tilde"]
    tau = jnp.exp(log_tau)
    lp = -0.5 * (mu / 5.0) ** 2 - jnp.log1p((tau / 5.0) ** 2) + log_tau  # Jacobian of exp
    lp = lp - 0.5 * jnp.sum(tt**2)
    return lp - 0.5 * jnp.sum(((_Y8 - mu - tau * tt) / _SIGMA8) ** 2)


_X, _YL = (jnp.asarray(a) for a in logistic_data())


# Bernoulli-logit likelihood with a N(0, 1) prior on the 25 coefficients
logistic_regression = logistic_logdensity(_X, _YL)


def funnel_10(z):
    """Neal's funnel, non-centered: v ~ N(0, 3^2), z_i ~ N(0, 1) (x_i = exp(v/2) z_i)."""
    return -0.5 * (z[0] / 3.0) ** 2 - 0.5 * jnp.sum(z[1:] ** 2)


TARGETS = {
    "gaussian_100": (gaussian_100, jnp.zeros(100)),
    "eight_schools_nc": (eight_schools, {"mu": jnp.zeros(()), "log_tau": jnp.zeros(()), "theta_tilde": jnp.zeros(8)}),
    "logistic_1000x25": (logistic_regression, jnp.zeros(25)),
    "funnel_10_nc": (funnel_10, jnp.zeros(10)),
}


def initial_positions(init, num_chains, seed):
    """The same per-chain starting points for every library: init + Uniform(-1, 1)."""
    leaves, treedef = jax.tree_util.tree_flatten(init)
    keys = jax.random.split(jax.random.key(1000 + seed), len(leaves))
    out = [
        leaf + jax.random.uniform(k, (num_chains,) + leaf.shape, leaf.dtype, -1.0, 1.0) for k, leaf in zip(keys, leaves)
    ]
    return jax.tree_util.tree_unflatten(treedef, out)


# ----------------------------------------------------------------------------- timing helpers


class CompileClock:
    """Sums the seconds JAX reports for tracing, lowering and XLA compilation."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self):
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if event in self.EVENTS:
            self.seconds += duration


CLOCK = CompileClock()


def summarize(samples, grads, sample_time, compile_time):
    diag = ess_rhat(samples)
    ess = min(float(np.min(d["ess_bulk"])) for d in diag.values())
    rhat = max(float(np.max(d["r_hat"])) for d in diag.values())
    return {
        "compile": compile_time,
        "sample": sample_time,
        "ess": ess,
        "ess_s": ess / sample_time,
        "grad_per_ess": float(grads) / ess,
        "rhat": rhat,
    }


# ----------------------------------------------------------------------------- the libraries


def run_mcgen(logdensity, init, num_chains, warmup, draws, seed):
    c0 = CLOCK.seconds
    res = mc.run_chains(
        logdensity,
        nuts(mass="diag"),
        init=init,
        init_batched=True,
        num_chains=num_chains,
        num_samples=draws,
        num_warmup=warmup,
        seed=seed,
        progress=False,
        warn=False,
    )
    grads = np.sum(res.stats["num_grad_evals"])
    return summarize(res.samples, grads, res.sampling_time, CLOCK.seconds - c0)


_BJ_CACHE: dict = {}


def _blackjax_fns(logdensity, warmup, draws):
    import blackjax

    key = (logdensity, warmup, draws)
    if key not in _BJ_CACHE:
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity)

        def warm(keys, positions):
            (state, params), _ = jax.vmap(lambda k, x: adapt.run(k, x, num_steps=warmup))(keys, positions)
            return state, params

        def sample(keys, states, params):
            def one_chain(k, state, p):
                step = blackjax.nuts(logdensity, **p).step

                def body(s, kk):
                    s, info = step(kk, s)
                    return s, (s.position, info.num_integration_steps)

                return jax.lax.scan(body, state, jax.random.split(k, draws))[1]

            return jax.vmap(one_chain)(keys, states, params)

        _BJ_CACHE[key] = (jax.jit(warm), jax.jit(sample))
    return _BJ_CACHE[key]


def run_blackjax(logdensity, init, num_chains, warmup, draws, seed):
    warm, sample = _blackjax_fns(logdensity, warmup, draws)
    keys = jax.random.split(jax.random.key(seed), 2 * num_chains)
    c0 = CLOCK.seconds
    states, params = jax.block_until_ready(warm(keys[:num_chains], init))
    compiled = sample.lower(keys[num_chains:], states, params).compile()
    start = time.perf_counter()
    positions, steps = jax.block_until_ready(compiled(keys[num_chains:], states, params))
    sample_time = time.perf_counter() - start
    return summarize(positions, np.sum(steps), sample_time, CLOCK.seconds - c0)


def run_numpyro(logdensity, init, num_chains, warmup, draws, seed):
    """NumPyro's MCMC compiles its sampling loop inside ``run`` (again at every call), so the
    steady sampling time is the wall time of ``run`` minus the compile time JAX reports in it."""
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(potential_fn=lambda z: -logdensity(z))
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    key_warm, key_run = jax.random.split(jax.random.key(seed))
    c0 = CLOCK.seconds
    mcmc.warmup(key_warm, init_params=init, extra_fields=("num_steps",), collect_warmup=False)
    c1 = CLOCK.seconds
    start = time.perf_counter()
    mcmc.run(key_run, extra_fields=("num_steps",))
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    sample_time = time.perf_counter() - start - (CLOCK.seconds - c1)
    steps = mcmc.get_extra_fields()["num_steps"]
    return summarize(samples, np.sum(steps), sample_time, CLOCK.seconds - c0)


LIBRARIES = {"mcgen": run_mcgen, "blackjax": run_blackjax, "numpyro": run_numpyro}


# ----------------------------------------------------------------------------- driver


def bench(targets, num_chains, warmup, draws, reps, libraries):
    """Per target, repetitions outermost and libraries interleaved, so load drifts hit all alike."""
    rows = {}
    for name in targets:
        logdensity, init0 = TARGETS[name]
        results = {lib: [] for lib in libraries}
        for rep in range(reps):
            init = initial_positions(init0, num_chains, rep)
            for lib in libraries:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results[lib].append(LIBRARIES[lib](logdensity, init, num_chains, warmup, draws, rep))
        for lib in libraries:
            med = {k: statistics.median(r[k] for r in results[lib]) for k in results[lib][0]}
            med["compile"] = results[lib][0]["compile"]
            rows[(name, lib)] = med
            print(f"  {name:18s} {lib:9s} " + "  ".join(f"{k}={v:.4g}" for k, v in med.items()), flush=True)
    return rows


def table(rows, targets, libraries, num_chains):
    lines = [
        f"\n### {num_chains} chains (median of reps)\n",
        "| target | library | compile s | sampling s | min ESS | ESS/s | grads/ESS | max R-hat "
        "| ESS/s ratio | grads/ESS ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in targets:
        ours = rows[(name, "mcgen")]
        for lib in libraries:
            r = rows[(name, lib)]
            ratio = "" if lib == "mcgen" else f"{ours['ess_s'] / r['ess_s']:.2f}"
            gratio = "" if lib == "mcgen" else f"{ours['grad_per_ess'] / r['grad_per_ess']:.2f}"
            lines.append(
                f"| {name} | {lib} | {r['compile']:.1f} | {r['sample']:.2f} | {r['ess']:.0f} "
                f"| {r['ess_s']:.0f} | {r['grad_per_ess']:.1f} | {r['rhat']:.3f} | {ratio} | {gratio} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, nargs="+", default=[4])
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    parser.add_argument("--quick", action="store_true", help="200 warmup + 200 draws, one repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.draws, args.reps = 200, 200, 1
    libraries = ["mcgen"] + [lib for lib in args.libraries if lib != "mcgen"]
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; warmup {args.warmup}, draws {args.draws}, "
        f"reps {args.reps}",
        flush=True,
    )
    out = []
    for num_chains in args.chains:
        rows = bench(args.targets, num_chains, args.warmup, args.draws, args.reps, libraries)
        out.append(table(rows, args.targets, libraries, num_chains))
    print("\n".join(out))


if __name__ == "__main__":
    main()
