"""Langevin kernels: unadjusted (ULA) and Metropolis-adjusted (MALA).

Both discretize the overdamped Langevin diffusion
:math:`dX_t = \\tfrac12 A \\nabla\\log\\pi(X_t)\\,dt + A^{1/2} dW_t`, whose stationary law
is :math:`\\pi`, with the Euler–Maruyama step of size :math:`\\epsilon^2`:

.. math::

    y = x + \\tfrac{\\epsilon^2}{2} A \\nabla\\log\\pi(x) + \\epsilon A^{1/2} \\xi,
    \\qquad \\xi \\sim N(0, I),

with a preconditioner :math:`A` (the inverse mass matrix; :math:`I` for ULA).  This is
exactly one leapfrog step of HMC, so MALA's ``step_size`` means what HMC's does.

**ULA** takes :math:`y` as the next state.  It is *biased by design*: the chain's stationary
law is not :math:`\\pi` but a perturbation of it, with an error of order :math:`\\epsilon^2`
in the moments (for :math:`\\pi = N(0, \\sigma^2)` ULA's stationary variance is
:math:`\\sigma^2 / (1 - \\epsilon^2 / (4\\sigma^2))`), and it diverges if :math:`\\epsilon`
is too large.  It needs only the score :math:`\\nabla\\log\\pi`, never the log-density, so
it runs from a learned score network: use :func:`ula_step` directly, or
``ula(step_size, from_score=True)``, whose ``step`` takes a score function in place of the
log-density.

**MALA** (Roberts & Tweedie 1996) corrects the discretization with a Metropolis–Hastings
step, :math:`q(y \\mid x) = N(y;\\ x + \\tfrac{\\epsilon^2}{2} A\\nabla\\log\\pi(x),\\
\\epsilon^2 A)`,

.. math::

    \\alpha = \\min\\Big(1, \\frac{\\pi(y)\\, q(x \\mid y)}{\\pi(x)\\, q(y \\mid x)}\\Big),

so it is exact.  Warmup tunes :math:`\\epsilon` by dual averaging towards an acceptance rate
of 0.574 (Roberts & Rosenthal 1998's optimum) and :math:`A` by Stan's windowed schedule.

References
----------
Roberts, G. O. and Tweedie, R. L. (1996). Exponential convergence of Langevin distributions
and their discrete approximations. Bernoulli 2, 341–363.
Roberts, G. O. and Rosenthal, J. S. (1998). Optimal scaling of discrete approximations to
Langevin diffusions. J. R. Stat. Soc. B 60, 255–268.
Durmus, A. and Moulines, É. (2017). Nonasymptotic convergence analysis for the unadjusted
Langevin algorithm. Ann. Appl. Probab. 27, 1551–1587.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

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
from mcgen.kernels._integrators import fenced, flat_value_and_grad
from mcgen.kernels._metrics import check_mass, check_step_size, inverse_mass_quadratic, sqrt_inverse_mass, velocity
from mcgen.kernels._proposal import cached_constructor, mh_accept, select
from mcgen.types import Kernel


def ula_step(key, position, score_fn: Callable, step_size) -> Any:
    """One unadjusted Langevin step :math:`x + \\tfrac{\\epsilon^2}{2} s(x) + \\epsilon\\xi`.

    Parameters
    ----------
    key
        PRNG key.
    position
        Any pytree.
    score_fn
        ``score_fn(position) -> pytree like position``: :math:`\\nabla\\log\\pi` (a score
        network, or ``jax.grad(logdensity_fn)``).
    step_size
        :math:`\\epsilon > 0` (the noise scale; the drift is :math:`\\epsilon^2/2` times the score).
    """
    flat, unravel = ravel_pytree(position)
    score, _ = ravel_pytree(score_fn(position))
    noise = _random.normal(key, flat.shape, flat.dtype)
    return unravel(flat + 0.5 * step_size**2 * score.astype(flat.dtype) + step_size * noise)


class ULAParams(NamedTuple):
    step_size: jax.Array


class ULAState(NamedTuple):
    position: Any
    logdensity: jax.Array
    logdensity_grad: Any
    params: ULAParams


class ScoreULAState(NamedTuple):
    position: Any
    params: ULAParams


class ULAInfo(NamedTuple):
    step_size: jax.Array
    num_grad_evals: jax.Array


class MALAInfo(NamedTuple):
    accept_prob: jax.Array
    is_accepted: jax.Array
    is_nonfinite: jax.Array
    num_grad_evals: jax.Array
    step_size: jax.Array


@cached_constructor
def ula(step_size: float, *, from_score: bool = False) -> Kernel:
    """Unadjusted Langevin algorithm: biased, no accept step, fixed step size.

    Parameters
    ----------
    step_size
        :math:`\\epsilon > 0`.  The bias of the stationary law grows like :math:`\\epsilon^2`.
    from_score
        If True, ``init(position, score_fn)`` and ``step(key, state, score_fn)`` take a score
        function ``score_fn(position) -> pytree like position`` instead of a log-density,
        and the state holds no log-density.

    Returns
    -------
    Kernel
        Without warmup: ULA has nothing to adapt (a larger step is only more biased).
    """
    if step_size is None:
        raise ValueError("ula: step_size is required (ULA is biased; choose it for the accuracy you need)")
    check_step_size(step_size, "ula")
    one = jnp.ones((), jnp.int32)

    if from_score:

        def init_score(position, logdensity_fn) -> ScoreULAState:
            del logdensity_fn  # the score function: ULA needs no log-density
            flat, _ = ravel_pytree(position)
            return ScoreULAState(position, ULAParams(jnp.asarray(step_size, flat.dtype)))

        def step_score(key, state: ScoreULAState, logdensity_fn):  # here the score function
            eps = state.params.step_size
            return ScoreULAState(ula_step(key, state.position, logdensity_fn, eps), state.params), ULAInfo(eps, one)

        return Kernel(init_score, step_score, None)

    def init(position, logdensity_fn) -> ULAState:
        flat, unravel = ravel_pytree(position)
        logdensity, grad = flat_value_and_grad(logdensity_fn, unravel)(flat)
        return ULAState(
            position, logdensity.astype(flat.dtype), unravel(grad), ULAParams(jnp.asarray(step_size, flat.dtype))
        )

    def step(key, state: ULAState, logdensity_fn):
        eps = state.params.step_size
        position = ula_step(key, state.position, lambda _: state.logdensity_grad, eps)
        flat, unravel = ravel_pytree(position)
        logdensity, grad = flat_value_and_grad(logdensity_fn, unravel)(flat)
        return ULAState(position, logdensity.astype(flat.dtype), unravel(grad), state.params), ULAInfo(eps, one)

    return Kernel(init, step, None)


@cached_constructor
def mala(
    step_size: float | None = None,
    mass: str = "diag",
    *,
    target_accept: float = 0.574,
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
    """Metropolis-adjusted Langevin algorithm (exact for :math:`\\pi`).

    Parameters
    ----------
    step_size
        Starting step size :math:`\\epsilon`, where warmup's dual averaging starts (default 1.0).
    mass
        The inverse mass matrix adapted in warmup: ``"diag"`` (Stan's: the variances of the
        warmup draws), ``"dense"`` (their covariance), ``"grad_diag"`` (a diagonal from the
        draws and their gradients, the Fisher-divergence optimum of Seyboldt et al. 2026) or
        ``"low_rank"`` (that diagonal corrected along a few directions fitted to the draws and
        gradients, applied in :math:`O(dk)`: :mod:`mcgen.adaptation.low_rank`).
    target_accept
        Acceptance rate targeted by dual averaging.
    adapt
        Adapt step size and preconditioner in warmup (default).
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
    check_step_size(step_size, "mala")
    check_mass(mass, "mala")
    check_target_accept(target_accept, "mala")
    check_warmup_pool(warmup_pool, "mala")
    check_warmup_schedule(warmup_schedule, "mala")
    low_rank = low_rank_settings(
        mass_rank, mass_eigval_cutoff, mass_buffer, "mala", mass_min_draws, mass_holdout, mass_gamma
    )
    one = jnp.ones((), jnp.int32)

    def init(position, logdensity_fn) -> GradientState:
        return gradient_init(position, logdensity_fn, step_size, mass, mass_rank)

    def step(key, state: GradientState, logdensity_fn):
        key_proposal, key_accept = _random.split(key)
        x, gx, f, unravel = flatten(state, logdensity_fn)
        f = fenced(f)
        inverse_mass, eps = state.params.inverse_mass, state.params.step_size
        quad = inverse_mass_quadratic(inverse_mass)

        def drift(z, gz):
            return z + 0.5 * eps**2 * velocity(inverse_mass, gz)

        noise = _random.normal(key_proposal, x.shape, x.dtype)
        y = drift(x, gx) + eps * sqrt_inverse_mass(inverse_mass)(noise)
        logdensity_y, gy = f(y)
        log_q_forward = -0.5 * jnp.dot(noise, noise)  # (y - drift(x))^T A^{-1} (y - drift(x)) / eps^2
        log_q_reverse = -0.5 * quad(x - drift(y, gy)) / eps**2
        log_ratio = logdensity_y - state.logdensity + log_q_reverse - log_q_forward
        do_accept, accept_prob, is_nonfinite = mh_accept(key_accept, log_ratio, logdensity_y)
        new = select(do_accept, rebuild(state, unravel, y, logdensity_y, gy), state)
        return new, MALAInfo(accept_prob, do_accept, is_nonfinite, one, eps)

    warmup = gradient_warmup(step, target_accept, mass, warmup_schedule, low_rank, pool=warmup_pool) if adapt else None
    return Kernel(init, step, warmup)
