"""What mcgen's and BlackJAX's NUTS warmups end with, side by side, on a bench_nuts target.

Prints, per repetition (same initial points as ``bench_nuts.py``), each chain's adapted step
size and mean leapfrog steps per draw for both libraries, and on ``gaussian_100`` the adapted
inverse mass divided by the true variances (1.0 = learned exactly).  Used to tell a
different algorithm from adaptation landing on either side of a tree-size boundary.

Usage: python benchmarks/compare_nuts_adaptation.py [target]   (default gaussian_100)
"""

import sys
import warnings

import bench_nuts as B
import jax
import numpy as np

import mcgen as mc
from mcgen.kernels.nuts import nuts


def main(name: str = "gaussian_100", reps: int = 3):
    warnings.simplefilter("ignore")
    ld, init0 = B.TARGETS[name]
    for rep in range(reps):
        init = B.initial_positions(init0, 4, rep)
        res = mc.run_chains(
            ld,
            nuts(),
            init=init,
            init_batched=True,
            num_chains=4,
            num_samples=1000,
            num_warmup=1000,
            seed=rep,
            progress=False,
            warn=False,
        )
        warm, sample = B._blackjax_fns(ld, 1000, 1000)
        keys = jax.random.split(jax.random.key(rep), 8)
        states, params = warm(keys[:4], init)
        _, steps = sample(keys[4:], states, params)
        print(
            f"rep {rep}  mcgen    step size {np.asarray(res.last_state.params.step_size).round(3)}  "
            f"leaves/draw {np.asarray(res.stats['num_grad_evals']).mean(1).round(1)}"
        )
        print(
            f"rep {rep}  blackjax step size {np.asarray(params['step_size']).round(3)}  "
            f"leaves/draw {np.asarray(steps).mean(1).round(1)}"
        )
        if name == "gaussian_100":
            true_var = np.asarray(B._SCALES) ** 2
            ours = (np.asarray(res.last_state.params.inverse_mass) / true_var).mean(1).round(3)
            theirs = (np.asarray(params["inverse_mass_matrix"]) / true_var).mean(1).round(3)
            print(f"        inverse mass / true variance: mcgen {ours}  blackjax {theirs}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
