"""Simulation-based calibration (Talts et al. 2018): does a sampler recover the prior?

Draw :math:`\\tilde\\theta \\sim p(\\theta)` and data :math:`\\tilde y \\sim p(y \\mid \\tilde\\theta)`,
then ``L`` posterior draws :math:`\\theta_1, \\dots, \\theta_L` given :math:`\\tilde y`.  If the
sampler is exact, :math:`\\tilde\\theta` is just one more draw from that posterior, so for any
scalar :math:`f` the rank

.. math::

    r = \\#\\{\\ell : f(\\theta_\\ell) < f(\\tilde\\theta)\\} \\in \\{0, \\dots, L\\}

is uniform over simulations.  A sampler whose posterior is too narrow gives U-shaped ranks, one
too wide a hump, a biased one a slope.  The draws must be nearly independent (thin the chain
to about its ESS): autocorrelated draws give non-uniform ranks even for a correct kernel.

:func:`sbc` runs every simulation as one chain of a single compiled program (``vmap`` over
simulations of warmup and thinned sampling, the data passed as an array, so the log-density
closure ``lambda theta: logdensity(theta, y)`` is built inside the traced code), then tests the
ranks of each coordinate for uniformity with a chi-square test on equal bins of ranks,
Bonferroni over coordinates (:func:`rank_uniformity`): a correct sampler fails with
probability at most about ``alpha``.  ``SBCReport.plot`` draws ArviZ's ECDF-difference plot
with simultaneous confidence bands.

Three kinds of models and samplers plug in:

* a Markov kernel on a model given as a triple ``(prior_sample, simulate, logdensity)``:
  :func:`sbc`;
* a NumPyro model: :func:`numpyro_sbc_model` turns it into that triple (positions are the
  unconstrained latent sites, as :func:`mcgen.from_numpyro` samples them), so
  ``sbc(kernel, *numpyro_sbc_model(model, ..., observed="y"))``;
* a direct sampler (rejection, importance sampling, likelihood weighting, a generative model)
  that maps data to independent draws or to a :class:`mcgen.direct.WeightedSamples`:
  :func:`sbc_direct`.  Weighted draws are ranked through their self-normalized weighted CDF
  (no resampling noise), :math:`u = \\sum_i \\bar w_i [x_i < \\tilde x] + V \\sum_i \\bar w_i
  [x_i = \\tilde x]` with :math:`V \\sim U(0, 1)`, and ``r = floor((L + 1) u)``: uniform on
  ``0..L`` when the weighted draws are exact up to their Monte-Carlo error (keep the effective
  sample size large against ``L``).  :func:`bayesnet_sbc_model` gives the pieces for a
  Bayesian network's likelihood weighting.

Discrete parameters tie with their draws; ties are broken uniformly at random (the rank of the
truth among ``L + 1`` exchangeable values), which keeps the ranks uniform.

References
----------
Talts, S., Betancourt, M., Simpson, D., Vehtari, A. and Gelman, A. (2018). Validating Bayesian
inference algorithms with simulation-based calibration. arXiv:1804.06788.
Säilynoja, T., Bürkner, P.-C. and Vehtari, A. (2022). Graphical test for discrete uniformity
and its applications in goodness-of-fit evaluation and multiple sample comparison. Stat. Comput.

Example
-------
>>> import jax, jax.numpy as jnp, mcgen as mc
>>> prior = lambda key: jax.random.normal(key, (1,))                  # theta ~ N(0, 1)
>>> simulate = lambda key, th: th + jax.random.normal(key, (5,))      # y_i ~ N(theta, 1)
>>> logdensity = lambda th, y: -0.5 * jnp.sum(th**2) - 0.5 * jnp.sum((y - th) ** 2)
>>> rep = mc.testing.sbc(mc.rwmh(), prior, simulate, logdensity, num_simulations=100, thin=5)
>>> rep.passed                                                         # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy import stats as sps

from mcgen.testing._report import BonferroniDecision
from mcgen.types import Kernel, no_warmup

__all__ = [
    "DirectSBCModel",
    "SBCModel",
    "SBCReport",
    "bayesnet_sbc_model",
    "numpyro_sbc_model",
    "rank_uniformity",
    "sbc",
    "sbc_direct",
]


def _num_bins(num_ranks: int, num_simulations: int, requested: int | None) -> int:
    """Equal bins of ranks: a divisor of ``num_ranks`` with at least 5 expected per bin."""
    if requested is not None:
        if num_ranks % requested:
            raise ValueError(f"num_bins={requested} must divide the number of possible ranks {num_ranks}")
        return requested
    divisors = [b for b in range(2, min(num_ranks, 50) + 1) if num_ranks % b == 0 and num_simulations / b >= 5]
    if not divisors:
        raise ValueError(f"too few simulations ({num_simulations}) for a rank test with {num_ranks} ranks")
    return max(divisors)


def rank_uniformity(ranks: np.ndarray, num_draws: int, num_bins: int | None = None) -> np.ndarray:
    """Chi-square p-value of uniformity over ``{0, ..., num_draws}`` for each column of ``ranks``.

    Ranks are grouped into ``num_bins`` equal bins (default: the largest divisor of
    ``num_draws + 1`` up to 50 with at least 5 simulations expected per bin).

    Parameters
    ----------
    ranks
        Integer array ``(num_simulations, d)``.
    num_draws
        Posterior draws per simulation ``L`` (ranks lie in ``0..L``).

    Returns
    -------
    np.ndarray
        ``(d,)`` p-values.

    Example
    -------
    >>> r = np.random.default_rng(0).integers(0, 100, (200, 3))
    >>> rank_uniformity(r, 99).shape
    (3,)
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2:
        raise ValueError(f"ranks must be (num_simulations, d), got shape {ranks.shape}")
    if ranks.min() < 0 or ranks.max() > num_draws:
        raise ValueError(f"ranks must lie in 0..{num_draws}")
    n = ranks.shape[0]
    bins = _num_bins(num_draws + 1, n, num_bins)
    width = (num_draws + 1) // bins
    counts = np.stack([np.bincount(ranks[:, j] // width, minlength=bins) for j in range(ranks.shape[1])])
    return sps.chisquare(counts, axis=1).pvalue


@dataclasses.dataclass
class SBCReport(BonferroniDecision):
    """Ranks of the true parameters among posterior draws, and their uniformity test."""

    ranks: np.ndarray  # (num_simulations, d) in 0..num_draws
    num_draws: int
    p_values: np.ndarray  # (d,) chi-square uniformity p-values
    alpha: float
    names: list

    def __str__(self) -> str:
        worst = self.names[int(np.argmin(self.p_values))]
        return (
            f"SBC: {self.ranks.shape[0]} simulations, {self.num_draws} draws each; adjusted p = "
            f"{self.p_value:.3g} (alpha {self.alpha}); least uniform: {worst}; failing: {self.failing}"
        )

    def plot(self, coordinate: int = 0, ax=None):
        """ArviZ's ECDF-difference plot of one coordinate's scaled ranks, with simultaneous bands."""
        import arviz as az

        u = (self.ranks[:, coordinate] + 0.5) / (self.num_draws + 1)
        return az.plot_ecdf(u, cdf=sps.uniform().cdf, difference=True, confidence_bands=True, ax=ax)


@functools.lru_cache(maxsize=32)
def _runner(
    kernel: Kernel,
    prior_sample: Callable,
    simulate: Callable,
    logdensity: Callable,
    num_warmup: int,
    num_draws: int,
    thin: int,
):
    """Compiled ``keys -> (true flat params, flat draws)`` over a batch of simulations."""
    warmup = (kernel.warmup or no_warmup(kernel))(num_warmup) if num_warmup > 0 else None

    def one(key):
        key_prior, key_data, key_init, key_warm, key_sample = jax.random.split(key, 5)
        truth = prior_sample(key_prior)
        data = simulate(key_data, truth)

        def target(theta):
            return logdensity(theta, data)

        state = kernel.init(prior_sample(key_init), target)  # start at an independent prior draw
        if warmup is not None:
            w = warmup

            def warm_step(ws, k):
                return w.step(k, ws, target)[0], None

            ws, _ = jax.lax.scan(warm_step, w.init(state), jax.random.split(key_warm, num_warmup))
            state = w.finalize(ws)

        def draw(st, k):
            st, _ = jax.lax.scan(lambda s, kk: (kernel.step(kk, s, target)[0], None), st, jax.random.split(k, thin))
            return st, ravel_pytree(st.position)[0]

        _, draws = jax.lax.scan(draw, state, jax.random.split(key_sample, num_draws))
        return ravel_pytree(truth)[0], draws

    return jax.jit(jax.vmap(one))


def sbc(
    kernel: Kernel,
    prior_sample: Callable[[jax.Array], Any],
    simulate: Callable[[jax.Array, Any], Any],
    logdensity: Callable[[Any, Any], jax.Array],
    *,
    num_simulations: int = 200,
    num_draws: int = 99,
    thin: int = 10,
    num_warmup: int = 200,
    seed: int = 0,
    alpha: float = 1e-3,
    num_bins: int | None = None,
    names: list | None = None,
) -> SBCReport:
    """Simulation-based calibration of ``kernel`` on a model given as a triple.

    Parameters
    ----------
    kernel
        Any mcgen kernel (its warmup adapts per simulation).
    prior_sample
        ``prior_sample(key) -> theta``, a pytree in the space the kernel samples
        (unconstrained: give ``log sigma``, not ``sigma``).
    simulate
        ``simulate(key, theta) -> data`` (an array pytree of fixed shape).
    logdensity
        ``logdensity(theta, data) -> scalar``: log prior plus log likelihood, up to a constant.
    num_simulations, num_draws, thin, num_warmup
        Simulated data sets (run as parallel chains), kept draws ``L`` per data set (ranks lie
        in ``0..L``; ``L + 1`` should have many divisors, e.g. 99), steps between kept draws
        (make it about the autocorrelation time), warmup steps per data set.
    seed, alpha
        Seed of everything; level of the Bonferroni rank test over coordinates.
    num_bins
        Bins of the chi-square test (default: see :func:`rank_uniformity`).
    names
        Labels of the flattened coordinates (default ``theta[i]``).

    Returns
    -------
    SBCReport
        ``ranks``, per-coordinate ``p_values``, ``passed``, ``failing`` and ``plot()``.
    """
    for name, value in (("num_simulations", num_simulations), ("num_draws", num_draws), ("thin", thin)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"sbc: {name} must be a positive integer, got {value!r}")
    if not isinstance(num_warmup, (int, np.integer)) or num_warmup < 0:
        raise ValueError(f"sbc: num_warmup must be an integer >= 0, got {num_warmup!r}")
    run = _runner(kernel, prior_sample, simulate, logdensity, int(num_warmup), int(num_draws), int(thin))
    keys = jax.random.split(jax.random.key(seed), num_simulations)
    truth, draws = run(keys)
    truth, draws = np.asarray(truth), np.asarray(draws)  # (S, d), (S, L, d)
    ranks = _ranks(truth, draws, np.random.default_rng(seed))
    names = _names(names, jax.eval_shape(prior_sample, jax.random.key(0)), truth.shape[1], "sbc")
    return SBCReport(ranks, int(num_draws), rank_uniformity(ranks, num_draws, num_bins), alpha, names)


def _ranks(
    truth: np.ndarray,
    draws: np.ndarray,
    rng: np.random.Generator,
    log_weights: np.ndarray | None = None,
    num_draws: int | None = None,
) -> np.ndarray:
    """Ranks ``(S, d)`` of ``truth (S, d)`` among ``draws (S, N, d)``, ties broken at random.

    Unweighted: ``#{draws < truth} + U{0..#{draws == truth}}`` in ``0..N``.  Weighted
    (``log_weights (S, N)``): the self-normalized weighted CDF at the truth, ties randomized,
    scaled to ``0..num_draws``.
    """
    below = draws < truth[:, None, :]
    equal = draws == truth[:, None, :]
    if log_weights is None:
        return below.sum(1) + rng.integers(0, equal.sum(1) + 1)
    log_weights = np.asarray(log_weights, np.float64)
    top = np.max(log_weights, axis=1, keepdims=True)
    bad = ~np.isfinite(top[:, 0])
    if bad.any():
        raise ValueError(
            f"sbc_direct: simulations {np.flatnonzero(bad)[:5].tolist()} have no draw with a finite "
            "weight (all weights zero or NaN): the sampler failed on their data"
        )
    if num_draws is None:
        raise ValueError("_ranks: weighted ranks need num_draws")
    w = np.exp(log_weights - top)
    w = (w / w.sum(1, keepdims=True))[:, :, None]
    u = (w * below).sum(1) + rng.random(truth.shape) * (w * equal).sum(1)
    return np.minimum(np.floor((num_draws + 1) * u).astype(np.int64), num_draws)


def _names(names: list | None, example: Any, size: int | None, caller: str) -> list:
    """Labels of the flattened coordinates: given, or from the parameters' pytree ``example``
    (``mu``, ``theta[3]``)."""
    if names is None:
        from mcgen.diagnostics import leaf_names

        names = []
        leaves = jax.tree_util.tree_leaves(example)
        for name, leaf in zip(leaf_names(example, "theta"), leaves):
            shape = tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)
            names += [name] if shape == () else [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(shape)]
    if size is not None and len(names) != size:
        raise ValueError(f"{caller}: {len(names)} names for {size} coordinates")
    return list(names)


class SBCModel(NamedTuple):
    """A model for :func:`sbc`: unpack it into the call, ``sbc(kernel, *model)``."""

    prior_sample: Callable[[jax.Array], Any]
    simulate: Callable[[jax.Array, Any], Any]
    logdensity: Callable[[Any, Any], Any]


def numpyro_sbc_model(model: Callable, *args: Any, observed: str | Sequence[str], **kwargs: Any) -> SBCModel:
    """A NumPyro model as the ``(prior_sample, simulate, logdensity)`` triple of :func:`sbc`.

    The model must be generative: called with ``args`` and ``kwargs``, it samples its
    ``observed`` sites (write it as ``def model(x, y=None): ... numpyro.sample("y", ..., obs=y)``
    and leave ``y`` out).  Parameters are the model's other sample sites, in unconstrained space
    (``log tau`` for a positive ``tau``), exactly as :func:`mcgen.from_numpyro` gives them to a
    kernel; the log-density is NumPyro's (minus its potential energy: log prior and likelihood
    with the log-Jacobian of each site's transform), conditioned on the simulated data inside the
    traced program, so every simulation shares one compiled program.

    Parameters
    ----------
    model
        A NumPyro model (continuous latent sites only).
    *args, **kwargs
        Passed to the model (covariates, sizes); not the observed data.
    observed
        Name(s) of the sample sites that are the data.

    Returns
    -------
    SBCModel
        ``prior_sample(key) -> {site: unconstrained value}``, ``simulate(key, z) -> {site: data}``
        and ``logdensity(z, data)``.

    Raises
    ------
    ValueError
        If an observed name is not a sample site of the model, or a latent site is discrete.

    Example
    -------
    >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist, mcgen as mc
    >>> def model(n, y=None):
    ...     scale = numpyro.sample("scale", dist.HalfNormal(1.0))
    ...     numpyro.sample("y", dist.Normal(0.0, scale).expand([n]), obs=y)
    >>> m = mc.testing.numpyro_sbc_model(model, 5, observed="y")
    >>> z = m.prior_sample(jax.random.key(0))          # {"scale": log scale}
    >>> data = m.simulate(jax.random.key(1), z)        # {"y": 5 draws}
    >>> sorted(z), data["y"].shape, bool(jnp.isfinite(m.logdensity(z, data)))
    (['scale'], (5,), True)
    >>> rep = mc.testing.sbc(mc.nuts(), *m, num_simulations=100, num_draws=19, thin=2)  # doctest: +SKIP
    """
    from numpyro import handlers
    from numpyro.infer.util import potential_energy, unconstrain_fn

    if not callable(model):
        raise TypeError(f"numpyro_sbc_model: model must be a callable NumPyro model, got {type(model).__name__}")
    observed = (observed,) if isinstance(observed, str) else tuple(observed)
    if not observed:
        raise ValueError("numpyro_sbc_model: name at least one observed site")
    trace = handlers.trace(handlers.seed(model, jax.random.key(0))).get_trace(*args, **kwargs)
    sites = {name: site for name, site in trace.items() if site["type"] == "sample"}
    missing = [name for name in observed if name not in sites]
    if missing:
        raise ValueError(
            f"numpyro_sbc_model: observed sites {missing} are not sample sites of the model "
            f"(its sample sites: {sorted(sites)})"
        )
    latent = [name for name, site in sites.items() if name not in observed and not site["is_observed"]]
    if not latent:
        raise ValueError("numpyro_sbc_model: the model has no latent site besides the observed ones")
    discrete = [name for name in latent if getattr(sites[name]["fn"].support, "is_discrete", False)]
    if discrete:
        raise ValueError(f"numpyro_sbc_model: discrete latent sites {discrete} are not supported")

    def prior_sample(key):
        seeded = handlers.seed(model, key)
        tr = handlers.trace(seeded).get_trace(*args, **kwargs)
        return unconstrain_fn(seeded, args, kwargs, {name: tr[name]["value"] for name in latent})

    def simulate(key, z):
        constrain = handlers.substitute(model, substitute_fn=lambda site: _constrained(site, z))
        tr = handlers.trace(handlers.seed(constrain, key)).get_trace(*args, **kwargs)
        return {name: tr[name]["value"] for name in observed}

    def logdensity(z, data):
        return -potential_energy(handlers.condition(model, data=data), args, kwargs, z)

    return SBCModel(prior_sample, simulate, logdensity)


def _constrained(site: dict, z: dict):
    """The constrained value of a latent site from its unconstrained value in ``z``."""
    from numpyro.distributions import biject_to

    if site["type"] == "sample" and site["name"] in z:
        return biject_to(site["fn"].support)(z[site["name"]])
    return None


class DirectSBCModel(NamedTuple):
    """A model and direct sampler for :func:`sbc_direct`: ``sbc_direct(*model)``."""

    posterior: Callable[[jax.Array, Any], Any]
    prior_sample: Callable[[jax.Array], Any]
    simulate: Callable[[jax.Array, Any], Any] | None  # None: prior_sample draws (theta, data)
    quantities: Callable[[Any, Any], Any] | None = None


def sbc_direct(
    posterior: Callable[[jax.Array, Any], Any],
    prior_sample: Callable[[jax.Array], Any],
    simulate: Callable[[jax.Array, Any], Any] | None,
    quantities: Callable[[Any, Any], Any] | None = None,
    *,
    num_simulations: int = 200,
    num_draws: int = 99,
    seed: int = 0,
    alpha: float = 1e-3,
    num_bins: int | None = None,
    names: list | None = None,
    vectorized: bool = True,
) -> SBCReport:
    """Simulation-based calibration of a direct (non-Markov) posterior sampler.

    Parameters
    ----------
    posterior
        ``posterior(key, data)`` returns either independent posterior draws (a pytree whose
        leaves have a leading axis of draws, e.g. a rejection sampler's or resampled draws;
        ranks lie in ``0..num_drawn``, so return ``num_draws`` of them) or a
        :class:`mcgen.direct.WeightedSamples` (self-normalized importance draws, likelihood
        weighting): the truth is then ranked by its weighted CDF at the resolution
        ``num_draws + 1`` (module docstring).  The weighted rank is exact only as the effective
        sample size grows: keep it in the thousands.
    prior_sample, simulate
        As in :func:`sbc`; the draws have the prior's pytree structure.  ``simulate=None``:
        ``prior_sample(key)`` draws ``(theta, data)`` jointly (as forward sampling of a
        Bayesian network does).
    quantities
        Optional data-dependent test quantities ``quantities(theta, data) -> {name: scalar}``,
        ranked besides the coordinates (Modrák et al. 2023).  The log-likelihood or the joint
        log-density is the usual one: coordinate ranks cannot see a sampler that returns the
        prior whatever the data, and lose power when the parameters are discrete.
    num_simulations, num_draws
        Simulated data sets; ranks lie in ``0..num_draws``.
    seed, alpha, num_bins, names
        As in :func:`sbc`.
    vectorized
        ``True``: the three functions are traceable and every simulation runs in one
        ``jit(vmap(...))`` program.  ``False``: a Python loop over simulations, for samplers
        that run on the host (e.g. :func:`mcgen.bayesnet.likelihood_weighting`, which returns
        numpy arrays); each call should dispatch a compiled program.

    Returns
    -------
    SBCReport

    Example
    -------
    >>> import jax, jax.numpy as jnp, mcgen as mc
    >>> from mcgen.direct import WeightedSamples
    >>> prior = lambda key: jax.random.normal(key, (1,))               # theta ~ N(0, 1)
    >>> simulate = lambda key, th: th + jax.random.normal(key, (4,))   # y_i ~ N(theta, 1)
    >>> def posterior(key, y):                                         # importance draws, prior proposal
    ...     th = jax.random.normal(key, (4096, 1))
    ...     return WeightedSamples(th, -0.5 * jnp.sum((y - th) ** 2, axis=1))
    >>> rep = mc.testing.sbc_direct(posterior, prior, simulate, num_simulations=200, num_draws=19)
    >>> rep.ranks.shape
    (200, 1)
    """
    from mcgen.direct.weighted import WeightedSamples

    for name, value in (("num_simulations", num_simulations), ("num_draws", num_draws)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"sbc_direct: {name} must be a positive integer, got {value!r}")

    def sample(key):
        """One simulation: truth, data, posterior draws and log weights (None: unweighted)."""
        key_prior, key_data, key_post = jax.random.split(key, 3)
        if simulate is None:
            truth, data = prior_sample(key_prior)
        else:
            truth = prior_sample(key_prior)
            data = simulate(key_data, truth)
        out = posterior(key_post, data)
        weighted = isinstance(out, WeightedSamples)
        draws = out.samples if weighted else out
        if jax.tree_util.tree_structure(draws) != jax.tree_util.tree_structure(truth):
            raise ValueError(
                "sbc_direct: the posterior's draws must have the prior's pytree structure, got "
                f"{jax.tree_util.tree_structure(draws)} for {jax.tree_util.tree_structure(truth)}"
            )
        return truth, data, draws, (out.log_weights if weighted else None)

    def summarize(truth, data, draws):
        """Flat ``(d,)`` truth and ``(N, d)`` draws: the coordinates, then the quantities."""
        if quantities is not None:
            # one batched call for the truth and the draws, so that equal values tie exactly
            both = jax.tree_util.tree_map(
                lambda t, d: jnp.concatenate([jnp.asarray(t, d.dtype)[None], d]), truth, draws
            )
            f = quantities
            q = jax.vmap(lambda th: f(th, data))(both)
            truth = {"theta": truth, "quantities": jax.tree_util.tree_map(lambda x: x[0], q)}
            draws = {"theta": draws, "quantities": jax.tree_util.tree_map(lambda x: x[1:], q)}
        as_float = functools.partial(jax.tree_util.tree_map, lambda x: jnp.asarray(x, jnp.float32))
        return ravel_pytree(as_float(truth))[0], jax.vmap(lambda x: ravel_pytree(as_float(x))[0])(draws)

    def one(key):
        truth, data, draws, log_weights = sample(key)
        return (*summarize(truth, data, draws), log_weights)

    def check_count(draws, log_weights):
        size = jax.tree_util.tree_leaves(draws)[0].shape[0]
        if log_weights is None and size != num_draws:
            raise ValueError(f"sbc_direct: the posterior returned {size} draws, expected num_draws={num_draws}")

    keys = jax.random.split(jax.random.key(seed), num_simulations)
    if vectorized:
        example, example_data, example_draws, example_weights = jax.eval_shape(sample, keys[0])
        check_count(example_draws, example_weights)
        truth, draws, log_weights = jax.jit(jax.vmap(one))(keys)
    else:  # the sampler runs on the host; the summaries are one compiled program
        summarize_jit = jax.jit(summarize)
        outs = []
        for key in keys:
            truth_k, data_k, draws_k, log_weights_k = sample(key)
            data_k = jax.tree_util.tree_map(jnp.asarray, data_k)
            if not outs:
                check_count(draws_k, log_weights_k)
                example, example_data = truth_k, data_k
            outs.append((*summarize_jit(truth_k, data_k, draws_k), log_weights_k))
        truth, draws = np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs])
        log_weights = None if outs[0][2] is None else np.stack([np.asarray(o[2]) for o in outs])
    truth, draws = np.asarray(truth, np.float64), np.asarray(draws, np.float64)
    ranks = _ranks(truth, draws, np.random.default_rng(seed), log_weights, int(num_draws))
    if quantities is not None:  # names of the coordinates, then of the quantities
        names = _names(names, example, None, "sbc_direct") + _names(
            None, jax.eval_shape(quantities, example, example_data), None, "sbc_direct"
        )
    names = _names(names, example, truth.shape[1], "sbc_direct")
    return SBCReport(ranks, int(num_draws), rank_uniformity(ranks, num_draws, num_bins), alpha, names)


