"""Hamiltonian Monte Carlo with a fixed number of leapfrog steps.

From :math:`q` draw a momentum :math:`p \\sim N(0, M)`, integrate Hamilton's equations for

.. math::

    H(q, p) = -\\log\\pi(q) + \\tfrac12 p^\\top M^{-1} p

with :math:`L` leapfrog steps of size :math:`\\epsilon` to :math:`(q_L, p_L)`, flip the
momentum, and accept :math:`(q_L, -p_L)` with probability
:math:`\\min(1, e^{H(q, p) - H(q_L, p_L)})` (Duane et al. 1987; Neal 2011).  The leapfrog map
followed by the flip is volume preserving and its own inverse, so this is a
Metropolis–Hastings step with a symmetric proposal on :math:`(q, p)`; the kinetic energy is
symmetric in :math:`p`, so the flip only matters for the proof and the momentum is then
discarded.  An energy error above ``max_energy_error`` is reported as a divergence.

*Jitter* (on by default, :math:`j = 0.5`) draws the step size of each transition uniformly
from :math:`\\epsilon\\,[1 - j, 1 + j]`, which breaks the periodic orbits a fixed
:math:`L\\epsilon` falls into on near-Gaussian targets (Neal 2011, section 5.4.2.2): along a
direction of scale :math:`\\sigma` the trajectory turns by an angle :math:`\\theta = L\\epsilon
/ \\sigma`, and at :math:`\\theta` near a multiple of :math:`\\pi` a chain without jitter
barely moves (or flips sign every transition), whatever the acceptance rate says.  With
:math:`j = 0.5` the angle is spread over :math:`\\theta\\,[0.5, 1.5]`, an interval at least
as wide as :math:`\\theta` itself, so no adapted step size can make the chain near-periodic.
The draw is independent of the state, so each transition stays reversible; ``jitter=0``
restores the fixed trajectory.

The inverse mass matrix :math:`M^{-1}` and the step size live in ``state.params``; warmup
(Stan's windowed adaptation, :mod:`mcgen.adaptation.window`) tunes them for a mean acceptance
probability of 0.65 (Beskos et al. 2013's optimum for HMC in high dimension).

References
----------
Duane, S., Kennedy, A. D., Pendleton, B. J. and Roweth, D. (1987). Hybrid Monte Carlo.
Phys. Lett. B 195, 216–222.
Neal, R. M. (2011). MCMC using Hamiltonian dynamics. Handbook of MCMC, ch. 5.
Beskos, A., Pillai, N., Roberts, G., Sanz-Serna, J.-M. and Stuart, A. (2013). Optimal tuning
of the hybrid Monte Carlo algorithm. Bernoulli 19, 1501–1534.

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> from mcgen.kernels.hmc import hmc
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), hmc(num_integration_steps=10),
...                     init=jnp.zeros(5), num_chains=4, num_samples=500, progress=False)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mcgen.adaptation.low_rank import LOW_RANK_GAMMA, LOW_RANK_MIN_DRAWS
from mcgen.kernels import _random
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
from mcgen.kernels._integrators import hamiltonian, integrate
from mcgen.kernels._metrics import check_mass, check_positive, check_step_size, momentum_sampler
from mcgen.kernels._proposal import cached_constructor, mh_accept, select
from mcgen.types import Kernel


class HMCInfo(NamedTuple):
    accept_prob: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    is_nonfinite: jax.Array
    num_grad_evals: jax.Array
    step_size: jax.Array  # the (jittered) step size of this transition
    energy: jax.Array  # Hamiltonian at the new state


@cached_constructor
def hmc(
    num_integration_steps: int = 10,
    mass: str = "diag",
    *,
    step_size: float | None = None,
    jitter: float = 0.5,
    target_accept: float = 0.65,
    max_energy_error: float = 1000.0,
    adapt: bool = True,
    warmup_schedule: str = "stan",
    mass_rank: int = 16,
    mass_eigval_cutoff: float = 2.0,
    mass_buffer: int = 100,
    mass_min_draws: int = LOW_RANK_MIN_DRAWS,
    mass_holdout: bool = False,
    mass_gamma: float = LOW_RANK_GAMMA,
    warmup_pool: str | None = None,
) -> Kernel:
    """Hamiltonian Monte Carlo (leapfrog integrator, Metropolis correction).

    Parameters
    ----------
    num_integration_steps
        Leapfrog steps :math:`L` per transition (one gradient each).
    mass
        The inverse mass matrix adapted in warmup: ``"diag"`` (Stan's: the variances of the
        warmup draws), ``"dense"`` (their covariance), ``"grad_diag"`` (a diagonal from the
        draws and their gradients, the Fisher-divergence optimum of Seyboldt et al. 2026) or
        ``"low_rank"`` (that diagonal corrected along a few directions fitted to the draws and
        gradients, applied in :math:`O(dk)`: :mod:`mcgen.adaptation.low_rank`).
    step_size
        Starting step size, where warmup's dual averaging starts (default 1.0).
    jitter
        Half-width :math:`j \\in [0, 1)` of the relative uniform jitter of the step size
        (default 0.5; 0 gives a fixed trajectory, which can resonate on Gaussian targets).
    target_accept
        Acceptance probability targeted by dual averaging.
    max_energy_error
        Energy error above which a transition is reported as divergent.
    adapt
        Adapt step size and metric in warmup (default); ``False`` makes warmup a burn-in.
    warmup_schedule
        ``"stan"`` (default): Stan's doubling windows; ``"early"``: the metric updated after
        every warmup step (the low-rank fit every 20 steps) from the last tens of draws, in
        nutpie's manner (:func:`~mcgen.adaptation.window.early_schedule`).
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
        ``None`` (default: each chain adapts alone), ``"metric"`` (every metric update fitted
        to all chains' warmup draws) or ``"all"`` (the step size too), as
        :func:`~mcgen.kernels.nuts.nuts`'s ``warmup_pool``.
    """
    if (
        not isinstance(num_integration_steps, int)
        or isinstance(num_integration_steps, bool)
        or num_integration_steps < 1
    ):
        raise ValueError(f"hmc: num_integration_steps must be an integer >= 1, got {num_integration_steps!r}")
    check_mass(mass, "hmc")
    check_step_size(step_size, "hmc")
    check_target_accept(target_accept, "hmc")
    check_warmup_pool(warmup_pool, "hmc")
    check_warmup_schedule(warmup_schedule, "hmc")
    low_rank = low_rank_settings(
        mass_rank, mass_eigval_cutoff, mass_buffer, "hmc", mass_min_draws, mass_holdout, mass_gamma
    )
    if not 0.0 <= float(jitter) < 1.0:
        raise ValueError(f"hmc: jitter must lie in [0, 1), got {jitter!r}")
    check_positive(max_energy_error, "max_energy_error", "hmc")

    def init(position, logdensity_fn) -> GradientState:
        return gradient_init(position, logdensity_fn, step_size, mass, mass_rank)

    def step(key, state: GradientState, logdensity_fn):
        key_momentum, key_jitter, key_accept = _random.split(key, 3)
        q, g, f, unravel = flatten(state, logdensity_fn)
        inverse_mass = state.params.inverse_mass
        eps = state.params.step_size
        if jitter > 0.0:
            eps = eps * (1.0 + jitter * _random.uniform(key_jitter, (), eps.dtype, -1.0, 1.0))
        p = momentum_sampler(inverse_mass)(key_momentum)
        h0 = hamiltonian(state.logdensity, p, inverse_mass)
        q1, p1, logdensity1, g1 = integrate(f, inverse_mass, q, p, state.logdensity, g, eps, num_integration_steps)
        h1 = hamiltonian(logdensity1, -p1, inverse_mass)  # the flipped momentum
        do_accept, accept_prob, is_nonfinite = mh_accept(key_accept, h0 - h1, logdensity1)
        new = select(do_accept, rebuild(state, unravel, q1, logdensity1, g1), state)
        info = HMCInfo(
            accept_prob,
            do_accept,
            h1 - h0 > max_energy_error,
            is_nonfinite,
            jnp.asarray(num_integration_steps, jnp.int32),
            eps,
            jnp.where(do_accept, h1, h0),
        )
        return new, info

    warmup = gradient_warmup(step, target_accept, mass, warmup_schedule, low_rank, pool=warmup_pool) if adapt else None
    return Kernel(init, step, warmup)
