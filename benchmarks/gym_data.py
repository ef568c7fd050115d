"""The Inference Gym's real-data targets without TensorFlow Datasets.

The Gym loads the data of its real-data targets through ``tensorflow_datasets``, which downloads
them.  Without it (or without internet) the targets can be built but fail at their first
log-density.  This module serves the German credit and radon data from ``benchmarks/data``
instead, so the three German-credit targets (``GermanCreditNumericLogisticRegression``,
``GermanCreditNumericProbitRegression``, ``GermanCreditNumericSparseLogisticRegression``) and
the four radon targets (``RadonContextualEffects[HalfNormal]{Indiana,Minnesota}``) run
offline.  ``install()`` does nothing where ``tensorflow_datasets`` is importable.

The data: the Statlog (German Credit Data) set of the UCI Machine Learning Repository, its
numeric variant ``german.data-numeric`` (1000 applicants, 24 integer attributes, the class in
the last column: 1 good, 2 bad), by Hans Hofmann, under CC BY 4.0
(https://archive.ics.uci.edu/dataset/144/statlog+german+credit+data).  It is handed to the Gym
as TensorFlow Datasets' ``german_credit_numeric`` does (``label = 2 - class``); the Gym then
flips the label back and standardizes the columns itself.  The radon data: Gelman and Hill's
``srrs2.dat`` and ``cty.dat``, the rows of Indiana and Minnesota (``benchmarks/data/README.md``).  ``check_german_credit`` compares the
file with the Gym's ground truth through a Laplace approximation (``python gym_data.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
GERMAN_CREDIT = DATA_DIR / "german.data-numeric"
# Gelman and Hill's radon files, the rows of the two states the Gym uses (Indiana, Minnesota)
RADON_SRRS2 = DATA_DIR / "srrs2_in_mn.dat.gz"
RADON_CTY = DATA_DIR / "cty_in_mn.dat"


def german_credit_numeric(path: Path = GERMAN_CREDIT) -> tuple[np.ndarray, np.ndarray]:
    """The 1000 x 24 integer attributes and the classes (1 good, 2 bad) of the UCI file."""
    table = np.loadtxt(path, dtype=np.int64)
    if table.shape != (1000, 25) or not np.isin(table[:, -1], (1, 2)).all():
        raise ValueError(f"{path} is not the UCI german.data-numeric file (1000 rows of 24 attributes and a class)")
    return table[:, :-1], table[:, -1]


def radon(srrs2: Path = RADON_SRRS2, cty: Path = RADON_CTY) -> dict:
    """The radon table as TensorFlow Datasets' ``radon`` builder gives it (``batch_size=-1``).

    Each measurement of ``srrs2.dat`` joined with its county's soil uranium (``Uppm``) of
    ``cty.dat`` on the FIPS code, each measurement once (``idnum``), the measured value
    (``activity``) and ``Uppm`` in float32 as the builder stores them.  Only the features the
    Gym's loader reads are kept.
    """
    import pandas as pd

    table = pd.read_csv(srrs2).rename(columns=str.strip)
    county = pd.read_csv(cty).rename(columns=str.strip)
    table["fips"] = 1000 * table.stfips + table.cntyfips
    county["fips"] = 1000 * county.stfips + county.ctfips
    table = table.merge(county[["fips", "Uppm"]], on="fips").drop_duplicates(subset="idnum")
    return {
        "activity": table.activity.to_numpy(np.float32),
        "features": {
            "state": table.state.to_numpy(str),
            "floor": table.floor.to_numpy(np.int32),
            "county": table.county.to_numpy(str),
            "Uppm": table.Uppm.to_numpy(np.float32),
        },
    }


class _LocalDatasets:
    """The two calls of ``tensorflow_datasets`` the Gym's loaders make, for the data kept here."""

    @staticmethod
    def load(name: str, **kwargs):
        dataset = name.split(":")[0]
        if dataset == "german_credit_numeric":
            features, classes = german_credit_numeric()
            return {"train": [{"features": f, "label": 2 - c} for f, c in zip(features, classes)]}
        if dataset == "radon":
            return radon()
        raise ModuleNotFoundError(
            f"the Gym's dataset {name!r} needs tensorflow_datasets (and internet); only the German "
            f"credit and radon data are served locally (benchmarks/gym_data.py)"
        )

    @staticmethod
    def as_numpy(dataset):
        return dataset


def install() -> bool:
    """Serve the local data to the Gym's loaders unless ``tensorflow_datasets`` is there; True if installed."""
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        from inference_gym import using_jax  # noqa: F401  (builds the JAX substrate's modules)
        from inference_gym.dynamic.backend_jax.internal import data

        data._tfds = lambda: _LocalDatasets
        return True
    return False


def check_german_credit(name: str = "GermanCreditNumericLogisticRegression") -> float:
    """Largest |MAP - truth mean| / truth sd over the coordinates of a German-credit regression.

    With 1000 data points and 25 coefficients the posterior is close to Gaussian, so its mode
    lies within a small fraction of a standard deviation of its mean; data read wrongly (labels
    flipped, columns shifted) puts it many standard deviations away.
    """
    import jax
    import jax.numpy as jnp
    from inference_gym import using_jax as gym
    from scipy import optimize

    install()
    model = getattr(gym.targets, name)()
    identity = model.sample_transformations["identity"]
    value_and_grad = jax.jit(jax.value_and_grad(lambda w: -model.unnormalized_log_prob(w)))

    def objective(w):
        value, grad = value_and_grad(jnp.asarray(w, jnp.float32))
        return float(value), np.asarray(grad, np.float64)

    dim = int(np.prod(model.event_shape))
    mode = optimize.minimize(objective, np.zeros(dim), jac=True, method="L-BFGS-B").x
    mean = np.asarray(identity.ground_truth_mean, np.float64)
    sd = np.asarray(identity.ground_truth_standard_deviation, np.float64)
    return float(np.max(np.abs(mode - mean) / sd))


if __name__ == "__main__":
    for target in ("GermanCreditNumericLogisticRegression", "GermanCreditNumericProbitRegression"):
        print(f"{target}: largest |mode - truth mean| / sd = {check_german_credit(target):.3f}")
