"""What mcgen's and BlackJAX's NUTS warmups end with, side by side, on a toy or a Gym target.

Toy mode (``bench_nuts.py``'s targets, the same initial points): per repetition, each chain's
adapted step size and mean leapfrog steps per draw for both libraries, and on
``gaussian_100`` the adapted inverse mass divided by the true variances (1.0 = learned
exactly).  Used to tell a different algorithm from adaptation landing on either side of a
tree-size boundary.

Gym mode (``--gym NAME``, a target of ``bench_gym.py``, its initial points): per repetition and
library, the adapted step size of each chain, the step size in force at the start of the final
fast buffer (mcgen: the first trial of the step-size search; BlackJAX: the last window's
average), the mean acceptance statistic and leapfrog steps per draw in sampling, the minimum
bulk ESS per sampling gradient and per gradient warmup included, and the adapted inverse mass
divided by the variance of all libraries' pooled draws of that repetition and by BlackJAX's (per
coordinate: median over chains; printed as min / median / max over coordinates); with more than 8 chains
(``--chains``) geometric means over the chains instead of each chain.  At the end, per library
over all repetitions: the geometric mean of the chains' step sizes with the standard error of
the mean log (each chain's warmup is independent, so with 4 chains a repetition's median moves
by about 12%: use ``--chains 64``), its ratio to BlackJAX's with a 2-se interval, the chains'
10/50/90% quantiles, and medians over repetitions of the rest, among them "chains' own" ESS per
gradient (warmup included): the sum of each chain's own minimum ESS, which one badly tuned
chain does not drag down as it does the pooled ESS.  ``--json`` appends every repetition's
per-chain figures.  Besides mcgen's default warmup, ``--variants`` runs mcgen with BlackJAX's
choices switched in one at a time:

* ``restart_average``: at a window end dual averaging restarts from the window's averaged step
  size (BlackJAX; ``window_adaptation(restart="average")``) instead of Stan's step-size search;
* ``lagged_average``: the averaged iterate takes the step size *used* by the transition, the
  iterate before the update (BlackJAX's ``dual_averaging``), instead of the new iterate (Stan,
  Hoffman & Gelman's algorithm 5);
* ``blackjax_like``: both.

Usage::

    python benchmarks/compare_nuts_adaptation.py [target]          # toy mode, default gaussian_100
    python benchmarks/compare_nuts_adaptation.py --gym BrownianMotionUnknownScalesMissingMiddleObservations \
        --reps 3 --chains 64 --variants restart_average lagged_average blackjax_like
    python benchmarks/compare_nuts_adaptation.py --gym BrownianMotionUnknownScalesMissingMiddleObservations \
        --fixed 0.12 0.16 0.2 0.25    # both kernels' acceptance statistic at fixed step sizes
"""

from __future__ import annotations

import argparse
import contextlib
import warnings

import bench_nuts as B
import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc
import mcgen.adaptation.window as W
from mcgen.adaptation.dual_averaging import DualAveragingState, da_update
from mcgen.kernels.nuts import nuts


def toy(name: str = "gaussian_100", reps: int = 3):
    ld, init0 = B.TARGETS[name]
    for rep in range(reps):
        init = B.initial_positions(init0, 4, rep)
        res = mc.run_chains(
            ld,
            nuts(mass="diag"),
            init=init,
            init_batched=True,
            num_chains=4,
            num_samples=1000,
            num_warmup=1000,
            seed=rep,
            progress=False,
            warn=False,
        )
        warm, sample = B._blackjax_fns(ld, 1000, 1000)
        keys = jax.random.split(jax.random.key(rep), 8)
        states, params = warm(keys[:4], init)
        _, steps = sample(keys[4:], states, params)
        print(
            f"rep {rep}  mcgen    step size {np.asarray(res.last_state.params.step_size).round(3)}  "
            f"leaves/draw {np.asarray(res.stats['num_grad_evals']).mean(1).round(1)}"
        )
        print(
            f"rep {rep}  blackjax step size {np.asarray(params['step_size']).round(3)}  "
            f"leaves/draw {np.asarray(steps).mean(1).round(1)}"
        )
        if name == "gaussian_100":
            true_var = np.asarray(B._SCALES) ** 2
            ours = (np.asarray(res.last_state.params.inverse_mass) / true_var).mean(1).round(3)
            theirs = (np.asarray(params["inverse_mass_matrix"]) / true_var).mean(1).round(3)
            print(f"        inverse mass / true variance: mcgen {ours}  blackjax {theirs}")


# ----------------------------------------------------------------------------- Gym mode


