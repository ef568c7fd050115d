"""The kernel contract for the combinators and ``categorical_gibbs`` (mirrors test_contract.py).

Every entry works under jit, vmap and scan with pytree positions, exposes NamedTuple
state/info (``position``, ``logdensity``, ``params`` where there are tunables), keeps its
cached log-density equal to the log-density of its position, runs its warmup protocol under
jit + vmap + scan, and a second ``run_chains`` call with the same log-density, kernel
settings and shapes compiles nothing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcgen as mc
from mcgen import testing
from mcgen.combinators import compose, gibbs, mixture
from mcgen.kernels.categorical_gibbs import categorical_gibbs


def logdensity_dict(x):
    return -0.5 * jnp.sum(x["a"] ** 2) - 0.5 * x["b"] ** 2


def logdensity_flat(x):
    return -0.5 * jnp.sum(x**2)


def logdensity_int(x):
    return -0.5 * jnp.sum((x.astype(jnp.float32) - 1.0) ** 2)


def logdensity_int_dict(x):
    return logdensity_int(x["a"]) - 0.3 * x["b"].astype(jnp.float32)


def draw_a(key, x):
    del x
    return jax.random.normal(key, (2,))


def draw_b(key, x):
    del x
    return jax.random.normal(key)


DICT_INIT = {"a": jnp.array([0.1, -0.2]), "b": jnp.array(0.3)}
FLAT_INIT = jnp.array([0.1, -0.2, 0.3])
TARGETS = {
    "flat": (logdensity_flat, FLAT_INIT),
    "dict": (logdensity_dict, DICT_INIT),
    "int": (logdensity_int, jnp.array([0, 1, 2], jnp.int32)),
    "int_dict": (logdensity_int_dict, {"a": jnp.array([0, 2], jnp.int32), "b": jnp.array(1, jnp.int32)}),
}

# name -> (constructor, position kinds it supports)
KERNELS = {
    "gibbs_exact": (lambda: gibbs({"a": draw_a, "b": draw_b}), ("dict",)),
    "gibbs_mh": (lambda: gibbs({"a": mc.rwmh(), "b": mc.adaptive_mh()}), ("dict",)),
    "gibbs_mixed_random": (lambda: gibbs({"a": mc.rwmh(), "b": draw_b}, scan="random"), ("dict",)),
    "gibbs_nested": (lambda: gibbs({("a", "b"): compose(gibbs({"a": mc.rwmh()}), mc.rwmh())}), ("dict",)),
    "compose": (lambda: compose(mc.rwmh(), mc.adaptive_mh()), ("flat",)),
    "mixture": (lambda: mixture([mc.rwmh(), mc.rwmh(0.5, adapt=False)], [0.4, 0.6]), ("dict",)),
    "categorical_gibbs": (lambda: categorical_gibbs(3), ("int_dict",)),
    "categorical_gibbs_parallel": (lambda: categorical_gibbs(3, parallel=True), ("int",)),
}

CASES = [(name, kind) for name, (_, kinds) in KERNELS.items() for kind in kinds]


def _same_structure(a, b):
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


@pytest.mark.parametrize("name, kind", CASES)
def test_jit_vmap_scan_and_state_conventions(name, kind):
    kernel = KERNELS[name][0]()
    logdensity_fn, position = TARGETS[kind]
    assert isinstance(kernel, mc.Kernel)

    state = jax.jit(kernel.init, static_argnums=1)(position, logdensity_fn)
    assert hasattr(state, "_fields") and {"position", "logdensity"} <= set(state._fields)
    assert _same_structure(state.position, position)
    assert jnp.shape(state.logdensity) == ()

    new_state, info = jax.jit(kernel.step, static_argnums=2)(jax.random.key(0), state, logdensity_fn)
    assert hasattr(info, "_fields")
    assert _same_structure(new_state, state)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: a.dtype == b.dtype, new_state.position, position))
    np.testing.assert_allclose(new_state.logdensity, logdensity_fn(new_state.position), rtol=1e-5)

    # vmap across chains and scan over steps, in one compiled program
    positions = jax.tree_util.tree_map(lambda x: jnp.stack([x, x, x]), position)

    def chains(ps, key):
        sts = jax.vmap(kernel.init, in_axes=(0, None))(ps, logdensity_fn)

        def body(st, k):
            return jax.vmap(kernel.step, in_axes=(0, 0, None))(jax.random.split(k, 3), st, logdensity_fn)

        return sts, jax.lax.scan(body, sts, jax.random.split(key, 30))[0]

    states, final = jax.jit(chains)(positions, jax.random.key(2))
    assert _same_structure(final, states)
    np.testing.assert_allclose(final.logdensity, jax.vmap(logdensity_fn)(final.position), rtol=1e-5)

    # warmup protocol, if any, under jit + vmap + scan
    if kernel.warmup is not None:
        assert _same_structure(testing.run_warmup(kernel, states, logdensity_fn), states)


@pytest.mark.filterwarnings("ignore::mcgen.SamplingWarning")
@pytest.mark.parametrize("name, kind", CASES)
def test_second_run_chains_call_does_not_recompile(name, kind):
    logdensity_fn, position = TARGETS[kind]
    shifted = jax.tree_util.tree_map(lambda x: x + 0.05 if x.dtype.kind == "f" else x, position)
    testing.assert_no_recompile(logdensity_fn, KERNELS[name][0], position, shifted, init_batched=False)


def test_constructors_return_the_same_object_for_the_same_settings():
    for name, (make, _) in KERNELS.items():
        assert make() is make(), name
    assert gibbs({"a": draw_a}) is not gibbs({"a": draw_b})
    assert mixture([mc.rwmh()], [1.0]) is not mixture([mc.rwmh(0.3)], [1.0])


shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
trees = st.dictionaries(st.sampled_from(["a", "b", "c"]), shapes, min_size=1, max_size=3)


def _logdensity_tree(position):
    return -0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(position))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, scan=st.sampled_from(["systematic", "random"]))
def test_gibbs_over_random_dict_positions(tree, scan):
    init = {k: jnp.zeros(shape, jnp.float32) for k, shape in tree.items()}
    kernel = gibbs({k: mc.rwmh() for k in sorted(tree)}, scan=scan)

    def run(position, key):
        state = kernel.init(position, _logdensity_tree)
        return jax.lax.scan(lambda s, k: kernel.step(k, s, _logdensity_tree), state, jax.random.split(key, 3))

    state, info = jax.jit(run)(init, jax.random.key(0))
    assert jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), state.position) == {
        k: (shape, jnp.float32) for k, shape in tree.items()
    }
    assert set(state.params) == set(info.blocks) == set(tree)
    assert info.is_divergent.shape == (3,)
