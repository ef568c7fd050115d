"""Plant known bugs in a copy of mcgen and check that the statistical tests catch each one.

Usage: python tools/planted_bugs.py [bug ...]
Each bug is a (file, old, new) substitution applied to a fresh copy of the package in a
temporary directory that shadows the installed one through PYTHONPATH; the listed tests must
FAIL with the bug in place.  Prints one line per bug: how many of the selected tests failed.
"""
import os
import re
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

BUGS = {
    "flipped_ratio": ("mcgen/kernels/_proposal.py", "proposal_logdensity - logdensity, proposal_logdensity",
                      "logdensity - proposal_logdensity, proposal_logdensity",
                      "tests/kernels/test_metropolis.py -k 'rwmh or adaptive'"),
    "tempered_ratio": ("mcgen/kernels/_proposal.py", "proposal_logdensity - logdensity, proposal_logdensity",
                       "0.7 * (proposal_logdensity - logdensity), proposal_logdensity",
                       "tests/kernels/test_metropolis.py -k 'rwmh or adaptive'"),
    "asymmetric_proposal": ("mcgen/kernels/_proposal.py", "proposal = unravel(flat + perturb(noise))",
                            "proposal = unravel(flat + perturb(noise + 0.3))",
                            "tests/kernels/test_metropolis.py -k 'rwmh or adaptive'"),
    "imh_no_q_correction": ("mcgen/kernels/independent_mh.py",
                            "(logdensity_y - log_q_y) - (state.logdensity - state.proposal_logdensity)",
                            "logdensity_y - state.logdensity",
                            "tests/kernels/test_metropolis.py -k independent"),
}


def run(name: str) -> None:
    path, old, new, tests = BUGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "mcgen", pathlib.Path(tmp) / "mcgen")
        target = pathlib.Path(tmp) / path
        text = target.read_text()
        assert old in text, f"{name}: pattern not found in {path}"
        target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": tmp}
        # run from the temporary directory: `python -m` puts the working directory first on
        # sys.path, so the planted copy shadows the real package
        cmd = (f"{sys.executable} -m pytest -q -rf -p no:cacheprovider --rootdir {ROOT} "
               f"-c {ROOT / 'pyproject.toml'} " + " ".join(
                   str(ROOT / t) if t.startswith("tests/") else t for t in tests.split(" ")))
        out = subprocess.run(cmd, shell=True, cwd=tmp, env=env, capture_output=True, text=True)
        summary = [line for line in out.stdout.splitlines()
                   if re.match(r"^=*\s*\d+ (failed|passed)", line.strip("= "))]
        failed = [line.split("::")[-1].split(" ")[0] for line in out.stdout.splitlines() if line.startswith("FAILED")]
        print(f"{name}: {summary[-1] if summary else out.stdout[-300:]}")
        for f in failed:
            print(f"    caught by {f}")


if __name__ == "__main__":
    for bug in sys.argv[1:] or BUGS:
        run(bug)
