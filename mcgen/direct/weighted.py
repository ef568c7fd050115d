r"""Weighted draws and their estimators: expectations with MCSE, ESS, Pareto-k, resampling.

A :class:`WeightedSamples` holds draws :math:`x_i` and log weights :math:`\log w_i`, with
normalized weights :math:`\bar w_i = w_i / \sum_j w_j`.  For a function :math:`f`:

* self-normalized (``self_normalized=True``, the target known up to a constant):
  :math:`\hat\mu = \sum_i \bar w_i f(x_i)`, whose delta-method variance estimate is

  .. math::

      \widehat{\operatorname{Var}}(\hat\mu) = \sum_i \bar w_i^2 \, (f(x_i) - \hat\mu)^2 ;

* plain importance sampling (``self_normalized=False``, weights unbiased for a normalized
  target): :math:`\hat\mu = \frac1n \sum_i w_i f(x_i)` with the sample variance of
  :math:`w_i f(x_i)` over :math:`n`.

Kish's effective sample size is :math:`(\sum_i w_i)^2 / \sum_i w_i^2 = 1 / \sum_i \bar w_i^2`.
It cannot see weights that *should* have been large but were never drawn, so the Pareto-k
diagnostic (PSIS, Vehtari et al. 2024) fits a generalized Pareto tail to the largest weights:
:math:`\hat k > 0.7` means the estimate is unreliable whatever the ESS says.

Resampling maps weighted draws to ``n`` equally weighted ones.  All four schemes are unbiased
(each index is copied :math:`n \bar w_i` times on average); ``systematic``, ``stratified`` and
``residual`` have lower variance than ``multinomial`` (Douc, Cappé and Moulines 2005), but
their output draws are dependent.  ``multinomial`` is the default because its draws are
independent given the weights, so standard errors computed from them stay honest.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from mcgen import diagnostics
from mcgen.direct._proposal import check_positive_int, is_concrete
from mcgen.types import Array, ArrayTree, PRNGKey

__all__ = ["Estimate", "ImportanceWeightWarning", "WeightedSamples", "resample_indices"]

PARETO_K_THRESHOLD = 0.7
"""Above this k-hat the PSIS estimate is unreliable (Vehtari et al. 2024, section 3.2.4)."""

RESAMPLING_METHODS = ("multinomial", "systematic", "stratified", "residual")


def _weighted(w: Array, fx: Array) -> Array:
    """``w[i] * fx[i, ...]`` with ``w`` broadcast over the event axes of ``fx``."""
    return w.reshape(w.shape + (1,) * (fx.ndim - 1)) * fx


def _blocked_sum(x: Array, block: int = 1024) -> Array:
    """Sum over the leading axis in two levels (blocks, then block totals).

    A float32 running sum of a million terms drifts by ~1e-3 relative; summing blocks of
    1024 first bounds the error by about ``(block + n / block)`` roundings.
    """
    n = x.shape[0]
    if n <= block:
        return jnp.sum(x, axis=0)
    pad = (-n) % block
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    return jnp.sum(jnp.sum(x.reshape((-1, block) + x.shape[1:]), axis=1), axis=0)


class ImportanceWeightWarning(UserWarning):
    """The importance weights are too heavy-tailed for a reliable estimate (k-hat > 0.7)."""


class Estimate(NamedTuple):
    """A Monte Carlo estimate with its Monte Carlo standard error."""

    mean: Array
    mcse: Array


def resample_indices(key: PRNGKey, log_weights: Array, n: int, method: str = "multinomial") -> Array:
    """``n`` indices into the draws, each drawn with probability proportional to its weight.

    Parameters
    ----------
    key
        PRNG key.
    log_weights
        Log weights, shape ``(N,)``, normalized or not.
    n
        Number of indices.
    method
        ``"multinomial"`` (default), ``"systematic"``, ``"stratified"`` or ``"residual"``.

    Returns
    -------
    Integer array of shape ``(n,)``.
    """
    n = check_positive_int(n, "n")
    if method not in RESAMPLING_METHODS:
        raise ValueError(f"method must be one of {RESAMPLING_METHODS}, got {method!r}")
    log_weights = jnp.asarray(log_weights)
    num = log_weights.shape[0]
    if method == "multinomial":
        return jax.random.categorical(key, log_weights, shape=(n,))
    weights = jax.nn.softmax(log_weights)
    slots = jnp.arange(n, dtype=weights.dtype)
    if method == "residual":
        key_det, key_rest = jax.random.split(key)
        copies = jnp.floor(n * weights)
        # slot j < sum(copies) goes deterministically to the draw whose copies cover it
        det = jnp.searchsorted(jnp.cumsum(copies), slots, side="right")
        rest = jax.random.categorical(key_rest, jnp.log(n * weights - copies), shape=(n,))
        return jnp.where(slots < jnp.sum(copies), jnp.minimum(det, num - 1), rest)
    if method == "systematic":
        u = (slots + jax.random.uniform(key, dtype=weights.dtype)) / n
    else:  # stratified
        u = (slots + jax.random.uniform(key, (n,), dtype=weights.dtype)) / n
    cdf = jnp.cumsum(weights)
    return jnp.minimum(jnp.searchsorted(cdf, u * cdf[-1], side="right"), num - 1)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["samples", "log_weights"],
    meta_fields=["self_normalized"],
)
@dataclasses.dataclass(frozen=True)
class WeightedSamples:
    """Draws with log importance weights.

    Attributes
    ----------
    samples
        Pytree of draws, leaves of shape ``(n, *event_shape)``.
    log_weights
        Unnormalized log weights, shape ``(n,)``.
    self_normalized
        Whether :meth:`expectation` normalizes the weights (target known up to a constant)
        or trusts them to be unbiased (normalized target).

    Examples
    --------
    >>> import jax, numpyro.distributions as dist
    >>> from mcgen.direct import importance_sample
    >>> log_p = lambda x: dist.Normal(0.0, 1.0).log_prob(x)    # E[x^2] = 1
    >>> ws = importance_sample(jax.random.key(0), log_p, dist.Normal(0.0, 2.0), 10_000)
    >>> est = ws.expectation(lambda x: x**2)
    >>> bool(abs(est.mean - 1.0) < 4 * est.mcse), bool(ws.ess() > 1000), bool(ws.pareto_k() < 0.5)
    (True, True, True)
    """

    samples: ArrayTree
    log_weights: Array | np.ndarray
    self_normalized: bool = True

    @property
    def num_samples(self) -> int:
        """Number of draws ``n``; checks that the weights and draws agree."""
        shape = jnp.shape(self.log_weights)
        if len(shape) != 1:
            raise ValueError(f"log_weights must have shape (n,), got {shape}")
        for leaf in jax.tree_util.tree_leaves(self.samples):
            if jnp.shape(leaf)[:1] != shape:
                raise ValueError(
                    f"samples leaves need leading axis {shape[0]} to match log_weights, "
                    f"got a leaf of shape {jnp.shape(leaf)}"
                )
        return shape[0]

    def normalized_weights(self) -> Array:
        r""":math:`\bar w_i`, summing to one."""
        return jax.nn.softmax(jnp.asarray(self.log_weights))

    def ess(self) -> Array:
        r"""Kish's effective sample size :math:`1 / \sum_i \bar w_i^2`."""
        lw = jnp.asarray(self.log_weights)
        lw = lw - jnp.max(lw)  # keeps the float32 logsumexps O(log n) for precision
        return jnp.exp(2 * logsumexp(lw) - logsumexp(2 * lw))

    def expectation(self, f: Callable[[ArrayTree], Any] | None = None) -> Estimate:
        """Estimate ``E[f(X)]`` under the target, with its MCSE (see the module docstring).

        ``f`` maps one draw to an array (any shape) or pytree of arrays; ``None`` is identity.
        """
        n = self.num_samples
        values = jax.vmap(f)(self.samples) if f is not None else self.samples
        lw = jnp.asarray(self.log_weights)

        def one(fx):
            fx = fx.astype(lw.dtype) if not jnp.issubdtype(fx.dtype, jnp.inexact) else fx
            if self.self_normalized:
                u = jnp.exp(lw - jnp.max(lw))
                w = u / _blocked_sum(u)
                mean = _blocked_sum(_weighted(w, fx))
                var = _blocked_sum(_weighted(w**2, (fx - mean) ** 2))
                return Estimate(mean, jnp.sqrt(var))
            shift = jnp.max(lw)
            wf = _weighted(jnp.exp(lw - shift), fx)
            scale = jnp.exp(shift)
            mean = _blocked_sum(wf) / n
            sd = jnp.sqrt(_blocked_sum((wf - mean) ** 2) / max(n - 1, 1))
            return Estimate(scale * mean, scale * sd / math.sqrt(n))

        parts = jax.tree_util.tree_map(one, values)
        is_est = lambda x: isinstance(x, Estimate)  # noqa: E731
        mean = jax.tree_util.tree_map(lambda e: e.mean, parts, is_leaf=is_est)
        mcse = jax.tree_util.tree_map(lambda e: e.mcse, parts, is_leaf=is_est)
        return Estimate(mean, mcse)

    def log_normalizer(self) -> Estimate:
        r"""Estimate of :math:`\log Z`, :math:`Z = \int \tilde p`, from :math:`\frac1n\sum_i w_i`.

        Meaningful when the weights are :math:`\tilde p / q` with a normalized proposal.  The
        MCSE is the delta-method :math:`\operatorname{sd}(w) / (\sqrt n\, \bar w)`.
        """
        n = self.num_samples
        lw = jnp.asarray(self.log_weights)
        rel_var = (n * jnp.sum(self.normalized_weights() ** 2) - 1) / max(n - 1, 1)
        return Estimate(logsumexp(lw) - math.log(n), jnp.sqrt(jnp.maximum(rel_var, 0)))

    def _host_log_weights(self, what: str) -> np.ndarray:
        if not is_concrete(self.log_weights):
            raise TypeError(f"{what} runs on the host (ArviZ): call it outside jax.jit / vmap")
        self.num_samples  # noqa: B018  (shape check)
        return np.asarray(self.log_weights, dtype=np.float64)

    def pareto_k(self, warn: bool = True) -> float:
        """PSIS Pareto shape ``k-hat`` of the weights; warns when above 0.7 (unreliable)."""
        _, k = diagnostics.psis_smooth(self._host_log_weights("pareto_k"))
        if warn and k > PARETO_K_THRESHOLD:
            warnings.warn(
                f"Pareto k-hat = {k:.2f} > {PARETO_K_THRESHOLD}: the importance weights are too "
                f"heavy-tailed for a reliable estimate (ESS = {float(self.ess()):.1f} of "
                f"{self.num_samples} cannot be trusted).  Use a proposal with heavier tails, "
                "closer to the target.",
                ImportanceWeightWarning,
                stacklevel=2,
            )
        return k

    def smooth(self) -> "WeightedSamples":
        """The same draws with Pareto-smoothed (PSIS) log weights, normalized."""
        smoothed, _ = diagnostics.psis_smooth(self._host_log_weights("smooth"))
        lw = jnp.asarray(smoothed, dtype=jnp.asarray(self.log_weights).dtype)
        return WeightedSamples(self.samples, lw, self.self_normalized)

    def resample(self, key: PRNGKey, n: int, method: str = "multinomial") -> ArrayTree:
        """``n`` equally weighted draws (leaves ``(n, *event_shape)``); see :func:`resample_indices`."""
        self.num_samples  # noqa: B018  (shape check)
        idx = resample_indices(key, jnp.asarray(self.log_weights), n, method)
        return jax.tree_util.tree_map(lambda leaf: leaf[idx], self.samples)

    def to_arviz(self) -> Any:
        """``arviz.InferenceData`` with the draws as one chain and ``sample_stats.log_weight``."""
        self._host_log_weights("to_arviz")
        return diagnostics.weighted_to_arviz(self.samples, self.log_weights)
