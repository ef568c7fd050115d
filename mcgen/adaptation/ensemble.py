"""Statistics pooled across chains: the collectives a warmup may use over the chain axis.

``run_chains`` maps a warmup over the chains with a named axis, :data:`CHAIN_AXIS`
(``"chains"``): ``vmap(..., axis_name="chains")`` on one device.  Across devices and hosts
each device maps its own chains in its own program (so a loop of per-chain length, such as a
trajectory's leapfrog steps, waits for no other device), and the functions here reduce over
the device's chains and then across the devices: they cover *every* chain of the run.  A
raw collective such as ``jax.lax.pmean(x, "chains")`` in a warmup's ``step`` also reduces over
every chain, but across devices it makes that warmup run as one program partitioned over all
devices, where every iteration of such a loop waits for a collective (``benchmarks/
bench_sharded_warmup.py``: ChEES's warmup on Brownian motion, 64 chains on 2 simulated CPU
devices, 110 us per gradient and chain that way, 15-17 us through these functions, which
join the values a step pools into one collective per call).

The driver may run a few *padding* chains beside the requested ones (so that each device
holds an equal, well-vectorized batch; they are discarded).  A raw ``pmean`` counts them; the
functions here do not: :func:`chain_mean` and :func:`chain_sum` weight each chain by
:func:`chain_weight`, which is 1 for the requested chains and 0 for padding.  Kernels of mcgen
use these, never raw collectives, so their adapted values do not depend on the padding.

Outside ``run_chains`` (a user's own ``jax.vmap(step, axis_name="chains")``) every chain
counts.  ``chain_method="sequential"`` maps chains one at a time with ``lax.map`` and has no
chain axis: a warmup that pools statistics fails there with a ``ValueError`` naming the
remedy.

What is guaranteed.  One pooled reduction over the same per-chain values gives the same
result on one device and on many up to the order of the floating-point additions
(per-device partial sums, then a sum across devices): agreement to rounding, not bit for bit.  An
ensemble warmup is a nonlinear system (a shared step size, accept thresholds), so those
rounding differences grow as it runs: ChEES-HMC's adapted values agree to about 1e-6 after 5
warmup steps on 1 and 8 devices, and after some tens of steps the two runs are different,
equally valid, realizations (``tests/test_ensemble.py``).  A statistic computed from
:func:`chain_gather` (the stacked values of every chain) sees the same array on any device
count, so it can agree bit for bit: the gradient kernels' pooled metric
(``warmup_pool="metric"``) did on 1 and 8 devices, where their pooled step size
(``"all"``, a mean) agreed to 5e-7.  A run is reproducible bit for bit
on the same devices with the same chain count; with another chain count the ensemble (and
so every adapted value) is a different one.  Kernels that pool nothing keep every guarantee
of ``run_chains`` (chain ``i``'s draws do not depend on the chain or device count).

Example
-------
>>> import jax, jax.numpy as jnp
>>> from mcgen.adaptation.ensemble import chain_mean
>>> x = jnp.arange(4.0)
>>> jax.vmap(lambda xi: chain_mean(xi), axis_name="chains")(x)
Array([1.5, 1.5, 1.5, 1.5], dtype=float32)
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "CHAIN_AXIS",
    "chain_gather",
    "chain_index",
    "chain_mean",
    "chain_means",
    "chain_sum",
    "chain_weight",
    "num_chains",
    "num_requested",
]

CHAIN_AXIS = "chains"
"""The name of the chain axis that ``run_chains`` maps warmups over."""

# the name of a device's own chain axis when the chains are split over devices (the ``split`` of
# _AxisContext): apart from CHAIN_AXIS, so that a raw collective over "chains" is unbound there
_LOCAL_AXIS = "chains_on_device"


class _AxisContext(NamedTuple):
    method: str  # "vectorized" or "sequential"
    num_real: int  # requested chains; ids >= num_real are padding
    # chains split over devices, each device mapping its own: (device axis, chains per device);
    # the map over a device's chains is then named by the driver's local axis, not CHAIN_AXIS
    split: tuple[str, int] | None = None


_CONTEXT: contextvars.ContextVar[_AxisContext | None] = contextvars.ContextVar("mcgen_chain_axis", default=None)


@contextlib.contextmanager
def _chain_axis(method: str, num_real: int, split: tuple[str, int] | None = None):
    """Set, while a warmup is traced by the driver, how chains are mapped and how many count."""
    token = _CONTEXT.set(_AxisContext(method, int(num_real), split))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _check_axis() -> _AxisContext | None:
    context = _CONTEXT.get()
    if context is not None and context.method == "sequential":
        raise ValueError(
            "this kernel's warmup pools statistics across chains (mcgen.adaptation.ensemble), but "
            "chain_method='sequential' maps chains one at a time and has no chain axis; run it with "
            "chain_method='vectorized' or 'sharded'"
        )
    return context


def chain_weight() -> jax.Array:
    """1.0 for a requested chain, 0.0 for a padding chain of ``run_chains`` (a per-chain scalar).

    Must be called inside a map over :data:`CHAIN_AXIS`.
    """
    context = _check_axis()
    index = chain_index()  # also checks that the axis is bound
    num_real = jnp.iinfo(jnp.int32).max if context is None else context.num_real
    return (index < num_real).astype(jnp.float32)


def chain_sum(x, weight=None):
    """:math:`\\sum_i w_i x_i` over the requested chains (every leaf of the pytree ``x``).

    ``weight`` (a per-chain scalar, optional) multiplies the padding mask; ``x`` may be a
    pytree, each leaf summed over chains and returned to every chain (all leaves in one
    collective).
    """
    return _psum_joined(_masked(x, weight)[0])


def _masked(x, weight):
    """Each leaf of ``x`` times the chain's weight (0 for padding), and that weight."""
    w = chain_weight()
    if weight is not None:
        w = w * weight
    # where, not a product: a chain with zero weight may hold NaN or inf (a divergent proposal)
    masked = jax.tree_util.tree_map(lambda leaf: jnp.where(w > 0, w.astype(leaf.dtype) * leaf, jnp.zeros_like(leaf)), x)
    one = jnp.ones(())
    return masked, jnp.where(w > 0, w.astype(one.dtype), jnp.zeros_like(one))


