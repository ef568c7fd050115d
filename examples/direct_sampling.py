"""Direct sampling on the seed mixture 0.5 N(-2, 0.5) + 0.5 N(2, 0.8) with proposal N(0, 3).

Reproduces: exact draws by rejection (acceptance rate 1/M), the SNIS estimate of
E[X^2] = 4.445 with its MCSE, ESS and Pareto k-hat, the collapse of importance sampling in
high dimension, forward sampling of a NumPyro model, and Gumbel-max / Gumbel-softmax draws.

Run: ``python examples/direct_sampling.py``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from mcgen import reparam
from mcgen.direct import ImportanceWeightWarning, ancestral_sample, importance_sample, rejection_sample


def log_target(x):
    """Log-density of the mixture, times 7 (an unnormalized target: Z = 7)."""
    return jnp.log(7.0) + jnp.logaddexp(
        jnp.log(0.5) + dist.Normal(-2.0, 0.5).log_prob(x), jnp.log(0.5) + dist.Normal(2.0, 0.8).log_prob(x)
    )


def main():
    key_rej, key_is, key_hd, key_anc, key_gum = jax.random.split(jax.random.key(0), 5)
    proposal = dist.Normal(0.0, 3.0)

    # 1. rejection; log_M left out, so it is estimated (and a warning says so)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = jax.jit(lambda k: rejection_sample(k, log_target, proposal, num_samples=100_000))(key_rej)
    x = np.asarray(res.samples)
    print(
        f"rejection: log M = {float(res.log_M):.4f}, acceptance {float(res.acceptance_rate):.4f} "
        f"(Z/M = {7 * np.exp(-float(res.log_M)):.4f}), mean {x.mean():+.4f}, sd {x.std():.4f} "
        f"(exact 0, {np.sqrt(4.445):.4f})"
    )

    # 2. self-normalized importance sampling
    ws = jax.jit(lambda k: importance_sample(k, log_target, proposal, 100_000))(key_is)
    est, log_z = ws.expectation(lambda x: x**2), ws.log_normalizer()
    print(
        f"SNIS: E[X^2] = {float(est.mean):.4f} +- {float(est.mcse):.4f} (exact 4.445), "
        f"ESS = {float(ws.ess()):.0f} of 100000, k-hat = {ws.pareto_k():.2f}, "
        f"log Z = {float(log_z.mean):.4f} +- {float(log_z.mcse):.4f} (exact {np.log(7):.4f})"
    )
    resampled = ws.resample(jax.random.fold_in(key_is, 1), 10_000, method="systematic")
    print(f"  after systematic resampling to 10000 equal-weight draws: E[X^2] ~ {float(jnp.mean(resampled**2)):.3f}")

    # 3. importance sampling degrades with dimension: N(0, I) target, N(0.5, 1.2^2 I) proposal
    for d in (1, 10, 50):
        q = dist.Normal(jnp.full(d, 0.5), 1.2).to_event(1)
        log_p = lambda x: dist.Normal(0.0, 1.0).log_prob(x).sum()  # noqa: E731
        wd = importance_sample(jax.random.fold_in(key_hd, d), log_p, q, 4000)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            k = wd.pareto_k()
        flag = "  <- flagged unreliable" if any(issubclass(w.category, ImportanceWeightWarning) for w in record) else ""
        print(f"  d = {d:2d}: ESS/n = {float(wd.ess()) / 4000:.4f}, k-hat = {k:+.2f}{flag}")

    # 4. ancestral sampling of a NumPyro model (the observed site is drawn, not clamped)
    def model(y=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(z, 0.5), obs=y)

    draws = ancestral_sample(key_anc, model, 50_000, y=3.0)
    print(
        f"ancestral: Var(y) = {float(jnp.var(draws['y'])):.3f} (exact 1.25), "
        f"Cov(z, y) = {float(jnp.cov(draws['z'], draws['y'])[0, 1]):.3f} (exact 1)"
    )

    # 5. Gumbel-max draws are exact categorical draws; Gumbel-softmax relaxes them
    probs = jnp.array([0.1, 0.2, 0.3, 0.4])
    counts = jnp.bincount(reparam.gumbel_max(key_gum, jnp.log(probs), shape=(100_000,)), length=4)
    print(f"gumbel_max frequencies {np.round(np.asarray(counts) / 1e5, 3)} vs {np.asarray(probs)}")
    grad = jax.grad(lambda lg: reparam.gumbel_softmax(key_gum, lg, 0.5, hard=True) @ jnp.arange(4.0))(jnp.log(probs))
    print(f"straight-through gradient of a hard Gumbel-softmax draw: {np.round(np.asarray(grad), 3)}")


if __name__ == "__main__":
    main()
