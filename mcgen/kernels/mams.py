"""MAMS: the Metropolis-adjusted microcanonical sampler, with an ensemble warmup.

Microcanonical (isokinetic) dynamics move a position :math:`x` with a velocity :math:`u` of
unit norm in coordinates whitened by a diagonal inverse mass :math:`A`
(:math:`z = A^{-1/2} x`, gradient :math:`\\tilde g = A^{1/2}\\nabla\\log\\pi`).  A velocity
update over time :math:`\\tau` with :math:`e = \\tilde g / \\|\\tilde g\\|`,
:math:`\\delta = \\tau \\|\\tilde g\\| / (d - 1)` and :math:`\\zeta = e^{-\\delta}` is

.. math::

    u' \\propto e\\,(1 - \\zeta)\\,(1 + \\zeta + u^\\top e\\,(1 - \\zeta)) + 2\\zeta u, \\qquad
    \\Delta K = (d - 1)\\big(\\delta - \\log 2 + \\log(1 + u^\\top e + (1 - u^\\top e)\\zeta^2)\\big),

and a step of size :math:`\\epsilon` is half a velocity update, :math:`z \\leftarrow z +
\\epsilon u`, half a velocity update (Robnik et al. 2023; Ver Steeg & Galstyan 2021).  A
transition draws :math:`u` uniformly on the sphere, takes :math:`n` steps and accepts with
probability :math:`\\min(1, \\exp(\\log\\pi(x_n) - \\log\\pi(x_0) - \\sum \\Delta K))`
(Robnik, Cohn-Gordon & Seljak 2025): the energy error of the deterministic, volume-preserving
(up to :math:`\\sum\\Delta K`), reversible map.  The number of steps is
:math:`n = \\lceil 2h L / \\epsilon \\rceil` with :math:`h` from the same low-discrepancy sequence
as :mod:`mcgen.kernels.chees` (shared by all chains, so a vmapped batch takes equal steps), a
mean trajectory length :math:`L`.

**Ensemble warmup** (statistics pooled over all chains, :mod:`mcgen.adaptation.ensemble`):
the step size by dual averaging of the mean acceptance probability towards 0.9 (the paper's
target); the metric as the cross-chain variance (averaged over steps with weights
:math:`t^{-1/2}`); and the mean trajectory length :math:`L`, which starts at :math:`c\\sqrt{d}`
in whitened coordinates (:math:`c\\sqrt{\\sum_i \\sigma_i^2}` in the original ones, MCLMC's
starting rule; ``length_factor`` :math:`c`, default 1), by ascent of :math:`\\log L` on the
ensemble's ChEES criterion (Hoffman, Radul & Sountsov 2021) *per unit length*.  With
:math:`c_i, c'_i` chain :math:`i`'s whitened position before and after a transition of time
:math:`t` (the same for all chains), centred on the ensemble means, and :math:`\\Delta_i =
\\|c'_i\\|^2 - \\|c_i\\|^2`, the criterion is :math:`C = E[\\Delta^2]/4` and its derivative in
:math:`\\log t` is :math:`E[t\\,\\Delta\\,c'^\\top u']` (end velocity :math:`u'`, unit speed), both
pooled over the chains with their acceptance probabilities as weights, in units of the
ensemble's squared spread, and averaged over recent steps (decay 0.9, several jitter values).
:math:`\\log L` moves by ``learning_rate`` times :math:`\\mathrm{clip}(\\bar C'/\\bar C - 1, -1,
1)`, the slope of :math:`\\log(C/L)`: up while the criterion grows faster than the cost (steps
:math:`\\propto L`), down after.  It adapts in the adjusted part of the warmup only (the
unadjusted start's large step sizes and moves would rule the averages); ``finalize`` takes the
:math:`t^{-1/2}`-weighted average of :math:`\\log L`.

Why this criterion and not the ESS rule of the MAMS paper and BlackJAX's tuning
(:math:`L \\leftarrow 0.4\\,L\\,\\tau`, from the autocorrelation of a stretch of draws): that
needs chains near stationarity and a stretch several times longer than :math:`\\tau`, which
is what fails where :math:`L = \\sqrt d` is far too short; the ChEES criterion is a statistic
of the ensemble at each step, also during the transient.  Per unit length, not ChEES's own
objective: on the 100-d Gaussian with scales over two decades the latter settles at
:math:`L \\approx 1.44\\sqrt d` and halves the ESS per gradient of :math:`x^2` (0.13 against
0.22 at :math:`\\sqrt d`); per unit length it settles at :math:`0.93\\sqrt d` (ESS per gradient
of :math:`x` and :math:`x^2` 0.24 and 0.24).  Where it matters is a target the diagonal
metric cannot whiten: on the Inference Gym's rotated ill-conditioned Gaussian (d = 100,
whitened scales 0.019 to 7.8) :math:`L = \\sqrt d` does not mix within 1500 warmup steps
(R-hat 3.1); the adapted :math:`L` (58 at 256 chains; about 310 steps per draw) converges in 150
(R-hat 1.08, second moments within 2.8 MCSE at 1024 chains).

The first ``unadjusted_fraction`` (0.2) of the warmup steps skip the Metropolis test (every
finite endpoint is taken; the unit speed bounds each move), as BlackJAX's adjusted-MCLMC tuning
starts with unadjusted MCLMC: a chain started where the pooled step size rejects everything
(a funnel's neck) otherwise never moves.  On the Inference Gym's eight schools at 1024 chains,
about 1% of the chains, started at :math:`\\log\\tau < -1`, stayed there for good without it
(acceptance 0 after 1500 warmup steps), which put the mean of :math:`\\log\\tau` 4.6 MCSE low.

References
----------
Robnik, J., Cohn-Gordon, R. and Seljak, U. (2025). Metropolis adjusted microcanonical
Hamiltonian Monte Carlo. arXiv:2503.01707.
Hoffman, M. D., Radul, A. and Sountsov, P. (2021). An adaptive MCMC scheme for setting
trajectory lengths in Hamiltonian Monte Carlo. AISTATS 2021.
Robnik, J., De Luca, G. B., Silverstein, E. and Seljak, U. (2023). Microcanonical
Hamiltonian Monte Carlo. JMLR 24.
Ver Steeg, G. and Galstyan, A. (2021). Hamiltonian dynamics with non-Newtonian momentum for
rapid sampling. NeurIPS 2021.

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), mc.mams(), init=jnp.zeros(5),
...                     num_chains=64, num_samples=100, num_warmup=200, progress=False, warn=False)
>>> res.samples.shape
(64, 100, 5)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.adaptation.ensemble import chain_mean, chain_means
from mcgen.kernels import _random
from mcgen.kernels._gradient import check_target_accept, flatten
from mcgen.kernels._integrators import flat_value_and_grad
from mcgen.kernels._metrics import check_num_steps, check_positive, check_step_size
from mcgen.kernels._proposal import cached_constructor, mh_accept, select
from mcgen.kernels.chees import halton
from mcgen.types import Kernel, Warmup

# Decay of the moving averages of the trajectory-length criterion (a window of ~10 warmup steps,
# several values of the jitter sequence).
LENGTH_EMA = 0.9


class MAMSParams(NamedTuple):
    step_size: jax.Array  # scalar
    inverse_mass: jax.Array  # (d,) diagonal
    trajectory_length: jax.Array  # scalar L, the mean integration time
    jitter_index: jax.Array  # uint32 counter of the jitter sequence


class MAMSState(NamedTuple):
    position: object
    logdensity: jax.Array
    logdensity_grad: object
    params: MAMSParams


class MAMSInfo(NamedTuple):
    accept_prob: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    is_nonfinite: jax.Array
    num_grad_evals: jax.Array
    step_size: jax.Array
    energy_error: jax.Array


class MAMSWarmupState(NamedTuple):
    state: MAMSState
    dual_averaging: DualAveragingState
    log_length: jax.Array  # iterate of log L
    log_length_avg: jax.Array  # averaged log L, frozen by finalize
    ema: jax.Array  # (2,) moving averages of the ChEES criterion and of its derivative in log t
    count: jax.Array


def _velocity_update(u, g, tau):
    """Isokinetic velocity update over time ``tau``; returns ``(u', kinetic energy change)``."""
    d = u.shape[0]
    norm = jnp.sqrt(jnp.sum(g**2))
    e = g / jnp.where(norm > 0, norm, 1.0)
    ue = jnp.dot(u, e)
    delta = tau * norm / (d - 1)
    zeta = jnp.exp(-delta)
    new = e * (1 - zeta) * (1 + zeta + ue * (1 - zeta)) + 2 * zeta * u
    new = new / jnp.sqrt(jnp.sum(new**2))
    change = (d - 1) * (delta - jnp.log(2.0) + jnp.log(1 + ue + (1 - ue) * zeta**2))
    return new, change


@cached_constructor
def mams(
    *,
    step_size: float | None = None,
    trajectory_length: float | None = None,
    target_accept: float = 0.9,
    length_factor: float = 1.0,
    max_num_steps: int = 1000,
    max_energy_error: float = 1000.0,
    unadjusted_fraction: float = 0.2,
    adapt_length: bool = True,
    learning_rate: float = 0.1,
    adapt: bool = True,
) -> Kernel:
    """Metropolis-adjusted microcanonical sampler with a warmup pooled across chains.

    Parameters
    ----------
    step_size
        Starting step size (default :math:`\\sqrt{d}/4` in whitened coordinates).
    trajectory_length
        Starting mean trajectory length :math:`L` (default :math:`c\\sqrt{d}`, ``length_factor`` :math:`c`).
    target_accept
        Mean acceptance probability targeted by dual averaging (0.9, the paper's choice).
    length_factor
        :math:`c` in the starting :math:`L = c\\sqrt{d}` (whitened), the default
        ``trajectory_length``; with ``adapt_length=False`` warmup keeps it.
    max_num_steps
        Cap on the steps of one transition.
    max_energy_error
        Energy error above which a transition is reported as divergent.
    unadjusted_fraction
        Fraction of the warmup steps, at its start, that take every finite endpoint without the
        Metropolis test (unadjusted microcanonical dynamics, as BlackJAX's tuning starts with
        unadjusted MCLMC): chains started far in the tails, where the pooled step size fits the
        bulk and every adjusted proposal is rejected, move towards the bulk all the same.  The
        rest of the warmup, and all sampling, is adjusted.  0 disables it.
    adapt_length
        Adapt :math:`L` in warmup by the pooled ChEES criterion per unit length (default);
        ``False`` keeps its starting value.
    learning_rate
        Largest change of :math:`\\log L` in one warmup step.
    adapt
        Adapt in warmup (default); ``False`` makes warmup a burn-in with the given settings.
    """
    check_step_size(step_size, "mams")
    check_step_size(trajectory_length, "mams")
    check_target_accept(target_accept, "mams")
    check_positive(length_factor, "length_factor", "mams")
    check_num_steps(max_num_steps, "max_num_steps", "mams")
    check_positive(max_energy_error, "max_energy_error", "mams")
    check_positive(learning_rate, "learning_rate", "mams")
    if not 0.0 <= unadjusted_fraction < 1.0:
        raise ValueError(f"mams: unadjusted_fraction must be in [0, 1), got {unadjusted_fraction!r}")

    def init(position, logdensity_fn) -> MAMSState:
        flat, unravel = ravel_pytree(position)
        if not jnp.issubdtype(flat.dtype, jnp.floating) or flat.shape[0] < 2:
            raise ValueError(f"mams needs a floating-point position of dimension >= 2, got {flat.dtype}{flat.shape}")
        logdensity, grad = flat_value_and_grad(logdensity_fn, unravel)(flat)
        root_d = jnp.sqrt(jnp.asarray(flat.shape[0], flat.dtype))
        eps = 0.25 * root_d if step_size is None else jnp.asarray(step_size, flat.dtype)
        length = length_factor * root_d if trajectory_length is None else jnp.asarray(trajectory_length, flat.dtype)
        params = MAMSParams(
            jnp.asarray(eps, flat.dtype),
            jnp.ones_like(flat),
            jnp.asarray(length, flat.dtype),
            jnp.zeros((), jnp.uint32),
        )
        return MAMSState(position, logdensity.astype(flat.dtype), unravel(grad), params)

    def transition(key, state: MAMSState, logdensity_fn, adjusted: bool | jax.Array = True):
        key_velocity, key_accept = _random.split(key, 2)
        q, g, f, unravel = flatten(state, logdensity_fn)
        params = state.params
        eps = params.step_size
        scale = jnp.sqrt(params.inverse_mass)
        h = halton(params.jitter_index).astype(eps.dtype)
        num_steps = jnp.clip(jnp.ceil(2.0 * h * params.trajectory_length / eps), 1, max_num_steps).astype(jnp.int32)
        u = _random.normal(key_velocity, q.shape, q.dtype)
        u = u / jnp.sqrt(jnp.sum(u**2))

        def body(_, carry):
            q, u, logdensity, g, kinetic = carry
            u, k1 = _velocity_update(u, scale * g, 0.5 * eps)
            q = q + eps * scale * u
            logdensity, g = f(q)
            u, k2 = _velocity_update(u, scale * g, 0.5 * eps)
            return q, u, logdensity, g, kinetic + k1 + k2

        zero = jnp.zeros((), q.dtype)
        q1, u1, logdensity1, g1, kinetic = jax.lax.fori_loop(0, num_steps, body, (q, u, state.logdensity, g, zero))
        log_ratio = logdensity1 - state.logdensity - kinetic
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        do_accept, accept_prob, is_nonfinite = mh_accept(key_accept, log_ratio, logdensity1)
        # warmup's unadjusted phase: every finite endpoint is taken (speed |u| = 1 bounds the move)
        do_accept = jnp.where(adjusted, do_accept, ~is_nonfinite & jnp.isfinite(log_ratio))
        next_params = params._replace(jitter_index=params.jitter_index + jnp.uint32(1))
        moved = MAMSState(unravel(q1), logdensity1.astype(q1.dtype), unravel(g1), params)
        new = select(do_accept, moved, state)._replace(params=next_params)
        info = MAMSInfo(accept_prob, do_accept, -log_ratio > max_energy_error, is_nonfinite, num_steps, eps, -log_ratio)
        return new, info, (q, q1, u1)

    def step(key, state: MAMSState, logdensity_fn):
        new, info, _ = transition(key, state, logdensity_fn)
        return new, info

    def warmup(num_steps: int) -> Warmup:
        num_unadjusted = int(unadjusted_fraction * num_steps)

        def w_init(state: MAMSState) -> MAMSWarmupState:
            log_length = jnp.log(state.params.trajectory_length)
            ema = jnp.zeros((2,), log_length.dtype)
            da = da_init(state.params.step_size)
            return MAMSWarmupState(state, da, log_length, log_length, ema, jnp.zeros((), jnp.int32))

        def w_step(key, ws: MAMSWarmupState, logdensity_fn):
            adjusted = ws.count >= num_unadjusted
            params = ws.state.params
            new, info, (q0, q1, u1) = transition(key, ws.state, logdensity_fn, adjusted)
            dtype = params.step_size.dtype
            ok = (~info.is_divergent & ~info.is_nonfinite).astype(dtype)
            accept = jnp.where(ok > 0, info.accept_prob, 0.0).astype(dtype)
            x = flatten(new, logdensity_fn)[0]
            # the pooled statistics of a step in two collectives (across devices each is a
            # rendezvous): first every mean of this step's values, then the spreads about them
            scale = jnp.sqrt(params.inverse_mass)
            z0, z1 = q0 / scale, q1 / scale
            # a chain's weight: the probability that its proposal is taken
            taken = info.is_accepted.astype(dtype)
            a = jnp.where(adjusted, jnp.where(ok > 0, info.accept_prob, 0.0), taken).astype(dtype)
            centred = ([z0, z1], [None, a]) if adapt_length else ([], [])
            mean_accept, mean, *centres = chain_means([accept, x, *centred[0]], [None, None, *centred[1]])
            mean_accept = jnp.where(jnp.isfinite(mean_accept), mean_accept, 0.0)
            da = da_update(ws.dual_averaging, mean_accept, target_accept)
            new_eps = jnp.exp(da.log_x).astype(dtype)
            count = ws.count + 1
            weight = count.astype(dtype) ** -0.5

            # trajectory length: ascent of log L on the ensemble's ChEES criterion per unit length
            # (proportional to per gradient), C(L) = E[(|c'|^2 - |c|^2)^2] / 4 over the jitter, in
            # coordinates whitened by the current metric (dz/dt = u, unit speed)
            log_length, ema = ws.log_length, ws.ema
            if adapt_length:
                c0 = z0 - centres[0]
                c1 = z1 - centres[1]
                t = info.num_grad_evals.astype(dtype) * info.step_size  # the same time in every chain
                change = jnp.sum(c1**2) - jnp.sum(c0**2)
                # this step's criterion and its derivative in log t, pooled with weights a
                stats = jnp.stack([0.25 * change**2, t * change * jnp.dot(c1, u1)])
                # in units of the ensemble's current spread, so that the average over steps is not
                # ruled by the large values of a transient; the metric's variance beside them
                spread, pooled, var = chain_means(
                    [jnp.sum(c0**2), jnp.where(a > 0, stats, 0.0), (x - mean) ** 2], [None, a, None]
                )
                stats = pooled / spread**2
                # from the adjusted phase on: the unadjusted start's moves (and step sizes) are wild
                good = jnp.all(jnp.isfinite(stats)) & adjusted
                ema = jnp.where(good, LENGTH_EMA * ws.ema + (1.0 - LENGTH_EMA) * jnp.where(good, stats, 0.0), ws.ema)
                # d log(C / L) / d log L over the recent jitter values: > 0 while C grows faster than L
                slope = ema[1] / ema[0] - 1.0
                update = learning_rate * jnp.clip(jnp.where(jnp.isfinite(slope), slope, 0.0), -1.0, 1.0)
                moved = jnp.clip(log_length + update, jnp.log(new_eps), jnp.log(0.5 * new_eps * max_num_steps))
                log_length = jnp.where(adjusted, moved, log_length)
            else:
                var = chain_mean((x - mean) ** 2)
            log_length_avg = (1.0 - weight) * ws.log_length_avg + weight * log_length

            # metric: the cross-chain variance of the positions
            var = jnp.where(jnp.isfinite(var) & (var > 0), var, params.inverse_mass)
            var = (1.0 - weight) * params.inverse_mass + weight * var
            new_params = new.params._replace(
                step_size=new_eps, inverse_mass=var.astype(dtype), trajectory_length=jnp.exp(log_length).astype(dtype)
            )
            ws = MAMSWarmupState(new._replace(params=new_params), da, log_length, log_length_avg, ema, count)
            return ws, info

        def w_finalize(ws: MAMSWarmupState) -> MAMSState:
            params = ws.state.params
            eps = da_final(ws.dual_averaging).astype(params.step_size.dtype)
            length = jnp.maximum(jnp.exp(ws.log_length_avg).astype(eps.dtype), eps)
            return ws.state._replace(params=params._replace(step_size=eps, trajectory_length=length))

        return Warmup(w_init, w_step, w_finalize)

    return Kernel(init, step, warmup if adapt else None)


__all__ = ["mams", "MAMSInfo", "MAMSParams", "MAMSState"]
