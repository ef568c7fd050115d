"""GAN truncation: the StyleGAN truncation trick and BigGAN's resampling truncation.

The "GAN" is a fixed two-layer generator G from a 16-d latent to the plane (random weights;
training does not change how truncation works).  Real data are G(z), z ~ N(0, I), so the
effect of truncation on fidelity and diversity is measured against the generator's own
untruncated distribution.

* **Resampling truncation** (BigGAN): every latent coordinate with |z_i| > c is redrawn until
  none is, which samples the normal truncated to [-c, c]^d exactly.  Checked: every coordinate
  lies in [-c, c], and the coordinate variance equals the truncated-normal value
  1 - 2 c phi(c) / (2 Phi(c) - 1) within 4 MCSE, for c = 0.5, 1, 2.
* **Truncation trick** (StyleGAN): w' = w_mean + psi (w - w_mean) in the intermediate latent
  space w = tanh(A z).  Checked: the mean is kept and the spread scales by exactly psi.
* **Diversity**: the spread (mean per-coordinate variance) of the generated points shrinks
  as c or psi shrinks: truncation trades diversity for typical, high-fidelity samples.

Run: ``python examples/gan_truncation.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from mcgen.generative import truncated_prior, truncation_trick

LATENT, HIDDEN, NUM = 16, 32, 20_000
_k1, _k2, _k3 = jax.random.split(jax.random.key(3), 3)
A = jax.random.normal(_k1, (HIDDEN, LATENT)) / np.sqrt(LATENT)  # mapping network z -> w
C = jax.random.normal(_k2, (2, HIDDEN)) / np.sqrt(HIDDEN)  # synthesis w -> x
D = jax.random.normal(_k3, (2,))


def mapping(z):
    return jnp.tanh(z @ A.T)


def synthesis(w):
    return jnp.sin(2.0 * (w @ C.T)) + D


def truncated_variance(c: float) -> float:
    return 1.0 - 2.0 * c * norm.pdf(c) / (2.0 * norm.cdf(c) - 1.0)


def main() -> dict:
    out = {}
    print("resampling truncation (BigGAN):")
    print(f"{'c':>5} {'max|z|':>7} {'var':>7} {'exact':>7} {'z':>6} {'spread':>7}")
    for i, c in enumerate((None, 2.0, 1.0, 0.5)):
        key = jax.random.key(10 + i)
        z = jax.random.normal(key, (NUM, LATENT)) if c is None else truncated_prior(key, (LATENT,), NUM, threshold=c)
        z_np = np.asarray(z, np.float64)
        fake = synthesis(mapping(z))
        spread = float(jnp.mean(jnp.var(fake, axis=0)))
        if c is None:
            exact, zscore = 1.0, 0.0
        else:
            exact = truncated_variance(c)
            sq = z_np**2
            zscore = float(np.max(np.abs(sq.mean(0) - exact) / (sq.std(0) / np.sqrt(NUM))))
            assert np.abs(z_np).max() <= c and zscore < 4, (c, zscore)
        out[c] = dict(spread=spread, z=zscore)
        print(
            f"{'none' if c is None else c:>5} {np.abs(z_np).max():7.3f} {z_np.var():7.4f} {exact:7.4f} "
            f"{zscore:6.2f} {spread:7.4f}"
        )
    cs = [None, 2.0, 1.0, 0.5]
    spreads = [out[c]["spread"] for c in cs]
    assert all(a > b for a, b in zip(spreads, spreads[1:])), spreads

    print("\ntruncation trick (StyleGAN), in w space:")
    w = mapping(jax.random.normal(jax.random.key(20), (NUM, LATENT)))
    w_mean = jnp.mean(mapping(jax.random.normal(jax.random.key(21), (NUM, LATENT))), axis=0)
    for psi in (1.0, 0.7, 0.3):
        w_t = truncation_trick(w, w_mean, psi)
        ratio = float(jnp.mean(jnp.std(w_t - w_mean, axis=0) / jnp.std(w - w_mean, axis=0)))
        spread = float(jnp.mean(jnp.var(synthesis(w_t), axis=0)))
        mean_shift = float(jnp.max(jnp.abs(jnp.mean(w_t, 0) - w_mean - psi * (jnp.mean(w, 0) - w_mean))))
        print(f"  psi = {psi:.1f}: spread ratio in w {ratio:.4f} (exactly psi), output spread {spread:.4f}")
        assert abs(ratio - psi) < 1e-4 and mean_shift < 1e-5
        out[f"psi={psi}"] = dict(spread=spread)
    assert out["psi=1.0"]["spread"] > out["psi=0.7"]["spread"] > out["psi=0.3"]["spread"]
    print("All checks passed.")
    return out


if __name__ == "__main__":
    main()
