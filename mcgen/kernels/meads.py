"""MEADS: generalized HMC whose step size, damping and metric come from other chains.

**The kernel** is generalized HMC (Horowitz 1991) with a persistent, non-reversible accept
variable (Neal 2020).  In coordinates whitened by a diagonal inverse mass :math:`\\sigma^2`
the momentum :math:`r` is standard normal; one transition with step size :math:`\\epsilon`,
damping :math:`\\gamma`, :math:`\\alpha = 1 - e^{-2\\epsilon\\gamma}` and a slice variable
:math:`s \\in [-1, 1]`

1. refreshes part of the momentum, :math:`r \\leftarrow \\sqrt{1 - \\alpha}\\, r + \\sqrt\\alpha\\,\\xi`,
   :math:`\\xi \\sim N(0, I)`;
2. moves the slice variable, :math:`s \\leftarrow ((s + 1 + \\alpha/2) \\bmod 2) - 1`;
3. takes one leapfrog step :math:`(q, r) \\to (q', r')` and accepts it when
   :math:`\\log|s| < -\\Delta H` (:math:`\\Delta H` the change of the Hamiltonian); on
   acceptance :math:`s \\leftarrow s\\,e^{\\Delta H}`, on rejection the momentum is negated.

Each step leaves :math:`\\pi(q)\\,N(r; 0, I)\\,U(s; -1, 1)` invariant: the refresh and the shift
of :math:`s` preserve their factors, and the accept step is Neal's slice form of a
Metropolis test on the involution :math:`(q, r) \\to (q', -r')` followed by a momentum flip.
Because :math:`|s|` sweeps up and down instead of being redrawn, rejections cluster in time
and the momentum keeps its direction for longer (Neal 2020).  The state keeps the momentum
:math:`p = r / \\sigma` of the mass matrix :math:`\\mathrm{diag}(\\sigma^{-2})`, not the whitened
:math:`r`: when warmup shrinks :math:`\\sigma` the kinetic energy shrinks with it, which
cools chains started far out (from a wide start on the 100-d Gaussian of scales 0.01 to 1,
the whitened convention had not converged after 1000 warmup steps; this one converges in
about 300, as BlackJAX's ``meads_adaptation``, which keeps :math:`p` too).  The one exception
is a coordinate along which the ensemble is far narrower than the target, marked by a
source fold's mean of :math:`(\\sigma_i g_i)^2` below 1/100 (at stationarity its expectation
is at least 1: the Fisher information's diagonal is at least :math:`1/\\mathrm{Var}(x_i)`,
Cramer-Rao; tails make it larger; at a Gaussian's mode 1/100 is a spread below 0.3 of the
target's; 1/4 also fired on the noise of folds of 3 chains): there, where :math:`\\sigma_i`
grows, :math:`p_i` shrinks by :math:`\\sigma_{i,old}/\\sigma_{i,new}` so that :math:`r_i` is
kept (the exact convention: :math:`r \\sim N(0, I)` whatever :math:`\\sigma`).  Keeping
:math:`p` there multiplied :math:`r` by the growth of :math:`\\sigma` at every step of the
expansion: from a single start 1000 times tighter than the target (``init=jnp.zeros(5)``,
default jitter, a Gaussian of scale 100), or on scales 0.01 to 100, the chains overshot and
froze at a step size of 1e-4 to 1e-6, as BlackJAX's do.  The momentum and the slice
variable persist from step to step, so they are kept in ``state.params`` with the tunables:
under the target they are independent of the position, so a combinator that rebuilds the
state at a new position with the same ``params`` keeps the chain valid.  ``init`` marks them
as not yet drawn; the first step draws both afresh.

**Ensemble warmup** (MEADS, Hoffman & Sountsov 2022): the chains are split into ``num_folds``
folds, assigned afresh every :math:`K` steps by a random permutation (from a fixed key, the
same in every chain; without it a fold that lags keeps feeding the next one small steps, and
on the 100-d Gaussian from a wide start the warmup had not converged after 1000 steps).  At warmup step :math:`t` the chains of
fold :math:`k` move with parameters computed from the current positions and gradients of
fold :math:`k - 1`, never their own; fold :math:`t \\bmod K` stays put.  The dependencies
then form a chain without a cycle, so the step is a composition of kernels each of which
leaves the product of targets invariant: the adaptation itself is valid MCMC.  From the
positions :math:`x` and gradients :math:`g` of the source fold:

- :math:`\\sigma` = the cross-chain standard deviation of :math:`x` (the metric);
- :math:`\\epsilon = \\min(1, \\tfrac12\\,\\lambda_{\\max}(E[(\\sigma g)(\\sigma g)^\\top])^{-1/2})`
  (the cap: at stationarity the whitened Fisher information dominates the inverse whitened
  correlation, Cramer-Rao, so the estimate is at least 1 and :math:`\\epsilon \\le 1/2`; a far
  larger one comes from chains whose spread is far below the target's, as from a single
  start at the mode, where the gradients vanish: uncapped, the step size was about 150 there,
  every proposal was rejected and the chains never moved);
- :math:`\\gamma = \\max(\\lambda_{\\max}(\\mathrm{Cov}[x / \\sigma])^{-1/2}, 1/(\\epsilon(t + 1)))`
  (the damping of the slowest direction; heavy damping early, which speeds convergence),

where :math:`\\lambda_{\\max}(\\Sigma)` is estimated by the ratio :math:`\\mathrm{tr}(\\Sigma^2) /
\\mathrm{tr}(\\Sigma)` with unbiased estimators of both (the paper's choice: it is below
:math:`\\lambda_{\\max}` but has a far smaller variance than a direct estimate).  The
statistics use :func:`mcgen.adaptation.ensemble.chain_gather` (one stacked array for the
whole run; padding chains weigh nothing).  ``finalize`` freezes, for every chain, the
values computed from *all* chains at the last step.  Folds need at least two chains each
(a fold with fewer keeps its parameters); hundreds of chains in all are the intended use.

**Limits.** Starts far in the tails can defeat this warmup.  On the Inference Gym's Brownian
motion with unknown scales (d = 32), 1024 chains started uniform in [-2, 2], it had not
converged after 750 warmup steps (largest ground-truth |z| about 2e5), and neither had
BlackJAX's ``meads_adaptation`` (6e5).  Chains falling from the far tail turn potential
energy into momentum faster than the early damping removes it and overshoot along the soft
direction of a scale parameter; the cross-chain :math:`\\sigma` of that coordinate grows, and
since the state keeps :math:`p = r / \\sigma`, the whitened momentum :math:`r = \\sigma p`
grows with it; the outlying gradients then shrink :math:`\\epsilon` (to 1e-6) and freeze
the ensemble.  Rescaling the kept momentum only downwards when :math:`\\sigma` grows stopped
the runaway but did not converge either (|z| 22 after 750 steps, 45 after 1500) and slowed
the 100-d Gaussian's convergence from a wide start (128 chains uniform in [-2, 2]: mean
log-ratio of the second moments to the truth +4.2 after 500 warmup steps against +0.9 to
+1.8), so it is used only along coordinates where the ensemble is far too narrow (above;
from those wide starts runs of 200 to 1000 warmup steps are unchanged bit for bit).

``Info.num_grad_evals`` is 1: one gradient per transition (a skipped fold pays it too).

**Random numbers.** A step takes its momentum noise and its first slice variable from one
call of :func:`mcgen.kernels._random.ghmc_draws` on the step's key (no ``split``; the
inverse error function with a logarithm read off the float's bits; both words of each
Threefry block from 16 coordinates up): with one leapfrog step per draw the generator is a
large share of the step (on the 100-d Gaussian at 1024 chains about 40% with ``split``,
``normal`` and ``uniform``, which took a quarter to a half longer than ``ghmc_draws``).
Draws remain a pure function of (seed, chain, phase, step); the stream differs from that
of versions before this generator.

References
----------
Hoffman, M. D. and Sountsov, P. (2022). Tuning-free generalized Hamiltonian Monte Carlo.
AISTATS 2022.
Neal, R. M. (2020). Non-reversibly updating a uniform [0,1] value for Metropolis
accept/reject decisions. arXiv:2001.11950.
Horowitz, A. M. (1991). A generalized guided Monte Carlo algorithm. Physics Letters B 268.

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> res = mc.run_chains(lambda x: -0.5 * jnp.sum(x**2), mc.meads(), init=jnp.zeros(5),
...                     num_chains=64, num_samples=200, num_warmup=300, progress=False, warn=False)
>>> res.samples.shape
(64, 200, 5)
>>> bool(float(res.last_state.params.step_size[0]) < 1.0 and abs(float(res.samples.var()) - 1.0) < 0.15)
True
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mcgen.adaptation.ensemble import chain_gather, chain_index, num_requested
from mcgen.kernels import _random
from mcgen.kernels._gradient import flatten
from mcgen.kernels._integrators import flat_value_and_grad, hamiltonian, leapfrog
from mcgen.kernels._metrics import check_num_steps, check_positive, check_step_size
from mcgen.kernels._proposal import cached_constructor, is_bad_logdensity, select
from mcgen.types import Kernel, Warmup


class MEADSParams(NamedTuple):
    step_size: jax.Array  # scalar epsilon
    inverse_mass: jax.Array  # (d,) diagonal sigma^2
    damping: jax.Array  # scalar gamma; alpha = 1 - exp(-2 epsilon gamma)
    momentum: jax.Array  # (d,) momentum of mass diag(1 / inverse_mass), persistent
    slice: jax.Array  # scalar in [-1, 1], persistent
    fresh: jax.Array  # bool: momentum and slice not drawn yet (set by init)


class MEADSState(NamedTuple):
    position: object
    logdensity: jax.Array
    logdensity_grad: object
    params: MEADSParams


class MEADSInfo(NamedTuple):
    accept_prob: jax.Array  # min(1, exp(-Delta H)), the Metropolis probability
    is_accepted: jax.Array
    is_divergent: jax.Array
    is_nonfinite: jax.Array
    num_grad_evals: jax.Array
    step_size: jax.Array
    energy: jax.Array
    damping: jax.Array


class MEADSWarmupState(NamedTuple):
    state: MEADSState
    count: jax.Array


def _refresh_fraction(step_size, damping):
    """:math:`\\alpha = 1 - e^{-2\\epsilon\\gamma}`: the share of the momentum's variance redrawn per step."""
    return -jnp.expm1(-2.0 * step_size * damping)


