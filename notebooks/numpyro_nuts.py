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
# # A NumPyro model with NUTS and ArviZ
#
# `mc.from_numpyro(model, *args)` turns a NumPyro model into a target: an unconstrained
# log-density (with the Jacobians of NumPyro's transforms), a transform back to the model's
# constrained sites, and a starting point. `run_chains` takes it in place of a log-density.
# The model is eight schools, in its non-centered form (Rubin 1981; Gelman et al. 2013).

# %%
import arviz as az
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist

import mcgen as mc

y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(y, sigma):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("schools", y.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


target = mc.from_numpyro(eight_schools, y, sigma)
sorted(target.init)

# %%
res = mc.run_chains(target, mc.nuts(), num_chains=4, num_samples=1000, num_warmup=1000, seed=0, progress=False)
idata = res.to_arviz()
az.summary(idata, var_names=["mu", "tau", "theta"])

# %% [markdown]
# The draws are on the constrained scale (`tau > 0`), and the deterministic site `theta` is
# there too. Divergences are reported in `sample_stats.diverging`; the non-centered form has
# (almost) none.

# %%
print("divergences:", int(idata.sample_stats["diverging"].sum()))
print("max R-hat:", float(az.rhat(idata).to_array().max()))
assert float(az.rhat(idata).to_array().max()) < 1.01

# %% [markdown]
# The same model was run for 64 x 20 000 draws with BlackJAX's NUTS to make a reference
# (`tests/data/eight_schools_reference.npz`; its own MCSE is negligible). Our posterior means,
# in units of this run's MCSE:

# %%
ref = np.load("tests/data/eight_schools_reference.npz")
for site in ("mu", "tau"):
    est = float(idata.posterior[site].mean())
    mcse = float(az.mcse(idata, var_names=[site])[site])
    z = (est - float(ref[f"{site}_mean"])) / mcse
    print(f"{site}: {est:.3f} ± {mcse:.3f}   reference {float(ref[f'{site}_mean']):.3f}   z = {z:+.2f}")
    assert abs(z) < 4

# %%
az.plot_forest(idata, var_names=["theta"], combined=True, hdi_prob=0.9)
plt.show()

# %%
az.plot_pair(idata, var_names=["mu", "tau"], kind="scatter", divergences=True)
plt.show()
