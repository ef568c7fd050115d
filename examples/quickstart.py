"""Quick start: write a log-density, run four chains, read the ArviZ summary, plot traces.

Run with ``python3 dev.py demo`` (or ``python examples/quickstart.py`` inside the venv).
The target is a 2-d "banana" (a Gaussian bent along a parabola) plus a scalar with a
bimodal density, held in a dict so the draws come back with names.
"""

import os
import pathlib

import jax.numpy as jnp

import mcgen as mc


def logdensity(params):
    x, y = params["banana"][0], params["banana"][1]
    banana = -0.5 * (x**2 / 4.0 + (y - 0.25 * x**2) ** 2)
    mode = jnp.logaddexp(-0.5 * (params["mode"] - 2.0) ** 2, -0.5 * (params["mode"] + 2.0) ** 2)
    return banana + mode


def main():
    init = {"banana": jnp.zeros(2), "mode": jnp.zeros(())}
    res = mc.run_chains(
        logdensity, mc.adaptive_mh(), init=init, num_chains=4, num_samples=5000, num_warmup=2000, thin=2, seed=0
    )
    print(res)
    print(f"compile {res.compile_time:.2f} s, warmup {res.warmup_time:.2f} s, sampling {res.sampling_time:.2f} s")
    print("acceptance rate per chain:", res.acceptance_rate().round(3))
    print(res.summary())
    out = pathlib.Path(os.environ.get("MCGEN_OUT", pathlib.Path(__file__).parent / "out"))
    out.mkdir(parents=True, exist_ok=True)
    res.plot_trace(path=str(out / "quickstart_trace.png"))
    print(f"trace plot written to {out / 'quickstart_trace.png'}")


if __name__ == "__main__":
    main()
