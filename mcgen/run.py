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

The parts live in :mod:`mcgen._driver` (compile cache, compiled steps, initial positions,
placement across devices and hosts); this module holds the loop that drives them.

**Compilation.**  Compiled functions are cached on (log-density function, kernel, static
settings, argument shapes and dtypes).  A second call with the same ``logdensity_fn``
object, an equal kernel (kernel constructors return the same object for the same settings)
and the same shapes compiles nothing, whatever the seed or initial values.  Build the
log-density once (not a fresh ``lambda`` per call) to profit from it.
"""

from __future__ import annotations

import functools
import math
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mcgen._driver.compile import _call, _Clock, clear_cache
from mcgen._driver.placement import _pad_chains, _padded_chain_count, _place, _placement, _to_host
from mcgen._driver.positions import _check_initial_logdensity, _initial_positions
from mcgen._driver.steps import (
    _chain_keys,
    _init_states,
    _sample_chunk,
    _warmup_chunk,
    _warmup_finalize,
    _warmup_init,
)
from mcgen.result import Result
from mcgen.types import ArrayTree, Kernel, LogDensityFn

__all__ = ["run_chains", "clear_cache"]


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
