"""An energy-based model sampled with MALA through ``run_chains``.

The energy is a tiny two-layer network ``E(x) = softplus-MLP`` whose parameters are fixed by
hand so that low energy lies on a ring of radius 2 (a stand-in for a trained EBM: any
``apply_fn(params, x) -> scalar`` works, Flax/Equinox included).  ``energy_logdensity``
turns it into ``log p(x) = -E(x) / T``; MALA adapts its step size during warmup.
"""

import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc


def apply_fn(params, x):
    """Energy of one 2-d point: a radial MLP, minimal on the circle |x| = radius."""
    r = jnp.sqrt(jnp.sum(x**2) + 1e-6)
    hidden = jax.nn.softplus(params["w1"] * (r - params["radius"]) + params["b1"])
    return jnp.sum(params["w2"] * hidden) + params["b2"]


def main():
    params = {
        "w1": jnp.array([4.0, -4.0]),
        "b1": jnp.array([0.0, 0.0]),
        "w2": jnp.array([1.0, 1.0]),
        "b2": jnp.array(0.0),
        "radius": jnp.array(2.0),
    }
    logdensity = mc.neural.energy_logdensity(apply_fn, params, temperature=0.5)
    res = mc.run_chains(
        logdensity,
        mc.mala(),
        init=jnp.array([2.0, 0.0]),
        num_chains=4,
        num_samples=2000,
        num_warmup=1000,
        seed=0,
        progress=False,
    )
    radius = np.sqrt(np.sum(res.samples**2, axis=-1))
    print(res)
    print(f"step size {np.asarray(res.stats['step_size']).mean():.3f}, acceptance {res.acceptance_rate().mean():.2f}")
    print(f"mean radius {radius.mean():.3f} (energy minimum at 2), sd {radius.std():.3f}")
    print(res.summary())


if __name__ == "__main__":
    main()
