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
import jax.extend
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


# When a log-density's value and gradient run behind a fusion fence (see `fenced`), measured
# per NUTS leaf, fenced / not, in us (`benchmarks/bench_nuts_leaf.py --fence on|off`).
# - Large programs always pay (4 chains): Inference Gym stochastic volatility (12,189
#   equations) 54 / 143, Brownian motion (2,457) 7.8 / 18.5, eight schools (225) 3.4 / 4.2,
#   item response theory (206) 1215 / 1490: at least FENCE_MIN_EQUATIONS equations, fenced.
# - Small elementwise programs pay too: Neal's funnel 10-d (23 equations) 3.2 / 4.1 at 4
#   chains, 47 / 65 at 128; a 100-d Gaussian (9) 7.1 / 9.0 and 151 / 200; a 1000 x 25
#   logistic regression (47, a matrix-vector product) 29 / 31 and 756 / 751.
# - A small program of a few linear-algebra operations that never fuse pays the ``cond`` for
#   nothing: the Gym's ill-conditioned Gaussian (78 equations, two triangular solves) 15.9 /
#   14.3 at 4 chains, 90 / 80 at 32, 356 / 295 at 128.  Such a program of fewer than
#   FENCE_MIN_EQUATIONS equations is not fenced.
FENCE_MIN_EQUATIONS = 100
NEVER_FUSED = frozenset({"triangular_solve", "cholesky", "lu", "qr", "eigh", "svd", "schur", "custom_linear_solve"})
FENCE: bool | None = None  # None: decided by `fence_pays`; True / False force it (tests, benchmarks)


def program_size(jaxpr) -> int:
    """Equations of a jaxpr, those of its sub-jaxprs (loops, conds, custom rules) included."""
    return sum(1 for _ in _equations(jaxpr))


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _equations(inner)


def fence_pays(jaxpr) -> bool:
    """Whether a log-density (value and gradient) runs behind a fence.

    Always, except for a program of fewer than ``FENCE_MIN_EQUATIONS`` equations that contains
    a linear-algebra operation XLA never fuses (a triangular solve, a factorization): there the
    unfused operations dominate and the ``cond`` costs more than the fusion it prevents.
    ``FENCE`` (not ``None``) overrides the choice.
    """
    if FENCE is not None:
        return FENCE
    equations = list(_equations(jaxpr))
    if len(equations) >= FENCE_MIN_EQUATIONS:
        return True
    return not any(eqn.primitive.name in NEVER_FUSED for eqn in equations)


def fenced(f: FlatValueAndGrad) -> FlatValueAndGrad:
    """``f`` evaluated behind a fusion boundary: its value and gradient are computed once.

    XLA:CPU fuses cheap elementwise work into its consumers and, when a consumer is a wide
    update (the accept ``select`` of a whole state, a momentum update), recomputes the fused
    producer for every element.  A log-density that is a long program of scalar operations (a
    time series, an ODE) is then evaluated many times per step.  A ``cond`` is a boundary XLA
    does not fuse across, so ``f`` runs inside one whose predicate always holds yet is opaque
    to the compiler (``any(q == q) | all(q != q)`` is true whether or not ``q`` has NaNs).
    Under ``vmap`` a custom batching rule keeps the predicate unbatched (a batched predicate
    would turn the ``cond`` into a ``select`` of both branches); values ``f`` closes over
    may be batched too.  The arithmetic is unchanged, so results are bitwise those of ``f``.
    A ``cond`` costs about a microsecond per call, more than it saves on a small log-density
    of a few linear-algebra operations, which is therefore called as it is
    (:func:`fence_pays`).
    """

    def call(q):
        closed = jax.make_jaxpr(f)(q)
        jaxpr = closed.jaxpr
        if not fence_pays(jaxpr):
            return f(q)

        def fun(consts, x):
            return tuple(jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(jaxpr, consts))(x))

        def behind(fn, x, batch: tuple = ()):
            # the output shapes are known from the jaxpr: no second trace of the log-density
            idle = lambda _: tuple(jnp.zeros(batch + a.shape, a.dtype) for a in closed.out_avals)  # noqa: E731
            return jax.lax.cond(jnp.any(x == x) | jnp.all(x != x), fn, idle, x)  # idle: never taken

        @jax.custom_batching.custom_vmap
        def run(x, consts):
            return behind(lambda y: fun(consts, y), x)

        @run.def_vmap
        def run_batched(axis_size, in_batched, x, consts):
            x_batched, consts_batched = in_batched
            if not x_batched:
                x = jnp.broadcast_to(x, (axis_size,) + x.shape)
            mapped = jax.vmap(fun, in_axes=([0 if b else None for b in consts_batched], 0))
            out = behind(lambda y: mapped(consts, y), x, (axis_size,))
            return out, tuple(True for _ in out)

        return run(q, list(closed.consts))

    return call


def leapfrog(f: FlatValueAndGrad, inverse_mass, q, p, g, step_size):
    """One velocity-Verlet step; returns ``(q, p, logdensity, grad)`` at the new point."""
    half = 0.5 * step_size
    p = p + half * g
    q = q + step_size * velocity(inverse_mass, p)
    logdensity, g = f(q)
    p = p + half * g
    return q, p, logdensity, g


def integrate(f: FlatValueAndGrad, inverse_mass, q, p, logdensity, g, step_size, num_steps: int | jax.Array):
    """``num_steps`` leapfrog steps (a ``fori_loop``); returns the end point."""

    def body(_, carry):
        q, p, _, g = carry
        return leapfrog(f, inverse_mass, q, p, g, step_size)

    return jax.lax.fori_loop(0, num_steps, body, (q, p, logdensity, g))


def hamiltonian(logdensity, p, inverse_mass):
    """:math:`H = -\\log\\pi + K`; NaN (and a log-density of ``+inf``) become ``+inf``."""
    h = -logdensity + kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)
    return jnp.where(jnp.isnan(h) | (logdensity == jnp.inf), jnp.inf, h)


def find_reasonable_step_size(
    key, f: FlatValueAndGrad, inverse_mass, q, logdensity, g, step_size, active, target: float = 0.8
):
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
