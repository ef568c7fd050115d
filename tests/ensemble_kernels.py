"""A small ensemble-adapted kernel for the tests of cross-chain collectives.

``pooled_rwmh`` is random-walk Metropolis whose warmup sets the proposal scale from the
spread of the whole ensemble, ``scale = 2.38 / sqrt(d) * pooled sd``, and records the pooled
mean: after a warmup its adapted values are a known function of every chain's position.
``raw=True`` is the planted bug: it pools with ``jax.lax.pmean``, counting padding chains.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mcgen.adaptation.ensemble import CHAIN_AXIS, chain_mean
from mcgen.kernels._proposal import random_walk_move, scalar_logdensity
from mcgen.types import Kernel, Warmup


class Params(NamedTuple):
    scale: jax.Array
    pooled_mean: jax.Array


class State(NamedTuple):
    position: jax.Array
    logdensity: jax.Array
    params: Params


class WState(NamedTuple):
    state: State


class Info(NamedTuple):
    accept_prob: jax.Array
    is_accepted: jax.Array


def pooled_rwmh(raw: bool = False, move: bool = True) -> Kernel:
    mean = (lambda x: jax.lax.pmean(x, CHAIN_AXIS)) if raw else chain_mean

    def init(position, logdensity_fn):
        d = ravel_pytree(position)[0].shape[0]
        return State(position, scalar_logdensity(logdensity_fn, position), Params(jnp.asarray(1.0), jnp.zeros(d)))

    def step(key, state, logdensity_fn):
        if not move:
            return state, Info(jnp.ones(()), jnp.ones((), bool))
        position, logdensity, accept_prob, is_accepted, _ = random_walk_move(
            key, state.position, state.logdensity, logdensity_fn, lambda z: state.params.scale * z
        )
        return State(position, logdensity, state.params), Info(accept_prob, is_accepted)

    def adapt(state):
        x = ravel_pytree(state.position)[0]
        m = mean(x)
        sd = jnp.sqrt(jnp.mean(mean((x - m) ** 2)))
        return state._replace(params=Params(2.38 / jnp.sqrt(x.shape[0]) * sd, m))

    def warmup(num_steps):
        def w_step(key, ws, logdensity_fn):
            state, info = step(key, ws.state, logdensity_fn)
            return WState(adapt(state)), info

        return Warmup(lambda s: WState(adapt(s)), w_step, lambda ws: ws.state)

    return Kernel(init, step, warmup)
