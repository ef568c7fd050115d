"""Checkpoints: where a run stands, written atomically between chunks, resumed bit for bit.

Every random number of a run is a pure function of (seed, chain, phase, step), and chunk
boundaries never change a draw.  So a checkpoint only needs the chain states (the warmup
states during warmup), the phase and step reached, and the draws so far; rerunning the same
call continues from it and returns the same ``Result`` as a run never interrupted.

Layout of a checkpoint directory::

    path/draws.zarr/            the draws so far (see :mod:`mcgen._driver.store`), unless
                                ``store=`` puts them elsewhere
    path/checkpoint-000042/     the last good checkpoint:
        manifest.json           run fingerprint, phase, step, timings, one entry per state leaf
                                (file, shape, dtype, SHA-256), CRC-32 of every committed draw chunk
        leaf-0000.npy ...       state leaves, ``.npy`` (``allow_pickle=False``)

A new checkpoint is written under a temporary name, every file is fsynced (the draws written
since the last checkpoint first), and one ``rename`` publishes it; only then is the previous one
deleted.  A kill at any moment leaves either the old or the new checkpoint whole.  On resume
the manifest's fingerprint is compared with the current call (kernel, log-density, shapes,
seed, counts, initial positions, mcgen version) and every file with its checksum; a mismatch
is an error that names it, never a silent restart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import shutil
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from mcgen._driver.store import check_path

FORMAT = 2
_PREFIX = "checkpoint-"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, or the one found cannot be resumed from."""


def _write_file(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (every checkpoint byte goes through here)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ what identifies a run


def describe(obj: Any, depth: int = 0) -> Any:
    """A JSON-able description of a kernel or function: names and the settings it closes over."""
    if depth > 6:
        return "…"
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj if not isinstance(obj, float) else repr(obj)
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return repr(obj.item())
    if isinstance(obj, (tuple, list)):
        if hasattr(obj, "_fields"):  # a NamedTuple (a Kernel, a Warmup, settings)
            fields = obj._fields  # pyright: ignore[reportAttributeAccessIssue]
            return {type(obj).__name__: {f: describe(getattr(obj, f), depth + 1) for f in fields}}
        return [describe(x, depth + 1) for x in obj]
    if isinstance(obj, dict):
        return {str(k): describe(v, depth + 1) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (np.ndarray, jax.Array)) and not isinstance(obj, Tracer):
        try:
            value = np.asarray(obj)
        except Exception:  # noqa: BLE001 - a key array or a non-addressable array
            return f"array{tuple(np.shape(obj))}"
        return f"array{value.shape}{value.dtype}:{hashlib.sha256(value.tobytes()).hexdigest()[:16]}"
    if callable(obj):
        fn = getattr(obj, "func", obj)  # functools.partial
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
        cells = getattr(fn, "__closure__", None) or ()
        free = getattr(getattr(fn, "__code__", None), "co_freevars", ())
        closed = {}
        for var, cell in zip(free, cells):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, type) or getattr(value, "__module__", "").startswith(("jax", "numpy")):
                continue  # library functions and classes say nothing about the settings
            closed[var] = describe(value, depth + 1)
        if isinstance(obj, __import__("functools").partial):
            closed["partial"] = describe(list(obj.args) + [dict(obj.keywords)], depth + 1)
        return {name: closed} if closed else name
    return type(obj).__qualname__


def _digest(tree) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        value = np.asarray(leaf)
        h.update(f"{value.shape}{value.dtype}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def fingerprint(
    *,
    kernel,
    logdensity_fn,
    transform,
    seed,
    num_chains,
    padded_chains,
    num_samples,
    num_warmup,
    thin,
    init_states,
    version: str,
) -> dict:
    """What must be equal for a checkpoint to be resumed by this call."""
    return {
        "mcgen": version,
        "kernel": describe(kernel),
        "logdensity_fn": describe(logdensity_fn),
        "transform": describe(transform),
        "seed": int(seed),
        "num_chains": num_chains,
        "padded_chains": padded_chains,
        "num_samples": num_samples,
        "num_warmup": num_warmup,
        "thin": thin,
        "state": _spec(init_states),
        "initial_states": _digest(init_states),
    }


def _spec(tree) -> dict:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return {"structure": str(treedef), "leaves": [f"{tuple(x.shape)} {x.dtype}" for x in leaves]}


def _difference(saved: dict, current: dict) -> list[str]:
    out = []
    for key in current:
        if saved.get(key) != current[key]:
            a, b = json.dumps(saved.get(key))[:200], json.dumps(current[key])[:200]
            out.append(f"{key}: checkpoint has {a}, this call has {b}")
    return out


# ------------------------------------------------------------------ writing and reading


class Saved:
    """A checkpoint read back: phase, step, states (host numpy pytree), timings, draw checksums."""

    def __init__(self, phase: str, step: int, states, times: dict, draws: dict, name: str):
        self.phase, self.step, self.states, self.times, self.draws, self.name = phase, step, states, times, draws, name


