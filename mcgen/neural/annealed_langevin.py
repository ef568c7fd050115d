r"""Annealed Langevin dynamics (Song & Ermon 2019) over a noise-level ladder.

A noise-conditional score model :math:`s(x, \sigma) \approx \nabla_x \log p_\sigma(x)` gives the
score of the data distribution convolved with :math:`\mathcal N(0, \sigma^2 I)` for a
decreasing ladder :math:`\sigma_1 > \sigma_2 > \dots > \sigma_L`.  Large noise levels connect
the modes, so Langevin dynamics mixes there; annealing down the ladder then carries the draws
into the modes with the right proportions.  At level :math:`i` the step size is
:math:`\alpha_i = \epsilon\, \sigma_i^2/\sigma_L^2` (so the signal-to-noise ratio of an update
is the same on every level), and :math:`T` unadjusted Langevin steps are taken:

.. math::

    x \leftarrow x + \frac{\alpha_i}{2} s(x, \sigma_i) + \sqrt{\alpha_i}\, z,
    \qquad z \sim \mathcal N(0, I).

Draws start from :math:`\mathcal N(0, \sigma_1^2 I)` (close to :math:`p_{\sigma_1}` when
:math:`\sigma_1` is as large as the spread of the data; Song & Ermon 2020) unless an initial
batch is given.  Optionally a final denoising step (Tweedie's formula)
:math:`x \leftarrow x + \sigma_L^2 s(x, \sigma_L)` removes the residual noise
(Jolicoeur-Martineau et al. 2020).  The draws are approximate: the unadjusted steps carry a
bias of order :math:`\epsilon/\sigma_L^2` relative to the level's scale, and the result is
:math:`p_{\sigma_L}`, not :math:`p`.

References
----------
Song & Ermon (2019), Generative Modeling by Estimating Gradients of the Data Distribution.
Song & Ermon (2020), Improved Techniques for Training Score-Based Generative Models.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import Tracer

from mcgen.types import Array, ArrayLike, PRNGKey

__all__ = ["annealed_langevin", "geometric_sigmas"]


def geometric_sigmas(sigma_max: float, sigma_min: float, num_levels: int) -> Array:
    """A geometric noise ladder from ``sigma_max`` down to ``sigma_min`` (NCSN's choice)."""
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an int >= 2, got {num_levels!r}")
    return jnp.exp(jnp.linspace(np.log(sigma_max), np.log(sigma_min), num_levels))


@partial(jax.jit, static_argnames=("score_fn", "shape", "num_samples", "steps_per_level", "denoise"))
def _ald(key, score_fn, sigmas, shape, num_samples, steps_per_level, step_lr, init, denoise):
    key_init, key_run = jax.random.split(key)
    if init is None:
        x = sigmas[0] * jax.random.normal(key_init, (num_samples,) + shape, sigmas.dtype)
    else:
        x = jnp.asarray(init, sigmas.dtype)
    sigma_last = sigmas[-1]

    def level(x, inputs):
        key_level, sigma = inputs
        alpha = step_lr * (sigma / sigma_last) ** 2

        def step(i, x):
            z = jax.random.normal(jax.random.fold_in(key_level, i), x.shape, x.dtype)
            return x + 0.5 * alpha * score_fn(x, sigma) + jnp.sqrt(alpha) * z

        return lax.fori_loop(0, steps_per_level, step, x), None

    keys = jax.random.split(key_run, sigmas.shape[0])
    x, _ = lax.scan(level, x, (keys, sigmas))
    if denoise:
        x = x + sigma_last**2 * score_fn(x, sigma_last)
    return x


def annealed_langevin(
    key: PRNGKey,
    score_fn: Callable[[Array, Array], Array],
    sigmas: ArrayLike,
    shape: tuple[int, ...],
    num_samples: int,
    steps_per_level: int = 100,
    step_lr: ArrayLike = 2e-5,
    *,
    init: ArrayLike | None = None,
    denoise: bool = False,
) -> Array:
    r"""Draw samples by annealed Langevin dynamics from a noise-conditional score.

    Parameters
    ----------
    key
        PRNG key.
    score_fn
        ``score_fn(x, sigma)``: score of the data convolved with :math:`\mathcal N(0,
        \sigma^2 I)`, for a batch ``x`` of shape ``(num_samples, *shape)`` and scalar
        ``sigma``.  Static argument: reuse the same function object to avoid recompiling.
    sigmas
        Decreasing noise levels ``(L,)``, e.g. :func:`geometric_sigmas`.
    shape
        Event shape of one sample.
    num_samples
        Batch size.
    steps_per_level
        Langevin steps :math:`T` at each level.
    step_lr
        :math:`\epsilon`, the step size at the last level.
    init
        Optional starting batch ``(num_samples, *shape)``; default
        :math:`\mathcal N(0, \sigma_1^2 I)`.
    denoise
        Apply one Tweedie denoising step at the end.

    Returns
    -------
    Array
        ``(num_samples, *shape)`` draws, approximately from :math:`p_{\sigma_L}`.

    Example
    -------
    >>> import jax, jax.numpy as jnp
    >>> score_fn = lambda x, s: -x / (1.0 + s**2)        # data N(0, I)
    >>> x = annealed_langevin(jax.random.key(0), score_fn, geometric_sigmas(5.0, 0.01, 10),
    ...                       (2,), 500, steps_per_level=20, step_lr=1e-4)
    >>> x.shape
    (500, 2)
    """
    sigmas = jnp.asarray(sigmas, dtype=jnp.result_type(float))
    if sigmas.ndim != 1 or sigmas.shape[0] < 1:
        raise ValueError(f"sigmas must be a non-empty 1-d array, got shape {sigmas.shape}")
    if not isinstance(sigmas, Tracer):
        s = np.asarray(sigmas)
        if np.any(s <= 0) or np.any(np.diff(s) > 0):
            raise ValueError("sigmas must be positive and non-increasing")
    if not isinstance(steps_per_level, int) or steps_per_level <= 0:
        raise ValueError(f"steps_per_level must be a positive int, got {steps_per_level!r}")
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if isinstance(step_lr, (int, float)) and step_lr <= 0:
        raise ValueError(f"step_lr must be > 0, got {step_lr}")
    shape = tuple(int(s) for s in shape)
    if init is not None and jnp.shape(init) != (num_samples,) + shape:
        raise ValueError(f"init must have shape {(num_samples,) + shape}, got {jnp.shape(init)}")
    return _ald(key, score_fn, sigmas, shape, num_samples, steps_per_level, step_lr, init, denoise)
