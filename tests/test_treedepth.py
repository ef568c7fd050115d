"""NUTS's maximum tree depth: the ``reached_max_treedepth`` stat and the after-run warning.

Stan's third after-run check (beside divergences and E-BFMI): a transition whose trajectory
used every doubling ``max_tree_depth`` allows was cut short.

* The stat is exactly ``tree_depth == max_tree_depth`` (Stan's ``treedepth__ == max_depth``),
  and such a transition that did not diverge spent :math:`2^{D} - 1` gradients.
* ``check_run`` reports any such transition and names the chains: a chain stuck at a tiny step
  size shows there although every other chain is fine.
* End to end: ``run_chains`` warns when the limit is too low for the step size, and not with
  the default settings on a Gaussian.

And ``chain_summary``, the per-chain table that says what sets a named chain apart: its
``off_sd`` against analytic values, its other columns against the stats they summarize.
"""

import warnings

import jax.numpy as jnp
import numpy as np

import mcgen as mc
from mcgen.diagnostics import check_run

SCALES = jnp.asarray(np.logspace(-1, 0, 10), jnp.float32)


def gaussian(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


def _run(kernel, chains=4, samples=300, warmup=0, seed=0):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mc.run_chains(
            gaussian,
            kernel,
            init=jnp.full(10, 0.05),
            num_chains=chains,
            num_samples=samples,
            num_warmup=warmup,
            seed=seed,
            progress=False,
        )
    return res, [str(w.message) for w in caught if "maximum tree depth" in str(w.message)]


def test_the_stat_is_the_depth_at_the_limit():
    # unit metric, step 0.15 (stable: below twice the narrowest scale): trees end at depth 2, 3
    # or 4 (62, 579 and 559 of 1200 with this seed), so the limit 4 cuts about half short
    depth_limit = 4
    res, _ = _run(mc.nuts(max_tree_depth=depth_limit, step_size=0.15, adapt=False))
    reached = np.asarray(res.stats["reached_max_treedepth"])
    depth = np.asarray(res.stats["tree_depth"])
    assert reached.dtype == bool
    np.testing.assert_array_equal(reached, depth == depth_limit)
    assert 0.2 < reached.mean() < 0.8, reached.mean()  # both kinds of transition occur
    full = reached & ~np.asarray(res.stats["is_divergent"])
    assert np.all(np.asarray(res.stats["num_grad_evals"])[full] == 2**depth_limit - 1)
    assert "reached_max_treedepth" in res.to_arviz().sample_stats


def test_the_warmup_cap_bounds_the_warmup_and_not_the_sampling():
    # one doubling (one leapfrog step) per warmup transition; sampling keeps max_tree_depth,
    # where this target's trees take 2-4 doublings
    res, _ = _run(mc.nuts(warmup_max_tree_depth=1), warmup=200, seed=1)
    assert np.asarray(res.warmup_stats["num_grad_evals"]).max() == 1
    depth = np.asarray(res.stats["tree_depth"])
    assert depth.max() >= 3 and np.mean(depth >= 2) > 0.5, np.bincount(depth.ravel())
    np.testing.assert_array_equal(np.asarray(res.last_state.params.depth_cap), 0)  # no cap left in the state
    plain, _ = _run(mc.nuts(warmup_max_tree_depth=10), warmup=200, seed=1)  # no cap: longer warmup trees
    assert np.asarray(plain.warmup_stats["num_grad_evals"]).max() >= 7
    # a run continued from the capped one (no warmup) samples at the full depth too
    more = mc.run_chains(gaussian, mc.nuts(warmup_max_tree_depth=1), init=res, num_samples=100, seed=2, progress=False)
    assert np.asarray(more.stats["tree_depth"]).max() >= 3


def test_the_default_caps_the_low_rank_warmup_only():
    capped, _ = _run(mc.nuts(), warmup=200, seed=1)
    assert np.asarray(capped.warmup_stats["num_grad_evals"]).max() <= 63
    stan, _ = _run(mc.nuts(mass="diag"), warmup=200, seed=1)  # Stan's warmup: no cap
    assert np.asarray(stan.warmup_stats["num_grad_evals"]).max() > 63


def test_run_chains_warns_when_the_limit_is_too_low():
    res, lines = _run(mc.nuts(max_tree_depth=2, step_size=0.03, adapt=False), chains=2, samples=100)
    assert np.all(res.stats["reached_max_treedepth"])
    assert len(lines) == 1
    assert lines[0].startswith("200 of 200 transitions (100.0%) reached the maximum tree depth (in chains 0, 1;")
    assert "raise max_tree_depth" in lines[0]


def test_no_warning_with_the_defaults_on_a_gaussian():
    res, lines = _run(mc.nuts(), samples=500, warmup=500)
    assert not np.any(res.stats["reached_max_treedepth"])
    assert lines == []


def test_check_run_names_the_stuck_chain():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((6, 400))  # well-mixed draws: no other warning
    reached = np.zeros((6, 400), bool)
    assert [m for m in check_run(samples, {"reached_max_treedepth": reached}, 6) if "tree depth" in m] == []
    reached[4] = True  # one chain at the limit throughout (a tiny adapted step size)
    reached[1, 7] = True  # and one transition of another
    (line,) = [m for m in check_run(samples, {"reached_max_treedepth": reached}, 6) if "tree depth" in m]
    assert line.startswith("401 of 2400 transitions (16.7%) reached the maximum tree depth (in chains 1, 4;")
    assert "at most 100% of one chain's" in line


# ----------------------------------------------------------------------------- chain_summary


def test_check_run_names_the_chain_that_holds_most_divergences():
    # 128 chains, 30 scattered divergences and one chain with 75% of its transitions divergent
    # (a chain stuck in a funnel's narrow end): the warning names it; scattered ones alone do not
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((128, 200))
    scattered = np.zeros((128, 200), bool)
    scattered[rng.integers(0, 128, 30), rng.integers(0, 200, 30)] = True
    stuck = scattered.copy()
    stuck[57, :150] = True

    def divergence_lines(divergent):
        return [m for m in check_run(draws, {"is_divergent": divergent}, 128) if "divergent" in m]

    (line,) = divergence_lines(stuck)
    assert line.startswith(f"{int(stuck.sum())} divergent transitions after warmup")
    assert "of them in chain 57 (" in line and "% of its transitions" in line
    assert "warmup_pool='metric'" in line  # the remedy is named
    (line,) = divergence_lines(scattered)
    assert "of them in chain" not in line
    assert divergence_lines(np.zeros((128, 200), bool)) == []


def test_chain_summary_finds_the_chain_elsewhere():
    """``off_sd`` against its analytic value: four chains of N(0, 1) draws in 3 coordinates,
    chain 2 shifted by 5 in coordinate 1.  Chain 2's mean is 5 sd of the others' draws away;
    each other chain's is 5/3 from the mean of the other three (chain 2 among them), whose
    draws have variance 1 + 50/9 (two chains at 0 and one at 5), so 0.651 of their sd."""
    x = np.random.default_rng(0).standard_normal((4, 4000, 3))
    x[2, :, 1] += 5.0
    table = mc.diagnostics.chain_summary({"a": x[..., :2], "b": x[..., 2]}, {})
    assert list(table.columns) == ["off_sd"] and list(table.index) == [0, 1, 2, 3]
    assert abs(table["off_sd"][2] - 5.0) < 0.15, table
    expected = (5.0 / 3.0) / np.sqrt(1.0 + 50.0 / 9.0)
    np.testing.assert_allclose(table["off_sd"][[0, 1, 3]], expected, atol=0.05)
    same = mc.diagnostics.chain_summary(x[:, :, 0], {})  # chains that agree: a few 1/sqrt(4000)
    assert same["off_sd"].max() < 4.0 / np.sqrt(4000), same
    assert np.isnan(mc.diagnostics.chain_summary(x[:1], {})["off_sd"][0])  # one chain: no others


def test_result_chain_summary_columns_agree_with_the_stats():
    kernel = mc.nuts(max_tree_depth=4, step_size=0.15, adapt=False)
    res, _ = _run(kernel)
    table = res.chain_summary()
    assert list(table.columns) == [
        "off_sd",
        "step_size",
        "accept",
        "divergent",
        "at_max_depth",
        "grads_per_draw",
        "e_bfmi",
    ]
    np.testing.assert_allclose(table["at_max_depth"], res.stats["reached_max_treedepth"].mean(axis=1))
    np.testing.assert_allclose(table["grads_per_draw"], res.stats["num_grad_evals"].mean(axis=1))
    np.testing.assert_allclose(table["accept"], res.acceptance_rate(), rtol=1e-6)
    np.testing.assert_allclose(table["e_bfmi"], res.e_bfmi())
    np.testing.assert_allclose(table["step_size"], 0.15)
    assert table["off_sd"].max() < 0.5  # exact draws of one Gaussian in every chain
    warm, _ = _run(mc.nuts(), chains=2, samples=100, warmup=100)
    table = warm.chain_summary()
    np.testing.assert_array_equal(table["warmup_grads"], warm.warmup_grad_evals())
    np.testing.assert_array_equal(table["divergent"], warm.stats["is_divergent"].sum(axis=1))
    meads = mc.diagnostics.chain_summary(x := np.zeros((2, 10)), {"energy": x + np.arange(10), "damping": x})
    assert "e_bfmi" not in meads.columns  # momentum that persists: E-BFMI does not apply
