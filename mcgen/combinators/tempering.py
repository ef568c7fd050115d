r"""Parallel tempering (replica exchange) around any mcgen kernel, non-reversible by default.

:math:`N` replicas run the inner kernel, vmapped, on the tempered family

.. math::

    \log \pi_\beta(x) = \ell_0(x) + \beta\, V(x), \qquad 0 \le \beta_0 < \dots < \beta_{N-1} = 1,

where :math:`\ell_0` is the log-reference and :math:`V = \log\pi - \ell_0` the log-likelihood,
so :math:`\pi_1 = \pi` and :math:`\pi_0` is the reference.  Three ways to say what they are:

* ``logdensity_fn`` alone: :math:`\ell_0 = 0`, the family :math:`\pi^\beta` (needs
  :math:`\beta_0 > 0`; default schedule geometric from ``min_beta``);
* ``logdensity_fn`` with ``reference=log_ref``: :math:`\pi_\beta = \text{ref}^{1-\beta}\pi^\beta`;
* ``PriorLikelihood(log_prior, log_likelihood)`` (or a plain tuple outside ``run_chains``) as
  the ``logdensity_fn`` argument: :math:`\pi_\beta = \text{prior}\cdot\text{lik}^\beta`.  It
  is callable (the posterior), so ``run_chains`` takes it like any log-density.

After every local step each replica caches :math:`\ell_0` and :math:`V` at its position (and
their gradients when the inner state has ``logdensity_grad``).  Swaps of adjacent pairs use
only these caches (see :mod:`mcgen.combinators._tempering_schedule`); a state moved to another
temperature gets its ``logdensity`` (and ``logdensity_grad``) recomputed from them, while the
tunables ``params`` stay with the temperature.  ``swap="nonreversible"`` attempts the even
pairs at even steps and the odd pairs at odd steps (DEO, Syed et al. 2022), so a state keeps
climbing; ``"reversible"`` picks the even or odd set at random (SEO).

**Warmup** runs every replica's own warmup (each temperature adapts its own tunables) and,
with ``adapt_schedule=True``, re-places the betas at the end of rounds of doubling length
to equalize the estimated communication barrier.  **Draws**: ``state.position`` is the
:math:`\beta = 1` replica (all replicas, stacked, with ``return_all=True``).  **Info**: per-pair
``swap_accept_prob`` and ``is_swapped``, cumulative ``round_trips``, the running barrier
estimate ``barrier`` (:math:`\Lambda`), the stepping-stone ``log_normalizer`` (with a
normalized reference and :math:`\beta_0 = 0`, else NaN), ``replicas`` (inner infos).

References
----------
Syed, S., Bouchard-Côté, A., Deligiannidis, G. and Doucet, A. (2022). Non-reversible parallel
tempering: a scalable highly parallel MCMC scheme. JRSS-B 84, 321–350.
Geyer, C. J. (1991). Markov chain Monte Carlo maximum likelihood. Interface Proceedings.

Example
-------
>>> import jax.numpy as jnp, mcgen as mc
>>> from mcgen.combinators.tempering import parallel_tempering
>>> res = mc.run_chains(mc.testing.bimodal_1d(3.0).logdensity_fn, parallel_tempering(mc.rwmh(), 6),
...                     init=jnp.zeros(()), num_samples=1000, progress=False)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from mcgen.combinators import _tempering_schedule as sched
from mcgen.kernels import _random
from mcgen.kernels._proposal import cached_constructor
from mcgen.types import Kernel, Warmup, no_warmup

__all__ = ["PTInfo", "PTParams", "PTState", "PriorLikelihood", "init_replicas", "parallel_tempering"]


@dataclasses.dataclass(frozen=True)
class PriorLikelihood:
    """A target given as ``log_prior + log_likelihood``; tempered as prior * likelihood^beta.

    Equal pairs compare equal, so ``run_chains`` reuses what it compiled for an equal target.
    """

    log_prior: Callable
    log_likelihood: Callable

    def __call__(self, position):
        return self.log_prior(position) + self.log_likelihood(position)


class PTParams(NamedTuple):
    betas: jax.Array  # (N,) increasing inverse temperatures, betas[-1] == 1


class Cache(NamedTuple):
    log_reference: jax.Array  # (N,)
    log_likelihood: jax.Array  # (N,)
    grad_reference: Any  # stacked gradients, or None when the inner state keeps none
    grad_likelihood: Any


class PTState(NamedTuple):
    position: Any  # the beta = 1 replica's position (all replicas with return_all=True)
    logdensity: jax.Array  # target log-density there
    replicas: Any  # stacked inner states (inner warmup states during warmup)
    cache: Cache
    params: PTParams
    index: sched.IndexProcess
    swap_stats: sched.SwapStats
    step: jax.Array  # int32 step counter (parity of the non-reversible swaps)


class PTInfo(NamedTuple):
    accept_prob: jax.Array  # the beta = 1 replica's local acceptance
    is_accepted: jax.Array
    swap_accept_prob: jax.Array  # (N-1,)
    is_swapped: jax.Array  # (N-1,)
    round_trips: jax.Array
    barrier: jax.Array
    log_normalizer: jax.Array
    replicas: Any  # stacked inner infos


class PTWarmupState(NamedTuple):
    state: PTState  # replicas are the inner warmup states
    rejection_sum: jax.Array  # (N-1,) over the current round
    round_count: jax.Array  # steps in the current round
    step: jax.Array  # warmup steps taken


def _split_fns(logdensity_fn, reference):
    """(log-reference, log-likelihood) functions of the target given at call time."""
    if isinstance(logdensity_fn, tuple):  # a plain (log_prior, log_likelihood) pair
        logdensity_fn = PriorLikelihood(*logdensity_fn)
    if isinstance(logdensity_fn, PriorLikelihood):
        if reference is not None:
            raise ValueError("parallel_tempering: give a reference or a (log_prior, log_likelihood) pair, not both")
        return logdensity_fn.log_prior, logdensity_fn.log_likelihood
    if reference is None:
        return (lambda x: jnp.zeros((), _float_dtype(x))), logdensity_fn
    return reference, (lambda x: logdensity_fn(x) - reference(x))


def _float_dtype(position):
    dtype = jnp.result_type(jax.tree_util.tree_leaves(position)[0])
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def _tempered(split, beta):
    return lambda x: split[0](x) + beta * split[1](x)


def _kernel_state(s):
    return _kernel_state(s.state) if "state" in getattr(s, "_fields", ()) else s


def _put_kernel_state(s, new):
    if "state" in getattr(s, "_fields", ()):
        return s._replace(state=_put_kernel_state(s.state, new))
    return new


def _evaluate(split, positions, with_grad: bool) -> Cache:
    """Log-reference and log-likelihood (with gradients if asked) of every replica."""
    value = (
        (lambda fn: jax.vmap(jax.value_and_grad(fn))(positions))
        if with_grad
        else (lambda fn: (jax.vmap(fn)(positions), None))
    )
    (lr, gr), (ll, gl) = value(split[0]), value(split[1])
    return Cache(lr, ll, gr, gl)


def _refreshed(inner, cache: Cache, betas):
    """Inner kernel states whose cached log-density (and gradient) match ``betas``."""
    lr, ll = cache.log_reference, cache.log_likelihood
    new = inner._replace(logdensity=(lr + betas * ll).astype(inner.logdensity.dtype))
    if cache.grad_reference is not None:

        def combine(g0, g1):
            b = betas.reshape((-1,) + (1,) * (g0.ndim - 1)).astype(g0.dtype)
            return g0 + b * g1

        new = new._replace(logdensity_grad=jax.tree_util.tree_map(combine, cache.grad_reference, cache.grad_likelihood))
    return new


def _with_replicas(state: PTState, replicas, cache: Cache, return_all: bool) -> PTState:
    inner = _kernel_state(replicas)
    position = inner.position if return_all else jax.tree_util.tree_map(lambda a: a[-1], inner.position)
    logdensity = cache.log_reference[-1] + cache.log_likelihood[-1]
    return state._replace(position=position, logdensity=logdensity, replicas=replicas, cache=cache)


def _pt_step(key, state: PTState, logdensity_fn, inner_step, *, reference, reversible, return_all):
    split = _split_fns(logdensity_fn, reference)
    betas = state.params.betas
    key_local, key_swap = _random.split(key)
    keys = _random.split(key_local, betas.shape[0])
    replicas, infos = jax.vmap(lambda k, s, b: inner_step(k, s, _tempered(split, b)))(keys, state.replicas, betas)
    inner = _kernel_state(replicas)
    cache = _evaluate(split, inner.position, "logdensity_grad" in inner._fields)
    # swaps from the cached log-likelihoods; states move, tunables stay with their temperature
    accept_prob = sched.swap_accept_prob(betas, cache.log_likelihood)
    is_swapped, perm = sched.propose_swaps(key_swap, accept_prob, state.step, reversible)
    swap_stats = sched.swap_stats_update(state.swap_stats, betas, cache.log_likelihood, accept_prob)
    moved = jax.tree_util.tree_map(lambda a: a[perm], (inner.position, cache))
    inner = _refreshed(inner._replace(position=moved[0]), moved[1], betas)
    replicas = _put_kernel_state(replicas, inner)
    new = _with_replicas(state, replicas, moved[1], return_all)._replace(
        index=sched.index_update(state.index, perm), swap_stats=swap_stats, step=state.step + 1
    )
    log_z = sched.log_normalizer(swap_stats, betas, not _no_reference(logdensity_fn, reference))
    nan = jnp.full(betas.shape, jnp.nan, betas.dtype)  # inner infos without these (Gibbs) give NaN
    info = PTInfo(
        getattr(infos, "accept_prob", nan)[-1],
        getattr(infos, "is_accepted", nan)[-1],
        accept_prob,
        is_swapped,
        new.index.round_trips,
        sched.barrier(swap_stats),
        log_z,
        infos,
    )
    return new, info


def _no_reference(logdensity_fn, reference) -> bool:  # the family pi^beta
    return reference is None and not isinstance(logdensity_fn, (tuple, PriorLikelihood))


def init_replicas(
    kernel: Kernel, positions, logdensity_fn, betas, *, reference=None, return_all: bool = False
) -> PTState:
    """A :class:`PTState` with replica ``k`` at ``positions[k]`` (leading axis :math:`N`).

    ``parallel_tempering(...).init`` starts every replica at one position; this starts them
    apart (e.g. at exact draws of each tempered target, for an invariance check).  Pass the
    same ``reference`` and ``return_all`` as to :func:`parallel_tempering`.
    """
    split = _split_fns(logdensity_fn, reference)
    n = betas.shape[0]
    replicas = jax.vmap(lambda x, beta: kernel.init(x, _tempered(split, beta)))(positions, betas)
    cache = _evaluate(split, replicas.position, "logdensity_grad" in replicas._fields)
    # the first four fields are filled in below
    empty = PTState(
        None,  # pyright: ignore[reportArgumentType]
        None,  # pyright: ignore[reportArgumentType]
        None,  # pyright: ignore[reportArgumentType]
        None,  # pyright: ignore[reportArgumentType]
        PTParams(betas),
        sched.index_init(n),
        sched.swap_stats_init(n, betas.dtype),
        jnp.zeros((), jnp.int32),
    )
    return _with_replicas(empty, replicas, cache, return_all)


@cached_constructor
def parallel_tempering(
    kernel: Kernel,
    num_temps: int | None = None,
    betas=None,
    swap: str = "nonreversible",
    adapt_schedule: bool = True,
    reference: Callable | None = None,
    *,
    return_all: bool = False,
    min_beta: float = 1e-2,
) -> Kernel:
    """Parallel tempering of ``kernel`` over ``num_temps`` inverse temperatures.

    Parameters
    ----------
    kernel
        Any mcgen kernel (or combinator) run at every temperature with its own tunables.
    num_temps
        Number of replicas :math:`N \\ge 2` (default 8; taken from ``betas`` when given).
    betas
        Starting schedule, strictly increasing to 1.  Default: equally spaced from 0 with a
        reference (``reference=`` or a ``PriorLikelihood`` target), else geometric from
        ``min_beta``.
    swap
        ``"nonreversible"`` (deterministic even/odd) or ``"reversible"`` (random even/odd).
    adapt_schedule
        Re-place the betas during warmup to equalize the communication barrier.
    reference
        Log-density of the reference :math:`\\beta = 0` distribution (normalized for
        ``log_normalizer``).  Mutually exclusive with a ``PriorLikelihood`` target.
    return_all
        Make ``state.position`` all replicas stacked (leading axis :math:`N`).
    min_beta
        Lowest beta of the default schedule when there is no reference.

    Returns
    -------
    Kernel
        State :class:`PTState`, info :class:`PTInfo`, and a warmup.
    """
    num_temps, betas = sched.check_settings(num_temps, betas, swap)
    if betas is None and not 0.0 < min_beta < 1.0:
        raise ValueError(f"parallel_tempering: min_beta must lie in (0, 1), got {min_beta!r}")
    options = dict(reference=reference, reversible=swap == "reversible", return_all=return_all)

    def init(position, logdensity_fn) -> PTState:
        flat = _no_reference(logdensity_fn, reference)
        ladder = betas if betas is not None else sched.default_betas(num_temps, not flat, min_beta)
        if flat and ladder[0] == 0.0:
            raise ValueError(
                "parallel_tempering: betas[0] = 0 without a reference is the flat density; "
                "give reference= or a PriorLikelihood target, or start betas above 0"
            )
        b = jnp.asarray(ladder, _float_dtype(position))
        positions = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_temps,) + jnp.shape(x)), position)
        return init_replicas(kernel, positions, logdensity_fn, b, reference=reference, return_all=return_all)

    def step(key, state: PTState, logdensity_fn):
        return _pt_step(key, state, logdensity_fn, kernel.step, **options)

    def warmup(num_steps: int) -> Warmup:
        inner_w = (kernel.warmup or no_warmup(kernel))(num_steps)
        ends = jnp.asarray(sched.round_ends(num_steps) if adapt_schedule else (-1,), jnp.int32)

        def w_init(state: PTState) -> PTWarmupState:
            zero = jnp.zeros((), jnp.int32)
            st = state._replace(replicas=jax.vmap(inner_w.init)(state.replicas))
            return PTWarmupState(st, jnp.zeros(num_temps - 1, state.params.betas.dtype), zero, zero)

        def w_step(key, ws: PTWarmupState, logdensity_fn):
            st, info = _pt_step(key, ws.state, logdensity_fn, inner_w.step, **options)
            rej = ws.rejection_sum + (1.0 - info.swap_accept_prob)
            count = ws.round_count + 1
            new_betas = sched.equalize_barrier(st.params.betas, rej / count.astype(rej.dtype))
            update = jnp.any(ws.step == ends)
            b = jnp.where(update, new_betas, st.params.betas)
            inner = _refreshed(_kernel_state(st.replicas), st.cache, b)
            st = st._replace(replicas=_put_kernel_state(st.replicas, inner), params=PTParams(b))
            rej, count = jnp.where(update, 0.0, rej).astype(rej.dtype), jnp.where(update, 0, count)
            return PTWarmupState(st, rej, count, ws.step + 1), info

        def w_finalize(ws: PTWarmupState) -> PTState:
            st = ws.state
            return st._replace(
                replicas=jax.vmap(inner_w.finalize)(st.replicas),
                index=sched.index_init(num_temps),
                swap_stats=sched.swap_stats_init(num_temps, st.params.betas.dtype),
            )

        return Warmup(w_init, w_step, w_finalize)

    return Kernel(init, step, warmup)
