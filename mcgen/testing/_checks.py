"""Statistical checks that a sampler draws from its target.

A sampler can run, return numbers of the right shape and still be wrong.  These helpers decide
statistically whether draws match a known answer, with error bars from the draws themselves:

* :func:`check_moments` compares means (and variances) of MCMC draws with the truth in units
  of Monte-Carlo standard error, the MCSE computed from the effective sample size (ArviZ), or,
  with ``runs=``, from the spread of independent runs' estimates.
* :func:`two_sample_test` asks whether two sets of independent draws come from the same
  distribution (Kolmogorov–Smirnov per coordinate, or an energy-distance permutation test).
* :func:`check_invariance` tests that a kernel leaves its target invariant: start many
  chains from *exact* draws of the target, take ``k`` steps, and test that the result is still
  distributed as the target.  The chains are independent, so the test is exact (no
  autocorrelation to estimate) and catches a wrong acceptance ratio after a handful of steps.
* :func:`run_warmup` and :func:`assert_no_recompile` check the mechanics of a kernel you wrote:
  its warmup protocol runs under ``jit`` + ``vmap`` + ``scan``, and a second ``run_chains``
  call with the same settings and shapes compiles nothing.

Every check returns a report with the statistics and ``passed``; the ``assert_*`` forms raise
an ``AssertionError`` with the report.  Tolerances are in standard errors (``z``): with ``m``
compared quantities and ``z = 4`` a correct sampler fails with probability about
``m * 6.3e-5`` (two-sided normal tail), e.g. 0.13% for 20 quantities.  Tests with p-values use
a Bonferroni bound over coordinates at level ``alpha``.

The example is in the package docstring (:mod:`mcgen.testing`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as sps

from mcgen.adaptation.ensemble import CHAIN_AXIS
from mcgen.run import run_chains
from mcgen.testing._report import BonferroniDecision
from mcgen.types import Kernel

__all__ = [
    "InvarianceReport",
    "MomentReport",
    "TwoSampleReport",
    "assert_invariance",
    "assert_moments",
    "assert_no_recompile",
    "check_invariance",
    "check_moments",
    "exact_gaussian_sampler",
    "run_warmup",
    "two_sample_test",
    "Target",
    "bimodal_1d",
    "correlated_gaussian",
    "dict_gaussian",
]


def _flatten_chains(draws: Any) -> np.ndarray:
    """Pytree with leaves (chains, draws, *event) -> array (chains, draws, d)."""
    leaves = jax.tree_util.tree_leaves(draws)
    arrays = [np.asarray(x, dtype=np.float64) for x in leaves]
    return np.concatenate([a.reshape(a.shape[0], a.shape[1], -1) for a in arrays], axis=-1)


def _flatten_event(tree: Any) -> np.ndarray:
    return np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in jax.tree_util.tree_leaves(tree)])


def _mcse_mean(x: np.ndarray) -> np.ndarray:
    """MCSE of the mean of each coordinate of x (chains, draws, d), from ArviZ's ESS."""
    from mcgen.diagnostics import az

    out = np.empty(x.shape[-1])
    for j in range(x.shape[-1]):
        out[j] = float(az.mcse(x[..., j], method="mean"))
    return out


@dataclasses.dataclass
class MomentReport:
    """Estimated moments against the truth, with MCSEs and z-scores (all flat over coordinates)."""

    mean: np.ndarray
    mean_mcse: np.ndarray
    mean_z: np.ndarray
    var: np.ndarray | None
    var_mcse: np.ndarray | None
    var_z: np.ndarray | None
    z: float

    @property
    def max_abs_z(self) -> float:
        zs = [np.abs(self.mean_z)] + ([np.abs(self.var_z)] if self.var_z is not None else [])
        return float(np.max(np.concatenate(zs)))

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_abs_z) and self.max_abs_z <= self.z)

    def __str__(self) -> str:
        lines = [f"max |z| = {self.max_abs_z:.2f} (bound {self.z})"]
        lines.append("mean z: " + np.array2string(self.mean_z, precision=2, max_line_width=120))
        if self.var_z is not None:
            lines.append("var  z: " + np.array2string(self.var_z, precision=2, max_line_width=120))
        return "\n".join(lines)


