r"""Importance sampling and self-normalized importance sampling (SNIS).

Draw :math:`x_1, \dots, x_n \sim q` and weight each by

.. math::

    \log w_i = \log \tilde p(x_i) - \log q(x_i) .

If :math:`\tilde p` is normalized, :math:`\frac1n \sum_i w_i f(x_i)` is unbiased for
:math:`E_p[f]` (``self_normalized=False``).  If :math:`\tilde p = Z p` is known only up to
:math:`Z`, the self-normalized estimate :math:`\sum_i w_i f(x_i) / \sum_i w_i` is consistent
(biased by :math:`O(1/n)`), and :math:`\frac1n \sum_i w_i` estimates :math:`Z`.  Both need
:math:`q > 0` wherever :math:`\tilde p\,f \neq 0`, and are only as good as the tails of the
weights: a proposal lighter-tailed than the target gives weights of infinite variance.  The
returned :class:`~mcgen.direct.weighted.WeightedSamples` carries the estimators and the
diagnostics that detect this (Kish ESS, Pareto k-hat).

References
----------
A. B. Owen (2013). Monte Carlo theory, methods and examples, chapter 9.
A. Vehtari, D. Simpson, A. Gelman, Y. Yao, J. Gabry (2024). Pareto smoothed importance
sampling. JMLR 25(72).
"""

from __future__ import annotations

from typing import Any, Callable

from mcgen.direct._proposal import check_positive_int, check_proposal, log_ratios
from mcgen.direct.weighted import WeightedSamples
from mcgen.types import Array, ArrayTree, PRNGKey

__all__ = ["importance_sample"]


def importance_sample(
    key: PRNGKey,
    log_target: Callable[[ArrayTree], Array],
    proposal: Any,
    num_samples: int,
    self_normalized: bool = True,
) -> WeightedSamples:
    """Draw ``num_samples`` proposals and weight them by ``log_target - proposal.log_prob``.

    Parameters
    ----------
    key
        PRNG key.
    log_target
        ``log_target(x) -> scalar``: log of the target density; normalized when
        ``self_normalized=False``.
    proposal
        Object with ``sample(key, shape)`` and ``log_prob(x)`` (e.g. a NumPyro distribution),
        positive wherever the target is.
    num_samples
        Number of draws ``n``.
    self_normalized
        Normalize the weights in :meth:`~WeightedSamples.expectation` (SNIS, the default).

    Returns
    -------
    WeightedSamples
        Draws (leaves ``(n, *event_shape)``) and unnormalized log weights ``(n,)``.  Draws with
        ``log_target = -inf`` get weight zero.

    Examples
    --------
    >>> import jax, numpyro.distributions as dist
    >>> log_p = lambda x: dist.Normal(1.0, 0.5).log_prob(x)
    >>> ws = importance_sample(jax.random.key(0), log_p, dist.Normal(0.0, 2.0), 10_000)
    >>> est = ws.expectation(lambda x: x)
    >>> bool(abs(est.mean - 1.0) < 4 * est.mcse)
    True
    """
    check_proposal(log_target, proposal)
    num_samples = check_positive_int(num_samples, "num_samples")
    if not isinstance(self_normalized, bool):
        raise TypeError(f"self_normalized must be a bool, got {type(self_normalized).__name__}")
    draws = proposal.sample(key, (num_samples,))
    log_p, log_q = log_ratios(log_target, proposal, draws)
    return WeightedSamples(draws, log_p - log_q, self_normalized)
