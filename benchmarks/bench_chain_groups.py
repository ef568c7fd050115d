"""Effective draws per gradient of many 4-chain runs at once: NUTS warmups side by side.

``bench_gym.py`` scores a 4-chain run; on curved or funnel-shaped targets one run's minimum
ESS moves by a factor of ten from seed to seed, so medians over 3 or 8 repetitions cannot tell
two warmups apart.  Here each library runs ``--chains`` chains (default 128) in one call, each
chain with its own warmup, as in a 4-chain run, and the chains are scored in consecutive
groups of 4: each group is one 4-chain run.  Per library it prints the median and the 25% and
10% quantiles over the groups of

* the minimum bulk ESS over the coordinates (mapped back to the constrained space, as in
  ``bench_gym.py``) per 1000 gradient evaluations of the group, warmup included;

and, over the groups, how many leave the ground truth (max |z| above ``bench_gym.py``'s
Bonferroni limit, which a run with honest error bars exceeds with probability 1%), how many of
those ``run_chains``'s after-run checks would not have warned about (R-hat above 1.01, fewer
than 100 effective draws per chain, divergences, E-BFMI, trajectories at the maximum tree
depth: :func:`mcgen.diagnostics.check_run` on the
group's own draws; a silent wrong answer) and how many groups they warn about, and how many
have R-hat above 1.05; the max |z| of all groups' draws pooled, with the standard error taken
from the spread of the groups' means (no ESS estimated: :func:`pooled_z`), against the same
limit; and the effective draws per 1000 gradients measured by the groups' error against the
truth (:func:`error_ess`: squared errors of the groups' means of ``x`` and ``x^2``, bias
included, no autocorrelation estimated), with the relative standard error of the squared error
that decides it; over
the chains, the mean acceptance statistic of sampling, the median adapted step size,
divergences and gradients per chain, and ``tails``: the share of chains that never drew the first constrained coordinate beyond
``--tail`` (the banana's arm tips: ``|x0| > 20`` holds with probability 4.6%; off when not
given); and with ``--segments K`` a burn-in check (:func:`segment_z`): all chains pooled, the
bias of the first draws and of each of K stretches of the draws, for the coordinate that
strays most.  Timing is not measured: every library's chains run in lockstep batches here, which
says nothing of a 4-chain run's seconds.  Use ``bench_gym.py`` for those.  With
``--sequential`` the chains run one after another instead, with the same keys and starting
points: the same algorithm, and on a CPU much faster where one chain's trees run long (a
vmapped batch runs every transition for as long as its longest tree; BlackJAX's 32 chains
of seed 1 on the Cox process, one of them stuck at the maximum tree depth, ran for more than 50
minutes vmapped and 5 one at a time, ``bench_chain_by_chain.py``).

Libraries: ``blackjax`` (``window_adaptation`` NUTS, as in ``bench_gym.py``), ``mcgen``
(``nuts(mass="diag")``), ``default`` (``nuts()``), ``target:T`` (``nuts(target_accept=T)``,
the default warmup at another target acceptance), and ``nuts:NAME=VALUE,...`` (``nuts()`` with
those settings, e.g. ``nuts:mass_rank=32,mass_eigval_cutoff=1.5`` or ``nuts:mass=grad_diag``).

Usage::

    python benchmarks/bench_chain_groups.py Banana --chains 256 --tail 20 \\
        --libraries default target:0.8 mcgen blackjax
    python benchmarks/bench_chain_groups.py EightSchools --libraries default target:0.8 blackjax
    python benchmarks/bench_chain_groups.py Banana --chains 1024 --segments 4 --libraries default blackjax
"""

from __future__ import annotations

import argparse

import bench_gym as G
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as sps

import mcgen as mc
from mcgen.kernels.nuts import nuts


def kernel(library: str):
    if library == "mcgen":
        return nuts(mass="diag")
    if library == "default":
        return nuts()
    if library.startswith("target:"):
        return nuts(target_accept=float(library.split(":", 1)[1]))
    if library.startswith("nuts:"):  # nuts:mass_rank=32,mass_eigval_cutoff=1.5
        return nuts(**G.nuts_settings(library))
    raise ValueError(f"unknown library {library!r}")


