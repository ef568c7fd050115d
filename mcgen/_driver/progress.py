"""The progress display of ``run_chains``: one bar per phase, drawn from the host loop.

The bar moves between compiled chunks (never from a callback inside the compiled step).  It
says ``compiling`` while XLA compiles, names the phase (``warmup`` / ``sampling``), and
computes the rate and the time left from stepping time alone, so a long first compile does not
make the start look slow.  During sampling it shows the chains' health from the draws' stats:
divergences so far, mean acceptance, mean step size, NUTS transitions that reached the maximum
tree depth (once there are any) and, for parallel tempering, round trips.

``progress="auto"`` shows it in a terminal (stderr is a TTY) and in a Jupyter kernel (a
``tqdm.notebook`` widget when ``ipywidgets`` is installed, text in the cell's output
otherwise), and hides it elsewhere (CI logs, pipes, batch jobs).
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}"


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter (IPython) kernel, whatever its streams are."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython  # pyright: ignore[reportMissingImports]
    except ImportError:  # pragma: no cover - ipykernel always brings IPython
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def wanted(progress: bool | str) -> bool:
    """Resolve ``progress`` (True, False or ``"auto"``) to on or off."""
    if progress == "auto":
        return in_jupyter_kernel() or bool(getattr(sys.stderr, "isatty", lambda: False)())
    if isinstance(progress, bool):
        return progress
    raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")


def _tqdm_class():
    """tqdm's notebook widget in a Jupyter kernel with ipywidgets, its text bar otherwise."""
    if in_jupyter_kernel():
        try:
            import ipywidgets  # noqa: F401  # pyright: ignore[reportMissingImports]
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass  # text in the cell's output, without tqdm.auto's warning about widgets
    from tqdm.std import tqdm

    return tqdm


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Health:
    """Running totals of the chains' health during sampling (host numpy, real chains only)."""

    def __init__(self) -> None:
        self.divergences = None
        self.accept_sum = 0.0
        self.count = 0
        self.step_size = None
        self.round_trips = None
        self.at_max_depth = 0

    def add(self, stats: Mapping[str, Any], keep: np.ndarray) -> None:
        """Fold in one chunk of stats, each ``(draws, chains, ...)``; ``keep`` masks real chains."""
        if "is_divergent" in stats:
            self.divergences = (self.divergences or 0) + int(np.sum(np.asarray(stats["is_divergent"])[:, keep]))
        if "reached_max_treedepth" in stats:
            self.at_max_depth += int(np.sum(np.asarray(stats["reached_max_treedepth"])[:, keep]))
        if "accept_prob" in stats:
            accept = np.asarray(stats["accept_prob"], np.float64)[:, keep]
            self.accept_sum += float(np.nansum(accept))
            self.count += accept.size
        if "step_size" in stats:
            self.step_size = float(np.mean(np.asarray(stats["step_size"])[-1, keep]))
        if "round_trips" in stats:
            self.round_trips = int(np.sum(np.asarray(stats["round_trips"])[-1, keep]))

    def text(self) -> str:
        parts = []
        if self.count:
            parts.append(f"accept {self.accept_sum / self.count:.2f}")
        if self.step_size is not None:
            parts.append(f"step {self.step_size:.3g}")
        if self.divergences is not None:
            parts.append(f"divergences {self.divergences}")
        if self.at_max_depth:
            parts.append(f"at max tree depth {self.at_max_depth}")
        if self.round_trips is not None:
            parts.append(f"round trips {self.round_trips}")
        return ", ".join(parts)


class Progress:
    """One bar per phase; ``enabled=False`` makes every method a no-op.

    ``advance(n, seconds)`` adds ``n`` steps that took ``seconds`` of stepping (compilation
    excluded); rate and time left come from those seconds only.

    Example
    -------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress(True, file=out)
    >>> bar.start("warmup", 1000)
    >>> bar.advance(250, 0.5)
    >>> out.getvalue().split(chr(13))[-1].split("| ")[-1]
    '250/1000, 500 step/s, 00:02 left'
    >>> bar.close()
    """

    def __init__(self, enabled: bool, file=None) -> None:
        self.enabled = enabled
        self.file = file
        self.bar = None
        self.phase = ""
        self.steps = 0
        self.seconds = 0.0
        self.total = 0
        self.health: Health | None = None

    def start(self, phase: str, total: int, done: int = 0) -> None:
        """Open the bar of ``phase`` with ``total`` steps, ``done`` of them already (a resume)."""
        self.close()
        if not self.enabled or total <= 0:
            return
        tqdm = _tqdm_class()
        self.phase, self.total, self.steps, self.seconds = phase, total, 0, 0.0
        self.health = Health() if phase == "sampling" else None
        self.bar = tqdm(
            total=total,
            initial=done,
            desc=phase,
            unit="step",
            file=self.file,
            bar_format=BAR_FORMAT,
            leave=True,
            dynamic_ncols=True,
            mininterval=0.0,
        )
        self._show()

    def compiling(self, on: bool) -> None:
        """Say ``compiling`` in the bar while XLA compiles the next chunk."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.phase} (compiling…)" if on else self.phase, refresh=False)
            self._show()

    def advance(self, n: int, seconds: float, stats: Mapping[str, Any] | None = None, keep=None) -> None:
        """``n`` more steps done in ``seconds`` of stepping; ``stats`` of the chunk (sampling)."""
        if self.bar is None:
            return
        self.steps += n
        self.seconds += seconds
        if stats is not None and keep is not None and self.health is not None:
            self.health.add(stats, keep)
        self.bar.n += n
        self._show()

    def _show(self) -> None:
        if self.bar is None:
            return
        parts = []
        if self.steps and self.seconds > 0:
            rate = self.steps / self.seconds
            left = (self.total - self.bar.n) / rate
            parts.append(
                f"{rate:,.0f} step/s, {_clock(left)} left" if rate >= 10 else f"{rate:.2f} step/s, {_clock(left)} left"
            )
        if self.health is not None and self.health.count:
            parts.append(self.health.text())
        self.bar.set_postfix_str(" | ".join(parts), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.set_description_str(self.phase, refresh=False)
            self._show()
            self.bar.close()
            self.bar = None
