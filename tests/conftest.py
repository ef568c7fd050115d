"""Test configuration shared by the whole suite.

JAX's dtype promotion is strict here so that silent float64/int promotion in mcgen code is a
test failure.  Rank promotion is left at JAX's default because NumPyro's distributions rely on
implicit broadcasting internally.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")

# pytest-xdist's controller rebuilds each warning a worker reports by importing the module of
# its class, in one thread per worker: two workers reporting an mcgen warning at once made two
# threads import mcgen (and ArviZ under it) concurrently, and the race raised "partially
# initialized module 'arviz.utils'" and took both workers down.  Imported here, once, first.
import mcgen  # noqa: E402, F401

# The suite runs on two xdist workers, which take tests in collection order.  A long test
# collected last leaves the other worker idle while it runs (up to two minutes for the
# subprocess tests of the exact_bits pass), so the longest tests go first (longest-processing-
# time-first scheduling).  Node-id prefixes, longest first, from `--durations` of a full run;
# an entry that no longer matches anything only loses its place.
LONGEST_FIRST = (
    "tests/test_checkpoint.py::test_sigkill_on_8_simulated_devices_is_bit_identical",
    "tests/test_determinism.py::test_draws_do_not_depend_on_device_count",
    "tests/test_checkpoint.py::test_sigkill_anywhere_then_rerun_is_bit_identical",
    "tests/test_sharding.py::test_identical_draws_on_1_2_4_8_devices",
    "tests/test_run.py::test_chain_draws_do_not_depend_on_awkward_chain_counts",
    "tests/test_ensemble.py::test_adapted_values_agree_on_1_and_8_devices",
    "tests/test_sharding.py::test_two_processes_match_single_process",
    "tests/test_properties.py::test_run_chains_shapes",
    "tests/kernels/test_nuts.py::test_gaussian_100d_log_spaced_scales",
    "tests/test_sbc_models.py::test_sbc_eight_schools_numpyro_nuts",
    "tests/test_examples.py::test_example_runs_and_its_checks_pass[score_langevin]",
    "tests/combinators/test_tempering.py::test_nests_nuts",
    "tests/kernels/test_nuts.py::test_funnel_divergences",
    "tests/test_numpyro_bridge.py::test_constrained_parameters_match_the_conjugate_posterior",
    "tests/test_contract_tempering.py::test_jit_vmap_scan_and_state_conventions[pt_nuts-flat]",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        for i, prefix in enumerate(LONGEST_FIRST):
            if item.nodeid.startswith(prefix):
                return i
        return len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order
