"""Draws streamed to disk: a zarr store that holds every kept draw and per-draw stat.

``run_chains(..., store=path)`` writes each sampling chunk's draws and stats as they come
off the device, so host memory stays flat whatever ``num_samples`` is.  The store is a zarr
(v3) group laid out as xarray datasets, so ArviZ and xarray read it directly::

    path/posterior/<name>       (chain, draw, *event)    one array per leaf of the position
    path/posterior/chain, draw  coordinates
    path/sample_stats/<name>    (chain, draw, ...)       the kernel's Info fields, logdensity

Names follow :func:`mcgen.diagnostics.chains_to_arviz` (dict keys and NamedTuple fields joined
with ``.``; a bare array is ``x``); stats keep mcgen's names (``accept_prob``...).  A zarr
chunk holds every chain and exactly one sampling chunk of draws, so every zarr chunk is written
once and a write that is cut short (a kill) only ever touches draws past the last checkpoint.
Writes (compression and I/O) run on one background thread while the next chunk samples, with
at most two chunks waiting, so memory stays bounded; :meth:`DrawStore.flush` waits for them
and, for a checkpoint, fsyncs the files written.  Each chunk's CRC-32 is kept in order; the
checkpoint manifest records them and :meth:`DrawStore.verify` checks the committed draws
against them on resume.

Read it back without mcgen::

    import xarray as xr, arviz as az
    idata = az.InferenceData.from_datatree(xr.open_datatree(path, engine="zarr"))
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import zlib

import jax
import numpy as np

from mcgen.diagnostics import leaf_names

STORE_FORMAT = 1
_MARK = "mcgen_store"


def check_path(path: pathlib.Path, what: str) -> None:
    """Raise a clear error when ``path`` cannot hold a directory we may write."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} path {str(path)!r} is a file; give a directory (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mcgen-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(err.errno, f"{what} path {str(path)!r} is not writable: {err.strerror or err}") from err


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DrawStore:
    """The zarr store of one run's kept draws and stats.

    Parameters
    ----------
    path
        Directory of the store.
    draws, stats
        Pytree and dict of ``jax.ShapeDtypeStruct`` of one step's draws and stats with a
        leading chain axis (the shape of a chunk's output without its draw axis).
    num_chains
        Chains kept (padding chains are never written).
    num_samples, chunk
        Draws per chain and draws per zarr chunk (the driver's sampling chunk).
    fresh
        ``True``: create the store (replacing an earlier mcgen store at ``path``);
        ``False``: open the existing one (a resume).
    durable
        fsync every chunk file as it is written (on the writer thread, so the wait overlaps
        sampling): what a checkpoint that refers to these draws needs.
    """

    def __init__(
        self, path, draws, stats, num_chains: int, num_samples: int, chunk: int, fresh: bool, durable: bool = False
    ):
        import zarr

        self.path = pathlib.Path(path)
        self.treedef = jax.tree_util.tree_structure(draws)
        self.names = leaf_names(draws)
        self.stat_names = list(stats)
        self.num_chains, self.num_samples, self.chunk, self.durable = num_chains, num_samples, chunk, durable
        leaves = jax.tree_util.tree_leaves(draws)
        if fresh:
            check_path(self.path, "store")
            if any(self.path.iterdir()) and not (self.path / "zarr.json").exists():
                raise ValueError(
                    f"store path {str(self.path)!r} is a non-empty directory that is not an mcgen "
                    "store; give a new or empty directory"
                )
            if (self.path / "zarr.json").exists():
                attrs = json.loads((self.path / "zarr.json").read_text()).get("attributes", {})
                if _MARK not in attrs:
                    raise ValueError(
                        f"store path {str(self.path)!r} holds a zarr store not written by mcgen; "
                        "give a new or empty directory"
                    )
            root = zarr.open_group(str(self.path), mode="w")
            root.attrs.update(
                {_MARK: STORE_FORMAT, "num_samples": num_samples, "chunk": chunk, "num_chains": num_chains}
            )
            for group, names, specs in (
                ("posterior", self.names, leaves),
                ("sample_stats", self.stat_names, list(stats.values())),
            ):
                g = root.create_group(group)
                g.create_array("chain", shape=(num_chains,), dtype="int64", dimension_names=("chain",))[:] = np.arange(
                    num_chains
                )
                g.create_array("draw", shape=(num_samples,), dtype="int64", dimension_names=("draw",))[:] = np.arange(
                    num_samples
                )
                for name, spec in zip(names, specs):
                    event = tuple(spec.shape[1:])
                    dims = ("chain", "draw") + tuple(f"{name}_dim_{i}" for i in range(len(event)))
                    g.create_array(
                        name,
                        shape=(num_chains, num_samples) + event,
                        chunks=(num_chains, chunk) + event,
                        dtype=spec.dtype,
                        fill_value=0,
                        dimension_names=dims,
                    )
        else:
            root = zarr.open_group(str(self.path), mode="r+")
            attrs = dict(root.attrs)
            want = {"num_samples": num_samples, "chunk": chunk, "num_chains": num_chains}
            got = {k: attrs.get(k) for k in want}
            if attrs.get(_MARK) != STORE_FORMAT or got != want:
                raise ValueError(
                    f"the draws store {str(self.path)!r} does not match the checkpoint: "
                    f"store has {got}, checkpoint expects {want}"
                )
        # every chunk is written, even one equal to the fill value: no stale chunk survives a rewrite
        config = {"write_empty_chunks": True}
        # (zarr's stubs type a group's member as an Array or a Group; these are arrays)
        self.posterior = [root["posterior"][n].with_config(config) for n in self.names]  # pyright: ignore
        self.stats = {n: root["sample_stats"][n].with_config(config) for n in self.stat_names}  # pyright: ignore
        self.crcs: dict[str, list[int]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcgen-store")
        self._pending: list[concurrent.futures.Future] = []
        self._written: list[str] = []

    def write(self, t0: int, draws, stats: dict, keep: np.ndarray) -> None:
        """Queue draws ``t0 .. t0 + n`` (host arrays ``(n, chains, ...)``, padding chains masked out)."""
        jobs = [
            (f"posterior/{name}", array, leaf)
            for name, array, leaf in zip(self.names, self.posterior, jax.tree_util.tree_leaves(draws))
        ]
        jobs += [(f"sample_stats/{name}", self.stats[name], stats[name]) for name in self.stat_names]
        while len(self._pending) >= 2:  # bounded: at most two chunks wait in memory
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._write_all, t0, jobs, keep))

    def _write_all(self, t0: int, jobs, keep) -> None:
        for name, array, chunk in jobs:
            self.crcs.setdefault(name, []).append(self._put(array, t0, chunk, keep))
            if self.durable:
                index = "/".join(["0", str(t0 // self.chunk)] + ["0"] * (array.ndim - 2))
                file = os.path.join(self.path, name, "c", index)
                _fsync(file)
                self._written.append(os.path.dirname(file))

    @staticmethod
    def _put(array, t0: int, chunk: np.ndarray, keep: np.ndarray) -> int:
        block = np.ascontiguousarray(np.swapaxes(np.asarray(chunk), 0, 1)[keep])
        array[:, t0 : t0 + block.shape[1]] = block
        return zlib.crc32(block.tobytes())

    def flush(self, durable: bool) -> dict[str, list[int]]:
        """Wait for the queued writes; with ``durable``, fsync them.  Returns the CRC-32s so far."""
        while self._pending:
            self._pending.pop(0).result()
        if durable:  # the chunk files are fsynced already; their directory entries now
            for folder in set(self._written):
                _fsync(folder)
            self._written.clear()
        return {k: list(v) for k, v in self.crcs.items()}

    def close(self) -> None:
        try:
            self.flush(durable=False)
        finally:
            self._pool.shutdown(wait=True)

    def verify(self, committed: int, crcs: dict[str, list[int]]) -> None:
        """Check the first ``committed`` draws against the CRC-32s recorded chunk by chunk."""
        arrays = {f"posterior/{n}": a for n, a in zip(self.names, self.posterior)}
        arrays.update({f"sample_stats/{n}": a for n, a in self.stats.items()})
        if set(crcs) != set(arrays):
            raise ValueError(
                f"the draws store {str(self.path)!r} holds {sorted(arrays)} but the checkpoint recorded {sorted(crcs)}"
            )
        self.crcs = {name: list(crcs[name][: -(-committed // self.chunk)]) for name in arrays}
        for name, array in arrays.items():
            sums = crcs[name]
            for i, t0 in enumerate(range(0, committed, self.chunk)):
                try:
                    block = np.ascontiguousarray(array[:, t0 : min(t0 + self.chunk, committed)])
                    ok = i < len(sums) and zlib.crc32(block.tobytes()) == sums[i]
                except Exception as err:  # noqa: BLE001 - any read failure is a corrupt chunk
                    ok, block = False, err
                if not ok:
                    raise ValueError(
                        f"the draws store {str(self.path)!r} is corrupt: {name}, draws {t0}.."
                        f"{min(t0 + self.chunk, committed) - 1} do not match the checkpoint's checksum; "
                        "delete the checkpoint directory to start the run afresh"
                    )

    def lazy(self):
        """``(samples, stats)``: the pytree and dict of zarr arrays, read when indexed."""
        return jax.tree_util.tree_unflatten(self.treedef, self.posterior), dict(self.stats)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.posterior) + sum(a.nbytes for a in self.stats.values())
