"""Eight schools with NUTS: a NumPyro model in, constrained draws and diagnostics out.

The classic hierarchical model (Rubin 1981; Gelman et al., BDA3 section 5.5) in its
non-centered form, sampled with ``mc.nuts()`` from ``mc.from_numpyro``.  The centered form is
run too, to show what divergences look like: its funnel-shaped posterior defeats the
integrator near small ``tau``, and ``run_chains`` warns (divergences, and E-BFMI below 0.3:
the momentum draws cannot move the chains up and down the funnel fast enough), and
``Result.chain_summary()`` shows each chain's step size, divergences and E-BFMI side by side.

Run::

    python examples/eight_schools.py            # writes examples/out/eight_schools_*.png
"""

from __future__ import annotations

import pathlib
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import mcgen as mc

Y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
OUT = pathlib.Path(__file__).resolve().parent / "out"


def non_centered(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def centered(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    target = mc.from_numpyro(non_centered, SIGMA, y=Y)
    res = mc.run_chains(target, mc.nuts(), num_chains=4, num_samples=1000, seed=0, progress=False)
    print(res.summary(var_names=["mu", "tau", "theta"]).to_string())
    stats = res.stats
    print(
        f"\nnon-centered: {int(stats['is_divergent'].sum())} divergences, "
        f"mean tree depth {stats['tree_depth'].mean():.2f}, "
        f"{stats['num_grad_evals'].mean():.1f} gradients per draw, "
        f"step sizes {np.round(np.asarray(res.last_state.params.step_size), 3)}"
    )
    res.plot_trace(path=str(OUT / "eight_schools_trace.png"), var_names=["mu", "tau"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", mc.SamplingWarning)
        bad = mc.run_chains(
            mc.from_numpyro(centered, SIGMA, y=Y), mc.nuts(), num_chains=4, num_samples=1000, seed=0, progress=False
        )
    print(f"\ncentered: {int(bad.stats['is_divergent'].sum())} divergences; warnings:")
    for w in caught:
        print("  -", w.message)
    print("\ncentered, chain by chain (the warnings name chains; this says how each one differs):")
    print(bad.chain_summary().round(3).to_string())

    from mcgen.diagnostics import az

    axes = az.plot_energy(res.to_arviz())
    np.ravel(axes)[0].figure.savefig(OUT / "eight_schools_energy.png", dpi=100)


if __name__ == "__main__":
    main()
