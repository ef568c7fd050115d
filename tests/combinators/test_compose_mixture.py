"""Tests of ``compose`` and ``mixture``.

* Optax-style equivalences: ``compose(k)`` is ``k`` and ``mixture([k], [1])`` is ``k``, bit for
  bit (positions, tunables, infos), in sampling and warmup; ``compose(a, b)`` is ``a`` then
  ``b`` applied by hand (to float rounding: XLA fuses the two programs differently).
* Invariance (``assert_invariance``) for ``compose`` and ``mixture``, including a composition
  with ``independent_mh``, whose cached proposal density would go stale if ``compose`` kept
  each kernel's state instead of rebuilding it at the shared position.
* Moments through ``run_chains`` with warmup (each kernel adapting its own tunables) within
  4 MCSE; the mixture picks kernels at the requested rates; bad weights raise ``ValueError``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import mcgen as mc
from mcgen import testing
from mcgen.combinators import compose, mixture

GAUSS = testing.correlated_gaussian(4, 0.7)


def _scan(kernel, key, num_steps=100):
    f = GAUSS.logdensity_fn

    def body(state, k):
        return kernel.step(k, state, f)

    return jax.jit(lambda k: jax.lax.scan(body, kernel.init(GAUSS.init, f), jax.random.split(k, num_steps)))(key)


def _warm(kernel, key, num_steps=60):
    f, w = GAUSS.logdensity_fn, kernel.warmup(num_steps)

    def run(k):
        ws = w.init(kernel.init(GAUSS.init, f))
        ws, _ = jax.lax.scan(lambda s, kk: (w.step(kk, s, f)[0], None), ws, jax.random.split(k, num_steps))
        return w.finalize(ws)

    return jax.jit(run)(key)


def _fold(kernel, i):
    """``kernel`` stepping with ``fold_in(key, i)``: kernel ``i``'s key inside the combinators."""

    def step(key, state, f):
        return kernel.step(jax.random.fold_in(key, i), state, f)

    def warmup(n):
        w = kernel.warmup(n)
        return mc.Warmup(w.init, lambda key, ws, f: w.step(jax.random.fold_in(key, i), ws, f), w.finalize)

    return mc.Kernel(kernel.init, step, warmup if kernel.warmup else None)


def _equal(a, b) -> bool:
    return jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, a, b))


def _kernel(name):
    if name == "nuts":
        return pytest.importorskip("mcgen.kernels.nuts").nuts(step_size=0.4)
    return {"rwmh": mc.rwmh(0.8), "adaptive_mh": mc.adaptive_mh()}[name]


@pytest.mark.parametrize(
    "wrap, name", [("compose", "rwmh"), ("compose", "adaptive_mh"), ("compose", "nuts"), ("mixture", "rwmh")]
)
def test_single_kernel_combinator_equals_kernel(wrap, name):
    kernel = _kernel(name)
    wrapped = compose(kernel) if wrap == "compose" else mixture([kernel], [1.0])
    key = jax.random.key(11)
    ref, ref_info = _scan(_fold(kernel, 0), key)
    got, info = _scan(wrapped, key)
    assert np.array_equal(ref.position, got.position)
    assert _equal(ref.params, got.params["0"]) and _equal(ref_info, info.kernels["0"])
    ref_w, got_w = _warm(_fold(kernel, 0), key), _warm(wrapped, key)
    assert np.array_equal(ref_w.position, got_w.position) and _equal(ref_w.params, got_w.params["0"])


def test_compose_of_two_is_one_then_the_other():
    a, b = mc.rwmh(0.3, adapt=False), mc.adaptive_mh()
    f = GAUSS.logdensity_fn

    def by_hand(position, key):
        sa, _ = a.step(jax.random.fold_in(key, 0), a.init(position, f), f)
        sb, _ = b.step(jax.random.fold_in(key, 1), b.init(sa.position, f), f)
        return sb.position, None

    key = jax.random.key(5)
    position, _ = jax.jit(lambda k: jax.lax.scan(by_hand, GAUSS.init, jax.random.split(k, 30)))(key)
    got, _ = _scan(compose(a, b), key, num_steps=30)
    # same moves; XLA may fuse the two programs differently, hence rounding-level differences
    np.testing.assert_allclose(position, got.position, rtol=1e-5, atol=1e-6)


_PROPOSAL = dist.MultivariateStudentT(5.0, GAUSS.mean, jnp.linalg.cholesky(1.5 * GAUSS.cov))


@pytest.mark.parametrize("case", ["compose_imh", "compose_named", "mixture"])
def test_invariance(case):
    kernel = {
        "compose_imh": compose(mc.rwmh(0.6, adapt=False), mc.independent_mh(_PROPOSAL)),
        "compose_named": compose({"local": mc.rwmh(0.3, adapt=False), "far": mc.rwmh(2.5, adapt=False)}),
        "mixture": mixture([mc.rwmh(0.6, adapt=False), mc.independent_mh(_PROPOSAL)], [0.3, 0.7]),
    }[case]
    testing.assert_invariance(kernel, GAUSS.logdensity_fn, GAUSS.sample, num_steps=4)


@pytest.mark.parametrize("case", ["compose", "mixture"])
def test_moments_with_warmup(case):
    kernel = (
        compose(mc.rwmh(), mc.adaptive_mh())
        if case == "compose"
        else mixture({"rw": mc.rwmh(), "am": mc.adaptive_mh()}, [0.25, 0.75])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        res = mc.run_chains(
            GAUSS.logdensity_fn,
            kernel,
            init=GAUSS.init,
            num_chains=4,
            num_samples=3000,
            num_warmup=1000,
            seed=2,
            progress=False,
            init_batched=False,
        )
    testing.assert_moments(res.samples, GAUSS.mean, GAUSS.var)
    if case == "mixture":  # the choice rate is Binomial(12000, 0.25): 4 sd = 0.016
        rate = res.stats["chosen.rw"].mean()
        assert abs(rate - 0.25) < 0.016, rate
        assert set(res.last_state.params) == {"rw", "am"}
    else:  # each kernel adapted its own tunables
        assert res.last_state.params["0"].scale.shape == (4,)
        assert res.last_state.params["1"].chol.shape == (4, 4, 4)


def test_bad_input_raises():
    k = mc.rwmh()
    for weights, match in [
        ([0.5, 0.6], "sum to 1"),
        ([1.2, -0.2], "non-negative"),
        ([1.0], "weights of shape"),
        ([np.nan, 1.0], "finite"),
    ]:
        with pytest.raises(ValueError, match=match):
            mixture([k, k], weights)
    with pytest.raises(ValueError, match="at least one"):
        mixture([], [])
    with pytest.raises(ValueError, match="at least one"):
        compose()
    with pytest.raises(TypeError, match="Kernel"):
        compose(k, lambda key, x: x)
    with pytest.raises(ValueError, match="distinct"):
        compose({"a": k, 0: k, "0": k})
    assert compose(k, k) is compose(k, k) and mixture([k, k], [0.5, 0.5]) is mixture([k, k], [0.5, 0.5])
