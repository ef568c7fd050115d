"""Targets and helpers shared by the gradient-kernel tests (HMC, MALA, NUTS, from_numpyro).

Imported as ``tests.kernels.gradient_targets`` by the test modules; not a test module itself.  Targets with
known answers: a correlated 10-d Gaussian, a 100-d Gaussian with scales log-spaced over two
decades, eight schools (non-centered NumPyro model) and a Bayesian logistic regression
(n = 1000, d = 25); the last two come with long BlackJAX reference runs stored in
``tests/data`` (``benchmarks/make_eight_schools_reference.py``).
"""

import pathlib
import warnings

import jax.numpy as jnp
import numpy as np

import mcgen as mc
from benchmarks.make_eight_schools_reference import eight_schools, logistic_logdensity
from mcgen import testing
from mcgen.numpyro_bridge import from_numpyro

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
# the models exactly as the stored reference runs sampled them

GAUSS10 = testing.correlated_gaussian(10, 0.5)
SCALES = jnp.asarray(np.logspace(-2, 0, 100), jnp.float32)
EIGHT = np.load(DATA / "eight_schools_reference.npz")
EIGHT_SITES = ("mu", "tau", "theta", "theta_tilde")
LOGI = np.load(DATA / "logistic_regression_reference.npz")
_X, _Y = jnp.asarray(LOGI["x"]), jnp.asarray(LOGI["y"])


def gaussian_100(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


EIGHT_TARGET = from_numpyro(eight_schools, jnp.asarray(EIGHT["sigma"]), y=jnp.asarray(EIGHT["y"]))
logistic = logistic_logdensity(_X, _Y)


def run(target, kernel, *, init=None, chains=4, samples=1000, warmup=1000, thin=1, seed=0, **kwargs):
    """``run_chains`` without progress bar or sampling warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        return mc.run_chains(
            target,
            kernel,
            init=init,
            num_chains=chains,
            num_samples=samples,
            num_warmup=warmup,
            thin=thin,
            seed=seed,
            progress=False,
            **kwargs,
        )


def assert_invariant_with_metric(kernel, inverse_mass, step_size, target=None):
    """``testing.assert_invariance`` of a gradient kernel frozen at a given metric and step size
    (4000 chains started at exact draws of ``target``, default the correlated 10-d Gaussian)."""
    target = GAUSS10 if target is None else target

    def with_metric(state):
        params = state.params._replace(inverse_mass=inverse_mass, step_size=jnp.asarray(step_size, jnp.float32))
        return state._replace(params=params)

    testing.assert_invariance(
        kernel, target.logdensity_fn, target.sample, num_chains=4000, num_steps=3, state_fn=with_metric
    )


def assert_matches_reference(samples, ref, sites, z=4.0):
    """4-MCSE check against a stored reference whose own MCSE is negligible (< 1/5 of ours)."""
    draws = {k: samples[k] for k in sites}
    report = testing.check_moments(
        draws, {k: ref[f"{k}_mean"] for k in sites}, {k: ref[f"{k}_var"] for k in sites}, z=z
    )
    ref_mcse = np.concatenate([np.ravel(ref[f"{k}_mean_mcse"]) for k in sites])
    assert np.all(ref_mcse < 0.2 * report.mean_mcse), "reference run too short for this test"
    assert report.passed, f"moments differ from the reference by more than {z} MCSE:\n{report}"
    return report
