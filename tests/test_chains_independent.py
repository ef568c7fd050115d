"""The driver gives every chain its own random stream: chains are not copies of each other.

A driver bug that hands every chain the same key (or the same initial jitter) passes every
test that looks at one chain or at pooled moments, while it overstates the pooled ESS and
understates the MCSE by up to the number of chains.  Seeds fixed.
"""

import warnings

import numpy as np

import mcgen as mc
from mcgen import testing
from mcgen.diagnostics import az

TARGET = testing.correlated_gaussian(4, 0.5)


def _run(kernel, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mc.run_chains(
            TARGET.logdensity_fn,
            kernel,
            init=TARGET.init,
            num_chains=4,
            num_samples=1000,
            num_warmup=300,
            seed=5,
            progress=False,
            init_batched=False,
            **kwargs,
        )


def test_chains_differ_and_are_uncorrelated():
    res = _run(mc.rwmh())
    x = np.asarray(res.samples)  # (4, 1000, 4)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(x[i], x[j]), f"chains {i} and {j} are copies"
            # draws of two independent chains: correlation of their thinned series ~ N(0, 1/n)
            a, b = x[i, ::10, 0], x[j, ::10, 0]
            r = np.corrcoef(a, b)[0, 1]
            assert abs(r) < 4 / np.sqrt(a.size), f"chains {i} and {j} correlated: r = {r:.2f}"
    assert not np.array_equal(res.samples[:, 0], res.samples[:1, 0].repeat(4, 0))  # distinct starts


def test_pooled_mcse_covers_the_truth_with_copies_impossible():
    # between-chain spread of chain means must match their MCSE: with copies it would be 0
    res = _run(mc.hmc(5))
    x = np.asarray(res.samples)[..., 0]
    means = x.mean(axis=1)
    assert np.std(means) > 0.0
    # R-hat near 1 and the per-chain means spread like independent estimates
    mcse_one = np.array([float(az.mcse(x[c : c + 1], method="mean")) for c in range(4)])
    z = (means - float(TARGET.mean[0])) / mcse_one
    assert np.all(np.abs(z) < 4.5), z
    # independent chains: 4 var(means) / mcse^2 ~ chi2(3), below 0.04 with probability 2e-3
    assert np.var(means) > 0.01 * np.mean(mcse_one**2)
