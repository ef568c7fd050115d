"""Gaussian random-walk Metropolis.

From :math:`x` propose :math:`y = x + s\\,z` with :math:`z \\sim N(0, I)` (on the flattened
position) and accept with probability :math:`\\min(1, \\pi(y)/\\pi(x))`: the proposal is
symmetric, so its density cancels.

The scale :math:`s` is a tunable and lives in ``state.params.scale`` (one per chain).  The
default starting value is :math:`2.38/\\sqrt{d}`, optimal for a standard Gaussian target in
high dimension (Roberts, Gelman & Gilks 1997).  During warmup ``run_chains`` adapts :math:`s`
per chain by dual averaging of :math:`\\log s` towards the acceptance rate that is optimal for
Gaussian-like targets: 0.44 in one dimension, falling to 0.234 as :math:`d` grows (Gelman,
Roberts & Gilks 1996; Roberts & Rosenthal 2001).  The scale is then frozen, so the returned
draws come from a fixed, :math:`\\pi`-invariant kernel.

References
----------
Roberts, G. O., Gelman, A. and Gilks, W. R. (1997). Weak convergence and optimal scaling of
random walk Metropolis algorithms. Ann. Appl. Probab. 7, 110–120.
Gelman, A., Roberts, G. O. and Gilks, W. R. (1996). Efficient Metropolis jumping rules.
Bayesian Statistics 5, 599–607.

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), mc.rwmh(), init=jnp.zeros(3),
...                     num_chains=4, num_samples=500, progress=False)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.kernels._proposal import cached_constructor, random_walk_move, scalar_logdensity
from mcgen.types import Kernel, Warmup

# Optimal acceptance rates of random-walk Metropolis on Gaussian targets by dimension
# (Gelman, Roberts & Gilks 1996, table 1); 0.234 is the d -> infinity limit.
_OPTIMAL_ACCEPT = {1: 0.44, 2: 0.35, 3: 0.32, 4: 0.29, 5: 0.28}


def optimal_acceptance(dim: int) -> float:
    """The asymptotically optimal random-walk acceptance rate for a ``dim``-d target."""
    return _OPTIMAL_ACCEPT.get(dim, 0.234)


class RWMHParams(NamedTuple):
    scale: jax.Array  # proposal standard deviation, scalar


class RWMHState(NamedTuple):
    position: object
    logdensity: jax.Array
    params: RWMHParams


class RWMHInfo(NamedTuple):
    accept_prob: jax.Array
    is_accepted: jax.Array
    is_nonfinite: jax.Array


class RWMHWarmupState(NamedTuple):
    state: RWMHState
    dual_averaging: DualAveragingState


def _dim(position) -> int:
    return ravel_pytree(position)[0].shape[0]


@cached_constructor
def rwmh(scale: float | None = None, *, target_accept: float | None = None, adapt: bool = True) -> Kernel:
    """Gaussian random-walk Metropolis kernel.

    Parameters
    ----------
    scale
        Initial (and, with ``adapt=False``, fixed) proposal standard deviation.  Default
        :math:`2.38/\\sqrt{d}`.
    target_accept
        Acceptance rate the warmup aims for.  Default: 0.44 in 1-d down to 0.234 for
        :math:`d \\ge 6` (see :func:`optimal_acceptance`).
    adapt
        Adapt the scale during warmup (default).  With ``False`` warmup is plain burn-in.

    Returns
    -------
    Kernel
        ``init(position, logdensity_fn)``, ``step(key, state, logdensity_fn)`` and a warmup.
    """
    if scale is not None and not (float(scale) > 0.0 and jnp.isfinite(scale)):
        raise ValueError(f"rwmh: scale must be a positive finite number, got {scale!r}")
    if target_accept is not None and not 0.0 < target_accept < 1.0:
        raise ValueError(f"rwmh: target_accept must lie in (0, 1), got {target_accept!r}")

    def init(position, logdensity_fn) -> RWMHState:
        flat, _ = ravel_pytree(position)
        s = 2.38 / jnp.sqrt(flat.shape[0]) if scale is None else scale
        return RWMHState(position, scalar_logdensity(logdensity_fn, position), RWMHParams(jnp.asarray(s, flat.dtype)))

    def step(key, state: RWMHState, logdensity_fn):
        position, logdensity, accept_prob, is_accepted, is_nonfinite = random_walk_move(
            key, state.position, state.logdensity, logdensity_fn, lambda z: state.params.scale * z
        )
        return (RWMHState(position, logdensity, state.params), RWMHInfo(accept_prob, is_accepted, is_nonfinite))

    def warmup(num_steps: int) -> Warmup:
        del num_steps  # dual averaging needs no schedule

        def w_init(state: RWMHState) -> RWMHWarmupState:
            return RWMHWarmupState(state, da_init(state.params.scale, mu_factor=1.0))

        def w_step(key, wstate: RWMHWarmupState, logdensity_fn):
            state, info = step(key, wstate.state, logdensity_fn)
            target = target_accept or optimal_acceptance(_dim(state.position))
            da = da_update(wstate.dual_averaging, info.accept_prob, target)
            state = state._replace(params=RWMHParams(jnp.exp(da.log_x).astype(state.params.scale.dtype)))
            return RWMHWarmupState(state, da), info

        def w_finalize(wstate: RWMHWarmupState) -> RWMHState:
            scale_final = da_final(wstate.dual_averaging).astype(wstate.state.params.scale.dtype)
            return wstate.state._replace(params=RWMHParams(scale_final))

        return Warmup(w_init, w_step, w_finalize)

    return Kernel(init, step, warmup if adapt else None)
