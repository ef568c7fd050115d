"""Statistical tests of ChEES-HMC (mcgen.kernels.chees).

Invariance of the frozen kernel (fixed step size and trajectory length, exact start, KS and
moment z-scores); moments within 4 MCSE after the ensemble warmup on the 100-d Gaussian with
scales over two decades; the pooled adaptation gives every chain the same tunables and a
metric near the true variances; ChEES nests in compose.  Seeds fixed.
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen import testing
from mcgen.kernels.chees import chees_hmc, halton

sys.path.insert(0, str(Path(__file__).parent))
from gradient_targets import GAUSS10, SCALES, gaussian_100, run  # noqa: E402


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(step_size=0.0),
        dict(trajectory_length=-1.0),
        dict(target_accept=1.0),
        dict(learning_rate=0.0),
        dict(max_num_steps=0),
        dict(max_energy_error=0.0),
    ],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        chees_hmc(**kwargs)


def test_halton_is_the_van_der_corput_sequence():
    got = np.asarray(jax.vmap(halton)(jnp.arange(7, dtype=jnp.uint32)))
    np.testing.assert_allclose(got, [0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875])


def test_invariance_of_the_frozen_kernel():
    kernel = chees_hmc(step_size=0.3, trajectory_length=2.0, adapt=False)
    testing.assert_invariance(kernel, GAUSS10.logdensity_fn, GAUSS10.sample, num_chains=4000, num_steps=3)


def test_gaussian_100d_ensemble_adaptation():
    res = run(gaussian_100, chees_hmc(), init=jnp.zeros(100), chains=128, samples=100, warmup=400)
    # every fifth coordinate (scales 0.01 .. 1): 40 compared quantities, ~0.3% false failures
    testing.assert_moments(res.samples[..., ::5], jnp.zeros(20), SCALES[::5] ** 2)
    # every transition of the batch took the same number of leapfrog steps
    assert np.all(res.stats["num_grad_evals"] == res.stats["num_grad_evals"][:1])
    params = res.last_state.params
    for leaf in (params.step_size, params.trajectory_length, params.inverse_mass):
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))  # pooled: one value
    # the metric is the cross-chain variance: within 15% of the true variances (128 chains,
    # averaged over the last ~20 warmup steps; relative sd ~ 3%)
    ratio = np.asarray(params.inverse_mass[0]) / np.asarray(SCALES) ** 2
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    assert 0.6 < float(np.mean(res.stats["accept_prob"])) < 0.95


def test_nests_in_compose_and_pools_per_inner_kernel():
    import mcgen as mc

    res = run(
        GAUSS10.logdensity_fn, mc.compose(chees_hmc(), mc.rwmh()), init=GAUSS10.init, chains=32, samples=10, warmup=30
    )
    params = res.last_state.params["0"]
    for leaf in (params.step_size, params.trajectory_length, params.inverse_mass):
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))
    assert "kernels.0.num_grad_evals" in res.stats
