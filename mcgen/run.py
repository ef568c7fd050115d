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
the host advances the progress display, copies the draws off the device (so device memory
does not grow with ``num_samples``), hands them to the on-disk store when there is one, and
writes a checkpoint when one is due.  Since every random number is a pure function of (seed,
chain, phase, step), a checkpoint is just the states and the step reached, and a rerun of
the same call resumes bit for bit.

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
So does a ``mass="low_rank"`` metric, NUTS's default: its factor is cut to the columns that
the chains of the batch need (:func:`mcgen.kernels._metrics.by_kept_columns`), and XLA rounds
its products differently at different batch sizes, so even on small targets a chain's draws
agree across chain counts to rounding only (with ``mass="diag"`` they agree bit for bit
there).  And NUTS with any metric rounds differently once the batch is large enough for its
leaf to take another code path: from 32 chains on a target of
at most 16 coordinates (the leaf's per-chain decisions move behind a ``cond``, which changes
how XLA fuses, and so rounds, the arithmetic around them), and where the U-turn tests' inner
products change form with the batch (:func:`mcgen.kernels._trajectory._rowdots` splits its
sums by batch size, XLA:CPU hands large reductions and products to libraries, and a leaf
computes the products of every checkpoint slot on a batch of at most 256 coordinates, chains
times d, but only of the slots it tests on a larger one).  Measured
(chain 0's draws after 100 + 100 steps): on an 8-coordinate elementwise target 4, 16 and 2
chains agree bit for bit and 32, 64 and 128 chains differ from them; on the 100-d Gaussian
of ``benchmarks/bench_nuts.py`` 4, 16 and 128 chains all differ, by as much as the chains'
spread once an accept decision flips.  The determinism tests run up to 16 chains of
4-coordinate targets with ``mass="diag"``, where all of this holds bit for bit.
A third, measured on HMC: when the number of coordinates is not a multiple of the SIMD width,
the leftover elements of ``a * b + c`` may be fused into one multiply-add at some batch sizes
and not at others, so on such small targets (e.g. 3 coordinates) HMC's draws can differ
between 2 or 12 chains and 16 (``tests/determinism_cases.py`` records where the determinism
tests hold bit for bit).  All of this is for kernels whose warmup pools nothing across
chains: an ensemble warmup (ChEES, MEADS, MAMS, or a gradient kernel's
``warmup_pool="metric"`` or ``"all"``) adapts from every chain, so with another chain count
every adapted value, and every draw, is a different one (:mod:`mcgen.adaptation.ensemble`).

The parts live in :mod:`mcgen._driver` (compile cache, compiled steps, initial positions,
placement across devices and hosts, checkpoints, the draws store, the progress display); this
module holds the loop that drives them.

**Compilation.**  Compiled functions are cached on (log-density function, kernel, static
settings, argument shapes and dtypes).  A second call with the same ``logdensity_fn``
object, an equal kernel (kernel constructors return the same object for the same settings)
and the same shapes compiles nothing, whatever the seed or initial values.  Build the
log-density once (not a fresh ``lambda`` per call) to profit from it.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import pathlib
import time
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mcgen._driver import progress as _progress
from mcgen._driver.checkpoint import Checkpointer, CheckpointError, fingerprint
from mcgen._driver.compile import _call, _Clock, _compile_ahead, clear_cache
from mcgen._driver.placement import _host_value, _pad_chains, _padded_chain_count, _place, _placement, _to_host
from mcgen._driver.positions import _check_initial_logdensity, _initial_positions
from mcgen._driver.steps import (
    _WARMUP_DONE,
    _chain_keys,
    _fusable,
    _init_states,
    _sample_chunk,
    _start_and_warmup,
    _steps,
    _warmup_chunk,
    _warmup_finalize,
    _warmup_init,
    _warmup_trace,
    _whole_run,
)
from mcgen._driver.store import DrawStore
from mcgen.result import Result
from mcgen.types import ArrayTree, Kernel, LogDensityFn

__all__ = ["run_chains", "clear_cache", "CheckpointError"]


# Draws per sampling chunk when they go to disk: about this many bytes of draws and stats a
# chunk (one zarr chunk per chain holds a chain's share), so host memory stays flat.
_STORE_CHUNK_BYTES = 16 * 2**20
# Above this many bytes on disk, the R-hat / ESS warnings are skipped (they would read it all).
_CHECK_BYTES = 256 * 2**20
# Whether warmup and sampling run in one loop where the warmup allows it (one program for a
# run in one chunk per phase, one program for chunks of one length otherwise); benchmarks and
# tests turn it off to compare with the two programs (a warmup and a sampling program).
_WHOLE_RUN = True
# Tokens that tell apart the runs whose one program reports the end of its warmup.
_TOKENS = itertools.count()


def _chunks(total: int, size: int, start: int = 0):
    t = start
    while t < total:
        n = min(size, total - t)
        yield t, n
        t += n


def _even(total: int, size: int) -> int:
    """A chunk size near ``size`` that divides ``total`` when one exists in ``[size/2, size]``.

    Every distinct chunk length is one more compilation; equal chunks need only one.
    """
    size = min(size, total)
    for candidate in range(size, (size + 1) // 2 - 1, -1):
        if total % candidate == 0:
            return candidate
    return size


def _even_both(first: int, second: int, size: int) -> int | None:
    """One chunk size for two phases that divides both, or None: the longer of the two
    :func:`_even` sizes, or less down to half of it.  With the one loop a warmup chunk and a
    sampling chunk of the same length are one program."""
    own = max(_even(first, size), _even(second, size))
    for candidate in range(min(own, first, second), (own + 1) // 2 - 1, -1):
        if first % candidate == 0 and second % candidate == 0:
            return candidate
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcgen")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "unknown"


def _step_spec(method, kernel, logdensity_fn, thin, transform, states, keys):
    """Shapes and dtypes of one sampling step's draws and stats, chain axis first."""
    out = jax.eval_shape(
        functools.partial(_sample_chunk, method, kernel, logdensity_fn, thin, transform, 1),
        states,
        keys,
        jnp.asarray(0, jnp.uint32),
    )[1]
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), out)


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
    progress: bool | str = "auto",
    chunk_size: int | None = None,
    init_jitter: float = 0.1,
    init_batched: bool | None = None,
    transform: Callable[[ArrayTree], ArrayTree] | None = None,
    warn: bool = True,
    chain_method: str | None = None,
    devices: Sequence[Any] | None = None,
    gather: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = 60.0,
    store: str | os.PathLike | None = None,
    superchains: int | None = None,
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
        :class:`Result`, whose chains are continued from their last state (with its adapted
        tunables: a warm start, optionally with a short ``num_warmup``).
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
        ``"auto"`` (default): a progress display in a terminal or a Jupyter kernel, none
        elsewhere (CI, pipes); ``True``: always; ``False``: never.  It shows the phase,
        ``compiling…`` apart from stepping, a rate and time left that exclude compilation,
        and during sampling the divergences so far, mean acceptance, step size and (for
        parallel tempering) round trips.
    chunk_size
        Steps per compiled chunk between host syncs (checkpoints and the progress display
        happen between chunks).  Default: about a twentieth of the run with a progress
        display, a checkpoint or a store (one length for warmup and sampling where one divides
        both, so that one compiled chunk serves both; capped so a chunk of draws stays near
        16 MB on disk), the whole phase otherwise.  Never changes a draw.
    init_jitter
        Half-width of the uniform jitter added to a broadcast initial position (0 disables).
    init_batched
        Whether ``init`` holds one position per chain; inferred when ``None`` (an error asks
        for it when the shapes leave it ambiguous).
    transform
        Applied to each kept position before it is stored (e.g. back to constrained space).
    warn
        Warn (``mcgen.SamplingWarning``) on R-hat > 1.01, ESS < 100 per chain, divergences,
        E-BFMI < 0.3 and NUTS trajectories cut short at ``max_tree_depth``
        (:func:`mcgen.diagnostics.check_run`).
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
    checkpoint
        A directory for checkpoints.  Between chunks, at most every ``checkpoint_every``
        seconds and once at the end, the chain states (warmup states during warmup), the
        step reached and the draws so far are written atomically.  Calling ``run_chains``
        again with the same arguments and the same ``checkpoint`` continues from the last
        checkpoint and returns the same ``Result`` as a run never interrupted (a finished
        run is read back without stepping).  A checkpoint from a different call is refused
        with a :class:`CheckpointError` naming the difference; a corrupt one is named too.
        The draws go to ``checkpoint/draws.zarr`` unless ``store`` is given.
    checkpoint_every
        Seconds between checkpoints (0: at every chunk boundary).
    store
        A directory for a zarr store that receives every kept draw and stat as it comes off
        the device, so host memory stays flat whatever ``num_samples``; the ``Result``'s
        ``samples`` and ``stats`` are then zarr arrays read lazily (``np.asarray`` loads
        one).  An earlier mcgen store at the path is replaced.
    superchains
        With many short chains (64 or more, fewer draws than chains) the after-run check uses
        the nested R-hat (:func:`mcgen.diagnostics.nested_rhat`) over this many superchains of
        consecutive chains (default: about the square root of ``num_chains``).

    Returns
    -------
    Result
        ``samples`` (leaves ``(num_chains, num_samples, *event)``), ``stats``, ``last_state``,
        timings, and ArviZ conversions.

    Raises
    ------
    CheckpointError
        When a checkpoint cannot be written (the last good one is kept) or the one found
        belongs to another run or is corrupt.

    Example
    -------
    >>> import jax.numpy as jnp, mcgen as mc
    >>> def logdensity(x):
    ...     return -0.5 * jnp.sum(x**2)
    >>> res = mc.run_chains(logdensity, mc.rwmh(), init=jnp.zeros(2), num_samples=200,
    ...                     progress=False, warn=False)
    >>> res.samples.shape
    (4, 200, 2)

    With ``checkpoint="run1"`` the same call survives a kill: run it again and it resumes.
    """
    if hasattr(logdensity_fn, "logdensity_fn"):  # a target object (e.g. from a NumPyro model)
        target = logdensity_fn
        logdensity_fn = target.logdensity_fn
        transform = transform if transform is not None else getattr(target, "transform", None)
        init = init if init is not None else getattr(target, "init", None)
    if init is None:
        raise ValueError(
            "run_chains needs init: a position, a batch of positions, a callable init(key), or a Result to continue"
        )
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
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be an integer >= 1 or None, got {chunk_size!r}")
    num_chains, num_samples, num_warmup, thin = int(num_chains), int(num_samples), int(num_warmup), int(thin)
    if superchains is not None and (
        not isinstance(superchains, (int, np.integer)) or superchains < 2 or num_chains % superchains
    ):
        raise ValueError(
            f"superchains must be an integer >= 2 that divides num_chains={num_chains}, got {superchains!r}"
        )

    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    to_disk = checkpoint is not None or store is not None
    if to_disk and jax.process_count() > 1:
        raise NotImplementedError(
            "checkpoint= and store= work in a single process for now; under "
            "jax.distributed write the draws yourself from process 0"
        )
    if checkpoint is not None and store is None:
        store = pathlib.Path(checkpoint) / "draws.zarr"
    method, mesh = _placement(chain_method, devices)
    bar = _progress.Progress(_progress.wanted(progress))
    clock = _Clock(on_compile=lambda: bar.compiling(True))
    requested = num_chains
    num_chains = _padded_chain_count(requested, mesh)
    place = functools.partial(_place, mesh)
    init_keys, warm_keys, sample_keys = place(_call(clock, _chain_keys, (num_chains,), jnp.asarray(seed, jnp.uint32)))
    if resume:
        if init.num_chains != requested:
            raise ValueError(f"init is a Result with {init.num_chains} chains but num_chains={requested}")
        states = place(_pad_chains(init.last_state, requested, num_chains))
    else:
        positions = _initial_positions(clock, logdensity_fn, init, requested, init_keys, init_jitter, init_batched)
        positions = place(_pad_chains(positions, requested, num_chains))

    auto = max(1, math.ceil((num_warmup + num_samples) / 20)) if bar.enabled or to_disk else None
    size = chunk_size or auto

    def fit(total: int, target: int | None) -> int:  # a chunk size for a phase of ``total`` steps
        if chunk_size:
            return min(chunk_size, total)
        if size is not None and target == size and thin == 1 and num_warmup > 0 and num_samples > 0:
            # one length for both phases where one fits: one chunk program serves both
            return _even_both(num_warmup, num_samples, size) or _even(total, size)
        return _even(total, target or total)

    # A fresh run whose warmup is one chunk (no progress display, checkpoint or store) starts
    # the chains inside the warmup's program: the model's gradient at the initial points then
    # compiles into a program that is compiled anyway, not into one of its own (on a
    # structured model that is seconds of compile time, the largest part of a first call).
    fused_start = not resume and 0 < num_warmup == fit(num_warmup, size) and checkpoint is None and store is None
    # Where the warmup comes apart around the kernel's own step (mcgen.types.WarmupParts),
    # warmup and sampling steps run in one loop that calls the kernel's step (for NUTS: the
    # trajectory and the model's gradient) in one place: when each phase is one chunk, the
    # whole run is one program; in chunks, one program serves warmup and sampling chunks of
    # equal length.  (Not for a one-step warmup: there XLA folds the schedule's constants
    # into the step's arithmetic in the warmup's own program and rounds it differently,
    # measured with MALA.)
    one_loop = _WHOLE_RUN and num_warmup >= 2 and method == "vectorized" and _fusable(kernel, num_warmup)
    whole_run = one_loop and fused_start and fit(num_samples, size) == num_samples
    fused_start = fused_start and (whole_run or not one_loop)
    if not resume and not fused_start:
        states = _call(clock, _init_states, (method, kernel, logdensity_fn), positions)
        _check_initial_logdensity(getattr(states, "logdensity", None))

    sample_size = fit(num_samples, size)
    spec = None
    if store is not None:
        spec = _step_spec(method, kernel, logdensity_fn, thin, transform, states, sample_keys)
        per_draw = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(spec))
        if chunk_size is None:
            sample_size = fit(num_samples, max(1, min(sample_size, _STORE_CHUNK_BYTES // max(per_draw, 1))))

    # a checkpoint from an earlier call of the same run: continue from it
    ckpt, saved, wstates = None, None, None
    if checkpoint is not None:
        run_id = fingerprint(
            kernel=kernel,
            logdensity_fn=logdensity_fn,
            transform=transform,
            seed=seed,
            num_chains=requested,
            padded_chains=num_chains,
            num_samples=num_samples,
            num_warmup=num_warmup,
            thin=thin,
            init_states=states,
            version=_version(),
        )
        ckpt = Checkpointer(checkpoint, checkpoint_every, run_id)
        templates = {}
        if num_warmup > 0:
            wstates = templates["warmup"] = _call(clock, _warmup_init, (method, kernel, num_warmup, requested), states)
        templates["sampling"] = (states, _warmup_trace(wstates))  # the warmup's record rides along
        saved = ckpt.load(templates)
    earlier = saved.times if saved is not None else {}
    compile_before = float(earlier.get("compile", 0.0))

    def times() -> dict:
        return {"compile": compile_before + clock.compile, "warmup": warmup_time, "sampling": sampling_time}

    warmup_time = float(earlier.get("warmup", 0.0))
    sampling_time = float(earlier.get("sampling", 0.0))
    warm_start, sample_start, crcs, warmup_trace = 0, 0, {}, None
    if saved is not None and saved.phase == "warmup":
        wstates, warm_start = place(jax.device_put(saved.states)), saved.step
    elif saved is not None:
        (states, warmup_trace), sample_start = place(jax.device_put(saved.states)), saved.step
        warmup_trace = None if warmup_trace is None else jax.tree_util.tree_map(np.asarray, warmup_trace)
        sample_size, crcs = int(saved.draws.get("chunk", sample_size)), saved.draws.get("crc32", {})

    def sampling_ahead(warmup_states) -> None:
        # On one device, compile the first sampling chunk on a background thread while the
        # warmup compiles and runs (XLA compiles without Python's lock): the states it starts
        # from have the shapes that finalizing the warmup's states gives.
        if mesh is not None or num_samples == 0 or sample_start > 0:
            return
        finalize = functools.partial(_warmup_finalize, method, kernel, num_warmup, requested)
        where = sample_keys.sharding
        ahead = jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type, sharding=where),
            jax.eval_shape(finalize, warmup_states),
        )
        static = (method, kernel, logdensity_fn, thin, transform, min(sample_size, num_samples))
        _compile_ahead(_sample_chunk, static, ahead, sample_keys, jnp.asarray(0, jnp.uint32))

    whole_rows, whole_sampling = None, 0.0
    if whole_run:
        bar.start("warmup", num_warmup, 0)
        token = next(_TOKENS) % 2**31
        start = time.perf_counter()
        before = clock.compile
        wstates, states, rows, initial_logdensity = _call(
            clock,
            _whole_run,
            (method, kernel, logdensity_fn, num_warmup, requested, thin, transform, num_samples),
            positions,
            warm_keys,
            sample_keys,
            jnp.asarray(token, jnp.int32),
        )
        whole_rows = _to_host(rows, gather)
        end = time.perf_counter()
        _check_initial_logdensity(initial_logdensity)
        ran_from = start + (clock.compile - before)
        # the program reported when its warmup ended; were that report lost, split by steps
        warm_end = _WARMUP_DONE.pop(token, None)
        if warm_end is None or not ran_from <= warm_end <= end:
            warm_end = ran_from + (end - ran_from) * num_warmup / (num_warmup + num_samples * thin)
        warmup_time += warm_end - ran_from
        whole_sampling = end - warm_end
        bar.compiling(False)
        bar.advance(num_warmup, warm_end - ran_from)
        warmup_trace = _warmup_trace(wstates)
    elif fused_start:
        bar.start("warmup", num_warmup, 0)
        start = time.perf_counter()
        before = clock.compile
        wstates, initial_logdensity = _call(
            clock,
            _start_and_warmup,
            (method, kernel, logdensity_fn, num_warmup, requested),
            positions,
            warm_keys,
            lowered=lambda out_info: sampling_ahead(out_info[0]),
        )
        jax.block_until_ready(wstates)
        _check_initial_logdensity(initial_logdensity)
        seconds = time.perf_counter() - start - (clock.compile - before)
        warmup_time += seconds
        bar.compiling(False)
        bar.advance(num_warmup, seconds)
        warmup_trace = _warmup_trace(wstates)
        states = place(_call(clock, _warmup_finalize, (method, kernel, num_warmup, requested), wstates))
    elif num_warmup > 0 and sample_start == 0 and (saved is None or saved.phase == "warmup"):
        if wstates is None:
            wstates = place(_call(clock, _warmup_init, (method, kernel, num_warmup, requested), states))
        loop = (method, kernel, logdensity_fn, num_warmup, requested, thin, transform)
        rows = min(sample_size, num_samples)
        if one_loop:
            # the carry's slot for the sampling states (finalized in the loop at the warmup's end)
            states = place(_call(clock, _warmup_finalize, (method, kernel, num_warmup, requested), wstates))
            if rows * thin != fit(num_warmup, size) and num_samples > 0:
                # the sampling chunks are another program: compile it ahead
                _compile_ahead(
                    _steps, (*loop, rows, rows * thin), wstates, states, warm_keys, sample_keys, jnp.uint32(0)
                )
        else:
            sampling_ahead(wstates)
        bar.start("warmup", num_warmup, warm_start)
        for t0, n in _chunks(num_warmup, fit(num_warmup, size), warm_start):
            before = clock.compile
            start = time.perf_counter()
            t = jnp.asarray(t0, jnp.uint32)
            if one_loop:
                wstates, states, _ = _call(clock, _steps, (*loop, rows, n), wstates, states, warm_keys, sample_keys, t)
                states = place(states)  # the mesh's chain sharding on every leaf: one program per chunk length
            else:
                wstates = _call(
                    clock,
                    _warmup_chunk,
                    (method, kernel, logdensity_fn, num_warmup, requested, n),
                    wstates,
                    warm_keys,
                    t,
                )
            wstates = place(wstates)
            jax.block_until_ready(wstates)
            seconds = time.perf_counter() - start - (clock.compile - before)
            warmup_time += seconds
            bar.compiling(False)
            bar.advance(n, seconds)
            if ckpt is not None and ckpt.due() and t0 + n < num_warmup:
                ckpt.save("warmup", t0 + n, wstates, times(), host=_host_value)
        warmup_trace = _warmup_trace(wstates)
        if not one_loop:
            states = place(_call(clock, _warmup_finalize, (method, kernel, num_warmup, requested), wstates))

    draw_store = None
    if store is not None:
        assert spec is not None  # computed above whenever there is a store
        draw_store = DrawStore(
            store,
            spec[0],
            spec[1],
            requested,
            num_samples,
            sample_size,
            fresh=sample_start == 0,
            durable=ckpt is not None,
        )
        if sample_start > 0:
            draw_store.verify(sample_start, crcs)
    draws, infos, chain_ids = [], [], np.arange(num_chains)
    bar.start("sampling", num_samples * thin, sample_start * thin)
    try:
        for t0, n in _chunks(num_samples, sample_size, sample_start):
            if whole_rows is not None:  # run above, in the warmup's program
                ((chunk_draws, chunk_info), chain_ids), seconds = whole_rows, whole_sampling
            elif one_loop and num_warmup > 0:
                if wstates is None:  # resumed in sampling: the warmup states only fill the carry
                    wstates = place(_call(clock, _warmup_init, (method, kernel, num_warmup, requested), states))
                before = clock.compile
                start = time.perf_counter()
                wstates, states, (chunk_draws, chunk_info) = _call(
                    clock,
                    _steps,
                    (method, kernel, logdensity_fn, num_warmup, requested, thin, transform, n, n * thin),
                    wstates,
                    states,
                    warm_keys,
                    sample_keys,
                    jnp.asarray(num_warmup + t0 * thin, jnp.uint32),
                )
                wstates, states = place((wstates, states))
                (chunk_draws, chunk_info), chain_ids = _to_host((chunk_draws, chunk_info), gather)
                seconds = time.perf_counter() - start - (clock.compile - before)
            else:
                before = clock.compile
                start = time.perf_counter()
                states, (chunk_draws, chunk_info) = _call(
                    clock,
                    _sample_chunk,
                    (method, kernel, logdensity_fn, thin, transform, n),
                    states,
                    sample_keys,
                    jnp.asarray(t0, jnp.uint32),
                )
                states = place(states)
                # off the device chunk by chunk: device memory does not grow with num_samples
                (chunk_draws, chunk_info), chain_ids = _to_host((chunk_draws, chunk_info), gather)
                seconds = time.perf_counter() - start - (clock.compile - before)
            sampling_time += seconds
            keep = chain_ids < requested
            if draw_store is not None:
                draw_store.write(t0, chunk_draws, chunk_info, keep)  # on a background thread
            else:
                draws.append(chunk_draws)
                infos.append(chunk_info)
            bar.compiling(False)
            bar.advance(n * thin, seconds, chunk_info, keep)
            if ckpt is not None and (ckpt.due() or t0 + n == num_samples):
                assert draw_store is not None  # a checkpoint always stores its draws (draws.zarr)
                crcs = draw_store.flush(durable=True)  # the draws are on disk before the checkpoint
                ckpt.save(
                    "sampling",
                    t0 + n,
                    (states, warmup_trace),
                    times(),
                    {"chunk": sample_size, "crc32": crcs},
                    host=_host_value,
                )
    finally:
        if draw_store is not None:
            draw_store.close()
    bar.close()

    if draw_store is not None:
        samples, stats = draw_store.lazy()
    else:
        # Chunks are (draws, chains, ...) on the host; join them, put chains first and drop the
        # padding chains (those with ids >= requested).
        keep = chain_ids < requested
        samples = jax.tree_util.tree_map(lambda *xs: np.swapaxes(np.concatenate(xs, axis=0), 0, 1)[keep], *draws)
        stats = {k: np.swapaxes(np.concatenate([c[k] for c in infos], axis=0), 0, 1)[keep] for k in infos[0]}
        chain_ids = chain_ids[keep]
    if num_chains != requested:
        states = jax.tree_util.tree_map(lambda x: x[:requested], states)
    if warmup_trace is not None:
        warmup_trace = {k: v[:requested] for k, v in warmup_trace.items()}
    if draw_store is not None:
        chain_ids = np.arange(requested)
    num_chains = requested

    messages: tuple[str, ...] = ()
    if warn and (draw_store is None or draw_store.nbytes() <= _CHECK_BYTES):
        from mcgen.diagnostics import SamplingWarning, check_run

        messages = tuple(check_run(samples, stats, len(chain_ids), superchains))
        for message in messages:
            warnings.warn(message, SamplingWarning, stacklevel=2)

    return Result(
        samples=samples,
        stats=stats,
        last_state=states,
        kernel=kernel,
        num_chains=num_chains,
        num_samples=num_samples,
        num_warmup=num_warmup,
        thin=thin,
        seed=int(seed),
        compile_time=compile_before + clock.compile,
        warmup_time=warmup_time,
        sampling_time=sampling_time,
        messages=messages,
        chain_ids=chain_ids,
        warmup_stats=warmup_trace,
    )
