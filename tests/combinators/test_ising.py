"""Ising model on periodic lattices, Gibbs with checkerboard blocks, against exact answers.

The two colours of a checkerboard are conditionally independent given each other (every
neighbour of a black site is white), so each colour is one Gibbs block drawn in one
vectorized step.  Known values: the energy per site of a finite periodic L x L lattice from
Kaufman's (1949) exact partition function (checked here against brute-force enumeration of
a 4 x 4 lattice), and Onsager–Yang's spontaneous magnetization
``(1 - sinh(2 beta)^-4)^(1/8)`` for ``<|m|>``, whose finite-size correction at L = 32 and
T = 2.0 (correlation length about one site, Tc = 2.269) is far below the MCSE.

* 32 x 32 at T = 2.0, heat-bath conditionals ``p(s_i = +1) = sigmoid(2 beta h_i)`` written by
  hand: ``<|m|>`` and energy per site within 4 MCSE.
* 8 x 8 at T = 2.5, the same blocks drawn by ``categorical_gibbs(2, parallel=True)`` from the
  joint alone (no conditional derived): energy per site within 4 MCSE of Kaufman's value.
"""

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import mcgen as mc
from mcgen import testing
from mcgen.combinators import gibbs
from mcgen.kernels.categorical_gibbs import categorical_gibbs


def kaufman_log_z(beta: float, m: int, n: int) -> float:
    """log Z of the m x n periodic Ising model with J = 1 (Kaufman 1949, in Beale's 1996 form)."""
    k = np.arange(2 * n)
    gamma = np.arccosh(np.cosh(2 * beta) / np.tanh(2 * beta) - np.cos(np.pi * k / n))
    gamma[0] = 2 * beta + np.log(np.tanh(beta))
    odd, even = gamma[1::2], gamma[0::2]
    terms, signs = [], []
    for g in (odd, even):
        terms.append(np.sum(np.log(2 * np.cosh(m * g / 2))))
        signs.append(1.0)
        sinh = 2 * np.sinh(m * g / 2)
        terms.append(np.sum(np.log(np.abs(sinh))))
        signs.append(np.prod(np.sign(sinh)))
    return float(np.log(0.5) + 0.5 * m * n * np.log(2 * np.sinh(2 * beta)) + logsumexp(terms, b=signs))


def exact_energy_per_site(beta: float, size: int, h: float = 1e-5) -> float:
    """``-d log Z / d beta / N`` by a central difference of Kaufman's log Z."""
    return -(kaufman_log_z(beta + h, size, size) - kaufman_log_z(beta - h, size, size)) / (2 * h) / size**2


def onsager_magnetization(beta: float) -> float:
    return float((1.0 - np.sinh(2 * beta) ** -4) ** 0.125)


def test_kaufman_formula_matches_enumeration():
    size, beta = 4, 0.4
    spins = np.array(list(itertools.product([-1, 1], repeat=size * size))).reshape(-1, size, size)
    energy = -np.sum(spins * (np.roll(spins, 1, 1) + np.roll(spins, 1, 2)), axis=(1, 2)).astype(float)
    weights = np.exp(-beta * (energy - energy.min()))
    brute = np.sum(weights * energy) / np.sum(weights) / size**2
    assert abs(brute - exact_energy_per_site(beta, size)) < 1e-6
    assert abs(logsumexp(-beta * energy) - kaufman_log_z(beta, size, size)) < 1e-8


def ising(size: int, beta: float):
    """Log-density, checkerboard index sets and heat-bath samplers; position {"black", "white"}
    holds the sites of each colour as 0/1 (spin 2 s - 1)."""
    colour = np.indices((size, size)).sum(0).ravel() % 2
    sites = {"black": jnp.asarray(np.flatnonzero(colour == 0)), "white": jnp.asarray(np.flatnonzero(colour == 1))}

    def lattice(p):
        s = jnp.zeros(size * size, jnp.int32).at[sites["black"]].set(p["black"]).at[sites["white"]].set(p["white"])
        return (2 * s - 1).reshape(size, size).astype(jnp.float32)

    def logdensity(p):
        s = lattice(p)
        return beta * jnp.sum(s * (jnp.roll(s, 1, 0) + jnp.roll(s, 1, 1)))

    def heat_bath(name):
        def draw(key, p):
            s = lattice(p)
            field = (jnp.roll(s, 1, 0) + jnp.roll(s, -1, 0) + jnp.roll(s, 1, 1) + jnp.roll(s, -1, 1)).ravel()
            return jax.random.bernoulli(key, jax.nn.sigmoid(2.0 * beta * field[sites[name]])).astype(jnp.int32)

        return draw

    def observables(p):
        s = lattice(p)
        energy = -jnp.sum(s * (jnp.roll(s, 1, 0) + jnp.roll(s, 1, 1))) / size**2
        return {"abs_m": jnp.abs(jnp.mean(s)), "energy": energy}

    half = size * size // 2
    init = {"black": jnp.ones(half, jnp.int32), "white": jnp.ones(half, jnp.int32)}
    return logdensity, heat_bath, observables, init


def _run(kernel, logdensity, init, observables, num_samples, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.SamplingWarning)
        return mc.run_chains(
            logdensity,
            kernel,
            init=init,
            num_chains=4,
            num_samples=num_samples,
            num_warmup=300,
            transform=observables,
            progress=False,
            seed=seed,
        )


def test_ising_32x32_checkerboard_heat_bath_against_onsager_and_kaufman():
    beta = 1 / 2.0
    logdensity, heat_bath, observables, init = ising(32, beta)
    kernel = gibbs({"black": heat_bath("black"), "white": heat_bath("white")})
    res = _run(kernel, logdensity, init, observables, num_samples=4000)
    testing.assert_moments(
        res.samples, {"abs_m": onsager_magnetization(beta), "energy": exact_energy_per_site(beta, 32)}
    )


@pytest.mark.parametrize("size, temperature", [(8, 2.5)])
def test_ising_checkerboard_categorical_gibbs_against_kaufman(size, temperature):
    beta = 1 / temperature
    logdensity, _, observables, init = ising(size, beta)
    block = categorical_gibbs(2, parallel=True)  # valid: one colour's sites are conditionally independent
    res = _run(gibbs({"black": block, "white": block}), logdensity, init, observables, num_samples=3000)
    testing.assert_moments(res.samples["energy"], exact_energy_per_site(beta, size))
