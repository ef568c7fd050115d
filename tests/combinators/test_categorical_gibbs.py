"""Tests of ``categorical_gibbs``: exact Gibbs draws of integer variables by enumeration.

* Invariance (``assert_invariance``) on a dependent discrete joint of three variables with
  per-element numbers of categories (2, 3, 4), and, with ``parallel=True``, inside ``gibbs`` on
  a block of conditionally independent binary variables next to a Metropolis-within-Gibbs
  continuous block.
* The negative control: a parallel (Jacobi) update of *dependent* variables is not invariant,
  and the check sees it.
* Marginal means and variances through ``run_chains`` within 4 MCSE of exact enumeration.
* A NaN log-density at one value excludes that value; bad settings raise ``ValueError``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.combinators import gibbs
from mcgen.kernels.categorical_gibbs import categorical_gibbs

SHAPE = (2, 3, 4)
# a dependent joint: random log-table plus a strong coupling between neighbouring variables
_rng = np.random.default_rng(0)
_idx = np.indices(SHAPE)
_TABLE = _rng.normal(size=SHAPE) + 1.5 * (_idx[0] == _idx[1] % 2) + 1.0 * (_idx[1] == _idx[2] % 3)
TABLE = jnp.asarray(_TABLE, jnp.float32)
PROBS = np.exp(_TABLE - _TABLE.max()) / np.exp(_TABLE - _TABLE.max()).sum()


def table_logdensity(x):
    return TABLE[x[0], x[1], x[2]]


def table_sampler(key, n):
    flat = jax.random.categorical(key, TABLE.ravel(), shape=(n,))
    return jnp.stack(jnp.unravel_index(flat, SHAPE), axis=1).astype(jnp.int32)


def joint_p_value(kernel, num_chains=4000, num_steps=2, seed=0):
    """Chi-square p-value of the *joint* law of ``num_chains`` chains started at exact draws
    after ``num_steps`` steps against the exact table.  ``assert_invariance`` compares the
    marginals only, and a parallel (Jacobi) update keeps every marginal exact: the joint is
    where it goes wrong."""
    from scipy import stats

    key_start, key_steps = jax.random.split(jax.random.key(seed))
    start = table_sampler(key_start, num_chains)

    @jax.jit
    def run(positions, key):
        states = jax.vmap(kernel.init, in_axes=(0, None))(positions, table_logdensity)
        for k in jax.random.split(key, num_steps):
            states, _ = jax.vmap(kernel.step, in_axes=(0, 0, None))(
                jax.random.split(k, num_chains), states, table_logdensity
            )
        return states.position

    moved = np.asarray(run(start, key_steps))
    counts = np.bincount(np.ravel_multi_index(moved.T, SHAPE), minlength=PROBS.size)
    return stats.chisquare(counts, num_chains * PROBS.ravel()).pvalue


def test_invariance_sequential_per_element_categories():
    kernel = categorical_gibbs(num_categories=SHAPE)
    testing.assert_invariance(kernel, table_logdensity, table_sampler, num_steps=2)
    assert joint_p_value(kernel) > 1e-3


def test_parallel_update_of_dependent_variables_is_caught():
    # the negative control: a simultaneous draw of dependent variables is not a Gibbs step
    assert joint_p_value(categorical_gibbs(num_categories=SHAPE, parallel=True)) < 1e-6


def test_moments_against_enumeration():
    marginals = [PROBS.sum(axis=tuple(a for a in range(3) if a != j)) for j in range(3)]
    mean = np.array([np.dot(np.arange(k), p) for k, p in zip(SHAPE, marginals)])
    var = np.array([np.dot((np.arange(k) - m) ** 2, p) for k, p, m in zip(SHAPE, marginals, mean)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        res = mc.run_chains(
            table_logdensity,
            categorical_gibbs(num_categories=SHAPE),
            init=jnp.zeros(3, jnp.int32),
            num_chains=4,
            num_samples=3000,
            num_warmup=100,
            progress=False,
            seed=1,
        )
    assert res.samples.dtype == np.int32
    testing.assert_moments(res.samples, mean, var)
    assert np.all(res.stats["accept_prob"] == 1.0)


# a block of conditionally independent binaries next to a continuous parameter:
# mu ~ N(0, 1), z_i | mu ~ Bernoulli(sigmoid(mu + c_i))
OFFSETS = jnp.array([-2.0, -0.5, 0.0, 1.0, 2.5])


def latent_logdensity(p):
    eta = p["mu"] + OFFSETS
    return -0.5 * p["mu"] ** 2 + jnp.sum(p["z"].astype(jnp.float32) * eta - jnp.logaddexp(0.0, eta))


def latent_sampler(key, n):
    key_mu, key_z = jax.random.split(key)
    mu = jax.random.normal(key_mu, (n,))
    z = jax.random.bernoulli(key_z, jax.nn.sigmoid(mu[:, None] + OFFSETS)).astype(jnp.int32)
    return {"mu": mu, "z": z}


def test_parallel_block_inside_gibbs_invariance():
    kernel = gibbs({"z": categorical_gibbs(2, parallel=True), "mu": mc.rwmh(1.0, adapt=False)})
    testing.assert_invariance(kernel, latent_logdensity, latent_sampler, num_steps=4)


def test_nonfinite_value_is_excluded_and_flagged():
    def logdensity(x):
        return jnp.where(x == 1, jnp.nan, 0.0)

    kernel = categorical_gibbs(3)
    state = kernel.init(jnp.zeros((), jnp.int32), logdensity)
    keys = jax.random.split(jax.random.key(0), 200)
    states, infos = jax.jit(jax.vmap(kernel.step, in_axes=(0, None, None)), static_argnums=2)(keys, state, logdensity)
    values = np.asarray(states.position)
    assert set(np.unique(values)) == {0, 2}
    assert np.all(infos.is_nonfinite)


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match=">= 2"):
        categorical_gibbs(1)
    with pytest.raises(ValueError, match=">= 2"):
        categorical_gibbs((3, 1))
    with pytest.raises(ValueError, match=">= 2"):
        categorical_gibbs(2.5)
    with pytest.raises(ValueError, match="integers"):
        categorical_gibbs(2).init(jnp.zeros(2), lambda x: -jnp.sum(x))
    with pytest.raises(ValueError, match="3 values of num_categories"):
        categorical_gibbs((2, 3, 4)).init(jnp.zeros(2, jnp.int32), lambda x: jnp.zeros(()))
    assert categorical_gibbs(3) is categorical_gibbs(3)
