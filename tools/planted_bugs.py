"""Plant known bugs in a copy of mcgen and check that the statistical tests catch each one.

Usage: python tools/planted_bugs.py [--list] [bug ...]

Each bug is a (file, old, new) substitution applied to a fresh copy of ``mcgen/``, ``tests/``
and ``benchmarks/`` (the reference models) in a temporary directory; pytest runs there, so the
planted copy shadows the installed package and **the working tree is never edited**.  (Plant new bugs by adding them
here, never by editing the shared sources: an experiment left behind gets committed.)  The
listed tests must FAIL with the bug in place.  Prints one line per bug: how many of the
selected tests failed, and which.
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
    # gradient kernels (issue 3)
    "hmc_kinetic_dropped": ("mcgen/kernels/_integrators.py",
                            "h = -logdensity + kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)",
                            "h = -logdensity + 0.0 * kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)",
                            "tests/kernels/test_hmc.py -k 'invariance or moments or scales'"),
    "leapfrog_full_first_kick": ("mcgen/kernels/_integrators.py", "    p = p + half * g\n    q = q",
                                 "    p = p + step_size * g\n    q = q",
                                 "tests/kernels/test_hmc.py -k 'invariance or moments or scales'"),
    "mala_no_q_correction": ("mcgen/kernels/langevin.py",
                             "log_ratio = logdensity_y - state.logdensity + log_q_reverse - log_q_forward",
                             "log_ratio = logdensity_y - state.logdensity",
                             "tests/kernels/test_langevin.py -k 'mala and (invariance or moments or scales)'"),
    "mala_flipped_ratio": ("mcgen/kernels/langevin.py",
                           "log_ratio = logdensity_y - state.logdensity + log_q_reverse - log_q_forward",
                           "log_ratio = state.logdensity - logdensity_y + log_q_reverse - log_q_forward",
                           "tests/kernels/test_langevin.py -k 'mala and (invariance or moments or scales)'"),
    "nuts_kinetic_dropped": ("mcgen/kernels/_trajectory.py", "h1 = -logdensity1 + 0.5 * pv",
                             "h1 = -logdensity1 + 0.0 * pv",
                             "tests/kernels/test_nuts.py -k 'invariance or moments or scales'"),
    "nuts_always_forward": ("mcgen/kernels/_trajectory.py",
                            "eps = jnp.where(forward, c.step_size, -c.step_size)", "eps = c.step_size",
                            "tests/kernels/test_nuts.py -k 'invariance or moments or scales'"),
    "nuts_last_leaf_not_multinomial": ("mcgen/kernels/_trajectory.py",
                                       "take = opening | (log_u_leaf < logw1 - sub_logw)",
                                       "take = opening | (log_u_leaf < 0.0)",
                                       "tests/kernels/test_nuts.py -k 'invariance or moments or scales'"),
    # (replacing min(1, W_S / W_T) by W_S / (W_T + W_S) would NOT be a bug: uniform progressive
    # sampling across subtrees is valid too, only less efficient)
    "nuts_merge_inverted": ("mcgen/kernels/_trajectory.py", "(row[2] < sub_logw - sc[LOGW])",
                            "(row[2] < sc[LOGW] - sub_logw)",
                            "tests/kernels/test_nuts.py -k 'invariance or moments or scales'"),
    # trees stop at the shallow phase's depth: still a valid sampler, so only the depth shows it
    "nuts_deep_phase_skipped": ("mcgen/kernels/_trajectory.py",
                                "jax.lax.cond(any_active(t), deeper, result, t)",
                                "jax.lax.cond(any_active(t), result, result, t)",
                                "tests/kernels/test_nuts.py -k 'deep or depth'"),
    "momentum_wrong_covariance": ("mcgen/kernels/_metrics.py", "scale = jax.lax.rsqrt(inverse_mass)",
                                  "scale = jnp.sqrt(inverse_mass)",
                                  "tests/kernels/test_nuts.py -k 'moments or scales'"),
}


def run(name: str) -> None:
    path, old, new, tests = BUGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("mcgen", "tests", "benchmarks"):  # the tests import the reference models
            shutil.copytree(ROOT / folder, pathlib.Path(tmp) / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        target = pathlib.Path(tmp) / path
        text = target.read_text()
        assert old in text, f"{name}: pattern not found in {path}"
        target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": tmp}
        # run from the temporary directory: `python -m` puts the working directory first on
        # sys.path, so the planted copy shadows the real package
        shutil.copy(ROOT / "pyproject.toml", pathlib.Path(tmp) / "pyproject.toml")
        cmd = f"{sys.executable} -m pytest -q -rf -p no:cacheprovider --rootdir {tmp} {tests}"
        out = subprocess.run(cmd, shell=True, cwd=tmp, env=env, capture_output=True, text=True)
        failed = [line.split("::", 1)[-1].split(" ")[0] for line in out.stdout.splitlines()
                  if line.startswith("FAILED")]
        passed = re.search(r"(\d+) passed", out.stdout)
        verdict = "CAUGHT" if failed else "MISSED"
        print(f"{name}: {verdict} by {len(failed)} test(s), {passed.group(1) if passed else 0} passed", flush=True)
        for f in failed:
            print(f"    caught by {f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--list"]:
        for name, (path, _, _, tests) in BUGS.items():
            print(f"{name:32s} {path:32s} {tests}")
    else:
        for bug in args or BUGS:
            run(bug)
