"""Nested R-hat (Margossian et al. 2024): a hand computation, converged vs not-converged
ensembles of many short chains, and its use in the after-run checks."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen.diagnostics import check_run, default_superchains, nested_rhat


def test_hand_computation():
    # K = 2 superchains of M = 2 chains, N = 3 draws each
    x = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 6.0], [4.0, 4.0, 4.0], [5.0, 7.0, 6.0]])
    chain_means = [1.0, 3.0, 4.0, 6.0]
    super_means = [2.0, 5.0]
    overall = 3.5
    b = ((2.0 - overall) ** 2 + (5.0 - overall) ** 2) / 1  # K - 1 = 1
    between_chain = [((1 - 2) ** 2 + (3 - 2) ** 2) / 1, ((4 - 5) ** 2 + (6 - 5) ** 2) / 1]
    within = [
        np.mean([np.sum((row - m) ** 2) / 2 for row, m in zip(x[2 * k : 2 * k + 2], chain_means[2 * k : 2 * k + 2])])
        for k in range(2)
    ]
    w = np.mean([between_chain[k] + within[k] for k in range(2)])
    assert super_means == [np.mean(chain_means[:2]), np.mean(chain_means[2:])]
    got = nested_rhat(x, superchains=2)["x"]
    np.testing.assert_allclose(got, np.sqrt(1 + b / w), rtol=1e-12)
    # a pytree keeps its names; the event shape is kept
    got = nested_rhat({"a": np.stack([x, 2 * x], axis=-1)}, superchains=2)["a"]
    np.testing.assert_allclose(got, np.sqrt(1 + b / w), rtol=1e-12)


def _ar1(rng, chains, draws, start, rho=0.5):
    """AR(1) chains with N(0, 1) stationary law from the given starting points."""
    x = np.empty((chains, draws))
    cur = start
    for t in range(draws):
        cur = rho * cur + np.sqrt(1 - rho**2) * rng.normal(size=chains)
        x[:, t] = cur
    return x


def test_converged_vs_not_converged_short_chains():
    rng = np.random.default_rng(0)
    chains, draws, k = 1024, 20, 32
    # converged: started from the stationary law (superchains share a start, as the paper's design)
    start = np.repeat(rng.normal(size=k), chains // k)
    good = nested_rhat(_ar1(rng, chains, draws, start), k)["x"]
    # B ~ var of a superchain mean ~ (1 + 2 rho/(1-rho)) / (M N) / W = 3 / 640: nR-hat ~ 1.002
    assert good < 1.01
    # not converged: superchains start far apart (sd 10) and 20 draws do not forget it
    start = np.repeat(10 * rng.normal(size=k), chains // k)
    bad = nested_rhat(_ar1(rng, chains, draws, start, rho=0.95), k)["x"]
    assert bad > 1.1


def test_default_superchains_and_bad_settings():
    assert default_superchains(1024) == 32 and default_superchains(128) == 8 and default_superchains(6) == 2
    x = np.zeros((6, 5)) + np.arange(5)
    with pytest.raises(ValueError, match="divides"):
        nested_rhat(x, superchains=4)
    with pytest.raises(ValueError, match="superchains"):
        mc.run_chains(
            lambda x: -0.5 * jnp.sum(x**2),
            mc.rwmh(),
            init=jnp.zeros(1),
            num_chains=6,
            num_samples=5,
            superchains=4,
            progress=False,
        )


def test_after_run_checks_use_nested_rhat_for_many_short_chains():
    rng = np.random.default_rng(1)
    chains, draws = 256, 40
    start = np.repeat(rng.normal(size=16), 16)
    good = {"x": _ar1(rng, chains, draws, start, rho=0.2)}
    stats = {"accept_prob": np.ones((chains, draws))}
    assert check_run(good, stats, chains) == []  # ESS ~ 256 * 40 * 0.67 >> 400, nR-hat ~ 1.001
    start = np.repeat(10 * rng.normal(size=16), 16)
    bad = {"x": _ar1(rng, chains, draws, start, rho=0.95)}
    messages = check_run(bad, stats, chains)
    assert any("nested r_hat" in m for m in messages)
    assert not any("per chain" in m for m in messages)
    # few long chains: the classical checks
    assert any("per chain" in m for m in check_run({"x": bad["x"][:4]}, stats, 4))


def test_result_nested_rhat():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mc.run_chains(
            lambda x: -0.5 * jnp.sum(x**2),
            mc.rwmh(),
            init=jnp.zeros(2),
            num_chains=8,
            num_samples=50,
            num_warmup=0,
            progress=False,
            warn=False,
        )
    got = res.nested_rhat(superchains=4)["x"]
    np.testing.assert_allclose(got, nested_rhat(res.samples, 4)["x"])
    assert got.shape == (2,)