def _local_axis(context: _AxisContext | None) -> str:
    return CHAIN_AXIS if context is None or context.split is None else _LOCAL_AXIS


def _psum(x):
    """The sum over every chain: over the chain axis, or a device's chains and then the devices."""
    context = _CONTEXT.get()
    total = jax.lax.psum(x, _local_axis(context))
    if context is not None and context.split is not None:
        total = jax.lax.psum(total, context.split[0])
    return total


def _joined(tree, collective):
    """``collective`` applied to every leaf of ``tree`` at once: the leaves of one dtype are
    flattened and joined into one vector, so there is one collective per dtype, which XLA
    cannot split again (an all-reduce of a tuple runs as one rendezvous per array).
    ``collective`` maps a vector ``(n,)`` to ``(..., n)``; each leaf comes back ``(..., *shape)``."""
    leaves, structure = jax.tree_util.tree_flatten(tree)
    leaves = [jnp.asarray(leaf) for leaf in leaves]
    out: list = [None] * len(leaves)
    for dtype in dict.fromkeys(leaf.dtype for leaf in leaves):
        picked = [i for i, leaf in enumerate(leaves) if leaf.dtype == dtype]
        total = collective(jnp.concatenate([leaves[i].reshape(-1) for i in picked]))
        start = 0
        for i in picked:
            size = leaves[i].size
            out[i] = total[..., start : start + size].reshape(total.shape[:-1] + leaves[i].shape)
            start += size
    return jax.tree_util.tree_unflatten(structure, out)


def _psum_joined(tree):
    """:func:`_psum` of every leaf of ``tree``, in one collective per dtype (:func:`_joined`)."""
    return _joined(tree, _psum)


def num_chains(weight=None) -> jax.Array:
    """The number of requested chains (or the total ``weight`` over them)."""
    if weight is None:
        return jnp.asarray(_num_real(), jnp.ones(()).dtype)
    return chain_sum(jnp.ones(()), weight)


def requested_chains() -> int | None:
    """The number of chains requested of the run being traced (``run_chains``'s
    ``num_chains``, padding left out), a Python int known when tracing; ``None`` outside
    ``run_chains`` (a user's own map).  For choices of how to compute, never of what: a
    chain's draws must not depend on it beyond rounding."""
    context = _CONTEXT.get()
    return None if context is None else context.num_real


def _num_real() -> int:
    """The number of requested chains, known when the program is traced (no collective)."""
    context = _check_axis()
    if context is not None:
        return context.num_real
    return jax.lax.psum(1, CHAIN_AXIS)  # a user's own map: every chain counts (the axis size)


def chain_mean(x, weight=None):
    """The mean of ``x`` over the requested chains, weighted by ``weight`` when given.

    Padding chains of ``run_chains`` count for nothing.  With weights that sum to zero the
    result is NaN; callers decide what to do then.
    """
    return chain_means([x], [weight])[0]


