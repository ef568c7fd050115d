r"""Sampling diffusion models: DDPM, DDIM, DPM-Solver(++), probability-flow ODE, guidance.

All samplers run the VP forward process :math:`x_t = \alpha_t x_0 + \sigma_t\varepsilon`
backwards in continuous time from :math:`x_{t_{max}} \sim \mathcal N(0, I)` to a small
``t_end``, over a grid :math:`t_{max} = t_0 > t_1 > \dots > t_N = t_{end}`.  From
:math:`s = t_{i}` to :math:`t = t_{i+1}`, with :math:`\hat x_0 = (x_s - \sigma_s
\hat\varepsilon)/\alpha_s`:

*DDPM* (ancestral): draw from the forward posterior :math:`q(x_t \mid x_s, \hat x_0)`,

.. math::

    x_t = \frac{\alpha_s \sigma_t^2}{\alpha_t \sigma_s^2} x_s
        + \frac{\alpha_t \sigma_{s|t}^2}{\sigma_s^2} \hat x_0
        + \frac{\sigma_{s|t}\sigma_t}{\sigma_s} z, \qquad
    \sigma_{s|t}^2 = 1 - \frac{\alpha_s^2}{\alpha_t^2}.

*DDIM* with stochasticity :math:`\eta` (:math:`\eta = 0`: deterministic, the first-order ODE
solver; :math:`\eta = 1`: DDPM):

.. math::

    x_t = \alpha_t \hat x_0 + \sqrt{\sigma_t^2 - c^2}\,\hat\varepsilon + c z, \qquad
    c = \eta\, \frac{\sigma_t}{\sigma_s}\sqrt{1 - \frac{\alpha_s^2}{\alpha_t^2}} .

*DPM-Solver / DPM-Solver++*: exponential multistep integrators of the probability-flow ODE of
orders 1 to 3 (:mod:`mcgen.generative.dpm_solver`), on a grid uniform in :math:`\lambda_t`.

*ODE*: classical fourth-order Runge-Kutta on the probability-flow ODE

.. math::

    \frac{dx}{dt} = f(t)\, x - \frac{f(t)}{\sigma_t}\, \hat\varepsilon(x, t), \qquad
    f(t) = \frac{d \log\alpha_t}{dt},

(4 network evaluations per step).

*Classifier-free guidance* (Ho & Salimans 2022) replaces :math:`\hat\varepsilon` by
:math:`\hat\varepsilon(x, t, \varnothing) + w\,[\hat\varepsilon(x, t, c) - \hat\varepsilon(x,
t, \varnothing)]` with ``guidance_scale`` :math:`w` (:math:`w = 1` is plain conditional
sampling; Ho & Salimans' :math:`w` is ours minus one).

**Time convention.**  ``eps_fn(x, t)`` (or ``eps_fn(x, t, cond)``) gets the whole batch ``x``
of shape ``(num_samples, *shape)`` and a scalar float time ``t`` in ``[t_end, t_max]``, a
continuous time in ``[0, 1]`` of ``schedule``.  This is the recommended convention.  A network
trained on DDPM's integer steps ``n = 0..N-1`` (:math:`\beta_n` linear in ``n``) is used as
``eps_fn = lambda x, t: net(x, N * t - 1)`` with ``schedule=linear_schedule()`` (the
continuous schedule matches the discrete one at :math:`t = (n+1)/N`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from mcgen.generative.dpm_solver import dpm_solver_multistep
from mcgen.generative.schedules import NoiseSchedule
from mcgen.types import Array, PRNGKey

__all__ = ["sample_diffusion", "time_grid", "METHODS"]

METHODS = ("ddpm", "ddim", "dpm_solver", "dpm_solver++", "ode")
_DEFAULT_STEPS = {"ddpm": 1000, "ddim": 50, "dpm_solver": 20, "dpm_solver++": 20, "ode": 50}
_DEFAULT_SPACING = {"ddpm": "time", "ddim": "time", "dpm_solver": "logsnr", "dpm_solver++": "logsnr", "ode": "time"}


def time_grid(schedule: NoiseSchedule, num_steps: int, t_end: float | None = None, spacing: str = "time") -> Array:
    """Decreasing times ``t_max = t_0 > ... > t_N = t_end``, uniform in time or in log-SNR."""
    t_end = schedule.t_min if t_end is None else t_end
    if not 0.0 < t_end < schedule.t_max:
        raise ValueError(f"t_end must lie in (0, {schedule.t_max}), got {t_end}")
    if spacing == "time":
        return jnp.linspace(schedule.t_max, t_end, num_steps + 1)
    if spacing == "logsnr":
        lams = jnp.linspace(schedule.log_snr(schedule.t_max), schedule.log_snr(t_end), num_steps + 1)
        return schedule.inverse_lambda(lams).at[0].set(schedule.t_max).at[-1].set(t_end)
    raise ValueError(f"spacing must be 'time' or 'logsnr', got {spacing!r}")


def _sigma(log_alpha):
    return jnp.sqrt(-jnp.expm1(2.0 * log_alpha))


def _ancestral(model, key, x, times, schedule, eta, ddpm):
    log_alphas = schedule.log_alpha(times)

    def step(x, inputs):
        key, t_s, la_s, la_t = inputs
        eps = model(x, t_s)
        sigma_s, sigma_t = _sigma(la_s), _sigma(la_t)
        x0 = (x - sigma_s * eps) / jnp.exp(la_s)
        var_st = -jnp.expm1(2.0 * (la_s - la_t))  # sigma_{s|t}^2 = 1 - alpha_s^2 / alpha_t^2
        z = jax.random.normal(key, x.shape, x.dtype)
        if ddpm:
            mean = jnp.exp(la_s - la_t) * sigma_t**2 / sigma_s**2 * x + jnp.exp(la_t) * var_st / sigma_s**2 * x0
            return mean + jnp.sqrt(var_st) * sigma_t / sigma_s * z, None
        c = eta * sigma_t / sigma_s * jnp.sqrt(var_st)
        dir_eps = jnp.sqrt(jnp.maximum(sigma_t**2 - c**2, 0.0))
        return jnp.exp(la_t) * x0 + dir_eps * eps + c * z, None

    keys = jax.random.split(key, times.shape[0] - 1)
    x, _ = lax.scan(step, x, (keys, times[:-1], log_alphas[:-1], log_alphas[1:]))
    return x


def _pf_ode_rk4(model, x, times, schedule):
    dlog_alpha = jax.grad(lambda t: schedule.log_alpha(t))

    def drift(x, t):
        f = dlog_alpha(t)
        return f * x - f / schedule.sigma(t) * model(x, t)

    def step(x, inputs):
        t0, t1 = inputs
        dt = t1 - t0
        k1 = drift(x, t0)
        k2 = drift(x + 0.5 * dt * k1, t0 + 0.5 * dt)
        k3 = drift(x + 0.5 * dt * k2, t0 + 0.5 * dt)
        k4 = drift(x + dt * k3, t1)
        return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

    x, _ = lax.scan(step, x, (times[:-1], times[1:]))
    return x


@partial(
    jax.jit,
    static_argnames=(
        "eps_fn",
        "schedule",
        "shape",
        "num_samples",
        "method",
        "num_steps",
        "order",
        "t_end",
        "spacing",
        "guided",
    ),
)
def _sample(
    key,
    eps_fn,
    schedule,
    shape,
    num_samples,
    method,
    num_steps,
    eta,
    order,
    cond,
    null_cond,
    guidance_scale,
    t_end,
    spacing,
    guided,
):
    if cond is None:
        model = eps_fn
    elif not guided:
        model = lambda x, t: eps_fn(x, t, cond)  # noqa: E731
    else:

        def model(x, t):
            eps_u = eps_fn(x, t, null_cond)
            return eps_u + guidance_scale * (eps_fn(x, t, cond) - eps_u)

    times = time_grid(schedule, num_steps, t_end, spacing)
    key_init, key_steps = jax.random.split(key)
    x = jax.random.normal(key_init, (num_samples,) + shape, times.dtype)
    if method in ("ddpm", "ddim"):
        return _ancestral(model, key_steps, x, times, schedule, eta, method == "ddpm")
    if method == "ode":
        return _pf_ode_rk4(model, x, times, schedule)
    return dpm_solver_multistep(model, x, times, schedule, order, method == "dpm_solver++")


def sample_diffusion(
    key: PRNGKey,
    eps_fn: Callable,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    num_samples: int,
    method: str = "ddpm",
    *,
    num_steps: int | None = None,
    eta: float = 0.0,
    order: int = 2,
    cond: Any = None,
    guidance_scale: float | None = None,
    null_cond: Any = None,
    t_end: float | None = None,
    spacing: str | None = None,
) -> Array:
    r"""Draw samples from a diffusion model given its noise predictor.

    Parameters
    ----------
    key
        PRNG key.
    eps_fn
        ``eps_fn(x, t)`` or, with ``cond``, ``eps_fn(x, t, cond)``: predicted noise for the
        batch ``x`` of shape ``(num_samples, *shape)`` at scalar continuous time ``t`` (see
        the time convention in the module docstring).  Passed as a static argument: reuse
        the same function object to avoid recompiling.
    schedule
        The VP noise schedule the model was trained with.
    shape
        Event shape of one sample.
    num_samples
        Batch size.
    method
        ``"ddpm"``, ``"ddim"``, ``"dpm_solver"``, ``"dpm_solver++"`` or ``"ode"``.
    num_steps
        Number of steps; network evaluations are ``num_steps`` (``4 * num_steps`` for
        ``"ode"``), twice that with guidance.  Defaults: 1000 (ddpm), 50 (ddim), 20 (DPM-Solver),
        50 (ode).
    eta
        DDIM stochasticity in ``[0, 1]``; only for ``"ddim"``.
    order
        DPM-Solver order, 1, 2 or 3.
    cond
        Condition passed unchanged to every ``eps_fn`` call (a pytree; batch it yourself).
    guidance_scale
        Classifier-free guidance weight :math:`w`; needs ``cond``.  The unconditional
        prediction is ``eps_fn(x, t, null_cond)``.
    null_cond
        The "no condition" input of a guided model (default ``None``: ``eps_fn`` must then
        handle ``cond=None``).
    t_end
        Final time (default ``schedule.t_min``); samples keep noise of scale
        :math:`\sigma_{t_{end}}`.
    spacing
        ``"time"`` (default for DDPM/DDIM) or ``"logsnr"`` (default for DPM-Solver and ODE).

    Returns
    -------
    Array
        ``(num_samples, *shape)`` samples.

    References
    ----------
    Ho, Jain & Abbeel (2020); Song, Meng & Ermon (2021), DDIM; Lu et al. (2022), DPM-Solver
    and DPM-Solver++; Song et al. (2021), score SDEs; Ho & Salimans (2022), classifier-free
    diffusion guidance.

    Example
    -------
    >>> import jax, jax.numpy as jnp
    >>> from mcgen.generative import linear_schedule, gmm_eps_fn, sample_diffusion
    >>> sched = linear_schedule()
    >>> eps_fn = gmm_eps_fn(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(2)[None], sched)
    >>> x = sample_diffusion(jax.random.key(0), eps_fn, sched, (2,), 100,
    ...                      method="dpm_solver++", num_steps=10)
    >>> x.shape
    (100, 2)
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    num_steps = _DEFAULT_STEPS[method] if num_steps is None else num_steps
    if not isinstance(num_steps, int) or num_steps <= 0:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    if isinstance(eta, (int, float)) and not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    if guidance_scale is not None and cond is None:
        raise ValueError("guidance_scale needs cond (classifier-free guidance)")
    spacing = _DEFAULT_SPACING[method] if spacing is None else spacing
    if spacing not in ("time", "logsnr"):
        raise ValueError(f"spacing must be 'time' or 'logsnr', got {spacing!r}")
    t_end = schedule.t_min if t_end is None else float(t_end)
    if not 0.0 < t_end < schedule.t_max:
        raise ValueError(f"t_end must lie in (0, {schedule.t_max}), got {t_end}")
    shape = tuple(int(s) for s in shape)
    return _sample(
        key,
        eps_fn,
        schedule,
        shape,
        num_samples,
        method,
        num_steps,
        eta,
        order,
        cond,
        null_cond,
        guidance_scale,
        t_end,
        spacing,
        guidance_scale is not None,
    )