def _final_buffer(warmup: int) -> int:
    """Length of the warmup's final buffer (steps after the last window end)."""
    return warmup - int(np.flatnonzero(W.window_schedule(warmup)[1])[-1]) - 1


def _lagged_da_update(state: DualAveragingState, accept_prob, target, gamma=0.05, t0=10.0, kappa=0.75):
    """BlackJAX's dual averaging: mcgen's update, but the average takes the iterate before it."""
    new = da_update(state, accept_prob, target, gamma, t0, kappa)
    eta = new.count.astype(state.log_x.dtype) ** (-kappa)
    return new._replace(log_x_avg=eta * state.log_x + (1.0 - eta) * state.log_x_avg)


VARIANTS = {
    "restart_average": dict(restart="average"),
    "lagged_average": dict(lagged=True),
    "blackjax_like": dict(restart="average", lagged=True),
}


@contextlib.contextmanager
def _lagged(on: bool):
    """Trace mcgen's warmup with BlackJAX's averaging (the window module's ``da_update``)."""
    saved = W.da_update
    if on:
        W.da_update = _lagged_da_update
    try:
        yield
    finally:
        W.da_update = saved


def _variant_kernel(restart: str = "search"):
    base = nuts(mass="diag")
    if restart == "search":
        return base._replace(warmup=lambda n: W.window_adaptation(base.step, n, target_accept=0.8))
    return base._replace(warmup=lambda n: W.window_adaptation(base.step, n, target_accept=0.8, restart=restart))


_KERNELS: dict = {}


def run_mcgen(target, init, warmup, draws, seed, restart="search", lagged=False):
    # one kernel object per variant, so that run_chains's compile cache serves later repetitions
    # (a lagged variant is traced with the patched update and must not share a default's cache)
    if (restart, lagged) not in _KERNELS:
        _KERNELS[restart, lagged] = (
            nuts(mass="diag") if (restart == "search" and not lagged) else _variant_kernel(restart)
        )
    kernel = _KERNELS[restart, lagged]
    with _lagged(lagged):
        res = mc.run_chains(
            target.logdensity,
            kernel,
            init=init,
            init_batched=True,
            num_chains=init.shape[0],
            num_samples=draws,
            num_warmup=warmup,
            seed=seed,
            progress=False,
            warn=False,
        )
    final_start = _final_buffer(warmup)
    return dict(
        draws=np.asarray(res.samples),
        eps=np.asarray(res.last_state.params.step_size),
        eps_final_start=np.asarray(res.warmup_stats["step_size"])[:, warmup - final_start],
        accept=np.asarray(res.stats["accept_prob"]).mean(1),
        leaves=np.asarray(res.stats["num_grad_evals"]).mean(1),
        grads=float(np.sum(res.stats["num_grad_evals"])),
        wgrads=float(np.sum(res.warmup_grad_evals())),
        inv_mass=np.asarray(res.last_state.params.inverse_mass),
    )


def run_blackjax(target, init, warmup, draws, seed):
    import bench_gym as G

    warm, sample = G.blackjax_programs(target, warmup, draws)
    n = init.shape[0]
    keys = jax.random.split(jax.random.key(seed), 2 * n)
    states, params, eps_trace, wgrads = warm(keys[:n], init)
    positions, steps, _, accept, _ = sample(keys[n:], states, params)
    final_len = _final_buffer(warmup)
    # adaptation_state.step_size[i] is the step size after step i: the one step i + 1 uses
    return dict(
        draws=np.asarray(positions),
        eps=np.asarray(params["step_size"]),
        eps_final_start=np.asarray(eps_trace)[:, warmup - final_len - 1],
        accept=np.asarray(accept).mean(1),
        leaves=np.asarray(steps).mean(1),
        grads=float(np.sum(steps)),
        wgrads=float(np.sum(wgrads)),
        inv_mass=np.asarray(params["inverse_mass_matrix"]),
    )


def _mass_ratio(o, bj) -> str:
    """Per coordinate, the median over chains of the inverse mass over BlackJAX's (min / median / max)."""
    r = np.median(o["inv_mass"], axis=0) / np.median(bj["inv_mass"], axis=0)
    return f"  / BlackJAX's {r.min():.2f} / {np.median(r):.2f} / {r.max():.2f}"


