"""The fusion fence around structured log-densities: same numbers, and only where it pays.

A log-density of many equations runs behind a ``cond`` (see ``_integrators.fenced``) so XLA
does not duplicate it into wide consumers.  The fence must not change a single bit of a draw:
NUTS and MALA runs with every log-density fenced equal runs with none fenced.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen.kernels import _integrators
from mcgen.run import clear_cache

pytestmark = pytest.mark.exact_bits  # run under XLA's default optimization (dev.py test)


def _has_cond(jaxpr) -> bool:
    return any(eqn.primitive.name == "cond" for eqn in _integrators._equations(jaxpr))


def test_program_size_counts_nested_equations():
    def body(i, x):
        return jnp.sin(x) * 2.0 + 1.0  # 3 equations

    flat = jax.make_jaxpr(lambda x: jnp.sin(x) * 2.0 + 1.0)(1.0).jaxpr
    looped = jax.make_jaxpr(lambda x: jax.lax.fori_loop(0, 5, body, x))(1.0).jaxpr
    assert _integrators.program_size(flat) == 3
    assert _integrators.program_size(looped) >= 1 + 3  # the loop and the 3 equations of its body


def _value_and_grad(scale):
    return jax.value_and_grad(lambda q: -0.5 * jnp.sum((q / scale) ** 2) + jnp.sum(jnp.cos(q)))


@pytest.mark.parametrize("fenced", [True, False])
def test_fence_when_asked_and_bitwise_equal(monkeypatch, fenced):
    monkeypatch.setattr(_integrators, "FENCE", fenced)
    q = jnp.linspace(-1.0, 2.0, 7)
    scales = jnp.array([1.0, 2.0, 3.0])
    f = _integrators.fenced(_value_and_grad(2.0))
    assert _has_cond(jax.make_jaxpr(f)(q).jaxpr) == fenced
    np.testing.assert_array_equal(np.asarray(jax.jit(f)(q)[1]), np.asarray(_value_and_grad(2.0)(q)[1]))
    # batched position and batched closure (a value the log-density closes over)
    qs = jnp.stack([q, 2 * q, -q])
    got = jax.jit(jax.vmap(lambda s, x: _integrators.fenced(_value_and_grad(s))(x)))(scales, qs)
    want = jax.vmap(lambda s, x: _value_and_grad(s)(x))(scales, qs)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _logdensity(x):
    return -0.5 * jnp.sum((x / jnp.array([1.0, 2.0, 0.5])) ** 2) + 0.1 * jnp.sum(jnp.sin(x))


def _two_chains(kernel, seed):
    return mc.run_chains(
        _logdensity,
        kernel,
        init=jnp.zeros(3),
        num_chains=2,
        num_samples=60,
        num_warmup=60,
        seed=seed,
        progress=False,
        warn=False,
    )


# Stan's diagonal metric: the default low-rank one rounds differently when fusion changes (mcgen.run)
@pytest.mark.parametrize("kernel", [mc.nuts(mass="diag"), mc.mala()], ids=["nuts", "mala"])
def test_fenced_runs_draw_the_same_bits(monkeypatch, kernel):
    def run():
        return _two_chains(kernel, 4)

    monkeypatch.setattr(_integrators, "FENCE", False)
    plain = run()
    monkeypatch.setattr(_integrators, "FENCE", True)
    clear_cache()
    fenced = run()
    clear_cache()
    np.testing.assert_array_equal(plain.samples, fenced.samples)
    np.testing.assert_array_equal(plain.stats["num_grad_evals"], fenced.stats["num_grad_evals"])


def _solve_value_and_grad():
    chol = jnp.array([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [0.2, -0.3, 1.5]])
    return jax.value_and_grad(lambda q: -0.5 * jnp.sum(jax.scipy.linalg.solve_triangular(chol, q, lower=True) ** 2))


def test_fence_rule_spares_small_unfused_linear_algebra():
    q = jnp.linspace(-1.0, 2.0, 3)
    elementwise = jax.make_jaxpr(_value_and_grad(2.0))(q).jaxpr
    solve = jax.make_jaxpr(_solve_value_and_grad())(q).jaxpr
    assert _integrators.program_size(solve) < _integrators.FENCE_MIN_EQUATIONS
    assert _integrators.fence_pays(elementwise)
    assert not _integrators.fence_pays(solve)
    f = _integrators.fenced(_solve_value_and_grad())
    assert not _has_cond(jax.make_jaxpr(jax.vmap(f))(jnp.ones((4, 3))).jaxpr)
    assert _has_cond(jax.make_jaxpr(jax.vmap(_integrators.fenced(_value_and_grad(2.0))))(jnp.ones((4, 3))).jaxpr)


def test_fenced_leaf_decisions_draw_the_same_bits(monkeypatch):
    # Many chains of a small target compute a NUTS leaf's per-chain decisions behind a `cond`
    # and rewrite only the rows a leaf changes between a subtree's first and last leaves
    # (_trajectory._DECISIONS_FENCE_MIN_BATCH); forced on at 2 chains it must change nothing.
    from mcgen.kernels import _trajectory

    def run():
        return _two_chains(mc.nuts(), 5)

    monkeypatch.setattr(_trajectory, "_DECISIONS_FENCE_MIN_BATCH", 10**9)
    plain = run()
    monkeypatch.setattr(_trajectory, "_DECISIONS_FENCE_MIN_BATCH", 1)
    clear_cache()
    fenced = run()
    clear_cache()
    np.testing.assert_array_equal(plain.samples, fenced.samples)
    for name in ("energy", "num_grad_evals", "accept_prob", "tree_depth", "is_divergent"):
        np.testing.assert_array_equal(plain.stats[name], fenced.stats[name], err_msg=name)


def _student4(x):  # heavy tails: trees of 1 to 1023 leaves; elementwise, 4 coordinates (see test_determinism)
    return -2.5 * jnp.sum(jnp.log1p((x / jnp.array([0.5, 1.0, 2.0, 3.0])) ** 2 / 4.0))


def _student_chains(num_chains, gather):
    return mc.run_chains(
        _student4,
        mc.nuts(step_size=0.6, adapt=False, gather=gather),
        init=jnp.zeros(4),
        num_chains=num_chains,
        num_samples=30,
        num_warmup=0,
        seed=11,
        progress=False,
        warn=False,
    )


def test_gathering_growing_trees_draws_the_same_bits():
    # With `gather` the NUTS loop gathers the trees still growing into smaller batches
    # (stages of 32 and 8 chains here): the draws must be those of the one-stage loop, and
    # chain 0 and 1's those of 2 chains alone.
    from mcgen.kernels import _trajectory

    assert _trajectory._stage_sizes(32, 10, True) == [32, 8]
    assert _trajectory._stage_sizes(32, 10, None) == [32]  # the default starts at 64 chains
    staged = _student_chains(32, True)
    leaves = np.asarray(staged.stats["num_grad_evals"])
    # some draws leave at most 8 trees growing for their last iterations
    assert np.any(np.sum(leaves >= leaves.max(axis=0) / 2, axis=0) <= 8)
    one_stage = _student_chains(32, False)
    alone = _student_chains(2, True)
    np.testing.assert_array_equal(staged.samples, one_stage.samples)
    for name in ("energy", "num_grad_evals", "accept_prob", "tree_depth", "is_divergent"):
        np.testing.assert_array_equal(staged.stats[name], one_stage.stats[name], err_msg=name)
    np.testing.assert_array_equal(staged.samples[:2], alone.samples)


def test_gathering_growing_trees_gathers_batched_closures():
    # A log-density closing over per-chain values (a Gibbs block's other blocks): the stages
    # (128, 32 and 8 chains, the default on the CPU) gather them with the trees.  One
    # transition of 128 chains with scales 0.05 to 20, staged against one stage, bit for bit;
    # a log-density above _COMPACT_MAX_EQUATIONS runs in one stage.  At 128 chains of 10
    # coordinates the inner products' split sums (_rowdots) take two pieces and at 32 or 8
    # one: every stage must keep the whole batch's.
    from mcgen.kernels import _trajectory

    n, d = 128, 10
    assert jax.default_backend() == "cpu"
    assert _trajectory._stage_sizes(n, 10) == [128, 32, 8]
    assert _trajectory._stage_sizes(n, _trajectory._COMPACT_MAX_EQUATIONS + 1) == [128]
    assert _trajectory._stage_sizes(n, 10, False) == [128]
    scales = jnp.exp(jnp.linspace(-3.0, 3.0, n))
    q = jax.random.normal(jax.random.key(0), (n, d))

    def transition(gather):
        def one(key, x, scale):
            f = jax.value_and_grad(lambda y: -0.5 * jnp.sum((y / scale) ** 2))
            ld, g = f(x)
            return _trajectory.build_tree(key, f, jnp.ones(d), x, ld, g, 0.5, 10, 1000.0, "trapezoid", gather)

        return jax.jit(jax.vmap(one))(keys, q, scales)

    keys = jax.random.split(jax.random.key(1), n)
    staged = transition(None)
    leaves = np.asarray(staged.num_leaves)
    assert leaves.min() == 1 and np.sum(leaves >= 64) <= 8 < np.sum(leaves >= 8)
    one_stage = transition(False)
    for a, b, name in zip(staged, one_stage, staged._fields):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


def test_gather_must_be_a_flag():
    with pytest.raises(ValueError, match="gather must be None, True or False"):
        mc.nuts(gather="yes")
