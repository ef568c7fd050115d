"""Importance sampling and SNIS: estimates and their MCSE against exact answers, diagnostics.

Bounds are 4 Monte-Carlo standard errors with fixed seeds.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from mcgen.direct import ImportanceWeightWarning, WeightedSamples, importance_sample

PROPOSAL = dist.Normal(0.0, 3.0)
E_X2 = 0.5 * (4.0 + 0.5**2) + 0.5 * (4.0 + 0.8**2)  # 4.445 for 0.5 N(-2, 0.5) + 0.5 N(2, 0.8)
LOG_Z = float(np.log(7.0))  # the unnormalized target below is 7 times the mixture


def log_mixture(x):
    return jnp.logaddexp(
        jnp.log(0.5) + dist.Normal(-2.0, 0.5).log_prob(x), jnp.log(0.5) + dist.Normal(2.0, 0.8).log_prob(x)
    )


def log_unnormalized(x):
    return log_mixture(x) + LOG_Z


def test_seed_snis_second_moment_with_ess():
    n = 20_000
    ws = jax.jit(lambda k: importance_sample(k, log_unnormalized, PROPOSAL, n))(jax.random.key(0))
    est = ws.expectation(lambda x: x**2)
    ess = float(ws.ess())
    print(f"SNIS E[X^2] = {float(est.mean):.4f} +- {float(est.mcse):.4f} (exact {E_X2}), ESS = {ess:.0f} of {n}")
    assert abs(float(est.mean) - E_X2) < 4 * float(est.mcse)
    assert 0.2 * n < ess <= n  # the proposal is wider than the target: a healthy ESS
    assert ws.pareto_k() < 0.5


def test_plain_is_with_normalized_target():
    n = 20_000
    ws = importance_sample(jax.random.key(1), log_mixture, PROPOSAL, n, self_normalized=False)
    est = ws.expectation(lambda x: x**2)
    assert abs(float(est.mean) - E_X2) < 4 * float(est.mcse)


def test_log_normalizer():
    ws = importance_sample(jax.random.key(2), log_unnormalized, PROPOSAL, 20_000)
    est = ws.log_normalizer()
    assert abs(float(est.mean) - LOG_Z) < 4 * float(est.mcse)


@pytest.mark.parametrize("f, exact", [(lambda x: x**2, E_X2), (lambda x: x > 0, 0.5)], ids=["x^2", "x>0"])
def test_snis_mcse_is_calibrated(f, exact):
    """Over 400 independent runs, z = (estimate - truth) / mcse has E[z^2] = 1 (delta method)."""
    reps, n = 400, 500

    def one(key):
        est = importance_sample(key, log_unnormalized, PROPOSAL, n).expectation(f)
        return (est.mean - exact) / est.mcse

    z2 = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), reps)), np.float64) ** 2
    assert abs(z2.mean() - 1.0) < 4 * z2.std(ddof=1) / np.sqrt(reps), z2.mean()


def test_high_dimension_degradation_is_flagged():
    """Target N(0, I_d), proposal N(0.5, 1.2^2 I_d): E[ESS]/n ~ 1.199^-d (0.83, 0.16, 1e-4)."""
    n, ess_frac, khat = 4000, {}, {}
    for d in (1, 10, 50):
        q = dist.Normal(jnp.full(d, 0.5), 1.2).to_event(1)
        log_p = lambda x: dist.Normal(0.0, 1.0).log_prob(x).sum()  # noqa: E731
        ws = jax.jit(lambda k: importance_sample(k, log_p, q, n))(jax.random.key(d))
        ess_frac[d] = float(ws.ess()) / n
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            khat[d] = ws.pareto_k()
        flagged = any(issubclass(w.category, ImportanceWeightWarning) for w in record)
        assert flagged == (d == 50), (d, khat[d])
    print("ESS/n:", ess_frac, "k-hat:", khat)
    assert ess_frac[1] > 0.7 and khat[1] < 0.5
    assert 0.05 < ess_frac[10] < 0.5 and khat[10] < 0.7
    assert ess_frac[50] < 0.02 and khat[50] > 0.7


def test_vector_and_pytree_expectations_under_vmap():
    q = dist.Normal(jnp.zeros(3), 2.0).to_event(1)
    log_p = lambda x: dist.Normal(jnp.arange(3.0), 1.0).log_prob(x).sum()  # noqa: E731

    def one(key):
        return importance_sample(key, log_p, q, 5000).expectation(lambda x: {"x": x, "s": x.sum()})

    run = jax.jit(jax.vmap(one))
    est = run(jax.random.split(jax.random.key(4), 2))
    assert est.mean["x"].shape == (2, 3) and est.mcse["s"].shape == (2,)
    assert np.all(np.abs(np.asarray(est.mean["x"]) - np.arange(3.0)) < 4 * np.asarray(est.mcse["x"]))


def test_indicator_expectation_and_identity():
    ws = importance_sample(jax.random.key(5), log_unnormalized, PROPOSAL, 20_000)
    est = ws.expectation(lambda x: x > 0)  # bool output; exact P(X > 0) = 0.5
    assert abs(float(est.mean) - 0.5) < 4 * float(est.mcse)
    est = ws.expectation()
    assert abs(float(est.mean)) < 4 * float(est.mcse)


def test_weighted_samples_is_a_pytree():
    ws = WeightedSamples(jnp.arange(4.0), jnp.zeros(4), self_normalized=False)
    out = jax.jit(lambda w: w)(ws)
    assert isinstance(out, WeightedSamples) and out.self_normalized is False
    assert float(out.ess()) == pytest.approx(4.0)


class _NoLogProb:
    def sample(self, key, shape):
        return jax.random.normal(key, shape)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(proposal=_NoLogProb()), TypeError, "log_prob"),
        (dict(num_samples=0), ValueError, "positive"),
        (dict(num_samples=1.5), TypeError, "int"),
        (dict(self_normalized="yes"), TypeError, "bool"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = dict(log_target=log_mixture, proposal=PROPOSAL, num_samples=10)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        importance_sample(jax.random.key(0), **args)
