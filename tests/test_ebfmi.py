"""E-BFMI: the estimator against known values, and the after-run warning it drives.

* ``e_bfmi`` equals ArviZ's ``bfmi`` (an independent implementation) and, on AR(1) energy
  series, tends to the analytic ``2 (1 - phi)``: the mean over many chains is compared with
  it in standard errors of that mean.
* ``check_run`` warns when some chain's E-BFMI is below 0.3, names the chains, pools short
  chains (so the warning does not depend on how many there are) and leaves kernels with
  persistent momentum (MEADS) alone.
* End to end: NUTS and HMC on a centred funnel give E-BFMI about 0.1 and ``run_chains`` warns;
  on a Gaussian about 1 (the energy of a Gaussian's Hamiltonian chain is nearly refreshed at
  every draw) and it does not.
"""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen.diagnostics import EBFMI_MIN_DRAWS, EBFMI_THRESHOLD, az, check_run, e_bfmi


def ar1(rng, phi, chains, draws):
    x = rng.standard_normal(chains) / np.sqrt(1.0 - phi**2)  # stationary start
    out = np.empty((chains, draws))
    for t in range(draws):
        x = phi * x + rng.standard_normal(chains)
        out[:, t] = x
    return out


def test_e_bfmi_matches_arviz():
    rng = np.random.default_rng(0)
    for energy in (ar1(rng, 0.7, 3, 300), rng.standard_normal((5, 40)).cumsum(axis=1), rng.gamma(2.0, size=(2, 1000))):
        np.testing.assert_allclose(e_bfmi(energy), az.bfmi(energy), rtol=1e-12)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_e_bfmi_of_ar1_energies_is_two_one_minus_phi(phi):
    chains, draws = 200, 4000
    values = e_bfmi(ar1(np.random.default_rng(int(phi * 10)), phi, chains, draws))
    se = values.std(ddof=1) / np.sqrt(chains)
    z = (values.mean() - 2.0 * (1.0 - phi)) / se
    assert abs(z) < 4.0, (phi, values.mean(), se)
    pooled = float(e_bfmi(ar1(np.random.default_rng(7), phi, chains, draws), pooled=True))
    assert abs(pooled - 2.0 * (1.0 - phi)) < 4.0 * se * 1.5  # the pooled ratio: the same limit


def test_e_bfmi_bad_input():
    with pytest.raises(ValueError, match="chains, draws"):
        e_bfmi(np.zeros(10))
    assert np.isnan(e_bfmi(np.ones((1, 10))))[0]  # a chain whose energy never changes


def _stats(energy):
    return {"energy": energy, "is_divergent": np.zeros(energy.shape, bool)}


def _ebfmi_lines(energy, stats=None):
    samples = np.random.default_rng(1).standard_normal(energy.shape)  # well-mixed draws
    return [m for m in check_run(samples, stats or _stats(energy), energy.shape[0]) if "E-BFMI" in m]


def test_check_run_names_the_low_chains():
    rng = np.random.default_rng(2)
    energy = ar1(rng, 0.0, 4, 1000)
    assert _ebfmi_lines(energy) == []
    energy[2] = ar1(rng, 0.95, 1, 1000)[0]  # E-BFMI about 0.1
    (line,) = _ebfmi_lines(energy)
    assert f"below {EBFMI_THRESHOLD} in 1 of 4 chains (chains 2;" in line


def test_check_run_pools_short_chains_whatever_their_number():
    rng = np.random.default_rng(3)
    draws = EBFMI_MIN_DRAWS // 2
    # 4096 chains of AR(1) energies with E-BFMI 1 (what NUTS gives on a Gaussian): some single
    # chain's 25-draw estimate falls below 0.3 by chance, the pooled one (about 1) does not.
    energy = ar1(np.random.default_rng(0), 0.5, 4096, draws)
    assert np.nanmin(e_bfmi(energy)) < EBFMI_THRESHOLD
    assert _ebfmi_lines(energy) == []
    slow = ar1(rng, 0.95, 64, draws)
    (line,) = _ebfmi_lines(slow)
    assert "pooled" in line


def test_check_run_skips_persistent_momentum():
    energy = ar1(np.random.default_rng(4), 0.95, 4, 1000)
    assert len(_ebfmi_lines(energy)) == 1
    stats = dict(_stats(energy), damping=np.ones(energy.shape))
    assert _ebfmi_lines(energy, stats) == []


def funnel(p):
    v, x = p[0], p[1:]
    return -0.5 * v**2 / 9.0 - 0.5 * jnp.sum(x**2) * jnp.exp(-v) - 0.5 * x.size * v


def gaussian(p):
    return -0.5 * jnp.sum(p**2)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_run_chains_warns_on_a_funnel_not_on_a_gaussian(kernel):
    results = {}
    for name, fn in (("funnel", funnel), ("gaussian", gaussian)):
        k = mc.nuts() if kernel == "nuts" else mc.hmc()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = mc.run_chains(fn, k, init=jnp.full(10, 0.1), num_chains=4, num_samples=1000, num_warmup=1000, seed=0)
        values = e_bfmi(res.stats["energy"])
        lines = [str(w.message) for w in caught if "E-BFMI" in str(w.message)]
        results[name] = (values, lines)
    funnel_values, funnel_lines = results["funnel"]
    gauss_values, gauss_lines = results["gaussian"]
    assert np.all(funnel_values < EBFMI_THRESHOLD), funnel_values  # about 0.1
    assert len(funnel_lines) == 1 and "4 of 4 chains" in funnel_lines[0]
    assert np.all(gauss_values > 0.8), gauss_values  # about 1
    assert gauss_lines == []


def test_result_e_bfmi():
    res = mc.run_chains(gaussian, mc.hmc(), init=jnp.zeros(3), num_chains=2, num_samples=200, num_warmup=100, seed=1)
    np.testing.assert_allclose(res.e_bfmi(), e_bfmi(res.stats["energy"]))
    assert res.e_bfmi().shape == (2,)
    rw = mc.run_chains(gaussian, mc.rwmh(), init=jnp.zeros(3), num_chains=2, num_samples=50, seed=1, warn=False)
    with pytest.raises(ValueError, match="no Hamiltonian 'energy'"):
        rw.e_bfmi()