def run(target, library: str, init, warmup: int, draws: int, seed: int, sequential: bool = False) -> dict:
    """One call of ``library`` on all chains: draws, gradients per chain (warmup included),
    divergences per chain, mean acceptance statistic and adapted step sizes.  With
    ``sequential`` the chains run one after another (same keys, same starting points)."""
    n = init.shape[0]
    if library == "blackjax":
        warm, sample = G.blackjax_programs(target, warmup, draws, sequential=sequential)
        keys = jax.random.split(jax.random.key(seed), 2 * n)
        states, params, _, wgrads = warm(keys[:n], init)
        positions, steps, divergent, accept, energy = sample(keys[n:], states, params)
        return dict(
            draws=np.asarray(positions),
            grads=np.asarray(steps).sum(1) + np.asarray(wgrads),
            div=np.asarray(divergent).sum(1),
            energy=np.asarray(energy),
            # BlackJAX's default limit of 10 doublings: a full tree has 1023 leapfrog steps (one
            # whose last doubling diverged has fewer, and is flagged as a divergence anyway)
            max_depth=np.asarray(steps) >= 2**10 - 1,
            accept=float(np.mean(accept)),
            eps=np.asarray(params["step_size"]),
        )
    res = mc.run_chains(
        target.logdensity,
        kernel(library),
        init=init,
        init_batched=True,
        num_chains=n,
        num_samples=draws,
        num_warmup=warmup,
        seed=seed,
        progress=False,
        warn=False,
        chain_method="sequential" if sequential else "vectorized",
    )
    return dict(
        draws=np.asarray(res.samples),
        grads=np.asarray(res.stats["num_grad_evals"]).sum(1) + np.asarray(res.warmup_grad_evals()),
        div=np.asarray(res.stats["is_divergent"]).sum(1),
        energy=np.asarray(res.stats["energy"]),
        max_depth=np.asarray(res.stats["reached_max_treedepth"]),
        accept=float(np.mean(res.stats["accept_prob"])),
        eps=np.asarray(res.last_state.params.step_size),
    )


# A chain whose mean lies this many posterior standard deviations from the truth in some
# coordinate sampled somewhere else (a warmup that ended at a tiny step size far out in the
# tails, e.g.): for a chain of 1000 draws that mixes at all, such a miss has no chance.
LOST_SD = 5.0


