"""The worked examples run and pass the checks they print (each asserts its numbers against
known answers, in Monte-Carlo standard errors where they are random)."""

import pathlib
import runpy
import warnings

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
CHECKED = ["bimodal_metropolis", "vae_latents", "gan_truncation", "flow_sampling", "score_langevin"]


@pytest.mark.parametrize("name", CHECKED)
def test_example_runs_and_its_checks_pass(name, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")
        module["main"]()
    assert "All checks passed." in capsys.readouterr().out
