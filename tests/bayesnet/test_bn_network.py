"""Building and validating networks; evidence handling; the joint log-density."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen import bayesnet
from mcgen.bayesnet import BayesNet, Variable
from tests.bayesnet.bn_testutils import asia, brute_force_joint, weather


def _two(cpt_b=((0.3, 0.7), (0.6, 0.4)), parents_b=("a",)):
    return [Variable("a", ["x", "y"], (), [0.2, 0.8]), Variable("b", ["u", "v"], parents_b, cpt_b)]


def test_from_dict_topological_order_and_graph():
    bn = BayesNet.from_dict(
        {
            "d": {"states": ["0", "1"], "parents": ["b", "c"], "cpt": np.full((2, 3, 2), 0.5)},
            "b": {"states": ["0", "1"], "parents": ["a"], "cpt": [[0.5, 0.5], [0.1, 0.9]]},
            "c": {"states": ["0", "1", "2"], "parents": ["a"], "cpt": [[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]},
            "a": {"states": ["0", "1"], "cpt": [0.4, 0.6]},
        }
    )
    assert bn.variables == ("a", "b", "c", "d")
    assert bn.children["a"] == ("b", "c") and bn.parents["d"] == ("b", "c")
    assert bn.markov_blanket("b") == ("a", "c", "d")
    assert bn.ancestors(["b"]) == ("a", "b")
    assert bn.subnetwork(["c"]).variables == ("a", "c")
    assert bn.cardinality("c") == 3 and len(bn) == 4 and "d" in bn


def test_cpts_are_copied_and_read_only():
    cpt = np.array([0.2, 0.8])
    bn = BayesNet([Variable("a", ["x", "y"], (), cpt)])
    cpt[0] = 0.5  # the caller's array stays writable and the network keeps its copy
    assert bn.cpts["a"][0] == 0.2
    with pytest.raises(ValueError):
        bn.cpts["a"][0] = 0.1


def test_cycle_names_a_variable_on_it():
    with pytest.raises(bayesnet.CycleError, match="cycle") as err:
        BayesNet(
            [
                Variable("a", ["0", "1"], ["c"], [[0.5, 0.5]] * 2),
                Variable("b", ["0", "1"], ["a"], [[0.5, 0.5]] * 2),
                Variable("c", ["0", "1"], ["b"], [[0.5, 0.5]] * 2),
            ]
        )
    assert set(err.value.cycle) == {"a", "b", "c"} and err.value.variable in {"a", "b", "c"}
    with pytest.raises(bayesnet.CycleError, match="'a' is its own parent"):
        BayesNet([Variable("a", ["0", "1"], ["a"], [[0.5, 0.5]] * 2)])


@pytest.mark.parametrize(
    "cpt, pattern",
    [
        ([0.3, 0.7], r"CPT of 'b' has shape \(2,\), expected \(2, 2\)"),
        ([[0.3, 0.7], [0.6, 0.5]], r"row of 'b' for a=1 sums to 1.1"),
        ([[1.2, -0.2], [0.6, 0.4]], r"CPT of 'b' has a negative entry -0.2"),
        ([[np.nan, 0.7], [0.6, 0.4]], r"CPT of 'b' has a NaN"),
        ([["p", "q"], [0.6, 0.4]], r"CPT of 'b' is not a numeric array"),
    ],
)
def test_bad_cpts_name_the_variable(cpt, pattern):
    with pytest.raises(bayesnet.CPTError, match=pattern) as err:
        BayesNet(_two(cpt_b=cpt))
    assert err.value.variable == "b"
    assert isinstance(err.value, ValueError)


def test_small_row_sum_errors_are_renormalized():
    bn = BayesNet(_two(cpt_b=((0.3, 0.7 + 5e-7), (0.6, 0.4))))
    assert abs(bn.cpts["b"][0].sum() - 1) < 1e-15
    bn = BayesNet(_two())
    assert bn.cpts["b"][0, 0] == 0.3  # rows that already sum to 1 keep the exact given numbers


@pytest.mark.parametrize(
    "variables, pattern",
    [
        ([Variable("a", ["x", "y"], (), [0.5, 0.5]), Variable("a", ["x"], (), [1.0])], "'a' is defined twice"),
        ([Variable("a", ["x", "x"], (), [0.5, 0.5])], "'a' has duplicate state names"),
        ([Variable("a", [], (), [])], "'a' needs a sequence of non-empty state names"),
        ([Variable("a", "xy", (), [0.5, 0.5])], "'a' needs a sequence"),
        ([Variable("a", ["x"], ["zz"], [[1.0]])], "'a' has unknown parent 'zz'"),
        ([Variable("a", ["x"], ["b", "b"], [[[1.0]]]), Variable("b", ["x"], (), [1.0])], "'a' lists a parent twice"),
        ([], "at least one variable"),
    ],
)
def test_bad_structure(variables, pattern):
    with pytest.raises(bayesnet.BayesNetError, match=pattern):
        BayesNet(variables)


def test_evidence_by_name_or_index_and_errors():
    bn = weather()
    assert bn.evidence_indices({"cloudy": "F", "rain": 0, "wet_grass": np.int64(1)}) == {
        "cloudy": 1,
        "rain": 0,
        "wet_grass": 1,
    }
    cases = [
        ({"cloud": "T"}, "unknown variable 'cloud'", "cloud"),
        ({"cloudy": "yes"}, "'cloudy' has no state 'yes'; its states are", "cloudy"),
        ({"rain": 2}, "state index 2 is out of range for 'rain'", "rain"),
        ({"rain": True}, "'rain' must be a state name or an integer index", "rain"),
        ({"rain": 0.0}, "'rain' must be a state name", "rain"),
    ]
    for evidence, pattern, name in cases:
        with pytest.raises(bayesnet.EvidenceError, match=pattern) as err:
            bn.query("cloudy", evidence)
        assert err.value.variable == name
    with pytest.raises(bayesnet.EvidenceError, match="unknown query variable 'fog'"):
        bn.query("fog")
    with pytest.raises(bayesnet.EvidenceError, match="'rain' is both queried and observed"):
        bn.query(["rain"], {"rain": "T"})
    with pytest.raises(ValueError, match="method must be one of"):
        bn.query("rain", method="magic")


def test_logdensity_matches_enumeration_under_jit_and_vmap():
    bn = asia()
    joint = brute_force_joint(bn)
    f = jax.jit(bn.logdensity_fn())
    assert bn.logdensity_fn() is bn.logdensity_fn()
    cards = [len(bn.states[v]) for v in bn.variables]
    grid = np.array(list(itertools.product(*(range(c) for c in cards))), dtype=np.int32)
    batch = {v: jnp.asarray(grid[:, i]) for i, v in enumerate(bn.variables)}
    logp = np.asarray(jax.vmap(f)(batch))
    with np.errstate(divide="ignore"):
        expected = np.log(joint[tuple(grid.T)])
    np.testing.assert_allclose(np.exp(logp), np.exp(expected), atol=1e-6)
    assert np.array_equal(np.isinf(logp), np.isinf(expected))


def test_sample_api():
    bn = weather()
    draws = bn.sample(1000, seed=3)
    assert set(draws) == set(bn.variables)
    assert all(x.shape == (1000,) and x.dtype == np.int32 for x in draws.values())
    names = bn.sample(1000, seed=3, as_names=True)
    assert set(np.unique(names["rain"])) <= {"T", "F"}
    assert np.array_equal(names["rain"] == "F", draws["rain"] == 1)
    # a draw depends only on the seed and its index, not on how many are asked for
    longer = bn.sample(20000, seed=3)
    assert all(np.array_equal(longer[v][:1000], draws[v]) for v in bn.variables)
    assert not np.array_equal(bn.sample(1000, seed=4)["rain"], draws["rain"])
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        bn.sample(0)