def _largest_eigenvalue(y, w, centered):
    """``tr(S^2) / tr(S)`` per fold, unbiased estimators of both, for ``S`` the (centered) second moment.

    ``y`` is ``(K, m, d)``, ``w`` the 0/1 row weights ``(K, m)``.  ``tr(S^2)`` is the mean over
    pairs of distinct rows of ``(y_i . y_j)^2``; it is computed from whichever of the
    ``d x d`` or the ``m x m`` Gram matrix is smaller.
    """
    n = jnp.sum(w, axis=1)
    y = y * w[..., None]
    sq = jnp.sum(y**2, axis=-1)  # (K, m)
    m, d = y.shape[1], y.shape[2]
    if d <= m:
        gram = jnp.einsum("kma,kmb->kab", y, y)
    else:
        gram = jnp.einsum("kia,kja->kij", y, y)
    pairs = jnp.sum(gram**2, axis=(1, 2)) - jnp.sum(sq**2, axis=1)
    # centering by the fold's mean costs one degree of freedom
    trace = jnp.sum(sq, axis=1) / (n - 1.0 if centered else n)
    return (pairs / (n * (n - 1.0))) / trace


def _fold_rows(n: int, epoch, num_real: int | None = None):
    """The row of every chain in the fold layout during ``epoch`` (a random permutation, the same in every chain).

    Chain ``i`` is in fold ``rows[i] % K``.  Epoch 0 keeps the identity; later epochs draw a
    permutation of the ``num_real`` requested chains from a fixed key (padding chains keep
    their rows, after them), so runs are reproducible, the assignment does not depend on the
    padding (the device count), and never on the chains' states (which keeps each warmup
    step valid MCMC).
    """
    num_real = n if num_real is None else num_real
    perm = jax.random.permutation(jax.random.fold_in(jax.random.key(0x4D454144), epoch), num_real)
    perm = jnp.concatenate([perm, jnp.arange(num_real, n)])
    return jnp.where(epoch == 0, jnp.arange(n), perm)


