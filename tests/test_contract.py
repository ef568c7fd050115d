"""The kernel contract: every kernel and combinator works under jit, vmap, scan, with pytree
positions, exposes NamedTuple state/info with the common field names, and a second
``run_chains`` call with the same log-density, kernel settings and shapes compiles nothing.

Every new kernel or combinator joins ``KERNELS`` below.  The kernel skeleton of the guide
(``docs/writing-kernels.md``) is read from the page and registered as written.
"""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.kernels.base import check_kernel

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def docs_skeleton():
    """``my_kernel`` from the first Python block of the guide page "Writing a kernel"."""
    text = (DOCS / "writing-kernels.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOCS / "writing-kernels.md"), "exec"), namespace)
    return namespace["my_kernel"]


SKELETON = docs_skeleton()


class DictNormal:
    """A proposal over dict positions {"a": (2,), "b": ()} for independent_mh."""

    def sample(self, key):
        ka, kb = jax.random.split(key)
        return {"a": 2.0 * jax.random.normal(ka, (2,)), "b": 2.0 * jax.random.normal(kb)}

    def log_prob(self, x):
        return jnp.sum(dist.Normal(0.0, 2.0).log_prob(x["a"])) + dist.Normal(0.0, 2.0).log_prob(x["b"])


def logdensity_dict(x):
    return -0.5 * jnp.sum(x["a"] ** 2) - 0.5 * x["b"] ** 2


def logdensity_flat(x):
    return -0.5 * jnp.sum(x**2)


DICT_INIT = {"a": jnp.array([0.1, -0.2]), "b": jnp.array(0.3)}
FLAT_INIT = jnp.array([0.1, -0.2, 0.3])

# name -> (constructor, position kinds it supports)
KERNELS = {
    "rwmh": (lambda: mc.rwmh(), ("flat", "dict")),
    "rwmh_fixed": (lambda: mc.rwmh(0.5, adapt=False), ("flat", "dict")),
    "adaptive_mh": (lambda: mc.adaptive_mh(), ("flat", "dict")),
    "independent_mh_flat": (lambda: mc.independent_mh(_FLAT_PROPOSAL), ("flat",)),
    "independent_mh_dict": (lambda: mc.independent_mh(_DICT_PROPOSAL), ("dict",)),
    "mala": (lambda: mc.mala(), ("flat", "dict")),
    "hmc": (lambda: mc.hmc(num_integration_steps=5), ("flat", "dict")),
    "nuts": (lambda: mc.nuts(max_tree_depth=5), ("flat", "dict")),
    "chees_hmc": (lambda: mc.chees_hmc(), ("flat", "dict")),
    "mams": (lambda: mc.mams(), ("flat", "dict")),
    "meads": (lambda: mc.meads(), ("flat", "dict")),
    "ula": (lambda: mc.ula(0.1), ("flat", "dict")),
    "barker": (lambda: mc.barker(), ("flat", "dict")),
    "docs_skeleton": (lambda: SKELETON(), ("flat", "dict")),
}
_FLAT_PROPOSAL = dist.Normal(jnp.zeros(3), 2.0).to_event(1)
_DICT_PROPOSAL = DictNormal()

CASES = [(name, kind) for name, (_, kinds) in KERNELS.items() for kind in kinds]
TARGETS = {"flat": (logdensity_flat, FLAT_INIT), "dict": (logdensity_dict, DICT_INIT)}


def _leaves_equal_structure(a, b):
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


@pytest.mark.parametrize("name, kind", CASES)
def test_jit_vmap_scan_and_state_conventions(name, kind):
    kernel = KERNELS[name][0]()
    logdensity_fn, position = TARGETS[kind]
    assert isinstance(kernel, mc.Kernel)

    state = jax.jit(kernel.init, static_argnums=1)(position, logdensity_fn)
    assert hasattr(state, "_fields") and {"position", "logdensity"} <= set(state._fields)
    assert _leaves_equal_structure(state.position, position)
    assert jnp.shape(state.logdensity) == ()

    step = jax.jit(kernel.step, static_argnums=2)
    new_state, info = step(jax.random.key(0), state, logdensity_fn)
    assert hasattr(info, "_fields")
    if name != "ula":  # unadjusted Langevin accepts every move and reports no acceptance
        assert {"accept_prob", "is_accepted"} <= set(info._fields)
    assert _leaves_equal_structure(new_state, state)
    # the cached log-density is the log-density of the position
    np.testing.assert_allclose(new_state.logdensity, logdensity_fn(new_state.position), rtol=1e-5)

    # vmap across chains (under jit: abstract values are stricter than eager vmap, and one
    # compile is cheaper than dispatching every primitive of the batched step on its own)
    positions = jax.tree_util.tree_map(lambda x: jnp.stack([x, x + 0.1, x - 0.1]), position)
    states = jax.jit(jax.vmap(kernel.init, in_axes=(0, None)), static_argnums=1)(positions, logdensity_fn)
    keys = jax.random.split(jax.random.key(1), 3)
    states2, infos = jax.jit(jax.vmap(kernel.step, in_axes=(0, 0, None)), static_argnums=2)(keys, states, logdensity_fn)
    assert jax.tree_util.tree_leaves(infos)[0].shape[0] == 3

    # scan over steps
    def body(st, k):
        return kernel.step(k, st, logdensity_fn)

    final, infos = jax.lax.scan(body, state, jax.random.split(jax.random.key(2), 50))
    assert jax.tree_util.tree_leaves(infos)[0].shape[0] == 50
    assert bool(jnp.all(jnp.isfinite(jnp.asarray(jax.tree_util.tree_leaves(final.position)[0]))))

    # warmup protocol, if any, under jit + vmap + scan
    if kernel.warmup is not None:
        assert _leaves_equal_structure(testing.run_warmup(kernel, states, logdensity_fn), states)


@pytest.mark.parametrize("name, kind", CASES)
def test_kernel_follows_the_rules_combinators_rely_on(name, kind):
    """The protocols of mcgen.types (params, a warmup's ``state`` field, Info names, rebuild)."""
    logdensity_fn, position = TARGETS[kind]
    check_kernel(KERNELS[name][0](), position, logdensity_fn, num_steps=3)


def test_check_kernel_catches_broken_rules():
    def init(position, logdensity_fn):
        return {"position": position, "logdensity": logdensity_fn(position)}  # a dict, not a NamedTuple

    with pytest.raises(AssertionError, match="NamedTuple"):
        check_kernel(mc.Kernel(init, lambda key, state, fn: (state, None)), FLAT_INIT, logdensity_flat)
    rw = mc.rwmh()
    bad_warmup = mc.Kernel(rw.init, rw.step, lambda n: mc.Warmup(lambda st: (st,), None, None))
    with pytest.raises(AssertionError, match="`state`"):
        check_kernel(bad_warmup, FLAT_INIT, logdensity_flat)
    stale = mc.Kernel(
        rw.init, lambda key, st, fn: (st._replace(logdensity=st.logdensity + 1.0), rw.step(key, st, fn)[1])
    )
    with pytest.raises(AssertionError, match="logdensity"):
        check_kernel(stale, FLAT_INIT, logdensity_flat)


@pytest.mark.filterwarnings("ignore::mcgen.SamplingWarning")
@pytest.mark.parametrize("name, kind", CASES)
def test_second_run_chains_call_does_not_recompile(name, kind):
    logdensity_fn, position = TARGETS[kind]
    shifted = jax.tree_util.tree_map(lambda x: x + 0.05, position)
    testing.assert_no_recompile(logdensity_fn, KERNELS[name][0], position, shifted)


def test_kernel_constructors_return_the_same_object_for_the_same_settings():
    assert mc.rwmh() is mc.rwmh()
    assert mc.rwmh(0.3) is mc.rwmh(0.3)
    assert mc.rwmh(0.3) is not mc.rwmh(0.4)
    assert mc.adaptive_mh() is mc.adaptive_mh()
    assert mc.independent_mh(_FLAT_PROPOSAL) is mc.independent_mh(_FLAT_PROPOSAL)


def test_kernel_settings_are_validated():
    with pytest.raises(ValueError):
        mc.rwmh(target_accept=1.5)
    with pytest.raises(ValueError):
        mc.adaptive_mh(regularization=-1.0)
    with pytest.raises(TypeError, match="callable `sample`"):
        mc.independent_mh(object())
