#!/usr/bin/env python3
"""Set-up and entry points that work on a fresh machine with only ``python3``.

    python3 dev.py demo       # create .venv, install mcgen, run examples/quickstart.py
    python3 dev.py test       # create .venv, install mcgen[test], run the test suite [pytest args]
    python3 dev.py doctest    # run every docstring example of the package
    python3 dev.py notebooks  # execute notebooks/*.py into docs/notebooks/*.ipynb
    python3 dev.py docs       # notebooks, then the site (mkdocs --strict) into site/
    python3 dev.py lint       # ruff check and format --check, then pyright (basic) on mcgen/

The virtual environment is created once and re-installed only when ``pyproject.toml``
changes (the docs tools are installed on the first ``notebooks`` or ``docs``).  Extra
arguments after ``test`` or ``doctest`` go to pytest (``python3 dev.py test -k rwmh``); the
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


COMMANDS = ("demo", "test", "doctest", "notebooks", "docs", "lint")


def ensure_env(extra: str = "test") -> None:
    stamp = VENV / f".mcgen-installed-{extra}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print("installing mcgen and its dependencies (first run only)...", flush=True)
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["-e", f"{ROOT}[{extra}]"], check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    ensure_env("docs" if argv[0] in ("notebooks", "docs") else "test")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if argv[0] in ("notebooks", "docs"):
        code = subprocess.run(
            [str(PYTHON), str(ROOT / "tools" / "run_notebooks.py"), *argv[1:]], cwd=ROOT, env=env
        ).returncode
        if code or argv[0] == "notebooks":
            return code
        return subprocess.run(
            [str(PYTHON), "-m", "mkdocs", "build", "--strict"], cwd=ROOT, env={**env, "NO_MKDOCS_2_WARNING": "1"}
        ).returncode
    if argv[0] == "lint":  # ruff (lint, import order, format), then pyright (basic) on mcgen/ with the venv's packages
        code = subprocess.run([str(PYTHON), "-m", "ruff", "check", ".", *argv[1:]], cwd=ROOT).returncode
        code = code or subprocess.run([str(PYTHON), "-m", "ruff", "format", "--check", "."], cwd=ROOT).returncode
        return code or subprocess.run([str(BIN / "pyright"), "--pythonpath", str(PYTHON)], cwd=ROOT).returncode
    if argv[0] == "doctest":
        skip: list[str] = []
        code = subprocess.run(
            [
                str(PYTHON),
                "-m",
                "pytest",
                "-n",
                "0",
                "-p",
                "no:cacheprovider",
                "--doctest-modules",
                "mcgen",
                *skip,
                *argv[1:],
            ],
            cwd=ROOT,
            env=env,
        ).returncode
        return 0 if code == 5 else code
    if argv[0] == "demo":
        return subprocess.run(
            [str(PYTHON), str(ROOT / "examples" / "quickstart.py"), *argv[1:]], cwd=ROOT, env=env
        ).returncode
    # two pytest workers by default: the suite is dominated by single-threaded XLA compiles
    workers = [] if any(a.startswith("-n") for a in argv[1:]) else ["-n", str(min(2, os.cpu_count() or 1))]
    pytest = [str(PYTHON), "-m", "pytest", *workers]
    if len(argv) > 1:  # a selection: one run, compiled as users' programs are
        code = subprocess.run([*pytest, *argv[1:]], cwd=ROOT, env=env).returncode
        return 0 if code == 5 else code  # 5: no tests collected (e.g. a -k that selects nothing)
    # The whole suite is dominated by XLA compiles.  LLVM's optimization level changes how fast
    # a program compiles and runs, and its last bits of rounding (fused multiply-adds), not the
    # arithmetic, so the statistical tests run with it off (12-24% less CPU time); the tests that
    # compare bits across chain counts, devices and processes (marker exact_bits) run apart,
    # compiled exactly as users' programs are.
    slowest = ["--durations=25", "--durations-min=5"]  # the suite has a 15-minute budget: name what spends it
    fast = {**env, "XLA_FLAGS": (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()}
    codes = [
        subprocess.run([*pytest, "-m", "not exact_bits", *slowest], cwd=ROOT, env=fast).returncode,
        subprocess.run([*pytest, "-m", "exact_bits", *slowest], cwd=ROOT, env=env).returncode,
    ]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
