"""Execute the notebooks (jupytext percent scripts ``notebooks/*.py``) into ``docs/notebooks/``.

Each script is read with jupytext, executed top to bottom by nbclient in a fresh kernel (from
the repository root, so relative paths work), and written as an ``.ipynb`` with its outputs;
the site renders those.  A cell that raises fails the run.  Prints the time each took.

    python tools/run_notebooks.py            # all of them
    python tools/run_notebooks.py first_run  # only the named ones
"""

from __future__ import annotations

import pathlib
import sys
import time

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
OUT = ROOT / "docs" / "notebooks"
CELL_TIMEOUT_S = 300


def execute(path: pathlib.Path) -> float:
    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, OUT / f"{path.stem}.ipynb")
    return time.perf_counter() - start


def main(names: list[str]) -> int:
    paths = sorted(SOURCE.glob("*.py"))
    if names:
        paths = [p for p in paths if p.stem in names]
    total = 0.0
    for path in paths:
        seconds = execute(path)
        total += seconds
        print(f"executed notebooks/{path.name} in {seconds:.1f} s", flush=True)
    print(f"{len(paths)} notebooks executed in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
