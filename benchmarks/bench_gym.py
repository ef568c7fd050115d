"""NUTS on the Inference Gym: mcgen against BlackJAX and NumPyro, scored against ground truth.

The Inference Gym (``pip install inference-gym tfp-nightly``; the ``bench`` extra) is Google's
public set of posteriors with ground-truth moments.  Each target is turned into a flat
log-density on the unconstrained space: the model's ``default_event_space_bijector`` maps a
flat vector to the model's (structured) event, and the log-Jacobian of that map is added.
All three libraries get this same JAX function, the same per-chain starting points (uniform
in [-2, 2] on the unconstrained space, as Stan does), NUTS with a diagonal metric, Stan's
windowed warmup, target acceptance 0.8 and maximum tree depth 10.

Reported per target and library (median over ``--reps`` repetitions with different seeds,
libraries interleaved, their order rotated from one repetition to the next; compile and first-call
times from the first repetition, after the bare gradient has paid the one-time tracing costs):

* ``us/grad``: sampling seconds per *lockstep* leapfrog step, i.e. divided by the sum over
  draws of the longest trajectory among the vmapped chains (every chain of a vmapped NUTS
  waits for the longest); ``bare``: one vmapped value-and-gradient of the log-density for
  all chains, alone, with its outputs stored (no sampler can be cheaper per step);
* ``ESS/grad``: smallest bulk ESS over the coordinates of the draws mapped back to the
  constrained space, per gradient evaluation of sampling (summed over chains);
* ``ESS/s``: that ESS per second of sampling (warmup and compilation excluded);
* ``warmup grads``: gradient evaluations of the warmup, summed over chains (mcgen:
  ``Result.warmup_grad_evals()``, step-size searches included; BlackJAX: the adaptation
  info's integration steps; NumPyro: the warmup's ``num_steps``); ``ESS/grad all`` and
  ``ESS/s all`` count warmup and sampling together (gradients, or compiled seconds);
* ``first call``: seconds of the first whole run (trace, compile, warmup, sampling);
  ``compile``: the tracing, lowering and XLA-compilation part of it (JAX's monitoring
  events);
* ``div``: divergent transitions in sampling; ``R-hat``: largest over coordinates;
* ``max |z|``: the largest over coordinates of (mean of the draws - ground-truth mean) over
  the Monte-Carlo standard error of that difference (``sd_truth / sqrt(ESS_mean)`` combined
  with the ground truth's own standard error where the Gym gives one), against the
  Bonferroni threshold for a family-wise 1% level over the target's coordinates.

Besides ``mcgen`` (``nuts(mass="diag")``: Stan's windowed diagonal metric, as the peers) the libraries
include mcgen's other warmups: ``mcgen_grad`` (``mass="grad_diag"``, the Fisher-divergence
diagonal), ``mcgen_early`` (the same with ``warmup_schedule="early"``) and
``mcgen_diag_early`` (Stan's estimator on the early schedule), ``mcgen_lowrank``
(``mass="low_rank"``: the Fisher diagonal corrected along up to 16 eigen-directions fitted to
the draws and gradients, nutpie's estimator) and ``mcgen_lowrank_early`` (the same on the
early schedule; ``nuts()``'s default), and ``mcgen_stan`` (Stan's plain momentum sum in the U-turn test instead of
the default trapezoid sum); a last table gives, per
target, each one's ESS per gradient (warmup included) over ``mcgen``'s and every mcgen
variant's ESS/s (warmup included) over BlackJAX's, with their medians.

Usage::

    python benchmarks/bench_gym.py                       # 6 targets, 4 chains, 1000 + 1000, 3 reps
    python benchmarks/bench_gym.py --targets EightSchools --reps 1 --libraries mcgen blackjax
    python benchmarks/bench_gym.py --quick               # 300 + 300, one repetition
    python benchmarks/bench_gym.py --targets toy --json out.json   # bench_nuts.py's toy targets
    python benchmarks/bench_gym.py --targets ConvectionLorenzBridge --libraries mcgen blackjax \
        --warmup 2000 --draws 2000 --per-chain 4 --save-draws /tmp/lorenz   # per-chain diagnostics

``--per-chain K`` prints, after each run, every chain's step size, divergences, gradients per
draw and mean log-density, and its means of the K coordinates of largest R-hat beside the truth
(a chain stuck in another mode, or one whose step size ran away in warmup, shows there);
``--save-draws PREFIX`` keeps each run's draws. ``mcgen_dense`` and ``blackjax_dense`` (Stan's
windowed dense covariance in each library) run only when named in ``--libraries``; BlackJAX's
dense is compared with mcgen's dense.  So do ``blackjax_lowrank`` (BlackJAX's
``window_adaptation_low_rank``: nutpie's low-rank Fisher metric on Stan's windows, BlackJAX's
defaults) and ``blackjax_nutpie`` (the same estimator on nutpie's schedule as BlackJAX ports it:
growing windows, a partial-forget buffer refitted at every step); the last table then gives
each mcgen variant's ESS/s (warmup included) over theirs as well.

``--libraries`` also takes ``nuts:NAME=VALUE,...``: mcgen's ``nuts()`` with those settings (e.g.
``nuts:mass=grad_diag,warmup_schedule=early`` or ``nuts:mass_min_draws=40``).  The Gym's
real-data targets (``GermanCreditNumeric{Logistic,Probit,SparseLogistic}Regression``,
``RadonContextualEffects[HalfNormal]{Indiana,Minnesota}``) run offline: ``gym_data.py`` serves
their data from ``benchmarks/data`` where ``tensorflow_datasets`` is missing.

The toy targets of ``bench_nuts.py`` (``toy:gaussian_100``, ``toy:eight_schools_nc``,
``toy:logistic_1000x25``, ``toy:funnel_10_nc``; ``--targets toy`` for all four) are scored the
same way, against exact moments or the stored reference runs (:class:`ToyTarget`).
``--json`` writes every repetition's figures, for tables across runs
(``benchmarks/warmup_table.py``).

``--devices N`` splits the chains over N simulated CPU devices (``XLA_FLAGS`` is set before JAX
starts): mcgen with ``run_chains(..., devices=jax.devices()[:N])``, BlackJAX with its warmup
and sampling programs in ``jax.shard_map`` over the same one-axis mesh (each device runs its
own chains, as with ``pmap``: the way to run BlackJAX chains on several devices without a
collective inside NUTS's loop).  NumPyro runs on one device.
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import statistics
import sys
import time
import warnings

if __name__ == "__main__" and "--devices" in sys.argv:  # before JAX starts: the device count is fixed then
    _n = sys.argv[sys.argv.index("--devices") + 1]
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_n}"

import bench_nuts as B  # noqa: E402
import gym_data  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from scipy import stats as sps  # noqa: E402

import mcgen as mc  # noqa: E402
from mcgen.kernels.nuts import nuts  # noqa: E402

# --devices: the devices the chains are split over (None: one device)
DEVICES: list | None = None

TARGETS = [
    "IllConditionedGaussian",
    "NealsFunnel",
    "EightSchools",
    "BrownianMotionUnknownScalesMissingMiddleObservations",
    "StochasticVolatilitySP500Small",
    "SyntheticItemResponseTheory",
]
# the toy targets of bench_nuts.py, scored against exact or reference moments (ToyTarget)
TOY_TARGETS = ["toy:gaussian_100", "toy:eight_schools_nc", "toy:logistic_1000x25", "toy:funnel_10_nc"]


def _brownian_quadrature():
    import brownian_truth

    return brownian_truth.posterior_moments()


# Targets whose stored ground truth is wrong, with the independent truth used instead.  The
# Brownian-motion model's scales and locations integrate in closed form up to a 2-d quadrature
# (benchmarks/brownian_truth.py): the Gym's Stan-based means are off by up to 18 of their own
# standard errors (observation_noise_scale 0.1011 against 0.1127), and all three samplers
# agree with the quadrature.
REPLACED_TRUTH = {"BrownianMotionUnknownScalesMissingMiddleObservations": _brownian_quadrature}


def _sv_particle_filter():
    import sv_truth

    return sv_truth.corrections()


# Targets where coordinates of the stored truth are wrong: {coordinate: (mean, standard error,
# standard deviation)} from an independent computation, the rest of the Gym's truth kept.
# Stochastic volatility (benchmarks/sv_truth.py): the Gym's Stan run, on a non-centered form of
# the model, misses the persistence's upper tail, where mean_log_volatility has a heavy left
# tail; a particle filter integrated over the scalars gives 7.870 +- 0.003 against the stored
# 7.915 +- 0.0045, as every 128-chain NUTS run of the centered form does, and moves some of the
# log-volatilities' means as well (sv_truth.corrections()).
CORRECTED_TRUTH = {"StochasticVolatilitySP500Small": _sv_particle_filter}


def _coordinate_names(tree) -> list[str]:
    """Names of the flat coordinates of a pytree of arrays, in ``ravel_pytree``'s order."""
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        base = jax.tree_util.keystr(path) or "x"
        shape = np.shape(leaf)
        names += [base] if shape == () else [f"{base}{list(i)}" for i in np.ndindex(shape)]
    return names


