"""Simulation-based calibration of real models and samplers (mcgen.testing.sbc, sbc_direct).

* Eight schools, the NumPyro model (non-centered, ``tau ~ HalfCauchy(5)``), through
  ``numpyro_sbc_model`` and NUTS with its warmup: every simulation is one chain of a single
  vmapped program.
* A conjugate normal model with an importance sampler (``WeightedSamples`` from the prior
  proposal), vectorized over simulations; a sampler whose log weights are doubled (a
  posterior too narrow) must fail.
* Likelihood weighting on the Asia network (``mcgen.bayesnet.likelihood_weighting``, run on
  the host per simulation); log weights doubled must fail.

Each test passes a correct sampler at the Bonferroni level ``alpha = 1e-3`` (false alarm at most
about 1e-3 per test); the negative controls show the settings have power against a bias of the
stated size, and tools/planted_bugs.py shows these tests catch bugs in the samplers and in
the SBC adapters.  Seeds fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mcgen as mc
from benchmarks.make_eight_schools_reference import SIGMA, eight_schools
from mcgen import testing
from mcgen.direct import WeightedSamples
from mcgen.testing.sbc import _ranks
from tests.bayesnet.bn_testutils import asia


def test_sbc_eight_schools_numpyro_nuts():
    model = testing.numpyro_sbc_model(eight_schools, jnp.asarray(SIGMA), observed="obs")
    rep = testing.sbc(mc.nuts(), *model, num_simulations=100, num_draws=19, thin=2, num_warmup=100, seed=0)
    assert rep.names == ["mu", "tau"] + [f"theta_tilde[{i}]" for i in range(8)]
    assert rep.passed, str(rep)


def test_numpyro_sbc_model_pieces_and_errors():
    model = testing.numpyro_sbc_model(eight_schools, jnp.asarray(SIGMA), observed=["obs"])
    z = model.prior_sample(jax.random.key(0))
    assert sorted(z) == ["mu", "tau", "theta_tilde"] and z["theta_tilde"].shape == (8,)
    data = model.simulate(jax.random.key(1), z)
    assert sorted(data) == ["obs"] and data["obs"].shape == (8,)
    # tau is unconstrained (log scale): the log-density carries the log-Jacobian tau
    tau, mu, tt = jnp.exp(z["tau"]), z["mu"], z["theta_tilde"]
    expected = (
        jax.scipy.stats.norm.logpdf(mu, 0.0, 5.0)
        + jax.scipy.stats.cauchy.logpdf(tau, 0.0, 5.0)
        + np.log(2.0)
        + z["tau"]
        + jnp.sum(jax.scipy.stats.norm.logpdf(tt))
        + jnp.sum(jax.scipy.stats.norm.logpdf(data["obs"], mu + tau * tt, jnp.asarray(SIGMA)))
    )
    np.testing.assert_allclose(model.logdensity(z, data), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="not sample sites"):
        testing.numpyro_sbc_model(eight_schools, jnp.asarray(SIGMA), observed="y")
    with pytest.raises(ValueError, match="no latent"):
        testing.numpyro_sbc_model(eight_schools, jnp.asarray(SIGMA), observed=["obs", "mu", "tau", "theta_tilde"])


N_OBS = 4


def normal_prior(key):
    return jax.random.normal(key, (2,))


def normal_simulate(key, theta):
    return theta + jax.random.normal(key, (N_OBS, 2))


def importance(factor):
    """Importance draws from the prior; ``factor`` multiplies the log weights (1: correct)."""

    def posterior(key, y):
        theta = jax.random.normal(key, (4096, 2))
        log_lik = -0.5 * jnp.sum((y[None] - theta[:, None]) ** 2, axis=(1, 2))
        return WeightedSamples(theta, factor * log_lik)

    return posterior


def log_lik(theta, y):
    return {"log_lik": -0.5 * jnp.sum((y - theta) ** 2)}


def test_sbc_direct_importance_sampler_vectorized():
    good = testing.sbc_direct(
        importance(1.0), normal_prior, normal_simulate, log_lik, num_simulations=200, num_draws=19, seed=0
    )
    assert good.names == ["theta[0]", "theta[1]", "log_lik"]
    assert good.passed, str(good)
    bad = testing.sbc_direct(
        importance(2.0), normal_prior, normal_simulate, log_lik, num_simulations=200, num_draws=19, seed=0
    )
    assert not bad.passed, str(bad)


def test_sbc_direct_exact_draws_and_errors():
    def exact(key, y):  # posterior N(sum y / (n + 1), 1 / (n + 1)), 19 independent draws
        return y.sum(0) / (N_OBS + 1) + jax.random.normal(key, (19, 2)) / np.sqrt(N_OBS + 1)

    rep = testing.sbc_direct(exact, normal_prior, normal_simulate, num_simulations=200, num_draws=19, seed=1)
    assert rep.passed, str(rep)
    with pytest.raises(ValueError, match="expected num_draws"):
        testing.sbc_direct(exact, normal_prior, normal_simulate, num_simulations=100, num_draws=9)
    with pytest.raises(ValueError, match="pytree structure"):
        testing.sbc_direct(
            lambda k, y: {"a": exact(k, y)}, normal_prior, normal_simulate, num_simulations=100, num_draws=19
        )
    with pytest.raises(ValueError, match="finite weight"):  # the ranking step, without a compile
        _ranks(
            np.zeros((2, 1)),
            np.zeros((2, 3, 1)),
            np.random.default_rng(0),
            np.array([[0.0, 0.0, 0.0], [-np.inf] * 3]),
            19,
        )


def test_ties_are_broken_uniformly():
    # a discrete parameter equal to all its draws: the rank is uniform on 0..L, weighted or not
    rng = np.random.default_rng(0)
    truth, draws = np.zeros((4000, 1)), np.zeros((4000, 19, 1))
    for log_weights in (None, np.zeros((4000, 19))):
        counts = np.bincount(_ranks(truth, draws, rng, log_weights, 19)[:, 0], minlength=20)
        assert counts.size == 20 and stats.chisquare(counts).pvalue > 1e-3, counts


def test_sbc_bayesnet_likelihood_weighting():
    model = testing.bayesnet_sbc_model(asia(), ["xray", "dysp"], num_samples=4096)
    good = testing.sbc_direct(*model, num_simulations=300, num_draws=19, vectorized=False, seed=0)
    assert good.names == ["asia", "bronc", "either", "lung", "smoke", "tub", "log_joint"]
    assert good.passed, str(good)

    def overconfident(key, data):  # log weights doubled: a posterior too sure of the evidence
        ws = model.posterior(key, data)
        return WeightedSamples(ws.samples, 2.0 * ws.log_weights)

    bad = testing.sbc_direct(
        overconfident,
        model.prior_sample,
        None,
        model.quantities,
        num_simulations=300,
        num_draws=19,
        vectorized=False,
        seed=0,
    )
    assert not bad.passed, str(bad)