def score_groups(target, x, grads, group: int = 4, raw=None, div=None, energy=None, max_depth=None) -> dict:
    """Per consecutive group of ``group`` chains of constrained draws ``x`` (chains, draws, dim)
    with per-chain gradient counts ``grads``: the minimum bulk ESS per 1000 gradients, whether
    max |z| against the truth exceeds the Bonferroni limit, and whether R-hat exceeds 1.05;
    and the chains whose mean lies more than ``LOST_SD`` posterior sd from the truth (``lost``).

    Given the sampler's own draws ``raw`` (unconstrained, as ``run_chains`` sees them) and the
    per-chain divergence counts ``div``, also whether ``run_chains``'s after-run checks
    (:func:`mcgen.diagnostics.check_run`: R-hat above 1.01, fewer than 100 effective draws per
    chain, divergences, with the Hamiltonian ``energy`` (chains, draws) E-BFMI below 0.3, and
    with ``max_depth`` (chains, draws; True where a transition reached NUTS's maximum tree
    depth) any such transition) would have warned about the group: a group beyond the truth
    without a warning is a silent wrong answer."""
    from mcgen.diagnostics import check_run

    ess_per_grad, beyond, high_rhat, warned = [], [], [], []
    limit = target.z_threshold()
    for g in range(x.shape[0] // group):
        chains = slice(g * group, (g + 1) * group)
        score = target.score_constrained(x[chains])  # bench_gym.py's scoring of one run
        ess_per_grad.append(1e3 * score["ess"] / float(np.sum(grads[chains])))
        beyond.append(score["z"] > limit)
        high_rhat.append(score["rhat"] > 1.05)
        if raw is not None and div is not None:
            stats = {"is_divergent": np.asarray(div[chains])}
            if energy is not None:
                stats["energy"] = np.asarray(energy[chains])
            if max_depth is not None:
                stats["reached_max_treedepth"] = np.asarray(max_depth[chains])
            warned.append(bool(check_run(np.asarray(raw[chains]), stats, group)))
    off = np.max(np.abs(x.mean(axis=1) - target.truth_mean) / target.truth_sd, axis=1)  # per chain
    return dict(
        lost=np.flatnonzero(off > LOST_SD),
        ess_per_grad=np.array(ess_per_grad),
        beyond=np.array(beyond),
        high_rhat=np.array(high_rhat),
        warned=np.array(warned) if warned else None,
        pooled_z=pooled_z(target, x, group),
        error_ess=error_ess(target, x, grads, group),
    )


def pooled_z(target, x, group: int = 4) -> float:
    """Largest |z| over coordinates of the mean of all groups' means against the truth, its
    standard error from the spread of the groups' means (no ESS estimated; the truth's own
    standard error added in quadrature), the t-statistic mapped to the normal deviate with the
    same tail probability (``mcgen.testing.check_moments(runs=)``).  One group's ESS-based MCSE
    can be too small where a run rarely visits a tail; this error bar cannot."""
    runs = x.shape[0] // group
    means = x[: runs * group].reshape(runs, -1, x.shape[-1]).mean(axis=1)
    se = np.sqrt(means.var(axis=0, ddof=1) / runs + target.truth_se**2)
    t = (means.mean(axis=0) - target.truth_mean) / se
    return float(np.max(sps.norm.isf(sps.t.sf(np.abs(t), runs - 1))))


def segment_z(target, x, segments: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A burn-in check over all chains: for the chains' first draws and for each of
    ``segments`` consecutive stretches of the sampling phase, the mean over all chains of each
    coordinate against the truth, as a bias in the truth's standard deviations and as a z (the
    standard error from the spread of the chains' stretch means, the truth's own standard error
    added in quadrature, the t statistic mapped to the normal deviate with the same tail
    probability, as in :func:`pooled_z`).  Chains that start sampling before they reach
    equilibrium show a bias that shrinks from the first draw to the last stretch; stationary
    chains give each z the spread of a standard normal, as long as the chains' stretch means are
    not too skewed (on the banana they are: use 1024 chains there).  Returns ``(bias, z)``, each
    ``(segments + 1, dim)``, row 0 the first draws."""
    n, draws = x.shape[0], x.shape[1]
    if draws < segments:
        raise ValueError(f"{draws} draws cannot be cut into {segments} stretches")
    stretch = draws // segments
    means = np.concatenate(
        [x[:, :1], x[:, : segments * stretch].reshape(n, segments, stretch, -1).mean(axis=2)], axis=1
    )  # (chains, segments + 1, dim)
    bias = means.mean(axis=0) - target.truth_mean
    se = np.sqrt(means.var(axis=0, ddof=1) / n + target.truth_se**2)
    z = np.sign(bias) * sps.norm.isf(sps.t.sf(np.abs(bias) / se, n - 1))
    return bias / target.truth_sd, z


def segment_line(target, x, segments: int) -> str:
    """The burn-in check of :func:`segment_z` for the coordinate with the largest |z|."""
    bias, z = segment_z(target, x, segments)
    i = int(np.argmax(np.max(np.abs(z), axis=0)))
    parts = ["first draw"] + [f"stretch {k + 1}/{segments}" for k in range(segments)]
    cells = " | ".join(f"{p} {b:+.3f} sd (z {v:+.1f})" for p, b, v in zip(parts, bias[:, i], z[:, i]))
    return f"    burn-in check, {target.coord_names[i]} (largest |z|): {cells}"


def error_ess(target, x, grads, group: int = 4) -> tuple[float, float]:
    """Effective draws of a group measured by its error against the truth, per 1000 gradients:
    the minimum over coordinates ``i`` of ``Var(x_i) / E[(mean_i - truth_i)^2]`` and of
    ``Var(x_i^2) / E[(mean of x_i^2 - truth)^2]``, the expectations taken over the groups (bias
    and variance together), divided by a group's mean gradient count.  ``Var(x_i)`` is the
    truth's; ``Var(x_i^2)`` is a Gaussian's with the truth's mean and standard deviation (the
    Gym publishes no fourth moments), the same for every library.  No autocorrelation is
    estimated, so a run that misses a tail it rarely visits cannot look good.  Returns the value
    and the relative standard error of the mean squared error that decides it (over the groups);
    NaN without a truth sd."""
    if not target.has_truth_sd:
        return float("nan"), float("nan")
    runs = x.shape[0] // group
    m1 = x[: runs * group].reshape(runs, -1, x.shape[-1]).mean(axis=1)
    m2 = (x[: runs * group] ** 2).reshape(runs, -1, x.shape[-1]).mean(axis=1)
    mu, sd = target.truth_mean, target.truth_sd
    sq = np.concatenate(
        [(m1 - mu) ** 2 / sd**2, (m2 - (sd**2 + mu**2)) ** 2 / (2 * sd**4 + 4 * mu**2 * sd**2)], axis=1
    )  # squared errors of the groups, in units of one independent draw's variance
    mse = sq.mean(axis=0)
    worst = int(np.argmax(mse))
    grads_per_group = float(np.sum(grads[: runs * group])) / runs
    rel_se = float(sq[:, worst].std(ddof=1) / np.sqrt(runs) / mse[worst])
    return 1e3 / float(mse[worst]) / grads_per_group, rel_se


def line(name: str, library: str, out: dict, scores: dict, tail_share: float | None) -> str:
    e = scores["ess_per_grad"]
    tails = "" if tail_share is None else f" | tails never reached {tail_share:.0%} of chains"
    warned = scores.get("warned")
    silent = (
        ""
        if warned is None
        else f" ({int(np.sum(scores['beyond'] & ~warned))} of them unwarned; {int(np.sum(warned))} groups warned)"
    )
    lost = scores.get("lost", np.zeros(0, int))
    which = f" (chains {', '.join(str(i) for i in lost[:8])}{', ...' if lost.size > 8 else ''})" if lost.size else ""
    return (
        f"{name[:30]:30s} {library:12s} {e.size} groups: ESS per 1000 grads (warmup included) median {np.median(e):.3g}"
        f" q25 {np.quantile(e, 0.25):.3g} q10 {np.quantile(e, 0.1):.3g} | beyond truth {int(scores['beyond'].sum())}{silent}"
        f" (all groups pooled: max |z| {scores['pooled_z']:.2f}) | from the error against the truth"
        f" {scores['error_ess'][0]:.3g} (+-{scores['error_ess'][1]:.0%} in its squared error)"
        f" R-hat>1.05 {int(scores['high_rhat'].sum())} | accept {out['accept']:.3f} step size {np.median(out['eps']):.3g}"
        f" div/chain {np.mean(out['div']):.1f} grads/chain {np.mean(out['grads']):.0f}{tails}"
        f" | chains more than {LOST_SD:g} sd from the truth {lost.size}{which}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="a bench_gym.py target (a Gym model's name, or toy:NAME)")
    parser.add_argument("--chains", type=int, default=128, help="a multiple of 4")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the runs and of the initial points")
    parser.add_argument("--libraries", nargs="+", default=["default", "mcgen", "blackjax"])
    parser.add_argument("--tail", type=float, default=None, help="report chains that never drew |x0| beyond this")
    parser.add_argument(
        "--segments", type=int, default=0, help="burn-in check: bias of all chains pooled in K stretches of the draws"
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run the chains one after another (lax.map): on a CPU much faster when some chain's trees run long",
    )
    args = parser.parse_args(argv)
    if args.chains % 4 or args.chains < 8:
        parser.error(f"--chains must be a multiple of 4, at least 8, got {args.chains}")
    for library in args.libraries:  # an unknown name fails before any run
        if library != "blackjax":
            kernel(library)
    target = G.make_target(args.target)
    init = target.inits(args.chains, args.seed)
    print(f"jax {jax.__version__} on {jax.default_backend()}; {args.target}, {args.chains} chains in groups of 4")
    for library in args.libraries:
        out = run(target, library, init, args.warmup, args.draws, args.seed, args.sequential)
        x = np.asarray(target.constrain_flat(jnp.asarray(out["draws"])), np.float64)
        tail = None if args.tail is None else float(np.mean(np.all(np.abs(x[..., 0]) <= args.tail, axis=1)))
        print(
            line(
                args.target,
                library,
                out,
                score_groups(
                    target,
                    x,
                    out["grads"],
                    raw=out["draws"],
                    div=out["div"],
                    energy=out["energy"],
                    max_depth=out["max_depth"],
                ),
                tail,
            ),
            flush=True,
        )
        if args.segments:
            print(segment_line(target, x, args.segments), flush=True)


if __name__ == "__main__":
    main()
