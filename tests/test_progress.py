"""The progress display: on only where someone watches, compile time apart, honest rate and
time left, the chains' health; drawn between chunks."""

import io

import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen._driver import progress


def test_auto_is_off_when_nobody_watches_and_on_in_a_jupyter_kernel(monkeypatch):
    assert progress.wanted("auto") is False  # pytest captures stderr: not a terminal
    monkeypatch.setattr(progress, "in_jupyter_kernel", lambda: True)
    assert progress.wanted("auto") is True  # a notebook's stderr is no TTY, but someone watches
    assert progress.wanted(False) is False and progress.wanted(True) is True
    with pytest.raises(ValueError, match="progress must be"):
        progress.wanted("yes")


def test_rate_and_time_left_come_from_stepping_time_only():
    out = io.StringIO()
    bar = progress.Progress(True, file=out)
    bar.start("sampling", 1000)
    bar.compiling(True)
    assert "sampling (compiling…)" in out.getvalue()
    stats = {
        "accept_prob": np.full((200, 3), 0.25),
        "is_divergent": np.eye(200, 3, dtype=bool),
        "step_size": np.full((200, 3), 0.5),
    }
    bar.compiling(False)
    bar.advance(200, 1.0, stats, np.array([True, True, False]))  # 200 steps in 1 s of stepping
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("sampling: ") and "200/1000" in last
    assert "200 step/s, 00:04 left" in last  # 800 steps left at 200 step/s, whatever the wall clock
    assert "accept 0.25" in last and "step 0.5" in last and "divergences 2" in last  # padding chain 2 left out
    bar.close()


def test_health_counts_transitions_at_the_maximum_tree_depth():
    health = progress.Health()
    reached = np.zeros((50, 3), bool)
    health.add({"reached_max_treedepth": reached, "is_divergent": reached}, np.array([True, True, False]))
    assert "max tree depth" not in health.text()  # shown once there are any
    reached[:10, 1] = True
    reached[:, 2] = True  # a padding chain: left out
    health.add({"reached_max_treedepth": reached, "is_divergent": reached & False}, np.array([True, True, False]))
    assert health.text() == "divergences 0, at max tree depth 10"


def test_a_run_shows_compiling_phases_rate_and_health(capsys, monkeypatch):
    def logdensity(x):
        return -0.5 * jnp.sum(x**2)

    # the sampling program compiled during the warmup (run._compile_ahead) may be ready
    # before sampling starts; without it the sampling chunk always shows its compile.  (HMC's
    # warmup and sampling chunks of one length are one program, mcgen.types.WarmupParts, so
    # sampling compiles nothing; run them as two programs here, and see the one-program
    # display below.)
    monkeypatch.setattr(mc.run, "_compile_ahead", lambda *a, **k: None)
    monkeypatch.setattr(mc.run, "_WHOLE_RUN", False)

    res = mc.run_chains(
        logdensity,
        mc.hmc(num_integration_steps=3),
        init=jnp.zeros(2),
        num_chains=2,
        num_samples=40,
        num_warmup=20,
        chunk_size=10,
        progress=True,
        warn=False,
        init_batched=False,
    )
    err = capsys.readouterr().err
    views = [v for v in err.replace("\n", "\r").split("\r") if v.strip()]
    assert any(v.startswith("warmup (compiling…)") for v in views)
    assert any(v.startswith("sampling (compiling…)") for v in views)
    final = [v for v in views if v.startswith("sampling: 100%")][-1]
    assert "40/40" in final and "step/s, 00:00 left" in final
    # the health is that of the draws returned
    assert f"accept {res.stats['accept_prob'].mean():.2f}" in final
    assert f"step {res.stats['step_size'][:, -1].mean():.3g}" in final
    assert f"divergences {res.stats['is_divergent'].sum()}" in final
    assert any(v.startswith("warmup: 100%") and "20/20" in v for v in views)
    # one program for both phases: sampling shows no compile, and the same bars and health
    monkeypatch.setattr(mc.run, "_WHOLE_RUN", True)
    mc.run.clear_cache()
    again = mc.run_chains(
        logdensity,
        mc.hmc(num_integration_steps=3),
        init=jnp.zeros(2),
        num_chains=2,
        num_samples=40,
        num_warmup=20,
        chunk_size=10,
        progress=True,
        warn=False,
        init_batched=False,
    )
    views = [v for v in capsys.readouterr().err.replace("\n", "\r").split("\r") if v.strip()]
    assert any(v.startswith("warmup (compiling…)") for v in views)
    assert not any(v.startswith("sampling (compiling…)") for v in views)
    final = [v for v in views if v.startswith("sampling: 100%")][-1]
    assert "40/40" in final and f"divergences {again.stats['is_divergent'].sum()}" in final
    mc.run_chains(
        logdensity,
        mc.hmc(num_integration_steps=3),
        init=jnp.zeros(2),
        num_chains=2,
        num_samples=40,
        num_warmup=20,
        chunk_size=10,
        progress=False,
        warn=False,
        init_batched=False,
    )
    assert capsys.readouterr().err == ""
