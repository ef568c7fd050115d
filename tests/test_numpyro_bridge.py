"""Tests of ``from_numpyro``: NumPyro models as mcgen targets.

A model with constrained parameters (a simplex under a Dirichlet prior with multinomial
counts, a positive variance under an inverse-gamma prior with normal observations) has a
conjugate posterior with known moments; NUTS on the unconstrained target, mapped back by
``transform``, must match them within 4 MCSE.  This fails if the change-of-variables
Jacobian is missing.  Eight schools checks names, deterministic sites and ``run_chains``'s
use of the target's ``init`` and ``transform``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.kernels.nuts import nuts
from mcgen.numpyro_bridge import from_numpyro
from tests.kernels.gradient_targets import eight_schools

ALPHA = np.array([2.0, 3.0, 5.0])
COUNTS = np.array([4.0, 1.0, 7.0])
A, B = 3.0, 2.0
X = np.array([0.5, -1.0, 2.0, 0.3, -0.7])


def constrained_model(counts, x):
    p = numpyro.sample("p", dist.Dirichlet(jnp.asarray(ALPHA, jnp.float32)))
    variance = numpyro.sample("variance", dist.InverseGamma(A, B))
    numpyro.sample("counts", dist.Multinomial(int(COUNTS.sum()), p), obs=counts)
    numpyro.sample("x", dist.Normal(0.0, jnp.sqrt(variance)), obs=x)


def posterior_moments():
    a = ALPHA + COUNTS  # Dirichlet posterior
    total = a.sum()
    p_mean, p_var = a / total, a * (total - a) / (total**2 * (total + 1.0))
    a2, b2 = A + X.size / 2.0, B + np.sum(X**2) / 2.0  # inverse-gamma posterior
    v_mean, v_var = b2 / (a2 - 1.0), b2**2 / ((a2 - 1.0) ** 2 * (a2 - 2.0))
    return {"p": p_mean, "variance": v_mean}, {"p": p_var, "variance": v_var}


SIGMA = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
Y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])


def test_constrained_parameters_match_the_conjugate_posterior():
    target = from_numpyro(constrained_model, jnp.asarray(COUNTS, jnp.float32), jnp.asarray(X, jnp.float32))
    assert target.site_names == ("p", "variance")
    assert target.init["p"].shape == (2,)  # a 3-simplex has 2 unconstrained coordinates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        res = mc.run_chains(target, nuts(), num_chains=4, num_samples=2000, num_warmup=1000, progress=False)
    samples = res.samples
    assert samples["p"].shape == (4, 2000, 3) and samples["variance"].shape == (4, 2000)
    np.testing.assert_allclose(samples["p"].sum(-1), 1.0, atol=1e-5)
    assert np.all(samples["variance"] > 0)
    mean, var = posterior_moments()
    testing.assert_moments(samples, mean, var)


def test_eight_schools_target_and_names():
    target = from_numpyro(eight_schools, SIGMA, y=Y)
    assert set(target.init) == {"mu", "tau", "theta_tilde"}
    assert np.isfinite(float(target.logdensity_fn(target.init)))
    constrained = target.transform(target.init)
    assert set(constrained) == {"mu", "tau", "theta_tilde", "theta"} and float(constrained["tau"]) > 0
    # gradients flow through the unconstrained log-density
    grad = jax.grad(target.logdensity_fn)(target.init)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grad))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        res = mc.run_chains(target, nuts(), num_chains=2, num_samples=200, num_warmup=200, progress=False)
    assert res.samples["theta"].shape == (2, 200, 8) and np.all(res.samples["tau"] > 0)
    np.testing.assert_allclose(
        res.samples["theta"],
        res.samples["mu"][..., None] + res.samples["tau"][..., None] * res.samples["theta_tilde"],
        rtol=1e-4,
        atol=1e-4,
    )


def test_bad_models_raise():
    def discrete(y):
        z = numpyro.sample("z", dist.Categorical(probs=jnp.array([0.3, 0.7])))
        numpyro.sample("y", dist.Normal(z.astype(jnp.float32), 1.0), obs=y)

    def observed_only(y):
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=y)

    with pytest.raises(ValueError, match="discrete"):
        from_numpyro(discrete, jnp.ones(3))
    with pytest.raises(ValueError, match="no latent"):
        from_numpyro(observed_only, jnp.ones(3))
    with pytest.raises(TypeError):
        from_numpyro("not a model")
