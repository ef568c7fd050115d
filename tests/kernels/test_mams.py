"""Statistical tests of MAMS (mcgen.kernels.mams).

The isokinetic velocity update against its small-step limit; invariance of the frozen kernel
(fixed step size and trajectory length, exact start, KS and moment z-scores); moments within
4 MCSE after the ensemble warmup on the 100-d Gaussian with scales over two decades; pooled
tunables.  Seeds fixed.
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen import testing
from mcgen.kernels.mams import _velocity_update, mams

sys.path.insert(0, str(Path(__file__).parent))
from gradient_targets import GAUSS10, SCALES, gaussian_100, run  # noqa: E402


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(step_size=0.0),
        dict(trajectory_length=-1.0),
        dict(target_accept=1.0),
        dict(length_factor=0.0),
        dict(max_num_steps=0),
        dict(max_energy_error=0.0),
    ],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        mams(**kwargs)


def test_velocity_update_keeps_unit_norm_and_matches_small_step_limit():
    key_u, key_g = jax.random.split(jax.random.key(0))
    u = jax.random.normal(key_u, (20,))
    u = u / jnp.linalg.norm(u)
    g = jax.random.normal(key_g, (20,))
    new, change = _velocity_update(u, g, 1e-3)
    np.testing.assert_allclose(jnp.linalg.norm(new), 1.0, rtol=1e-6)
    # for small tau the kinetic energy change is tau * g.u (so the energy error vanishes)
    np.testing.assert_allclose(change, 1e-3 * jnp.dot(g, u), rtol=2e-2, atol=1e-6)
    # two half updates compose to one full update (the flow property of the exact solution)
    half, c1 = _velocity_update(u, g, 0.5)
    full, c = _velocity_update(half, g, 0.5)
    one, c0 = _velocity_update(u, g, 1.0)
    np.testing.assert_allclose(full, one, atol=1e-5)
    np.testing.assert_allclose(c1 + c, c0, rtol=1e-4)


def test_invariance_of_the_frozen_kernel():
    kernel = mams(step_size=1.0, trajectory_length=2.0, adapt=False)
    testing.assert_invariance(kernel, GAUSS10.logdensity_fn, GAUSS10.sample, num_chains=4000, num_steps=3)


def test_gaussian_100d_ensemble_adaptation():
    res = run(gaussian_100, mams(), init=jnp.zeros(100), chains=128, samples=100, warmup=400)
    testing.assert_moments(res.samples[..., ::5], jnp.zeros(20), SCALES[::5] ** 2)
    assert np.all(res.stats["num_grad_evals"] == res.stats["num_grad_evals"][:1])
    params = res.last_state.params
    for leaf in (params.step_size, params.trajectory_length, params.inverse_mass):
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))
    ratio = np.asarray(params.inverse_mass[0]) / np.asarray(SCALES) ** 2
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    assert 0.8 < float(np.mean(res.stats["accept_prob"])) < 0.97  # target 0.9
