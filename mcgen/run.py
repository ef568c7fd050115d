"""``run_chains``: many chains of one kernel, vmapped, scanned, chunked, reproducible.

The driver does four things, each a compiled function:

1. **Initial positions** for every chain: a single position broadcast to all chains (each
   float coordinate jittered by ``Uniform(-init_jitter, init_jitter)``), a batch with a
   leading chain axis, a callable ``init(key)``, or the ``Result`` of an earlier run.
2. **Kernel init**, ``vmap(kernel.init)``; the log-density at every start must be finite.
3. **Warmup**: ``num_warmup`` steps of ``kernel.warmup(num_warmup)`` (adaptation of the
   tunables in each chain's state), then ``finalize`` freezes them.
4. **Sampling**: ``num_samples * thin`` steps of ``kernel.step``, keeping every ``thin``-th.

Steps run in a ``lax.scan`` over a ``vmap`` across chains, cut into chunks; between chunks
the host advances a progress bar and copies the draws off the device (so device memory does
not grow with ``num_samples``).

**Reproducibility.**  Chain ``i`` draws all its randomness from
``fold_in(key(seed), i)``: phase keys are ``fold_in(chain_key, 0|1|2)`` (init, warmup,
sampling) and step ``t`` of a phase uses ``fold_in(phase_key, t)``.  So chain ``i``'s draws
do not depend on how many chains run beside it, on how many devices share them, or on how
the scan is cut into chunks.  Two caveats from XLA: its CPU code for a batch of size one, or
of 3, 5-7 or 13-15 lanes, rounds some operations differently from other batch sizes, so the
driver pads the per-device batch away from those sizes with chains it discards (see
``_padded_chain_count``); and it may round a batched matrix product differently at
different batch sizes, so on targets with dense matrix products chain ``i`` agrees across
chain counts to rounding error (which accept decisions can amplify) rather than bit for bit.

**Compilation.**  Compiled functions are cached on (log-density function, kernel, static
settings, argument shapes and dtypes).  A second call with the same ``logdensity_fn``
object, an equal kernel (kernel constructors return the same object for the same settings)
and the same shapes compiles nothing, whatever the seed or initial values.  Build the
log-density once (not a fresh ``lambda`` per call) to profit from it.
"""
from __future__ import annotations

import collections
import functools
import math
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mcgen.kernels import _random
from mcgen.result import Result
from mcgen.types import ArrayTree, Kernel, LogDensityFn

# ------------------------------------------------------------------ compiled-function cache

_CACHE: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()
_CACHE_SIZE = 128


class _Clock:
    """Accumulates compile seconds of one run."""

    def __init__(self) -> None:
        self.compile = 0.0


def _call(clock: _Clock, fn: Callable, static: tuple, *args):
    """Run ``fn(*static, *args)`` compiled; compile once per (fn, static, avals, shardings)."""
    flat, treedef = jax.tree_util.tree_flatten(args)
    key = (fn, static, treedef, tuple((jax.typeof(x), getattr(x, "sharding", None)) for x in flat))
    compiled = _CACHE.get(key)
    if compiled is None:
        start = time.perf_counter()
        compiled = jax.jit(lambda *a: fn(*static, *a)).lower(*args).compile()
        clock.compile += time.perf_counter() - start
        _CACHE[key] = compiled
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return compiled(*args)


def clear_cache() -> None:
    """Forget every compiled function (frees memory; the next run compiles afresh)."""
    _CACHE.clear()


# ------------------------------------------------------------------ compiled pieces


def _chain_keys(num_chains: int, seed):
    root = jax.random.key(seed)
    chain = jax.vmap(lambda i: _random.fold_in(root, i))(jnp.arange(num_chains, dtype=jnp.uint32))
    phase = jax.vmap(lambda k: jax.vmap(lambda j: _random.fold_in(k, j))(jnp.arange(3, dtype=jnp.uint32)))
    keys = phase(chain)  # (num_chains, 3): init, warmup, sampling
    return keys[:, 0], keys[:, 1], keys[:, 2]


