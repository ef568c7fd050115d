"""Geweke's joint-distribution test (2004): a posterior sampler and the prior must agree.

A model :math:`p(\\theta)\\,p(y \\mid \\theta)` has two ways to draw from the joint:

* *marginal-conditional*: :math:`\\theta \\sim p(\\theta)`, :math:`y \\sim p(y \\mid \\theta)`, iid;
* *successive-conditional*: from one such draw, alternate a step of the kernel under test,
  which must leave :math:`p(\\theta \\mid y)` invariant, with :math:`y \\sim p(y \\mid \\theta)`.

Both leave the joint invariant if and only if the kernel is right (for the test functions
used), so the means of test functions :math:`g(\\theta, y)` must agree.  mcgen runs many
independent successive-conditional chains at once (``vmap``), each started from an exact
joint draw, so the chains are stationary from the first step and the standard error of a
mean comes from the spread of the chain means (no autocorrelation estimate).  Each test
function gets a Welch z-score; the report lists which disagree.  With ``m`` test functions
and bound ``z`` a correct kernel fails with probability about ``m * 2 * (1 - Phi(z))``
(Student-t tails with ``num_chains - 1`` degrees of freedom, which the p-values use).

References
----------
Geweke, J. (2004). Getting it right: joint distribution tests of posterior simulators.
JASA 99, 799–804.

Example
-------
>>> import jax, jax.numpy as jnp, mcgen as mc
>>> prior = lambda key: jax.random.normal(key, (1,))
>>> simulate = lambda key, th: th + jax.random.normal(key, (5,))
>>> logdensity = lambda th, y: -0.5 * jnp.sum(th**2) - 0.5 * jnp.sum((y - th) ** 2)
>>> rep = mc.testing.geweke(mc.mala(0.5, adapt=False), prior, simulate, logdensity)
>>> rep.passed                                                        # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy import stats as sps

from mcgen.testing._report import BonferroniDecision
from mcgen.types import Kernel

__all__ = ["GewekeReport", "geweke"]


def default_statistics(theta, y):
    """Every coordinate of :math:`\\theta` and its square (first and second moments)."""
    del y
    flat = ravel_pytree(theta)[0]
    return jnp.concatenate([flat, flat**2])


@dataclasses.dataclass
class GewekeReport(BonferroniDecision):
    """Means of each test function under both simulators, their z-scores and p-values."""

    successive: np.ndarray
    marginal: np.ndarray
    z_scores: np.ndarray
    p_values: np.ndarray
    names: list
    alpha: float

    def __str__(self) -> str:
        rows = [
            f"{n}: successive {s:.4g}, marginal {m:.4g}, z {z:+.2f}"
            for n, s, m, z in zip(self.names, self.successive, self.marginal, self.z_scores)
        ]
        return f"Geweke: adjusted p = {self.p_value:.3g} (alpha {self.alpha}); disagree: {self.failing}\n" + "\n".join(
            rows
        )


@functools.lru_cache(maxsize=32)
def _runner(kernel: Kernel, prior_sample, simulate, logdensity, statistics, num_steps: int, steps_per_data: int):
    def joint(key):
        key_theta, key_y = jax.random.split(key)
        theta = prior_sample(key_theta)
        return theta, simulate(key_y, theta)

    def marginal(key):
        return statistics(*joint(key))

    def successive(key):
        key_start, key_run = jax.random.split(key)
        theta, y = joint(key_start)

        def sweep(carry, k):
            theta, y = carry
            key_kernel, key_y = jax.random.split(k)
            target = lambda th: logdensity(th, y)  # noqa: E731
            state = kernel.init(theta, target)
            state = jax.lax.fori_loop(
                0, steps_per_data, lambda i, s: kernel.step(jax.random.fold_in(key_kernel, i), s, target)[0], state
            )
            theta = state.position
            y = simulate(key_y, theta)
            return (theta, y), statistics(theta, y)

        _, stats = jax.lax.scan(sweep, (theta, y), jax.random.split(key_run, num_steps))
        return stats.mean(axis=0)

    return jax.jit(jax.vmap(marginal)), jax.jit(jax.vmap(successive))


def geweke(
    kernel: Kernel,
    prior_sample: Callable[[jax.Array], Any],
    simulate: Callable[[jax.Array, Any], Any],
    logdensity: Callable[[Any, Any], jax.Array],
    *,
    statistics: Callable | None = None,
    names: list | None = None,
    num_chains: int = 200,
    num_steps: int = 100,
    steps_per_data: int = 1,
    num_marginal: int = 20000,
    seed: int = 0,
    alpha: float = 1e-3,
) -> GewekeReport:
    """Geweke's successive-conditional test of ``kernel`` on the model ``(prior, simulate)``.

    Parameters
    ----------
    kernel
        The kernel (or Gibbs sweep) under test, used with the parameters its ``init`` sets
        (no warmup: fix the step size in the constructor).
    prior_sample, simulate, logdensity
        ``prior_sample(key) -> theta``; ``simulate(key, theta) -> y``; ``logdensity(theta, y)``,
        the log prior plus log likelihood up to a constant.
    statistics
        ``statistics(theta, y) -> (m,)`` test functions (default: every coordinate of theta
        and its square).
    names
        Labels of the test functions.
    num_chains, num_steps, steps_per_data
        Independent successive-conditional chains, sweeps per chain, kernel steps between
        two data draws.
    num_marginal
        iid marginal-conditional draws.
    seed, alpha
        Seed of everything; level of the Bonferroni test over the test functions.

    Returns
    -------
    GewekeReport
        ``successive``, ``marginal`` means, ``z_scores``, ``p_values``, ``passed`` and
        ``failing`` (the test functions that disagree).
    """
    if num_chains < 10:
        raise ValueError(
            f"geweke: num_chains must be at least 10 (the standard error comes from them), got {num_chains}"
        )
    statistics = statistics or default_statistics
    run_marginal, run_successive = _runner(
        kernel, prior_sample, simulate, logdensity, statistics, int(num_steps), int(steps_per_data)
    )
    key_m, key_s = jax.random.split(jax.random.key(seed))
    g_m = np.asarray(run_marginal(jax.random.split(key_m, num_marginal)), np.float64)
    g_s = np.asarray(run_successive(jax.random.split(key_s, num_chains)), np.float64)
    mean_m, mean_s = g_m.mean(0), g_s.mean(0)
    se = np.sqrt(g_m.var(0, ddof=1) / num_marginal + g_s.var(0, ddof=1) / num_chains)
    z = (mean_s - mean_m) / se
    p = 2 * sps.t.sf(np.abs(z), df=num_chains - 1)
    names = names if names is not None else [f"g[{i}]" for i in range(z.size)]
    if len(names) != z.size:
        raise ValueError(f"geweke: {len(names)} names for {z.size} test functions")
    return GewekeReport(mean_s, mean_m, z, p, list(names), alpha)
