"""ChEES-HMC: HMC with a jittered trajectory length adapted across an ensemble of chains.

A transition is HMC (see :mod:`mcgen.kernels.hmc`) with a diagonal inverse mass matrix
:math:`A`, step size :math:`\\epsilon` and :math:`n = \\lceil u\\,T/\\epsilon\\rceil` leapfrog
steps, where :math:`T` is the trajectory length and :math:`u \\in (0, 1]` the jitter.  The
jitter comes from a van der Corput (base-2 Halton) sequence indexed by a counter in
``state.params``: it does not depend on the state, so every transition is a Metropolis–Hastings
step that leaves the target invariant, and every chain of an ensemble that started together
takes the *same* number of steps, so a vmapped batch pays no chain's waiting for another (as
vmapped NUTS does).

**Ensemble warmup** (Hoffman, Radul & Sountsov 2021).  Every warmup step pools statistics
over all chains (:mod:`mcgen.adaptation.ensemble`):

- the step size by dual averaging on the *harmonic mean* of the chains' acceptance
  probabilities (divergent transitions left out), targeting 0.651;
- the trajectory length by stochastic gradient ascent (Adam without momentum, clipped
  steps) on :math:`\\log T` of the ChEES criterion, the change in the expected squared
  distance from the ensemble mean,
  :math:`\\tfrac14 E[(\\|q' - E q'\\|^2 - \\|q - E q\\|^2)^2]`, whose gradient for chain
  :math:`i` with proposal :math:`(q'_i, p'_i)` at time :math:`t_i = u T` is estimated by

  .. math::

      g = \\frac{\\sum_i a_i\\, t_i\\,(\\|q'_i - \\bar q'\\|^2 - \\|q_i - \\bar q\\|^2)
          \\,(q'_i - \\bar q')^\\top v'_i}{\\sum_i a_i},

  with acceptance probabilities :math:`a_i` as weights, velocities :math:`v' = A p'`, all in
  coordinates whitened by :math:`A^{-1/2}`;
- the diagonal of :math:`A` as the cross-chain variance of the current positions, averaged
  over warmup steps with weights :math:`t^{-1/2}` (which forgets the start).

Each chain holds the same pooled values; ``finalize`` freezes the averaged iterates
(:math:`\\bar\\epsilon` of dual averaging, a :math:`t^{-1/2}`-weighted average of
:math:`\\log T`).  Warmup needs an ensemble: many chains (hundreds on an accelerator; at
least 32 for stable estimates), ``chain_method`` ``"vectorized"`` or ``"sharded"``.

References
----------
Hoffman, M. D., Radul, A. and Sountsov, P. (2021). An adaptive MCMC scheme for setting
trajectory lengths in Hamiltonian Monte Carlo. AISTATS 2021.

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), mc.chees_hmc(), init=jnp.zeros(5),
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
from mcgen.adaptation.ensemble import _same_in_every_chain, chain_mean, chain_means
from mcgen.kernels import _random
from mcgen.kernels._gradient import check_target_accept, flatten, initial_step_size
from mcgen.kernels._integrators import flat_value_and_grad, hamiltonian, integrate
from mcgen.kernels._metrics import check_num_steps, check_positive, check_step_size, momentum_sampler
from mcgen.kernels._proposal import cached_constructor, mh_accept, select
from mcgen.types import Kernel, Warmup

# Hoffman & Sountsov's harmonic-mean target (Beskos et al. 2013's optimum for HMC).
TARGET_ACCEPT = 0.651
# Largest change of log T in one warmup step (about log(2) / 2, as in the paper's code).
MAX_LOG_UPDATE = 0.35


class ChEESParams(NamedTuple):
    step_size: jax.Array  # scalar
    inverse_mass: jax.Array  # (d,) diagonal
    trajectory_length: jax.Array  # scalar T; a transition integrates for u * T
    jitter_index: jax.Array  # uint32 counter of the jitter sequence


class ChEESState(NamedTuple):
    position: object
    logdensity: jax.Array
    logdensity_grad: object
    params: ChEESParams


class ChEESInfo(NamedTuple):
    accept_prob: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    is_nonfinite: jax.Array
    num_grad_evals: jax.Array  # leapfrog steps of this transition
    step_size: jax.Array
    energy: jax.Array
    trajectory_length: jax.Array  # the jittered u * T


class ChEESWarmupState(NamedTuple):
    state: ChEESState
    dual_averaging: DualAveragingState
    log_length: jax.Array  # iterate of log T
    log_length_avg: jax.Array  # averaged log T, frozen by finalize
    grad_sq: jax.Array  # Adam's second moment of the ChEES gradient
    count: jax.Array


def halton(index: jax.Array) -> jax.Array:
    """The base-2 van der Corput number of ``index + 1``: a low-discrepancy sequence in (0, 1)."""
    x = jnp.asarray(index, jnp.uint32) + jnp.uint32(1)
    for shift, mask in ((1, 0x55555555), (2, 0x33333333), (4, 0x0F0F0F0F), (8, 0x00FF00FF)):
        m = jnp.uint32(mask)
        x = ((x >> shift) & m) | ((x & m) << shift)
    x = (x >> 16) | (x << 16)
    return x.astype(jnp.float32) * jnp.float32(2.0**-32)


@cached_constructor
def chees_hmc(
    *,
    step_size: float | None = None,
    trajectory_length: float | None = None,
    target_accept: float = TARGET_ACCEPT,
    learning_rate: float = 0.025,
    max_num_steps: int = 1000,
    max_energy_error: float = 1000.0,
    adapt: bool = True,
) -> Kernel:
    """ChEES-HMC: jittered-length HMC whose warmup adapts across all chains at once.

    Parameters
    ----------
    step_size
        Starting step size (default: Stan's heuristic, pooled over chains, at the first warmup
        step; 1.0 without warmup).
    trajectory_length
        Starting trajectory length :math:`T` (default: one step size).
    target_accept
        Harmonic-mean acceptance probability targeted by dual averaging.
    learning_rate
        Adam's learning rate for :math:`\\log T`.
    max_num_steps
        Cap on the leapfrog steps of one transition.
    max_energy_error
        Energy error above which a transition is reported as divergent.
    adapt
        Adapt in warmup (default); ``False`` makes warmup a burn-in with the given settings.

    Returns
    -------
    Kernel
        Its warmup pools statistics across chains (``chain_method="sequential"`` refuses it).
    """
    check_step_size(step_size, "chees_hmc")
    check_step_size(trajectory_length, "chees_hmc")
    check_target_accept(target_accept, "chees_hmc")
    check_positive(learning_rate, "learning_rate", "chees_hmc")
    check_num_steps(max_num_steps, "max_num_steps", "chees_hmc")
    check_positive(max_energy_error, "max_energy_error", "chees_hmc")

    def init(position, logdensity_fn) -> ChEESState:
        flat, unravel = ravel_pytree(position)
        if not jnp.issubdtype(flat.dtype, jnp.floating):
            raise ValueError(f"chees_hmc needs a floating-point position, got dtype {flat.dtype}")
        logdensity, grad = flat_value_and_grad(logdensity_fn, unravel)(flat)
        eps = jnp.asarray(1.0 if step_size is None else step_size, flat.dtype)
        length = eps if trajectory_length is None else jnp.asarray(trajectory_length, flat.dtype)
        params = ChEESParams(eps, jnp.ones_like(flat), length, jnp.zeros((), jnp.uint32))
        return ChEESState(position, logdensity.astype(flat.dtype), unravel(grad), params)

    def transition(key, state: ChEESState, logdensity_fn):
        key_momentum, key_accept = _random.split(key, 2)
        q, g, f, unravel = flatten(state, logdensity_fn)
        params = state.params
        eps = params.step_size
        length = halton(params.jitter_index).astype(eps.dtype) * params.trajectory_length
        num_steps = jnp.clip(jnp.ceil(length / eps), 1, max_num_steps).astype(jnp.int32)
        p = momentum_sampler(params.inverse_mass)(key_momentum)
        h0 = hamiltonian(state.logdensity, p, params.inverse_mass)
        q1, p1, logdensity1, g1 = integrate(f, params.inverse_mass, q, p, state.logdensity, g, eps, num_steps)
        h1 = hamiltonian(logdensity1, -p1, params.inverse_mass)
        do_accept, accept_prob, is_nonfinite = mh_accept(key_accept, h0 - h1, logdensity1)
        next_params = params._replace(jitter_index=params.jitter_index + jnp.uint32(1))
        moved = ChEESState(unravel(q1), logdensity1.astype(q1.dtype), unravel(g1), params)
        new = select(do_accept, moved, state)._replace(params=next_params)
        info = ChEESInfo(
            accept_prob,
            do_accept,
            h1 - h0 > max_energy_error,
            is_nonfinite,
            num_steps,
            eps,
            jnp.where(do_accept, h1, h0),
            num_steps.astype(eps.dtype) * eps,
        )
        return new, info, (q, q1, p1)

    def step(key, state: ChEESState, logdensity_fn):
        new, info, _ = transition(key, state, logdensity_fn)
        return new, info

    def warmup(num_steps: int) -> Warmup:
        del num_steps  # the adaptation runs for as long as warmup lasts; finalize averages

        def w_init(state: ChEESState) -> ChEESWarmupState:
            length = state.params.trajectory_length
            zero = jnp.zeros_like(length)
            return ChEESWarmupState(
                state, da_init(state.params.step_size), jnp.log(length), jnp.log(length), zero, jnp.zeros((), jnp.int32)
            )

        def w_step(key, ws: ChEESWarmupState, logdensity_fn):
            key_init, key_step = _random.split(key, 2)
            state, da = ws.state, ws.dual_averaging
            if step_size is None:  # Stan's heuristic at the first step, pooled in log space
                first = ws.count == 0

                def pooled_guess(_):
                    eps, _ = initial_step_size(key_init, state, logdensity_fn, first)  # (step size, gradients)
                    return jnp.exp(chain_mean(jnp.log(eps))).astype(state.params.step_size.dtype)

                # a branch, not a select: the guess and its collective run at the first step only
                # (under an outer vmap that batches the step count it is a select again, and
                # `first` keeps the search from spending gradients at the other steps)
                eps0 = jax.lax.cond(_same_in_every_chain(first), pooled_guess, lambda _: state.params.step_size, None)
                da = jax.tree_util.tree_map(lambda new, old: jnp.where(first, new, old), da_init(eps0), da)
                state = state._replace(
                    params=state.params._replace(
                        step_size=jnp.where(first, eps0, state.params.step_size),
                        trajectory_length=jnp.where(first, eps0, state.params.trajectory_length),
                    )
                )
                log_length = jnp.where(first, jnp.log(eps0), ws.log_length)
            else:
                log_length = ws.log_length
            params = state.params
            new, info, (q0, q1, p1) = transition(key_step, state, logdensity_fn)
            dtype = params.step_size.dtype

            # the pooled statistics of a step in two collectives (across devices each is a
            # rendezvous): first every mean of this step's values, then those about the means
            ok = (~info.is_divergent & ~info.is_nonfinite).astype(dtype)
            a = jnp.where(ok > 0, info.accept_prob, 0.0).astype(dtype)
            scale = jnp.sqrt(params.inverse_mass)
            z0, z1 = q0 / scale, q1 / scale
            x = flatten(new, logdensity_fn)[0]
            inverse_a, mean_z0, mean_z1, mean = chain_means(
                [1.0 / jnp.maximum(a, 1e-10), z0, z1, x], [ok, None, a, None]
            )

            # step size: dual averaging on the harmonic mean of the acceptance probabilities
            harmonic = 1.0 / inverse_a
            harmonic = jnp.where(jnp.isfinite(harmonic), harmonic, 0.0)
            da = da_update(da, harmonic, target_accept)
            new_eps = jnp.exp(da.log_x).astype(dtype)

            # trajectory length: one Adam step (no momentum) on log T along the ChEES gradient
            c0 = z0 - mean_z0
            c1 = z1 - mean_z1
            t = info.trajectory_length
            g_i = t * (jnp.sum(c1**2) - jnp.sum(c0**2)) * jnp.dot(c1, scale * p1)
            # the pooled ChEES gradient, and the positions' cross-chain variance for the metric
            grad, var = chain_means([jnp.where(a > 0, g_i, 0.0), (x - mean) ** 2], [a, None])
            grad_sq = 0.95 * ws.grad_sq + 0.05 * grad**2
            count = ws.count + 1
            corrected = grad_sq / (1.0 - 0.95 ** count.astype(dtype))
            update = jnp.clip(learning_rate * grad / (jnp.sqrt(corrected) + 1e-8), -MAX_LOG_UPDATE, MAX_LOG_UPDATE)
            good = jnp.isfinite(update)
            log_length = jnp.where(good, log_length + jnp.where(good, update, 0.0), log_length)
            grad_sq = jnp.where(good, grad_sq, ws.grad_sq)
            log_length = jnp.clip(log_length, jnp.log(new_eps), jnp.log(new_eps * max_num_steps))
            weight = count.astype(dtype) ** -0.5
            log_length_avg = (1.0 - weight) * ws.log_length_avg + weight * log_length

            var = jnp.where(jnp.isfinite(var) & (var > 0), var, params.inverse_mass)
            var = (1.0 - weight) * params.inverse_mass + weight * var  # forgets the transient

            new_params = new.params._replace(
                step_size=new_eps, trajectory_length=jnp.exp(log_length), inverse_mass=var.astype(dtype)
            )
            new = new._replace(params=new_params)
            return ChEESWarmupState(new, da, log_length, log_length_avg, grad_sq, count), info

        def w_finalize(ws: ChEESWarmupState) -> ChEESState:
            params = ws.state.params
            eps = da_final(ws.dual_averaging).astype(params.step_size.dtype)
            length = jnp.maximum(jnp.exp(ws.log_length_avg).astype(eps.dtype), eps)
            return ws.state._replace(params=params._replace(step_size=eps, trajectory_length=length))

        return Warmup(w_init, w_step, w_finalize)

    return Kernel(init, step, warmup if adapt else None)


__all__ = ["chees_hmc", "ChEESInfo", "ChEESParams", "ChEESState", "halton"]