def _broadcast_jitter(num_chains: int, position, keys, jitter):
    def one(key):
        leaves, treedef = jax.tree_util.tree_flatten(position)
        subkeys = jax.random.split(key, len(leaves))
        out = []
        for k, leaf in zip(subkeys, leaves):
            leaf = jnp.asarray(leaf)
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                leaf = leaf + jitter.astype(leaf.dtype) * jax.random.uniform(
                    k, leaf.shape, leaf.dtype, minval=-1.0, maxval=1.0)
            out.append(leaf)
        return jax.tree_util.tree_unflatten(treedef, out)

    del num_chains
    return jax.vmap(one)(keys)


def _over_chains(method: str, fn: Callable) -> Callable:
    """Map ``fn`` over the leading (chain) axis of every argument: vmap, or lax.map one by one."""
    if method == "sequential":
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    return jax.vmap(fn)


def _from_callable(init_fn, keys):
    return jax.vmap(init_fn)(keys)


def _init_states(method, kernel: Kernel, logdensity_fn, positions):
    return _over_chains(method, lambda x: kernel.init(x, logdensity_fn))(positions)


def _warmup_of(kernel: Kernel, num_warmup: int):
    if kernel.warmup is None:
        from mcgen.types import no_warmup

        return no_warmup(kernel)(num_warmup)
    return kernel.warmup(num_warmup)


def _warmup_init(method, kernel, num_warmup, states):
    return _over_chains(method, _warmup_of(kernel, num_warmup).init)(states)


def _warmup_finalize(method, kernel, num_warmup, wstates):
    return _over_chains(method, _warmup_of(kernel, num_warmup).finalize)(wstates)


def _warmup_chunk(method, kernel, logdensity_fn, num_warmup, length, wstates, keys, t0):
    w = _warmup_of(kernel, num_warmup)

    def body(ws, t):
        def one(state, key):
            return w.step(_random.fold_in(key, t), state, logdensity_fn)[0]

        return _over_chains(method, one)(ws, keys), None

    ts = t0 + jnp.arange(length, dtype=jnp.uint32)
    return jax.lax.scan(body, wstates, ts)[0]


