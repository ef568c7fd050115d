"""Temperature, top-k and top-p decoding: empirical frequencies vs the renormalized law."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mcgen.generative import sample_autoregressive, sample_token, top_k_filter, top_p_filter

PROBS = np.array([0.30, 0.22, 0.15, 0.12, 0.09, 0.06, 0.04, 0.02])
LOGITS = jnp.log(jnp.asarray(PROBS, jnp.float32))
N = 20000
ALPHA = 1e-3  # false-failure rate of each chi-square test


def _expected(temperature=1.0, top_k=None, top_p=None):
    p = PROBS ** (1.0 / temperature)
    p = p / p.sum()
    keep = np.ones_like(p, bool)
    if top_k is not None:
        keep &= p >= np.sort(p)[::-1][top_k - 1]
    q = np.where(keep, p, 0.0)
    q = q / q.sum()
    if top_p is not None:
        order = np.argsort(-q)
        before = np.cumsum(q[order]) - q[order]
        kept = np.zeros_like(keep)
        kept[order[before < top_p]] = True
        q = np.where(kept, q, 0.0)
        q = q / q.sum()
    return q


def _check_counts(tokens, expected):
    counts = np.bincount(np.asarray(tokens), minlength=len(expected))
    support = expected > 0
    assert counts[~support].sum() == 0, f"tokens outside the kept set: {counts}"
    if support.sum() > 1:
        pval = stats.chisquare(counts[support], N * expected[support]).pvalue
        assert pval > ALPHA, (counts, N * expected)


@pytest.mark.parametrize(
    "temperature,top_k,top_p",
    [
        (1.0, None, None),
        (2.0, None, None),
        (0.5, None, None),
        (1.0, 3, None),
        (1.0, None, 0.6),  # keeps 0.30, 0.22, 0.15 (mass before the 3rd = 0.52 < 0.6)
        (1.0, None, 0.52),  # boundary: mass before the 3rd is 0.52, not < 0.52 -> two tokens
        (1.5, 5, 0.7),
    ],
)
def test_token_frequencies(temperature, top_k, top_p):
    keys = jax.random.split(jax.random.key(0), N)
    tokens = jax.jit(jax.vmap(lambda k: sample_token(k, LOGITS, temperature, top_k, top_p)))(keys)
    _check_counts(tokens, _expected(temperature, top_k, top_p))


def test_filters_directly():
    kept = np.isfinite(np.asarray(top_k_filter(LOGITS, 2)))
    assert kept.tolist() == [True, True] + [False] * 6
    kept = np.isfinite(np.asarray(top_p_filter(LOGITS, 1.0)))
    assert kept.all()
    kept = np.isfinite(np.asarray(top_p_filter(LOGITS, 0.01)))
    assert kept.tolist() == [True] + [False] * 7  # the top token always survives
    batched = top_p_filter(jnp.stack([LOGITS, LOGITS[::-1]]), 0.6)
    assert np.isfinite(np.asarray(batched)).sum(axis=1).tolist() == [3, 3]


# A 3-state Markov chain: sequences from the decoder must follow the filtered transition law.
TRANS = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
TRANS_LOGITS = jnp.log(jnp.asarray(TRANS, jnp.float32))


def _markov_logits(tokens, length):
    return TRANS_LOGITS[tokens[length - 1]]


def test_markov_decoding_top_p():
    out = sample_autoregressive(
        jax.random.key(1), _markov_logits, jnp.array([0]), num_samples=400, max_new_tokens=60, top_p=0.7
    )
    assert out.shape == (400, 61) and out.dtype == jnp.int32
    assert bool(jnp.all(out[:, 0] == 0))
    prev, nxt = np.asarray(out[:, :-1]).ravel(), np.asarray(out[:, 1:]).ravel()
    # Filtered rows: state 0 keeps {0, 1} (mass before token 1 is 0.6 < 0.7); state 1 keeps
    # 2 and then the tied 0.2s, both (ties at the cut-off are kept); state 2 keeps {0, 1}.
    expected = {0: [2 / 3, 1 / 3, 0.0], 1: [0.2, 0.2, 0.6], 2: [5 / 9, 4 / 9, 0.0]}
    for s, q in expected.items():
        counts = np.bincount(nxt[prev == s], minlength=3)
        q = np.asarray(q)
        assert counts[q == 0].sum() == 0
        pval = stats.chisquare(counts[q > 0], counts.sum() * q[q > 0]).pvalue
        assert pval > ALPHA, (s, counts, q)


def test_greedy_and_top_k_one():
    a = sample_autoregressive(jax.random.key(2), _markov_logits, jnp.array([1]), 3, 5, temperature=0)
    b = sample_autoregressive(jax.random.key(3), _markov_logits, jnp.array([1]), 3, 5, top_k=1)
    assert a.tolist()[0] == [1, 2, 0, 0, 0, 0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"temperature": -1.0}, "temperature"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"num_samples": 2, "max_new_tokens": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        sample_autoregressive(jax.random.key(0), _markov_logits, jnp.array([0]), **args)


def test_top_k_larger_than_vocab():
    with pytest.raises(ValueError, match="top_k"):
        sample_token(jax.random.key(0), LOGITS, top_k=9)
