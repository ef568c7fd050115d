"""NUTS's U-turn criterion at fixed tunables: mcgen (Stan's sum, trapezoid sum) against BlackJAX.

The warmup is taken out of the comparison: BlackJAX's window adaptation runs once per target
(16 chains), and every sampler then runs from the same warmed-up states with the same step
size (the chains' median) and diagonal metric (the chains' geometric mean).  So the only
differences left are the samplers' own: the momentum sum in the U-turn test (Stan: all momenta
of the span; NumPyro and BlackJAX: the two end momenta halved, the trapezoid rule) and Stan's
extra checks across sub-tree halves (mcgen only).  BlackJAX is also run with Stan's sum patched
into its metric, which isolates the criterion.

Reported per sampler: gradients per draw, and bulk ESS per 1000 gradients, the minimum over
coordinates (the slowest quantity, what bench_gym scores) and the median.

Usage::

    python compare_uturn.py --targets StochasticVolatilitySP500Small EightSchools --draws 1000 --reps 2
"""

from __future__ import annotations

import argparse
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from bench_gym import GymTarget
from jax.flatten_util import ravel_pytree

from mcgen.kernels.nuts import nuts


def compare(name: str, num_chains: int, draws: int, reps: int) -> dict:
    import blackjax
    from blackjax.mcmc import metrics

    target = GymTarget(name)
    adapt = blackjax.window_adaptation(blackjax.nuts, target.logdensity)
    warm = jax.jit(jax.vmap(lambda k, x: adapt.run(k, x, num_steps=1000)))
    (states, params), _ = warm(jax.random.split(jax.random.key(1), num_chains), target.inits(num_chains, 0))
    eps = float(np.median(np.asarray(params["step_size"])))
    inverse_mass = jnp.asarray(np.exp(np.log(np.asarray(params["inverse_mass_matrix"])).mean(0)), jnp.float32)

    def stan_turning(m_left, m_right, m_sum, *_):
        (m_left, _), (m_right, _), (m_sum, _) = map(ravel_pytree, (m_left, m_right, m_sum))
        return (jnp.dot(inverse_mass * m_left, m_sum) <= 0) | (jnp.dot(inverse_mass * m_right, m_sum) <= 0)

    def blackjax_run(metric):
        step = blackjax.nuts(target.logdensity, step_size=eps, inverse_mass_matrix=metric).step

        def chain(key, state):
            def body(s, k):
                s, info = step(k, s)
                return s, (s.position, info.num_integration_steps)

            return jax.lax.scan(body, state, jax.random.split(key, draws))[1]

        return jax.jit(jax.vmap(chain))

    def mcgen_run(uturn):
        kernel = nuts(uturn=uturn)

        def chain(key, state):
            s = kernel.init(state.position, target.logdensity)
            s = s._replace(
                params=s.params._replace(
                    step_size=jnp.asarray(eps, s.params.step_size.dtype), inverse_mass=inverse_mass
                )
            )

            def body(s, k):
                s, info = kernel.step(k, s, target.logdensity)
                return s, (s.position, info.num_grad_evals)

            return jax.lax.scan(body, s, jax.random.split(key, draws))[1]

        return jax.jit(jax.vmap(chain))

    base = metrics.default_metric(inverse_mass)
    runs = {
        "mcgen stan": mcgen_run("stan"),
        "mcgen trapezoid": mcgen_run("trapezoid"),
        "blackjax (trapezoid)": blackjax_run(base),
        "blackjax, stan sum": blackjax_run(base._replace(check_turning=stan_turning)),
    }
    out: dict = {}
    for rep in range(reps):
        keys = jax.random.split(jax.random.key(100 + rep), num_chains)
        for label, run in runs.items():
            x, steps = run(keys, states)
            x = np.asarray(target.constrain_flat(jnp.asarray(x)), np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ess = np.asarray(az.ess(az.convert_to_dataset({"x": x}), method="bulk")["x"])
            grads = float(np.sum(steps))
            out.setdefault(label, []).append(
                (grads / steps.size, 1e3 * ess.min() / grads, 1e3 * np.median(ess) / grads)
            )
    return {"eps": eps, "rows": {k: np.array(v) for k, v in out.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["EightSchools", "StochasticVolatilitySP500Small"])
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args(argv)
    print("| target | sampler | grads/draw | min ESS / 1000 grads (per rep) | median ESS / 1000 grads |")
    print("|---|---|---|---|---|")
    for name in args.targets:
        res = compare(name, args.chains, args.draws, args.reps)
        for label, v in res["rows"].items():
            mins = " / ".join(f"{x:.3g}" for x in v[:, 1])
            meds = " / ".join(f"{x:.3g}" for x in v[:, 2])
            print(f"| {name} | {label} | {v[:, 0].mean():.1f} | {mins} | {meds} |", flush=True)


if __name__ == "__main__":
    main()