def _fold_parameters(x, g, w, num_folds: int, count, rows=None):
    """Step size, damping, inverse mass, ok and the far-too-narrow flags ``(K, d)`` of every fold: leading ``(K,)``.

    ``rows`` (optional) is each chain's row in the fold layout (row ``j`` is in fold ``j % K``).
    """
    n, d = x.shape
    if rows is not None:
        x, g, w = (jnp.zeros_like(a).at[rows].set(a) for a in (x, g, w))
    m = -(-n // num_folds)
    pad = m * num_folds - n

    def by_fold(a):  # row i to fold i % K: (m * K, ...) -> (K, m, ...)
        a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
        return jnp.swapaxes(a.reshape((m, num_folds) + a.shape[1:]), 0, 1)

    xf, gf, wf = by_fold(x), by_fold(g), by_fold(w)
    count_k = jnp.sum(wf, axis=1)  # (K,)
    mean = jnp.sum(wf[..., None] * xf, axis=1) / count_k[:, None]
    centered = jnp.where(wf[..., None] > 0, xf - mean[:, None, :], 0.0)
    var = jnp.sum(centered**2, axis=1) / (count_k[:, None] - 1.0)
    sd = jnp.sqrt(var)
    scaled_g = gf * sd[:, None, :]  # whitened gradients
    lam_grad = _largest_eigenvalue(scaled_g, wf, centered=False)
    lam_pos = _largest_eigenvalue(centered / sd[:, None, :], wf, centered=True)
    # capped at 1 (BlackJAX's meads_adaptation cites the paper's Algorithm 3 for the same cap): at
    # stationarity E[(sigma g)(sigma g)^T] >= the inverse whitened correlation (Cramer-Rao for
    # location), whose trace is >= d, so the estimate is >= 1 and the step size <= 1/2; a larger
    # one means the chains' spread is far below the target's (a tight start at the mode: sigma g
    # ~ sigma^2, an uncapped step size ~150 that rejected everything, for good)
    step_size = jnp.minimum(0.5 / jnp.sqrt(lam_grad), 1.0)
    damping = jnp.maximum(1.0 / jnp.sqrt(lam_pos), 1.0 / (step_size * (count.astype(x.dtype) + 1.0)))
    ok = (
        (count_k >= 2)
        & jnp.all(jnp.isfinite(var) & (var > 0), axis=1)
        & jnp.isfinite(step_size)
        & (step_size > 0)
        & jnp.isfinite(damping)
    )
    # per coordinate, at stationarity E[(sigma_i g_i)^2] >= 1 (Cramer-Rao: the Fisher information's
    # diagonal is >= 1 / var_i); far below, the chains' spread is far below the target's there
    flat = jnp.sum(wf[..., None] * scaled_g**2, axis=1) / count_k[:, None] < 0.01
    return step_size, damping, var, ok, flat


@cached_constructor
def meads(
    *,
    step_size: float | None = None,
    damping: float | None = None,
    num_folds: int = 4,
    max_energy_error: float = 1000.0,
    adapt: bool = True,
) -> Kernel:
    """Generalized HMC with MEADS's warmup: step size, damping and metric from other chains.

    Parameters
    ----------
    step_size
        Step size :math:`\\epsilon` in whitened coordinates before (or without) warmup
        (default 0.5).
    damping
        Damping :math:`\\gamma` before (or without) warmup (default 1.0): each step redraws
        the share :math:`1 - e^{-2\\epsilon\\gamma}` of the momentum's variance.
    num_folds
        :math:`K`, the folds of chains in warmup (the paper's 4); each fold needs two chains
        or more.
    max_energy_error
        Energy error above which a transition is reported as divergent.
    adapt
        Adapt in warmup (default); ``False`` makes warmup a burn-in with the given settings.

    Returns
    -------
    Kernel
        Its warmup pools statistics across chains (``chain_method="sequential"`` refuses it).
    """
    check_step_size(step_size, "meads")
    check_step_size(damping, "meads")
    check_num_steps(num_folds, "num_folds", "meads")
    if num_folds < 2:
        raise ValueError(f"meads: num_folds must be at least 2 (a fold adapts from another), got {num_folds}")
    check_positive(max_energy_error, "max_energy_error", "meads")

    def init(position, logdensity_fn) -> MEADSState:
        flat, unravel = ravel_pytree(position)
        if not jnp.issubdtype(flat.dtype, jnp.floating):
            raise ValueError(f"meads needs a floating-point position, got dtype {flat.dtype}")
        logdensity, grad = flat_value_and_grad(logdensity_fn, unravel)(flat)
        dtype = flat.dtype
        params = MEADSParams(
            jnp.asarray(0.5 if step_size is None else step_size, dtype),
            jnp.ones_like(flat),
            jnp.asarray(1.0 if damping is None else damping, dtype),
            jnp.zeros_like(flat),
            jnp.zeros((), dtype),
            jnp.ones((), bool),
        )
        return MEADSState(position, logdensity.astype(dtype), unravel(grad), params)

    def step(key, state: MEADSState, logdensity_fn):
        q, g, f, unravel = flatten(state, logdensity_fn)
        params = state.params
        dtype = q.dtype
        eps = params.step_size
        scale = jnp.sqrt(params.inverse_mass)
        alpha = jnp.where(params.fresh, 1.0, _refresh_fraction(eps, params.damping)).astype(dtype)
        # the noise and the first slice variable from one generator call (both words of each block)
        xi, drawn = _random.ghmc_draws(key, q.shape[0], dtype)
        # params.momentum is the momentum p of mass diag(1 / sigma^2); r = sigma p is N(0, I)
        r = jnp.sqrt(1.0 - alpha) * scale * params.momentum + jnp.sqrt(alpha) * xi
        shifted = jnp.mod(params.slice + 1.0 + 0.5 * alpha, 2.0) - 1.0
        s = jnp.where(params.fresh, drawn, shifted)

        # the shared leapfrog and Hamiltonian in p = r / sigma (mass diag(1 / sigma^2)): the
        # kinetic energy is summed in a fixed order, whatever the number of chains beside it
        p0 = r / scale
        q1, p1, logdensity1, g1 = leapfrog(f, params.inverse_mass, q, p0, g, eps)
        h0 = hamiltonian(state.logdensity, p0, params.inverse_mass)
        h1 = hamiltonian(logdensity1, p1, params.inverse_mass)
        delta = h1 - h0
        is_nonfinite = is_bad_logdensity(logdensity1)
        delta = jnp.where(is_nonfinite | jnp.isnan(delta), jnp.inf, delta)
        do_accept = jnp.log(jnp.abs(s)) < -delta
        accept_prob = jnp.exp(jnp.minimum(-delta, 0.0))

        new_slice = jnp.where(do_accept, s * jnp.exp(jnp.where(do_accept, delta, 0.0)), s)
        new_momentum = jnp.where(do_accept, p1, -p0)
        moved = MEADSState(unravel(q1), logdensity1.astype(dtype), unravel(g1), params)
        new = select(do_accept, moved, state)
        new = new._replace(
            params=params._replace(momentum=new_momentum, slice=new_slice.astype(dtype), fresh=jnp.zeros((), bool))
        )
        info = MEADSInfo(
            accept_prob,
            do_accept,
            delta > max_energy_error,
            is_nonfinite,
            jnp.ones((), jnp.int32),
            eps,
            jnp.where(do_accept, h1, h0),
            params.damping,
        )
        return new, info

    def warmup(num_steps: int) -> Warmup:  # MEADS adapts at every step for as long as warmup lasts

        def w_init(state: MEADSState) -> MEADSWarmupState:
            return MEADSWarmupState(state, jnp.zeros((), jnp.int32))

        def gathered_parameters(state: MEADSState, count, folds: int):
            """Every fold's parameters, computed once from all chains, and this chain's fold."""
            x, g = ravel_pytree(state.position)[0], ravel_pytree(state.logdensity_grad)[0]
            # the step count travels as a float beside the positions and gradients where the float
            # holds every count exactly (below 2^24 steps in float32): one all-gather per step
            # across devices, not two
            exact = num_steps < 2 ** (jnp.finfo(x.dtype).nmant + 1)
            (xs, gs, counts), w = chain_gather((x, g, count.astype(x.dtype) if exact else count))
            step = counts[0].astype(count.dtype)  # the same in every chain, and not batched: computed once
            n = xs.shape[0]
            rows = _fold_rows(n, step // folds, num_requested(n)) if folds > 1 else None
            fold = jnp.zeros((), jnp.int32) if rows is None else rows[chain_index()] % folds
            return _fold_parameters(xs, gs, w.astype(x.dtype), folds, step, rows), fold

        def w_step(key, ws: MEADSWarmupState, logdensity_fn):
            state, count = ws.state, ws.count
            params = state.params
            dtype = params.step_size.dtype
            (eps_k, gamma_k, var_k, ok_k, flat_k), fold = gathered_parameters(state, count, num_folds)
            source = (fold - 1) % num_folds
            ok = ok_k[source]
            inverse_mass = jnp.where(ok, var_k[source], params.inverse_mass).astype(dtype)
            step_size = jnp.where(ok, eps_k[source], params.step_size).astype(dtype)
            # where the source fold's spread is far below the target's (the ensemble expands), keep
            # the whitened momentum r = sigma p where sigma grows (see the module docstring)
            expanding = ok & flat_k[source]
            shrink = jnp.where(expanding, jnp.minimum(1.0, jnp.sqrt(params.inverse_mass / inverse_mass)), 1.0)
            shrink = shrink.astype(dtype)
            params = params._replace(
                step_size=step_size,
                damping=jnp.where(ok, gamma_k[source], params.damping).astype(dtype),
                inverse_mass=inverse_mass,
                momentum=params.momentum * shrink,
            )
            state = state._replace(params=params)
            new, info = step(key, state, logdensity_fn)
            held_out = fold == count % num_folds
            new = select(held_out, state, new)
            info = info._replace(is_accepted=info.is_accepted & ~held_out)
            return MEADSWarmupState(new, count + 1), info

        def w_finalize(ws: MEADSWarmupState) -> MEADSState:
            # every chain samples with the values computed from all chains at the last step
            state = ws.state
            params = state.params
            dtype = params.step_size.dtype
            eps, gamma, var, ok, _ = (a[0] for a in gathered_parameters(state, ws.count, 1)[0])
            params = params._replace(
                step_size=jnp.where(ok, eps, params.step_size).astype(dtype),
                damping=jnp.where(ok, gamma, params.damping).astype(dtype),
                inverse_mass=jnp.where(ok, var, params.inverse_mass).astype(dtype),
            )
            return state._replace(params=params)

        return Warmup(w_init, w_step, w_finalize)

    return Kernel(init, step, warmup if adapt else None)


__all__ = ["meads", "MEADSInfo", "MEADSParams", "MEADSState"]
