"""Statistical checks that a sampler draws from its target (one concern per module).

* :mod:`mcgen.testing._checks`: moment checks in MCSE units, two-sample tests, the marginal
  invariance check from exact draws, warmup and recompilation checks, reference targets.
* :mod:`mcgen.testing.sbc`: simulation-based calibration (Talts et al. 2018) of Markov kernels
  and of direct samplers (weighted or not), on models given as functions, NumPyro models or
  Bayesian networks.
* :mod:`mcgen.testing.geweke`: Geweke's joint-distribution test (2004).
* :mod:`mcgen.testing.exact_invariance`: a sequential exact test of one kernel step
  (Gandy & Scott 2020), usable on a single Gibbs block.

Every helper states its false-alarm rate and is itself tested for calibration and power
(``tests/test_testing_calibration.py``, ``tests/test_sbc.py``).

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), mc.rwmh(), init=jnp.zeros(2),
...                     num_chains=4, num_samples=2000, progress=False)
>>> _ = mc.testing.assert_moments(res.samples, mean=jnp.zeros(2), var=jnp.ones(2))
"""

from mcgen.testing._checks import (
    InvarianceReport,
    MomentReport,
    Target,
    TwoSampleReport,
    assert_invariance,
    assert_moments,
    assert_no_recompile,
    bimodal_1d,
    check_invariance,
    check_moments,
    correlated_gaussian,
    dict_gaussian,
    exact_gaussian_sampler,
    run_warmup,
    two_sample_test,
)
from mcgen.testing.exact_invariance import ExactInvarianceReport, exact_invariance_test
from mcgen.testing.geweke import GewekeReport, geweke
from mcgen.testing.sbc import (
    DirectSBCModel,
    SBCModel,
    SBCReport,
    bayesnet_sbc_model,
    numpyro_sbc_model,
    rank_uniformity,
    sbc,
    sbc_direct,
)

__all__ = [
    "DirectSBCModel",
    "ExactInvarianceReport",
    "GewekeReport",
    "InvarianceReport",
    "MomentReport",
    "SBCModel",
    "SBCReport",
    "Target",
    "TwoSampleReport",
    "assert_invariance",
    "assert_moments",
    "assert_no_recompile",
    "bayesnet_sbc_model",
    "bimodal_1d",
    "check_invariance",
    "check_moments",
    "correlated_gaussian",
    "dict_gaussian",
    "exact_gaussian_sampler",
    "exact_invariance_test",
    "geweke",
    "numpyro_sbc_model",
    "rank_uniformity",
    "run_warmup",
    "sbc",
    "sbc_direct",
    "two_sample_test",
]
