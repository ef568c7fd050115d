r"""Sampling normalizing flows: temperature and log-likelihood rejection.

A flow is a bijection :math:`x = f(z)` from a base :math:`z \sim \mathcal N(0, I)` to data,
with density

.. math::

    \log p(x) = \log \mathcal N\big(f^{-1}(x); 0, I\big)
              + \log\Big|\det \frac{\partial f^{-1}(x)}{\partial x}\Big| .

mcgen needs only plain callables: ``forward(z) -> x`` (base to data, for one sample),
``inverse(x) -> z`` and ``log_prob(x)``; distrax / flowjax bijectors or a user's own code all
fit (e.g. ``forward = bijector.forward``).  :func:`flow_log_prob` builds ``log_prob`` from
``inverse`` by automatic differentiation when a library does not provide it.

*Temperature* (Kingma & Dhariwal 2018, Glow) draws :math:`z \sim \mathcal N(0, T^2 I)`; for
an affine flow it scales every covariance by :math:`T^2`, and in general it trades diversity
for fidelity.

*Rejection by log-likelihood* keeps only draws with :math:`\log p(x) \ge \tau`, which samples
exactly from :math:`p` restricted to the superlevel set :math:`\{\log p \ge \tau\}` (when
``temperature = 1``).  To stay jit-friendly the output has a fixed size: rounds of
``num_samples`` proposals fill the output buffer in order (a ``lax.while_loop`` with at most
``max_rounds`` rounds), and a mask tells which rows were filled.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from mcgen.types import Array, PRNGKey

__all__ = ["sample_flow", "sample_flow_rejection", "flow_log_prob"]


def _check(num_samples, temperature):
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if isinstance(temperature, (int, float)) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def flow_log_prob(inverse: Callable[[Array], Array]) -> Callable[[Array], Array]:
    r"""``log_prob(x)`` of a flow with standard normal base, from its ``inverse`` alone.

    Uses the dense Jacobian of ``inverse`` (``jax.jacfwd``) and ``slogdet``: fine for small
    dimensions; prefer the flow library's own ``log_prob`` in high dimension.
    """

    def log_prob(x):
        x = jnp.asarray(x)
        z = inverse(x)
        jac = jax.jacfwd(lambda v: inverse(v.reshape(x.shape)).ravel())(x.ravel())
        log_det = jnp.linalg.slogdet(jac)[1]
        return -0.5 * jnp.sum(z**2) - 0.5 * z.size * jnp.log(2.0 * jnp.pi) + log_det

    return log_prob


@partial(jax.jit, static_argnames=("forward", "latent_shape", "num_samples"))
def _sample(key, forward, latent_shape, num_samples, temperature):
    z = temperature * jax.random.normal(key, (num_samples,) + latent_shape)
    return jax.vmap(forward)(z)


def sample_flow(
    key: PRNGKey,
    forward: Callable[[Array], Array],
    latent_shape: tuple[int, ...],
    num_samples: int,
    temperature: float = 1.0,
) -> Array:
    """Draw ``x = forward(z)``, ``z ~ N(0, temperature^2 I)``.

    Parameters
    ----------
    key
        PRNG key.
    forward
        Base-to-data map for one latent of shape ``latent_shape`` (vmapped here).
    latent_shape
        Shape of one latent.
    num_samples
        Number of draws.
    temperature
        Scale of the base distribution (> 0).

    Returns
    -------
    Array
        ``(num_samples, *data_shape)``.

    Example
    -------
    >>> import jax, jax.numpy as jnp
    >>> x = sample_flow(jax.random.key(0), lambda z: 1.0 + 2.0 * z, (3,), 10, temperature=0.7)
    >>> x.shape
    (10, 3)
    """
    _check(num_samples, temperature)
    return _sample(key, forward, tuple(latent_shape), num_samples, temperature)


@partial(jax.jit, static_argnames=("forward", "log_prob", "latent_shape", "num_samples", "max_rounds"))
def _rejection(key, forward, log_prob, latent_shape, num_samples, threshold, temperature, max_rounds):
    def propose(key):
        z = temperature * jax.random.normal(key, (num_samples,) + latent_shape)
        x = jax.vmap(forward)(z)
        return x, jax.vmap(log_prob)(x) >= threshold

    x0, _ = jax.eval_shape(propose, key)
    buffer = jnp.zeros(x0.shape, x0.dtype)

    def cond(carry):
        _, _, count, rnd = carry
        return (count < num_samples) & (rnd < max_rounds)

    def body(carry):
        key, buffer, count, rnd = carry
        key, key_round = jax.random.split(key)
        x, accept = propose(key_round)
        # Accepted proposals go to slots count, count+1, ...; the rest to a dropped slot.
        slot = jnp.where(accept, count + jnp.cumsum(accept) - 1, num_samples)
        buffer = buffer.at[slot].set(x, mode="drop")
        return key, buffer, count + jnp.sum(accept), rnd + 1

    _, buffer, count, rounds = lax.while_loop(cond, body, (key, buffer, jnp.int32(0), jnp.int32(0)))
    return buffer, jnp.arange(num_samples) < count, rounds


def sample_flow_rejection(
    key: PRNGKey,
    forward: Callable[[Array], Array],
    log_prob: Callable[[Array], Array],
    latent_shape: tuple[int, ...],
    num_samples: int,
    threshold: float,
    temperature: float = 1.0,
    max_rounds: int = 100,
) -> tuple[Array, Array]:
    """Draws from a flow with ``log_prob(x) >= threshold``, in a fixed-size output.

    Parameters
    ----------
    key
        PRNG key.
    forward, log_prob
        Base-to-data map and data log density, for one sample each.
    latent_shape
        Shape of one latent.
    num_samples
        Output size, also the number of proposals per round.
    threshold
        Minimum log-likelihood of a kept draw.
    temperature
        Proposal temperature (1 gives exact draws from the restricted density).
    max_rounds
        Bound on proposal rounds (so at most ``max_rounds * num_samples`` proposals).

    Returns
    -------
    samples
        ``(num_samples, *data_shape)``; rows past the number accepted are zeros.
    valid
        ``(num_samples,)`` bool mask of filled rows (all ``True`` unless ``max_rounds`` ran
        out).
    """
    _check(num_samples, temperature)
    if not isinstance(max_rounds, int) or max_rounds <= 0:
        raise ValueError(f"max_rounds must be a positive int, got {max_rounds!r}")
    samples, valid, _ = _rejection(
        key, forward, log_prob, tuple(latent_shape), num_samples, threshold, temperature, max_rounds
    )
    return samples, valid
