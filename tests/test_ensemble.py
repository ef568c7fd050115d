"""Cross-chain collectives in warmups: the pooled statistics count every requested chain and
no padding chain, fail clearly under chain_method='sequential', and agree across device
counts (8 simulated devices, in a subprocess)."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen.adaptation.ensemble import _chain_axis, chain_gather, chain_mean, chain_means, chain_sum, num_chains
from tests.ensemble_kernels import pooled_rwmh

pytestmark = pytest.mark.exact_bits  # run under XLA's default optimization (dev.py test)

SCRIPTS = pathlib.Path(__file__).parent / "scripts"


def logdensity(x):
    return -0.5 * jnp.sum(x**2)


INIT = np.arange(10.0).reshape(5, 2)  # 5 chains: the driver pads them to 8


@pytest.mark.parametrize("raw", [False, True])
def test_pooled_mean_counts_requested_chains_only(raw):
    """Known answer: chains that never move pool to the mean of their 5 initial points."""
    res = mc.run_chains(
        logdensity,
        pooled_rwmh(raw=raw, move=False),
        init=INIT,
        init_batched=True,
        num_chains=5,
        num_samples=2,
        num_warmup=2,
        progress=False,
        warn=False,
    )
    pooled = np.asarray(res.last_state.params.pooled_mean)
    sd = np.sqrt(np.mean(np.var(INIT, axis=0)))
    if raw:  # planted bug: raw pmean counts the 3 padding chains (copies of chains 0-2)
        assert not np.allclose(pooled, INIT.mean(0))
    else:
        np.testing.assert_allclose(pooled, np.broadcast_to(INIT.mean(0), (5, 2)), rtol=1e-6)
        np.testing.assert_allclose(res.last_state.params.scale, 2.38 / np.sqrt(2) * sd, rtol=1e-6)


def test_weighted_helpers_under_vmap():
    x = jnp.array([1.0, 2.0, 3.0, jnp.nan])
    w = jnp.array([1.0, 1.0, 2.0, 0.0])  # the NaN chain has no weight
    f = jax.vmap(lambda xi, wi: (chain_mean(xi, wi), chain_sum(xi, wi), num_chains()), axis_name="chains")
    mean, total, count = f(x, w)
    np.testing.assert_allclose(mean, 9.0 / 4.0)
    np.testing.assert_allclose(total, 9.0)
    np.testing.assert_allclose(count, 4.0)


def test_chain_means_are_the_separate_means_in_one_call():
    """Known answers: 8 mapped chains of which the driver requested 5 (3 padding chains, one
    holding NaN), values with and without weights and a pytree, one call against separate ones."""
    x = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0, 60.0, jnp.nan, 80.0])
    y = jnp.stack([x, -2.0 * x], axis=1)
    w = jnp.array([1.0, 0.0, 2.0, 1.0, jnp.nan, 3.0, 1.0, 1.0])  # NaN and 0: the chain counts for nothing

    def both(xi, yi, wi):
        together = chain_means([xi, {"y": yi}, xi], [None, wi, wi])
        apart = (chain_mean(xi), {"y": chain_mean(yi, wi)}, chain_mean(xi, wi))
        return together, apart, num_chains(), num_chains(wi)

    with _chain_axis("vectorized", 5):
        together, apart, count, weight = jax.vmap(both, axis_name="chains")(x, y, w)
    for a, b in zip(jax.tree_util.tree_leaves(together), jax.tree_util.tree_leaves(apart)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(together[0], 3.0)  # (1 + 2 + 3 + 4 + 5) / 5
    np.testing.assert_allclose(together[2], (1.0 + 6.0 + 4.0) / 4.0)  # weights 1, 0, 2, 1, NaN
    np.testing.assert_allclose(together[1]["y"], np.broadcast_to([[11.0 / 4.0, -22.0 / 4.0]], (8, 2)))
    np.testing.assert_array_equal(count, 5.0)
    np.testing.assert_array_equal(weight, 4.0)
    with pytest.raises(ValueError, match="2 values but 1 weights"):
        jax.vmap(lambda xi: chain_means([xi, xi], [None]), axis_name="chains")(x)


def test_chain_gather_stacks_every_chain_and_weights_padding_zero():
    x = jnp.arange(6.0)

    def gather(xi):
        return chain_gather({"a": xi, "b": jnp.stack([xi, 2 * xi]), "n": xi.astype(jnp.int32)})

    with _chain_axis("vectorized", 4):
        stacked, weights = jax.vmap(gather, axis_name="chains")(x)
    np.testing.assert_array_equal(stacked["a"][3], x)
    np.testing.assert_array_equal(stacked["b"][0], np.stack([x, 2 * x], axis=1))
    np.testing.assert_array_equal(stacked["n"][5], np.arange(6))
    assert stacked["n"].dtype == jnp.int32
    np.testing.assert_array_equal(weights[2], [1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    # outside run_chains every chain counts
    _, weights = jax.vmap(gather, axis_name="chains")(x)
    np.testing.assert_array_equal(weights[0], np.ones(6))


def test_sequential_refuses_pooling_warmup():
    with pytest.raises(ValueError, match="sequential"):
        mc.run_chains(
            logdensity,
            pooled_rwmh(),
            init=INIT,
            init_batched=True,
            num_chains=5,
            num_samples=2,
            num_warmup=2,
            progress=False,
            warn=False,
            chain_method="sequential",
        )
    # without warmup nothing is pooled: sequential runs
    mc.run_chains(
        logdensity,
        pooled_rwmh(),
        init=INIT,
        init_batched=True,
        num_chains=5,
        num_samples=2,
        num_warmup=0,
        progress=False,
        warn=False,
        chain_method="sequential",
    )


def test_adapted_values_agree_on_1_and_8_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "ensemble_devices.py")], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result.pop("num_devices") == 8
    for name, r in result.items():
        assert r["sharded"], name
        if name.startswith("raw"):  # planted bug: padding chains counted, 4 on 8 devices, none on 1
            assert r["max_rel_diff"] > 1e-3, (name, r)
            assert not r["per_device"], (name, r)  # a raw collective needs every chain in one program
        else:
            assert r["max_rel_diff"] < 1e-4, (name, r)
            assert r["per_device"], (name, r)  # each device loops over its own chains
