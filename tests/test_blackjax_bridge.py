"""BlackJAX algorithms through ``mc.from_blackjax`` and ``run_chains``, against known moments.

BlackJAX's ``rmh`` and ``nuts`` (fixed, hand-tuned settings: the bridge has no warmup) on a
correlated 4-d Gaussian: means and variances within 4 MCSE of the truth.  The builder form
(log-density passed at call time) also runs as a Gibbs block.  A planted bug, the bridge
handing BlackJAX a tempered log-density, is caught by the same moment check.  Seeds fixed.
"""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.kernels.base import check_kernel

blackjax = pytest.importorskip("blackjax")

TARGET = testing.correlated_gaussian(4, 0.5)  # scales 0.5 .. 2
INVERSE_MASS = TARGET.var  # the diagonal of the covariance: a well-tuned diagonal metric


def run(kernel, logdensity_fn=TARGET.logdensity_fn, init=TARGET.init, samples=2000, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        return mc.run_chains(
            logdensity_fn,
            kernel,
            init=init,
            num_chains=4,
            num_samples=samples,
            num_warmup=300,
            seed=seed,
            progress=False,
            init_batched=False,
        )


def test_blackjax_rmh_moments():
    noise = blackjax.mcmc.random_walk.normal(0.6 * jnp.sqrt(INVERSE_MASS))
    # rmh's proposal generator returns the proposal itself (a symmetric random walk here)
    algorithm = blackjax.rmh(TARGET.logdensity_fn, lambda key, x: x + noise(key, x))
    res = run(mc.from_blackjax(algorithm), samples=4000)
    testing.assert_moments(res.samples, TARGET.mean, TARGET.var)
    assert {"accept_prob", "is_accepted", "logdensity"} <= set(res.stats)
    assert 0.2 < float(np.mean(res.stats["accept_prob"])) < 0.7


def test_blackjax_nuts_moments_and_info_names():
    algorithm = blackjax.nuts(TARGET.logdensity_fn, 0.7, INVERSE_MASS)
    res = run(mc.from_blackjax(algorithm))
    testing.assert_moments(res.samples, TARGET.mean, TARGET.var)
    assert {"accept_prob", "is_divergent", "energy", "num_grad_evals", "tree_depth"} <= set(res.stats)
    assert int(np.sum(res.stats["is_divergent"])) == 0


def test_builder_form_follows_the_kernel_rules_and_runs_as_a_gibbs_block():
    kernel = mc.from_blackjax(lambda f: blackjax.nuts(f, 0.5, jnp.ones(2)))
    check_kernel(kernel, jnp.zeros(2), lambda x: -0.5 * jnp.sum(x**2))
    dict_target = testing.dict_gaussian()
    gibbs = mc.gibbs({"loc": kernel, "log_scale": mc.rwmh()})
    res = run(gibbs, dict_target.logdensity_fn, dict_target.init, samples=1500, seed=1)
    testing.assert_moments(res.samples, dict_target.mean, dict_target.var)


def test_not_an_algorithm_raises():
    with pytest.raises(TypeError, match="SamplingAlgorithm"):
        mc.from_blackjax(3)


def test_planted_bug_a_tempered_target_is_caught():
    """The bridge must hand BlackJAX the target itself: at beta = 0.7 the variances are off."""
    algorithm = blackjax.nuts(lambda x: 0.7 * TARGET.logdensity_fn(x), 0.7, INVERSE_MASS)
    res = run(mc.from_blackjax(algorithm))
    assert not testing.check_moments(res.samples, TARGET.mean, TARGET.var).passed
