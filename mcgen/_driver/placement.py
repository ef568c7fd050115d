"""Where chains run: padding, sharding across devices and hosts, copying draws to the host.

With several devices the chain axis of every state is split over a one-axis
``Mesh(devices, ("devices",))``; under ``jax.distributed`` the mesh spans every process.
XLA:CPU rounds some operations differently for per-device batches of 1, 3, 5-7 and 13-15
lanes, so the chain count is padded away from those sizes with chains that are discarded.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Sequence

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

# the mesh's one axis (the chain axis split over devices)
DEVICE_AXIS = "devices"

# pooled warmups traced as one partitioned program since the process started (a raw collective)
_WHOLE_BATCH_WARMUPS = 0

# the mesh of the program being traced (set by the compile cache from its arguments' shardings)
_MESH: contextvars.ContextVar[Any] = contextvars.ContextVar("mcgen_mesh", default=None)


def _mesh_of(args) -> Any:
    """The mesh of more than one device that the arguments are sharded over, or None."""
    for x in jax.tree_util.tree_leaves(args):
        mesh = getattr(getattr(x, "sharding", None), "mesh", None)
        if mesh is not None and mesh.devices.size > 1:
            return mesh
    return None


@contextlib.contextmanager
def _tracing_on(mesh):
    """While a program is traced: the mesh its chains are split over (None on one device)."""
    token = _MESH.set(mesh)
    try:
        yield
    finally:
        _MESH.reset(token)


class _Held:
    """A host array held as a primitive's parameter (hashed and compared by identity)."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray) -> None:
        self.value = value


def _embedded_abstract_eval(*, held: _Held):
    return jax.core.ShapedArray(held.value.shape, held.value.dtype)


def _embedded_lowering(ctx, *, held: _Held):
    from jax.interpreters import mlir

    return [mlir.ir_constant(held.value)]


def _embedded_primitive():
    from jax.extend.core import Primitive
    from jax.interpreters import mlir

    p = Primitive("mcgen_embedded_constant")
    p.def_impl(lambda *, held: jnp.asarray(held.value))
    p.def_abstract_eval(_embedded_abstract_eval)
    mlir.register_lowering(p, _embedded_lowering)
    return p


_EMBEDDED = _embedded_primitive()


def _embeddable(value, aval) -> bool:
    """Whether a value a function closes over can be written into its code as a constant."""
    if isinstance(value, jax.core.Tracer) or not getattr(value, "is_fully_addressable", True):
        return False  # a value of the enclosing program, or one spread over other processes
    return np.dtype(aval.dtype).kind in "biuf"  # not PRNG keys or other extended types


def _on_each_device(fn: Callable, num_shared: int = 0) -> Callable:
    """``fn(*per_chain, *shared)``, a map over chains, run by each device on its own chains.

    Under a mesh (see :func:`_tracing_on`) the ``per_chain`` arguments and every output are
    split along their leading axis over the devices and ``shared`` ones are whole on each; each
    device runs ``fn`` on its block in its own program (``shard_map``).  The partitioner
    would otherwise turn a loop whose condition depends on every chain (NUTS's trees, a
    leapfrog loop of per-chain length) into one loop over all devices, with a collective at
    each iteration.  Without a mesh, ``fn`` itself.  ``fn`` must pool nothing across chains:
    each device sees only its own (:func:`_pooled_on_each_device` is for maps that pool).

    Arrays that ``fn`` closes over (a log-density's data) stay constants in each device's
    code, as they are in the program of one device: ``shard_map`` alone would make them
    parameters, and XLA folds arithmetic with a constant (``x / c`` into ``x * (1 / c)``) but
    not with a parameter, so chain ``i``'s draws would depend on the number of devices.
    """
    mesh = _MESH.get()
    if mesh is None:
        return fn
    return _each_device(mesh, fn, num_shared)


def _pooled_on_each_device(make: Callable, num_shared: int = 0) -> Callable:
    """:func:`_on_each_device` for a map whose function pools statistics across chains (a
    warmup, through :mod:`mcgen.adaptation.ensemble`), given as ``make(split) -> map``.

    With ``split = (DEVICE_AXIS, chains per device)`` the map names its axis the device's own,
    and the ensemble helpers reduce over it and then over the devices; with ``split = None``
    it is the whole batch's ``"chains"`` axis.  A raw collective over ``"chains"`` has no such
    axis per device (an unbound-axis error while tracing); the whole batch then runs as one
    partitioned program, which sees every chain.
    """
    mesh = _MESH.get()
    if mesh is None:
        return make(None)

    def run(*args):
        per_device = jax.tree_util.tree_leaves(args[0])[0].shape[0] // mesh.devices.size
        try:
            return _each_device(mesh, make((DEVICE_AXIS, per_device)), num_shared)(*args)
        except NameError:  # a raw collective over "chains": every chain in one program
            global _WHOLE_BATCH_WARMUPS
            _WHOLE_BATCH_WARMUPS += 1
            return make(None)(*args)

    return run


