"""Statistical and structural tests of ``gibbs``.

* Bivariate Gaussian with correlation rho in {0, 0.5, 0.9, 0.99}, exact conditionals
  ``x | y ~ N(rho y, 1 - rho^2)``: means, variances and the cross moment E[xy] = rho within
  4 MCSE (ESS-based), ESS falling with rho as theory says (lag-1 autocorrelation rho^2 per
  sweep), and a block update of (x, y) restoring ESS at rho = 0.99.  The cross moment is what
  catches a "Jacobi" sweep (both blocks conditioned on the old position), which keeps the
  marginals right.
* Invariance (``mcgen.testing.assert_invariance``: 4000 independent chains from exact draws)
  for exact, Metropolis-within-Gibbs, random-scan and nested Gibbs.  (A stale cached
  log-density barely biases this Gaussian; test_changepoint.py, where a discrete block moves
  the continuous block's conditional a lot, is where the stale-cache trap shows.)
* Optax-style equivalence: a one-block ``gibbs`` is its inner kernel, bit for bit, in sampling
  and in warmup.
* Each kernel block adapts its own tunables; bad input raises ``ValueError``.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.combinators import compose, gibbs
from mcgen.diagnostics import az

RHOS = (0.0, 0.5, 0.9, 0.99)
NUM_CHAINS, NUM_SAMPLES = 8, 5000


@functools.lru_cache(maxsize=None)
def bivariate(rho: float):
    """Log-density and exact conditional samplers of N(0, [[1, rho], [rho, 1]]) on {"x", "y"}."""
    sd = float(np.sqrt(1.0 - rho**2))

    def logdensity(p):
        return -0.5 * (p["x"] ** 2 - 2.0 * rho * p["x"] * p["y"] + p["y"] ** 2) / (1.0 - rho**2)

    def draw_x(key, p):
        return rho * p["y"] + sd * jax.random.normal(key)

    def draw_y(key, p):
        return rho * p["x"] + sd * jax.random.normal(key)

    def draw_xy(key, p):
        del p
        z1, z2 = jax.random.normal(key, (2,))
        return {"x": z1, "y": rho * z1 + sd * z2}

    return logdensity, draw_x, draw_y, draw_xy


def _run(logdensity, kernel, init, seed=0, **kw):
    kw = {"num_chains": NUM_CHAINS, "num_samples": NUM_SAMPLES, "num_warmup": 200, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        return mc.run_chains(logdensity, kernel, init=init, seed=seed, progress=False, **kw)


INIT = {"x": jnp.zeros(()), "y": jnp.zeros(())}


@functools.lru_cache(maxsize=None)
def bivariate_run(rho: float, block: bool = False):
    logdensity, draw_x, draw_y, draw_xy = bivariate(rho)
    kernel = gibbs({("x", "y"): draw_xy}) if block else gibbs({"x": draw_x, "y": draw_y})
    res = _run(logdensity, kernel, INIT, seed=3)
    x, y = res.samples["x"], res.samples["y"]
    draws = {"x": x, "y": y, "xy": x * y}
    ess = float(az.ess(np.asarray(x)))
    return draws, ess


def _assert_bivariate_moments(draws, rho):
    truth_mean = {"x": 0.0, "xy": rho, "y": 0.0}
    truth_var = {"x": 1.0, "xy": 1.0 + rho**2, "y": 1.0}  # Var(xy) = 1 + rho^2 (Isserlis)
    testing.assert_moments(draws, truth_mean, truth_var, z=4.0)


@pytest.mark.parametrize("rho", RHOS)
def test_bivariate_exact_conditionals_moments(rho):
    draws, ess = bivariate_run(rho)
    _assert_bivariate_moments(draws, rho)
    # x_t is AR(1) in the sweeps with coefficient rho^2: ESS/N = (1 - rho^2)/(1 + rho^2)
    n = NUM_CHAINS * NUM_SAMPLES
    theory = n * (1 - rho**2) / (1 + rho**2)
    assert 0.6 * theory < ess < 1.6 * max(theory, 0.5 * n), (rho, ess, theory)


def test_ess_falls_with_rho_and_blocking_restores_it():
    ess = [bivariate_run(rho)[1] for rho in RHOS]
    assert all(a > b for a, b in zip(ess, ess[1:])), ess
    assert ess[-1] < 0.05 * ess[0], ess
    draws, ess_block = bivariate_run(0.99, block=True)
    _assert_bivariate_moments(draws, 0.99)
    assert ess_block > 0.5 * NUM_CHAINS * NUM_SAMPLES > 20 * ess[-1], (ess_block, ess[-1])


# ------------------------------------------------------------------ invariance


def _bivariate_sampler(rho):
    chol = jnp.linalg.cholesky(jnp.array([[1.0, rho], [rho, 1.0]]))

    def sample(key, n):
        z = jax.random.normal(key, (n, 2)) @ chol.T
        return {"x": z[:, 0], "y": z[:, 1]}

    return sample


def test_invariance_exact_and_random_scan():
    logdensity, draw_x, draw_y, _ = bivariate(0.9)
    for scan in ("systematic", "random"):
        testing.assert_invariance(
            gibbs({"x": draw_x, "y": draw_y}, scan=scan), logdensity, _bivariate_sampler(0.9), num_steps=3
        )


# A correlated 3-d Gaussian split into a vector block "a" (2,) and a scalar block "b".
_COV = np.array([[1.0, 0.6, -0.5], [0.6, 2.0, 0.7], [-0.5, 0.7, 1.5]])
_PREC = jnp.asarray(np.linalg.inv(_COV), jnp.float32)
_MEAN = jnp.array([0.5, -1.0, 1.0])


def dict_logdensity(p):
    r = jnp.concatenate([p["a"], p["b"][None]]) - _MEAN
    return -0.5 * r @ (_PREC @ r)


def dict_sampler(key, n):
    z = testing.exact_gaussian_sampler(_MEAN, _COV)(key, n)
    return {"a": z[:, :2], "b": z[:, 2]}


def test_invariance_metropolis_within_gibbs():
    kernel = gibbs({"a": mc.rwmh(0.8, adapt=False), "b": mc.rwmh(1.0, adapt=False)})
    testing.assert_invariance(kernel, dict_logdensity, dict_sampler, num_steps=8)


def test_invariance_nested_combinators():
    inner = gibbs({"a": mc.rwmh(0.8, adapt=False), "b": mc.adaptive_mh()})
    kernel = compose(
        gibbs({("a", "b"): inner}), gibbs({"b": compose(mc.rwmh(0.5, adapt=False), mc.rwmh(2.0, adapt=False))})
    )
    testing.assert_invariance(kernel, dict_logdensity, dict_sampler, num_steps=4)


def test_metropolis_within_gibbs_moments_and_own_tunables():
    # "small" has sd 0.1 and "large" sd 10: each block's warmup finds its own scale
    def logdensity(p):
        return -0.5 * (p["small"] / 0.1) ** 2 - 0.5 * (p["large"] / 10.0) ** 2

    kernel = gibbs({"small": mc.rwmh(), "large": mc.rwmh()})
    res = _run(
        logdensity,
        kernel,
        {"small": jnp.zeros(()), "large": jnp.zeros(())},
        num_chains=4,
        num_samples=2000,
        num_warmup=1000,
    )
    scales = res.last_state.params
    ratio = np.asarray(scales["large"].scale) / np.asarray(scales["small"].scale)
    assert np.all((ratio > 50) & (ratio < 200)), ratio
    testing.assert_moments(res.samples, {"large": 0.0, "small": 0.0}, {"large": 100.0, "small": 0.01})
    assert "blocks.small.accept_prob" in res.stats


# ------------------------------------------------------------------ equivalence


def _scan(kernel, logdensity, position, key, num_steps=100):
    def body(state, k):
        return kernel.step(k, state, logdensity)

    return jax.jit(lambda p, k: jax.lax.scan(body, kernel.init(p, logdensity), jax.random.split(k, num_steps)))(
        position, key
    )


def _warm(kernel, logdensity, position, key, num_steps=60, fold=False):
    w = kernel.warmup(num_steps)

    def body(ws, k):
        return w.step(jax.random.fold_in(k, 0) if fold else k, ws, logdensity)[0], None

    def run(p, k):
        ws = w.init(kernel.init(p, logdensity))
        return w.finalize(jax.lax.scan(body, ws, jax.random.split(k, num_steps))[0])

    return jax.jit(run)(position, key)


def _fold0(kernel):
    """``kernel`` stepping with ``fold_in(key, 0)``: block 0's key inside ``gibbs``."""

    def step(key, state, logdensity):
        return kernel.step(jax.random.fold_in(key, 0), state, logdensity)

    return mc.Kernel(kernel.init, step, kernel.warmup)


