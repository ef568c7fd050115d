"""The sequential exact invariance test (mcgen.testing.exact_invariance_test): its false-rejection
rate is the stated one over 200 seeds, it rejects a one-step bias, and it runs on one Gibbs
block.  Seeds fixed.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import mcgen as mc
from mcgen import testing
from mcgen.combinators import gibbs
from mcgen.types import Kernel


class S(NamedTuple):
    position: jax.Array
    logdensity: jax.Array


def ar1(rho: float, scale: float = 1.0) -> Kernel:
    """x' = rho x + sqrt(1 - rho^2) scale xi: N(0, 1)-invariant exactly for scale = 1."""

    def init(x, f):
        return S(x, f(x))

    def step(key, s, f):
        x = rho * s.position + np.sqrt(1 - rho**2) * scale * jax.random.normal(key, s.position.shape)
        return S(x, f(x)), None

    return Kernel(init, step)


def std_normal(x):
    return -0.5 * jnp.sum(x**2)


def exact(key, n):
    return jax.random.normal(key, (n, 1))


EXACT, BIASED = ar1(0.9), ar1(0.9, 1.3)


def test_false_rejection_rate_is_the_stated_one():
    # alpha 0.2 over 3 batches at levels 0.1, 0.05, 0.025; ranks are exactly uniform, so the
    # rejection rate is exactly 1 - 0.9 * 0.95 * 0.975 (independent batches)
    n = 200
    rejected = sum(
        testing.exact_invariance_test(
            EXACT, std_normal, exact, num_chains=300, max_batches=3, alpha=0.2, seed=s
        ).rejected
        for s in range(n)
    )
    p = 1 - 0.9 * 0.95 * 0.975
    lo, hi = stats.binom.ppf(1e-4, n, p), stats.binom.isf(1e-4, n, p)
    assert lo <= rejected <= hi, (rejected, lo, hi)


def test_power_against_a_one_step_bias():
    # one step of an AR(1) kernel with a 30% too wide innovation: variance 1.13 instead of 1;
    # default alpha 1e-3, the sequential batches find it
    reports = [testing.exact_invariance_test(BIASED, std_normal, exact, seed=s) for s in range(10)]
    assert sum(r.rejected for r in reports) >= 9, [str(r) for r in reports]
    assert "rejected" in str(reports[0])


TARGET = testing.dict_gaussian()


def test_on_a_single_gibbs_block():
    block = gibbs({"loc": mc.rwmh(0.8, adapt=False)})  # only the "loc" block moves
    ok = testing.exact_invariance_test(block, TARGET.logdensity_fn, TARGET.sample, num_steps=2)
    assert ok.passed, str(ok)

    def wrong_conditional(key, x):  # a direct-draw block from N(1, 1) x N(-1, 1): the second scale is 2
        return jnp.array([1.0, -1.0]) + jax.random.normal(key, (2,))

    bad = testing.exact_invariance_test(gibbs({"loc": wrong_conditional}), TARGET.logdensity_fn, TARGET.sample)
    assert bad.rejected, str(bad)
