"""Parallel tempering: statistics on multimodal targets, log Z, exact invariance, nesting.

Bounds are in standard errors with fixed seeds.  The invariance test checks the *joint* of all
replicas (every temperature started at exact draws of its tempered target), so a wrong swap
ratio or a stale cached log-density after a swap fails it (see the planted-bug notes in the
report / docs/tempering.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcgen as mc
from mcgen.combinators.tempering import PriorLikelihood, init_replicas, parallel_tempering

RUN = dict(progress=False, warn=False)
BIMODAL = mc.testing.bimodal_1d(3.0)

# 16 equal Gaussians (sd 0.5) on a 4 x 4 grid with spacing 10, centred at the origin
_GRID = jnp.arange(4, dtype=jnp.float32) * 10.0 - 15.0
MODES = jnp.stack(jnp.meshgrid(_GRID, _GRID, indexing="ij"), -1).reshape(-1, 2)


def grid_logdensity(x):
    return jax.nn.logsumexp(-0.5 * jnp.sum((x - MODES) ** 2, -1) / 0.25)


def wide_reference(x):  # normalized N(0, 15^2 I)
    return jnp.sum(-0.5 * (x / 15.0) ** 2 - jnp.log(15.0 * jnp.sqrt(2.0 * jnp.pi)))


def mode_mass(draws) -> np.ndarray:
    x = np.asarray(draws).reshape(-1, 2)
    label = np.argmin(((x[:, None, :] - np.asarray(MODES)) ** 2).sum(-1), 1)
    return np.bincount(label, minlength=16) / label.size


def test_bimodal_moments_and_stats():
    pt = parallel_tempering(mc.rwmh(), num_temps=6)
    res = mc.run_chains(BIMODAL.logdensity_fn, pt, init=jnp.zeros(()), num_chains=4, num_samples=2000, seed=1, **RUN)
    mc.testing.assert_moments(res.samples, BIMODAL.mean, BIMODAL.var)
    assert res.stats["swap_accept_prob"].shape == (4, 2000, 5)
    assert np.all(res.stats["round_trips"][:, -1] > 50)
    assert np.all(np.isnan(res.stats["log_normalizer"]))  # no reference: no log Z
    betas = np.asarray(res.last_state.params.betas)
    assert betas.shape == (4, 6) and np.all(np.diff(betas, axis=1) > 0) and np.all(betas[:, -1] == 1.0)


def test_sixteen_modes_equal_mass_where_rwmh_fails():
    pt = parallel_tempering(mc.rwmh(), num_temps=12, reference=wide_reference)
    res = mc.run_chains(
        grid_logdensity, pt, init=jnp.zeros(2), num_chains=4, num_samples=4000, num_warmup=2000, seed=0, **RUN
    )
    mass = mode_mass(res.samples)
    assert np.max(np.abs(mass - 1 / 16)) < 0.03, mass
    # the same check on single-chain random-walk Metropolis: stuck in its starting mode
    rw = mc.run_chains(
        grid_logdensity,
        mc.rwmh(),
        init=jnp.zeros(2) - 5.0,
        num_chains=1,
        num_samples=6000,
        num_warmup=2000,
        seed=0,
        **RUN,
    )
    assert np.max(np.abs(mode_mass(rw.samples) - 1 / 16)) > 0.03


def _z_bimodal_with_prior(prior_sd: float) -> float:
    # Z = int N(x; 0, s^2) (exp(-(x-3)^2/2) + exp(-(x+3)^2/2)) dx = 2 sqrt(2 pi) N(3; 0, s^2 + 1)
    v = prior_sd**2 + 1.0
    return float(np.log(2.0 * np.sqrt(2 * np.pi) * np.exp(-4.5 / v) / np.sqrt(2 * np.pi * v)))


@pytest.mark.parametrize("form", ["reference", "prior_likelihood"])
def test_log_normalizer_within_three_standard_errors(form):
    def log_prior(x):
        return -0.5 * (x / 5.0) ** 2 - jnp.log(5.0 * jnp.sqrt(2.0 * jnp.pi))

    if form == "reference":  # unnormalized mixture, Z = 2 sqrt(2 pi)
        target, pt, truth = (
            BIMODAL.logdensity_fn,
            parallel_tempering(mc.rwmh(), 6, reference=log_prior),
            float(np.log(2 * np.sqrt(2 * np.pi))),
        )
    else:
        target, pt, truth = (
            PriorLikelihood(log_prior, BIMODAL.logdensity_fn),
            parallel_tempering(mc.rwmh(), 6),
            _z_bimodal_with_prior(5.0),
        )
    res = mc.run_chains(target, pt, init=jnp.zeros(()), num_chains=8, num_samples=1500, seed=2, **RUN)
    per_ensemble = res.stats["log_normalizer"][:, -1]
    se = per_ensemble.std(ddof=1) / np.sqrt(per_ensemble.size)
    assert abs(per_ensemble.mean() - truth) < 3 * se, (per_ensemble.mean(), truth, se)
    assert se < 0.05  # the check has power


STEPS = 20


@pytest.mark.parametrize("swap", ["nonreversible", "reversible"])
def test_exact_invariance_of_all_replicas(swap):
    """Replicas start at exact draws of pi^beta for N(m, diag(s^2)); after ``STEPS`` steps of PT
    (local moves + swaps) every temperature must still be exactly distributed."""
    betas = jnp.array([0.05, 0.2, 0.5, 1.0], jnp.float32)
    mean, sd = jnp.array([1.0, -2.0], jnp.float32), jnp.array([1.0, 3.0], jnp.float32)

    def logdensity(x):
        return -0.5 * jnp.sum(((x - mean) / sd) ** 2)

    def exact(key, n):  # (n, N, 2): replica k ~ N(m, s^2 / beta_k)
        z = jax.random.normal(key, (n, betas.shape[0], 2), jnp.float32)
        return mean + z * sd / jnp.sqrt(betas)[:, None]

    inner = mc.rwmh(1.0, adapt=False)
    pt = parallel_tempering(inner, betas=tuple(float(b) for b in betas), swap=swap, return_all=True)

    def start(positions, fn):  # each replica at its own exact draw, proposal scale ~ its sd
        state = init_replicas(inner, positions, fn, betas, return_all=True)
        scales = 2.0 / jnp.sqrt(betas)
        return state._replace(replicas=state.replicas._replace(params=state.replicas.params._replace(scale=scales)))

    tested = mc.Kernel(start, pt.step)
    mc.testing.assert_invariance(tested, logdensity, exact, num_chains=4000, num_steps=STEPS, seed=0)


def test_nonreversible_round_trips_beat_reversible():
    rates = {}
    for swap in ("nonreversible", "reversible"):
        pt = parallel_tempering(mc.rwmh(), num_temps=16, swap=swap, reference=wide_reference)
        res = mc.run_chains(
            grid_logdensity,
            pt,
            init=jnp.zeros(2),
            num_chains=2,
            num_samples=1000,
            init_batched=False,
            num_warmup=500,
            seed=4,
            **RUN,
        )
        rates[swap] = res.stats["round_trips"][:, -1].astype(float)
    assert rates["nonreversible"].mean() > 1.5 * rates["reversible"].mean(), rates


def test_settings_are_validated():
    with pytest.raises(ValueError, match="num_temps"):
        parallel_tempering(mc.rwmh(), num_temps=1)
    with pytest.raises(ValueError, match="increasing"):
        parallel_tempering(mc.rwmh(), betas=(0.1, 0.5, 0.9))
    with pytest.raises(ValueError, match="increasing"):
        parallel_tempering(mc.rwmh(), betas=(0.5, 0.2, 1.0))
    with pytest.raises(ValueError, match="swap"):
        parallel_tempering(mc.rwmh(), swap="sideways")
    with pytest.raises(ValueError, match="num_temps"):
        parallel_tempering(mc.rwmh(), num_temps=3, betas=(0.1, 1.0))
    with pytest.raises(ValueError, match="flat density"):
        parallel_tempering(mc.rwmh(), betas=(0.0, 0.5, 1.0)).init(jnp.zeros(()), BIMODAL.logdensity_fn)


def test_nests_nuts():
    pytest.importorskip("mcgen.kernels.nuts")
    from mcgen.kernels.nuts import nuts

    pt = parallel_tempering(nuts(max_tree_depth=5), num_temps=5)
    res = mc.run_chains(
        BIMODAL.logdensity_fn, pt, init=jnp.zeros(()), num_chains=4, num_samples=600, num_warmup=400, seed=5, **RUN
    )
    mc.testing.assert_moments(res.samples, BIMODAL.mean, BIMODAL.var)
    assert np.all(np.isfinite(res.last_state.replicas.logdensity_grad))


def test_nests_gibbs():
    pytest.importorskip("mcgen.combinators.gibbs")
    from mcgen.combinators.gibbs import gibbs

    def logdensity(p):  # two independent bimodal coordinates
        return BIMODAL.logdensity_fn(p["a"]) + BIMODAL.logdensity_fn(p["b"])

    pt = parallel_tempering(gibbs({"a": mc.rwmh(), "b": mc.rwmh()}), num_temps=6)
    res = mc.run_chains(
        logdensity, pt, init={"a": jnp.zeros(()), "b": jnp.zeros(())}, num_chains=4, num_samples=1500, seed=6, **RUN
    )
    truth = {"a": BIMODAL.mean, "b": BIMODAL.mean}
    mc.testing.assert_moments(res.samples, truth, {"a": BIMODAL.var, "b": BIMODAL.var})
