"""The kernel contract (tests/test_contract.py) for ``parallel_tempering``: jit, vmap, scan,
pytree positions, NamedTuple state/info with the common names, the warmup protocol, caches
consistent after swaps, and no recompilation on a second ``run_chains`` call.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.combinators.tempering import PriorLikelihood, parallel_tempering


def logdensity_dict(x):
    return -0.5 * jnp.sum(x["a"] ** 2) - 0.5 * x["b"] ** 2


def logdensity_flat(x):
    return -0.5 * jnp.sum(x**2)


def log_prior_flat(x):
    return -0.5 * jnp.sum((x / 3.0) ** 2)


DICT_INIT = {"a": jnp.array([0.1, -0.2]), "b": jnp.array(0.3)}
FLAT_INIT = jnp.array([0.1, -0.2, 0.3])
TARGETS = {
    "flat": (logdensity_flat, FLAT_INIT),
    "dict": (logdensity_dict, DICT_INIT),
    "pair": (PriorLikelihood(log_prior_flat, logdensity_flat), FLAT_INIT),
}


def _nuts():
    nuts = pytest.importorskip("mcgen.kernels.nuts").nuts
    return parallel_tempering(nuts(max_tree_depth=4), num_temps=3)


KERNELS = {
    "pt_rwmh": (lambda: parallel_tempering(mc.rwmh(), num_temps=4), ("flat", "dict", "pair")),
    "pt_rwmh_reversible_all": (
        lambda: parallel_tempering(mc.rwmh(), betas=(0.2, 0.6, 1.0), swap="reversible", return_all=True),
        ("flat",),
    ),
    "pt_nuts": (_nuts, ("flat",)),
}
CASES = [(name, kind) for name, (_, kinds) in KERNELS.items() for kind in kinds]


def _same_structure(a, b):
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


def _check_caches(state, logdensity_fn):
    """Every replica's cached log-density is its tempered log-density at its position."""
    betas = state.params.betas
    ref = jax.vmap(lambda x: logdensity_fn.log_prior(x) if isinstance(logdensity_fn, PriorLikelihood) else 0.0)
    target = jax.vmap(logdensity_fn)(state.replicas.position)
    lr = ref(state.replicas.position)
    expected = lr + betas * (target - lr)
    np.testing.assert_allclose(state.replicas.logdensity, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, kind", CASES)
def test_jit_vmap_scan_and_state_conventions(name, kind):
    kernel = KERNELS[name][0]()
    logdensity_fn, position = TARGETS[kind]
    assert isinstance(kernel, mc.Kernel)
    state = jax.jit(kernel.init, static_argnums=1)(position, logdensity_fn)
    assert {"position", "logdensity", "params"} <= set(state._fields)
    n = state.params.betas.shape[0]
    if name.endswith("_all"):
        assert jax.tree_util.tree_map(jnp.shape, state.position) == jax.tree_util.tree_map(
            lambda x: (n,) + jnp.shape(x), position
        )
    else:
        assert _same_structure(state.position, position)
    new_state, info = jax.jit(kernel.step, static_argnums=2)(jax.random.key(0), state, logdensity_fn)
    assert {"accept_prob", "is_accepted", "swap_accept_prob", "round_trips"} <= set(info._fields)
    assert info.swap_accept_prob.shape == (n - 1,)
    assert _same_structure(new_state, state)
    np.testing.assert_allclose(
        new_state.logdensity,
        logdensity_fn(jax.tree_util.tree_map(lambda x: x[-1], new_state.replicas.position)),
        rtol=1e-5,
    )

    def body(st, k):
        return kernel.step(k, st, logdensity_fn)

    final, infos = jax.jit(lambda s, k: jax.lax.scan(body, s, jax.random.split(k, 30)))(state, jax.random.key(2))
    assert infos.swap_accept_prob.shape == (30, n - 1)
    assert np.any(np.asarray(infos.is_swapped))
    _check_caches(final, logdensity_fn)  # no stale cache after swaps

    positions = jax.tree_util.tree_map(lambda x: jnp.stack([x, x + 0.1]), position)
    states = jax.jit(jax.vmap(kernel.init, in_axes=(0, None)), static_argnums=1)(positions, logdensity_fn)
    _, vinfos = jax.jit(jax.vmap(kernel.step, in_axes=(0, 0, None)), static_argnums=2)(
        jax.random.split(jax.random.key(1), 2), states, logdensity_fn
    )
    assert vinfos.swap_accept_prob.shape == (2, n - 1)

    finalized = testing.run_warmup(kernel, states, logdensity_fn, num_steps=24)
    assert _same_structure(finalized, states)
    betas = np.asarray(finalized.params.betas)
    assert np.all(np.diff(betas, axis=1) > 0) and np.all(betas[:, -1] == 1.0)
    for i in range(2):
        _check_caches(jax.tree_util.tree_map(lambda x: x[i], finalized), logdensity_fn)


@pytest.mark.parametrize("name, kind", [("pt_rwmh", "flat"), ("pt_rwmh", "pair")])
def test_second_run_chains_call_does_not_recompile(name, kind):
    logdensity_fn, position = TARGETS[kind]
    wrap = (lambda f: PriorLikelihood(log_prior_flat, f)) if kind == "pair" else None
    logdensity_fn = logdensity_fn.log_likelihood if kind == "pair" else logdensity_fn
    testing.assert_no_recompile(logdensity_fn, KERNELS[name][0], position, position + 0.05, wrap=wrap)


def test_constructor_is_cached():
    assert parallel_tempering(mc.rwmh(), num_temps=4) is parallel_tempering(mc.rwmh(), num_temps=4)
    assert parallel_tempering(mc.rwmh(), num_temps=4) is not parallel_tempering(mc.rwmh(), num_temps=5)
