"""NUTS's trajectory length against a plain recursive reference, for both U-turn criteria.

Where a NUTS trajectory stops depends only on the starting point, the momentum and the
doubling directions, not on the multinomial choices.  So for each transition we take the
momentum and directions that mcgen's kernel draws from its key (``nuts_draws``) and rebuild
the trajectory with a short recursive implementation written from the NUTS paper and Stan's
``base_nuts`` (sub-trees checked whole and across their halves, the trajectory checked whole
and across old part and new sub-tree), in float64 NumPy.  mcgen's iterative loop (checkpoint
slots, products stored as scalars, the trapezoid corrections folded into them) must stop at the
same leaf: the gradient count and the depth must agree transition by transition.

One term is not pinned down here: inside a sub-tree, the check of the left half's last leaf
plus the right half decided none of these transitions (nor of a few thousand on 1-, 2- and 5-d
Gaussians at step sizes 0.2-1.5), so a defect confined to it would pass.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen.kernels import _trajectory
from mcgen.kernels._random import nuts_draws
from mcgen.kernels.nuts import nuts

DIM, MAX_DEPTH, STEP = 5, 8, 0.3
N = 800  # transitions, half at step size 0.3 and half at 0.6
PREC = np.diag([1.0, 4.0, 0.25, 2.0, 1.0]) + 0.3 * (np.ones((DIM, DIM)) - np.eye(DIM))
INV_MASS = np.array([1.0, 0.5, 3.0, 0.8, 1.5])


def logdensity(x):  # a correlated Gaussian with a quartic term: no symmetry to hide behind
    return -0.5 * x @ jnp.asarray(PREC, x.dtype) @ x - 0.05 * jnp.sum(x**4)


def grad_np(x):
    return -PREC @ x - 0.2 * x**3


def energy_np(q, p):
    return 0.5 * q @ PREC @ q + 0.05 * np.sum(q**4) + 0.5 * p @ (INV_MASS * p)


def reference(q0, p0, forward, trapezoid: bool, across: bool = True, step: float = STEP):
    """(leapfrog steps, kept doublings) of one NUTS transition, built recursively (``across``:
    with Stan's checks across the halves of every merge); a leaf whose energy error exceeds
    1000 (``nuts``'s default ``max_energy_error``) diverges and stops the trajectory."""
    a, h0 = INV_MASS, energy_np(q0, p0)

    def turning(ps):
        rho = np.sum(ps, axis=0)
        if trapezoid:
            rho = rho - 0.5 * (ps[0] + ps[-1])
        return (a * ps[0]) @ rho <= 0 or (a * ps[-1]) @ rho <= 0

    def leapfrog(s, eps):
        q, p, g = s
        p = p + 0.5 * eps * g
        q = q + eps * a * p
        g = grad_np(q)
        return q, p + 0.5 * eps * g, g

    def build(s, eps, depth):  # leaves in integration order, and whether the sub-tree stopped
        if depth == 0:
            leaf = leapfrog(s, eps)
            return [leaf], not energy_np(leaf[0], leaf[1]) - h0 <= 1000.0
        first, stop = build(s, eps, depth - 1)
        if stop:
            return first, True
        second, stop = build(first[-1], eps, depth - 1)
        if stop:
            return first + second, True
        p1, p2 = [x[1] for x in first], [x[1] for x in second]
        return first + second, turning(p1 + p2) or (across and (turning(p1 + p2[:1]) or turning(p1[-1:] + p2)))

    traj = [(q0, p0, grad_np(q0))]  # in time order
    steps = depth = 0
    while depth < MAX_DEPTH:
        fwd = bool(forward[depth])
        new, stop = build(traj[-1] if fwd else traj[0], step if fwd else -step, depth)
        steps += len(new)
        if stop:
            break
        old, new = traj, (new if fwd else new[::-1])
        bck, front = (old, new) if fwd else (new, old)
        traj = bck + front
        depth += 1
        pb, pf = [x[1] for x in bck], [x[1] for x in front]
        if turning(pb + pf) or (across and (turning(pb + pf[:1]) or turning(pb[-1:] + pf))):
            break
    return steps, depth


@functools.cache
def transitions():
    """Start points, step sizes, and the momenta and directions mcgen draws from each key."""
    rng = np.random.default_rng(0)
    starts = rng.normal(size=(N, DIM)).astype(np.float32)
    steps = np.where(np.arange(N) < N // 2, 0.3, 0.6).astype(np.float32)
    keys = jax.random.split(jax.random.key(1), N)
    z, forward, _, _ = jax.vmap(lambda k: nuts_draws(k, DIM, MAX_DEPTH, jnp.float32))(keys)
    return keys, starts, steps, np.asarray(z, np.float64) / np.sqrt(INV_MASS), np.asarray(forward)


@functools.cache
def references(trapezoid: bool, across: bool = True):
    _, starts, steps, p0, forward = transitions()
    return np.array(
        [reference(starts[i].astype(np.float64), p0[i], forward[i], trapezoid, across, steps[i]) for i in range(N)]
    )


@pytest.mark.parametrize("every_slot", [True, False], ids=["every_slot", "tested_slots"])
@pytest.mark.parametrize("uturn", ["stan", "trapezoid"])
def test_trajectory_length_matches_recursive_reference(uturn, every_slot, monkeypatch):
    """Both ways a leaf reads its checkpoint slots (all of them on small batches, else the ones
    it tests, picked by a switch) build the reference's trees."""
    monkeypatch.setattr(_trajectory, "_EVERY_SLOT_MAX_ELEMENTS", 2**62 if every_slot else -1)
    keys, starts, steps, _, _ = transitions()
    kernel = nuts(max_tree_depth=MAX_DEPTH, adapt=False, uturn=uturn)

    def one(key, x, eps):
        state = kernel.init(x, logdensity)
        params = state.params._replace(step_size=eps, inverse_mass=jnp.asarray(INV_MASS, jnp.float32))
        _, info = kernel.step(key, state._replace(params=params), logdensity)
        return info.num_grad_evals, info.tree_depth

    grads, depth = map(np.asarray, jax.jit(jax.vmap(one))(keys, jnp.asarray(starts), jnp.asarray(steps)))
    ref = references(uturn == "trapezoid")
    assert len(np.unique(ref[:, 1])) >= 3  # trajectories of several lengths
    np.testing.assert_array_equal(grads, ref[:, 0])
    np.testing.assert_array_equal(depth, ref[:, 1])


def test_the_reference_tells_the_criteria_and_checks_apart():
    """The test above can fail: the two criteria stop dozens of these trajectories at
    different leaves (the trapezoid one earlier on average), and for each criterion the checks
    across sub-tree halves change where some of them stop."""
    stan, trap = references(False)[:, 0], references(True)[:, 0]
    assert np.sum(trap != stan) >= 20 and trap.mean() < stan.mean()
    for trapezoid in (False, True):
        assert np.sum(references(trapezoid)[:, 0] != references(trapezoid, across=False)[:, 0]) >= 8