def _each_device(mesh, fn: Callable, num_shared: int) -> Callable:
    """``fn`` in ``shard_map`` over ``mesh``, its closed-over arrays constants (see :func:`_on_each_device`)."""
    from jax.sharding import PartitionSpec

    def run(*args):
        split = len(args) - num_shared
        devices = mesh.devices.size

        def block(x, divide):
            t = jax.typeof(x)
            shape = (t.shape[0] // devices, *t.shape[1:]) if divide else t.shape
            return jax.ShapeDtypeStruct(shape, t.dtype, weak_type=t.weak_type)

        blocks = [jax.tree_util.tree_map(lambda x, d=i < split: block(x, d), a) for i, a in enumerate(args)]
        closed, out_shape = jax.make_jaxpr(fn, axis_env=[(DEVICE_AXIS, devices)], return_shape=True)(*blocks)
        avals = [v.aval for v in closed.jaxpr.constvars]
        embed = [_embeddable(c, a) for c, a in zip(closed.consts, avals)]
        passed = [c for c, e in zip(closed.consts, embed) if not e]
        out_tree = jax.tree_util.tree_structure(out_shape)

        def body(passed, *a):
            rest = iter(passed)
            consts = [
                _EMBEDDED.bind(held=_Held(np.asarray(c, aval.dtype))) if e else next(rest)
                for c, aval, e in zip(closed.consts, avals, embed)
            ]
            out = jax.core.eval_jaxpr(closed.jaxpr, consts, *jax.tree_util.tree_leaves(a))
            return jax.tree_util.tree_unflatten(out_tree, out)

        specs = (PartitionSpec(),) + (PartitionSpec(DEVICE_AXIS),) * split + (PartitionSpec(),) * num_shared
        mapped = jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(DEVICE_AXIS), check_vma=False)
        return mapped(passed, *args)

    return run


def _placement(chain_method: str | None, devices: Sequence[Any] | None):
    """(method, mesh or None) from the user's choice and the visible devices."""
    from jax.sharding import Mesh

    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty; pass None for every visible device")
    if chain_method is None:
        chain_method = "sharded" if len(devices) > 1 else "vectorized"
    if chain_method not in ("vectorized", "sharded", "sequential"):
        raise ValueError(f"chain_method must be 'vectorized', 'sharded' or 'sequential', got {chain_method!r}")
    if chain_method == "sharded" and len(devices) > 1:
        return "vectorized", Mesh(np.array(devices), (DEVICE_AXIS,))
    if chain_method == "sharded":
        chain_method = "vectorized"  # one device: sharding is plain vmap
    elif len(devices) == 1 and devices[0] != jax.devices()[0]:
        return chain_method, Mesh(np.array(devices), (DEVICE_AXIS,))
    return chain_method, None


def _padded_chain_count(requested: int, mesh) -> int:
    """Chains actually run (the padding chains are discarded): a multiple of the device count
    with a per-device batch that XLA:CPU vectorizes like any larger batch.

    XLA simplifies arithmetic on a batch axis of size one differently (it reassociates
    constants), and for small batches of 5-7 or 13-15 lanes (3 when sharded) it computes
    ``exp``/``log`` with a different SIMD tail than for other sizes (measured on x86-64 with
    AVX2; tests/test_run.py and tests/test_sharding.py check it).  So a device holds at
    least two chains, and a per-device batch between 3 and 15 is rounded up to a multiple of
    four: 1 chain runs as 2, 3 as 4, 5-7 as 8.  Chain ``i``'s draws then do not depend on
    the chain count or the number of devices.
    """
    devices = mesh.devices.size if mesh is not None else 1
    per_device = max(2, -(-requested // devices))
    if 2 < per_device < 16:
        per_device = -(-per_device // 4) * 4
    return devices * per_device


def _pad_chains(tree, requested: int, total: int):
    """Extend a batch of ``requested`` chains to ``total`` by repeating rows (discarded later)."""
    if total == requested:
        return tree
    index = np.arange(total) % requested
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[index], tree)


def _place(mesh, tree):
    """Put the leading (chain) axis of every leaf across the mesh's devices.

    Under ``jax.distributed`` the mesh spans devices of other processes too; every process
    holds the same host values here and contributes the shards on its own devices.
    """
    if mesh is None:
        return tree
    from jax.sharding import NamedSharding, PartitionSpec

    sharding = NamedSharding(mesh, PartitionSpec(DEVICE_AXIS))

    def put(x):
        if getattr(x, "sharding", None) == sharding:
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        host = _host_value(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(put, tree)


def _host_value(x) -> np.ndarray:
    """The full value of ``x`` as numpy, gathering from other processes where needed."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _to_host(tree, gather: bool):
    """Copy a (draws, chains, ...) pytree to numpy: every chain, or this process's chains.

    Returns the numpy pytree and the ids of the chains it holds.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    first = leaves[0]
    if all(getattr(x, "is_fully_addressable", True) for x in leaves):
        return jax.device_get(tree), np.arange(first.shape[1])
    if gather:
        from jax.experimental import multihost_utils

        out = [np.asarray(multihost_utils.process_allgather(x, tiled=True)) for x in leaves]
        return jax.tree_util.tree_unflatten(treedef, out), np.arange(first.shape[1])

    def local(x):
        shards = {s.index[1].start or 0: s for s in x.addressable_shards}  # one replica per block
        return np.concatenate([np.asarray(shards[k].data) for k in sorted(shards)], axis=1), shards

    out, ids = [], None
    for x in leaves:
        data, shards = local(x)
        out.append(data)
        if ids is None:
            ids = np.concatenate([np.arange(x.shape[1])[shards[k].index[1]] for k in sorted(shards)])
    assert ids is not None  # the tree has leaves
    return jax.tree_util.tree_unflatten(treedef, out), ids