def _flat_info(info, state) -> dict:
    """Info fields (nested ones joined by '.') plus the state's log-density."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(info)[0]:
        name = ".".join(getattr(p, "name", None) or str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[name or "info"] = leaf
    if hasattr(state, "logdensity"):
        out["logdensity"] = state.logdensity
    return out


def _sample_chunk(method, kernel, logdensity_fn, thin, transform, length, states, keys, t0):
    def one(state, key, t):
        if thin == 1:
            state, info = kernel.step(_random.fold_in(key, t), state, logdensity_fn)
        else:
            def inner(st, j):
                return kernel.step(_random.fold_in(key, t * thin + j), st, logdensity_fn)

            state, infos = jax.lax.scan(inner, state, jnp.arange(thin, dtype=jnp.uint32))
            info = jax.tree_util.tree_map(lambda x: x[-1], infos)
        draw = state.position if transform is None else transform(state.position)
        return state, (draw, _flat_info(info, state))

    def body(sts, t):
        return _over_chains(method, lambda st, k: one(st, k, t))(sts, keys)

    ts = t0 + jnp.arange(length, dtype=jnp.uint32)
    return jax.lax.scan(body, states, ts)


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
    bad = [leaf for leaf in jax.tree_util.tree_leaves(tree)
           if jnp.issubdtype(leaf.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(leaf)))]
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
        return "vectorized", Mesh(np.array(devices), ("chains",))
    if chain_method == "sharded":
        chain_method = "vectorized"  # one device: sharding is plain vmap
    elif len(devices) == 1 and devices[0] != jax.devices()[0]:
        return chain_method, Mesh(np.array(devices), ("chains",))
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

    sharding = NamedSharding(mesh, PartitionSpec("chains"))

    def put(x):
        if getattr(x, "sharding", None) == sharding:
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
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
    return jax.tree_util.tree_unflatten(treedef, out), ids


def _check_initial_logdensity(states) -> None:
    logdensity = getattr(states, "logdensity", None)
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


# ------------------------------------------------------------------ the driver


def _chunks(total: int, size: int):
    t = 0
    while t < total:
        n = min(size, total - t)
        yield t, n
        t += n


def _progress_bar(enabled: bool, total: int):
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sampling", unit="step", leave=False)


def run_chains(
    logdensity_fn: LogDensityFn,
    kernel: Kernel,
    *,
    init: Any = None,
    num_chains: int = 4,
    num_samples: int = 1000,
    num_warmup: int | None = None,
    thin: int = 1,
    seed: int = 0,
    progress: bool = True,
    chunk_size: int | None = None,
    init_jitter: float = 0.1,
    init_batched: bool | None = None,
    transform: Callable[[ArrayTree], ArrayTree] | None = None,
    warn: bool = True,
    chain_method: str | None = None,
    devices: Sequence[Any] | None = None,
    gather: bool = True,
) -> Result:
    """Run ``num_chains`` chains of ``kernel`` on ``logdensity_fn``: warmup, then sampling.

    Parameters
    ----------
    logdensity_fn
        ``logdensity_fn(position) -> scalar``, the log of an unnormalized target density; or
        a target object with attributes ``logdensity_fn`` and, optionally, ``transform``
        (applied to every kept draw) and ``init`` (the default initial position), such as
        the one ``mc.from_numpyro(model)`` returns.
    kernel
        A :class:`mcgen.Kernel` (``mc.rwmh()``, ``mc.adaptive_mh()``...).
    init
        Where chains start: one position pytree (broadcast to every chain, each float
        coordinate jittered by ``Uniform(-init_jitter, init_jitter)``); a batch of positions
        with a leading ``num_chains`` axis; a callable ``init(key) -> position``; or a
        :class:`Result`, whose chains are continued from their last state.
    num_chains, num_samples
        Chains run in parallel (vmapped) and draws kept per chain.
    num_warmup
        Warmup steps per chain (default ``num_samples``).  The kernel's warmup adapts its
        tunables; they are frozen for sampling.  With a ``Result`` as init the default is 0.
    thin
        Keep every ``thin``-th step (``num_samples * thin`` steps are run).
    seed
        Integer seed; chain ``i`` uses ``fold_in(key(seed), i)``.
    progress
        Show a progress bar (only when stderr is a terminal).
    chunk_size
        Steps per compiled chunk between host syncs.  Default: a twentieth of each phase with
        a progress bar, the whole phase without.  Never changes a draw.
    init_jitter
        Half-width of the uniform jitter added to a broadcast initial position (0 disables).
    init_batched
        Whether ``init`` holds one position per chain; inferred when ``None`` (an error asks
        for it when the shapes leave it ambiguous).
    transform
        Applied to each kept position before it is stored (e.g. back to constrained space).
    warn
        Warn (``mcgen.SamplingWarning``) on R-hat > 1.01, ESS < 100 per chain, divergences.
    chain_method
        ``"vectorized"`` (vmap on one device), ``"sharded"`` (the chain axis split across
        ``devices`` with ``jax.sharding``; the default when more than one device is visible)
        or ``"sequential"`` (``lax.map`` over chains: least memory, slowest).
    devices
        Devices to shard over (default ``jax.devices()``: every device of every process
        under ``jax.distributed``).
    gather
        Under ``jax.distributed``: ``True`` gives every process the draws of all chains;
        ``False`` only the chains on its own devices (``Result.chain_ids`` says which).

    Returns
    -------
    Result
        ``samples`` (leaves ``(num_chains, num_samples, *event)``), ``stats``, ``last_state``,
        timings, and ArviZ conversions.
    """
    if hasattr(logdensity_fn, "logdensity_fn"):  # a target object (e.g. from a NumPyro model)
        target = logdensity_fn
        logdensity_fn = target.logdensity_fn
        transform = transform if transform is not None else getattr(target, "transform", None)
        init = init if init is not None else getattr(target, "init", None)
    if init is None:
        raise ValueError("run_chains needs init: a position, a batch of positions, a callable init(key), "
                         "or a Result to continue")
    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernel must be an mcgen.Kernel (e.g. mc.rwmh()), got {type(kernel).__name__}")
    if not callable(logdensity_fn):
        raise TypeError("logdensity_fn must be a callable position -> scalar log-density")
    for name, value, low in (("num_chains", num_chains, 1), ("num_samples", num_samples, 1), ("thin", thin, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    resume = isinstance(init, Result)
    if num_warmup is None:
        num_warmup = 0 if resume else num_samples
    if not isinstance(num_warmup, (int, np.integer)) or num_warmup < 0:
        raise ValueError(f"num_warmup must be an integer >= 0, got {num_warmup!r}")
    if not (np.isfinite(init_jitter) and init_jitter >= 0):
        raise ValueError(f"init_jitter must be a finite number >= 0, got {init_jitter!r}")
    num_chains, num_samples, num_warmup, thin = int(num_chains), int(num_samples), int(num_warmup), int(thin)

    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    method, mesh = _placement(chain_method, devices)
    clock = _Clock()
    requested = num_chains
    num_chains = _padded_chain_count(requested, mesh)
    place = functools.partial(_place, mesh)
    init_keys, warm_keys, sample_keys = place(
        _call(clock, _chain_keys, (num_chains,), jnp.asarray(seed, jnp.uint32)))
    if resume:
        if init.num_chains != requested:
            raise ValueError(f"init is a Result with {init.num_chains} chains but num_chains={requested}")
        states = place(_pad_chains(init.last_state, requested, num_chains))
    else:
        positions = _initial_positions(clock, logdensity_fn, init, requested, init_keys, init_jitter, init_batched)
        positions = place(_pad_chains(positions, requested, num_chains))
        states = _call(clock, _init_states, (method, kernel, logdensity_fn), positions)
        _check_initial_logdensity(states)

    bar = _progress_bar(progress, num_warmup + num_samples * thin)
    auto = max(1, math.ceil((num_warmup + num_samples) / 20)) if bar is not None else None
    size = chunk_size or auto

    warmup_time = 0.0
    if num_warmup > 0:
        wstates = _call(clock, _warmup_init, (method, kernel, num_warmup), states)
        for t0, n in _chunks(num_warmup, size or num_warmup):
            before = clock.compile
            start = time.perf_counter()
            wstates = _call(clock, _warmup_chunk, (method, kernel, logdensity_fn, num_warmup, n),
                            wstates, warm_keys, jnp.asarray(t0, jnp.uint32))
            jax.block_until_ready(wstates)
            warmup_time += time.perf_counter() - start - (clock.compile - before)
            if bar is not None:
                bar.update(n)
        states = _call(clock, _warmup_finalize, (method, kernel, num_warmup), wstates)

    draws, infos, sampling_time = [], [], 0.0
    for t0, n in _chunks(num_samples, size or num_samples):
        before = clock.compile
        start = time.perf_counter()
        states, (chunk_draws, chunk_info) = _call(
            clock, _sample_chunk, (method, kernel, logdensity_fn, thin, transform, n),
            states, sample_keys, jnp.asarray(t0, jnp.uint32))
        # off the device chunk by chunk: device memory does not grow with num_samples
        (chunk_draws, chunk_info), chain_ids = _to_host((chunk_draws, chunk_info), gather)
        sampling_time += time.perf_counter() - start - (clock.compile - before)
        draws.append(chunk_draws)
        infos.append(chunk_info)
        if bar is not None:
            bar.update(n * thin)
    if bar is not None:
        bar.close()

    # Chunks are (draws, chains, ...) on the host; join them, put chains first and drop the
    # padding chains (those with ids >= requested).
    keep = chain_ids < requested
    samples = jax.tree_util.tree_map(
        lambda *xs: np.swapaxes(np.concatenate(xs, axis=0), 0, 1)[keep], *draws)
    stats = {k: np.swapaxes(np.concatenate([c[k] for c in infos], axis=0), 0, 1)[keep] for k in infos[0]}
    if num_chains != requested:
        states = jax.tree_util.tree_map(lambda x: x[:requested], states)
    chain_ids, num_chains = chain_ids[keep], requested

    messages: tuple[str, ...] = ()
    if warn:
        from mcgen.diagnostics import SamplingWarning, check_run

        messages = tuple(check_run(samples, stats, len(chain_ids)))
        for message in messages:
            warnings.warn(message, SamplingWarning, stacklevel=2)

    return Result(samples=samples, stats=stats, last_state=states, kernel=kernel, num_chains=num_chains,
                  num_samples=num_samples, num_warmup=num_warmup, thin=thin, seed=int(seed),
                  compile_time=clock.compile, warmup_time=warmup_time, sampling_time=sampling_time,
                  messages=messages, chain_ids=chain_ids)
