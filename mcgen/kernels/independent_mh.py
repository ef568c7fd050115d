"""Independence Metropolis–Hastings: proposals that ignore the current position.

Proposals :math:`y \\sim q` are drawn independently of :math:`x` and accepted with

.. math::

    \\alpha(x, y) = \\min\\Big(1, \\frac{\\pi(y)\\, q(x)}{\\pi(x)\\, q(y)}\\Big)
                 = \\min\\big(1, w(y) / w(x)\\big),\\qquad w = \\pi / q .

The chain is uniformly ergodic when :math:`w` is bounded (Mengersen & Tweedie 1996), and it
bridges direct samplers and Markov chains: any distribution that can ``sample`` and evaluate
``log_prob`` (a NumPyro distribution, a fitted flow, a variational approximation) becomes an
exact MCMC kernel for :math:`\\pi`.

The proposal's log-density at the current position is cached in the state; it does not depend
on the target, so the cache stays valid when the target changes under the kernel (Gibbs,
tempering).

References
----------
Tierney, L. (1994). Markov chains for exploring posterior distributions. Ann. Statist. 22.
Mengersen, K. L. and Tweedie, R. L. (1996). Rates of convergence of the Hastings and
Metropolis algorithms. Ann. Statist. 24, 101–121.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mcgen.kernels import _random
from mcgen.kernels._proposal import cached_constructor, mh_accept, scalar_logdensity, select
from mcgen.kernels.rwmh import RWMHInfo
from mcgen.types import Kernel


class IndependentMHState(NamedTuple):
    position: Any
    logdensity: jax.Array
    proposal_logdensity: jax.Array  # log q(position)


def _log_q(proposal, x) -> jax.Array:
    return jnp.sum(jnp.asarray(proposal.log_prob(x)))


@cached_constructor
def independent_mh(proposal) -> Kernel:
    """Independence Metropolis–Hastings kernel.

    Parameters
    ----------
    proposal
        Any object with ``sample(key)`` returning one position and ``log_prob(x)`` (summed
        if it returns a batch of terms), e.g. a NumPyro distribution whose event matches the
        position.  It should have heavier tails than the target.

    Returns
    -------
    Kernel
        No tunables; no warmup adaptation.
    """
    for attr in ("sample", "log_prob"):
        if not callable(getattr(proposal, attr, None)):
            raise TypeError(
                f"independent_mh: the proposal must have a callable `{attr}` method "
                f"(got {type(proposal).__name__}); a NumPyro distribution works."
            )

    def init(position, logdensity_fn) -> IndependentMHState:
        return IndependentMHState(position, scalar_logdensity(logdensity_fn, position), _log_q(proposal, position))

    def step(key, state: IndependentMHState, logdensity_fn):
        key_proposal, key_accept = _random.split(key)
        y = proposal.sample(key_proposal)
        y = jax.tree_util.tree_map(lambda a, b: jnp.asarray(a, jnp.asarray(b).dtype), y, state.position)
        log_q_y = _log_q(proposal, y)
        logdensity_y = scalar_logdensity(logdensity_fn, y)
        log_ratio = (logdensity_y - log_q_y) - (state.logdensity - state.proposal_logdensity)
        do_accept, accept_prob, is_nonfinite = mh_accept(key_accept, log_ratio, logdensity_y)
        new = select(do_accept, IndependentMHState(y, logdensity_y, log_q_y), state)
        return new, RWMHInfo(accept_prob, do_accept, is_nonfinite)

    return Kernel(init, step, None)
