"""Forward, rejection and likelihood-weighting answers within 4 MCSE of the exact ones.

Planted bugs these tests were checked to catch (each edit made, the tests run and failed,
the edit reverted): likelihood weighting without the evidence weight; rejection that does
not reject; the parent strides of the CPT row index reversed.
"""

import warnings

import numpy as np
import pytest

from mcgen import bayesnet
from mcgen.bayesnet import BayesNet, Variable
from mcgen.direct.weighted import WeightedSamples
from tests.bayesnet.bn_testutils import Z_MAX, asia, assert_within_mcse, random40, weather

N = 100_000
WEATHER_QUERIES = [
    (["cloudy"], {"wet_grass": "T"}),
    (["sprinkler"], {"wet_grass": "T", "rain": "T"}),
    (["cloudy", "rain"], {"wet_grass": "F"}),
]


def _exact(bn, variables, evidence):
    return bn.query(variables, evidence).probs


def _p_evidence(bn, evidence):
    """p(e_1, ..., e_n) = prod_i p(e_i | e_{i+1}, ..., e_n), each factor exact."""
    items, p = list(evidence.items()), 1.0
    for i, (v, state) in enumerate(items):
        p *= bn.query(v, dict(items[i + 1 :])).probs[v][bn.state_index(v, state)]
    return p


@pytest.mark.parametrize("method", ["rejection", "forward", "likelihood_weighting"])
@pytest.mark.parametrize("variables, evidence", WEATHER_QUERIES)
def test_weather_queries(method, variables, evidence):
    bn = weather()
    res = bn.query(variables, evidence, method=method, num_samples=N, seed=1)
    assert_within_mcse(res, _exact(bn, variables, evidence))
    assert res.num_samples == N and 0 < res.ess <= N
    if method == "likelihood_weighting":
        assert res.acceptance_rate is None and isinstance(res.info["weighted_samples"], WeightedSamples)
    else:  # the acceptance rate estimates p(evidence): binomial standard error
        p_e = _p_evidence(bn, evidence)
        assert abs(res.acceptance_rate - p_e) < Z_MAX * np.sqrt(p_e * (1 - p_e) / N)
        assert res.ess == round(res.acceptance_rate * N)


def test_weather_joint_query():
    bn = weather()
    exact = bn.query(["cloudy", "rain"], {"wet_grass": "T"}, joint=True).joint.probs
    for method in ("rejection", "likelihood_weighting"):
        joint = bn.query(["cloudy", "rain"], {"wet_grass": "T"}, method=method, num_samples=N, joint=True).joint
        assert np.all(np.abs(joint.probs - exact) <= Z_MAX * joint.mcse), (method, joint.probs, exact)
        assert joint.probs.sum() == pytest.approx(1.0)


def test_asia_forward_rejection_and_weighting():
    bn = asia()
    forward = bn.query(list(bn.variables), method="forward", num_samples=N, seed=2)
    assert forward.acceptance_rate == 1.0
    assert_within_mcse(forward, _exact(bn, list(bn.variables), {}))
    evidence = {"dysp": "yes", "xray": "yes"}
    rest = [v for v in bn.variables if v not in evidence]
    exact = _exact(bn, rest, evidence)
    for method in ("rejection", "likelihood_weighting"):
        assert_within_mcse(bn.query(rest, evidence, method=method, num_samples=N, seed=3), exact)


def test_random40_forward_marginals_and_weighting():
    bn = random40()
    draws = bn.sample(N, seed=5)
    for v in bn.variables:  # every CPT row index (strides, parent order) is exercised here
        p = bn.query(v).probs[v]
        freq = np.bincount(draws[v], minlength=len(p)) / N
        assert np.all(np.abs(freq - p) <= Z_MAX * np.sqrt(p * (1 - p) / N)), (v, freq, p)
    evidence = {"n39": "s0", "n35": "s1", "n30": "s1", "n16": "s0"}
    queries = ["n00", "n07", "n20", "n29", "n33"]
    res = bn.query(queries, evidence, method="likelihood_weighting", num_samples=N, seed=6)
    assert_within_mcse(res, _exact(bn, queries, evidence))
    assert 0.05 * N < res.ess < N


def test_log_evidence_from_likelihood_weighting():
    bn = asia()
    ws = bayesnet.likelihood_weighting(bn, N, {"dysp": "yes", "xray": "no"}, seed=7)
    est = ws.log_normalizer()
    p_e = bn.query("dysp", {"xray": "no"}).probs["dysp"][0] * bn.query("xray").probs["xray"][1]
    assert abs(float(est.mean) - np.log(p_e)) < Z_MAX * float(est.mcse)


def test_low_acceptance_warns_and_impossible_evidence_gives_nan():
    bn = asia()
    with pytest.warns(bayesnet.LowAcceptanceWarning, match="accepted"):
        res = bn.query("lung", {"asia": "yes", "tub": "yes"}, method="rejection", num_samples=20_000)
    assert res.acceptance_rate < 0.01
    with pytest.warns(bayesnet.LowAcceptanceWarning):
        res = bn.query("lung", {"either": "no", "tub": "yes"}, method="rejection", num_samples=1000)
    assert res.ess == 0 and np.isnan(res.probs["lung"]).all()
    with pytest.warns(bayesnet.LowAcceptanceWarning, match="weights are zero"):
        res = bn.query("lung", {"either": "no", "tub": "yes"}, method="likelihood_weighting", num_samples=1000)
    assert np.isnan(res.probs["lung"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn.query("lung", {"dysp": "yes"}, method="rejection", num_samples=20_000)


def test_single_state_and_zero_probability_states():
    bn = BayesNet(
        [
            Variable("a", ["only"], (), [1.0]),
            Variable("b", ["x", "y", "z"], ["a"], [[0.5, 0.0, 0.5]]),
            Variable("c", ["u", "v", "w"], ["b"], [[0.2, 0.8, 0.0], [1 / 3] * 3, [0.0, 0.0, 1.0]]),
        ]
    )
    draws = bn.sample(50_000, seed=0)
    assert np.all(draws["a"] == 0) and not np.any(draws["b"] == 1)
    assert not np.any((draws["b"] == 0) & (draws["c"] == 2)) and not np.any((draws["b"] == 2) & (draws["c"] != 2))
    res = bn.query(["b"], {"c": "w"}, method="likelihood_weighting", num_samples=50_000)
    np.testing.assert_allclose(res.probs["b"], [0.0, 0.0, 1.0], atol=1e-12)


def test_seeds():
    bn = weather()
    a = bn.query("cloudy", {"wet_grass": "T"}, method="likelihood_weighting", num_samples=1000, seed=11)
    b = bn.query("cloudy", {"wet_grass": "T"}, method="likelihood_weighting", num_samples=1000, seed=11)
    c = bn.query("cloudy", {"wet_grass": "T"}, method="likelihood_weighting", num_samples=1000, seed=12)
    assert a["cloudy"] == b["cloudy"] and a["cloudy"] != c["cloudy"]
