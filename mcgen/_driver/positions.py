"""Initial positions for every chain, from the forms of ``init`` that ``run_chains`` accepts.

A single position is broadcast to every chain with each float coordinate jittered by
``Uniform(-init_jitter, init_jitter)``; a batch has a leading chain axis; a callable is
``init(key) -> position``.  Whether an array ``init`` is one position or a batch is inferred
from what ``logdensity_fn`` returns on it (an error asks when that is ambiguous).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mcgen._driver.compile import _call
from mcgen._driver.placement import _host_value


def _broadcast_jitter(num_chains: int, position, keys, jitter):
    def one(key):
        leaves, treedef = jax.tree_util.tree_flatten(position)
        subkeys = jax.random.split(key, len(leaves))
        out = []
        for k, leaf in zip(subkeys, leaves):
            leaf = jnp.asarray(leaf)
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                leaf = leaf + jitter.astype(leaf.dtype) * jax.random.uniform(
                    k, leaf.shape, leaf.dtype, minval=-1.0, maxval=1.0
                )
            out.append(leaf)
        return jax.tree_util.tree_unflatten(treedef, out)

    del num_chains
    return jax.vmap(one)(keys)


def _from_callable(init_fn, keys):
    return jax.vmap(init_fn)(keys)


def _logdensity_shape(logdensity_fn, position):
    """Shape of ``logdensity_fn(position)``, or None if it cannot be evaluated there."""
    try:
        return jax.eval_shape(logdensity_fn, position).shape
    except Exception:  # noqa: BLE001 - any failure means "not a valid single position"
        return None


# ------------------------------------------------------------------ initial positions


def _leading_dims(tree) -> set:
    return {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(tree)}


def _initial_positions(clock, logdensity_fn, init, num_chains, init_keys, init_jitter, init_batched):
    if callable(init):
        return _call(clock, _from_callable, (init,), init_keys)
    tree = jax.tree_util.tree_map(jnp.asarray, init)
    if not jax.tree_util.tree_leaves(tree):
        raise ValueError("init is an empty pytree; give a position (an array or a dict of arrays).")
    bad = [
        leaf
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(leaf.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(leaf)))
    ]
    if bad:
        raise ValueError("init contains NaN or inf values; every initial coordinate must be finite.")
    if init_batched is None:
        whole = _logdensity_shape(logdensity_fn, tree)
        can_batch = _leading_dims(tree) == {num_chains}
        first = _logdensity_shape(logdensity_fn, jax.tree_util.tree_map(lambda x: x[0], tree)) if can_batch else None
        if whole == () and first == () and num_chains == 1:
            first = None  # one chain: a lone position is far more likely than a batch of one
        if whole == () and first == ():
            raise ValueError(
                f"init is ambiguous: logdensity_fn gives a scalar both for the whole init and for "
                f"init[0], and every leaf's leading axis equals num_chains={num_chains}. Pass "
                "init_batched=True if init holds one position per chain, or init_batched=False if "
                "it is one position to broadcast."
            )
        if whole == ():
            init_batched = False
        elif first == ():
            init_batched = True
        elif whole is None and first is None:
            raise ValueError(
                "logdensity_fn cannot be evaluated at init (neither as one position nor as a batch "
                f"of {num_chains}); check the shapes of init against what logdensity_fn expects."
            )
        else:
            shape = whole if whole is not None else first
            raise ValueError(
                f"logdensity_fn must return a scalar, got shape {shape}. Sum the log-density over "
                "data points and dimensions (e.g. `jnp.sum(...)`)."
            )
    if init_batched:
        if _leading_dims(tree) != {num_chains}:
            raise ValueError(
                f"init_batched=True needs every leaf of init to have leading axis num_chains="
                f"{num_chains}; got leading sizes {sorted(map(str, _leading_dims(tree)))}."
            )
        return tree
    jitter = jnp.asarray(init_jitter, jnp.float32)
    return _call(clock, _broadcast_jitter, (num_chains,), tree, init_keys, jitter)


def _check_initial_logdensity(logdensity) -> None:
    """Raise a clear error if the initial log-density (None: the kernel keeps none) is not finite."""
    if logdensity is None:
        return
    values = _host_value(logdensity)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"the log-density at the initial position is not finite for chain(s) "
            f"{bad[:10].tolist()} (value {values[bad[0]]}); start inside the support of the target "
            "(with a broadcast init, try init_jitter=0 or a point away from the boundary)."
        )
