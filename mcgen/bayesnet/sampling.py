r"""Ancestral sampling of a Bayesian network: forward, rejection and likelihood weighting.

**Forward (ancestral) sampling** visits the variables in topological order and draws each
from its CPT row given the parents already drawn.  Each draw is exact and independent.  One
uniform :math:`u` per variable and sample suffices: the state is the number of cumulative
row sums :math:`u` passes (inverse-CDF sampling).  The loop over variables follows the
topological order; every operation inside it is vectorized over a chunk of ``CHUNK_SIZE``
samples.
One compiled chunk is dispatched (asynchronously) as often as needed, so a network compiles
once per evidence set whatever the number of samples.

**Rejection sampling** keeps the forward draws that agree with the evidence :math:`e`; the
kept draws are exact draws from :math:`p(x \mid e)` and the acceptance rate estimates
:math:`p(e)`, which is also why it fails when the evidence is unlikely.

**Likelihood weighting** (Fung and Chang 1990; Shachter and Peot 1990) clamps the evidence
variables instead of sampling them and weights each draw by the likelihood of the evidence
given its sampled parents,

.. math::

    \log w = \sum_{j \in E} \log p(e_j \mid x_{\mathrm{pa}(j)}),

an importance sampler whose proposal is the network "mutilated" at the evidence.  The draws
come back as a :class:`mcgen.direct.WeightedSamples` (``ess``, ``expectation``,
``log_normalizer``); ``bn.query`` computes its estimates from the same draws in float64.

Every function takes the network (validated) and plain settings.  The compiled chunk reads
the network from flat padded arrays (:mod:`._tables`) in a ``fori_loop`` over variables, so
its size does not grow with the network and a second query, with any evidence, compiles
nothing.  Sample ``i`` depends only on the seed and
``i`` (chunks have a fixed size and chunk ``c`` uses ``fold_in(key, c)``).

References
----------
Koller, D. and Friedman, N. (2009). *Probabilistic Graphical Models*, sections 12.1-12.2.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mcgen.bayesnet._tables import FlatNet, flatten_network
from mcgen.direct.weighted import WeightedSamples

__all__ = ["forward_sample", "likelihood_weighting", "rejection_sample", "draw"]

CHUNK_SIZE = 16384
"""Samples per vectorized chunk: large enough to amortize dispatch, small enough for cache."""


def _draw_chunk(key, flat: FlatNet, clamp_mask, clamp_values, keep, weight_clamped: bool, size: int):
    """One chunk: values of the ``keep`` variables ``(len(keep), size)`` and log weights."""
    num_vars = flat.card.shape[0]
    u = jax.random.uniform(key, (num_vars, size), dtype=jnp.float32)

    def visit(i, carry):
        values, logw = carry
        row = flat.row_offset[i] + jnp.sum(values[flat.parents[i]] * flat.strides[i][:, None], axis=0)
        drawn = jnp.sum(u[i][:, None] >= flat.cdf[row], axis=-1, dtype=jnp.int32)
        clamped, value = clamp_mask[i], clamp_values[i]
        if weight_clamped:  # likelihood weighting: clamp, weight by p(e_i | parents)
            x = jnp.where(clamped, value, drawn)
            logw = logw + jnp.where(clamped, flat.logp[row, value], jnp.float32(0.0))
        else:  # rejection: weight 0 (log -inf) when the draw disagrees with e_i
            x = drawn
            logw = jnp.where(clamped & (drawn != value), -jnp.inf, logw)
        return values.at[i].set(x), logw

    values = jnp.zeros((num_vars, size), jnp.int32)
    values, logw = jax.lax.fori_loop(0, num_vars, visit, (values, jnp.zeros((size,), jnp.float32)))
    return values[keep], logw


@functools.partial(jax.jit, static_argnames=("weight_clamped",))
def _chunk(key, chunk, flat, clamp_mask, clamp_values, keep, *, weight_clamped):
    return _draw_chunk(jax.random.fold_in(key, chunk), flat, clamp_mask, clamp_values, keep, weight_clamped, CHUNK_SIZE)


def draw(
    bn,
    num_samples: int,
    *,
    evidence: Mapping[str, Any] | None = None,
    mode: str = "forward",
    keep: Sequence[str] | None = None,
    seed: int | jax.Array = 0,
):
    """Draw ``num_samples`` ancestral samples; the engine under the public samplers.

    Parameters
    ----------
    bn
        The network.
    num_samples
        Number of draws.
    evidence
        ``{variable: state}`` (name or index).
    mode
        ``"forward"``: every variable is sampled, and draws that disagree with the evidence
        get log weight ``-inf`` (rejection).  ``"likelihood_weighting"``: evidence variables
        are clamped and the log weight is the log-likelihood of the evidence.
    keep
        Variables whose draws are returned (default all, in topological order).
    seed
        Integer seed or a PRNG key.

    Returns
    -------
    values, log_weights
        ``{name: int32 numpy array (num_samples,)}`` and the log weights ``(num_samples,)``.
    """
    if mode not in ("forward", "likelihood_weighting"):
        raise ValueError(f"mode must be 'forward' or 'likelihood_weighting', got {mode!r}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    ev = bn.evidence_indices(evidence)
    keep = tuple(bn.variables) if keep is None else tuple(keep)
    for name in keep:
        bn._check_name(name)
    flat = flatten_network(bn)
    index = {v: i for i, v in enumerate(bn.variables)}
    clamp_mask = np.zeros(len(bn), bool)
    clamp_values = np.zeros(len(bn), np.int32)
    for v, k in ev.items():
        clamp_mask[index[v]], clamp_values[index[v]] = True, k
    args = (flat, jnp.asarray(clamp_mask), jnp.asarray(clamp_values), jnp.asarray([index[v] for v in keep], jnp.int32))
    key = jax.random.key(seed) if isinstance(seed, (int, np.integer)) else seed
    # One compiled chunk, dispatched asynchronously once per chunk: it is compiled once per
    # padded network shape, whatever the evidence and num_samples are.
    chunks = [
        _chunk(key, jnp.uint32(c), *args, weight_clamped=mode == "likelihood_weighting")
        for c in range(math.ceil(num_samples / CHUNK_SIZE))
    ]
    kept = np.empty((len(keep), len(chunks) * CHUNK_SIZE), np.int32)
    logw = np.empty(len(chunks) * CHUNK_SIZE, np.float32)
    for c, (values, weights) in enumerate(chunks):
        kept[:, c * CHUNK_SIZE : (c + 1) * CHUNK_SIZE] = values
        logw[c * CHUNK_SIZE : (c + 1) * CHUNK_SIZE] = weights
    return {v: kept[k, :num_samples] for k, v in enumerate(keep)}, logw[:num_samples]


def forward_sample(bn, num_samples: int, *, seed: int | jax.Array = 0) -> dict[str, np.ndarray]:
    """Exact independent draws from the joint: ``{name: int32 array (num_samples,)}``.

    Example
    -------
    >>> from mcgen.bayesnet import BayesNet
    >>> bn = BayesNet.from_dict({
    ...     "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
    ...     "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
    ... })
    >>> draws = forward_sample(bn, 100_000, seed=0)     # state indices: 0 is "T"
    >>> bool(abs((draws["rain"] == 0).mean() - 0.5) < 0.01)   # P(rain = T) = 0.5
    True
    """
    return draw(bn, num_samples, seed=seed)[0]


def rejection_sample(
    bn, num_samples: int, evidence: Mapping[str, Any], *, keep: Sequence[str] | None = None, seed: int | jax.Array = 0
):
    """Forward draws that agree with ``evidence``: exact draws from the posterior.

    Returns
    -------
    samples, acceptance_rate
        ``{name: int32 array (num_accepted,)}`` and the fraction of draws kept (an estimate
        of :math:`p(e)`).
    """
    values, logw = draw(bn, num_samples, evidence=evidence, keep=keep, seed=seed)
    accepted = np.isfinite(logw)
    return {v: x[accepted] for v, x in values.items()}, float(accepted.mean())


def likelihood_weighting(
    bn,
    num_samples: int,
    evidence: Mapping[str, Any] | None = None,
    *,
    keep: Sequence[str] | None = None,
    seed: int | jax.Array = 0,
) -> WeightedSamples:
    """Importance draws with the evidence clamped, weighted by its likelihood.

    Returns
    -------
    WeightedSamples
        ``samples`` a dict ``{name: int32 array (num_samples,)}`` over ``keep`` (default all
        variables), ``log_weights`` the log-likelihood of the evidence; self-normalized.
        ``ws.expectation(f)``, ``ws.ess()`` and ``ws.log_normalizer()`` (an estimate of
        :math:`\\log p(e)`) apply.

    Example
    -------
    >>> from mcgen.bayesnet import BayesNet
    >>> bn = BayesNet.from_dict({
    ...     "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
    ...     "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
    ... })
    >>> ws = likelihood_weighting(bn, 100_000, {"rain": "T"}, seed=0)
    >>> est = ws.expectation(lambda s: s["cloudy"] == 0)     # P(cloudy = T | rain = T) = 0.8
    >>> bool(abs(est.mean - 0.8) < 4 * est.mcse)
    True
    """
    values, logw = draw(bn, num_samples, evidence=evidence, mode="likelihood_weighting", keep=keep, seed=seed)
    return WeightedSamples(values, logw)