class GymTarget:
    """A Gym model as a flat unconstrained log-density, its map back, and its ground truth."""

    def __init__(self, name: str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from inference_gym import using_jax as gym
            from tensorflow_probability.substrates import jax as tfp
        gym_data.install()  # German credit and radon data from benchmarks/data where tensorflow_datasets is missing
        nest = tfp.tf2jax.nest
        model = getattr(gym.targets, name)()
        bijector, dtype = model.default_event_space_bijector, model.dtype
        shapes = nest.map_structure_up_to(
            dtype, lambda b, s: tuple(b.inverse_event_shape(s)), bijector, model.event_shape
        )
        zeros = nest.map_structure_up_to(dtype, lambda s, d: jnp.zeros(s, d), shapes, dtype)
        flat, unravel = ravel_pytree(zeros)

        def constrain(z):
            return nest.map_structure_up_to(dtype, lambda b, x: b.forward(x), bijector, unravel(z))

        def logdensity(z):
            x = unravel(z)
            log_jacobian = nest.map_structure_up_to(
                dtype, lambda b, xi, s: jnp.sum(b.forward_log_det_jacobian(xi, event_ndims=len(s))), bijector, x, shapes
            )
            return model.unnormalized_log_prob(constrain(z)) + sum(jax.tree_util.tree_leaves(log_jacobian))

        identity = model.sample_transformations["identity"]
        self.name, self.dim = name, flat.shape[0]
        self.logdensity = logdensity
        # the transformation maps the model's event to the structure of the ground truth (e.g.
        # a dict with its own key order), so draws and truth flatten in the same order
        self.constrain_flat = jax.jit(jax.vmap(jax.vmap(lambda z: ravel_pytree(identity(constrain(z)))[0])))
        self.truth_mean = np.asarray(
            ravel_pytree(jax.tree_util.tree_map(jnp.asarray, identity.ground_truth_mean))[0], np.float64
        )
        self.truth_sd = np.asarray(
            ravel_pytree(jax.tree_util.tree_map(jnp.asarray, identity.ground_truth_standard_deviation))[0], np.float64
        )
        se = getattr(identity, "ground_truth_mean_standard_error", None)
        self.truth_se = (
            np.zeros_like(self.truth_mean)
            if se is None
            else np.asarray(ravel_pytree(jax.tree_util.tree_map(jnp.asarray, se))[0], np.float64)
        )
        self.truth_source = "Gym"
        self.coord_names = _coordinate_names(identity.ground_truth_mean)
        if name in REPLACED_TRUTH:
            mean, sd = REPLACED_TRUTH[name]()
            flat_mean = np.asarray(ravel_pytree(jax.tree_util.tree_map(jnp.asarray, mean))[0], np.float64)
            self.truth_mean, self.truth_sd = (
                flat_mean,
                np.asarray(ravel_pytree(jax.tree_util.tree_map(jnp.asarray, sd))[0], np.float64),
            )
            self.truth_se = np.zeros_like(flat_mean)  # quadrature: its error is far below any MCSE
            self.truth_source = "quadrature"
        if name in CORRECTED_TRUTH:
            for coord, (mean, se, sd) in CORRECTED_TRUTH[name]().items():
                j = self.coord_names.index(coord)
                self.truth_mean[j], self.truth_se[j], self.truth_sd[j] = mean, se, sd
            self.truth_source = "Gym, corrected"

    def inits(self, num_chains: int, rep: int):
        key = jax.random.key(7919 + rep)
        return jax.random.uniform(key, (num_chains, self.dim), jnp.float32, -2.0, 2.0)

    def score(self, draws) -> dict:
        """ESS, R-hat and ground-truth z of unconstrained draws (chains, draws, dim)."""
        return self.score_constrained(np.asarray(self.constrain_flat(jnp.asarray(draws)), np.float64))

    def score_constrained(self, x) -> dict:
        """:meth:`score` of draws already mapped to the constrained space (float64)."""
        c = self.coordinate_scores(x)
        return {
            "ess": float(np.min(c["ess_bulk"])),
            "rhat": float(np.max(c["rhat"])),
            "z": float(np.max(np.abs(c["z"]))),
        }

    def coordinate_scores(self, x) -> dict:
        """Per coordinate of constrained draws (chains, draws, dim): ``ess_bulk``, ``ess_mean``,
        ``rhat``, ``mean``, ``sd`` (the truth's, or the draws' where it gives none) and ``z``,
        the mean's distance from the truth in Monte-Carlo standard errors (the truth's own
        standard error included)."""
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = az.convert_to_dataset({"x": x})
            ess_bulk = np.asarray(az.ess(ds, method="bulk")["x"])
            ess_mean = np.asarray(az.ess(ds, method="mean")["x"])
            rhat = np.asarray(az.rhat(ds)["x"])
        # some Gym models publish a mean but no standard deviation (the non-identifiable quartic
        # model): the draws' own standard deviation then stands in for it in the MCSE
        sd = self.truth_sd if self.has_truth_sd else x.std(axis=(0, 1))
        mcse = np.sqrt(sd**2 / np.maximum(ess_mean, 1.0) + self.truth_se**2)
        mean = x.mean(axis=(0, 1))
        z = (mean - self.truth_mean) / mcse
        return {"ess_bulk": ess_bulk, "ess_mean": ess_mean, "rhat": rhat, "mean": mean, "sd": sd, "z": z}

    @property
    def has_truth_sd(self) -> bool:
        """Whether the ground truth gives a standard deviation per coordinate (some Gym models give none)."""
        return self.truth_sd.shape == self.truth_mean.shape

    def z_threshold(self) -> float:
        return float(sps.norm.isf(0.01 / (2 * self.truth_mean.size)))

    def per_chain(self, draws, chain: dict, coords: int) -> str:
        """Per-chain diagnostics of one run: each chain's adapted step size, divergences,
        gradients per draw and mean log-density, then, for the ``coords`` coordinates with the
        largest R-hat, each chain's mean beside the ground truth (mean +- sd). Chains stuck in
        different modes show as split means with a split log-density; a step-size runaway as
        one chain's step size or gradients per draw far from the others'."""
        import arviz as az

        draws = jnp.asarray(draws)
        logp = np.asarray(jax.jit(jax.vmap(jax.vmap(self.logdensity)))(draws), np.float64)
        x = np.asarray(self.constrain_flat(draws), np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rhat = np.asarray(az.rhat(az.convert_to_dataset({"x": x}))["x"])
        lines = [
            "    chain  step size  div  grads/draw  mean logp (sd)",
            *(
                f"    {c:5d}  {chain['eps'][c]:9.4g}  {chain['div'][c]:3.0f}  {chain['grads'][c]:10.1f}  "
                f"{logp[c].mean():9.2f} ({logp[c].std():.2f})"
                for c in range(x.shape[0])
            ),
        ]
        for i in np.argsort(-np.nan_to_num(rhat, nan=np.inf))[:coords]:
            means = " ".join(f"{m:8.3g}" for m in x[:, :, i].mean(axis=1))
            lines.append(
                f"    {self.coord_names[i][:28]:28s} R-hat {rhat[i]:5.2f}  chain means {means}  "
                f"truth {self.truth_mean[i]:.3g}" + (f" +- {self.truth_sd[i]:.3g}" if self.has_truth_sd else "")
            )
        return "\n".join(lines)


class ToyTarget(GymTarget):
    """A toy target of ``bench_nuts.py`` (name ``toy:<name>``) with a known or reference truth.

    The Gaussian and the (non-centered) funnel have exact moments; eight schools and the
    logistic regression are scored against the long BlackJAX reference runs stored in
    ``tests/data/`` (``make_eight_schools_reference.py``; eight schools on ``mu, tau,
    theta_tilde``), whose MCSE enters the z-score as the Gym's standard error does.
    """

    def __init__(self, name: str):
        import pathlib

        toy = name.split(":", 1)[1]
        fn, init = B.TARGETS[toy]
        flat, unravel = ravel_pytree(init)
        self.name, self.dim, self.truth_source = name, flat.shape[0], "exact"
        self.coord_names = [f"x[{i}]" for i in range(self.dim)]
        self.logdensity = lambda z: fn(unravel(z))
        data = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"
        if toy == "gaussian_100":
            self.constrain_flat = jax.jit(lambda z: z)
            self.truth_mean, self.truth_sd = np.zeros(100), np.asarray(B._SCALES, np.float64)
            self.truth_se = np.zeros(100)
        elif toy == "funnel_10_nc":
            self.constrain_flat = jax.jit(lambda z: z)
            self.truth_mean, self.truth_sd = np.zeros(10), np.r_[3.0, np.ones(9)]
            self.truth_se = np.zeros(10)
        elif toy == "eight_schools_nc":
            ref = np.load(data / "eight_schools_reference.npz")
            # flat order of the pytree init: log_tau, mu, theta_tilde (sorted keys)
            self.constrain_flat = jax.jit(lambda z: jnp.concatenate([jnp.exp(z[..., :1]), z[..., 1:]], -1))
            keys = ("tau", "mu", "theta_tilde")
            self.truth_mean = np.concatenate([np.atleast_1d(ref[f"{k}_mean"]) for k in keys]).astype(np.float64)
            self.truth_sd = np.sqrt(np.concatenate([np.atleast_1d(ref[f"{k}_var"]) for k in keys])).astype(np.float64)
            self.truth_se = np.concatenate([np.atleast_1d(ref[f"{k}_mean_mcse"]) for k in keys]).astype(np.float64)
            self.truth_source = "reference run"
        elif toy == "logistic_1000x25":
            ref = np.load(data / "logistic_regression_reference.npz")
            self.constrain_flat = jax.jit(lambda z: z)
            self.truth_mean = ref["beta_mean"].astype(np.float64)
            self.truth_sd = np.sqrt(ref["beta_var"]).astype(np.float64)
            self.truth_se = ref["beta_mean_mcse"].astype(np.float64)
            self.truth_source = "reference run"
        else:
            raise ValueError(f"no truth for toy target {toy!r}")


def make_target(name: str):
    return ToyTarget(name) if name.startswith("toy:") else GymTarget(name)


# ----------------------------------------------------------------------------- libraries


def _lockstep(leaves) -> int:
    """Loop iterations of a vmapped NUTS: per draw, the longest trajectory among the chains."""
    leaves = np.asarray(leaves)  # (chains, draws)
    return int(leaves.max(axis=0).sum())


def _per_chain(step_size, divergent, leaves) -> dict:
    """Per-chain figures of a run (``--per-chain``): step size, divergences, gradients per draw."""
    return dict(
        eps=np.broadcast_to(np.asarray(step_size, np.float64), np.shape(leaves)[:1]),
        div=np.sum(np.asarray(divergent), axis=1),
        grads=np.mean(np.asarray(leaves), axis=1),
    )


def run_mcgen(target, init, num_chains, warmup, draws, seed, kernel=None):
    c0, t0 = B.CLOCK.seconds, time.perf_counter()
    res = mc.run_chains(
        target.logdensity,
        kernel if kernel is not None else nuts(mass="diag"),
        init=init,
        init_batched=True,
        num_chains=num_chains,
        num_samples=draws,
        num_warmup=warmup,
        seed=seed,
        progress=False,
        warn=False,
        devices=DEVICES,
    )
    first = time.perf_counter() - t0
    leaves = res.stats["num_grad_evals"]
    return dict(
        draws=res.samples,
        sample=res.sampling_time,
        grads=float(np.sum(leaves)),
        lockstep=_lockstep(leaves),
        wgrads=float(np.sum(res.warmup_grad_evals())),
        warm=res.warmup_time,
        div=int(np.sum(res.stats["is_divergent"])),
        compile=B.CLOCK.seconds - c0,
        first=first,
        eps=float(np.median(np.asarray(res.last_state.params.step_size))),  # adapted step size, median of chains
        chain=_per_chain(res.last_state.params.step_size, res.stats["is_divergent"], leaves),
    )


_BJ: dict = {}


def blackjax_programs(
    target, warmup: int, draws: int, dense: bool = False, sequential: bool = False, low_rank: str | None = None
):
    """BlackJAX's ``window_adaptation`` NUTS for ``target``, jitted and cached: ``warm(keys,
    positions) -> (states, params, step-size trace (chains, warmup), warmup gradients)`` and
    ``sample(keys, states, params) -> (positions, leapfrog steps, divergent, acceptance rate,
    energy)``,
    each ``(chains, draws, ...)``; the warmup gradients are per chain.  With ``DEVICES`` both
    run in ``jax.shard_map``, each device on its own chains.  The chains are vmapped, or with
    ``sequential`` run one after another (``lax.map``): on a CPU that spares each chain the
    trajectories of the others (a vmapped batch runs every transition for as long as its
    longest tree).  With ``low_rank`` the warmup is BlackJAX's ``window_adaptation_low_rank``
    instead (the low-rank Fisher-divergence metric of Seyboldt, Carlson & Carpenter, nutpie's
    algorithm): ``"stan"`` on Stan's windows with its defaults (rank 10, cut-off 2, the buffer
    reset at each window), ``"nutpie"`` with nutpie's schedule as BlackJAX ports it (growing
    windows, the partial-forget buffer refitted every step, the first diagonal from the first
    gradient).  That warmup restarts each chain at the fitted translation ``mu*``."""
    import blackjax

    def over_chains(fn):
        return jax.vmap(fn) if not sequential else (lambda *args: jax.lax.map(lambda a: fn(*a), args))

    key = (target.name, warmup, draws, dense, sequential, low_rank, None if DEVICES is None else len(DEVICES))
    if key not in _BJ:
        if low_rank is None:
            adapt = blackjax.window_adaptation(blackjax.nuts, target.logdensity, is_mass_matrix_diagonal=not dense)
        else:
            if not hasattr(blackjax, "window_adaptation_low_rank"):
                raise RuntimeError(f"blackjax {blackjax.__version__} has no window_adaptation_low_rank (1.7 has)")
            from blackjax.adaptation import low_rank_adaptation

            if low_rank not in ("stan", "nutpie"):
                raise ValueError(f"low_rank must be 'stan' or 'nutpie', got {low_rank!r}")
            settings = {}
            if low_rank == "nutpie":
                # the schedule made outside the jit: BlackJAX sizes the buffer from it with numpy
                schedule = np.asarray(low_rank_adaptation.build_growing_window_schedule(warmup))
                settings = dict(schedule_fn=lambda _: schedule, buffer_policy="accumulating", gradient_based_init=True)
            adapt = blackjax.window_adaptation_low_rank(blackjax.nuts, target.logdensity, **settings)

        def warm(keys, positions):
            (state, params), info = over_chains(lambda k, x: adapt.run(k, x, num_steps=warmup))(keys, positions)
            return state, params, info.adaptation_state.step_size, jnp.sum(info.info.num_integration_steps, axis=1)

        def sample(keys, states, params):
            def one_chain(k, state, p):
                step = blackjax.nuts(target.logdensity, **p).step

                def body(s, kk):
                    s, info = step(kk, s)
                    return s, (
                        s.position,
                        info.num_integration_steps,
                        info.is_divergent,
                        info.acceptance_rate,
                        info.energy,
                    )

                return jax.lax.scan(body, state, jax.random.split(k, draws))[1]

            return over_chains(one_chain)(keys, states, params)

        if DEVICES is not None:
            from jax.sharding import Mesh
            from jax.sharding import PartitionSpec as P

            mesh = Mesh(np.array(DEVICES), ("chains",))
            split = functools.partial(jax.shard_map, mesh=mesh, out_specs=P("chains"), check_vma=False)
            warm, sample = split(warm, in_specs=P("chains")), split(sample, in_specs=P("chains"))
        _BJ[key] = (jax.jit(warm), jax.jit(sample))
    return _BJ[key]


def run_blackjax(target, init, num_chains, warmup, draws, seed, dense=False, low_rank=None):
    warm, sample = blackjax_programs(target, warmup, draws, dense, low_rank=low_rank)
    keys = jax.random.split(jax.random.key(seed), 2 * num_chains)
    wkeys, skeys = keys[:num_chains], keys[num_chains:]
    if DEVICES is not None:  # each device's chains on it, for the shard_map'ed programs
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        split = NamedSharding(Mesh(np.array(DEVICES), ("chains",)), P("chains"))
        wkeys, skeys, init = jax.device_put((wkeys, skeys, init), split)
    c0, t0 = B.CLOCK.seconds, time.perf_counter()
    warm_compiled = warm.lower(wkeys, init).compile()
    w0 = time.perf_counter()
    states, params, _, wgrads = jax.block_until_ready(warm_compiled(wkeys, init))
    warm_time = time.perf_counter() - w0
    compiled = sample.lower(skeys, states, params).compile()
    start = time.perf_counter()
    positions, steps, div, _, _ = jax.block_until_ready(compiled(skeys, states, params))
    end = time.perf_counter()
    return dict(
        draws=positions,
        sample=end - start,
        grads=float(np.sum(steps)),
        lockstep=_lockstep(steps),
        wgrads=float(np.sum(wgrads)),
        warm=warm_time,
        div=int(np.sum(div)),
        compile=B.CLOCK.seconds - c0,
        first=end - t0,
        eps=float(np.median(np.asarray(params["step_size"]))),
        chain=_per_chain(params["step_size"], div, steps),
    )


def run_numpyro(target, init, num_chains, warmup, draws, seed):
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(potential_fn=lambda z: -target.logdensity(z))
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    key_warm, key_run = jax.random.split(jax.random.key(seed))
    c0, t0 = B.CLOCK.seconds, time.perf_counter()
    mcmc.warmup(key_warm, init_params=init, extra_fields=("num_steps",), collect_warmup=True)
    warm_time = time.perf_counter() - t0 - (B.CLOCK.seconds - c0)
    wgrads = float(np.sum(mcmc.get_extra_fields(group_by_chain=True)["num_steps"]))
    c1 = B.CLOCK.seconds
    start = time.perf_counter()
    mcmc.run(key_run, extra_fields=("num_steps", "diverging"))
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    end = time.perf_counter()
    extra = mcmc.get_extra_fields(group_by_chain=True)
    steps = np.asarray(extra["num_steps"])
    return dict(
        draws=samples,
        sample=end - start - (B.CLOCK.seconds - c1),
        grads=float(np.sum(steps)),
        wgrads=wgrads,
        warm=warm_time,
        lockstep=_lockstep(steps),
        div=int(np.sum(extra["diverging"])),
        compile=B.CLOCK.seconds - c0,
        first=end - t0,
        eps=float(np.median(np.asarray(mcmc.last_state.adapt_state.step_size))),
        chain=_per_chain(mcmc.last_state.adapt_state.step_size, extra["diverging"], steps),
    )


LIBRARIES = {"mcgen": run_mcgen, "blackjax": run_blackjax, "numpyro": run_numpyro}
# mcgen's NUTS with the other warmup estimators and schedules ("mcgen" is mass="diag", Stan's)
ESTIMATORS = {
    "mcgen_grad": dict(mass="grad_diag"),
    "mcgen_early": dict(mass="grad_diag", warmup_schedule="early"),
    "mcgen_diag_early": dict(mass="diag", warmup_schedule="early"),
    "mcgen_lowrank": dict(mass="low_rank", warmup_schedule="stan"),
    "mcgen_lowrank_early": dict(mass="low_rank", warmup_schedule="early"),
    "mcgen_stan": dict(
        mass="diag", uturn="stan"
    ),  # Stan's U-turn sum (the default halves the ends, as NumPyro and BlackJAX)
}
for _name, _settings in ESTIMATORS.items():
    LIBRARIES[_name] = functools.partial(run_mcgen, kernel=nuts(**_settings))
# dense metrics (Stan's windowed covariance estimate) in mcgen and BlackJAX: run on request only
# (``--libraries mcgen_dense blackjax_dense``), not by default; their ratios in the tables are
# still against ``mcgen`` (diagonal), the "dense vs dense" pair is read from the rows
OPTIONAL = {
    "mcgen_dense": functools.partial(run_mcgen, kernel=nuts(mass="dense")),
    "blackjax_dense": functools.partial(run_blackjax, dense=True),
    # BlackJAX's low-rank metric (nutpie's estimator), the peer of mcgen's default warmup
    "blackjax_lowrank": functools.partial(run_blackjax, low_rank="stan"),
    "blackjax_nutpie": functools.partial(run_blackjax, low_rank="nutpie"),
}


def nuts_settings(spec: str) -> dict:
    """The settings of a ``nuts:NAME=VALUE,...`` library (e.g. ``nuts:mass_rank=4,mass_eigval_cutoff=3``)."""
    settings = {}
    for item in filter(None, spec.split(":", 1)[1].split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{spec!r}: expected nuts:NAME=VALUE,..., got {item!r}")
        try:
            settings[key] = ast.literal_eval(value)  # numbers, True/False/None
        except (ValueError, SyntaxError):
            settings[key] = value  # a bare word: a string setting such as mass=diag
    return settings


def runner(library: str):
    """The run function of a library name: a peer, one of mcgen's named warmups, or ``nuts:...``."""
    if library in LIBRARIES or library in OPTIONAL:
        return {**LIBRARIES, **OPTIONAL}[library]
    if library.startswith("nuts:"):
        return functools.partial(run_mcgen, kernel=nuts(**nuts_settings(library)))
    raise ValueError(f"unknown library {library!r}: one of {', '.join([*LIBRARIES, *OPTIONAL])} or nuts:NAME=VALUE,...")


def bare_gradient(target, init, calls: int = 300, repeats: int = 5) -> float:
    """Microseconds of one vmapped value-and-gradient for all chains, outputs stored: the loop
    carries the value and gradient, so each is computed once per call (a bound no sampler beats)."""
    f = jax.vmap(jax.value_and_grad(target.logdensity))

    def loop(x):
        def body(_, carry):
            x, value, grad = carry
            x = x + 1e-6 * grad + 1e-9 * value[:, None]
            value, grad = f(x)
            return x, value, grad

        return jax.lax.fori_loop(0, calls, body, (x, *f(x)))

    compiled = jax.jit(loop).lower(init).compile()
    jax.block_until_ready(compiled(init))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(init))
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / calls


# ----------------------------------------------------------------------------- driver


def bench(names, num_chains, warmup, draws, reps, libraries, json_path=None, first_rep=0, per_chain=0, save_draws=None):
    rows, every = {}, []
    for name in names:
        target = make_target(name)
        results = {lib: [] for lib in libraries}
        # The bare gradient first: it also pays the process's one-time costs of tracing the
        # model (TFP's Python-level caches), which would otherwise fall on the first library.
        bare = bare_gradient(target, target.inits(num_chains, 0))
        for rep in range(first_rep, first_rep + reps):
            init = target.inits(num_chains, rep)
            for lib in libraries[rep % len(libraries) :] + libraries[: rep % len(libraries)]:  # rotated
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = runner(lib)(target, init, num_chains, warmup, draws, rep)
                chain, sampled = r.pop("chain"), r.pop("draws")
                scored = target.score(sampled)
                r.update(
                    scored,
                    us_grad=1e6 * r["sample"] / r["lockstep"],
                    ess_grad=scored["ess"] / r["grads"],
                    ess_grad_all=scored["ess"] / (r["grads"] + r["wgrads"]),
                    ess_s=scored["ess"] / r["sample"],
                    ess_s_all=scored["ess"] / (r["sample"] + r["warm"]),
                )
                results[lib].append(r)
                every.append(dict(target=name, lib=lib, rep=rep, warmup=warmup, z_limit=target.z_threshold(), **r))
                if json_path:
                    import json

                    with open(json_path, "w") as fh:
                        json.dump(every, fh)
                print(
                    f"  {name[:24]:24s} rep {rep} {lib:9s} " + "  ".join(f"{k}={v:.4g}" for k, v in r.items()),
                    flush=True,
                )
                if per_chain:
                    print(target.per_chain(sampled, chain, per_chain), flush=True)
                if save_draws:
                    np.savez(
                        f"{save_draws}_{name}_{lib}_rep{rep}.npz",
                        draws=np.asarray(sampled),
                        constrained=np.asarray(target.constrain_flat(jnp.asarray(sampled))),
                        **chain,
                    )
        for lib in libraries:
            med = {k: statistics.median(r[k] for r in results[lib]) for k in results[lib][0]}  # numbers only
            med.update(
                compile=results[lib][0]["compile"],
                first=results[lib][0]["first"],
                z=max(r["z"] for r in results[lib]),
                beyond=sum(r["z"] > target.z_threshold() for r in results[lib]),
                runs=len(results[lib]),
                rhat=max(r["rhat"] for r in results[lib]),
                bare=bare,
                threshold=target.z_threshold(),
                dim=target.dim,
                truth=target.truth_source,
            )
            rows[(name, lib)] = med
        # each target's compiled programs are dropped before the next one: a run of twenty
        # targets and six libraries held enough of them to run out of memory (24 GB) in LLVM
        _BJ.clear()
        jax.clear_caches()
    return rows


def table(rows, names, libraries, num_chains):
    lines = [
        f"\n### Inference Gym, {num_chains} chains (median of reps; z and R-hat: worst rep)\n",
        "| target | d | library | us/grad | bare | first call s | compile s | warmup grads | ESS/grad "
        "| ESS/grad all | ESS/s | ESS/s all | div | R-hat | max abs z (limit; runs beyond) | us/grad ratio "
        "| first-call ratio "
        "| ESS/grad ratio | ESS/s ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = {lib: [] for lib in libraries}
    # each peer against mcgen's NUTS with the same metric: BlackJAX's dense against mcgen_dense
    # when both ran, every other library against mcgen (diagonal)
    dense = "blackjax_dense" in libraries and "mcgen_dense" in libraries
    reference = {lib: "mcgen_dense" if dense and lib == "blackjax_dense" else "mcgen" for lib in libraries}
    for name in names:
        for lib in libraries:
            r, ours = rows[(name, lib)], rows[(name, reference[lib])]
            if lib == "mcgen":
                rat = ["", "", "", ""]
            else:
                rat = [
                    f"{ours['us_grad'] / r['us_grad']:.2f}",
                    f"{ours['first'] / r['first']:.2f}",
                    f"{ours['ess_grad'] / r['ess_grad']:.2f}",
                    f"{ours['ess_s'] / r['ess_s']:.2f}",
                ]
                ratios[lib].append(ours["ess_s"] / r["ess_s"])
            lines.append(
                f"| {name[:40]} | {r['dim']} | {lib} | {r['us_grad']:.1f} | {r['bare']:.1f} | {r['first']:.1f} "
                f"| {r['compile']:.1f} | {r['wgrads']:.3g} | {r['ess_grad']:.3g} | {r['ess_grad_all']:.3g} "
                f"| {r['ess_s']:.3g} | {r['ess_s_all']:.3g} | {r['div']:.0f} "
                f"| {r['rhat']:.3f} | {r['z']:.2f} ({r['threshold']:.2f}; {r['beyond']}/{r['runs']}) | "
                + " | ".join(rat)
                + " |"
            )
    replaced = [name for name in names if rows[(name, "mcgen")]["truth"] == "quadrature"]
    if replaced:
        lines.append(
            f"\nz against an independent truth (the Gym's stored one is wrong; see REPLACED_TRUTH): "
            f"{', '.join(replaced)}"
        )
    corrected = [name for name in names if rows[(name, "mcgen")]["truth"] == "Gym, corrected"]
    if corrected:
        lines.append(
            f"\nz against the Gym's truth with coordinates corrected by an independent computation "
            f"(see CORRECTED_TRUTH): {', '.join(corrected)}"
        )
    for lib in libraries:
        if ratios[lib] and not lib.startswith("mcgen"):
            lines.append(
                f"\nmedian ESS/s ratio {reference[lib]} / {lib}: {statistics.median(ratios[lib]):.2f} "
                f"(min {min(ratios[lib]):.2f})"
            )
    variants = [lib for lib in libraries if lib.startswith("mcgen")]
    peers = [lib for lib in ("blackjax", "blackjax_lowrank", "blackjax_nutpie") if lib in libraries]
    if len(variants) > 1 or peers:
        lines += [
            "\n### Warmup estimators: warmup + sampling gradients in the cost (ratios per target, then median)\n",
            "| target | "
            + " | ".join(f"{v} ESS/grad all vs mcgen" for v in variants[1:])
            + "".join(f" | {v} ESS/s all vs {peer}" for peer in peers for v in variants)
            + " |",
            "|---|" + "---|" * (len(variants) - 1 + len(variants) * len(peers)),
        ]
        columns = []
        for name in names:
            base = rows[(name, "mcgen")]
            row = [rows[(name, v)]["ess_grad_all"] / base["ess_grad_all"] for v in variants[1:]]
            row += [rows[(name, v)]["ess_s_all"] / rows[(name, peer)]["ess_s_all"] for peer in peers for v in variants]
            columns.append(row)
            lines.append(f"| {name[:40]} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
        lines.append("| **median** | " + " | ".join(f"{statistics.median(c):.2f}" for c in zip(*columns)) + " |")
    return "\n".join(lines)


def _usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS reports one, as Linux does)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--targets",
        nargs="+",
        default=TARGETS,
        help=f"Gym names or toy targets ({', '.join(TOY_TARGETS)}); 'toy': all toys",
    )
    parser.add_argument("--json", help="write every repetition's figures to this JSON file")
    parser.add_argument("--first-rep", type=int, default=0, help="number of the first repetition (its seed)")
    parser.add_argument(
        "--libraries",
        nargs="+",
        default=list(LIBRARIES),
        help=f"any of {', '.join([*LIBRARIES, *OPTIONAL])}, or nuts:NAME=VALUE,... (mcgen's nuts() with those "
        "settings, e.g. nuts:mass_rank=4,mass_eigval_cutoff=3)",
    )
    parser.add_argument("--quick", action="store_true", help="300 warmup + 300 draws, one repetition")
    parser.add_argument("--devices", type=int, default=None, help="split the chains over N simulated devices")
    parser.add_argument(
        "--per-chain",
        type=int,
        default=0,
        metavar="K",
        help="after each run, print each chain's step size, divergences, gradients per draw and mean "
        "log-density, and its means of the K coordinates of largest R-hat beside the truth",
    )
    parser.add_argument(
        "--save-draws",
        metavar="PREFIX",
        help="save each run's draws (unconstrained and constrained) and per-chain figures to "
        "PREFIX_<target>_<library>_rep<n>.npz",
    )
    args = parser.parse_args(argv)
    global DEVICES
    DEVICES = None if args.devices is None else jax.devices()[: args.devices]
    if args.quick:
        args.warmup, args.draws, args.reps = 300, 300, 1
    for lib in args.libraries:
        try:
            runner(lib)
        except (ValueError, TypeError) as err:  # an unknown name or nuts() setting
            parser.error(str(err))
    libraries = ["mcgen"] + [lib for lib in args.libraries if lib != "mcgen"]
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.chains} chains, warmup {args.warmup}, "
        f"draws {args.draws}, reps {args.reps}; {_usable_cores()} cores usable (a seed's draws are "
        "reproducible bit for bit only with as many: XLA:CPU's rounding depends on them)",
        flush=True,
    )
    targets = [t for name in args.targets for t in (TOY_TARGETS if name == "toy" else [name])]
    rows = bench(
        targets,
        args.chains,
        args.warmup,
        args.draws,
        args.reps,
        libraries,
        args.json,
        args.first_rep,
        args.per_chain,
        args.save_draws,
    )
    print(table(rows, targets, libraries, args.chains))


if __name__ == "__main__":
    main()