def _across_runs(x: np.ndarray, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled estimate and standard error from ``runs`` equal blocks of chains of x (chains, draws, m)."""
    per_run = x.reshape(runs, -1, x.shape[-1]).mean(axis=1)  # (runs, m)
    return per_run.mean(axis=0), per_run.std(axis=0, ddof=1) / np.sqrt(runs)


def _t_as_z(t: np.ndarray, dof: int) -> np.ndarray:
    """Student-t statistics mapped to the normal deviates with the same two-sided tail probability."""
    return np.sign(t) * sps.norm.isf(sps.t.sf(np.abs(t), dof))


def check_moments(draws: Any, mean: Any, var: Any = None, *, z: float = 4.0, runs: int | None = None) -> MomentReport:
    """Compare means (and variances) of MCMC draws with known values in units of MCSE.

    Parameters
    ----------
    draws
        Pytree with leaves ``(chains, draws, *event)`` (``Result.samples``).
    mean, var
        True means and variances, pytrees matching one draw (or broadcastable arrays).
    z
        Bound on ``|estimate - truth| / MCSE``.
    runs
        ``None`` (default): the MCSE comes from the effective sample size of all chains together.
        An integer ``r >= 2``: the chains are ``r`` independent runs of equal size, in order (the
        first ``chains / r`` chains are run 1, and so on; each chain of ``run_chains`` has its own
        warmup, so its chains can be grouped freely).  Each run gives its own estimate, and the
        MCSE is their standard deviation over the square root of ``r``: no autocorrelation is
        estimated.  Use it where the ESS-based MCSE is too small: functionals of heavy tails, or
        tails a chain visits rarely (a banana's arms), where a single run cannot see what it
        missed.
        The t-statistics (``r - 1`` degrees of freedom) are reported as the normal deviates with
        the same tail probability, so ``z`` keeps its meaning; take ``r >= 16`` for power.

    Returns
    -------
    MomentReport
        The variance estimate is the mean of ``(x - true_mean)^2``, whose MCSE comes from its
        own effective sample size (or from the runs).
    """
    x = _flatten_chains(draws)
    d = x.shape[-1]
    true_mean = np.broadcast_to(_flatten_event(mean), (d,))
    true_var = None if var is None else np.broadcast_to(_flatten_event(var), (d,))
    if runs is not None:
        if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)) or runs < 2:
            raise ValueError(f"check_moments: runs must be an integer >= 2, got {runs!r}")
        if x.shape[0] % runs:
            raise ValueError(f"check_moments: {x.shape[0]} chains do not split into {runs} runs of equal size")
        est_mean, se_mean = _across_runs(x, runs)
        report = MomentReport(
            est_mean, se_mean, _t_as_z((est_mean - true_mean) / se_mean, runs - 1), None, None, None, z
        )
        if true_var is not None:
            report.var, report.var_mcse = _across_runs((x - true_mean) ** 2, runs)
            report.var_z = _t_as_z((report.var - true_var) / report.var_mcse, runs - 1)
        return report
    est_mean = x.mean(axis=(0, 1))
    mcse_mean = _mcse_mean(x)
    report = MomentReport(est_mean, mcse_mean, (est_mean - true_mean) / mcse_mean, None, None, None, z)
    if true_var is not None:
        sq = (x - true_mean) ** 2
        report.var = sq.mean(axis=(0, 1))
        report.var_mcse = _mcse_mean(sq)
        report.var_z = (report.var - true_var) / report.var_mcse
    return report


def assert_moments(draws: Any, mean: Any, var: Any = None, *, z: float = 4.0, runs: int | None = None) -> MomentReport:
    """:func:`check_moments`, raising ``AssertionError`` (with the report) when it fails."""
    report = check_moments(draws, mean, var, z=z, runs=runs)
    if not report.passed:
        raise AssertionError(f"moments differ from the truth by more than {z} MCSE:\n{report}")
    return report


@dataclasses.dataclass
class TwoSampleReport(BonferroniDecision):
    """p-values per coordinate (KS) or one p-value (energy), and the Bonferroni decision."""

    p_values: np.ndarray
    alpha: float
    method: str

    def __str__(self) -> str:
        return f"{self.method}: adjusted p = {self.p_value:.3g} (alpha {self.alpha})"


def _energy_statistic(x: np.ndarray, y: np.ndarray) -> float:
    def mean_dist(a, b):
        return np.mean(np.sqrt(np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)))

    return 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)


def two_sample_test(
    x: Any, y: Any, *, method: str = "ks", alpha: float = 1e-3, num_permutations: int = 200, seed: int = 0
) -> TwoSampleReport:
    """Test whether two sets of *independent* draws come from the same distribution.

    Parameters
    ----------
    x, y
        Pytrees with leaves ``(n, *event)`` (a leading sample axis).  MCMC draws are not
        independent: thin them to roughly their ESS first, or use :func:`check_moments`.
    method
        ``"ks"``: two-sample Kolmogorov–Smirnov per coordinate, Bonferroni over coordinates.
        ``"energy"``: energy distance (Székely & Rizzo 2013) with a permutation p-value;
        sensitive to dependence between coordinates (use n up to a few thousand).
    alpha
        Level of the test: a correct sampler fails with probability at most ``alpha``.
    """
    xs = np.concatenate(
        [np.asarray(a, np.float64).reshape(np.shape(a)[0], -1) for a in jax.tree_util.tree_leaves(x)], 1
    )
    ys = np.concatenate(
        [np.asarray(a, np.float64).reshape(np.shape(a)[0], -1) for a in jax.tree_util.tree_leaves(y)], 1
    )
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"two_sample_test: x has {xs.shape[1]} coordinates, y has {ys.shape[1]}")
    if method == "ks":
        p = np.array(
            [
                sps.ks_2samp(xs[:, j], ys[:, j]).pvalue  # pyright: ignore[reportAttributeAccessIssue]
                for j in range(xs.shape[1])
            ]
        )
    elif method == "energy":
        rng = np.random.default_rng(seed)
        observed = _energy_statistic(xs, ys)
        pooled = np.concatenate([xs, ys])
        count = 0
        for _ in range(num_permutations):
            perm = rng.permutation(pooled.shape[0])
            count += _energy_statistic(pooled[perm[: len(xs)]], pooled[perm[len(xs) :]]) >= observed
        p = np.array([(count + 1) / (num_permutations + 1)])
    else:
        raise ValueError(f"two_sample_test: method must be 'ks' or 'energy', got {method!r}")
    return TwoSampleReport(p, alpha, method)


@dataclasses.dataclass
class InvarianceReport:
    """Two-sample test of k-step draws against fresh exact draws, plus the moment z-scores."""

    two_sample: TwoSampleReport
    mean_z: np.ndarray
    var_z: np.ndarray
    z: float

    @property
    def passed(self) -> bool:
        bound_ok = np.max(np.abs(np.concatenate([self.mean_z, self.var_z]))) <= self.z
        return bool(self.two_sample.passed and bound_ok)

    def __str__(self) -> str:
        return (
            f"{self.two_sample}; max |z| mean {np.max(np.abs(self.mean_z)):.2f}, "
            f"var {np.max(np.abs(self.var_z)):.2f} (bound {self.z})"
        )


def check_invariance(
    kernel: Kernel,
    logdensity_fn: Callable,
    exact_sampler: Callable[[jax.Array, int], Any],
    *,
    num_chains: int = 4000,
    num_steps: int = 5,
    seed: int = 0,
    state_fn: Callable[[Any], Any] | None = None,
    alpha: float = 1e-3,
    z: float = 4.0,
) -> InvarianceReport:
    """Check that ``kernel`` leaves the target of ``logdensity_fn`` invariant.

    ``num_chains`` chains start from exact draws ``exact_sampler(key, num_chains)`` (leaves
    with a leading ``num_chains`` axis), take ``num_steps`` steps of ``kernel.step`` with the
    kernel's initial parameters, and their final positions are compared with fresh exact
    draws: per-coordinate KS tests and mean/variance z-scores (independent chains, so the
    standard errors are exact).

    Parameters
    ----------
    state_fn
        Optional ``state -> state`` applied after ``init`` (e.g. to set tuned parameters).
    """
    key_start, key_fresh, key_steps = jax.random.split(jax.random.key(seed), 3)
    start = exact_sampler(key_start, num_chains)
    fresh = exact_sampler(key_fresh, num_chains)  # independent of start: the comparison is exact
    run = _invariance_runner(kernel, logdensity_fn, state_fn, num_chains, num_steps)
    moved = run(start, key_steps)
    xs = np.concatenate(
        [np.asarray(a, np.float64).reshape(num_chains, -1) for a in jax.tree_util.tree_leaves(moved)], 1
    )
    ys = np.concatenate(
        [np.asarray(a, np.float64).reshape(num_chains, -1) for a in jax.tree_util.tree_leaves(fresh)], 1
    )
    two = two_sample_test(xs, ys, method="ks", alpha=alpha)
    se_mean = np.sqrt(xs.var(0) / num_chains + ys.var(0) / num_chains)
    mean_z = (xs.mean(0) - ys.mean(0)) / se_mean
    cx, cy = (xs - xs.mean(0)) ** 2, (ys - ys.mean(0)) ** 2
    var_z = (cx.mean(0) - cy.mean(0)) / np.sqrt(cx.var(0) / num_chains + cy.var(0) / num_chains)
    return InvarianceReport(two, mean_z, var_z, z)


@functools.lru_cache(maxsize=64)
def _invariance_runner(kernel: Kernel, logdensity_fn: Callable, state_fn, num_chains: int, num_steps: int):
    """The compiled ``(positions, key) -> positions`` of :func:`check_invariance`, cached so that
    repeated checks (many seeds, as in a calibration study) compile once."""

    @jax.jit
    def run(positions, key):
        states = jax.vmap(kernel.init, in_axes=(0, None))(positions, logdensity_fn)
        if state_fn is not None:
            states = jax.vmap(state_fn)(states)

        def body(sts, k):
            keys = jax.random.split(k, num_chains)
            return jax.vmap(kernel.step, in_axes=(0, 0, None))(keys, sts, logdensity_fn)[0], None

        states, _ = jax.lax.scan(body, states, jax.random.split(key, num_steps))
        return states.position

    return run


def assert_invariance(kernel: Kernel, logdensity_fn: Callable, exact_sampler: Callable, **kwargs) -> InvarianceReport:
    """:func:`check_invariance`, raising ``AssertionError`` when it fails."""
    report = check_invariance(kernel, logdensity_fn, exact_sampler, **kwargs)
    if not report.passed:
        raise AssertionError(f"kernel does not leave the target invariant: {report}")
    return report


def run_warmup(kernel: Kernel, states: Any, logdensity_fn: Callable, num_steps: int = 20, seed: int = 3) -> Any:
    """Run ``kernel.warmup(num_steps)`` on a batch of states (leading chain axis) in one
    compiled program (``jit`` of a ``scan`` over ``vmap``-ed warmup steps) and return the
    finalized states; for checking the warmup protocol of a kernel."""
    if kernel.warmup is None:
        raise ValueError("run_warmup: this kernel has no warmup")
    warm = kernel.warmup(num_steps)
    num_chains = jax.tree_util.tree_leaves(states)[0].shape[0]

    @jax.jit
    def run(sts, key):
        ws = jax.vmap(warm.init, axis_name=CHAIN_AXIS)(sts)

        def body(w, k):
            keys = jax.random.split(k, num_chains)
            return jax.vmap(warm.step, in_axes=(0, 0, None), axis_name=CHAIN_AXIS)(keys, w, logdensity_fn)[0], None

        final = jax.lax.scan(body, ws, jax.random.split(key, num_steps))[0]
        return jax.vmap(warm.finalize, axis_name=CHAIN_AXIS)(final)

    return run(states, jax.random.key(seed))


def assert_no_recompile(
    logdensity_fn: Callable,
    make_kernel: Callable[[], Kernel],
    init: Any,
    init_again: Any,
    *,
    wrap: Callable[[Callable], Any] | None = None,
    **run_kwargs,
) -> None:
    """Assert that a second ``run_chains`` call (new seed, new init ``init_again``) with the same
    log-density, kernel settings and shapes traces and compiles nothing.

    ``make_kernel()`` builds the kernel afresh for each call (kernel constructors are cached on
    their settings, so it should return the same object).  ``wrap`` turns the counted
    log-density into the target passed to ``run_chains`` (e.g. a prior/likelihood pair).
    ``run_kwargs`` go to ``run_chains`` (default: 2 chains, 10 warmup and 10 draws).
    """
    traces = []

    def counted(x):
        traces.append(1)
        return logdensity_fn(x)

    target = counted if wrap is None else wrap(counted)
    run: dict[str, Any] = dict(num_chains=2, num_samples=10, num_warmup=10, progress=False, warn=False) | run_kwargs
    run_chains(target, make_kernel(), init=init, seed=0, **run)
    first = len(traces)
    res = run_chains(target, make_kernel(), init=init_again, seed=1, **run)
    if len(traces) != first or res.compile_time != 0.0:
        raise AssertionError(
            f"the second run_chains call re-traced the log-density ({len(traces) - first} "
            f"traces) or compiled ({res.compile_time:.2f} s)"
        )


def exact_gaussian_sampler(mean: Any, cov: Any) -> Callable[[jax.Array, int], jax.Array]:
    """``exact_sampler(key, n)`` for ``N(mean, cov)`` (a convenience for invariance checks)."""
    mean = jnp.asarray(mean, jnp.float32)
    chol = jnp.linalg.cholesky(jnp.asarray(cov, jnp.float32))

    def sample(key, n):
        return mean + jax.random.normal(key, (n, mean.shape[0]), jnp.float32) @ chol.T

    return sample


# ----------------------------------------------------------------------------- reference targets


@dataclasses.dataclass(frozen=True, eq=False)
class Target:
    """A target with a known answer: log-density, exact sampler, true mean and variance."""

    name: str
    logdensity_fn: Callable[[Any], jax.Array]
    sample: Callable[[jax.Array, int], Any]
    mean: Any
    var: Any
    init: Any
    cov: Any = None  # full covariance where the target is Gaussian


def bimodal_1d(separation: float = 3.0) -> Target:
    """``0.5 N(-s, 1) + 0.5 N(s, 1)`` on a scalar: mean 0, variance ``1 + s^2``."""
    s = float(separation)

    def logdensity_fn(x):
        return jnp.logaddexp(-0.5 * (x - s) ** 2, -0.5 * (x + s) ** 2)

    def sample(key, n):
        key_mode, key_noise = jax.random.split(key)
        sign = jnp.where(jax.random.bernoulli(key_mode, 0.5, (n,)), 1.0, -1.0)
        return sign * s + jax.random.normal(key_noise, (n,))

    return Target("bimodal_1d", logdensity_fn, sample, jnp.zeros(()), jnp.asarray(1.0 + s * s), jnp.zeros(()))


def correlated_gaussian(dim: int = 10, rho: float = 0.5) -> Target:
    """``N(m, D R D)`` with AR(1) correlation ``R_ij = rho^|i-j|``, scales ``D`` from 0.5 to 2
    and means ``m`` from -1 to 1: a correlated, badly scaled Gaussian with a known answer."""
    idx = np.arange(dim)
    scales = np.linspace(0.5, 2.0, dim)
    cov = (rho ** np.abs(idx[:, None] - idx[None, :])) * scales[:, None] * scales[None, :]
    mean = jnp.asarray(np.linspace(-1.0, 1.0, dim), jnp.float32)
    precision = jnp.asarray(np.linalg.inv(cov), jnp.float32)

    def logdensity_fn(x):
        r = x - mean
        return -0.5 * r @ (precision @ r)

    return Target(
        f"correlated_gaussian_{dim}d",
        logdensity_fn,
        exact_gaussian_sampler(mean, cov),
        mean,
        jnp.asarray(np.diag(cov), jnp.float32),
        jnp.zeros(dim, jnp.float32),
        jnp.asarray(cov, jnp.float32),
    )


def dict_gaussian() -> Target:
    """A dict-valued position: ``loc ~ N((1, -1), diag(1, 4))`` and ``log_scale ~ N(0.5, 0.3^2)``."""
    loc_mean, loc_sd = jnp.array([1.0, -1.0]), jnp.array([1.0, 2.0])
    ls_mean, ls_sd = 0.5, 0.3

    def logdensity_fn(p):
        return -0.5 * jnp.sum(((p["loc"] - loc_mean) / loc_sd) ** 2) - 0.5 * ((p["log_scale"] - ls_mean) / ls_sd) ** 2

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        return {
            "loc": loc_mean + loc_sd * jax.random.normal(k1, (n, 2)),
            "log_scale": ls_mean + ls_sd * jax.random.normal(k2, (n,)),
        }

    return Target(
        "dict_gaussian",
        logdensity_fn,
        sample,
        {"loc": loc_mean, "log_scale": jnp.asarray(ls_mean)},
        {"loc": loc_sd**2, "log_scale": jnp.asarray(ls_sd**2)},
        {"loc": jnp.zeros(2), "log_scale": jnp.zeros(())},
    )