def chain_means(xs, weights=None) -> tuple:
    """:func:`chain_mean` of each pytree in ``xs``, each with the weight at the same position
    of ``weights`` (a sequence of per-chain scalars and ``None``; ``None``: no weights), all
    in one collective.

    Across devices each collective is a rendezvous of every device (about 60 us between
    simulated CPU devices, ``benchmarks/bench_collectives.py``), so a warmup step that needs
    several independent means should ask for them together: the values (and weight totals) are
    flattened into one array per dtype and summed by one all-reduce.  Each result is that of
    its own :func:`chain_mean` call up to the order of the floating-point additions.

    Example
    -------
    >>> import jax, jax.numpy as jnp
    >>> from mcgen.adaptation.ensemble import chain_means
    >>> def f(x):
    ...     return chain_means([x, x**2], [None, jnp.where(x > 0, 1.0, 0.0)])
    >>> plain, positive = jax.vmap(f, axis_name="chains")(jnp.array([-1.0, 1.0, 3.0]))
    >>> float(plain[0]), float(positive[0])
    (1.0, 5.0)
    """
    xs = list(xs)
    weights = [None] * len(xs) if weights is None else list(weights)
    if len(weights) != len(xs):
        raise ValueError(f"chain_means: {len(xs)} values but {len(weights)} weights")
    terms = []
    for x, weight in zip(xs, weights):
        masked, w = _masked(x, weight)
        terms.append((masked, None if weight is None else w))
    sums = _psum_joined(terms)  # one collective for every term
    out = []
    for (total_x, total_w), weight in zip(sums, weights):
        total = num_chains() if weight is None else total_w
        out.append(jax.tree_util.tree_map(lambda s, t=total: s / t.astype(s.dtype), total_x))
    return tuple(out)


def _same_in_every_chain(x):
    """``x``, a value the caller knows to be the same in every chain, as one unbatched value
    (its maximum over the device's own chains: no collective across devices).  A ``cond`` on it
    stays a branch under ``vmap``, so a collective inside runs only when it is taken."""
    return jax.lax.pmax(x, _local_axis(_check_axis()))


def chain_index() -> jax.Array:
    """This chain's position along the chain axis (an int32 scalar, 0 for the first chain).

    Padding chains of ``run_chains`` come after the requested ones.  Must be called inside a
    map over :data:`CHAIN_AXIS`.
    """
    context = _check_axis()
    if context is not None and context.split is not None:
        device_axis, per_device = context.split
        return jax.lax.axis_index(device_axis) * per_device + jax.lax.axis_index(_local_axis(context))
    return jax.lax.axis_index(CHAIN_AXIS)


def chain_gather(x):
    """Every chain's ``x``, stacked along a leading axis, and each chain's weight (1, or 0 for padding).

    Returns ``(stacked, weights)``: ``stacked`` has the pytree structure of ``x``, each leaf
    with a leading axis over all the chains of the run (padding included, in the order of
    :func:`chain_index`), and ``weights`` is :func:`chain_weight` of every chain, shape
    ``(n,)``.  Under ``vmap`` the stacked values are one unbatched array, so statistics that
    need more than sums (a Gram matrix, quantiles) are computed once, not once per chain.
    Any statistic must weight the rows by ``weights`` so that padding counts for nothing.

    Example
    -------
    >>> import jax, jax.numpy as jnp
    >>> from mcgen.adaptation.ensemble import chain_gather
    >>> stacked, w = jax.vmap(lambda xi: chain_gather(xi), axis_name="chains")(jnp.arange(3.0))
    >>> stacked[0], w[0]
    (Array([0., 1., 2.], dtype=float32), Array([1., 1., 1.], dtype=float32))
    """
    chain_weight()  # checks the chain axis
    context = _CONTEXT.get()
    local = _local_axis(context)

    def gather(leaf):
        out = jax.lax.all_gather(leaf, local)
        if context is not None and context.split is not None:  # the devices' blocks in chain order
            out = jax.lax.all_gather(out, context.split[0], tiled=True)
        return out

    gathered = _joined(x, gather)  # one collective per dtype
    total = jax.lax.psum(1, local)  # the chain count: a constant, as psum of a Python number is
    if context is not None and context.split is not None:
        total *= jax.lax.psum(1, context.split[0])
    # each chain's weight is known when tracing too: requested chains first, then padding
    weights = (jnp.arange(total) < num_requested(total)).astype(jnp.float32)  # as chain_weight
    return gathered, weights


def num_requested(total: int) -> int:
    """The number of requested chains, a Python int known when tracing: ``run_chains``'s ``num_chains``.

    ``total`` is the length of the chain axis (padding included); outside ``run_chains`` every
    chain counts and ``total`` is returned.  The requested chains are the first ones
    (:func:`chain_index` below this number).  A statistic that depends on the chain count
    (a random assignment of chains to groups, say) uses this, not ``total``, so that it does
    not change with the padding, that is with the device count.
    """
    context = _check_axis()
    return total if context is None else min(int(context.num_real), total)
