"""What a query returns: marginals (and optionally the joint) with Monte-Carlo standard errors."""

from __future__ import annotations

import dataclasses

import numpy as np

from mcgen.bayesnet._errors import EvidenceError

__all__ = ["JointDistribution", "QueryResult"]


@dataclasses.dataclass(frozen=True, eq=False)
class JointDistribution:
    """Joint posterior of several variables: ``probs`` and ``mcse`` have one axis per variable.

    ``joint[("T", "F")]`` (state names or indices, in ``variables`` order) is a probability.
    """

    variables: tuple[str, ...]
    states: tuple[tuple[str, ...], ...]
    probs: np.ndarray
    mcse: np.ndarray

    def _index(self, key) -> tuple[int, ...]:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != len(self.variables):
            raise EvidenceError(f"give one state for each of {self.variables}, got {key!r}")
        return tuple(
            s.index(k) if isinstance(k, str) and k in s else k if isinstance(k, int) else _bad_state(v, k, s)
            for v, k, s in zip(self.variables, key, self.states)
        )

    def __getitem__(self, key) -> float:
        return float(self.probs[self._index(key)])

    def table(self) -> dict[tuple[str, ...], float]:
        """``{(state, ...): probability}`` over every joint state."""
        return {
            tuple(s[i] for s, i in zip(self.states, idx)): float(self.probs[idx])
            for idx in np.ndindex(self.probs.shape)
        }


def _bad_state(variable, state, states):
    raise EvidenceError(f"variable {variable!r} has no state {state!r}; its states are {list(states)}", variable)


@dataclasses.dataclass(frozen=True, eq=False)
class QueryResult:
    """Posterior marginals with Monte-Carlo standard errors.

    ``res["cloudy"]["T"]`` is :math:`p(\\text{cloudy}=T \\mid e)` and ``res.mcse["cloudy"]["T"]``
    its standard error (0 for ``"exact"``).

    Attributes
    ----------
    method
        The method used.
    variables
        Query variables, in the order asked.
    states
        ``{variable: state names}``.
    probs, stderr
        ``{variable: array (card,)}`` of probabilities and their MCSE.
    joint
        :class:`JointDistribution` when the query asked ``joint=True``, else ``None``.
    num_samples
        Draws used (after pruning; all chains for Gibbs); ``None`` for ``"exact"``.
    ess
        Effective sample size behind the estimates: accepted draws (rejection), Kish's ESS
        (likelihood weighting), the smallest bulk ESS over the state indicators (Gibbs).
    acceptance_rate
        Fraction of forward draws kept (``"forward"``/``"rejection"``).
    r_hat_arrays
        ``{variable: array (card,)}`` of R-hat over chains (``"gibbs"``).
    info
        Extras: ``log_evidence`` estimate (likelihood weighting), the ``run_chains`` result
        (``"result"``, Gibbs), pruned network size.
    """

    method: str
    variables: tuple[str, ...]
    states: dict[str, tuple[str, ...]]
    probs: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    joint: JointDistribution | None = None
    num_samples: int | None = None
    ess: float | None = None
    acceptance_rate: float | None = None
    r_hat_arrays: dict[str, np.ndarray] | None = None
    info: dict = dataclasses.field(default_factory=dict)

    def __getitem__(self, variable: str) -> dict[str, float]:
        if variable not in self.probs:
            raise KeyError(f"{variable!r} was not queried; the query variables are {list(self.variables)}")
        return dict(zip(self.states[variable], map(float, self.probs[variable])))

    @property
    def mcse(self) -> dict[str, dict[str, float]]:
        """``{variable: {state: Monte-Carlo standard error}}``."""
        return {v: dict(zip(self.states[v], map(float, self.stderr[v]))) for v in self.variables}

    @property
    def r_hat(self) -> dict[str, dict[str, float]] | None:
        """``{variable: {state: R-hat}}`` for Gibbs queries, else ``None``."""
        if self.r_hat_arrays is None:
            return None
        return {v: dict(zip(self.states[v], map(float, self.r_hat_arrays[v]))) for v in self.variables}

    def __repr__(self) -> str:
        lines = [
            f"QueryResult(method={self.method!r}, num_samples={self.num_samples}, ess="
            f"{None if self.ess is None else round(self.ess, 1)}, acceptance_rate={self.acceptance_rate})"
        ]
        for v in self.variables:
            cells = ", ".join(
                f"{s}: {p:.4f} ± {e:.4f}" for s, p, e in zip(self.states[v], self.probs[v], self.stderr[v])
            )
            lines.append(f"  {v}: {cells}")
        return "\n".join(lines)
