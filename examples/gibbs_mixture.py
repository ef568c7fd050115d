r"""Gaussian mixtures by Gibbs sampling: vectorized assignments, and collapsed Gibbs.

**Part 1: Gibbs on assignments and means.**  n = 200 points, 40% from N(-3, 1) and 60% from
N(3, 1); known weights and variances, ``mu_k ~ N(0, 10^2)``.  Given the means the
assignments are independent, so all 200 are drawn in one vectorized categorical draw; given
the assignments the means are conjugate normals.

**Part 2: collapsed Gibbs, with an ESS comparison.**  A harder data set: n = 100 points from
two overlapping components, N(-1, 1) and N(1, 1), equal weights.  Priors
``w ~ Dirichlet(1, 1)``, ``mu_k ~ N(m_k, 1)`` with ``m = (-1.5, 1.5)`` (which also fixes the
labels).  Because the priors are conjugate, the weights and means integrate out of the joint
in closed form:

.. math::

    p(z \mid y) \propto \frac{\Gamma(K\alpha)}{\Gamma(n + K\alpha)}
        \prod_k \frac{\Gamma(n_k + \alpha)}{\Gamma(\alpha)}\;
        \prod_k N\big(y_{(k)};\ m_k \mathbf{1},\ I + s_0^2 \mathbf{1}\mathbf{1}^\top\big),

where :math:`y_{(k)}` are the :math:`n_k` points assigned to component :math:`k`.  The
*collapsed* sampler runs ``categorical_gibbs`` (sequential: the assignments are dependent once
the parameters are integrated out) on this closed-form ``log p(z | y)`` alone; nothing else is
derived.  The same sweep derived by hand (a scan over points with running counts and sums)
costs O(n K) instead of O(n^2 K) per sweep.  The *uncollapsed* sampler alternates
``z | w, mu`` (vectorized), ``mu | z`` and ``w | z`` (conjugate draws).  All target the same
``p(z | y)``; we compare the ESS of ``n_0`` (the number of points in component 0) and of the
posterior mean of ``mu_0`` (Rao-Blackwellized, ``E[mu_0 | z, y]``, in the collapsed sampler).

Run: ``python examples/gibbs_mixture.py``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc
from mcgen.combinators import gibbs
from mcgen.diagnostics import az
from mcgen.kernels.categorical_gibbs import categorical_gibbs


def run(logdensity, kernel, init, num_samples, transform=None, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        return mc.run_chains(
            logdensity,
            kernel,
            init=init,
            num_chains=4,
            num_samples=num_samples,
            num_warmup=200,
            seed=seed,
            transform=transform,
            progress=False,
        )


# ---------------------------------------------------------------- part 1: assignments and means
rng = np.random.default_rng(42)
labels = (rng.random(200) < 0.6).astype(int)
Y1 = jnp.asarray(np.array([-3.0, 3.0])[labels] + rng.normal(size=200), jnp.float32)
LOG_W1 = jnp.log(jnp.array([0.4, 0.6]))


def logdensity1(p):
    z, mu = p["z"], p["mu"]
    return jnp.sum(LOG_W1[z] - 0.5 * (Y1 - mu[z]) ** 2) - 0.5 * jnp.sum(mu**2) / 100.0


def draw_z1(key, p):  # all assignments in one categorical draw
    return jax.random.categorical(key, LOG_W1 - 0.5 * (Y1[:, None] - p["mu"]) ** 2, axis=-1).astype(jnp.int32)


def draw_mu1(key, p):
    onehot = jax.nn.one_hot(p["z"], 2, dtype=jnp.float32)
    precision = onehot.sum(0) + 1.0 / 100.0
    return (Y1 @ onehot) / precision + jax.random.normal(key, (2,)) / jnp.sqrt(precision)


def part1():
    init = {"z": jnp.zeros(200, jnp.int32), "mu": jnp.array([-1.0, 1.0])}
    res = run(logdensity1, gibbs({"z": draw_z1, "mu": draw_mu1}), init, 2000)
    mu = res.samples["mu"]
    print("Part 1: two-component mixture, n = 200, generating means (-3, 3)")
    print(f"  posterior mean of mu: {mu.mean(axis=(0, 1)).round(3)}, sd {mu.std(axis=(0, 1)).round(3)}")
    print(f"  assignments matching the generating labels: {np.mean(res.samples['z'][:, -1] == labels):.3f}\n")


# ---------------------------------------------------------------- part 2: collapsed vs uncollapsed
rng = np.random.default_rng(1)
labels2 = (rng.random(100) < 0.5).astype(int)
Y2 = jnp.asarray(np.array([-1.0, 1.0])[labels2] + rng.normal(size=100), jnp.float32)
PRIOR_MEAN, PRIOR_VAR, ALPHA, K = jnp.array([-1.5, 1.5]), 1.0, 1.0, 2


def collapsed_logdensity(z):
    """log p(z | y) up to a constant: weights and means integrated out."""
    onehot = jax.nn.one_hot(z, K, dtype=jnp.float32)
    counts = onehot.sum(0)
    r = Y2[:, None] - PRIOR_MEAN  # residuals against each component's prior mean
    sum_r, sum_r2 = jnp.sum(onehot * r, 0), jnp.sum(onehot * r**2, 0)
    log_marginal = -0.5 * jnp.log1p(counts * PRIOR_VAR) - 0.5 * (
        sum_r2 - PRIOR_VAR * sum_r**2 / (1.0 + counts * PRIOR_VAR)
    )
    return jnp.sum(jax.scipy.special.gammaln(counts + ALPHA)) + jnp.sum(log_marginal)


def rb_mu0(z):
    """E[mu_0 | z, y]: the Rao-Blackwellized posterior mean from a collapsed draw."""
    onehot = jax.nn.one_hot(z, K, dtype=jnp.float32)
    precision = onehot.sum(0) + 1.0 / PRIOR_VAR
    return {"n0": onehot.sum(0)[0], "mu0": ((Y2 @ onehot + PRIOR_MEAN / PRIOR_VAR) / precision)[0]}


def collapsed_sweep(key, p):
    """The same collapsed sweep derived by hand: a scan over points with running sufficient
    statistics, O(n K) per sweep instead of categorical_gibbs's O(n^2 K).  Point i is removed
    from the counts and sums, its conditional is the prior weight (n_k + alpha) times the
    posterior predictive N(y_i; mean_k, 1 + 1/precision_k), and it is added back."""
    onehot = jax.nn.one_hot(p["z"], K, dtype=jnp.float32)

    def one_point(stats, inputs):
        counts, sums = stats
        y, z_i, key_i = inputs
        old = jax.nn.one_hot(z_i, K, dtype=jnp.float32)
        counts, sums = counts - old, sums - y * old
        precision = counts + 1.0 / PRIOR_VAR
        mean, var = (sums + PRIOR_MEAN / PRIOR_VAR) / precision, 1.0 + 1.0 / precision
        logits = jnp.log(counts + ALPHA) - 0.5 * jnp.log(var) - 0.5 * (y - mean) ** 2 / var
        new = jax.random.categorical(key_i, logits)
        added = jax.nn.one_hot(new, K, dtype=jnp.float32)
        return (counts + added, sums + y * added), new.astype(jnp.int32)

    keys = jax.random.split(key, Y2.shape[0])
    return jax.lax.scan(one_point, (onehot.sum(0), Y2 @ onehot), (Y2, p["z"], keys))[1]


def joint_logdensity(p):
    z, mu, w = p["z"], p["mu"], p["w"]
    return (
        jnp.sum(jnp.log(w[z]) - 0.5 * (Y2 - mu[z]) ** 2)
        - 0.5 * jnp.sum((mu - PRIOR_MEAN) ** 2) / PRIOR_VAR
        + jnp.sum((ALPHA - 1.0) * jnp.log(w))
    )


def draw_z2(key, p):
    logits = jnp.log(p["w"]) - 0.5 * (Y2[:, None] - p["mu"]) ** 2
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def draw_mu2(key, p):
    onehot = jax.nn.one_hot(p["z"], K, dtype=jnp.float32)
    precision = onehot.sum(0) + 1.0 / PRIOR_VAR
    return (Y2 @ onehot + PRIOR_MEAN / PRIOR_VAR) / precision + jax.random.normal(key, (K,)) / jnp.sqrt(precision)


def draw_w2(key, p):
    return jax.random.dirichlet(key, jax.nn.one_hot(p["z"], K, dtype=jnp.float32).sum(0) + ALPHA)


def uncollapsed_summary(p):
    return {"n0": jnp.sum(p["z"] == 0).astype(jnp.float32), "mu0": p["mu"][0]}


def part2():
    z0 = jnp.asarray(np.asarray(Y2) > 0, jnp.int32)
    print("Part 2: collapsed vs uncollapsed Gibbs, n = 100 points, overlapping components (-1, 1)")
    rows = []
    for name, logdensity, kernel, init, transform in [
        ("collapsed (categorical_gibbs on p(z|y))", collapsed_logdensity, categorical_gibbs(K), z0, rb_mu0),
        (
            "collapsed (hand-derived sweep)",
            lambda p: collapsed_logdensity(p["z"]),
            gibbs({"z": collapsed_sweep}),
            {"z": z0},
            lambda p: rb_mu0(p["z"]),
        ),
        (
            "uncollapsed (z, mu, w conjugate)",
            joint_logdensity,
            gibbs({"z": draw_z2, "mu": draw_mu2, "w": draw_w2}),
            {"z": z0, "mu": PRIOR_MEAN, "w": jnp.array([0.5, 0.5])},
            uncollapsed_summary,
        ),
    ]:
        res = run(logdensity, kernel, init, 4000, transform=transform, seed=1)
        seconds = res.sampling_time
        ess = {k: float(az.ess(np.asarray(v))) for k, v in res.samples.items()}
        means = {k: float(np.mean(v)) for k, v in res.samples.items()}
        rows.append((name, ess, means, seconds))
    print(f"  {'sampler':<42} {'ESS n0':>8} {'ESS mu0':>8} {'E[n0]':>7} {'E[mu0]':>7} {'s':>6} {'ESS n0/s':>9}")
    for name, ess, means, seconds in rows:
        print(
            f"  {name:<42} {ess['n0']:>8.0f} {ess['mu0']:>8.0f} {means['n0']:>7.2f} {means['mu0']:>7.3f}"
            f" {seconds:>6.2f} {ess['n0'] / seconds:>9.0f}"
        )
    print("  (16,000 draws each; the collapsed mu0 column is the Rao-Blackwellized E[mu_0 | z, y])")


if __name__ == "__main__":
    part1()
    part2()
