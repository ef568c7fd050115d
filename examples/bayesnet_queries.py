"""Bayesian-network queries with every method, compared with the exact answer.

Builds the weather ("sprinkler") network in Python, asks P(cloudy | wet_grass) and
P(sprinkler | wet_grass, rain) exactly and by forward/rejection, likelihood weighting and
Gibbs sampling, and prints each estimate with its Monte-Carlo standard error and its distance
from the exact answer in standard errors.  Then loads Asia from BIF and asks a diagnostic
query.  Run from the repository root::

    python examples/bayesnet_queries.py
"""

from __future__ import annotations

import pathlib
import warnings

from mcgen import bayesnet

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"


def weather() -> bayesnet.BayesNet:
    """The weather network of issue 7, built from Python dicts (CPT axes: parents..., child)."""
    return bayesnet.BayesNet.from_dict(
        {
            "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
            "sprinkler": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.1, 0.9], [0.5, 0.5]]},
            "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
            "wet_grass": {
                "states": ["T", "F"],
                "parents": ["sprinkler", "rain"],
                "cpt": [[[0.99, 0.01], [0.9, 0.1]], [[0.9, 0.1], [0.01, 0.99]]],
            },
        },
        name="weather",
    )


def compare(bn, variable, evidence, state, num_samples=200_000):
    exact = bn.query(variable, evidence)[variable][state]
    given = ", ".join(f"{k}={v}" for k, v in evidence.items())
    print(f"\nP({variable}={state} | {given}) = {exact:.5f} (exact, variable elimination)")
    for method in ("rejection", "likelihood_weighting", "gibbs"):
        res = bn.query(variable, evidence, method=method, num_samples=num_samples, seed=0)
        p, se = res[variable][state], res.mcse[variable][state]
        extra = (
            f"acceptance {res.acceptance_rate:.3f}"
            if res.acceptance_rate is not None
            else f"max R-hat {max(res.r_hat[variable].values()):.4f}"
            if res.r_hat
            else ""
        )
        print(f"  {method:<21} {p:.5f} ± {se:.5f}  ({(p - exact) / se:+.2f} se)  ESS {res.ess:,.0f}  {extra}")


def main():
    bn = weather()
    assert bayesnet.parse_bif(bn.to_bif()).to_bif() == bn.to_bif()  # BIF round trip
    compare(bn, "cloudy", {"wet_grass": "T"}, "T")
    compare(bn, "sprinkler", {"wet_grass": "T", "rain": "T"}, "T")

    asia = bayesnet.read_bif(DATA / "asia.bif")
    evidence = {"asia": "yes", "xray": "yes", "dysp": "yes"}
    print(f"\nAsia, evidence {evidence}:")
    print(asia.query(["tub", "lung", "bronc"], evidence))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesnet.LowAcceptanceWarning)
        print(asia.query(["tub", "lung", "bronc"], evidence, method="rejection", num_samples=100_000))
    print(asia.query(["tub", "lung", "bronc"], evidence, method="likelihood_weighting", num_samples=100_000))
    joint = asia.query(["tub", "lung"], evidence, joint=True).joint
    print("joint of (tub, lung):", {k: round(v, 4) for k, v in joint.table().items()})

    draws = bn.sample(5, seed=1, as_names=True)
    print("\nfive forward samples:", {k: list(v) for k, v in draws.items()})


if __name__ == "__main__":
    main()
