"""run_chains: shapes, reproducibility, chunking, resuming, input validation, compilation."""

import concurrent.futures

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing

GAUSS10 = testing.correlated_gaussian(10, 0.5)
DICT = testing.dict_gaussian()
quiet = pytest.mark.filterwarnings("ignore::mcgen.SamplingWarning")


def _run(target, kernel=None, **kwargs):
    kwargs = {"num_chains": 4, "num_samples": 200, "num_warmup": 100, "progress": False, **kwargs}
    kwargs.setdefault("init", target.init)
    return mc.run_chains(target.logdensity_fn, kernel or mc.rwmh(), **kwargs)


@pytest.mark.exact_bits
@quiet
@pytest.mark.parametrize("kernel", [mc.rwmh(), mc.adaptive_mh()], ids=["rwmh", "adaptive_mh"])
@pytest.mark.parametrize("target", [DICT, GAUSS10], ids=["dict", "gauss10"])
def test_chain_draws_do_not_depend_on_chain_count_or_chunking(kernel, target):
    one = _run(target, kernel, num_chains=1)
    eight = _run(target, kernel, num_chains=8, chunk_size=37)
    eight_b = _run(target, kernel, num_chains=8, chunk_size=64)
    for a, b, c in zip(
        jax.tree_util.tree_leaves(one.samples),
        jax.tree_util.tree_leaves(eight.samples),
        jax.tree_util.tree_leaves(eight_b.samples),
    ):
        np.testing.assert_array_equal(a[0], b[0])  # chain 0: bit-identical, 1 vs 8 chains
        np.testing.assert_array_equal(b, c)  # every chain: bit-identical across chunk sizes
    np.testing.assert_array_equal(one.stats["accept_prob"][0], eight.stats["accept_prob"][0])


@pytest.mark.exact_bits
@quiet
def test_chain_draws_do_not_depend_on_many_chains_elementwise_target():
    # An elementwise target: XLA computes it identically batched or not, so 8 vs 64 is exact.
    # (A dense matrix-vector product may be rounded differently at other batch sizes; see
    # the run module docstring.)
    eight = _run(DICT, num_chains=8)
    many = _run(DICT, num_chains=64, chunk_size=50)
    for a, b in zip(jax.tree_util.tree_leaves(eight.samples), jax.tree_util.tree_leaves(many.samples)):
        np.testing.assert_array_equal(a, b[:8])


@pytest.mark.exact_bits
@quiet
def test_chain_draws_do_not_depend_on_awkward_chain_counts():
    # XLA:CPU rounds exp/log differently for batches of 1, 3, 5-7, 13-15 lanes; the driver pads
    # those batches (see mcgen._driver.placement._padded_chain_count), so every count gives the same chain draws.
    ref = _run(DICT, num_chains=16)
    for n in (1, 3, 5, 6, 7, 13):
        res = _run(DICT, num_chains=n)
        assert res.samples["loc"].shape[0] == n
        np.testing.assert_array_equal(res.samples["loc"], ref.samples["loc"][:n])
        np.testing.assert_array_equal(res.last_state.params.scale, ref.last_state.params.scale[:n])


@quiet
def test_shapes_stats_and_thin():
    res = _run(DICT, num_chains=3, num_samples=50, thin=3)
    assert res.samples["loc"].shape == (3, 50, 2)
    assert res.samples["log_scale"].shape == (3, 50)
    assert set(res.stats) == {"accept_prob", "is_accepted", "is_nonfinite", "logdensity"}
    assert all(v.shape == (3, 50) for v in res.stats.values())
    # thinning keeps every 3rd step of the same chain: thin=1 run's step 3k+2 equals thin=3 draw k
    full = _run(DICT, num_chains=3, num_samples=150, thin=1)
    np.testing.assert_array_equal(res.samples["loc"], full.samples["loc"][:, 2::3])


