"""An exact, sequential test that one kernel step leaves the target invariant.

In the spirit of Gandy & Scott (2020, "Unit testing for MCMC and other Monte Carlo methods"):
if :math:`x \\sim \\pi` exactly and :math:`x' \\sim K(x, \\cdot)`, then :math:`x' \\sim \\pi` when
``K`` is :math:`\\pi`-invariant.  For each of ``n`` independent chains and each test function
:math:`g` (default: every coordinate and its square), the rank of :math:`g(x')` among ``M`` fresh exact draws,
randomized over ties, :math:`u = (r + U) / (M + 1)`, is *exactly* uniform on (0, 1) under the
null hypothesis, whatever ``n`` and ``M``: no asymptotics, no autocorrelation, no error bars
to estimate.  A one-sample Kolmogorov–Smirnov test (exact p-value) checks the ``u``'s, with
Bonferroni over the test functions.

The test is sequential: batch ``k = 1, 2, ...`` of fresh chains is tested at level
:math:`\\alpha / 2^k` (alpha spending), and the test stops at the first rejection or after
``max_batches``; so a correct kernel is rejected with probability below :math:`\\alpha` in
total, however many batches run, while a subtle error gets more chains until it shows.

It needs only ``kernel.step`` and an exact sampler of the target, so it applies to a single
Gibbs block: wrap it as ``gibbs({"block": kernel})`` on the joint target and sample the joint
exactly.

References
----------
Gandy, A. and Scott, J. (2020). Unit testing for MCMC and other Monte Carlo methods.
arXiv:2001.06465.

Example
-------
>>> import jax, jax.numpy as jnp, mcgen as mc
>>> target = mc.testing.correlated_gaussian(3, 0.5)
>>> rep = mc.testing.exact_invariance_test(mc.rwmh(0.5, adapt=False), target.logdensity_fn,
...                                        target.sample)
>>> rep.rejected                                                       # doctest: +SKIP
False
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

from mcgen.types import Kernel

__all__ = ["ExactInvarianceReport", "exact_invariance_test"]


@dataclasses.dataclass
class ExactInvarianceReport:
    """The batches run, each batch's Bonferroni p-value and level, and the decision."""

    p_values: list  # per batch: adjusted p-value
    levels: list  # per batch: alpha / 2^k
    worst: list  # per batch: index of the least uniform test function
    alpha: float

    @property
    def rejected(self) -> bool:
        return any(p < lv for p, lv in zip(self.p_values, self.levels))

    @property
    def passed(self) -> bool:
        return not self.rejected

    def __str__(self) -> str:
        verdict = "rejected" if self.rejected else "not rejected"
        return (
            f"exact invariance test: {verdict} after {len(self.p_values)} batch(es) "
            f"(total level {self.alpha}); adjusted p-values {np.round(self.p_values, 5).tolist()}"
        )


@functools.lru_cache(maxsize=32)
def _runner(kernel: Kernel, logdensity_fn, exact_sampler, statistics, num_chains: int, num_fresh: int, num_steps: int):
    def flat_stats(x):
        if statistics is not None:
            return statistics(x)
        flat = ravel_pytree(x)[0]
        return jnp.concatenate([flat, flat**2])  # location and scale of every coordinate

    @jax.jit
    def batch(key):
        key_start, key_fresh, key_steps = jax.random.split(key, 3)
        start = exact_sampler(key_start, num_chains)

        def one(x, k):
            state = kernel.init(x, logdensity_fn)
            state = jax.lax.fori_loop(
                0, num_steps, lambda i, s: kernel.step(jax.random.fold_in(k, i), s, logdensity_fn)[0], state
            )
            return flat_stats(state.position)

        moved = jax.vmap(one)(start, jax.random.split(key_steps, num_chains))  # (n, m)
        fresh = exact_sampler(key_fresh, num_chains * num_fresh)
        fresh = jax.vmap(flat_stats)(fresh).reshape(num_chains, num_fresh, -1)  # (n, M, m)
        below = (fresh < moved[:, None, :]).sum(axis=1)
        ties = (fresh == moved[:, None, :]).sum(axis=1)
        return below, ties

    return batch


def exact_invariance_test(
    kernel: Kernel,
    logdensity_fn: Callable,
    exact_sampler: Callable[[jax.Array, int], Any],
    *,
    num_chains: int = 10000,
    num_fresh: int = 19,
    num_steps: int = 1,
    max_batches: int = 6,
    alpha: float = 1e-3,
    statistics: Callable | None = None,
    seed: int = 0,
) -> ExactInvarianceReport:
    """Sequential exact test that ``num_steps`` steps of ``kernel`` leave the target invariant.

    Parameters
    ----------
    kernel
        The kernel under test, with the parameters its ``init`` sets.
    logdensity_fn
        The target it should leave invariant.
    exact_sampler
        ``exact_sampler(key, n)``: ``n`` exact draws of the target (leading axis ``n``).
    num_chains, num_fresh
        Chains per batch; fresh exact draws per chain that rank it.
    num_steps
        Kernel steps per chain (1: the test of one transition).
    max_batches
        Batches before the test stops without rejecting; batch ``k`` runs at level
        ``alpha / 2**k``, so a correct kernel is rejected with probability below ``alpha``.
    statistics
        ``statistics(x) -> (m,)`` test functions of one position (default: every coordinate
        and its square).
    seed
        Seed of everything.

    Returns
    -------
    ExactInvarianceReport
        ``rejected`` / ``passed``, and each batch's adjusted p-value.
    """
    if num_chains < 10 or num_fresh < 1 or max_batches < 1:
        raise ValueError("exact_invariance_test: need num_chains >= 10, num_fresh >= 1 and max_batches >= 1")
    batch = _runner(kernel, logdensity_fn, exact_sampler, statistics, int(num_chains), int(num_fresh), int(num_steps))
    rng = np.random.default_rng(seed)
    report = ExactInvarianceReport([], [], [], alpha)
    for k in range(1, max_batches + 1):
        below, ties = (np.asarray(a) for a in batch(jax.random.fold_in(jax.random.key(seed), k)))
        # randomized rank among M + 1 values: exactly uniform on (0, 1) under invariance
        u = (below + rng.uniform(size=below.shape) * (ties + 1)) / (num_fresh + 1)
        p = np.array([sps.kstest(u[:, j], "uniform", method="exact").pvalue for j in range(u.shape[1])])
        report.p_values.append(float(min(1.0, p.min() * p.size)))
        report.levels.append(alpha / 2**k)
        report.worst.append(int(np.argmin(p)))
        if report.rejected:
            break
    return report
