r"""Ancestral (forward) sampling of a NumPyro model.

A generative model factorizes along its program order,

.. math::

    p(z_1, \dots, z_K) = \prod_{k=1}^{K} p(z_k \mid z_1, \dots, z_{k-1}),

so running the program once, drawing every ``numpyro.sample`` site from its conditional given
the values already drawn, yields one exact joint draw.  Here every site is drawn, including
sites the model marks as observed (``obs=...``): their data are ignored
(``numpyro.handlers.uncondition``), which gives draws from the prior predictive.  Conditioning
on observed data is a different problem (likelihood weighting, MCMC).  ``num_samples`` runs
are vectorized with ``jax.vmap`` over independent keys.

This wraps NumPyro's effect handlers (``trace``, ``seed``, ``uncondition``).  It gives the
same distribution as ``numpyro.infer.Predictive(model, num_samples=n)(key, *args)`` with the
observed arguments set to ``None`` (with them given, ``Predictive`` returns the data at those
sites); ``ancestral_sample`` needs no such rewrite of the arguments and gives each draw its own
key (``fold_in``), so draw ``i`` does not depend on ``num_samples``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from numpyro import handlers

from mcgen.direct._proposal import check_positive_int
from mcgen.types import Array, PRNGKey

__all__ = ["ancestral_sample"]


def ancestral_sample(
    key: PRNGKey, model: Callable, num_samples: int, *model_args: Any, **model_kwargs: Any
) -> dict[str, Array]:
    """Draw ``num_samples`` joint draws of all sites of a NumPyro model, observed sites included.

    Parameters
    ----------
    key
        PRNG key.
    model
        A NumPyro model (a Python callable using ``numpyro.sample``).
    num_samples
        Number of independent draws.
    *model_args, **model_kwargs
        Passed to the model on every run.

    Returns
    -------
    dict
        ``{site name: array of shape (num_samples, *site_shape)}`` for every ``sample`` and
        ``deterministic`` site.

    Examples
    --------
    >>> import numpyro, numpyro.distributions as dist
    >>> def model(y=None):
    ...     z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    ...     numpyro.sample("y", dist.Normal(z, 1.0), obs=y)
    >>> draws = ancestral_sample(jax.random.key(0), model, 1000, y=0.3)
    >>> sorted(draws), draws["y"].shape
    (['y', 'z'], (1000,))
    """
    if not callable(model):
        raise TypeError(f"model must be a NumPyro model (a callable), got {type(model).__name__}")
    num_samples = check_positive_int(num_samples, "num_samples")

    def one(key_draw):
        model_trace = handlers.trace(handlers.seed(handlers.uncondition(model), key_draw)).get_trace(
            *model_args, **model_kwargs
        )
        return {
            name: site["value"] for name, site in model_trace.items() if site["type"] in ("sample", "deterministic")
        }

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_samples))
    return jax.vmap(one)(keys)
