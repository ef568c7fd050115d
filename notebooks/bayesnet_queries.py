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
# # A Bayesian-network query session
#
# `mcgen.bayesnet` builds discrete networks from Python dicts or BIF files and answers
# queries exactly (variable elimination) or by sampling (rejection, likelihood weighting,
# Gibbs). Sampled answers come with Monte-Carlo standard errors, so we can check each one
# against the exact answer.

# %%
import matplotlib.pyplot as plt

from mcgen import bayesnet

bn = bayesnet.BayesNet.from_dict(
    {
        "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
        "sprinkler": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.1, 0.9], [0.5, 0.5]]},
        "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
        "wet_grass": {
            "states": ["T", "F"],
            "parents": ["sprinkler", "rain"],
            "cpt": [[[0.99, 0.01], [0.9, 0.1]], [[0.9, 0.1], [0.01, 0.99]]],
        },
    },
    name="weather",
)
print(bn.variables)

# %% [markdown]
# CPT axes are the parents in order, then the child: `wet_grass` has `cpt[sprinkler][rain]`.
# An exact query:

# %%
exact = bn.query("rain", {"wet_grass": "T"})
exact

# %% [markdown]
# The same question by each sampling method, with the estimate's distance from the exact
# answer in standard errors.

# %%
truth = exact["rain"]["T"]
rows = []
for method in ("rejection", "likelihood_weighting", "gibbs"):
    res = bn.query("rain", {"wet_grass": "T"}, method=method, num_samples=50_000, seed=0)
    p, se = res["rain"]["T"], res.mcse["rain"]["T"]
    rows.append((method, p, se, (p - truth) / se, res.ess))
    print(f"{method:<21} {p:.4f} ± {se:.4f}   z = {(p - truth) / se:+.2f}   ESS {res.ess:,.0f}")
assert all(abs(z) < 4 for _, _, _, z, _ in rows)

# %%
fig, ax = plt.subplots(figsize=(6, 3))
names = [r[0] for r in rows]
ax.errorbar([r[1] for r in rows], range(3), xerr=[2 * r[2] for r in rows], fmt="o")
ax.axvline(truth, color="k", lw=1, label="exact")
ax.set(yticks=range(3), yticklabels=names, xlabel="P(rain = T | wet_grass = T)")
ax.legend()
plt.show()

# %% [markdown]
# ## A network from a BIF file
#
# Asia (Lauritzen & Spiegelhalter 1988): a diagnostic query with three pieces of evidence,
# marginals and the joint of two causes.

# %%
asia = bayesnet.read_bif("tests/data/asia.bif")
evidence = {"asia": "yes", "xray": "yes", "dysp": "yes"}
print(asia.query(["tub", "lung", "bronc"], evidence))

# %%
lw = asia.query(["tub", "lung", "bronc"], evidence, method="likelihood_weighting", num_samples=100_000, seed=1)
print(lw)
ex = asia.query(["tub", "lung", "bronc"], evidence)
for v in ("tub", "lung", "bronc"):
    z = (lw[v]["yes"] - ex[v]["yes"]) / lw.mcse[v]["yes"]
    print(f"{v}: z = {z:+.2f}")
    assert abs(z) < 4

# %%
joint = asia.query(["tub", "lung"], evidence, joint=True).joint
{k: round(v, 4) for k, v in joint.table().items()}
