"""Parallel tempering on multimodal targets, and single-chain samplers failing on them.

1. The seed example: 0.5 N(-3, 1) + 0.5 N(3, 1).
2. The 2-d mixture of 16 equal Gaussians (sd 0.5) on a 4 x 4 grid with spacing 10.  Each
   mode should hold 1/16 = 6.25% of the draws; the check is "every mode within +-3 percentage
   points".  Non-reversible PT with an adapted schedule passes it; single-chain random-walk
   Metropolis (and NUTS, where installed) stays in the mode it starts in and fails it.
3. log Z of the 16-mode mixture (normalizer 16 * 2 pi * 0.25, known) from the stepping-stone
   estimate of independent PT ensembles.

Run: ``python examples/tempering_mixture.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import mcgen as mc
from mcgen.combinators.tempering import parallel_tempering

_GRID = jnp.arange(4, dtype=jnp.float32) * 10.0 - 15.0
MODES = jnp.stack(jnp.meshgrid(_GRID, _GRID, indexing="ij"), -1).reshape(-1, 2)
LOG_Z = float(np.log(16 * 2 * np.pi * 0.25))  # sum of 16 unnormalized N(mu, 0.25 I) kernels


def grid16(x):
    return jax.nn.logsumexp(-0.5 * jnp.sum((x - MODES) ** 2, -1) / 0.25)


def wide_reference(x):  # normalized N(0, 15^2 I): a proper reference for log Z
    return jnp.sum(-0.5 * (x / 15.0) ** 2 - jnp.log(15.0 * jnp.sqrt(2.0 * jnp.pi)))


def mode_mass(draws) -> np.ndarray:
    x = np.asarray(draws).reshape(-1, 2)
    label = np.argmin(((x[:, None, :] - np.asarray(MODES)) ** 2).sum(-1), 1)
    return np.bincount(label, minlength=16) / label.size


def report(name: str, draws) -> None:
    mass = mode_mass(draws)
    worst = np.max(np.abs(mass - 1 / 16))
    verdict = "PASS" if worst < 0.03 else "FAIL"
    print(f"{name:28} worst |mass - 1/16| = {100 * worst:5.2f} pp  modes visited {np.sum(mass > 0):2d}/16  {verdict}")
    print("   mass per mode (%):", np.array2string(100 * mass, precision=1, max_line_width=120))


def main() -> None:
    run = dict(progress=False, warn=False)
    bimodal = mc.testing.bimodal_1d(3.0)
    res = mc.run_chains(
        bimodal.logdensity_fn,
        parallel_tempering(mc.rwmh(), num_temps=6),
        init=jnp.zeros(()),
        num_chains=4,
        num_samples=2000,
        **run,
    )
    print(
        f"0.5 N(-3,1) + 0.5 N(3,1): P(x > 0) = {np.mean(res.samples > 0):.3f} (truth 0.5), "
        f"var = {np.var(res.samples):.2f} (truth 10), round trips/chain = {res.stats['round_trips'][:, -1]}"
    )

    pt = parallel_tempering(mc.rwmh(), num_temps=12, reference=wide_reference)
    res = mc.run_chains(grid16, pt, init=jnp.zeros(2), num_chains=8, num_samples=4000, num_warmup=2000, **run)
    report("PT (12 temps, non-reversible)", res.samples)
    print("   adapted betas:", np.array2string(np.asarray(res.last_state.params.betas[0]), precision=3))
    print(
        f"   barrier Lambda = {np.mean(res.stats['barrier'][:, -1]):.2f}, "
        f"round trips per 1000 steps = {np.mean(res.stats['round_trips'][:, -1]) / 4:.1f}"
    )
    log_z = res.stats["log_normalizer"][:, -1]
    se = log_z.std(ddof=1) / np.sqrt(log_z.size)
    print(f"   log Z = {log_z.mean():.3f} +- {se:.3f} (truth {LOG_Z:.3f}, z = {(log_z.mean() - LOG_Z) / se:.2f})")

    rw = mc.run_chains(
        grid16, mc.rwmh(), init=jnp.zeros(2) - 5.0, num_chains=1, num_samples=8000, num_warmup=2000, **run
    )
    report("single-chain RWMH", rw.samples)
    try:
        from mcgen.kernels.nuts import nuts
    except ImportError:
        return
    nu = mc.run_chains(grid16, nuts(), init=jnp.zeros(2) - 5.0, num_chains=1, num_samples=2000, num_warmup=1000, **run)
    report("single-chain NUTS", nu.samples)


if __name__ == "__main__":
    main()
