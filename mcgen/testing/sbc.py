"""Simulation-based calibration (Talts et al. 2018): does a sampler recover the prior?

Draw :math:`\\tilde\\theta \\sim p(\\theta)` and data :math:`\\tilde y \\sim p(y \\mid \\tilde\\theta)`,
then ``L`` posterior draws :math:`\\theta_1, \\dots, \\theta_L` given :math:`\\tilde y`.  If the
sampler is exact, :math:`\\tilde\\theta` is just one more draw from that posterior, so for any
scalar :math:`f` the rank

.. math::

    r = \\#\\{\\ell : f(\\theta_\\ell) < f(\\tilde\\theta)\\} \\in \\{0, \\dots, L\\}

is uniform over simulations.  A sampler whose posterior is too narrow gives U-shaped ranks, one
too wide a hump, a biased one a slope.  The draws must be nearly independent (thin the chain
to about its ESS): autocorrelated draws give non-uniform ranks even for a correct kernel.

:func:`sbc` runs every simulation as one chain of a single compiled program (``vmap`` over
simulations of warmup and thinned sampling, the data passed as an array, so the log-density
closure ``lambda theta: logdensity(theta, y)`` is built inside the traced code), then tests the
ranks of each coordinate for uniformity with a chi-square test on equal bins of ranks,
Bonferroni over coordinates (:func:`rank_uniformity`): a correct sampler fails with
probability at most about ``alpha``.  ``SBCReport.plot`` draws ArviZ's ECDF-difference plot
with simultaneous confidence bands.

References
----------
Talts, S., Betancourt, M., Simpson, D., Vehtari, A. and Gelman, A. (2018). Validating Bayesian
inference algorithms with simulation-based calibration. arXiv:1804.06788.
Säilynoja, T., Bürkner, P.-C. and Vehtari, A. (2022). Graphical test for discrete uniformity
and its applications in goodness-of-fit evaluation and multiple sample comparison. Stat. Comput.

Example
-------
>>> import jax, jax.numpy as jnp, mcgen as mc
>>> prior = lambda key: jax.random.normal(key, (1,))                  # theta ~ N(0, 1)
>>> simulate = lambda key, th: th + jax.random.normal(key, (5,))      # y_i ~ N(theta, 1)
>>> logdensity = lambda th, y: -0.5 * jnp.sum(th**2) - 0.5 * jnp.sum((y - th) ** 2)
>>> rep = mc.testing.sbc(mc.rwmh(), prior, simulate, logdensity, num_simulations=100, thin=5)
>>> rep.passed                                                         # doctest: +SKIP
True
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy import stats as sps

from mcgen.types import Kernel, no_warmup
from mcgen.testing._report import BonferroniDecision

__all__ = ["SBCReport", "rank_uniformity", "sbc"]


def _num_bins(num_ranks: int, num_simulations: int, requested: int | None) -> int:
    """Equal bins of ranks: a divisor of ``num_ranks`` with at least 5 expected per bin."""
    if requested is not None:
        if num_ranks % requested:
            raise ValueError(f"num_bins={requested} must divide the number of possible ranks {num_ranks}")
        return requested
    divisors = [b for b in range(2, min(num_ranks, 50) + 1) if num_ranks % b == 0 and num_simulations / b >= 5]
    if not divisors:
        raise ValueError(f"too few simulations ({num_simulations}) for a rank test with {num_ranks} ranks")
    return max(divisors)


def rank_uniformity(ranks: np.ndarray, num_draws: int, num_bins: int | None = None) -> np.ndarray:
    """Chi-square p-value of uniformity over ``{0, ..., num_draws}`` for each column of ``ranks``.

    Ranks are grouped into ``num_bins`` equal bins (default: the largest divisor of
    ``num_draws + 1`` up to 50 with at least 5 simulations expected per bin).

    Parameters
    ----------
    ranks
        Integer array ``(num_simulations, d)``.
    num_draws
        Posterior draws per simulation ``L`` (ranks lie in ``0..L``).

    Returns
    -------
    np.ndarray
        ``(d,)`` p-values.

    Example
    -------
    >>> r = np.random.default_rng(0).integers(0, 100, (200, 3))
    >>> rank_uniformity(r, 99).shape
    (3,)
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2:
        raise ValueError(f"ranks must be (num_simulations, d), got shape {ranks.shape}")
    if ranks.min() < 0 or ranks.max() > num_draws:
        raise ValueError(f"ranks must lie in 0..{num_draws}")
    n = ranks.shape[0]
    bins = _num_bins(num_draws + 1, n, num_bins)
    width = (num_draws + 1) // bins
    counts = np.stack([np.bincount(ranks[:, j] // width, minlength=bins) for j in range(ranks.shape[1])])
    return sps.chisquare(counts, axis=1).pvalue


@dataclasses.dataclass
class SBCReport(BonferroniDecision):
    """Ranks of the true parameters among posterior draws, and their uniformity test."""

    ranks: np.ndarray  # (num_simulations, d) in 0..num_draws
    num_draws: int
    p_values: np.ndarray  # (d,) chi-square uniformity p-values
    alpha: float
    names: list

    def __str__(self) -> str:
        worst = self.names[int(np.argmin(self.p_values))]
        return (f"SBC: {self.ranks.shape[0]} simulations, {self.num_draws} draws each; adjusted p = "
                f"{self.p_value:.3g} (alpha {self.alpha}); least uniform: {worst}; failing: {self.failing}")

    def plot(self, coordinate: int = 0, ax=None):
        """ArviZ's ECDF-difference plot of one coordinate's scaled ranks, with simultaneous bands."""
        import arviz as az

        u = (self.ranks[:, coordinate] + 0.5) / (self.num_draws + 1)
        return az.plot_ecdf(u, cdf=sps.uniform().cdf, difference=True, confidence_bands=True, ax=ax)


@functools.lru_cache(maxsize=32)
def _runner(kernel: Kernel, prior_sample: Callable, simulate: Callable, logdensity: Callable,
            num_warmup: int, num_draws: int, thin: int):
    """Compiled ``keys -> (true flat params, flat draws)`` over a batch of simulations."""
    warmup = (kernel.warmup or no_warmup(kernel))(num_warmup) if num_warmup > 0 else None

    def one(key):
        key_prior, key_data, key_init, key_warm, key_sample = jax.random.split(key, 5)
        truth = prior_sample(key_prior)
        data = simulate(key_data, truth)

        def target(theta):
            return logdensity(theta, data)

        state = kernel.init(prior_sample(key_init), target)  # start at an independent prior draw
        if warmup is not None:
            def warm_step(ws, k):
                return warmup.step(k, ws, target)[0], None

            ws, _ = jax.lax.scan(warm_step, warmup.init(state), jax.random.split(key_warm, num_warmup))
            state = warmup.finalize(ws)

        def draw(st, k):
            st, _ = jax.lax.scan(lambda s, kk: (kernel.step(kk, s, target)[0], None), st, jax.random.split(k, thin))
            return st, ravel_pytree(st.position)[0]

        _, draws = jax.lax.scan(draw, state, jax.random.split(key_sample, num_draws))
        return ravel_pytree(truth)[0], draws

    return jax.jit(jax.vmap(one))


def sbc(kernel: Kernel, prior_sample: Callable[[jax.Array], Any], simulate: Callable[[jax.Array, Any], Any],
        logdensity: Callable[[Any, Any], jax.Array], *, num_simulations: int = 200, num_draws: int = 99,
        thin: int = 10, num_warmup: int = 200, seed: int = 0, alpha: float = 1e-3,
        num_bins: int | None = None, names: list | None = None) -> SBCReport:
    """Simulation-based calibration of ``kernel`` on a model given as a triple.

    Parameters
    ----------
    kernel
        Any mcgen kernel (its warmup adapts per simulation).
    prior_sample
        ``prior_sample(key) -> theta``, a pytree in the space the kernel samples
        (unconstrained: give ``log sigma``, not ``sigma``).
    simulate
        ``simulate(key, theta) -> data`` (an array pytree of fixed shape).
    logdensity
        ``logdensity(theta, data) -> scalar``: log prior plus log likelihood, up to a constant.
    num_simulations, num_draws, thin, num_warmup
        Simulated data sets (run as parallel chains), kept draws ``L`` per data set (ranks lie
        in ``0..L``; ``L + 1`` should have many divisors, e.g. 99), steps between kept draws
        (make it about the autocorrelation time), warmup steps per data set.
    seed, alpha
        Seed of everything; level of the Bonferroni rank test over coordinates.
    num_bins
        Bins of the chi-square test (default: see :func:`rank_uniformity`).
    names
        Labels of the flattened coordinates (default ``theta[i]``).

    Returns
    -------
    SBCReport
        ``ranks``, per-coordinate ``p_values``, ``passed``, ``failing`` and ``plot()``.
    """
    for name, value in (("num_simulations", num_simulations), ("num_draws", num_draws), ("thin", thin)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"sbc: {name} must be a positive integer, got {value!r}")
    if not isinstance(num_warmup, (int, np.integer)) or num_warmup < 0:
        raise ValueError(f"sbc: num_warmup must be an integer >= 0, got {num_warmup!r}")
    run = _runner(kernel, prior_sample, simulate, logdensity, int(num_warmup), int(num_draws), int(thin))
    keys = jax.random.split(jax.random.key(seed), num_simulations)
    truth, draws = run(keys)
    truth, draws = np.asarray(truth), np.asarray(draws)  # (S, d), (S, L, d)
    ranks = np.sum(draws < truth[:, None, :], axis=1)
    names = names if names is not None else [f"theta[{i}]" for i in range(truth.shape[1])]
    if len(names) != truth.shape[1]:
        raise ValueError(f"sbc: {len(names)} names for {truth.shape[1]} coordinates")
    return SBCReport(ranks, int(num_draws), rank_uniformity(ranks, num_draws, num_bins), alpha, list(names))
