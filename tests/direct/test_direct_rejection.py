"""Rejection sampling: exactness (acceptance rate, moments, distribution) and error handling.

Statistical checks use fixed seeds and bounds of 4 Monte-Carlo standard errors (two-sided
false-failure rate about 6e-5 each) or goodness-of-fit p-values above 1e-3.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import optimize, stats

from mcgen.direct import EstimatedBoundWarning, RejectionBoundWarning, rejection_sample

# Seed example: 0.5 N(-2, 0.5) + 0.5 N(2, 0.8), proposal N(0, 3).
WEIGHTS, MEANS, SDS = (0.5, 0.5), (-2.0, 2.0), (0.5, 0.8)
PROPOSAL = dist.Normal(0.0, 3.0)


def log_mixture(x):
    comps = [jnp.log(w) + dist.Normal(m, s).log_prob(x) for w, m, s in zip(WEIGHTS, MEANS, SDS)]
    return jnp.logaddexp(*comps)


def mixture_cdf(x):
    return sum(w * stats.norm.cdf(x, m, s) for w, m, s in zip(WEIGHTS, MEANS, SDS))


def true_log_M():
    """sup_x log p(x) - log q(x) in float64: dense grid, then a local refinement."""

    def neg(x):
        p = np.logaddexp(*[np.log(w) + stats.norm.logpdf(x, m, s) for w, m, s in zip(WEIGHTS, MEANS, SDS)])
        return -(p - stats.norm.logpdf(x, 0.0, 3.0))

    grid = np.linspace(-10, 10, 20001)
    x0 = grid[np.argmin(neg(grid))]
    return -optimize.minimize_scalar(neg, bracket=(x0 - 0.01, x0, x0 + 0.01)).fun


LOG_M = true_log_M()
# raw moments of the mixture: mean 0, E[X^2] = 4.445, E[X^4] from m^4 + 6 m^2 s^2 + 3 s^4
MEAN = sum(w * m for w, m in zip(WEIGHTS, MEANS))
M2 = sum(w * (m**2 + s**2) for w, m, s in zip(WEIGHTS, MEANS, SDS))
M4 = sum(w * (m**4 + 6 * m**2 * s**2 + 3 * s**4) for w, m, s in zip(WEIGHTS, MEANS, SDS))


def test_seed_mixture_acceptance_moments_and_distribution():
    n = 20_000
    run = jax.jit(lambda key: rejection_sample(key, log_mixture, PROPOSAL, LOG_M, num_samples=n))
    res = run(jax.random.key(0))
    x = np.asarray(res.samples, dtype=np.float64)
    assert x.shape == (n,) and int(res.num_accepted) == n
    # acceptance: n successes in N Bernoulli(1/M) trials (N negative binomial)
    p, N = np.exp(-LOG_M), int(res.num_proposals)
    assert abs(n / N - p) < 4 * np.sqrt(p * (1 - p) / N), (n / N, p)
    np.testing.assert_allclose(float(res.acceptance_rate), n / N, rtol=1e-5)
    # mean and sd within 4 MCSE (sd's MCSE by the delta method: sqrt((mu4 - s^4) / (4 s^2 n)))
    var = M2 - MEAN**2
    assert abs(x.mean() - MEAN) < 4 * np.sqrt(var / n)
    assert abs(x.std() - np.sqrt(var)) < 4 * np.sqrt((M4 - var**2) / (4 * var * n))
    assert stats.kstest(x, mixture_cdf).pvalue > 1e-3
    assert float(res.max_log_excess) <= 1e-3


def test_acceptance_count_is_exact_across_partial_batches():
    """The last batch counts proposals only up to the one that filled the buffer."""
    n, reps = 3000, 16
    run = jax.jit(
        jax.vmap(lambda key: rejection_sample(key, log_mixture, PROPOSAL, LOG_M, num_samples=n, batch_size=4096))
    )
    res = run(jax.random.split(jax.random.key(1), reps))
    assert res.samples.shape == (reps, n)
    total = int(np.sum(np.asarray(res.num_proposals)))
    p = np.exp(-LOG_M)
    assert abs(reps * n / total - p) < 4 * np.sqrt(p * (1 - p) / total)


def test_estimated_bound_is_announced_and_close():
    with pytest.warns(EstimatedBoundWarning, match="estimating"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RejectionBoundWarning)
            res = jax.jit(lambda k: rejection_sample(k, log_mixture, PROPOSAL, num_samples=500))(jax.random.key(2))
    assert abs(float(res.log_M) - LOG_M) < 1e-3


def test_violated_bound_warns_with_excess():
    with pytest.warns(RejectionBoundWarning, match="violated") as record:
        res = rejection_sample(jax.random.key(3), log_mixture, PROPOSAL, LOG_M - 1.0, num_samples=2000)
    assert 0.9 < float(res.max_log_excess) <= 1.0 + 1e-4
    assert "= 1" in str(record[0].message) or "= 0.99" in str(record[0].message)
    # inside jit the excess is in the result, and the warning comes from a host callback
    run = jax.jit(lambda k: rejection_sample(k, log_mixture, PROPOSAL, LOG_M - 1.0, num_samples=2000))
    with pytest.warns(RejectionBoundWarning, match="violated"):
        res = jax.block_until_ready(run(jax.random.key(3)))
        jax.effects_barrier()
    assert float(res.max_log_excess) > 0.9


def test_discrete_proposal_chi_square():
    """Poisson(3) truncated to {0..9} from a uniform proposal; log_M from the exact ratio."""
    k = np.arange(10)
    probs = stats.poisson.pmf(k, 3.0) / stats.poisson.pmf(k, 3.0).sum()
    log_p = lambda x: jnp.log(jnp.asarray(probs, jnp.float32))[x]  # noqa: E731
    proposal = dist.Categorical(probs=jnp.full(10, 0.1))
    log_M = float(np.log(probs.max() / 0.1))
    res = jax.jit(lambda k: rejection_sample(k, log_p, proposal, log_M, num_samples=20_000))(jax.random.key(4))
    counts = np.bincount(np.asarray(res.samples), minlength=10)
    assert stats.chisquare(counts, 20_000 * probs).pvalue > 1e-3
    with pytest.warns(EstimatedBoundWarning):  # the discrete path (no gradient) also works
        est = jax.jit(lambda k: rejection_sample(k, log_p, proposal, num_samples=10))(jax.random.key(5))
    assert abs(float(est.log_M) - log_M) < 1e-5


class _DictProposal:
    """A non-NumPyro proposal with pytree draws: a ~ N(0, 2), b ~ N(0, 2) in R^2."""

    def sample(self, key, shape):
        ka, kb = jax.random.split(key)
        return {"a": 2.0 * jax.random.normal(ka, shape), "b": 2.0 * jax.random.normal(kb, tuple(shape) + (2,))}

    def log_prob(self, x):
        return dist.Normal(0.0, 2.0).log_prob(x["a"]) + dist.Normal(0.0, 2.0).log_prob(x["b"]).sum()


def test_pytree_proposal_and_vmap():
    def log_p(x):
        return dist.Normal(1.0, 1.0).log_prob(x["a"]) + dist.Normal(-1.0, 1.0).log_prob(x["b"]).sum()

    log_M = 3 * (np.log(2.0) + 1.0 / 6.0)  # per coordinate: sup N(m,1)/N(0,4) = 2 exp(m^2/6)
    run = jax.jit(jax.vmap(lambda k: rejection_sample(k, log_p, _DictProposal(), log_M, num_samples=2000)))
    res = run(jax.random.split(jax.random.key(6), 2))
    assert res.samples["a"].shape == (2, 2000) and res.samples["b"].shape == (2, 2000, 2)
    a, b = np.asarray(res.samples["a"]).ravel(), np.asarray(res.samples["b"]).reshape(-1, 2)
    assert abs(a.mean() - 1.0) < 4 / np.sqrt(a.size)
    assert np.all(np.abs(b.mean(0) + 1.0) < 4 / np.sqrt(b.shape[0]))
    assert float(res.max_log_excess.max()) <= 1e-3


def test_max_proposals_exhausted_leaves_nan_and_warns():
    with pytest.warns(RuntimeWarning, match="max_proposals"):
        res = rejection_sample(jax.random.key(7), log_mixture, PROPOSAL, 30.0, num_samples=50, max_proposals=1000)
    assert int(res.num_accepted) < 50
    assert np.all(np.isnan(np.asarray(res.samples)[int(res.num_accepted) :]))


class _NoLogProb:
    def sample(self, key, shape):
        return jax.random.normal(key, shape)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(proposal=_NoLogProb()), TypeError, "log_prob"),
        (dict(log_M=float("inf")), ValueError, "finite"),
        (dict(log_M=float("nan")), ValueError, "finite"),
        (dict(num_samples=0), ValueError, "positive"),
        (dict(num_samples=-3), ValueError, "positive"),
        (dict(num_samples=2.5), TypeError, "int"),
        (dict(proposal=dist.Normal(jnp.zeros(3), 1.0)), ValueError, "to_event"),
        (dict(log_target=3.0), TypeError, "log_target"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = dict(log_target=log_mixture, proposal=PROPOSAL, log_M=LOG_M, num_samples=10)
    args.update(kwargs)
    if "proposal" in kwargs and isinstance(kwargs["proposal"], dist.Normal):
        args["log_target"] = lambda x: dist.Normal(0.0, 1.0).log_prob(x).sum()
    with pytest.raises(error, match=match):
        rejection_sample(jax.random.key(0), **args)
