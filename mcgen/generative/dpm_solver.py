r"""Multistep DPM-Solver and DPM-Solver++ (orders 1 to 3) for the diffusion ODE.

The probability-flow ODE of a VP diffusion is semi-linear.  Written in the half log-SNR
:math:`\lambda_t = \log(\alpha_t / \sigma_t)`, its exact solution from :math:`s` to :math:`t`
(:math:`h = \lambda_t - \lambda_s > 0`) is, in the noise parameterization,

.. math::

    x_t = \frac{\alpha_t}{\alpha_s} x_s
          - \alpha_t \int_{\lambda_s}^{\lambda_t} e^{-\lambda} \hat\varepsilon(x_\lambda, \lambda)\, d\lambda ,

and in the data parameterization (DPM-Solver++)

.. math::

    x_t = \frac{\sigma_t}{\sigma_s} x_s
          + \sigma_t \int_{\lambda_s}^{\lambda_t} e^{\lambda} \hat x_0(x_\lambda, \lambda)\, d\lambda .

The linear part is integrated exactly; the model output is expanded in :math:`\lambda` with
divided differences of the last one, two or three model outputs (a multistep, Adams-type
scheme: one network evaluation per step).  With :math:`r_0 = h_0/h`, :math:`r_1 = h_1/h` the
ratios of the previous step sizes, :math:`D_1 = (m_0 - m_1)/r_0` at second order and

.. math::

    D_1 = D_{1,0} + \frac{r_0}{r_0 + r_1}(D_{1,0} - D_{1,1}),\quad
    D_2 = \frac{D_{1,0} - D_{1,1}}{r_0 + r_1},\quad
    D_{1,0} = \frac{m_0 - m_1}{r_0},\ D_{1,1} = \frac{m_1 - m_2}{r_1}

at third order, the DPM-Solver++ update is

.. math::

    x_t = \frac{\sigma_t}{\sigma_s} x_s - \alpha_t\varphi_1 m_0 + \alpha_t\varphi_2 D_1
          - \alpha_t\varphi_3 D_2,\quad
    \varphi_1 = e^{-h} - 1,\ \varphi_2 = \frac{\varphi_1}{h} + 1,\ \varphi_3 = \frac{\varphi_2}{h} - \frac12,

and the noise-prediction update uses :math:`e^{h}` in place of :math:`e^{-h}` and
:math:`\sigma_t, \alpha_t/\alpha_s` in place of :math:`\alpha_t, \sigma_t/\sigma_s`.  (At
second order the "midpoint" form :math:`\tfrac12 \varphi_1 D_1` is used.)  The first steps
use lower orders while the history fills, and with fewer than 15 steps the last steps do too
(the "lower order final" trick, which stabilises few-step sampling).  Order 1 is DDIM.

References
----------
Lu et al. (2022), DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling
in Around 10 Steps.  NeurIPS.
Lu et al. (2022), DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models.  arXiv:2211.01095.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np
from jax import lax

from mcgen.generative.schedules import NoiseSchedule
from mcgen.types import Array

__all__ = ["dpm_solver_multistep", "dpm_solver_orders"]


def dpm_solver_orders(num_steps: int, order: int, lower_order_final: bool = True) -> np.ndarray:
    """The order used at each of ``num_steps`` multistep DPM-Solver steps (a static array)."""
    steps = np.arange(1, num_steps + 1)
    orders = np.minimum(order, steps)
    if lower_order_final and num_steps < 15:
        orders = np.minimum(orders, num_steps + 1 - steps)
    return orders.astype(np.int32)


def dpm_solver_multistep(
    model: Callable[[Array, Array], Array],
    x: Array,
    times: Array,
    schedule: NoiseSchedule,
    order: int,
    data_prediction: bool,
    lower_order_final: bool = True,
) -> Array:
    """Integrate the diffusion ODE over ``times`` (decreasing) with multistep DPM-Solver(++).

    Parameters
    ----------
    model
        ``model(x, t) -> eps``: the (guided) noise predictor.
    x
        State at ``times[0]``, shape ``(num_samples, *shape)``.
    times
        ``(num_steps + 1,)`` decreasing times.
    schedule
        The noise schedule.
    order
        1, 2 or 3.
    data_prediction
        ``True`` for DPM-Solver++ (expansion of the data prediction :math:`\\hat x_0`),
        ``False`` for DPM-Solver (expansion of the noise prediction).

    Returns
    -------
    Array
        The state at ``times[-1]``.
    """
    num_steps = times.shape[0] - 1
    orders = jnp.asarray(dpm_solver_orders(num_steps, order, lower_order_final))
    lams = schedule.log_snr(times)
    log_alphas = schedule.log_alpha(times)

    def model_output(x, t, log_alpha):
        eps = model(x, t)
        if not data_prediction:
            return eps
        return (x - jnp.sqrt(-jnp.expm1(2.0 * log_alpha)) * eps) / jnp.exp(log_alpha)

    def update(x, hist, lam_hist, lam_t, log_alpha_s, log_alpha_t, step_order):
        m0, m1, m2 = hist[0], hist[1], hist[2]
        h = lam_t - lam_hist[0]
        r0 = (lam_hist[0] - lam_hist[1]) / h
        r1 = (lam_hist[1] - lam_hist[2]) / h
        alpha_t, sigma_t = jnp.exp(log_alpha_t), jnp.sqrt(-jnp.expm1(2.0 * log_alpha_t))
        sigma_s = jnp.sqrt(-jnp.expm1(2.0 * log_alpha_s))
        if data_prediction:
            lin, coef, phi_1 = sigma_t / sigma_s, alpha_t, jnp.expm1(-h)
            phi_2 = phi_1 / h + 1.0
            sign = 1.0
        else:
            lin, coef, phi_1 = jnp.exp(log_alpha_t - log_alpha_s), sigma_t, jnp.expm1(h)
            phi_2 = phi_1 / h - 1.0
            sign = -1.0
        phi_3 = phi_2 / h - 0.5
        base = lin * x - coef * phi_1 * m0

        def first(_):
            return base

        def second(_):
            d1 = (m0 - m1) / r0
            return base - 0.5 * coef * phi_1 * d1

        def third(_):
            d1_0, d1_1 = (m0 - m1) / r0, (m1 - m2) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            return base + sign * coef * phi_2 * d1 - coef * phi_3 * d2

        return lax.switch(step_order - 1, (first, second, third), None)

    def step(carry, inputs):
        x, hist, lam_hist = carry
        t_s, lam_s, lam_t, log_alpha_s, log_alpha_t, step_order = inputs
        m = model_output(x, t_s, log_alpha_s)
        hist = jnp.concatenate([m[None], hist[:2]], axis=0)
        lam_hist = jnp.concatenate([lam_s[None], lam_hist[:2]])
        x = update(x, hist, lam_hist, lam_t, log_alpha_s, log_alpha_t, step_order)
        return (x, hist, lam_hist), None

    hist = jnp.zeros((3,) + x.shape, x.dtype)
    lam_hist = jnp.zeros((3,), lams.dtype)
    inputs = (times[:-1], lams[:-1], lams[1:], log_alphas[:-1], log_alphas[1:], orders)
    (x, _, _), _ = lax.scan(step, (x, hist, lam_hist), inputs)
    return x
