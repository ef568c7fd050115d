r"""Gibbs updates of integer variables by enumerating their full conditionals from the joint.

For an integer variable :math:`x_j \in \{0, \dots, K_j - 1\}` the full conditional is the
joint evaluated at every value, normalized:

.. math::

    p(x_j = c \mid x_{-j}) = \frac{\pi(x_{-j}, x_j = c)}{\sum_{c'=0}^{K_j-1} \pi(x_{-j}, x_j = c')} .

The kernel evaluates ``logdensity_fn`` at the :math:`K_j` values at once (``vmap`` over the
support) and draws from the softmax of those log-densities (``jax.random.categorical``, the
Gumbel-max trick).  That is an exact Gibbs draw: nothing is rejected, and no conditional has
to be derived by hand.  The log-density of the new state is one of the values enumerated, so
the state's cached ``logdensity`` costs nothing extra.  A value whose log-density is NaN or
:math:`+\infty` is excluded from the draw and flagged in ``Info.is_nonfinite``.

A position with several elements (an integer array, or a pytree of them) is updated

* **sequentially** (default): element after element, each from its conditional given the
  *current* values of all the others (a ``lax.scan`` over elements: a systematic-scan Gibbs
  sweep, valid for any joint).  Cost: :math:`\sum_j K_j` log-density evaluations, :math:`n`
  of them in sequence.
* **in parallel** (``parallel=True``): all elements drawn at once, each from its conditional
  given the others' values *before* the step, in one vectorized draw.  This is an exact draw
  from the block's joint conditional, hence a valid Gibbs step, **only when the elements are
  conditionally independent given the rest of the position**,
  :math:`\pi(x_{\text{block}} \mid \text{rest}) = \prod_j \pi(x_j \mid \text{rest})`: the sites
  of one colour of a checkerboard-coloured lattice (Ising), or the assignments of a mixture
  given its parameters.  For dependent elements a simultaneous (Jacobi) draw does *not* leave
  :math:`\pi` invariant; mcgen cannot check independence for you.

References
----------
Geman, S. and Geman, D. (1984). Stochastic relaxation, Gibbs distributions, and the Bayesian
restoration of images. IEEE PAMI 6, 721–741.

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> table = jnp.log(jnp.array([[0.1, 0.2, 0.1], [0.3, 0.2, 0.1]]))   # joint of (a, b)
>>> res = mc.run_chains(lambda x: table[x[0], x[1]], mc.categorical_gibbs(num_categories=(2, 3)),
...                     init=jnp.zeros(2, jnp.int32), progress=False)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from mcgen.kernels import _random
from mcgen.kernels._proposal import cached_constructor, is_bad_logdensity, scalar_logdensity
from mcgen.types import Kernel

__all__ = ["CategoricalGibbsInfo", "CategoricalGibbsState", "categorical_gibbs"]


class CategoricalGibbsState(NamedTuple):
    position: Any
    logdensity: jax.Array


class CategoricalGibbsInfo(NamedTuple):
    accept_prob: jax.Array  # always 1: an exact conditional draw
    is_accepted: jax.Array  # always True
    is_nonfinite: jax.Array  # some enumerated value had a NaN / +inf log-density (excluded)
    num_changed: jax.Array  # elements whose value changed


def _flat_int(position):
    flat, unravel = ravel_pytree(position)
    if not jnp.issubdtype(flat.dtype, jnp.integer):
        raise ValueError(f"categorical_gibbs: the position must hold integers (values 0..K-1), got dtype {flat.dtype}")
    return flat, unravel


@cached_constructor
def categorical_gibbs(num_categories: int | tuple = 2, *, parallel: bool = False) -> Kernel:
    """Exact Gibbs updates of integer variables by enumeration of the full conditional.

    Parameters
    ----------
    num_categories
        :math:`K`: every element takes values ``0 .. K-1``.  Or one :math:`K_j` per element
        (a sequence or array with one entry per element of the flattened position, e.g. the
        shape of an integer-array position).
    parallel
        Draw all elements at once (one vectorized draw) instead of one after another.  Valid
        **only** when the elements are conditionally independent given the rest of the
        position (see the module docstring).

    Returns
    -------
    Kernel
        State :class:`CategoricalGibbsState`, info :class:`CategoricalGibbsInfo`; no tunables
        and no warmup.

    Raises
    ------
    ValueError
        A :math:`K` below 2 or not an integer; at ``init`` / ``step``, a non-integer position
        or a per-element :math:`K` whose size differs from the number of elements.
    """
    ks = np.asarray(num_categories)
    if ks.dtype.kind not in "iu" or ks.size == 0 or np.any(ks < 2):
        raise ValueError(f"categorical_gibbs: num_categories must be integers >= 2, got {num_categories!r}")
    kmax = int(ks.max())
    ks = ks.ravel()

    def per_element(n: int) -> jax.Array:
        if ks.size not in (1, n):
            raise ValueError(f"categorical_gibbs: {ks.size} values of num_categories for a position with {n} elements")
        return jnp.asarray(np.broadcast_to(ks, (n,)), jnp.int32)

    def logits_at(logdensity_fn, unravel, flat, j, k_j):
        values = jnp.arange(kmax, dtype=jnp.int32)
        logdensities = jax.vmap(
            lambda c: scalar_logdensity(logdensity_fn, unravel(flat.at[j].set(c.astype(flat.dtype))))
        )(values)
        bad = is_bad_logdensity(logdensities)
        logits = jnp.where(bad | (values >= k_j), -jnp.inf, logdensities)
        return logits, jnp.any(bad & (values < k_j))

    def draw(key, logits, current):
        new = jax.random.categorical(key, logits, axis=-1).astype(current.dtype)
        # nothing finite to choose from (a position outside the support): stay put
        return jnp.where(jnp.any(jnp.isfinite(logits), axis=-1), new, current)

    def init(position, logdensity_fn) -> CategoricalGibbsState:
        flat, _ = _flat_int(position)
        per_element(flat.shape[0])
        return CategoricalGibbsState(position, scalar_logdensity(logdensity_fn, position))

    def step(key, state: CategoricalGibbsState, logdensity_fn):
        flat, unravel = _flat_int(state.position)
        n = flat.shape[0]
        k = per_element(n)
        if parallel:
            logits, bad = jax.vmap(lambda j: logits_at(logdensity_fn, unravel, flat, j, k[j]))(jnp.arange(n))
            new = draw(key, logits, flat)
            logdensity = scalar_logdensity(logdensity_fn, unravel(new)).astype(state.logdensity.dtype)
        else:

            def body(carry, inputs):
                current, logdensity = carry
                j, key_j = inputs
                logits, bad_j = logits_at(logdensity_fn, unravel, current, j, k[j])
                c = draw(key_j, logits, current[j])
                logdensity = jnp.where(jnp.isfinite(logits[c]), logits[c].astype(logdensity.dtype), logdensity)
                return (current.at[j].set(c), logdensity), bad_j

            keys = jax.vmap(lambda j: _random.fold_in(key, j))(jnp.arange(n, dtype=jnp.uint32))
            (new, logdensity), bad = jax.lax.scan(body, (flat, state.logdensity), (jnp.arange(n), keys))
        info = CategoricalGibbsInfo(
            jnp.ones((), logdensity.dtype), jnp.ones((), bool), jnp.any(bad), jnp.sum(new != flat).astype(jnp.int32)
        )
        return CategoricalGibbsState(unravel(new), logdensity), info

    return Kernel(init, step, None)
