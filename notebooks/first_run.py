# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A first run: draws, diagnostics and plots
#
# We sample a small Bayesian linear regression whose posterior is Gaussian and known in
# closed form, so every number below can be checked. A log-density is any function of a
# pytree position that returns a scalar; `run_chains` runs several chains at once, adapts the
# kernel in warmup, and returns a `Result` with the draws and per-draw statistics.

# %%
import arviz as az
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import mcgen as mc

rng = np.random.default_rng(0)
x = rng.normal(size=50)
y = 1.0 + 2.0 * x + rng.normal(scale=0.5, size=50)
X = np.stack([np.ones_like(x), x], axis=1)
noise_sd, prior_sd = 0.5, 10.0


def logdensity(p):
    pred = p["intercept"] + p["slope"] * x
    log_lik = -0.5 * jnp.sum((y - pred) ** 2) / noise_sd**2
    log_prior = -0.5 * (p["intercept"] ** 2 + p["slope"] ** 2) / prior_sd**2
    return log_lik + log_prior


# %% [markdown]
# NUTS with the default warmup (step size by dual averaging; a low-rank-plus-diagonal mass
# matrix fitted to the recent draws and their gradients, after Stan's initial buffer). Four
# chains, 1000 draws each.

# %%
res = mc.run_chains(
    logdensity,
    mc.nuts(),
    init={"intercept": 0.0, "slope": 0.0},
    num_chains=4,
    num_samples=1000,
    num_warmup=500,
    seed=0,
    progress=False,
)
res.summary()

# %% [markdown]
# The summary comes from ArviZ: posterior mean and sd, HDI, Monte-Carlo standard errors,
# bulk and tail effective sample sizes and R-hat. `res.stats` holds what each step reported.

# %%
print({k: v.shape for k, v in res.stats.items()})
print(
    f"acceptance {np.mean(res.stats['accept_prob']):.2f}, divergences {int(np.sum(res.stats['is_divergent']))}, "
    f"compile {res.compile_time:.1f} s, sampling {res.sampling_time:.2f} s"
)

# %% [markdown]
# ## Check against the exact posterior
#
# With a Gaussian prior and likelihood the posterior is $N(\mu, \Sigma)$ with
# $\Sigma = (X^\top X / \sigma^2 + I / \tau^2)^{-1}$ and $\mu = \Sigma X^\top y / \sigma^2$.
# `mcgen.testing.assert_moments` checks the draws' means and variances in units of their
# Monte-Carlo standard error.

# %%
cov = np.linalg.inv(X.T @ X / noise_sd**2 + np.eye(2) / prior_sd**2)
mean = cov @ X.T @ y / noise_sd**2
report = mc.testing.assert_moments(
    res.samples, {"intercept": mean[0], "slope": mean[1]}, {"intercept": cov[0, 0], "slope": cov[1, 1]}
)
print(report)

# %% [markdown]
# ## Plots
#
# `res.plot_trace()` draws the traces and marginal densities; `res.to_arviz()` hands the run
# to any ArviZ plot.

# %%
res.plot_trace()
plt.show()

# %%
idata = res.to_arviz()
az.plot_pair(idata, kind="kde", marginals=True)
plt.show()

# %% [markdown]
# ## Continuing a run
#
# The `Result` holds each chain's last state (with its adapted step size and mass matrix), so a
# longer run is another call that starts there; warmup defaults to zero. A second call with
# the same settings and shapes reuses what the first compiled.

# %%
more = mc.run_chains(logdensity, mc.nuts(), init=res, num_samples=500, seed=1, progress=False)
again = mc.run_chains(logdensity, mc.nuts(), init=res, num_samples=500, seed=2, progress=False)
print(
    more.samples["slope"].shape,
    f"compile time: first continuation {more.compile_time:.2f} s, second {again.compile_time:.2f} s",
)
