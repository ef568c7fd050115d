"""``Result.warmup_stats``: the warmup's cost and the path of its tunables, exactly as spent.

The windowed warmup records, per chain and warmup step, the step size of the transition and
the gradients it spent (Stan's step-size search runs on the warmup's own transitions, so
these are the transitions' gradients), and the diagonal of each metric it set.  Checked here against a step-by-step
replay of the same warmup (the infos of every transition) and against what ``finalize``
hands to sampling; and a run stopped in sampling and resumed from its checkpoint reports
the same record.  Small targets and short warmups: seconds.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
import mcgen._driver.checkpoint as ckpt_module
from mcgen.adaptation import window_schedule

SCALES = jnp.asarray([0.5, 1.0, 3.0, 2.0], jnp.float32)


def logdensity(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


def replay(kernel, num_steps, seed=0):
    """Step the warmup one transition at a time; returns the final warmup state and the infos."""
    w = kernel.warmup(num_steps)
    ws = w.init(kernel.init(jnp.asarray([0.3, -0.2, 1.0, 0.5], jnp.float32), logdensity))
    step = jax.jit(lambda k, s: w.step(k, s, logdensity))
    infos = []
    for t in range(num_steps):
        ws, info = step(jax.random.key(seed * 1000 + t), ws)
        infos.append(jax.device_get(info))
    return w, ws, infos


def _check_searches(step_size, accept, starts, num_steps):
    """Stan's step-size heuristic, run on transitions: from each start the step size doubles
    (if the first trial's acceptance statistic exceeds 0.8) or halves (otherwise) after every
    trial until a trial's statistic crosses 0.8; the next transition runs at the step size of
    the trial that crossed (dual averaging restarts there).  Checked up to the next start."""
    assert starts, "no search to check"
    for s in starts:
        up = accept[s] > 0.8
        factor = 2.0 if up else 0.5
        k = s
        while k + 1 < num_steps and k + 1 not in starts:
            crossed = k > s and (accept[k] > 0.8) != up
            np.testing.assert_allclose(step_size[k + 1], step_size[k] * (1.0 if crossed else factor), rtol=1e-5)
            if crossed:
                break
            k += 1


# (kernel, its starting step size, its target acceptance, it jitters its step size)
KERNELS = {
    "nuts": (lambda: mc.nuts(max_tree_depth=5, mass="diag"), 1.0, 0.8, False),  # Stan's windows
    # dual averaging to a low acceptance: the searches after window ends halve
    "nuts_low_target": (lambda: mc.nuts(max_tree_depth=5, mass="diag", target_accept=0.6), 1.0, 0.6, False),
    "hmc_given_step": (lambda: mc.hmc(4, step_size=0.3), 0.3, 0.65, True),
    "mala_dense": (lambda: mc.mala(mass="dense"), 1.0, 0.574, False),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_trace_matches_the_transitions_it_records(name):
    make, start, target, jittered = KERNELS[name]
    num_steps = 60
    w, ws, infos = replay(make(), num_steps)
    trace = jax.device_get(ws.trace)
    _, ends = window_schedule(num_steps)
    np.testing.assert_array_equal(trace.window_end, np.flatnonzero(ends))
    grads = np.asarray([int(i.num_grad_evals) for i in infos])
    # every gradient is a transition's: the step-size search runs on the warmup's own transitions
    np.testing.assert_array_equal(trace.num_grad_evals, grads)
    # dual averaging starts at the kernel's step size, with no search (a search on transitions
    # from far-off starts lost chains: docs/gradient_kernels.md), and a search follows every window end
    accept = np.asarray([float(i.accept_prob) for i in infos])
    np.testing.assert_allclose(trace.step_size[0], start, rtol=1e-6)
    first_da = np.exp(np.log(10.0 * start) - 1.0 / 0.05 * (target - accept[0]) / 11.0)  # t = 1, t0 = 10
    np.testing.assert_allclose(trace.step_size[1], first_da, rtol=1e-4)
    starts = [int(i) + 1 for i in np.flatnonzero(ends)]
    _check_searches(trace.step_size, accept, sorted(starts), num_steps)
    # the step size recorded is the one each transition used (HMC jitters its own copy by 1 +- 0.5)
    used = np.asarray([float(i.step_size) for i in infos])
    if jittered:
        assert np.all((used >= 0.5 * trace.step_size) & (used <= 1.5 * trace.step_size))
    else:
        np.testing.assert_array_equal(trace.step_size, used)
    # the last metric recorded is the one sampling gets
    final = np.asarray(w.finalize(ws).params.inverse_mass)
    np.testing.assert_array_equal(trace.inverse_mass[-1], final if final.ndim == 1 else np.diagonal(final))


def test_result_reports_the_warmup_per_chain_and_survives_a_resume(tmp_path, monkeypatch):
    settings = dict(
        num_chains=3, num_samples=20, num_warmup=40, chunk_size=10, seed=2, progress=False, warn=False
    )  # 3 chains: the driver pads the batch, the record must not show it
    kernel = mc.mala()
    ref = mc.run_chains(logdensity, kernel, init=jnp.zeros(4), **settings)
    stats = ref.warmup_stats
    assert stats["num_grad_evals"].shape == stats["step_size"].shape == (3, 40)
    num_windows = int(window_schedule(40)[1].sum())
    assert stats["inverse_mass"].shape == (3, num_windows, 4) and stats["window_end"].shape == (3, num_windows)
    np.testing.assert_array_equal(ref.warmup_grad_evals(), stats["num_grad_evals"].sum(1))
    np.testing.assert_array_equal(stats["inverse_mass"][:, -1], np.asarray(ref.last_state.params.inverse_mass))
    assert np.all(ref.warmup_grad_evals() >= 40)

    # stop after the 5th checkpoint (in sampling: 4 warmup chunks), rerun: same record
    original, count = ckpt_module.Checkpointer.save, {"n": 0}

    def save(self, *args, **kwargs):
        original(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module.Checkpointer, "save", save)
    with pytest.raises(KeyboardInterrupt):
        mc.run_chains(logdensity, kernel, init=jnp.zeros(4), checkpoint=tmp_path, checkpoint_every=0, **settings)
    assert json.loads(next(tmp_path.glob("checkpoint-*/manifest.json")).read_text())["phase"] == "sampling"
    monkeypatch.undo()
    resumed = mc.run_chains(logdensity, kernel, init=jnp.zeros(4), checkpoint=tmp_path, checkpoint_every=0, **settings)
    for name in stats:
        np.testing.assert_array_equal(resumed.warmup_stats[name], stats[name])


def test_kernels_without_a_windowed_warmup_report_none():
    res = mc.run_chains(
        logdensity,
        mc.rwmh(),
        init=jnp.zeros(4),
        num_samples=10,
        num_warmup=10,
        progress=False,
        warn=False,
        init_batched=False,
    )
    assert res.warmup_stats is None and res.warmup_grad_evals() is None


def test_search_doubles_or_halves_until_the_statistic_crosses():
    """The search's state machine alone (the warmups above start it only after window ends,
    where it mostly doubles): the first trial sets the direction, the crossing trial ends it."""
    from mcgen.adaptation.window import _search, search_step

    for accepts, factor in (([0.3, 0.5, 0.7, 0.9], 0.5), ([0.95, 0.9, 0.85, 0.4], 2.0)):
        search, eps, path = _search(True), jnp.float32(1.0), []
        for a in accepts:
            assert bool(search.active)
            search, eps = search_step(search, eps, jnp.float32(a))
            path.append(float(eps))
        # three trials move the step size by the factor; the fourth crosses 0.8 and keeps its own
        np.testing.assert_allclose(path, [factor, factor**2, factor**3, factor**3], rtol=1e-6)
        assert not bool(search.active)
