r"""Neural networks as sampling targets: energies and scores.

An energy-based model defines an unnormalized density through a network :math:`E_\theta`,

.. math::

    p(x) \propto \exp\big(-E_\theta(x) / T\big),

so its log-density is :math:`-E_\theta(x)/T` up to a constant, which is all that mcgen's
kernels need.  :func:`energy_logdensity` turns any apply function into such a
``logdensity_fn``: a Flax Linen ``model.apply`` with its ``params``, an Equinox module or a
Flax NNX module called as ``model(x)`` (``params=None``), or a plain Python function.  The
temperature may be an array, so a tempered ladder reuses one compiled function.

A score model gives :math:`\nabla_x \log p(x)` directly; :func:`score_fn_from_logdensity`
and :func:`energy_score_fn` produce one from a log-density or an energy by automatic
differentiation, for samplers that need only the score (ULA, annealed Langevin).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mcgen.types import Array, ArrayLike, ArrayTree, LogDensityFn

__all__ = ["energy_logdensity", "energy_score_fn", "score_fn_from_logdensity"]


def _check_temperature(temperature):
    if isinstance(temperature, (int, float)) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def energy_logdensity(
    apply_fn: Callable[..., ArrayLike], params: Any = None, temperature: ArrayLike = 1.0
) -> LogDensityFn:
    r"""The log-density :math:`-E(x)/T` of an energy network.

    Parameters
    ----------
    apply_fn
        ``apply_fn(params, x) -> energy`` (Flax Linen ``model.apply``, Haiku ``apply``), or,
        when ``params`` is ``None``, ``apply_fn(x) -> energy`` (an Equinox or Flax NNX
        module, or a plain function).  ``x`` is one position (any pytree), and the energy must
        be a scalar (arrays holding a single element, e.g. shape ``(1,)``, are accepted).
    params
        Network parameters, or ``None``.
    temperature
        :math:`T > 0`; a float or a scalar array.

    Returns
    -------
    logdensity_fn
        ``logdensity_fn(x) -> scalar``, usable with every mcgen kernel and ``run_chains``.

    Raises
    ------
    ValueError
        When the network returns more than one number per position (raised when the
        log-density is first called or traced).

    Example
    -------
    >>> import jax.numpy as jnp
    >>> logdensity = energy_logdensity(lambda p, x: 0.5 * p * jnp.sum(x**2), 2.0, temperature=2.0)
    >>> float(logdensity(jnp.ones(2)))
    -1.0
    """
    _check_temperature(temperature)

    def logdensity_fn(x: ArrayTree) -> Array:
        energy = jnp.asarray(apply_fn(x) if params is None else apply_fn(params, x))
        if energy.size != 1:
            raise ValueError(
                "the energy network must return a scalar per position, got shape "
                f"{energy.shape}; pass one position (not a batch) or reduce the output "
                "(e.g. jnp.sum) inside apply_fn"
            )
        return -jnp.reshape(energy, ()) / temperature

    return logdensity_fn


def score_fn_from_logdensity(logdensity_fn: LogDensityFn) -> Callable[[ArrayTree], ArrayTree]:
    r"""``score_fn(x) = \nabla_x \log p(x)``, same pytree structure as ``x``."""
    return jax.grad(logdensity_fn)


def energy_score_fn(
    apply_fn: Callable[..., ArrayLike], params: Any = None, temperature: ArrayLike = 1.0
) -> Callable[[ArrayTree], ArrayTree]:
    r"""``score_fn(x) = -\nabla_x E(x) / T`` for an energy network (see :func:`energy_logdensity`)."""
    return jax.grad(energy_logdensity(apply_fn, params, temperature))
