"""Property tests (hypothesis): run_chains output shapes and dtypes for random pytree positions,
chain counts, draw counts and thinning."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcgen as mc

shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
trees = st.dictionaries(st.sampled_from(["a", "b", "c"]), shapes, min_size=1, max_size=3)


def _logdensity(position):
    return -0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(position))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=trees,
    num_chains=st.integers(1, 5),
    num_samples=st.integers(1, 12),
    thin=st.integers(1, 3),
    num_warmup=st.integers(0, 5),
    kernel=st.sampled_from(["rwmh", "adaptive_mh"]),
)
def test_run_chains_shapes(tree, num_chains, num_samples, thin, num_warmup, kernel):
    init = {k: jnp.zeros(shape, jnp.float32) for k, shape in tree.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mc.run_chains(
            _logdensity,
            getattr(mc, kernel)(),
            init=init,
            num_chains=num_chains,
            num_samples=num_samples,
            num_warmup=num_warmup,
            thin=thin,
            progress=False,
            init_batched=False,
        )
    for k, shape in tree.items():
        assert res.samples[k].shape == (num_chains, num_samples, *shape)
        assert res.samples[k].dtype == np.float32
        assert np.all(np.isfinite(res.samples[k]))
    for name, value in res.stats.items():
        assert value.shape == (num_chains, num_samples), name
    assert jax.tree_util.tree_structure(res.last_state.position) == jax.tree_util.tree_structure(init)
    assert np.all(np.asarray(res.stats["accept_prob"]) >= 0) and np.all(np.asarray(res.stats["accept_prob"]) <= 1)


@settings(max_examples=6, deadline=None)
@given(dtype=st.sampled_from([jnp.float32, jnp.bfloat16, jnp.float16]), dim=st.integers(1, 4))
def test_position_dtype_is_preserved(dtype, dim):
    init = jnp.zeros(dim, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mc.run_chains(
            lambda x: -0.5 * jnp.sum(x.astype(jnp.float32) ** 2),
            mc.rwmh(),
            init=init,
            num_chains=2,
            num_samples=5,
            num_warmup=3,
            progress=False,
            init_batched=False,
        )
    assert res.samples.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(res.samples.astype(np.float32)))
