"""The No-U-Turn Sampler: multinomial NUTS with the generalized U-turn criterion.

HMC needs a trajectory length; NUTS (Hoffman & Gelman 2014) picks one per transition.  From
:math:`(q, p)` with :math:`p \\sim N(0, M)` it doubles a leapfrog trajectory forwards or
backwards in time at random until the trajectory starts to turn back on itself,

.. math::

    v^{-\\top} \\rho \\le 0 \\ \\text{ or } \\ v^{+\\top} \\rho \\le 0,\\qquad
    \\rho = \\textstyle\\sum_i p_i ,\\quad v^\\pm = M^{-1} p^\\pm

(Betancourt's generalized criterion, checked on every sub-tree of the doubling tree and,
as in Stan, across neighbouring sub-trees; by default the sum :math:`\\rho` halves the two
end momenta, the trapezoid rule of NumPyro and BlackJAX, see ``uturn``), or until
``max_tree_depth`` doublings (:math:`2^{\\text{depth}} - 1` steps).  The next state is drawn
from all the points of the trajectory with probabilities proportional to :math:`e^{-H}`
(multinomial sampling, Betancourt 2017), which together with the random doubling directions
makes the transition reversible with respect to :math:`\\pi(q) N(p; 0, M)`.  A leaf whose energy error
:math:`H - H_0` exceeds ``max_energy_error`` (1000 by default, as in Stan) is a *divergence*:
the trajectory stops and the transition is flagged, because divergences signal regions the
integrator cannot resolve (and hence a possible bias).

The trajectory is built iteratively in one flat ``while_loop`` (see
:mod:`mcgen.kernels._trajectory`), one gradient per leapfrog step, with the log-density and
gradient of the current point cached in the state.

``run_chains`` warms NUTS up (:mod:`mcgen.adaptation.window`) with dual averaging of the step
size towards a mean acceptance statistic of 0.8 and, by default, a low-rank-plus-diagonal
inverse mass matrix fitted to the recent draws and their gradients, updated after every few
steps in nutpie's manner once Stan's initial buffer is over (``mass="low_rank"``, the
``"early"`` schedule).  Stan's windowed adaptation with a diagonal (``mass="diag"``) or dense
(``mass="dense"``) inverse mass matrix from Welford estimates, or a diagonal one from the
draws and their gradients (``mass="grad_diag"``), are the alternatives.

References
----------
Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn Sampler. JMLR 15, 1593–1623.
Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo. arXiv:1701.02434.

Example
-------
>>> import jax.numpy as jnp
>>> from mcgen.kernels.nuts import nuts
>>> import mcgen as mc
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), nuts(), init=jnp.zeros(5),
...                     num_chains=4, num_samples=500, progress=False)
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from mcgen.adaptation.low_rank import LOW_RANK_GAMMA, LOW_RANK_MIN_DRAWS
from mcgen.kernels._gradient import (
    GradientState,
    check_target_accept,
    check_warmup_pool,
    check_warmup_schedule,
    flatten,
    gradient_init,
    gradient_warmup,
    low_rank_settings,
    rebuild,
)
from mcgen.kernels._metrics import check_mass, check_positive, check_step_size
from mcgen.kernels._proposal import cached_constructor
from mcgen.kernels._trajectory import build_tree
from mcgen.types import Kernel

UTURN_CRITERIA = ("stan", "trapezoid")


class NUTSInfo(NamedTuple):
    accept_prob: jax.Array  # mean Metropolis acceptance over the trajectory (adaptation statistic)
    is_accepted: jax.Array  # the draw moved away from the starting point
    is_divergent: jax.Array
    is_nonfinite: jax.Array  # a leaf had a NaN or +inf log-density
    num_grad_evals: jax.Array  # leapfrog steps of the transition
    tree_depth: jax.Array  # doublings completed
    step_size: jax.Array
    energy: jax.Array  # Hamiltonian at the draw (for ArviZ's energy plot / E-BFMI)
    reached_max_treedepth: jax.Array  # all max_tree_depth doublings done (Stan's treedepth__ == max_depth)


# nuts()'s target acceptance statistic on Stan's schedule and on the early one (``target_accept``)
STAN_TARGET_ACCEPT = 0.8
EARLY_TARGET_ACCEPT = 0.85
# nuts()'s cap on the doublings of a warmup transition for mass="low_rank" (warmup_max_tree_depth)
WARMUP_MAX_TREE_DEPTH = 6


@cached_constructor
def nuts(
    max_tree_depth: int = 10,
    mass: str = "low_rank",
    *,
    step_size: float | None = None,
    target_accept: float | None = None,
    max_energy_error: float = 1000.0,
    adapt: bool = True,
    warmup_schedule: str | None = None,
    mass_rank: int = 16,
    mass_eigval_cutoff: float = 2.0,
    mass_buffer: int = 100,
    mass_min_draws: int = LOW_RANK_MIN_DRAWS,
    mass_holdout: bool = False,
    mass_gamma: float = LOW_RANK_GAMMA,
    warmup_pool: str | None = None,
    warmup_max_tree_depth: int | None = None,
    uturn: str = "trapezoid",
    gather: bool | None = None,
) -> Kernel:
    """The No-U-Turn Sampler.

    Parameters
    ----------
    max_tree_depth
        Largest number of trajectory doublings: at most :math:`2^{\\text{depth}} - 1`
        gradient evaluations per draw.  A transition that uses them all is flagged in the
        ``reached_max_treedepth`` stat, and ``run_chains`` warns about it as Stan does.
    mass
        The inverse mass matrix adapted in warmup: ``"low_rank"`` (default: the diagonal of
        ``"grad_diag"`` corrected along a few directions fitted to the draws and gradients,
        applied in :math:`O(dk)`: :mod:`mcgen.adaptation.low_rank`), ``"diag"`` (Stan's: the
        variances of the warmup draws), ``"dense"`` (their covariance) or ``"grad_diag"`` (a
        diagonal from the draws and their gradients, the Fisher-divergence optimum of
        Seyboldt et al. 2026).  The default was chosen on the table of "The default" in the
        gradient-kernel docs (ten Inference Gym and toy targets, warmup gradients counted):
        1.5x Stan's diagonal in effective draws per gradient at the median, 12-130x where the
        posterior has correlations that a diagonal cannot undo, 0.7-0.95x on funnels and a
        nearly diagonal latent field, 0.7x on a curved 2-d banana at 64 chains (with R-hat
        up to 1.1: it says so).  ``mass="diag"`` gives Stan's (and BlackJAX's and NumPyro's)
        warmup, and draws that agree bit for bit across chain counts on small elementwise
        targets (:mod:`mcgen.run`).
    step_size
        Starting step size, where warmup's dual averaging starts (default 1.0).
    target_accept
        Mean acceptance statistic targeted by dual averaging in warmup.  ``None`` (default):
        0.8 on Stan's schedule, 0.85 on the early one, which gives about the same mean
        acceptance in sampling.  Stan's schedule restarts dual averaging 50 steps before the
        end of warmup and its average stops short, on a shorter step (0.78-0.89 in sampling on
        the Inference Gym for a target of 0.8); the early schedule's 150-step final phase gets
        nearer its target (0.72-0.84 for 0.8).  Those longer steps cost the default on curved
        targets: on the Gym's banana at 0.8 a third of its chains never reached the arms'
        tips in 1000 draws, and 4-chain runs drew 0.88x BlackJAX's effective draws per
        gradient; at 0.85, 1.24x, and 1.08-18x on seven more Gym targets, for 3-21% fewer
        than at 0.8 on five of them (the gradient-kernel docs, "Target acceptance 0.85 on the
        early schedule").
    max_energy_error
        Energy error :math:`H - H_0` above which a leapfrog step counts as divergent.
    adapt
        Adapt step size and metric in warmup (default); ``False`` makes warmup a burn-in.
    warmup_schedule
        ``"stan"``: Stan's doubling windows; ``"early"``: after Stan's initial buffer (75
        steps of step size alone), the metric updated after every warmup step (the low-rank
        fit every 20 steps) from the last tens of draws, in nutpie's manner
        (:func:`~mcgen.adaptation.window.early_schedule`).  ``None``
        (default): ``"early"`` for ``mass="low_rank"``, ``"stan"`` for the others.
    mass_rank, mass_eigval_cutoff, mass_buffer, mass_min_draws, mass_holdout, mass_gamma
        For ``mass="low_rank"`` only: the number ``k`` of corrected directions, the cutoff
        :math:`c` (eigenvalues of the scaled metric inside :math:`[1/c, c]` are dropped), the
        number of a window's last draws that the directions are fitted to (memory:
        ``2 * mass_buffer * d`` numbers per chain in warmup), the fewest draws a window
        must hold to be fitted (from fewer, the diagonal alone; default 3: every window;
        measured: :func:`~mcgen.adaptation.window.window_adaptation`'s ``min_draws``), and
        whether each fit is checked on held-out draws (``window_adaptation``'s ``holdout``),
        and the fit's regularization (:func:`~mcgen.adaptation.low_rank_estimate`'s ``gamma``:
        that share of the mean scaled second moment is added to both second moments).
    warmup_pool
        ``None`` (default): each chain adapts its step size and metric to its own warmup, so
        chain ``i``'s draws do not depend on the other chains.  ``"metric"``: each metric
        update is fitted to the warmup draws (and gradients) of all chains together, and every
        chain gets it; ``"all"``: the step size too, from the chains' mean acceptance
        statistic.  Needs ``chain_method="vectorized"`` or ``"sharded"`` in ``run_chains``.
        For hierarchical models where a chain can end its warmup in a funnel's neck with a
        metric as narrow as the neck (:func:`~mcgen.adaptation.window.window_adaptation`'s
        ``pool``; measured in the gradient-kernel docs, "A warmup pooled over the chains").
    warmup_max_tree_depth
        Largest number of doublings of a warmup transition (sampling keeps
        ``max_tree_depth``).  ``None`` (default): 6 (63 leapfrog steps) for
        ``mass="low_rank"``, no cap for the other metrics (``"diag"`` stays Stan's warmup);
        a value at or above ``max_tree_depth`` caps nothing.  A warmup transition is for
        tuning: the low-rank metric is fitted to draws *and* their gradients, which need
        not be independent draws, while a trajectory under a metric not yet fitted runs
        long.  On the Inference Gym (4 chains, warmup gradients counted) the cap gave
        1.4-2.2 times the effective draws per gradient where it binds (the rotated
        ill-conditioned Gaussian, the sparse logistic regression, a 100-d Gaussian: half
        the warmup gradients or less) and left the other targets to their run-to-run
        spread (the gradient-kernel docs, "A cap on the warmup's trajectories").
    uturn
        The momentum sum :math:`\\rho` of a span of leaves in the U-turn test:
        ``"trapezoid"`` (default) the sum with the span's two end momenta halved,
        :math:`\\rho - (p^- + p^+)/2`, the trapezoid rule for :math:`\\int p\\,dt`, which a
        leapfrog span's displacement :math:`q^+ - q^-` follows (NumPyro's and BlackJAX's
        criterion); ``"stan"`` the plain sum, as in Stan.  Both give an exact kernel; the
        trapezoid sum stops some trajectories a doubling earlier (on the Inference Gym's
        stochastic-volatility model 20% fewer gradients per draw at equal step size and
        metric, at the same effective samples per gradient or better:
        ``benchmarks/compare_uturn.py``).
    gather
        Under ``vmap``, a batch of chains runs its trees in one loop, one leapfrog step per
        chain per iteration, until the longest tree is done.  With ``gather`` the trees still
        growing are gathered into smaller batches as the others finish (128 chains: stages of
        128, 32 and 8), which the CPU pays for by batch size: per draw of 128 chains, 4.9x
        faster on the Inference Gym's 10-d funnel, where tree sizes vary, and 0-6% slower where
        they do not.  Each stage compiles the trajectory and the log-density once more (about
        2.3x the compile time).  The draws are the same (bit for bit on small targets, to
        rounding on larger ones).  ``None`` (default): from 64 chains on the CPU, for a
        log-density of at most 1,000 equations; ``True``: from 16 chains, on any device;
        ``False``: never (short many-chain runs, where the compile time dominates).

    Returns
    -------
    Kernel
        State :class:`~mcgen.kernels._gradient.GradientState` (``params.step_size``,
        ``params.inverse_mass``; ``params.depth_cap``, the warmup's cap on the next
        trajectory, 0 in sampling), info :class:`NUTSInfo`.
    """
    if not isinstance(max_tree_depth, int) or isinstance(max_tree_depth, bool) or max_tree_depth < 1:
        raise ValueError(f"nuts: max_tree_depth must be an integer >= 1, got {max_tree_depth!r}")
    if max_tree_depth > 30:
        raise ValueError(f"nuts: max_tree_depth must be at most 30 (2**30 leapfrog steps), got {max_tree_depth}")
    if warmup_max_tree_depth is not None and (
        not isinstance(warmup_max_tree_depth, int)
        or isinstance(warmup_max_tree_depth, bool)
        or warmup_max_tree_depth < 1
    ):
        raise ValueError(f"nuts: warmup_max_tree_depth must be None or an integer >= 1, got {warmup_max_tree_depth!r}")
    if warmup_max_tree_depth is None and mass == "low_rank":
        warmup_max_tree_depth = WARMUP_MAX_TREE_DEPTH
    # a cap at or above max_tree_depth caps nothing
    depth_cap = warmup_max_tree_depth if warmup_max_tree_depth and warmup_max_tree_depth < max_tree_depth else None
    check_mass(mass, "nuts")
    check_step_size(step_size, "nuts")
    if warmup_schedule is None:
        warmup_schedule = "early" if mass == "low_rank" else "stan"
    check_warmup_pool(warmup_pool, "nuts")
    check_warmup_schedule(warmup_schedule, "nuts")
    if target_accept is None:
        target_accept = EARLY_TARGET_ACCEPT if warmup_schedule == "early" else STAN_TARGET_ACCEPT
    check_target_accept(target_accept, "nuts")
    low_rank = low_rank_settings(
        mass_rank, mass_eigval_cutoff, mass_buffer, "nuts", mass_min_draws, mass_holdout, mass_gamma
    )
    check_positive(max_energy_error, "max_energy_error", "nuts")
    if uturn not in UTURN_CRITERIA:
        raise ValueError(f"nuts: uturn must be one of {UTURN_CRITERIA}, got {uturn!r}")
    if gather is not None and not isinstance(gather, bool):
        raise ValueError(f"nuts: gather must be None, True or False, got {gather!r}")

    def init(position, logdensity_fn) -> GradientState:
        return gradient_init(position, logdensity_fn, step_size, mass, mass_rank, depth_cap=True)

    def step(key, state: GradientState, logdensity_fn):
        q, g, f, unravel = flatten(state, logdensity_fn)
        eps = state.params.step_size
        tree = build_tree(
            key,
            f,
            state.params.inverse_mass,
            q,
            state.logdensity,
            g,
            eps,
            max_tree_depth,
            max_energy_error,
            uturn,
            gather,
            None if depth_cap is None else state.params.depth_cap,
        )
        info = NUTSInfo(
            tree.accept_prob,
            tree.moved,
            tree.divergent,
            tree.nonfinite,
            tree.num_leaves,
            tree.depth,
            eps,
            tree.energy,
            tree.depth >= max_tree_depth,
        )
        return rebuild(state, unravel, tree.q, tree.logdensity, tree.g), info

    warmup = (
        gradient_warmup(step, target_accept, mass, warmup_schedule, low_rank, depth_cap, warmup_pool) if adapt else None
    )
    return Kernel(init, step, warmup)