def bayesnet_sbc_model(bn, observed: Sequence[str], *, num_samples: int = 4096) -> DirectSBCModel:
    """Likelihood weighting on a Bayesian network, as the pieces of :func:`sbc_direct`.

    A simulation draws every variable from the joint (forward sampling); the ``observed``
    variables are the data and the others the parameters (``{variable: state index}``); the
    posterior given the data is :func:`mcgen.bayesnet.likelihood_weighting` with
    ``num_samples`` draws.  Besides each parameter, the joint log-probability
    ``log_joint`` :math:`\\log p(\\theta, y)` is ranked: binary parameters alone give the rank test
    little power.  The functions call the public samplers, which run on the host: pass
    ``vectorized=False`` (each call dispatches one compiled chunk, so a simulation costs
    milliseconds).

    Example
    -------
    >>> from mcgen import bayesnet, testing
    >>> bn = bayesnet.BayesNet.from_dict({
    ...     "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
    ...     "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
    ... })
    >>> rep = testing.sbc_direct(*testing.bayesnet_sbc_model(bn, ["rain"]), num_simulations=100,
    ...                          num_draws=19, vectorized=False)
    >>> rep.names
    ['cloudy', 'log_joint']
    """
    from mcgen.bayesnet.sampling import forward_sample, likelihood_weighting

    observed = [observed] if isinstance(observed, str) else list(observed)
    for name in observed:
        bn._check_name(name)
    params = [v for v in bn.variables if v not in observed]
    if not params or not observed:
        raise ValueError("bayesnet_sbc_model: observe some variables and leave some unobserved")

    def joint_sample(key):
        draw = forward_sample(bn, 1, seed=key)
        return {v: np.int32(draw[v][0]) for v in params}, {v: int(draw[v][0]) for v in observed}

    def posterior(key, data):
        return likelihood_weighting(bn, num_samples, data, keep=params, seed=key)

    log_joint = bn.logdensity_fn()

    def quantities(theta, data):
        return {"log_joint": log_joint({**theta, **data})}

    return DirectSBCModel(posterior, joint_sample, None, quantities)
