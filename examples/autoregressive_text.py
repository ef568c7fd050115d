"""Decode text from a small character-level Markov model with temperature, top-k and top-p.

A second-order Markov chain over characters (the next character depends on the previous two)
is fitted by counting on a short built-in text.  Its ``logits_fn(tokens, length)`` reads the
last two tokens of the prefix, which is all that
:func:`mcgen.generative.sample_autoregressive` needs: the same call decodes a neural language
model given its logits function.  The script prints continuations of a prompt under several
decoding settings and the share of distinct bigrams (a diversity measure) for each.

Run::

    python examples/autoregressive_text.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mcgen.generative import sample_autoregressive

TEXT = """
a sampler can run and return numbers of the right shape and still be wrong. so every sampler
is tested against targets whose answer is known: analytic moments, exact enumeration, or a
long reference run, with tolerances in units of monte carlo standard error and fixed seeds.
a kernel is a pair of pure functions, one to start a chain and one to move it, and the
log density is passed at call time, so that the same kernel serves many targets. draws that
are not markov chains come from plain functions of a key and a number of samples: rejection,
importance sampling, ancestral sampling, and the samplers of generative models, which turn
noise into data one step at a time, or one token at a time, as this example does.
"""


def fit_markov(text: str, prior_strength: float = 2.0):
    """Order-2 character model, smoothed towards the order-1 model (Dirichlet back-off):
    p(c | a, b) = (n(a, b, c) + k p(c | b)) / (n(a, b) + k)."""
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text])
    v = len(chars)
    bigram = np.full((v, v), 0.01)
    np.add.at(bigram, (ids[:-1], ids[1:]), 1.0)
    p1 = bigram / bigram.sum(-1, keepdims=True)
    trigram = np.zeros((v, v, v))
    np.add.at(trigram, (ids[:-2], ids[1:-1], ids[2:]), 1.0)
    p2 = (trigram + prior_strength * p1[None]) / (trigram.sum(-1, keepdims=True) + prior_strength)
    return chars, index, jnp.asarray(np.log(p2), jnp.float32)


def main() -> None:
    text = " ".join(TEXT.split())
    chars, index, table = fit_markov(text)

    def logits_fn(tokens, length):
        return table[tokens[length - 2], tokens[length - 1]]

    prompt = jnp.array([index[c] for c in "the s"], jnp.int32)
    settings = [
        ("greedy (temperature 0)", {"temperature": 0}),
        ("temperature 1", {}),
        ("temperature 0.7", {"temperature": 0.7}),
        ("top-k 3", {"top_k": 3}),
        ("top-p 0.8", {"top_p": 0.8}),
        ("temperature 1.5, top-p 0.9", {"temperature": 1.5, "top_p": 0.9}),
    ]
    for label, kw in settings:
        out = sample_autoregressive(jax.random.key(0), logits_fn, prompt, num_samples=64, max_new_tokens=60, **kw)
        out = np.asarray(out)
        bigrams = {(a, b) for row in out for a, b in zip(row[:-1], row[1:])}
        print(f"--- {label}  (distinct bigrams: {len(bigrams)})")
        for row in out[:2]:
            print("   ", "".join(chars[i] for i in row))


if __name__ == "__main__":
    main()