def _per_chain_ess(target, draws) -> np.ndarray:
    """Each chain's own minimum bulk ESS over the coordinates (one chain's bad tunables cost
    the pooled ESS far more than their share: this sum does not)."""
    import arviz as az

    x = np.asarray(target.constrain_flat(jnp.asarray(draws)), np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([np.min(np.asarray(az.ess(az.convert_to_dataset({"x": c[None]}))["x"])) for c in x])


def gym(
    name: str, reps: int, variants, warmup: int, draws: int, num_chains: int = 4, first_rep: int = 0, json_path=None
):
    """Gym mode (see the module doc); ``json_path``: write every chain's figures there."""
    import bench_gym as G

    target = G.make_target(name)
    libraries = ["mcgen", *variants, "blackjax"]
    summary = {lib: [] for lib in libraries}
    print(
        f"{name} (d = {target.dim}), {num_chains} chains, {warmup} + {draws}, reps {first_rep}..{first_rep + reps - 1}"
    )
    for rep in range(first_rep, first_rep + reps):
        init = target.inits(num_chains, rep)
        out = {}
        for lib in libraries:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if lib == "blackjax":
                    out[lib] = run_blackjax(target, init, warmup, draws, rep)
                else:
                    out[lib] = run_mcgen(target, init, warmup, draws, rep, **VARIANTS.get(lib, {}))
        pooled_var = np.concatenate([o["draws"].reshape(-1, target.dim) for o in out.values()]).var(0)
        for lib in libraries:
            o = out[lib]
            ess = target.score(o["draws"])["ess"]
            chain_ess = _per_chain_ess(target, o["draws"])
            ratio = np.median(o["inv_mass"], axis=0) / pooled_var
            row = dict(
                eps=float(np.median(o["eps"])),
                accept=float(o["accept"].mean()),
                leaves=float(o["leaves"].mean()),
                ess_grad=1000 * ess / o["grads"],
                ess_grad_all=1000 * ess / (o["grads"] + o["wgrads"]),
                chain_ess_grad_all=1000 * chain_ess.sum() / (o["grads"] + o["wgrads"]),
                wgrads=o["wgrads"],
            )
            row["log_eps"] = np.log(o["eps"])  # per chain: every chain's warmup is independent
            summary[lib].append(row)
            if json_path:
                import json

                every = dict(target=name, lib=lib, rep=rep, **{k: v for k, v in row.items() if k != "log_eps"})
                every.update({k: o[k].tolist() for k in ("eps", "eps_final_start", "accept", "leaves")})
                with open(json_path, "a") as fh:
                    fh.write(json.dumps(every) + "\n")
            if num_chains <= 8:  # each chain
                per_chain = (
                    np.round(o[k], r) for k, r in (("eps", 3), ("eps_final_start", 3), ("accept", 3), ("leaves", 1))
                )
            else:  # geometric means of the step sizes, means of the rest
                per_chain = (
                    f"{np.exp(np.mean(np.log(o['eps']))):.3f}",
                    f"{np.exp(np.mean(np.log(o['eps_final_start']))):.3f}",
                    f"{o['accept'].mean():.3f}",
                    f"{o['leaves'].mean():.1f}",
                )
            eps, start, accept, leaves = per_chain
            print(
                f"rep {rep} {lib:16s} eps {eps}  final-buffer start {start}  accept {accept}  leaves/draw {leaves}  "
                f"ESS/1000 grads {row['ess_grad']:.2f} (with warmup {row['ess_grad_all']:.2f})  "
                f"chains' own ESS {row['chain_ess_grad_all']:.2f}  warmup grads {o['wgrads']:.0f}  "
                f"inv mass / pooled var (min / median / max) {ratio.min():.2f} / {np.median(ratio):.2f} / "
                f"{ratio.max():.2f}{_mass_ratio(o, out['blackjax']) if lib != 'blackjax' else ''}",
                flush=True,
            )
    # the adapted step size of each chain is an independent draw: its geometric mean over all
    # chains and repetitions, with the standard error of the mean log, and the ratio to BlackJAX
    bj = np.concatenate([r["log_eps"] for r in summary["blackjax"]])
    print(
        f"\nover reps {first_rep}..{first_rep + reps - 1} ({bj.size} chains per library; medians of reps but step size):"
    )
    print(
        "| library | step size, geometric mean (se of log) | / BlackJAX's (2 se) | chains' 10/50/90% | accept stat "
        "| leaves/draw | ESS per 1000 grads | with warmup | chains' own, with warmup | warmup grads |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for lib in libraries:
        med = {k: float(np.median([r[k] for r in summary[lib]])) for k in summary[lib][0] if k != "log_eps"}
        le = np.concatenate([r["log_eps"] for r in summary[lib]])
        se = le.std(ddof=1) / np.sqrt(le.size)
        diff, diff_se = le.mean() - bj.mean(), np.sqrt(se**2 + bj.var(ddof=1) / bj.size)
        print(
            f"| {lib} | {np.exp(le.mean()):.3f} ({se:.3f}) | {np.exp(diff):.3f} ({np.exp(diff - 2 * diff_se):.3f}-"
            f"{np.exp(diff + 2 * diff_se):.3f}) | {' / '.join(f'{q:.3f}' for q in np.exp(np.quantile(le, [0.1, 0.5, 0.9])))} "
            f"| {med['accept']:.3f} | {med['leaves']:.1f} | {med['ess_grad']:.2f} "
            f"| {med['ess_grad_all']:.2f} | {med['chain_ess_grad_all']:.2f} | {med['wgrads']:.0f} |"
        )


def fixed(name: str, step_sizes, num_chains: int = 16, draws: int = 500, reps: int = 2):
    """The acceptance statistic of both NUTS at fixed step sizes (no warmup difference left).

    BlackJAX's window adaptation runs once (``num_chains`` chains); then both kernels run from
    its warmed-up states with the chains' geometric-mean metric at each given step size.  Equal
    means say that the two kernels' statistics (what dual averaging sees) agree."""
    import bench_gym as G
    import blackjax

    target = G.make_target(name)
    adapt = blackjax.window_adaptation(blackjax.nuts, target.logdensity)
    warm = jax.jit(jax.vmap(lambda k, x: adapt.run(k, x, num_steps=1000)))
    (states, params), _ = warm(jax.random.split(jax.random.key(1), num_chains), target.inits(num_chains, 0))
    inverse_mass = jnp.asarray(np.exp(np.log(np.asarray(params["inverse_mass_matrix"])).mean(0)), jnp.float32)
    kernel = nuts(mass="diag")

    def blackjax_chain(key, state, eps):
        step = blackjax.nuts(target.logdensity, step_size=eps, inverse_mass_matrix=inverse_mass).step

        def body(s, k):
            s, info = step(k, s)
            return s, (info.acceptance_rate, info.num_integration_steps)

        return jax.lax.scan(body, state, jax.random.split(key, draws))[1]

    def mcgen_chain(key, state, eps):
        s = kernel.init(state.position, target.logdensity)
        s = s._replace(
            params=s.params._replace(step_size=eps.astype(s.params.step_size.dtype), inverse_mass=inverse_mass)
        )

        def body(s, k):
            s, info = kernel.step(k, s, target.logdensity)
            return s, (info.accept_prob, info.num_grad_evals)

        return jax.lax.scan(body, s, jax.random.split(key, draws))[1]

    runs = {
        lib: jax.jit(jax.vmap(f, (0, 0, None))) for lib, f in (("mcgen", mcgen_chain), ("blackjax", blackjax_chain))
    }
    print(f"{name}: {num_chains} chains x {draws} draws from BlackJAX's warmed-up states, one metric")
    print("| step size | rep | mcgen accept stat (se) | BlackJAX accept stat (se) | leaves/draw mcgen / BlackJAX |")
    print("|---|---|---|---|---|")
    for eps in step_sizes:
        for rep in range(reps):
            keys = jax.random.split(jax.random.key(100 + rep), num_chains)
            out = {lib: [np.asarray(a) for a in run(keys, states, jnp.float32(eps))] for lib, run in runs.items()}
            cells = []
            for lib in runs:
                acc = np.nan_to_num(out[lib][0]).mean(1)  # per chain
                cells.append(f"{acc.mean():.4f} ({acc.std(ddof=1) / np.sqrt(acc.size):.4f})")
            leaves = " / ".join(f"{out[lib][1].mean():.1f}" for lib in runs)
            print(f"| {eps} | {rep} | {cells[0]} | {cells[1]} | {leaves} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="gaussian_100", help="toy target of bench_nuts.py")
    parser.add_argument("--gym", help="a bench_gym.py target name (Gym mode)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--first-rep", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4, help="chains per run (Gym mode)")
    parser.add_argument("--json", help="append one JSON line per repetition and library (Gym mode)")
    parser.add_argument("--variants", nargs="*", default=[], choices=list(VARIANTS))
    parser.add_argument(
        "--fixed", type=float, nargs="+", help="Gym mode: the acceptance statistic at these fixed step sizes instead"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.gym and args.fixed:
        fixed(args.gym, args.fixed)
    elif args.gym:
        gym(args.gym, args.reps, args.variants, args.warmup, args.draws, args.chains, args.first_rep, args.json)
    else:
        toy(args.target, args.reps)


if __name__ == "__main__":
    main()
