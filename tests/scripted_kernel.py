"""The state, params and info of a scripted kernel: a ``step`` that replays a table of draws,
scores and acceptance statistics, so that a warmup's adapted values can be checked against
the estimator applied to the table (tests/test_mass_estimators.py, tests/test_pooled_warmup.py)."""

from typing import Any, NamedTuple

import jax


class ScriptedParams(NamedTuple):
    step_size: jax.Array
    inverse_mass: Any  # a (d,) or (d, d) array, or a LowRankInverseMass


class ScriptedState(NamedTuple):
    position: jax.Array
    logdensity_grad: jax.Array
    params: ScriptedParams
    t: jax.Array  # the number of the next transition


class ScriptedInfo(NamedTuple):
    accept_prob: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    num_grad_evals: jax.Array
