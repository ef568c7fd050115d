r"""Autoregressive decoding with temperature, top-k and top-p (nucleus) sampling.

A model gives next-token logits :math:`\ell` given a prefix; decoding draws one token at a time
from a reshaped distribution:

* *temperature* :math:`T`: :math:`p_i \propto \exp(\ell_i / T)` (:math:`T \to 0` is greedy);
* *top-k*: keep the :math:`k` largest logits, renormalize;
* *top-p* (Holtzman et al. 2020): sort :math:`p` decreasingly and keep the smallest prefix whose
  mass reaches :math:`p` (token :math:`i` is kept when the mass strictly before it is
  :math:`< p`; the most likely token always survives), renormalize.

Filters apply in that order (temperature, top-k, top-p), as in common LM toolkits; ties at a
cut-off are all kept.

For jit, prefixes live in a fixed-size buffer: ``logits_fn(tokens, length)`` receives the
whole ``(prompt_len + max_new_tokens,)`` int32 buffer and the number of valid tokens
``length`` (tokens ``[0, length)`` form the prefix) and returns ``(vocab_size,)`` logits.  The
decode loop is a ``lax.fori_loop``, vmapped over samples.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from mcgen.types import Array, ArrayLike, PRNGKey

__all__ = ["top_k_filter", "top_p_filter", "sample_token", "sample_autoregressive"]


def top_k_filter(logits: ArrayLike, k: int) -> Array:
    """Set all but the ``k`` largest logits (last axis) to ``-inf``."""
    logits = jnp.asarray(logits)
    if not isinstance(k, int) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"top_k must be an int in [1, {logits.shape[-1]}], got {k!r}")
    cutoff = lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits >= cutoff, logits, -jnp.inf)


def top_p_filter(logits: ArrayLike, p: ArrayLike) -> Array:
    """Keep the smallest set of most likely tokens whose probability mass reaches ``p``."""
    logits = jnp.asarray(logits)
    if isinstance(p, (int, float)) and not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {p}")
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    num_kept = jnp.sum(mass_before < p, axis=-1, keepdims=True)
    cutoff = jnp.take_along_axis(sorted_logits, num_kept - 1, axis=-1)
    return jnp.where(logits >= cutoff, logits, -jnp.inf)


def _check(temperature, top_k, top_p):
    if isinstance(temperature, (int, float)) and temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and isinstance(top_p, (int, float)) and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")


def sample_token(
    key: PRNGKey,
    logits: ArrayLike,
    temperature: ArrayLike = 1.0,
    top_k: int | None = None,
    top_p: ArrayLike | None = None,
) -> Array:
    """Draw token ids from ``logits`` (``(..., vocab)``) after temperature, top-k and top-p.

    ``temperature=0`` (a Python number) decodes greedily.
    """
    _check(temperature, top_k, top_p)
    logits = jnp.asarray(logits)
    if isinstance(temperature, (int, float)) and temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


@partial(jax.jit, static_argnames=("logits_fn", "num_samples", "max_new_tokens", "top_k", "greedy"))
def _decode(key, logits_fn, prompt, num_samples, max_new_tokens, temperature, top_k, top_p, greedy):
    prompt_len = prompt.shape[0]
    buffer = jnp.concatenate([prompt, jnp.zeros((max_new_tokens,), jnp.int32)])

    def one(key):
        def body(i, tokens):
            length = prompt_len + i
            logits = logits_fn(tokens, length)
            tok = sample_token(jax.random.fold_in(key, i), logits, 0 if greedy else temperature, top_k, top_p)
            return tokens.at[length].set(tok)

        return lax.fori_loop(0, max_new_tokens, body, buffer)

    return jax.vmap(one)(jax.random.split(key, num_samples))


def sample_autoregressive(
    key: PRNGKey,
    logits_fn: Callable[[Array, Array], Array],
    prompt: ArrayLike,
    num_samples: int,
    max_new_tokens: int,
    *,
    temperature: ArrayLike = 1.0,
    top_k: int | None = None,
    top_p: ArrayLike | None = None,
) -> Array:
    """Decode ``num_samples`` continuations of ``prompt``.

    Parameters
    ----------
    key
        PRNG key.
    logits_fn
        ``logits_fn(tokens, length) -> (vocab_size,)`` next-token logits given the prefix
        ``tokens[:length]`` of the fixed-size int32 buffer ``tokens``.
    prompt
        ``(prompt_len,)`` int token ids, ``prompt_len >= 1``.
    num_samples
        Number of sequences.
    max_new_tokens
        Tokens to generate per sequence.
    temperature
        Softmax temperature (0 for greedy decoding).
    top_k
        Keep only the ``k`` most likely tokens (``None``: all).
    top_p
        Nucleus mass in ``(0, 1]`` (``None``: no nucleus filter).

    Returns
    -------
    Array
        ``(num_samples, prompt_len + max_new_tokens)`` int32 tokens, prompt included.

    Example
    -------
    >>> import jax, jax.numpy as jnp
    >>> table = jnp.log(jnp.array([[0.9, 0.1], [0.5, 0.5]]))
    >>> out = sample_autoregressive(jax.random.key(0), lambda tok, n: table[tok[n - 1]],
    ...                             jnp.array([0]), num_samples=4, max_new_tokens=5, top_p=0.8)
    >>> out.shape
    (4, 6)
    """
    _check(temperature, top_k, top_p)
    prompt = jnp.asarray(prompt)
    if prompt.ndim != 1 or prompt.shape[0] < 1:
        raise ValueError(f"prompt must be a non-empty 1-d array of token ids, got shape {prompt.shape}")
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    greedy = isinstance(temperature, (int, float)) and temperature == 0
    return _decode(
        key,
        logits_fn,
        prompt.astype(jnp.int32),
        num_samples,
        max_new_tokens,
        1.0 if greedy else temperature,
        top_k,
        top_p,
        greedy,
    )
