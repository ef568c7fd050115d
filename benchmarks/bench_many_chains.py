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
* **mcgen NUTS**: ``mc.run_chains(logdensity, mc.nuts(mass="diag"), ...)``, vmapped (per-chain
  Stan warmup, the same as BlackJAX's and NumPyro's; not the low-rank default).
* **BlackJAX ChEES**: ``blackjax.chees_adaptation(...).run(..., optax.adam(0.025), ...)``,
  then a ``lax.scan`` of the vmapped ``blackjax.dynamic_hmc`` step with the adapted
  parameters (its documented recipe; identity metric, as BlackJAX adapts none).
* **BlackJAX MAMS**: ``blackjax.adjusted_mclmc_dynamic`` (isokinetic leapfrog, Halton
  trajectory length shared by all chains) sampling with the step size, metric and length of
  mcgen's MAMS warmup: the same algorithm with the same tunables, so the ESS/s ratio
  compares the sampling implementations (BlackJAX's own adjusted-MCLMC tuning is a per-chain
  multi-stage recipe, not run here).
* **BlackJAX MEADS**: ``blackjax.meads_adaptation(logdensity, num_chains).run(...)``, then a
  ``lax.scan`` of the vmapped ``blackjax.ghmc`` step with the adapted parameters (its
  documented recipe; the chain count must be a multiple of 4).

Reported per target: the minimum bulk ESS over all coordinates (ArviZ), **gradients paid**
(a vmapped batch pays, at every draw, the chain count times the longest trajectory in the
batch: ``chains * sum_t max_i n_{t,i}``; for ChEES every chain takes the same number of
steps, so paid = used), and **gradients computed**: the same except for mcgen's NUTS, whose
loop from 64 chains on (on the CPU) gathers the trees still growing into smaller batches and computes
each iteration's batch size (``staged_gradients``; the best-kernel table gives both ratios), ESS per paid gradient, steady sampling seconds (compile and warmup
excluded), ESS/s, the largest |z| of the second moments against the known answer where there
is one (``z = (mean of x^2 - E[x^2]) / MCSE``), and the ratios mcgen ChEES / peer of ESS per
paid gradient and of ESS/s.  The table's last two columns are each mcgen sampler's ESS per
paid gradient over mcgen NUTS's and its ESS/s over BlackJAX's implementation of the same
algorithm (where BlackJAX has one in the run); an ESS/s ratio against a BlackJAX run that has
not converged is flagged with its R-hat and |z| (its ESS may count chains that have not left
their starts, not draws from the target), and the best-kernel table takes converged runs only.
A run counts as converged (``converged``) when, where the answer is known, every known |z| is
within the Bonferroni 1% threshold and R-hat is below 1.5, and elsewhere when R-hat is below 1.1:
with 60-draw chains R-hat exceeds 1.1 even at stationarity once the autocorrelation time
passes about 7 draws (``rhat_short_chains.py``), while ensembles stuck near their starts
score 3 or more.

