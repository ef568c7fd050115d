"""NumPyro models as mcgen targets.

A NumPyro model defines a joint density over *constrained* latent values (a positive scale,
a simplex, an ordered vector...).  Gradient samplers want an unconstrained space, so each
latent site :math:`\\theta_k = T_k(z_k)` is reparameterized by a bijection :math:`T_k` from
:math:`\\mathbb R^{n_k}` onto its support (``numpyro.distributions.biject_to``) and the
sampler targets

.. math::

    \\log p(z \\mid \\text{data}) = \\log p\\big(T(z), \\text{data}\\big)
        + \\sum_k \\log\\big|\\det J_{T_k}(z_k)\\big| ,

which NumPyro computes as minus its *potential energy*.  :func:`from_numpyro` wraps the
model's potential (``numpyro.infer.util.initialize_model``) and its postprocessing
(constrain and recompute ``numpyro.deterministic`` sites) into a target object that
``run_chains`` accepts in place of a log-density::

    res = mc.run_chains(mc.from_numpyro(model, data), mc.nuts(), num_chains=4)
    res.samples["tau"]          # constrained values, named as in the model

Positions are dicts keyed by latent site name (unconstrained values); the draws that
``run_chains`` keeps are passed through ``transform`` and hold every latent and
deterministic site, constrained.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class NumPyroTarget(NamedTuple):
    """A NumPyro model seen as an mcgen target.

    Attributes
    ----------
    logdensity_fn
        ``logdensity_fn(z) -> scalar``: log posterior (up to a constant) on unconstrained
        space, Jacobian included; ``z`` is a dict ``{site: unconstrained value}``.
    transform
        ``transform(z) -> dict``: constrained latent values and deterministic sites, named
        as in the model.
    init
        A valid unconstrained position (the prior median of each site, mapped to
        unconstrained space).
    site_names
        The latent sample sites, in model order.
    """

    logdensity_fn: Callable[[dict], jax.Array]
    transform: Callable[[dict], dict]
    init: dict
    site_names: tuple


def from_numpyro(model: Callable, *args: Any, **kwargs: Any) -> NumPyroTarget:
    """The target of a NumPyro model conditioned on its arguments.

    Parameters
    ----------
    model
        A NumPyro model (a Python callable using ``numpyro.sample``).  Every latent site must
        be continuous: sample or enumerate discrete latents yourself.
    *args, **kwargs
        Passed to the model (data, covariates...).

    Returns
    -------
    NumPyroTarget
        With ``logdensity_fn``, ``transform`` and ``init``; hand it to ``run_chains``.

    Raises
    ------
    ValueError
        If the model has no latent continuous site, or has a discrete latent site.

    Example
    -------
    >>> import numpyro, numpyro.distributions as dist, jax.numpy as jnp
    >>> def model(y):
    ...     sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    ...     numpyro.sample("y", dist.Normal(0.0, sigma), obs=y)
    >>> target = from_numpyro(model, jnp.array([0.3, -1.2, 0.8]))
    >>> sorted(target.init), float(target.transform(target.init)["sigma"]) > 0
    (['sigma'], True)
    """
    from numpyro.infer.initialization import init_to_median
    from numpyro.infer.util import initialize_model

    if not callable(model):
        raise TypeError(f"from_numpyro: model must be a callable NumPyro model, got {type(model).__name__}")
    latent = _latent_sites(model, args, kwargs)
    discrete = [
        name
        for name, site in latent.items()
        if getattr(getattr(site["fn"], "support", None), "is_discrete", False)
        and not (site.get("infer") or {}).get("enumerate")
    ]
    if discrete:
        raise ValueError(
            f"from_numpyro: discrete latent sites {discrete} are not supported by gradient "
            "samplers; marginalize them (e.g. numpyro's enumeration) or use a Gibbs step"
        )
    if not latent:
        raise ValueError("from_numpyro: the model has no latent sample site (everything is observed)")
    info = initialize_model(
        jax.random.key(0), model, init_strategy=init_to_median(), model_args=args, model_kwargs=kwargs
    )
    potential_fn, postprocess_fn = info.potential_fn, info.postprocess_fn

    def logdensity_fn(z: dict) -> jax.Array:
        return -potential_fn(z)

    def transform(z: dict) -> dict:
        return postprocess_fn(z)

    init = {name: jnp.asarray(value) for name, value in info.param_info.z.items()}
    return NumPyroTarget(logdensity_fn, transform, init, tuple(latent))


def _latent_sites(model: Callable, args: tuple, kwargs: dict) -> dict:
    """Latent (unobserved) sample sites of one prior trace, in model order."""
    from numpyro import handlers

    trace = handlers.trace(handlers.seed(model, jax.random.key(0))).get_trace(*args, **kwargs)
    return {name: site for name, site in trace.items() if site["type"] == "sample" and not site["is_observed"]}
