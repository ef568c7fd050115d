"""Annealed Langevin dynamics against the exact noise-conditional score of a Gaussian mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen.generative import gmm_noised_score_fn
from mcgen.neural import annealed_langevin, geometric_sigmas
from tests.generative.gmm_checks import gmm_failures, gmm_params

W, MU, COV = gmm_params()
SCORE_FN = gmm_noised_score_fn(W, MU, COV)


def test_recovers_mixture():
    # sigma_1 ~ the largest distance between modes (Song & Ermon 2020, technique 1).
    sigmas = geometric_sigmas(8.0, 0.01, 30)
    x = annealed_langevin(jax.random.key(0), SCORE_FN, sigmas, (2,), 3000, steps_per_level=100, step_lr=5e-5)
    assert x.shape == (3000, 2)
    # The unadjusted steps inflate variances by about eps / (4 sigma_L^2) ~ 1% at the levels
    # where the draws settle; allow 5% of the scale on top of 4 standard errors.
    assert gmm_failures(x, rel_bias=0.05) == []


def test_gaussian_variance_and_denoising():
    """Data N(0, I): draws at the last level have variance v = 1 + s^2 (s = sigma_L, plus the
    ULA bias); Tweedie's step x + s^2 * score = x / v divides the variance by v^2."""
    score_fn = lambda x, s: -x / (1.0 + s**2)  # noqa: E731
    sigmas = geometric_sigmas(3.0, 0.5, 10)
    n = 4000
    x = annealed_langevin(jax.random.key(1), score_fn, sigmas, (3,), n, 200, 1e-2)
    y = annealed_langevin(jax.random.key(1), score_fn, sigmas, (3,), n, 200, 1e-2, denoise=True)
    # ULA on N(0, v) with step h has stationary variance v / (1 - h / (4 v)).
    v, h = 1.25, 1e-2
    expected = v / (1.0 - h / (4.0 * v))
    se = expected * np.sqrt(2.0 / n)
    np.testing.assert_allclose(np.var(np.asarray(x), axis=0), expected, atol=4 * se)
    np.testing.assert_allclose(np.var(np.asarray(y), axis=0), expected / v**2, atol=4 * se / v**2)


def test_jit_vmap_and_init():
    sigmas = geometric_sigmas(2.0, 0.1, 4)
    score_fn = lambda x, s: -x  # noqa: E731
    init = jnp.full((5, 2), 3.0)
    out = jax.vmap(lambda k: annealed_langevin(k, score_fn, sigmas, (2,), 5, 3, 1e-3, init=init))(
        jax.random.split(jax.random.key(0), 2)
    )
    assert out.shape == (2, 5, 2) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sigmas": jnp.array([0.1, 1.0])}, "non-increasing"),
        ({"sigmas": jnp.array([1.0, -1.0])}, "positive"),
        ({"steps_per_level": 0}, "steps_per_level"),
        ({"step_lr": 0.0}, "step_lr"),
        ({"init": jnp.zeros((3, 2))}, "init"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"sigmas": jnp.array([1.0, 0.1]), "steps_per_level": 2, "step_lr": 1e-3} | kwargs
    with pytest.raises(ValueError, match=match):
        annealed_langevin(jax.random.key(0), lambda x, s: -x, shape=(2,), num_samples=4, **args)


def test_geometric_sigmas():
    s = np.asarray(geometric_sigmas(10.0, 0.01, 4))
    np.testing.assert_allclose(s, [10.0, 1.0, 0.1, 0.01], rtol=1e-5)
    with pytest.raises(ValueError):
        geometric_sigmas(0.01, 10.0, 4)


def test_no_retrace_across_keys_sigmas_and_step_lr():
    traces = []

    def counting_score(x, s):
        traces.append(1)  # runs only while tracing
        return -x

    for i, lr in enumerate([1e-3, 2e-3, 5e-3]):
        annealed_langevin(jax.random.key(i), counting_score, geometric_sigmas(2.0 + i, 0.1, 4), (2,), 8, 3, lr)
    assert len(traces) == 1