**Time to accuracy** (the last table), as in the MCLMC / MAMS papers (Robnik et al. 2023, 2025):
the squared bias of the second moments ``b^2 = mean_i (Ehat[x_i^2] - E[x_i^2])^2 / Var[x_i^2]``
(and its max over coordinates ``i``), with ``Ehat`` after draw ``n`` the average over all chains
of the first ``n`` kept draws, and the gradients (paid, and computed for mcgen's NUTS) and
seconds the run spent until b^2 went below 0.01 for good: the warmup's gradients and seconds
(compile excluded) plus the first ``n`` draws' gradients and their share of the sampling
seconds (shared among draws in proportion to their gradients), or "not reached" when the run
ends above 0.01.  b^2 is about ``1 / ESS`` of each ``x_i^2`` (a ``chi^2_1 / ESS`` per
coordinate at stationarity), so 0.01 means about 100 effective draws of every second moment.
Differences from the papers: they follow one long chain (or the ensemble at each step) from
its start, with no warmup discarded; here the warmup is discarded and its cost added, and
``Ehat`` pools the chains and the draws so far, the estimate a user of the run would make.
The crossing is theirs (``find_crossing``: the draw after the last one at or above the
cutoff, not the first dip below it).  **With many chains the warmup dominates**: 1024 chains
of exact draws give b^2 about 0.001 after one draw, so a run that has converged crosses at its
first few draws, and the figure is mostly the price of the warmup (which is where vmapped NUTS
pays chains x the longest tree of its step-size search and windows, and the ensemble kernels
a shared trajectory); the max over coordinates (about ``2 log d`` times the average) needs
several times more draws.  Truth: exact for the 100-d Gaussian (``E = s^2``, ``Var = 2 s^4``)
and the non-centered funnel (``v ~ N(0, 3^2)``, the rest ``N(0, 1)``); for eight_schools_nc
(on ``tau, mu, theta_tilde``, as ``bench_gym.ToyTarget``) and logistic regression from the
stored reference runs, and for Gym targets from the Gym's ground truth (constrained space),
which hold means and variances only: there ``E[x^2] = mean^2 + sd^2`` and ``Var[x^2]`` is
the Gaussian ``2 sd^4 + 4 mean^2 sd^2`` (flagged "approx": it rescales b^2, e.g. for the
skewed ``tau``, but adds no floor; the truth's own error does, at b^2 about
``(its MCSE of E[x^2])^2 / Var[x^2]``).  Warmup gradients: mcgen's NUTS records them
(``Result.warmup_stats``); the ensemble kernels run under :func:`counting_warmup`, which
records each warmup step's ``num_grad_evals``; BlackJAX's ChEES keeps its warmup's
``num_integration_steps``; MEADS pays one per step; BlackJAX's MAMS pays mcgen's MAMS warmup.

Targets (from ``bench_nuts.py``): the 100-d Gaussian with scales log-spaced in [0.01, 1]
(ill-conditioned), Neal's funnel (non-centered, 10-d), eight schools (non-centered),
Bayesian logistic regression (n = 1000, d = 25); and Inference Gym targets built as in
``bench_gym.py`` (``gym_IllConditionedGaussian``, ``gym_EightSchools``, ``gym_Brownian``,
also ``gym_<any Gym name>``): the flat unconstrained log-density, starts uniform in [-2, 2]
as there, ESS of the draws mapped to the constrained space and the largest |z| of their
means against the Gym's ground truth (``z = (mean - truth) / MCSE``, the MCSE from the
truth's standard deviation and the ESS of the mean, as ``bench_gym.py`` scores), and the
largest |z| of their second moments against ``mean^2 + sd^2`` of the truth (MCSE from the
draws; the truth's own error is left out, so on Gym targets whose truth is itself a long MCMC
run the z of the second moments is slightly inflated).  Every run also reports the largest
R-hat over the coordinates: with uniform starts in [-2, 2] centred on a symmetric target's
mean, an ensemble that has not spread to the target's scales scores well on the z of the
means and gets an ESS near the chain count; the R-hat and the z of the second moments show it.

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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats as sps
from bench_nuts import CLOCK, initial_positions
from bench_nuts import TARGETS as TOY_TARGETS

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


def gym_second_moment_z(target, flat) -> float:
    """Largest |z| of the Gym target's second moments (constrained space) against the truth.

    ``E[x^2] = mean^2 + sd^2`` from the Gym's ground truth; the MCSE is the draws' standard
    deviation of ``x^2`` over the square root of its ESS (ArviZ ``method="mean"``).  Unlike the
    z of the means, it sees an ensemble that has not yet spread to the target's scales (starts
    uniform in [-2, 2] are centred on a symmetric target's mean).
    """
    import arviz as az

    x2 = np.asarray(target.gym.constrain_flat(jnp.asarray(flat)), np.float64) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = np.asarray(az.ess(az.convert_to_dataset({"x2": x2}), method="mean")["x2"])
    truth = target.gym.truth_mean**2 + target.gym.truth_sd**2
    mcse = x2.reshape(-1, x2.shape[-1]).std(axis=0) / np.sqrt(np.maximum(ess, 1.0))
    return float(np.max(np.abs(x2.mean(axis=(0, 1)) - truth) / mcse))


GYM_NAMES = {
    "gym_Brownian": "BrownianMotionUnknownScalesMissingMiddleObservations",
    "gym_StochasticVolatility": "StochasticVolatilitySP500Small",
    "gym_ItemResponse": "SyntheticItemResponseTheory",
}
DEFAULT_TARGETS = list(TOY_TARGETS) + ["gym_IllConditionedGaussian", "gym_EightSchools", "gym_Brownian"]
# one-gradient-per-draw samplers: they run --ghmc-factor times the warmup and the draws
GHMC = ("mcgen_meads", "blackjax_meads")
# The convergence rule of a run (``converged``), from ``rhat_short_chains.py``: where the answer
# is known, every known |z| (means, second moments) within the Bonferroni 1% threshold and
# R-hat below 1.5; where it is not, R-hat below 1.1.  With 60-draw chains R-hat is above 1.1
# even at stationarity once the autocorrelation time passes about 7 draws (1.26 at 15 draws,
# 1.53 at 30, for 1024 AR(1) chains started from their stationary law), while ensembles that
# have not left their starts score 3 or more.
UNCONVERGED_RHAT = 1.1
STATIONARY_RHAT_CAP = 1.5
# mcgen sampler -> BlackJAX's implementation of the same algorithm (ESS/s ratio)
PEERS = {"mcgen_chees": "blackjax_chees", "mcgen_meads": "blackjax_meads", "mcgen_mams": "blackjax_mams"}


class Target:
    """A benchmark target: its name, flat or pytree log-density, starts, and how it is scored."""

    def __init__(self, name: str):
        self.name = name
        self.gym = None
        if name.startswith("gym_"):
            from bench_gym import GymTarget

            self.gym = GymTarget(GYM_NAMES.get(name, name[4:]))
            self.logdensity = self.gym.logdensity
        else:
            self.logdensity, self.init0 = TOY_TARGETS[name]

    def inits(self, num_chains: int, seed: int):
        if self.gym is not None:  # uniform in [-2, 2] on the unconstrained space, as bench_gym.py
            return self.gym.inits(num_chains, seed)
        return initial_positions(self.init0, num_chains, seed)


def summarize(target: Target, samples, paid, sample_time, computed=None):
    if target.gym is not None:
        flat = _flat_draws(samples)
        score = target.gym.score(flat)
        ess, z, rhat = score["ess"], score["z"], score["rhat"]
        z2 = gym_second_moment_z(target, flat)
    else:
        diag = ess_rhat(samples)
        ess = min(float(np.min(d["ess_bulk"])) for d in diag.values())
        rhat = max(float(np.max(d["r_hat"])) for d in diag.values())
        z = float("nan")
        z2 = second_moment_z(target.name, samples)
    if target.gym is not None:
        threshold = target.gym.z_threshold()
    else:
        threshold = float(sps.norm.isf(0.01 / (2 * _flat_draws(samples).shape[-1])))
    return {
        "ess": ess,
        "paid": float(paid),
        "ess_per_grad": ess / float(paid),
        "computed": float(paid if computed is None else computed),
        "ess_per_computed": ess / float(paid if computed is None else computed),
        "sample": sample_time,
        "ess_s": ess / sample_time,
        "z": z,
        "z2": z2,
        "rhat": rhat,
        "threshold": threshold,
    }


def converged(r: dict) -> bool:
    """Whether a run counts as converged (the rule above ``STATIONARY_RHAT_CAP``).

    ``r`` holds ``rhat``, ``z`` (means) and ``z2`` (second moments), each NaN where the answer
    is unknown, and ``threshold`` (the Bonferroni 1% |z|).  Where an answer is known: every
    known |z| within the threshold and R-hat below 1.5; where none is: R-hat below 1.1.
    """
    known = [z for z in (r["z"], r["z2"]) if np.isfinite(z)]
    if not known:
        return bool(r["rhat"] < UNCONVERGED_RHAT)
    within = all(z < r["threshold"] for z in known)
    return bool(within and r["rhat"] < STATIONARY_RHAT_CAP)


def staged_gradients(steps, num_chains: int, logdensity, x0) -> int:
    """Gradients mcgen's vmapped NUTS computes for per-draw tree sizes ``steps`` (chains, draws).

    Its leaf loop runs in stages of shrinking batch size (``_trajectory._stage_sizes``): at
    iteration ``k`` of a draw, with ``g(k)`` trees still growing, it pays the size of the
    stage that ``g(k)`` falls in, not the whole batch.  One stage pays ``chains * max_i n_i``.
    """
    return int(staged_gradients_per_draw(steps, num_chains, logdensity, x0).sum())


def staged_gradients_per_draw(steps, num_chains: int, logdensity, x0) -> np.ndarray:
    """:func:`staged_gradients` draw by draw, ``(draws,)``."""
    from mcgen.kernels import _integrators, _trajectory

    size = _integrators.program_size(jax.make_jaxpr(jax.value_and_grad(logdensity))(x0).jaxpr)
    sizes = _trajectory._stage_sizes(num_chains, size)
    steps = np.asarray(steps)
    per_draw = []
    for n in steps.T:  # one draw: tree sizes of every chain
        k = np.arange(1, n.max() + 1)
        growing = (n[None, :] >= k[:, None]).sum(axis=1)
        stage = sum(((growing <= nxt).astype(int) for nxt in sizes[1:]), np.zeros_like(growing))
        per_draw.append(int(np.asarray(sizes)[stage].sum()))
    return np.asarray(per_draw, np.int64)


# ----------------------------------------------------------------------------- time to accuracy
# b^2 of the second moments (Robnik et al.): the squared bias of the running estimate of E[x_i^2]
# in units of Var[x_i^2], averaged (and maximized) over coordinates; "reached" from the first draw
# after which it stays below B2_CUTOFF for the rest of the run (b^2 ~ 1 / ESS: 0.01 is about 100
# effective draws of every second moment).
B2_CUTOFF = 0.01


def second_moment_truth(target):
    """``(E[x^2], Var[x^2], constrain, exact)`` of a benchmark target, ``None`` where unknown.

    ``constrain`` maps flat draws ``(..., d)`` to the space the truth is given in; ``exact`` is
    False where ``Var[x^2]`` is the Gaussian approximation ``2 sd^4 + 4 mean^2 sd^2`` from the
    truth's mean and sd (reference runs and Gym ground truth store no fourth moments).
    """
    if target.name == "gaussian_100":
        s2 = np.logspace(-2, 0, 100) ** 2
        return s2, 2.0 * s2**2, None, True
    if target.name == "funnel_10_nc":  # v ~ N(0, 3^2), z_i ~ N(0, 1), independent
        s2 = np.array([9.0] + [1.0] * 9)
        return s2, 2.0 * s2**2, None, True
    if target.gym is not None:
        mean, sd, constrain = target.gym.truth_mean, target.gym.truth_sd, target.gym.constrain_flat
    elif target.name in ("eight_schools_nc", "logistic_1000x25"):
        from bench_gym import ToyTarget  # the stored reference runs (means and variances only)

        toy = ToyTarget("toy:" + target.name)
        mean, sd, constrain = toy.truth_mean, toy.truth_sd, toy.constrain_flat
    else:
        return None
    return mean**2 + sd**2, gaussian_var_x2(mean, sd), constrain, False


def gaussian_var_x2(mean, sd):
    """``Var[x^2]`` for ``x ~ N(mean, sd^2)``: ``2 sd^4 + 4 mean^2 sd^2``."""
    return 2.0 * sd**4 + 4.0 * mean**2 * sd**2


def b2_trace(x2, ex2, var_x2):
    """b^2 of the second moments after each draw: ``(average, max)`` over coordinates, each ``(draws,)``.

    ``x2``: squared draws ``(chains, draws, d)``.  After draw ``n`` the estimate of ``E[x_i^2]``
    is the average of ``x2[:, :n, i]`` over all chains and the first ``n`` draws, and
    ``b_i^2 = (estimate - E[x_i^2])^2 / Var[x_i^2]``.
    """
    x2 = np.asarray(x2, np.float64)
    running = np.cumsum(x2.mean(axis=0), axis=0) / np.arange(1, x2.shape[1] + 1)[:, None]
    b2 = (running - ex2) ** 2 / var_x2
    return b2.mean(axis=-1), b2.max(axis=-1)


def crossing(trace, cutoff: float = B2_CUTOFF):
    """The number of draws from which ``trace`` stays below ``cutoff`` to the end; None if it ends above.

    As ``find_crossing`` of the MCLMC papers' code: the draw after the last one at or above the
    cutoff (a non-finite value counts as above), not the first dip below it.
    """
    above = np.flatnonzero(~(np.asarray(trace) < cutoff))
    if above.size == 0:
        return 1
    if above[-1] == len(trace) - 1:
        return None
    return int(above[-1]) + 2


def cost_to(n, warmup_grads, per_draw, warmup_seconds, sample_seconds):
    """``(gradients, seconds)`` spent up to draw ``n``: the warmup's plus the first ``n`` draws'.

    The sampling seconds are shared among the draws in proportion to their gradients (the
    sampling phase is timed as a whole; a NUTS draw costs its trees).
    """
    per_draw = np.asarray(per_draw, np.float64)
    done = per_draw[:n].sum()
    return float(warmup_grads + done), float(warmup_seconds + sample_seconds * done / per_draw.sum())


def accuracy(target, samples, cost: dict) -> dict:
    """b^2 at the end of the run, and the gradients and seconds to b^2 < 0.01 (average and max).

    ``cost``: ``warmup_paid``, ``warmup_computed`` (gradients), ``warmup_s`` (seconds),
    ``paid`` and ``computed`` (per draw, ``(draws,)``), ``sample_s``.  NaN where the target has
    no known second moments or where the run does not reach the cutoff.
    """
    nan = float("nan")
    out = {k: nan for k in ("b2", "b2max", "n_b2", "paid_b2", "computed_b2", "s_b2", "n_b2max", "paid_b2max")}
    out.update(s_b2max=nan, truth_exact=nan, warmup_paid=float(cost["warmup_paid"]), warmup_s=cost["warmup_s"])
    truth = second_moment_truth(target)
    if truth is None:
        return out
    ex2, var_x2, constrain, exact = truth
    flat = _flat_draws(samples)
    if constrain is not None:
        flat = np.asarray(constrain(jnp.asarray(flat)), np.float64)
    avg, mx = b2_trace(flat**2, ex2, var_x2)
    out.update(b2=float(avg[-1]), b2max=float(mx[-1]), truth_exact=float(exact))
    for tag, trace in (("b2", avg), ("b2max", mx)):
        n = crossing(trace)
        if n is None:
            continue
        paid, seconds = cost_to(n, cost["warmup_paid"], cost["paid"], cost["warmup_s"], cost["sample_s"])
        out[f"n_{tag}"], out[f"paid_{tag}"], out[f"s_{tag}"] = float(n), paid, seconds
        if tag == "b2":
            out["computed_b2"] = cost_to(n, cost["warmup_computed"], cost["computed"], 0.0, 1.0)[0]
    return out


class _GradTrace(NamedTuple):
    num_grad_evals: jax.Array  # (num_warmup,) per chain


class _CountedWarmup(NamedTuple):
    state: Any  # the kernel's own warmup state (which holds the kernel state in its ``state``)
    trace: _GradTrace
    count: jax.Array


def counting_warmup(kernel):
    """``kernel`` whose warmup records each step's ``num_grad_evals`` (``Result.warmup_stats``).

    The ensemble kernels keep no warmup record; the driver reads a warmup state's ``trace``
    field into ``Result.warmup_stats``, so this wrapper adds one (one scatter per step).
    Memoized, so that runs of the same kernel share their compiled programs.
    """
    if kernel in _COUNTED:
        return _COUNTED[kernel]

    def factory(num_steps: int):
        inner = kernel.warmup(num_steps)

        def w_init(state):
            return _CountedWarmup(
                inner.init(state), _GradTrace(jnp.zeros(num_steps, jnp.int32)), jnp.zeros((), jnp.int32)
            )

        def w_step(key, ws, logdensity_fn):
            new, info = inner.step(key, ws.state, logdensity_fn)
            grads = ws.trace.num_grad_evals.at[ws.count].set(jnp.asarray(info.num_grad_evals, jnp.int32))
            return _CountedWarmup(new, _GradTrace(grads), ws.count + 1), info

        return mc.Warmup(w_init, w_step, lambda ws: inner.finalize(ws.state))

    _COUNTED[kernel] = kernel._replace(warmup=factory)
    return _COUNTED[kernel]


_COUNTED: dict = {}


def run_mcgen(kernel):
    is_nuts = kernel == mc.nuts(mass="diag")  # records its warmup's gradients itself
    driven = kernel if is_nuts else counting_warmup(kernel)

    def run(target, init, num_chains, warmup, draws, seed):
        res = mc.run_chains(
            target.logdensity,
            driven,
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
        per_draw = num_chains * steps.max(axis=0)
        paid = per_draw.sum()
        warm = np.asarray(res.warmup_stats["num_grad_evals"])  # (chains, warmup)
        cost = dict(warmup_paid=num_chains * warm.max(axis=0).sum(), paid=per_draw, sample_s=res.sampling_time)
        cost.update(warmup_s=res.warmup_time, warmup_computed=cost["warmup_paid"], computed=per_draw)
        computed = None
        if is_nuts:  # the loop's stages compute fewer than the whole batch's (warmup: the same loop)
            x0 = jax.tree_util.tree_map(lambda a: a[0], init)
            cost["computed"] = staged_gradients_per_draw(steps, num_chains, target.logdensity, x0)
            computed = int(cost["computed"].sum())
            cost["warmup_computed"] = staged_gradients(warm, num_chains, target.logdensity, x0)
        r = summarize(target, res.samples, paid, res.sampling_time, computed)
        return {**r, **accuracy(target, res.samples, cost)}

    return run


_BJ: dict = {}


def _no_info():
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    return get_filter_adapt_info_fn()  # keep no per-step adaptation info (it would hold every state)


def _warmup_cost(num_chains, warmup_steps, seconds, per_draw, sample_s):
    """The ``cost`` of :func:`accuracy` for a run whose warmup and sampling each pay ``chains * max`` steps."""
    warmup_paid = num_chains * np.asarray(warmup_steps).max(axis=-1).sum()  # steps: (warmup, chains)
    return dict(
        warmup_paid=warmup_paid,
        warmup_computed=warmup_paid,
        warmup_s=seconds,
        paid=per_draw,
        computed=per_draw,
        sample_s=sample_s,
    )


def _timed_warmup(fn, *args, **kwargs):
    """``fn``'s result and its seconds less the compile seconds JAX reported meanwhile (BlackJAX warmups)."""
    c0, start = CLOCK.seconds, time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - start - (CLOCK.seconds - c0)


def _timed(compiled, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - start


def run_blackjax_chees(target, init, num_chains, warmup, draws, seed):
    import blackjax
    import optax

    logdensity = target.logdensity
    key_warm, key_sample = jax.random.split(jax.random.key(seed))
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    keep = get_filter_adapt_info_fn(info_keys={"num_integration_steps"})  # the warmup's gradients, no states
    adapt = blackjax.chees_adaptation(logdensity, num_chains, adaptation_info_fn=keep)
    ((states, params), info), warm_s = _timed_warmup(
        adapt.run, key_warm, init, step_size=0.1, optim=optax.adam(0.025), num_steps=warmup
    )
    warm_steps = np.asarray(info.info.num_integration_steps)  # (warmup, chains)
    if ("chees", logdensity, num_chains, draws) not in _BJ:

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

        _BJ[("chees", logdensity, num_chains, draws)] = jax.jit(sample)
    numeric = (params["step_size"], params["inverse_mass_matrix"], params["integration_steps_params"])
    compiled = _BJ[("chees", logdensity, num_chains, draws)].lower(key_sample, states, *numeric).compile()
    (positions, steps), sample_time = _timed(compiled, key_sample, states, *numeric)
    samples = jax.tree_util.tree_map(lambda x: np.swapaxes(np.asarray(x), 0, 1), positions)
    per_draw = num_chains * np.asarray(steps).max(axis=1)  # steps: (draws, chains)
    r = summarize(target, samples, per_draw.sum(), sample_time)
    return {**r, **accuracy(target, samples, _warmup_cost(num_chains, warm_steps, warm_s, per_draw, sample_time))}


def run_blackjax_meads(target, init, num_chains, warmup, draws, seed):
    import blackjax

    logdensity = target.logdensity
    key_warm, key_sample = jax.random.split(jax.random.key(seed))
    adapt = blackjax.meads_adaptation(logdensity, num_chains, adaptation_info_fn=_no_info())
    ((states, params), _), warm_s = _timed_warmup(adapt.run, key_warm, init, num_steps=warmup)
    if ("meads", logdensity, num_chains, draws) not in _BJ:

        def sample(key, states, step_size, momentum_inverse_scale, alpha, delta):
            step = blackjax.ghmc(logdensity, step_size, momentum_inverse_scale, alpha, delta).step

            def body(s, k):
                s, _ = jax.vmap(step)(jax.random.split(k, num_chains), s)
                return s, s.position

            return jax.lax.scan(body, states, jax.random.split(key, draws))[1]

        _BJ[("meads", logdensity, num_chains, draws)] = jax.jit(sample)
    numeric = (params["step_size"], params["momentum_inverse_scale"], params["alpha"], params["delta"])
    compiled = _BJ[("meads", logdensity, num_chains, draws)].lower(key_sample, states, *numeric).compile()
    positions, sample_time = _timed(compiled, key_sample, states, *numeric)
    samples = jax.tree_util.tree_map(lambda x: np.swapaxes(np.asarray(x), 0, 1), positions)
    per_draw = np.full(draws, num_chains)  # one gradient per draw and chain, warmup too
    r = summarize(target, samples, num_chains * draws, sample_time)
    return {
        **r,
        **accuracy(target, samples, _warmup_cost(num_chains, np.ones((warmup, 1)), warm_s, per_draw, sample_time)),
    }


def run_blackjax_mams(target, init, num_chains, warmup, draws, seed):
    """BlackJAX's ``adjusted_mclmc_dynamic`` kernel sampling with the parameters of mcgen's MAMS warmup.

    BlackJAX tunes adjusted MCLMC per chain (``adjusted_mclmc_find_L_and_step_size``, a
    multi-stage single-chain recipe); to compare the sampling of the same algorithm with the
    same tunables, this runs mcgen's ensemble warmup, then BlackJAX's kernel with its
    leapfrog-type ``isokinetic_leapfrog`` integrator (one gradient per step, as mcgen), no
    partial refresh, and its Halton trajectory length (``trajectory_length``, the same for
    every chain, mean ``L / step_size`` steps).
    """
    import blackjax
    from blackjax.mcmc import integrators
    from blackjax.mcmc.adjusted_mclmc_dynamic import trajectory_length

    logdensity = target.logdensity
    res = mc.run_chains(
        logdensity,
        counting_warmup(mc.mams()),
        init=init,
        init_batched=True,
        num_chains=num_chains,
        num_samples=1,
        num_warmup=warmup,
        seed=seed,
        progress=False,
        warn=False,
    )
    params = res.last_state.params
    step_size = params.step_size[0]
    inverse_mass = params.inverse_mass[0]
    avg_steps = params.trajectory_length[0] / step_size
    key_sample = jax.random.key(seed + 1)
    positions0 = res.last_state.position
    if ("mams", logdensity, num_chains, draws) not in _BJ:

        def sample(key, positions, step_size, inverse_mass, avg_steps):
            algo = blackjax.adjusted_mclmc_dynamic(
                logdensity,
                step_size,
                inverse_mass_matrix=inverse_mass,
                integrator=integrators.isokinetic_velocity_verlet,
                next_random_arg_fn=lambda t: t + 1,
                integration_steps_fn=trajectory_length,
                integration_steps_params=(avg_steps,),
            )
            states = jax.vmap(lambda x: blackjax.mcmc.adjusted_mclmc_dynamic.init(x, logdensity, 0))(positions)

            def body(s, k):
                s, info = jax.vmap(algo.step)(jax.random.split(k, num_chains), s)
                return s, (s.position, info.num_integration_steps)

            return jax.lax.scan(body, states, jax.random.split(key, draws))[1]

        _BJ[("mams", logdensity, num_chains, draws)] = jax.jit(sample)
    numeric = (step_size, inverse_mass, avg_steps)
    compiled = _BJ[("mams", logdensity, num_chains, draws)].lower(key_sample, positions0, *numeric).compile()
    (positions, steps), sample_time = _timed(compiled, key_sample, positions0, *numeric)
    samples = jax.tree_util.tree_map(lambda x: np.swapaxes(np.asarray(x), 0, 1), positions)
    per_draw = num_chains * np.asarray(steps).max(axis=1)
    r = summarize(target, samples, per_draw.sum(), sample_time)
    warm_steps = np.asarray(res.warmup_stats["num_grad_evals"]).T  # mcgen's MAMS warmup: (warmup, chains)
    return {
        **r,
        **accuracy(target, samples, _warmup_cost(num_chains, warm_steps, res.warmup_time, per_draw, sample_time)),
    }


SAMPLERS = {
    "mcgen_chees": run_mcgen(mc.chees_hmc()),
    "mcgen_meads": run_mcgen(mc.meads()),
    "mcgen_mams": run_mcgen(mc.mams()),
    "mcgen_nuts": run_mcgen(mc.nuts(mass="diag")),
    "blackjax_chees": run_blackjax_chees,
    "blackjax_meads": run_blackjax_meads,
    "blackjax_mams": run_blackjax_mams,
}


def bench(targets, chain_counts, warmup, draws, seed, samplers, ghmc_factor):
    rows = {}
    for num_chains in chain_counts:
        for name in targets:
            target = Target(name)
            init = target.inits(num_chains, seed)
            for sampler in samplers:
                factor = ghmc_factor if sampler in GHMC else 1
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    c0 = CLOCK.seconds
                    r = SAMPLERS[sampler](target, init, num_chains, warmup * factor, draws * factor, seed)
                r["compile"] = CLOCK.seconds - c0
                rows[(num_chains, name, sampler)] = r
                print(
                    f"  {num_chains:5d} {name:26s} {sampler:15s} " + "  ".join(f"{k}={v:.4g}" for k, v in r.items()),
                    flush=True,
                )
    return rows


def _ratios(rows, num_chains, name, sampler, samplers):
    """(ESS per paid gradient over mcgen NUTS's, ESS/s over BlackJAX's same algorithm), '' where absent."""
    r = rows[(num_chains, name, sampler)]
    g = s = ""
    if sampler.startswith("mcgen_") and sampler != "mcgen_nuts" and "mcgen_nuts" in samplers:
        g = f"{r['ess_per_grad'] / rows[(num_chains, name, 'mcgen_nuts')]['ess_per_grad']:.2f}"
    if PEERS.get(sampler) in samplers:
        peer = rows[(num_chains, name, PEERS[sampler])]
        s = f"{r['ess_s'] / peer['ess_s']:.2f}"
        if not converged(peer):  # e.g. an ensemble still near its starts: its ESS means nothing
            s += f" (peer not converged: R-hat {peer['rhat']:.2f}, z {peer['z']:.1f} / {peer['z2']:.1f})"
    return g, s


def table(rows, targets, chain_counts, samplers):
    lines = [
        "| chains | target | sampler | min ESS | grads paid | ESS/paid grad | sampling s | ESS/s "
        "| max abs z (means) | max abs z (2nd moments) | max R-hat | converged | ESS per paid grad / mcgen NUTS "
        "| ESS/s / BlackJAX same |",
        "|---" * 14 + "|",
    ]
    for num_chains in chain_counts:
        for name in targets:
            for sampler in samplers:
                r = rows[(num_chains, name, sampler)]
                g, s = _ratios(rows, num_chains, name, sampler, samplers)
                lines.append(
                    f"| {num_chains} | {name} | {sampler} | {r['ess']:.0f} | {r['paid']:.3g} "
                    f"| {r['ess_per_grad']:.2e} | {r['sample']:.2f} | {r['ess_s']:.0f} | {r['z']:.1f} | {r['z2']:.1f} "
                    f"| {r['rhat']:.3f} | {'yes' if converged(r) else 'no'} "
                    f"| {g} | {s} |"
                )
    return "\n".join(lines)


def best_table(rows, targets, chain_counts, samplers):
    """Per target: the mcgen ensemble kernel with the most ESS per paid gradient, over NUTS's."""
    if "mcgen_nuts" not in samplers:
        return ""
    new = [s for s in samplers if s.startswith("mcgen_") and s != "mcgen_nuts"]
    lines = [
        "| chains | target | best converged new kernel | ESS per paid grad / mcgen NUTS "
        "| ESS per computed grad / mcgen NUTS's |",
        "|---" * 5 + "|",
    ]
    for num_chains in chain_counts:
        for name in targets:
            nuts_rate = rows[(num_chains, name, "mcgen_nuts")]["ess_per_grad"]
            nuts_computed = rows[(num_chains, name, "mcgen_nuts")]["ess_per_computed"]
            ok = [s for s in new if converged(rows[(num_chains, name, s)])]
            best = max(ok, key=lambda s: rows[(num_chains, name, s)]["ess_per_grad"], default=None)
            if best is not None:
                ratio = rows[(num_chains, name, best)]["ess_per_grad"] / nuts_rate
                computed = rows[(num_chains, name, best)]["ess_per_computed"] / nuts_computed
                lines.append(f"| {num_chains} | {name} | {best} | {ratio:.2f} | {computed:.2f} |")
    return "\n".join(lines)


def _fmt(x, spec):
    return "-" if not np.isfinite(x) else format(x, spec)


def accuracy_table(rows, targets, chain_counts, samplers):
    """Time to accuracy: b^2 of the second moments at the end, and what it took to go below 0.01."""
    lines = [
        "| chains | target | sampler | truth | b2 avg (end) | b2 max (end) | warmup grads paid | warmup s "
        "| b2 avg < 0.01: draws | grads paid | grads computed | s | b2 max < 0.01: draws | grads paid | s |",
        "|---" * 15 + "|",
    ]
    for num_chains in chain_counts:
        for name in targets:
            for sampler in samplers:
                r = rows[(num_chains, name, sampler)]
                truth = {1.0: "exact", 0.0: "approx"}.get(r["truth_exact"], "none")
                cells = [
                    truth,
                    _fmt(r["b2"], ".2g"),
                    _fmt(r["b2max"], ".2g"),
                    _fmt(r["warmup_paid"], ".3g"),
                    _fmt(r["warmup_s"], ".2f"),
                ]
                if truth == "none":
                    cells += ["-"] * 7
                else:
                    reached = np.isfinite(r["n_b2"])
                    cells += [_fmt(r["n_b2"], ".0f") if reached else "not reached"]
                    cells += [_fmt(r[k], f) for k, f in (("paid_b2", ".3g"), ("computed_b2", ".3g"), ("s_b2", ".2f"))]
                    reached = np.isfinite(r["n_b2max"])
                    cells += [_fmt(r["n_b2max"], ".0f") if reached else "not reached"]
                    cells += [_fmt(r[k], f) for k, f in (("paid_b2max", ".3g"), ("s_b2max", ".2f"))]
                lines.append(f"| {num_chains} | {name} | {sampler} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--ghmc-factor", type=int, default=10, help="warmup and draws multiplier of the MEADS runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", nargs="+", default=DEFAULT_TARGETS)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--quick", action="store_true", help="128 chains, 200 + 100")
    args = parser.parse_args(argv)
    if args.quick:
        args.chains, args.warmup, args.draws = [128], 200, 100
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; warmup {args.warmup}, draws {args.draws}, "
        f"MEADS x{args.ghmc_factor}"
    )
    rows = bench(args.targets, args.chains, args.warmup, args.draws, args.seed, args.samplers, args.ghmc_factor)
    print(table(rows, args.targets, args.chains, args.samplers))
    print()
    print(best_table(rows, args.targets, args.chains, args.samplers))
    print()
    print(accuracy_table(rows, args.targets, args.chains, args.samplers))


if __name__ == "__main__":
    jnp.zeros(())  # start JAX before the clock listens
    main()