@pytest.mark.parametrize("name", ["rwmh", "adaptive_mh", "nuts"])
def test_one_block_gibbs_equals_its_kernel(name):
    kernel = {
        "rwmh": lambda: mc.rwmh(0.7),
        "adaptive_mh": mc.adaptive_mh,
        "nuts": lambda: pytest.importorskip("mcgen.kernels.nuts").nuts(step_size=0.4),
    }[name]()
    target = testing.correlated_gaussian(3, 0.5)
    key = jax.random.key(7)
    ref, ref_info = _scan(_fold0(kernel), target.logdensity_fn, target.init, key)
    one, info = _scan(gibbs({"theta": kernel}), lambda p: target.logdensity_fn(p["theta"]), {"theta": target.init}, key)
    assert np.array_equal(ref.position, one.position["theta"])
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, ref.params, one.params["theta"]))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, ref_info, info.blocks["theta"]))
    if name == "nuts":  # one NUTS warmup comparison (compose's test) is enough compile time
        return
    # warmup: the block adapts exactly as the kernel alone does
    ref_w = _warm(kernel, target.logdensity_fn, target.init, key, fold=True)
    one_w = _warm(gibbs({"theta": kernel}), lambda p: target.logdensity_fn(p["theta"]), {"theta": target.init}, key)
    assert np.array_equal(ref_w.position, one_w.position["theta"])
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, ref_w.params, one_w.params["theta"]))


# ------------------------------------------------------------------ input checks


def test_bad_input_raises_value_error():
    logdensity, draw_x, draw_y, _ = bivariate(0.5)
    with pytest.raises(ValueError, match="non-empty"):
        gibbs({})
    with pytest.raises(ValueError, match="scan"):
        gibbs({"x": draw_x}, scan="sideways")
    with pytest.raises(ValueError, match="distinct"):
        gibbs({("x", "x"): draw_x})
    with pytest.raises(TypeError, match="Kernel or a function"):
        gibbs({"x": 3.0})
    with pytest.raises(ValueError, match="unknown block key"):
        gibbs({"x": draw_x, "z": draw_y}).init(INIT, logdensity)
    with pytest.raises(ValueError, match="dict"):
        gibbs({"x": draw_x}).init(jnp.zeros(2), lambda v: -jnp.sum(v**2))
    with pytest.raises(ValueError, match="shape"):
        gibbs({"x": lambda key, p: jnp.zeros(3)}).step(
            jax.random.key(0), gibbs({"x": draw_x}).init(INIT, logdensity), logdensity
        )
