"""Markov-blanket Gibbs: conditionals against the joint, the kernel contract, answers.

Planted bugs these tests were checked to catch (each edit made, the tests run and failed,
the edit reverted): the Gibbs conditional missing the children's factors; the conditional
using only the first child.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcgen import bayesnet
from mcgen.bayesnet._tables import flatten_network
from mcgen.bayesnet.gibbs import _blanket_logits
from mcgen.diagnostics import SamplingWarning
from mcgen.result import Result
from mcgen.types import Kernel
from tests.bayesnet.bn_testutils import asia, assert_within_mcse, random40, weather


def _start(bn, evidence):
    ev = bn.evidence_indices(evidence)
    draws = bn.sample(1, seed=0)
    return {v: jnp.int32(ev.get(v, int(draws[v][0]))) for v in bn.variables}


@pytest.mark.parametrize("make", [weather, asia, random40])
def test_blanket_conditionals_match_the_joint(make):
    """For every variable at many assignments, the Markov-blanket conditional equals the
    conditional computed from the full joint, ``softmax_k log p(x with x_v = k)``."""
    bn = make()
    flat, logdensity_fn = flatten_network(bn), bn.logdensity_fn()
    num_states = flat.logp.shape[1]

    def from_joint(x, i):
        def at(k):
            y = x.at[i].set(k)
            return logdensity_fn({v: y[j] for j, v in enumerate(bn.variables)})

        logits = jax.vmap(at)(jnp.arange(num_states, dtype=jnp.int32))
        return jax.nn.softmax(jnp.where(jnp.arange(num_states) < flat.card[i], logits, -jnp.inf))

    def from_blanket(x, i):
        return jax.nn.softmax(_blanket_logits(flat, x, i))

    draws = bn.sample(20, seed=9)  # forward draws: assignments of positive probability
    xs = jnp.asarray(np.stack([draws[v] for v in bn.variables], axis=1))
    sites = jnp.arange(len(bn), dtype=jnp.int32)
    both = jax.jit(jax.vmap(jax.vmap(lambda x, i: (from_joint(x, i), from_blanket(x, i)), (None, 0)), (0, None)))
    joint, blanket = both(xs, sites)
    np.testing.assert_allclose(blanket, joint, atol=2e-6)


def test_kernel_contract_jit_vmap_scan():
    bn = asia()
    kernel = bayesnet.gibbs_kernel(bn, ("dysp",))
    assert isinstance(kernel, Kernel) and kernel is bayesnet.gibbs_kernel(bn, ["dysp"])
    logdensity_fn = bn.logdensity_fn()
    starts = jax.tree_util.tree_map(lambda x: jnp.stack([x] * 8), _start(bn, {"dysp": "yes"}))
    states = jax.vmap(kernel.init, in_axes=(0, None))(starts, logdensity_fn)

    def run(state, keys):
        def body(s, k):
            s, info = kernel.step(k, s, logdensity_fn)
            return s, (s.position, info.num_changed)

        return jax.lax.scan(body, state, keys)

    keys = jax.vmap(lambda c: jax.random.split(jax.random.fold_in(jax.random.key(0), c), 50))(jnp.arange(8))
    last, (path, changed) = jax.jit(jax.vmap(run))(states, keys)
    assert path["lung"].shape == (8, 50) and path["lung"].dtype == jnp.int32
    assert np.all(np.asarray(path["dysp"]) == 0)  # evidence is never updated
    assert changed.shape == (8, 50) and int(changed.max()) <= len(bn) - 1
    np.testing.assert_allclose(last.logdensity, jax.vmap(logdensity_fn)(last.position), rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(last.logdensity)))


@pytest.mark.parametrize(
    "variables, evidence", [(["cloudy", "rain"], {"wet_grass": "T"}), (["sprinkler"], {"wet_grass": "T", "rain": "T"})]
)
def test_weather_gibbs(variables, evidence):
    bn = weather()
    res = bn.query(variables, evidence, method="gibbs", num_samples=64_000, seed=1, joint=True)
    exact = bn.query(variables, evidence, joint=True)
    assert_within_mcse(res, exact.probs)
    assert np.all(np.abs(res.joint.probs - exact.joint.probs) <= 4 * res.joint.mcse), (res.joint.probs, exact.joint)
    assert isinstance(res.info["result"], Result) and res.num_samples == 64_000
    assert res.info["result"].samples[variables[0]].shape == (64, 1000)
    assert all(r < 1.01 for r in res.r_hat[variables[0]].values())
    assert 1000 < res.ess < 64_000


def test_asia_gibbs_warns_about_zeros_and_is_right_where_ergodic():
    # With either = yes observed the chain is ergodic, but it moves between (lung, tub) =
    # (yes, no) and (no, yes) only through the rare (yes, yes): slow mixing that R-hat
    # rightly flags (about 1.03 here, a SamplingWarning); the MCSE accounts for it.
    bn = asia()
    evidence = {"either": "yes", "dysp": "yes"}
    rest = [v for v in bn.variables if v not in evidence]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = bn.query(rest, evidence, method="gibbs", num_samples=64_000, seed=3)
    kinds = {type(w.message) for w in caught}
    assert bayesnet.GibbsErgodicityWarning in kinds and kinds <= {bayesnet.GibbsErgodicityWarning, SamplingWarning}
    assert_within_mcse(res, bn.query(rest, evidence).probs)


def test_random40_gibbs():
    bn = random40()
    evidence = {"n39": "s0", "n35": "s1", "n30": "s1"}
    queries = ["n00", "n20", "n29"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no zeros, chains mix: no warning
        res = bn.query(queries, evidence, method="gibbs", num_samples=64_000, num_chains=128, seed=4)
    assert_within_mcse(res, bn.query(queries, evidence).probs)
    assert res.info["max_r_hat"] < 1.01


def test_gibbs_rejects_impossible_evidence():
    with pytest.raises(bayesnet.EvidenceError, match="probability zero"):
        asia().query("lung", {"either": "no", "tub": "yes"}, method="gibbs", num_samples=1000)
