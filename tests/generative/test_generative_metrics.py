"""MMD, energy distance and k-NN precision/recall against closed forms and brute force."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from mcgen.generative import energy_distance, knn_precision_recall, mmd_rbf


def _brute_mmd(x, y, h):
    k = lambda a, b: np.exp(-0.5 * ((a[:, None] - b[None]) ** 2).sum(-1) / h**2)  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()


def test_matches_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(700, 3)), rng.normal(size=(530, 3)) + 0.2  # 700 > one block of 512
    np.testing.assert_allclose(
        mmd_rbf(x.astype(np.float32), y.astype(np.float32), 1.3), _brute_mmd(x, y, 1.3), rtol=1e-3, atol=1e-6
    )
    d = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    ref = 2 * d(x, y).mean() - d(x, x).sum() / (700 * 699) - d(y, y).sum() / (530 * 529)
    np.testing.assert_allclose(energy_distance(x.astype(np.float32), y.astype(np.float32)), ref, rtol=1e-3)


def test_mmd_closed_form_for_gaussians():
    """X ~ N(a, s^2 I), Y ~ N(b, s^2 I) in d dims: MMD^2 = 2 c (1 - exp(-|a-b|^2 / (2(h^2+2s^2))))
    with c = (h^2 / (h^2 + 2 s^2))^(d/2)."""
    n, d, h, shift, reps = 3000, 2, 1.0, 0.8, 8
    c = (h**2 / (h**2 + 2.0)) ** (d / 2)
    exact = 2 * c * (1 - np.exp(-(shift**2) / (2 * (h**2 + 2.0))))
    draws = lambda i: jax.random.normal(jax.random.key(i), (n, d))  # noqa: E731
    alt = np.array([float(mmd_rbf(draws(i), draws(100 + i) + jnp.array([shift, 0.0]), h)) for i in range(reps)])
    null = np.array([float(mmd_rbf(draws(200 + i), draws(300 + i), h)) for i in range(reps)])
    # Unbiasedness: the mean of replicates is within 4 standard errors of the closed form
    # (under the null, of zero); the null spread is much smaller than the effect.
    assert abs(alt.mean() - exact) < 4 * alt.std(ddof=1) / np.sqrt(reps), (alt.mean(), exact)
    assert abs(null.mean()) < 4 * null.std(ddof=1) / np.sqrt(reps)
    assert null.std(ddof=1) < 0.05 * exact


def test_energy_distance_closed_form_1d():
    """N(0,1) vs N(m,1): 2 E|X-Y| - E|X-X'| - E|Y-Y'| with X-Y ~ N(-m, 2), X-X' ~ N(0, 2)."""
    m, n = 1.0, 4000

    def folded(mu, s):
        return s * np.sqrt(2 / np.pi) * np.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * stats.norm.cdf(-mu / s))

    exact = 2 * folded(m, np.sqrt(2)) - 2 * folded(0.0, np.sqrt(2))
    x = jax.random.normal(jax.random.key(0), (n, 1))
    y = jax.random.normal(jax.random.key(1), (n, 1)) + m
    assert abs(float(energy_distance(x, y)) - exact) < 0.1 * exact


def test_precision_recall():
    real = jax.random.normal(jax.random.key(0), (1000, 2))
    same = jax.random.normal(jax.random.key(1), (1000, 2))
    p, r = knn_precision_recall(real, same, k=5)
    assert float(p) > 0.9 and float(r) > 0.9
    far = same + 20.0
    p, r = knn_precision_recall(real, far, k=5)
    assert float(p) == 0.0 and float(r) == 0.0
    # Mode dropping: fakes only in the right half -> precision stays high, recall about halves.
    half = jnp.abs(same) * jnp.array([1.0, 1.0]) * jnp.array([1.0, 0.0]) + same * jnp.array([0.0, 1.0])
    p, r = knn_precision_recall(real, half, k=5)
    assert float(p) > 0.9 and 0.35 < float(r) < 0.7
