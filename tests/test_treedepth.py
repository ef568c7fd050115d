"""NUTS's maximum tree depth: the ``reached_max_treedepth`` stat and the after-run warning.

Stan's third after-run check (beside divergences and E-BFMI): a transition whose trajectory
used every doubling ``max_tree_depth`` allows was cut short.

* The stat is exactly ``tree_depth == max_tree_depth`` (Stan's ``treedepth__ == max_depth``),
  and such a transition that did not diverge spent :math:`2^{D} - 1` gradients.
* ``check_run`` reports any such transition and names the chains: a chain stuck at a tiny step
  size shows there although every other chain is fine.
* End to end: ``run_chains`` warns when the limit is too low for the step size, and not with
  the default settings on a Gaussian.
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
