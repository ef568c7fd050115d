r"""Noise schedules of variance-preserving (VP) diffusion processes.

A VP forward process corrupts a data point :math:`x_0` into

.. math::

    x_t = \alpha_t x_0 + \sigma_t \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I),
    \qquad \alpha_t^2 + \sigma_t^2 = 1,

for a continuous time :math:`t \in [0, 1]` (:math:`t = 0` is data, :math:`t = 1` is close to
pure noise).  A schedule is fixed by :math:`\log \alpha_t`; everything else follows from it:
:math:`\sigma_t = \sqrt{1 - \alpha_t^2}` and the half log signal-to-noise ratio
:math:`\lambda_t = \log \alpha_t - \log \sigma_t`, which decreases strictly in :math:`t`.
DPM-Solver steps uniformly in :math:`\lambda`, so each schedule also carries the inverse map
:math:`t(\lambda)` in closed form.

*Linear* (the continuous limit of DDPM's :math:`\beta_i` from 1e-4 to 0.02 over 1000 steps,
Song et al. 2021):

.. math::

    \log \alpha_t = -\tfrac14 t^2 (\beta_1 - \beta_0) - \tfrac12 t \beta_0 .

*Cosine* (Nichol & Dhariwal 2021):

.. math::

    \log \alpha_t = \log\cos\Big(\frac{t + s}{1 + s}\frac{\pi}{2}\Big)
                  - \log\cos\Big(\frac{s}{1 + s}\frac{\pi}{2}\Big),

whose :math:`\alpha_t` reaches 0 at :math:`t = 1`; its sampling starts at ``t_max`` < 1 (by
default where :math:`\lambda_t = -5`, the linear schedule's value at :math:`t=1`).

References
----------
Ho, Jain & Abbeel (2020), Denoising Diffusion Probabilistic Models.
Song et al. (2021), Score-Based Generative Modeling through SDEs.
Nichol & Dhariwal (2021), Improved Denoising Diffusion Probabilistic Models.
Lu et al. (2022), DPM-Solver, appendix on the inverse of :math:`\lambda_t`.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax.numpy as jnp

from mcgen.types import Array, ArrayLike

__all__ = ["NoiseSchedule", "linear_schedule", "cosine_schedule"]


class NoiseSchedule(NamedTuple):
    """A VP noise schedule on continuous time.

    Attributes
    ----------
    log_alpha
        ``log_alpha(t)``: :math:`\\log \\alpha_t`, elementwise.
    inverse_lambda
        ``inverse_lambda(lam)``: the time :math:`t` with :math:`\\lambda_t = ` ``lam``.
    t_max
        Time where sampling starts (the prior :math:`\\mathcal N(0, I)` is used there).
    t_min
        Default time where sampling stops (samples keep noise of scale
        :math:`\\sigma_{t_{min}}`, about 0.01 for the linear schedule).
    """

    log_alpha: Callable[[ArrayLike], Array]
    inverse_lambda: Callable[[ArrayLike], Array]
    t_max: float
    t_min: float

    def alpha(self, t: ArrayLike) -> Array:
        """:math:`\\alpha_t`."""
        return jnp.exp(self.log_alpha(t))

    def sigma(self, t: ArrayLike) -> Array:
        """:math:`\\sigma_t = \\sqrt{1 - \\alpha_t^2}`, computed stably for small t."""
        return jnp.sqrt(-jnp.expm1(2.0 * self.log_alpha(t)))

    def log_snr(self, t: ArrayLike) -> Array:
        """Half log signal-to-noise ratio :math:`\\lambda_t = \\log\\alpha_t - \\log\\sigma_t`."""
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * jnp.log(-jnp.expm1(2.0 * log_alpha))


def _log_alpha_from_lambda(lam: ArrayLike) -> Array:
    # alpha^2 = sigmoid(2 lambda)  =>  log alpha = -0.5 * log(1 + exp(-2 lambda)).
    return -0.5 * jnp.logaddexp(0.0, -2.0 * jnp.asarray(lam))


def linear_schedule(beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3) -> NoiseSchedule:
    r"""The linear-:math:`\beta` VP schedule :math:`\beta(t) = \beta_0 + t(\beta_1 - \beta_0)`.

    Parameters
    ----------
    beta_min, beta_max
        :math:`\beta_0` and :math:`\beta_1`.  The defaults reproduce DDPM's discrete
        schedule (:math:`\beta_i` = 1e-4 to 0.02 over 1000 steps) as ``N * beta_i``.
    t_min
        Default final time of sampling.

    Returns
    -------
    NoiseSchedule

    Example
    -------
    >>> s = linear_schedule()
    >>> round(float(s.alpha(1.0)), 4)
    0.0066
    """
    if not 0.0 <= beta_min < beta_max:
        raise ValueError(f"need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
    if not 0.0 < t_min < 1.0:
        raise ValueError(f"t_min must lie in (0, 1), got {t_min}")
    b0, d = float(beta_min), float(beta_max - beta_min)

    def log_alpha(t):
        t = jnp.asarray(t)
        return -0.25 * t**2 * d - 0.5 * t * b0

    def inverse_lambda(lam):
        # Solve 0.25 d t^2 + 0.5 b0 t = L with L = -log alpha(lambda) > 0 (stable root).
        big_l = -_log_alpha_from_lambda(lam)
        return 4.0 * big_l / (jnp.sqrt(b0**2 + 4.0 * d * big_l) + b0)

    return NoiseSchedule(log_alpha, inverse_lambda, 1.0, float(t_min))


def cosine_schedule(s: float = 0.008, t_max: float | None = None, t_min: float = 1e-3) -> NoiseSchedule:
    r"""The cosine VP schedule of Nichol & Dhariwal (2021).

    Parameters
    ----------
    s
        Offset that keeps :math:`\beta` small near :math:`t = 0`.
    t_max
        Start of sampling; must be < 1 because :math:`\alpha_1 = 0`.  ``None`` picks the
        time where :math:`\lambda_t = -5` (:math:`\alpha_t \approx 0.0067`).
    t_min
        Default final time of sampling.

    Returns
    -------
    NoiseSchedule
    """
    if s <= 0.0:
        raise ValueError(f"s must be > 0, got {s}")
    half_pi = 0.5 * math.pi
    log_cos0 = math.log(math.cos(s / (1.0 + s) * half_pi))

    def log_alpha(t):
        t = jnp.asarray(t)
        return jnp.log(jnp.cos((t + s) / (1.0 + s) * half_pi)) - log_cos0

    def inverse_lambda(lam):
        log_alpha_lam = _log_alpha_from_lambda(lam)
        return 2.0 * (1.0 + s) / math.pi * jnp.arccos(jnp.exp(log_alpha_lam + log_cos0)) - s

    if t_max is None:
        log_a = -0.5 * math.log1p(math.exp(10.0))
        t_max = 2.0 * (1.0 + s) / math.pi * math.acos(math.exp(log_a + log_cos0)) - s
    if not 0.0 < t_min < t_max < 1.0:
        raise ValueError(f"need 0 < t_min < t_max < 1, got t_min={t_min}, t_max={t_max}")
    return NoiseSchedule(log_alpha, inverse_lambda, float(t_max), float(t_min))
