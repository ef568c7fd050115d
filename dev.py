#!/usr/bin/env python3
"""Set-up and entry points that work on a fresh machine with only ``python3``.

    python3 dev.py demo    # create .venv, install mcgen, run examples/quickstart.py
    python3 dev.py test    # create .venv, install mcgen[test], run the test suite

The virtual environment is created once and re-installed only when ``pyproject.toml``
changes.  Extra arguments after ``test`` go to pytest (``python3 dev.py test -k rwmh``); the
suite runs on two pytest-xdist workers unless ``-n`` is given.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_env() -> None:
    stamp = VENV / ".mcgen-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print("installing mcgen and its dependencies (first run only)...", flush=True)
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    ensure_env()
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if argv[0] == "demo":
        return subprocess.run([str(PYTHON), str(ROOT / "examples" / "quickstart.py"), *argv[1:]],
                              cwd=ROOT, env=env).returncode
    # two pytest workers by default: the suite is dominated by single-threaded XLA compiles
    workers = [] if any(a.startswith("-n") for a in argv[1:]) else ["-n", str(min(2, os.cpu_count() or 1))]
    code = subprocess.run([str(PYTHON), "-m", "pytest", *workers, *argv[1:]], cwd=ROOT, env=env).returncode
    return 0 if code == 5 else code  # 5: no tests collected (e.g. a -k that selects nothing)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
