"""Every kernel and combinator, on a small target, for the determinism tests.

Imported as ``tests.determinism_cases`` by tests/test_determinism.py and tests/scripts/determinism_devices.py (the
8-device run); not a test module itself.  Targets are elementwise (no matrix products), so
chain ``i``'s draws must be bit-identical whatever the chain count and the device count
(the driver's contract, :mod:`mcgen.run`).  Every target has 4 flat coordinates, so that
(batch x dimension) fills XLA:CPU's 8-lane vectors for every even batch: with a remainder,
XLA computes the tail elements in other code, which may contract ``a * b + c`` into a fused
multiply-add where the vector code does not (measured: HMC on a 3-coordinate target, 2 or 12
chains against 16).  Runs are short: determinism shows in a few steps.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc
from mcgen.combinators import compose, gibbs, mixture, parallel_tempering
from mcgen.kernels.categorical_gibbs import categorical_gibbs

SCALES = jnp.array([0.5, 1.0, 2.0, 3.0])


def flat_logdensity(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


def dict_logdensity(x):
    return -0.5 * jnp.sum((x["a"] - 1.0) ** 2) - 0.5 * (x["b"] / 2.0) ** 2  # 3 + 1 coordinates


def int_logdensity(x):
    return -0.5 * jnp.sum((x.astype(jnp.float32) - 1.0) ** 2)


def draw_a(key, x):
    del x
    return 1.0 + jax.random.normal(key, (3,))


def draw_b(key, x):
    del x
    return 2.0 * jax.random.normal(key)


class _Proposal:
    def sample(self, key):
        return 3.0 * jax.random.normal(key, (4,))

    def log_prob(self, x):
        return -0.5 * jnp.sum((x / 3.0) ** 2)


# correlated pairs (x0, x1) and (x2, x3): sums and differences of unequal scales
PAIR_SCALES = jnp.array([3.0, 0.3, 2.0, 0.7])


def _pairs(x):
    return jnp.stack([x[0] + x[1], x[0] - x[1], x[2] + x[3], x[2] - x[3]])


@jax.custom_jvp
def correlated_logdensity(x):
    return -0.5 * jnp.sum((_pairs(x) / PAIR_SCALES) ** 2)


@correlated_logdensity.defjvp
def _correlated_jvp(primals, tangents):
    # the gradient written with divisions and adds only: autodiff's would add products, which
    # LLVM fuses into multiply-adds at some batch sizes only (measured: 1 ulp between 2 and 16
    # chains), and the test is about the metric's arithmetic, not the target's
    (x,), (t,) = primals, tangents
    gy = -_pairs(x) / (PAIR_SCALES * PAIR_SCALES)
    g = jnp.stack([gy[0] + gy[1], gy[0] - gy[1], gy[2] + gy[3], gy[2] - gy[3]])
    return correlated_logdensity(x), jnp.sum(g * t)


FLAT = (flat_logdensity, jnp.zeros(4))
CORRELATED = (correlated_logdensity, jnp.zeros(4))
DICT = (dict_logdensity, {"a": jnp.zeros(3), "b": jnp.zeros(())})
INT = (int_logdensity, jnp.zeros(4, jnp.int32))

LOW_RANK = dict(mass="low_rank", warmup_schedule="early", mass_rank=4)

# name -> (kernel constructor, target)
CASES = {
    "rwmh": (lambda: mc.rwmh(), FLAT),
    "adaptive_mh": (lambda: mc.adaptive_mh(), FLAT),
    "independent_mh": (lambda: mc.independent_mh(_Proposal()), FLAT),
    "mala": (lambda: mc.mala(), FLAT),
    "ula": (lambda: mc.ula(0.1), FLAT),
    "hmc": (lambda: mc.hmc(), FLAT),
    "hmc_no_jitter": (lambda: mc.hmc(jitter=0.0), FLAT),
    # Stan's diagonal metric; the default low-rank metric agrees only to rounding (LOW_RANK_CASES)
    "nuts": (lambda: mc.nuts(max_tree_depth=6, mass="diag"), FLAT),
    "hmc_dict": (lambda: mc.hmc(5), DICT),
    "gibbs_exact": (lambda: gibbs({"a": draw_a, "b": draw_b}), DICT),
    "gibbs_mh": (lambda: gibbs({"a": mc.rwmh(), "b": mc.adaptive_mh()}), DICT),
    "gibbs_random_scan": (lambda: gibbs({"a": mc.mala(), "b": draw_b}, scan="random"), DICT),
    "compose": (lambda: compose(mc.rwmh(), mc.hmc(5)), FLAT),
    "mixture": (lambda: mixture([mc.rwmh(), mc.mala()], [0.4, 0.6]), FLAT),
    "parallel_tempering": (lambda: parallel_tempering(mc.rwmh(), num_temps=4), FLAT),
    "categorical_gibbs": (lambda: categorical_gibbs(3), INT),
}

# A low-rank metric (issue 15; NUTS's default), whose factor is cut to the columns the whole
# batch needs, on a correlated target (and the default NUTS on the flat one): NOT bit-identical
# across chain counts, only to rounding (mcgen.run's docstring), so not in CASES (the test would
# fail); tools/low_rank_determinism.py runs them and reports.
LOW_RANK_CASES = {
    "nuts_default": (lambda: mc.nuts(max_tree_depth=6), FLAT),
    "nuts_low_rank": (lambda: mc.nuts(max_tree_depth=6, **LOW_RANK), CORRELATED),
    "hmc_low_rank": (lambda: mc.hmc(**LOW_RANK), CORRELATED),
    "mala_low_rank": (lambda: mc.mala(**LOW_RANK), CORRELATED),
}


def run(name, num_chains, **kwargs):
    """A short run (40 warmup steps: every adaptation phase; 12 draws) of case ``name``."""
    make, (logdensity_fn, init) = CASES[name] if name in CASES else LOW_RANK_CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mc.run_chains(
            logdensity_fn,
            make(),
            init=init,
            num_chains=num_chains,
            num_samples=12,
            num_warmup=40,
            seed=9,
            progress=False,
            warn=False,
            **kwargs,
        )


def kept_directions(result):
    """The number of directions each chain's final low-rank metric keeps (eigenvalue not 1)."""
    return (np.asarray(result.last_state.params.inverse_mass.vals) != 1.0).sum(-1)


def first_chains_equal(a, b, n):
    """Whether the first ``n`` chains of two results have identical draws and last states."""
    leaves = zip(jax.tree_util.tree_leaves(a.samples), jax.tree_util.tree_leaves(b.samples))
    same = all(np.array_equal(np.asarray(x)[:n], np.asarray(y)[:n]) for x, y in leaves)
    states = zip(jax.tree_util.tree_leaves(a.last_state), jax.tree_util.tree_leaves(b.last_state))
    for x, y in states:
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind in "fiub" and x.ndim and y.ndim:
            same &= np.array_equal(x[:n], y[:n])
    return bool(same)