class Checkpointer:
    """Writes and reads the checkpoints of one run in directory ``path``.

    Parameters
    ----------
    path
        The checkpoint directory (created if missing).
    every
        Seconds between checkpoints; one is written at the first chunk boundary after that.
    run
        The run's :func:`fingerprint`.
    """

    def __init__(self, path, every: float, run: dict):
        self.path = pathlib.Path(path)
        if not (np.isfinite(every) and every >= 0):
            raise ValueError(f"checkpoint_every must be a number of seconds >= 0, got {every!r}")
        check_path(self.path, "checkpoint")
        self.every = float(every)
        self.run = run
        self.last = time.monotonic()
        self.seq = max(self._sequence(), default=0)

    def _sequence(self) -> list[int]:
        out = []
        for p in self.path.glob(_PREFIX + "*"):
            try:
                out.append(int(p.name[len(_PREFIX) :]))
            except ValueError:
                pass
        return out

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def load(self, templates: dict[str, Any]) -> Saved | None:
        """The last checkpoint, verified; ``None`` when there is none.

        ``templates`` maps a phase name to a pytree of arrays with the expected structure,
        shapes and dtypes of that phase's states.
        """
        found = sorted(self._sequence())
        if not found:
            return None
        where = self.path / f"{_PREFIX}{found[-1]:06d}"
        try:
            manifest = json.loads((where / "manifest.json").read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(
                f"checkpoint {str(where)!r} is corrupt or truncated: manifest.json cannot be "
                f"read ({err}); delete the directory to start the run afresh"
            ) from err
        if manifest.get("format") != FORMAT:
            raise CheckpointError(
                f"checkpoint {str(where)!r} has format {manifest.get('format')!r}; this mcgen reads format {FORMAT}"
            )
        diff = _difference(manifest.get("run", {}), self.run)
        if diff:
            raise CheckpointError(
                f"checkpoint {str(where)!r} was made by a different run; it differs in\n  "
                + "\n  ".join(diff)
                + "\nRerun with the same settings to resume, or give another checkpoint path."
            )
        phase = manifest["phase"]
        template = templates.get(phase)
        if template is None:
            raise CheckpointError(f"checkpoint {str(where)!r} is in phase {phase!r}, which this run does not have")
        t_leaves, treedef = jax.tree_util.tree_flatten(template)
        entries = manifest["leaves"]
        if len(entries) != len(t_leaves):
            raise CheckpointError(
                f"checkpoint {str(where)!r} holds {len(entries)} state arrays; this kernel's "
                f"{phase} state has {len(t_leaves)}"
            )
        leaves = []
        for entry, like in zip(entries, t_leaves):
            file = where / entry["file"]
            try:
                data = file.read_bytes()
            except OSError as err:
                raise CheckpointError(
                    f"checkpoint {str(where)!r} is incomplete: {entry['file']} cannot be read ({err.strerror or err})"
                ) from err
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise CheckpointError(
                    f"checkpoint {str(where)!r} is corrupt or truncated: {entry['file']} does "
                    "not match its SHA-256 in manifest.json; delete the directory to start "
                    "the run afresh"
                )
            value = np.load(io.BytesIO(data), allow_pickle=False)
            if jnp.issubdtype(like.dtype, jax.dtypes.prng_key):
                value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(like))
            elif (value.shape, value.dtype) != (tuple(like.shape), np.dtype(like.dtype)):
                raise CheckpointError(
                    f"checkpoint {str(where)!r}: {entry['file']} has shape {value.shape} "
                    f"{value.dtype}, the {phase} state needs {tuple(like.shape)} {like.dtype}"
                )
            leaves.append(value)
        states = jax.tree_util.tree_unflatten(treedef, leaves)
        return Saved(
            phase, int(manifest["step"]), states, manifest.get("times", {}), manifest.get("draws", {}), where.name
        )

    def save(
        self, phase: str, step: int, states, times: dict, draws: dict | None = None, host: Callable = np.asarray
    ) -> None:
        """Write a checkpoint atomically; the previous one is deleted only once this one is whole.

        The draws it refers to must be on disk already (``DrawStore.flush(durable=True)``).
        """
        self.seq += 1
        final = self.path / f"{_PREFIX}{self.seq:06d}"
        tmp = self.path / f".tmp-{_PREFIX}{self.seq:06d}-{os.getpid()}"
        try:
            tmp.mkdir()
            entries = []
            for i, leaf in enumerate(jax.tree_util.tree_leaves(states)):
                if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                    leaf = jax.random.key_data(leaf)
                buf = io.BytesIO()
                np.save(buf, host(leaf), allow_pickle=False)
                data = buf.getvalue()
                name = f"leaf-{i:04d}.npy"
                _write_file(tmp / name, data)
                entries.append({"file": name, "sha256": hashlib.sha256(data).hexdigest()})
            manifest = {
                "format": FORMAT,
                "run": self.run,
                "phase": phase,
                "step": int(step),
                "times": times,
                "draws": draws or {},
                "leaves": entries,
            }
            _write_file(tmp / "manifest.json", json.dumps(manifest, indent=1).encode())
            _fsync_dir(tmp)
            os.rename(tmp, final)
            _fsync_dir(self.path)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            self.seq -= 1
            kept = [p for p in self._sequence() if p <= self.seq]
            last = f"{_PREFIX}{max(kept):06d}" if kept else "none yet"
            raise CheckpointError(
                f"cannot write a checkpoint in {str(self.path)!r}: {err.strerror or err}. "
                f"The last good checkpoint ({last}) is kept."
            ) from err
        for p in self.path.iterdir():  # the older checkpoints and any temporary left by a kill
            if (p.name.startswith(_PREFIX) and p != final) or p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)
        self.last = time.monotonic()
