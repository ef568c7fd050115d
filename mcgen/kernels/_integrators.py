"""Leapfrog integration on flattened positions, and Stan's step-size initialization.

The gradient kernels work on a flat vector :math:`q` (``ravel_pytree`` of the position) with
the log-density and its gradient evaluated together, once per step, and carried along: a
leapfrog step never recomputes what the previous step already knows.

The leapfrog (velocity Verlet) step of size :math:`\\epsilon` for
:math:`H(q, p) = -\\log\\pi(q) + \\tfrac12 p^\\top A p` is

.. math::

    p_{1/2} = p + \\tfrac{\\epsilon}{2} \\nabla\\log\\pi(q),\\qquad
    q' = q + \\epsilon\\, A\\, p_{1/2},\\qquad
    p' = p_{1/2} + \\tfrac{\\epsilon}{2} \\nabla\\log\\pi(q') .

It is symplectic and time-reversible, which is what makes the Metropolis correction of HMC
and NUTS exact; its energy error is :math:`O(\\epsilon^2)` over a trajectory.  A negative
:math:`\\epsilon` integrates backwards in time.

:func:`find_reasonable_step_size` is Stan's heuristic (Hoffman & Gelman 2014, algorithm 4):
from one position, with fresh momenta, double (or halve) :math:`\\epsilon` until the
acceptance probability of a single leapfrog step crosses 0.8.

References
----------
Leimkuhler, B. and Reich, S. (2004). Simulating Hamiltonian Dynamics. Cambridge Univ. Press.
Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn Sampler. JMLR 15, 1593–1623.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mcgen.kernels._metrics import kinetic_energy, momentum_sampler, velocity
from mcgen.kernels._proposal import scalar_logdensity

FlatValueAndGrad = Callable[[jax.Array], tuple[jax.Array, jax.Array]]

# Bounds of the step-size search: 2**40 either way covers every sensible scale, and stops a
# target with a flat or broken log-density from looping for ever.
_MAX_HALVINGS = 40


def flat_value_and_grad(logdensity_fn: Callable, unravel: Callable) -> FlatValueAndGrad:
    """``f(q) -> (log pi, grad log pi)`` on the flattened position ``q``."""
    return jax.value_and_grad(lambda q: scalar_logdensity(logdensity_fn, unravel(q)))


def leapfrog(f: FlatValueAndGrad, inverse_mass, q, p, g, step_size):
    """One velocity-Verlet step; returns ``(q, p, logdensity, grad)`` at the new point."""
    half = 0.5 * step_size
    p = p + half * g
    q = q + step_size * velocity(inverse_mass, p)
    logdensity, g = f(q)
    p = p + half * g
    return q, p, logdensity, g


def integrate(f: FlatValueAndGrad, inverse_mass, q, p, logdensity, g, step_size, num_steps: int):
    """``num_steps`` leapfrog steps (a ``fori_loop``); returns the end point."""

    def body(_, carry):
        q, p, _, g = carry
        return leapfrog(f, inverse_mass, q, p, g, step_size)

    return jax.lax.fori_loop(0, num_steps, body, (q, p, logdensity, g))


def hamiltonian(logdensity, p, inverse_mass):
    """:math:`H = -\\log\\pi + K`; NaN (and a log-density of ``+inf``) become ``+inf``."""
    h = -logdensity + kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)
    return jnp.where(jnp.isnan(h) | (logdensity == jnp.inf), jnp.inf, h)


def find_reasonable_step_size(key, f: FlatValueAndGrad, inverse_mass, q, logdensity, g, step_size,
                              active, target: float = 0.8):
    """Stan's step-size initialization, run only where ``active`` (else no gradient is spent).

    One leapfrog step from ``q`` with a fresh momentum gives :math:`\\Delta H`; if its
    acceptance :math:`e^{-\\Delta H}` exceeds ``target`` the step size doubles until it does
    not, otherwise it halves until it does.  The first step size across the boundary is
    returned with the number of gradients spent (one per try).  Inside ``vmap`` the loop
    runs zero iterations when no chain is active.
    """
    sample_p = momentum_sampler(inverse_mass)
    log_target = jnp.log(jnp.asarray(target, step_size.dtype))

    def log_accept(i, eps):
        p = sample_p(jax.random.fold_in(key, i))
        h0 = hamiltonian(logdensity, p, inverse_mass)
        _, p1, logdensity1, _ = leapfrog(f, inverse_mass, q, p, g, eps)
        return h0 - hamiltonian(logdensity1, p1, inverse_mass)

    def cond(carry):
        i, _, _, done = carry
        return active & ~done & (i < _MAX_HALVINGS)

    def body(carry):
        i, eps, direction, _ = carry
        up = log_accept(i, eps) > log_target
        direction = jnp.where(i == 0, jnp.where(up, 1, -1), direction)
        crossed = (i > 0) & jnp.where(direction > 0, ~up, up)
        factor = jnp.where(direction > 0, 2.0, 0.5).astype(eps.dtype)
        return i + 1, jnp.where(crossed, eps, eps * factor), direction, crossed

    init = (jnp.zeros((), jnp.int32), step_size, jnp.ones((), jnp.int32), jnp.zeros((), bool))
    num_iterations, eps, _, _ = jax.lax.while_loop(cond, body, init)
    return eps, num_iterations  # one gradient per iteration
