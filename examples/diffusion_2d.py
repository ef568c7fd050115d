"""Train a small noise-prediction MLP on a ring of Gaussians, then sample it three ways.

The data is a ring of 8 Gaussians, a mixture whose exact noise predictor is known
(:func:`mcgen.generative.gmm_eps_fn`), so the trained network can be compared with the ideal
one: the script prints the MMD of each sampler's output against exact data draws, for the
trained network and for the exact predictor, and saves a figure to
``examples/out/diffusion_2d.png``.

The network is a plain-JAX MLP trained with optax (the only extra dependency; install it with
``pip install optax``).  It takes ``(x, t)`` with continuous time ``t`` in [0, 1], the
convention of :func:`mcgen.generative.sample_diffusion`, and is trained with the usual
denoising loss :math:`E_{t, x_0, \\varepsilon} \\lVert \\varepsilon - \\hat\\varepsilon(\\alpha_t
x_0 + \\sigma_t \\varepsilon, t)\\rVert^2`.

Run::

    python examples/diffusion_2d.py           # about 1-2 minutes on a laptop CPU
    python examples/diffusion_2d.py --quick   # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mcgen.generative import gmm_eps_fn, gmm_sample, linear_schedule, mmd_rbf, sample_diffusion

NUM_MODES, RADIUS, STD = 8, 2.0, 0.15
ANGLES = jnp.linspace(0.0, 2.0 * jnp.pi, NUM_MODES, endpoint=False)
MEANS = RADIUS * jnp.stack([jnp.cos(ANGLES), jnp.sin(ANGLES)], axis=1)
COVS = jnp.broadcast_to(STD**2 * jnp.eye(2), (NUM_MODES, 2, 2))
WEIGHTS = jnp.full((NUM_MODES,), 1.0 / NUM_MODES)
SCHEDULE = linear_schedule()


def init_mlp(key, width=128, depth=3, num_freqs=16):
    sizes = [2 + 2 * num_freqs] + [width] * depth + [2]
    keys = jax.random.split(key, len(sizes) - 1)
    layers = [
        (jax.random.normal(k, (m, n)) * jnp.sqrt(2.0 / m), jnp.zeros(n)) for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]
    return {"layers": layers, "freqs": jnp.exp(jnp.linspace(0.0, jnp.log(200.0), num_freqs))}


def apply_mlp(params, x, t):
    """eps_hat(x, t) for a batch x of shape (n, 2) and a scalar or (n,) time t."""
    t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])
    phase = t[:, None] * params["freqs"][None, :]
    h = jnp.concatenate([x, jnp.sin(phase), jnp.cos(phase)], axis=1)
    for w, b in params["layers"][:-1]:
        h = jax.nn.silu(h @ w + b)
    w, b = params["layers"][-1]
    return h @ w + b


def train(key, num_steps, batch_size=512, lr=2e-3):
    key_init, key_train = jax.random.split(key)
    params = init_mlp(key_init)
    opt = optax.adam(optax.cosine_decay_schedule(lr, num_steps))
    opt_state = opt.init(params)

    def loss_fn(params, key):
        key_x, key_t, key_eps = jax.random.split(key, 3)
        x0 = gmm_sample(key_x, WEIGHTS, MEANS, COVS, batch_size)[0]
        t = jax.random.uniform(key_t, (batch_size,), minval=SCHEDULE.t_min, maxval=1.0)
        eps = jax.random.normal(key_eps, x0.shape)
        xt = SCHEDULE.alpha(t)[:, None] * x0 + SCHEDULE.sigma(t)[:, None] * eps
        return jnp.mean((apply_mlp(params, xt, t) - eps) ** 2)

    @jax.jit
    def run_chunk(params, opt_state, keys):
        def step(carry, key):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, key)
            updates, opt_state = opt.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
        return params, opt_state, losses

    chunk = min(500, num_steps)
    for start in range(0, num_steps, chunk):
        keys = jax.random.split(jax.random.fold_in(key_train, start), chunk)
        params, opt_state, losses = run_chunk(params, opt_state, keys)
        print(f"  step {start + chunk:6d}  loss {float(losses.mean()):.4f}", flush=True)
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short training, few samples")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    num_steps = args.steps or (500 if args.quick else 8000)
    n = 500 if args.quick else 3000

    print(f"training a noise-prediction MLP for {num_steps} steps ...")
    t0 = time.perf_counter()
    params = train(jax.random.key(0), num_steps)
    print(f"trained in {time.perf_counter() - t0:.1f} s")

    # sample_diffusion takes eps_fn as a static argument: define it once.
    def net_eps(x, t):
        return apply_mlp(params, x, t)

    exact_eps = gmm_eps_fn(WEIGHTS, MEANS, COVS, SCHEDULE)
    data = gmm_sample(jax.random.key(1), WEIGHTS, MEANS, COVS, n)[0]
    samplers = [
        ("DDPM, 1000 steps", "ddpm", 1000, {}),
        ("DDIM, 50 steps", "ddim", 50, {}),
        ("DPM-Solver++(3M), 20 steps", "dpm_solver++", 20, {"order": 3}),
    ]
    results = []
    print(f"\n{'sampler':28s} {'MMD^2 x1e3 (net)':>17s} {'MMD^2 x1e3 (exact eps)':>23s}")
    for label, method, steps, kw in samplers:
        x_net = sample_diffusion(jax.random.key(2), net_eps, SCHEDULE, (2,), n, method, num_steps=steps, **kw)
        x_exact = sample_diffusion(jax.random.key(2), exact_eps, SCHEDULE, (2,), n, method, num_steps=steps, **kw)
        m_net, m_exact = (1e3 * float(mmd_rbf(x, data, 0.5)) for x in (x_net, x_exact))
        print(f"{label:28s} {m_net:17.3f} {m_exact:23.3f}")
        results.append((label, np.asarray(x_net), m_net))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6), sharex=True, sharey=True)
    axes[0].scatter(*np.asarray(data).T, s=2, alpha=0.5)
    axes[0].set_title("data (exact draws)")
    for ax, (label, x, m) in zip(axes[1:], results):
        ax.scatter(*x.T, s=2, alpha=0.5, color="C1")
        ax.set_title(f"{label}\nMMD$^2$ = {m:.2f}e-3")
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlim(-3.2, 3.2)
        ax.set_ylim(-3.2, 3.2)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "diffusion_2d.png"
    fig.savefig(path, dpi=100)
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
