"""The windowed warmup's collapse guard: a chain whose step size collapses in the initial buffer goes back to its start.

What the guard answers: on the Inference Gym's log-Gaussian Cox process one chain in a few
hundred (in Stan's, BlackJAX's and mcgen's warmup alike) is thrown by one energetic first
trajectory into a region where the float32 log-density is rounding noise; dual averaging then
drives its step size to 1e-7 and the chain never comes back.  That target needs
``inference-gym`` and minutes, so it is measured in ``benchmarks/`` (``bench_chain_groups.py``);
here a stub kernel reproduces the mechanism exactly: its first transition at a step size that
works throws the chain into a trap where only a step size below 1e-9 is accepted.

Checked: the chain comes back (and with the guard off it does not: the test can fail); the
restart puts back the start's position and log-density and restarts dual averaging at the
step size that worked; the number of restarts is bounded and they happen only in the initial
buffer; and on ordinary targets (a Gaussian with scales 0.01 to 100, Neal's funnel with the
low-rank and the diagonal metric) the guard never fires.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen.adaptation.window import window_adaptation

TRAP = 100.0  # positions at or beyond this are the trap
WORKS = 0.1  # outside the trap, step sizes below this are accepted


class Params(NamedTuple):
    step_size: jax.Array
    inverse_mass: jax.Array
    entries: jax.Array  # how often the chain has been thrown into the trap (kept across a restart, as params are)


class State(NamedTuple):
    position: jax.Array
    logdensity: jax.Array
    params: Params


class _Info(NamedTuple):
    accept_prob: jax.Array
    num_grad_evals: jax.Array


def stub_step(max_entries):
    """A kernel whose chain climbs by 0.01 per accepted transition, and whose first accepted transition
    (up to ``max_entries`` times in all) throws it into the trap, where only step sizes below 1e-9 pass."""

    def step(key, state, logdensity_fn):
        del key
        in_trap = state.position[0] >= TRAP
        eps = state.params.step_size
        accept = jnp.where(in_trap, (eps < 1e-9).astype(jnp.float32), (eps < WORKS).astype(jnp.float32))
        moved = accept > 0
        throw = moved & ~in_trap & (state.params.entries < max_entries)
        position = jnp.where(throw, TRAP + 1.0, jnp.where(moved, state.position + 0.01, state.position))
        params = state.params._replace(entries=state.params.entries + throw.astype(jnp.int32))
        new = State(position, logdensity_fn(position), params)
        return new, _Info(accept, jnp.ones((), jnp.int32))

    return step


def logdensity(x):
    return -0.5 * jnp.sum(x**2)


def run_stub(max_entries, num_steps=200, stop=None, **kwargs):
    """The stub's warmup of ``num_steps`` from -3, stepped one transition at a time (the first
    ``stop`` only, if given): the warmup, its last state and (position, step size, acceptance) per step."""
    warm = window_adaptation(stub_step(max_entries), num_steps, target_accept=0.8, **kwargs)
    x0 = jnp.asarray([-3.0], jnp.float32)
    state = State(
        x0, logdensity(x0), Params(jnp.ones((), jnp.float32), jnp.ones(1, jnp.float32), jnp.zeros((), jnp.int32))
    )
    ws = warm.init(state)
    step = jax.jit(lambda k, s: warm.step(k, s, logdensity))
    history = []
    for t in range(num_steps if stop is None else stop):
        ws, info = step(jax.random.key(t), ws)
        history.append((float(ws.state.position[0]), float(jnp.exp(ws.dual_averaging.log_x)), float(info.accept_prob)))
    return warm, ws, history


def test_chain_thrown_into_a_trap_comes_back():
    _, ws, history = run_stub(max_entries=1)
    restarted = np.asarray(ws.trace.restarted)
    assert restarted.sum() == 1
    (at,) = np.flatnonzero(restarted)
    assert at < 75  # in the initial buffer (Stan's 75 steps)
    assert history[at - 1][0] >= TRAP  # it was in the trap
    assert history[at][0] == -3.0  # and is back at its start
    final_position, final_step = history[-1][0], history[-1][1]
    assert final_position < TRAP
    assert 0.01 < final_step < 1.0  # dual averaging near the step sizes that work (below 0.1)


def test_without_the_guard_the_chain_stays_in_the_trap():
    # the same run with the guard off: the failure the guard prevents (so the test above can fail)
    _, ws, history = run_stub(max_entries=1, collapse_restarts=0)
    assert not np.asarray(ws.trace.restarted).any()
    assert history[-1][0] >= TRAP
    assert history[-1][1] < 1e-5


def test_restart_puts_back_the_start_and_the_working_step_size():
    _, ws, _ = run_stub(max_entries=1)
    (at,) = np.flatnonzero(np.asarray(ws.trace.restarted))
    # the same warmup stopped just after the restart: the whole warmup state there
    _, ws2, _ = run_stub(max_entries=1, stop=at + 1)
    assert float(ws2.state.position[0]) == -3.0
    assert float(ws2.state.logdensity) == pytest.approx(-4.5)
    working = float(ws2.guard.working)
    assert working < WORKS and working > 0.01  # the largest step size accepted before the trap
    assert float(jnp.exp(ws2.dual_averaging.log_x)) == pytest.approx(working, rel=1e-6)
    assert int(ws2.dual_averaging.count) == 0  # dual averaging starts afresh
    assert int(ws2.state.params.entries) == 1  # params (the metric) are the current ones, not the start's


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_restarts_are_bounded_and_only_in_the_initial_buffer(limit):
    _, ws, history = run_stub(max_entries=100, collapse_restarts=limit)
    restarted = np.asarray(ws.trace.restarted)
    assert restarted.sum() == limit
    assert np.flatnonzero(restarted).max() < 75
    assert history[-1][0] >= TRAP  # thrown in every time: after the last restart it stays


def test_bad_setting_is_refused():
    with pytest.raises(ValueError, match="collapse_restarts"):
        window_adaptation(stub_step(1), 100, target_accept=0.8, collapse_restarts=-1)


def _funnel(x):
    v, z = x[0], x[1:]
    return -0.5 * v**2 / 9.0 - 0.5 * jnp.sum(z**2) * jnp.exp(-v) - 0.5 * z.shape[0] * v


def _scaled_gaussian(x):
    return -0.5 * jnp.sum((x / jnp.logspace(-2, 2, x.shape[0])) ** 2)


@pytest.mark.parametrize(
    "target, dim, mass",
    [(_scaled_gaussian, 8, "low_rank"), (_funnel, 10, "low_rank"), (_funnel, 10, "diag")],
    ids=["scaled_gaussian", "funnel_low_rank", "funnel_diag"],
)
def test_guard_never_fires_on_ordinary_targets(target, dim, mass):
    # a false alarm would send a healthy chain back to its start; none in 8 chains from Stan's
    # uniform(-2, 2) starts, where the scales span 1e4 or the funnel's neck is entered
    res = mc.run_chains(
        target,
        mc.nuts(mass=mass),
        init=jnp.asarray(np.random.default_rng(3).uniform(-2, 2, (8, dim)), jnp.float32),
        init_batched=True,
        num_chains=8,
        num_warmup=300,
        num_samples=10,
        seed=4,
        progress=False,
        warn=False,
    )
    assert res.warmup_stats["restarted"].shape == (8, 300)
    assert not res.warmup_stats["restarted"].any()
    np.testing.assert_array_equal(res.chain_summary()["restarts"], np.zeros(8))


def test_chain_summary_counts_restarts():
    draws = np.random.default_rng(0).standard_normal((3, 50))
    table = mc.diagnostics.chain_summary(draws, {}, warmup_restarts=np.asarray([0, 2, 0]))
    assert table["restarts"].tolist() == [0, 2, 0]
