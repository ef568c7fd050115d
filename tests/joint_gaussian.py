"""The small joint model shared by the SBC and Geweke tests.

``theta ~ N(0, I_2)`` and ``N_OBS`` observations ``y_i ~ N(theta, I_2)``; the same model with
``theta`` split into a dict of two blocks ``{"a", "b"}`` for the Gibbs samplers.
"""

import jax
import jax.numpy as jnp

N_OBS = 5


def prior(key):
    return jax.random.normal(key, (2,))


def simulate(key, theta):
    return theta + jax.random.normal(key, (N_OBS, 2))


def logdensity(theta, y):
    return -0.5 * jnp.sum(theta**2) - 0.5 * jnp.sum((y - theta) ** 2)


def prior_dict(key):
    ka, kb = jax.random.split(key)
    return {"a": jax.random.normal(ka, (1,)), "b": jax.random.normal(kb, (1,))}


def simulate_dict(key, theta):
    return jnp.concatenate([theta["a"], theta["b"]]) + jax.random.normal(key, (N_OBS, 2))


def logdensity_dict(theta, y):
    return logdensity(jnp.concatenate([theta["a"], theta["b"]]), y)
