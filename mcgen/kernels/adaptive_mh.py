"""Adaptive Metropolis (Haario, Saksman & Tamminen 2001), adapted in warmup, then frozen.

The proposal is a Gaussian random walk whose covariance follows the empirical covariance of
the chain's own history:

.. math::

    y = x + L z,\\quad z \\sim N(0, I),\\qquad
    L L^\\top = e^{2\\lambda}\\, s_d\\,(\\hat\\Sigma_t + \\varepsilon I),\\qquad s_d = 2.38^2/d ,

where :math:`\\hat\\Sigma_t` is a running (Welford) covariance, :math:`s_d` is the optimal
scaling for Gaussian targets (Gelman, Roberts & Gilks 1996) and :math:`\\varepsilon` keeps the
matrix positive definite.  The global log-scale :math:`\\lambda` is tuned by dual averaging
towards the optimal acceptance rate (the "global adaptive scaling" of Andrieu & Thoms 2008),
which corrects :math:`s_d` on targets far from Gaussian.

Warmup of :math:`n` steps (per chain) runs in two halves.  First half: isotropic random walk
with adapted scale; the covariance estimate collects draws from step :math:`n/4` on (the first
quarter is discarded as burn-in).  Second half: the Haario proposal above, its covariance
refreshed every step from the growing estimate, with a restarted dual averaging of
:math:`\\lambda`.  At the end of warmup the proposal is frozen, so the draws ``run_chains``
returns come from a fixed :math:`\\pi`-invariant kernel: adaptation never touches them.

The covariance is only as good as the number of effective draws behind it, and a random walk
takes few: in 10 dimensions (``testing.correlated_gaussian(10, 0.5)``) the proposal learned in
1000 warmup steps is typically *worse* than the target's own diagonal would be (Roberts and
Rosenthal's suboptimality factor :math:`b`, 1 for a proposal proportional to the covariance:
median 1.24 over 256 chains, against 1.14 for the diagonal), 2000 steps give 1.07 and 4000
give 1.025; :math:`b - 1` roughly halves each time warmup doubles.  Give it warmup in the
thousands, growing with the dimension.

References
----------
Haario, H., Saksman, E. and Tamminen, J. (2001). An adaptive Metropolis algorithm.
Bernoulli 7(2), 223–242.
Andrieu, C. and Thoms, J. (2008). A tutorial on adaptive MCMC. Stat. Comput. 18, 343–373.
Roberts, G. O. and Rosenthal, J. S. (2009). Examples of adaptive MCMC. J. Comput. Graph.
Stat. 18(2), 349–367.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mcgen.adaptation.dual_averaging import DualAveragingState, da_final, da_init, da_update
from mcgen.adaptation.welford import WelfordState, welford_covariance, welford_init, welford_update
from mcgen.kernels._proposal import cached_constructor, random_walk_move, scalar_logdensity, select
from mcgen.kernels.rwmh import RWMHInfo, optimal_acceptance
from mcgen.types import Kernel, Warmup


class AdaptiveMHParams(NamedTuple):
    chol: jax.Array  # (d, d) lower Cholesky factor of the proposal covariance


class AdaptiveMHState(NamedTuple):
    position: object
    logdensity: jax.Array
    params: AdaptiveMHParams


class AdaptiveMHWarmupState(NamedTuple):
    state: AdaptiveMHState
    covariance: WelfordState
    dual_averaging: DualAveragingState
    count: jax.Array  # warmup steps taken


@cached_constructor
def adaptive_mh(
    initial_scale: float | None = None,
    *,
    regularization: float = 1e-6,
    target_accept: float | None = None,
    adapt_scale: bool = True,
) -> Kernel:
    """Haario–Saksman–Tamminen adaptive Metropolis.

    Parameters
    ----------
    initial_scale
        Standard deviation of the isotropic proposal used before a covariance estimate
        exists (default :math:`2.38/\\sqrt{d}`).
    regularization
        :math:`\\varepsilon` added to the diagonal of the covariance estimate.
    target_accept
        Acceptance rate for the global-scale adaptation (default 0.44 in 1-d to 0.234).
    adapt_scale
        Tune the global scale :math:`\\lambda` by dual averaging; ``False`` keeps Haario's
        plain :math:`2.38^2/d` scaling.

    Returns
    -------
    Kernel
        Its ``state.params.chol`` is the Cholesky factor of the proposal covariance; set it
        directly to run a fixed-covariance random walk.
    """
    if not regularization >= 0.0:
        raise ValueError(f"adaptive_mh: regularization must be >= 0, got {regularization!r}")
    if initial_scale is not None and not initial_scale > 0.0:
        raise ValueError(f"adaptive_mh: initial_scale must be positive, got {initial_scale!r}")

    def init(position, logdensity_fn) -> AdaptiveMHState:
        flat, _ = ravel_pytree(position)
        d = flat.shape[0]
        s = 2.38 / jnp.sqrt(d) if initial_scale is None else initial_scale
        chol = jnp.asarray(s, flat.dtype) * jnp.eye(d, dtype=flat.dtype)
        return AdaptiveMHState(position, scalar_logdensity(logdensity_fn, position), AdaptiveMHParams(chol))

    def step(key, state: AdaptiveMHState, logdensity_fn):
        position, logdensity, accept_prob, is_accepted, is_nonfinite = random_walk_move(
            key, state.position, state.logdensity, logdensity_fn, lambda z: state.params.chol @ z
        )
        return (AdaptiveMHState(position, logdensity, state.params), RWMHInfo(accept_prob, is_accepted, is_nonfinite))

    def warmup(num_steps: int) -> Warmup:
        start_collect, start_haario = num_steps // 4, num_steps // 2

        def haario_chol(cov_state: WelfordState, log_scale: jax.Array) -> jax.Array:
            d = cov_state.mean.shape[0]
            cov = welford_covariance(cov_state, regularize=False)
            cov = cov + regularization * jnp.eye(d, dtype=cov.dtype)
            return jnp.exp(log_scale) * jnp.sqrt(2.38**2 / d) * jnp.linalg.cholesky(cov)

        def w_init(state: AdaptiveMHState) -> AdaptiveMHWarmupState:
            flat, _ = ravel_pytree(state.position)
            d = flat.shape[0]
            scale0 = state.params.chol[0, 0]  # isotropic start: chol = scale * I
            return AdaptiveMHWarmupState(
                state, welford_init(d, True, flat.dtype), da_init(scale0, 1.0), jnp.zeros((), jnp.int32)
            )

        def w_step(key, ws: AdaptiveMHWarmupState, logdensity_fn):
            state, info = step(key, ws.state, logdensity_fn)
            flat, _ = ravel_pytree(state.position)
            d = flat.shape[0]
            count = ws.count + 1
            cov = select(count > start_collect, welford_update(ws.covariance, flat), ws.covariance)
            target = target_accept or optimal_acceptance(d)
            da = da_update(ws.dual_averaging, info.accept_prob, target) if adapt_scale else ws.dual_averaging
            # At the switch to the Haario proposal, restart dual averaging from lambda = 0.
            da = select(count == start_haario, da_init(jnp.ones((), flat.dtype), 1.0), da)
            in_haario = count >= start_haario
            iso = jnp.exp(da.log_x) * jnp.eye(d, dtype=flat.dtype)
            chol = jnp.where(in_haario, haario_chol(cov, da.log_x), iso)
            state = state._replace(params=AdaptiveMHParams(chol.astype(flat.dtype)))
            return AdaptiveMHWarmupState(state, cov, da, count), info

        def w_finalize(ws: AdaptiveMHWarmupState) -> AdaptiveMHState:
            flat, _ = ravel_pytree(ws.state.position)
            d = flat.shape[0]
            log_scale = jnp.log(da_final(ws.dual_averaging)) if adapt_scale else jnp.zeros((), flat.dtype)
            enough = (ws.count > start_haario) & (ws.covariance.count >= 2)
            iso = jnp.exp(log_scale) * jnp.eye(d, dtype=flat.dtype)
            chol = jnp.where(enough, haario_chol(ws.covariance, log_scale), iso)
            return ws.state._replace(params=AdaptiveMHParams(chol.astype(flat.dtype)))

        return Warmup(w_init, w_step, w_finalize)

    return Kernel(init, step, warmup)