@quiet
def test_resume_from_result_continues_chains():
    first = _run(GAUSS10, num_samples=100)
    second = mc.run_chains(
        GAUSS10.logdensity_fn, mc.rwmh(), init=first, num_chains=4, num_samples=100, seed=5, progress=False
    )
    assert second.num_warmup == 0
    np.testing.assert_array_equal(second.last_state.params.scale, first.last_state.params.scale)
    # the first draw of the continuation is one step from the last draw of the first run
    step = np.abs(second.samples[:, 0] - first.samples[:, -1]).max(axis=-1)
    assert np.all(step < 5.0)


@quiet
def test_init_forms():
    batch = jnp.stack([GAUSS10.init + i for i in range(4)])
    res = _run(GAUSS10, init=batch, num_warmup=0, num_samples=1)
    assert res.samples.shape == (4, 1, 10)
    res = _run(GAUSS10, init=lambda key: jax.random.normal(key, (10,)), num_samples=5)
    assert res.samples.shape == (4, 5, 10)
    # a broadcast init is jittered per chain, within init_jitter
    res = _run(GAUSS10, init=jnp.zeros(10), num_warmup=0, num_samples=1, init_jitter=0.0)
    assert res.samples.shape == (4, 1, 10)


def test_ambiguous_init_asks_for_init_batched():
    with pytest.raises(ValueError, match="init_batched"):
        mc.run_chains(
            lambda x: -jnp.sum(x**2), mc.rwmh(), init=jnp.zeros(4), num_chains=4, num_samples=5, progress=False
        )
    res = mc.run_chains(
        lambda x: -jnp.sum(x**2),
        mc.rwmh(),
        init=jnp.zeros(4),
        num_chains=4,
        num_samples=5,
        progress=False,
        init_batched=False,
        warn=False,
    )
    assert res.samples.shape == (4, 5, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"init": jnp.array([jnp.nan, 0.0])}, "NaN or inf"),
        ({"init": jnp.array([5.0, 0.0]), "init_jitter": 0.0}, "not finite"),
        ({"num_chains": 0}, "num_chains"),
        ({"num_samples": -1}, "num_samples"),
        ({"thin": 0}, "thin"),
        ({"num_warmup": -3}, "num_warmup"),
        ({"init_jitter": float("nan")}, "init_jitter"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    def logdensity(x):  # support: x[0] < 3
        return jnp.where(x[0] < 3.0, -0.5 * jnp.sum(x**2), -jnp.inf)

    args = {"init": jnp.zeros(2), "num_chains": 2, "num_samples": 5, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        mc.run_chains(logdensity, mc.rwmh(), **args)


def test_non_scalar_logdensity_and_wrong_kernel():
    with pytest.raises(ValueError, match="scalar"):
        mc.run_chains(lambda x: -0.5 * x**2, mc.rwmh(), init=jnp.zeros(3), num_samples=5, progress=False)
    with pytest.raises(TypeError, match="Kernel"):
        mc.run_chains(GAUSS10.logdensity_fn, "rwmh", init=GAUSS10.init, num_samples=5, progress=False)
    with pytest.raises(ValueError, match="scale"):
        mc.rwmh(scale=-1.0)


@quiet
def test_second_call_does_not_recompile():
    traces = []

    def logdensity(x):
        traces.append(1)  # runs only while JAX traces
        return -0.5 * jnp.sum(x**2)

    first = mc.run_chains(logdensity, mc.rwmh(), init=jnp.zeros(3), num_chains=2, num_samples=20, progress=False)
    n = len(traces)
    assert n > 0 and first.compile_time > 0
    second = mc.run_chains(
        logdensity, mc.rwmh(), init=jnp.ones(3), num_chains=2, num_samples=20, seed=7, progress=False
    )
    assert len(traces) == n
    assert second.compile_time == 0.0
    assert not np.array_equal(first.samples, second.samples)


@quiet
def test_result_arviz_summary_and_trace_plot(tmp_path):
    res = _run(DICT, num_samples=100)
    idata = res.to_arviz()
    assert set(idata.posterior.data_vars) == {"loc", "log_scale"}
    assert idata.posterior["loc"].shape == (4, 100, 2)
    assert {"acceptance_rate", "lp"} <= set(idata.sample_stats.data_vars)
    table = res.summary()
    assert {"mean", "sd", "hdi_3%", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"} <= set(table.columns)
    path = tmp_path / "trace.png"
    res.plot_trace(path=str(path))
    assert path.stat().st_size > 1000
    assert res.sampling_time > 0 and res.warmup_time > 0


def test_warnings_on_poor_mixing():
    with pytest.warns(mc.SamplingWarning, match="ess_bulk"):
        _run(GAUSS10, num_samples=50, num_warmup=10)


@quiet
def test_target_object_with_transform():
    class Target:
        logdensity_fn = staticmethod(GAUSS10.logdensity_fn)
        init = GAUSS10.init

        @staticmethod
        def transform(x):
            return {"exp_x0": jnp.exp(x[0]), "x": x}

    res = mc.run_chains(Target(), mc.rwmh(), num_chains=2, num_samples=10, progress=False)
    assert res.samples["exp_x0"].shape == (2, 10)
    np.testing.assert_allclose(res.samples["exp_x0"], np.exp(res.samples["x"][..., 0]), rtol=1e-6)


def test_assert_no_recompile_catches_a_kernel_rebuilt_per_call():
    def logdensity(x):
        return -0.5 * jnp.sum(x**2)

    testing.assert_no_recompile(logdensity, mc.rwmh, jnp.zeros(3), jnp.ones(3))
    # an array setting is unhashable, so the constructor cannot be cached: a new kernel each call
    with pytest.raises(AssertionError, match="re-traced"):
        testing.assert_no_recompile(logdensity, lambda: mc.rwmh(jnp.array(0.5)), jnp.zeros(3), jnp.ones(3))


@quiet
@pytest.mark.parametrize("chunk_size", [None, 60], ids=["one_warmup_program", "warmup_chunks"])
def test_first_sampling_chunk_is_compiled_ahead_and_used(monkeypatch, chunk_size):
    # On one device the first sampling chunk compiles on a background thread while the warmup
    # compiles and runs; run_chains must then use that program (one sampling program in the
    # cache, no compile left pending) and draw exactly what a run without it draws.
    from mcgen._driver import compile as compiled
    from mcgen.run import _sample_chunk, clear_cache

    def sampling_programs():
        return [v for k, v in compiled._CACHE.items() if k[0] is _sample_chunk]

    clear_cache()
    ahead = _run(DICT, num_samples=120, num_warmup=120, chunk_size=chunk_size, seed=9)
    programs = sampling_programs()
    assert len(programs) == 1 and not isinstance(programs[0], concurrent.futures.Future)
    if chunk_size is not None:
        return  # the draws: one case is enough (the same program either way)
    monkeypatch.setattr(mc.run, "_compile_ahead", lambda *a, **k: None)
    clear_cache()
    plain = _run(DICT, num_samples=120, num_warmup=120, chunk_size=chunk_size, seed=9)
    clear_cache()
    for a, b in zip(jax.tree_util.tree_leaves(ahead.samples), jax.tree_util.tree_leaves(plain.samples)):
        np.testing.assert_array_equal(a, b)


GAUSS4 = testing.correlated_gaussian(4, 0.5)  # 4 chains x 4 coordinates fill XLA:CPU's 8-lane vectors
WHOLE_KERNELS = {
    "nuts": mc.nuts(),  # low-rank metric, early schedule
    "nuts_diag": mc.nuts(mass="diag"),
    "hmc_dense": mc.hmc(mass="dense"),
    "mala": mc.mala(),
    "ula": mc.ula(0.1),  # no warmup of its own: burn-in
}


@pytest.mark.exact_bits
@quiet
@pytest.mark.parametrize("thin", [1, 2])
@pytest.mark.parametrize("name", list(WHOLE_KERNELS))
def test_whole_run_is_one_program_with_the_draws_of_two(monkeypatch, name, thin):
    # With one chunk per phase, a kernel whose warmup comes apart around its own step
    # (mcgen.types.WarmupParts) runs warmup and sampling as one program, where the step (and
    # the model's gradient) compiles once.  It must draw, adapt and report bit for bit what
    # the warmup and sampling programs give, whole or in chunks; and it must be what ran.
    from mcgen._driver import compile as compiled
    from mcgen._driver import steps
    from mcgen.run import clear_cache

    kernel = WHOLE_KERNELS[name]
    kwargs = {"num_samples": 23, "num_warmup": 40, "thin": thin, "seed": 4, "init_batched": False}
    reports = []
    monkeypatch.setattr(steps, "_warmup_done", lambda token, *_: reports.append(token))
    clear_cache()
    whole = _run(GAUSS4, kernel, **kwargs)
    programs = [k[0] for k in compiled._CACHE]
    assert steps._whole_run in programs and steps._sample_chunk not in programs
    assert len(reports) == 1  # the program reported the end of its warmup, once
    assert whole.warmup_time > 0 and whole.sampling_time > 0
    runs = {"chunked": _run(GAUSS4, kernel, chunk_size=7, **kwargs)}
    monkeypatch.setattr(mc.run, "_WHOLE_RUN", False)
    runs["two programs"] = _run(GAUSS4, kernel, **kwargs)
    clear_cache()
    for how, other in runs.items():
        for part in ("samples", "stats", "last_state", "warmup_stats"):
            a, b = getattr(whole, part), getattr(other, part)
            assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b), (how, part)
            for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
                np.testing.assert_array_equal(x, y, err_msg=f"{name}: {part} of the whole run against {how}")


@quiet
def test_chunked_one_loop_compiles_one_program_for_warmup_and_sampling():
    # In chunks (a progress display, a checkpoint), warmup and sampling chunks of one length
    # are one program: the kernel's step compiles once, not once per phase.
    from mcgen._driver import compile as compiled
    from mcgen._driver import steps
    from mcgen.run import clear_cache

    clear_cache()
    _run(GAUSS4, mc.nuts(), num_warmup=40, num_samples=40, chunk_size=10, init_batched=False)
    programs = [k[0] for k in compiled._CACHE]
    assert programs.count(steps._steps) == 1
    assert steps._warmup_chunk not in programs and steps._sample_chunk not in programs
    # thinned draws: a sampling chunk of 10 draws is 20 steps, another program
    clear_cache()
    _run(GAUSS4, mc.nuts(), num_warmup=40, num_samples=40, chunk_size=10, thin=2, init_batched=False)
    assert [k[0] for k in compiled._CACHE].count(steps._steps) == 2
    clear_cache()


@quiet
def test_automatic_chunks_share_one_length_between_the_phases():
    # with a progress display each phase is cut in about twentieths of the run: 30 warmup steps
    # alone would go in chunks of 6 and 100 draws in chunks of 5, two chunk programs; a length
    # that divides both (5) makes them one
    from mcgen._driver import compile as compiled
    from mcgen._driver import steps
    from mcgen.run import _even_both, clear_cache

    assert (_even_both(30, 100, 7), _even_both(300, 1000, 65), _even_both(40, 1000, 52)) == (5, 50, 40)
    # never below half of either phase's own size (2 warmup steps would cut 1000 draws in 500 chunks)
    assert _even_both(2, 1000, 51) is None and _even_both(7, 1000, 51) is None
    clear_cache()
    _run(GAUSS4, mc.nuts(), num_warmup=30, num_samples=100, progress=True, init_batched=False)
    assert [k[0] for k in compiled._CACHE].count(steps._steps) == 1
    clear_cache()


@quiet
def test_whole_run_is_not_taken_where_it_cannot_be():
    # a warmup without parts (random-walk MH's), chunked phases (one loop in chunks instead),
    # and a one-step warmup (see run.py) do not run as one program
    from mcgen._driver import compile as compiled
    from mcgen._driver import steps
    from mcgen.run import clear_cache

    for kernel, kwargs in (
        (mc.rwmh(), {}),
        (mc.nuts(), {"chunk_size": 50}),
        (mc.nuts(), {"num_warmup": 1}),
        (mc.nuts(), {"num_warmup": 0}),
    ):
        clear_cache()
        _run(GAUSS4, kernel, init_batched=False, **kwargs)
        assert steps._whole_run not in [k[0] for k in compiled._CACHE], kwargs
    clear_cache()
