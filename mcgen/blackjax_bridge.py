"""BlackJAX sampling algorithms as mcgen kernels.

A BlackJAX ``SamplingAlgorithm`` is a pair ``init(position)`` / ``step(key, state)`` with the
log-density baked in; its states (``RWState``, ``HMCState``) already hold ``position`` and
``logdensity``.  :func:`from_blackjax` wraps it as an mcgen :class:`~mcgen.types.Kernel`, so a
BlackJAX user keeps their kernel and gains ``run_chains``: many chains, devices, chunked
scans, reproducible keys, ArviZ diagnostics.

Two forms:

* **an algorithm** (``blackjax.nuts(logdensity_fn, step_size, inverse_mass_matrix)``): bound
  to its log-density; the ``logdensity_fn`` that ``run_chains`` passes is not used by the
  kernel, so give ``run_chains`` the same one.  Such a kernel cannot sit inside ``gibbs`` or
  ``parallel_tempering``, which change the target under it.
* **a builder** ``logdensity_fn -> algorithm`` (``lambda f: blackjax.nuts(f, 0.5, imm)``): the
  algorithm is built at call time for whatever target mcgen passes, like every mcgen kernel,
  and works inside the combinators too.

BlackJAX's ``Info`` fields are renamed to mcgen's common names (``acceptance_rate`` ->
``accept_prob``, ``num_integration_steps`` -> ``num_grad_evals``) and only per-draw scalars are
kept (proposals, momenta and trajectory end-points are dropped).  There is no warmup: tune
with BlackJAX (``blackjax.window_adaptation``) first, or use mcgen's own kernels, whose warmup
``run_chains`` runs.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable

import jax.numpy as jnp

from mcgen.types import Kernel

__all__ = ["from_blackjax"]

# BlackJAX Info field -> mcgen's common name (mcgen.types.INFO_FIELDS)
_RENAME = {
    "acceptance_rate": "accept_prob",
    "is_accepted": "is_accepted",
    "is_divergent": "is_divergent",
    "energy": "energy",
    "num_integration_steps": "num_grad_evals",
    "is_turning": "is_turning",
    "num_trajectory_expansions": "tree_depth",
}


@functools.lru_cache(maxsize=64)
def _info_type(fields: tuple[str, ...]) -> type:
    return collections.namedtuple("BlackJAXInfo", fields)


def _convert_info(info) -> Any:
    fields = getattr(info, "_fields", ())
    kept = [
        (new, getattr(info, old)) for old, new in _RENAME.items() if old in fields and jnp.ndim(getattr(info, old)) == 0
    ]
    return _info_type(tuple(name for name, _ in kept))(*(value for _, value in kept))


def from_blackjax(algorithm: Any) -> Kernel:
    """An mcgen kernel from a BlackJAX sampling algorithm, or from a builder of one.

    Parameters
    ----------
    algorithm
        A BlackJAX ``SamplingAlgorithm`` (anything with ``init(position)`` and
        ``step(key, state)``), bound to its log-density; or a callable
        ``logdensity_fn -> SamplingAlgorithm``, built for the target mcgen passes at call time.

    Returns
    -------
    Kernel
        ``init(position, logdensity_fn)`` returns the BlackJAX state (a NamedTuple with
        ``position`` and ``logdensity``); ``step`` returns it with an ``Info`` renamed to
        mcgen's common field names.  No warmup.

    Examples
    --------
    >>> import blackjax, jax.numpy as jnp, mcgen as mc
    >>> logdensity = lambda x: -0.5 * jnp.sum(x**2)
    >>> kernel = mc.from_blackjax(blackjax.nuts(logdensity, 0.8, jnp.ones(3)))
    >>> res = mc.run_chains(logdensity, kernel, init=jnp.zeros(3), num_chains=2, num_samples=200,
    ...                     num_warmup=50, progress=False, warn=False)
    >>> sorted(res.stats)[:3]
    ['accept_prob', 'energy', 'is_divergent']
    """
    if hasattr(algorithm, "init") and hasattr(algorithm, "step"):
        bound = algorithm

        def build(logdensity_fn: Callable) -> Any:
            del logdensity_fn  # the algorithm carries its own
            return bound
    elif callable(algorithm):
        build = algorithm
    else:
        raise TypeError(
            "from_blackjax needs a BlackJAX SamplingAlgorithm (with init and step) or a callable "
            f"logdensity_fn -> SamplingAlgorithm, got {type(algorithm).__name__}"
        )

    def init(position, logdensity_fn):
        return build(logdensity_fn).init(position)

    def step(key, state, logdensity_fn):
        state, info = build(logdensity_fn).step(key, state)
        return state, _convert_info(info)

    return Kernel(init, step, None)
