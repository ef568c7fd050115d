"""Errors and warnings of :mod:`mcgen.bayesnet`.

Every error is a :class:`ValueError` subclass and, where it concerns one variable, names it
in the message and keeps it in ``.variable`` so that callers can react programmatically.
"""

from __future__ import annotations

__all__ = [
    "BIFSyntaxError",
    "BayesNetError",
    "CPTError",
    "CycleError",
    "EvidenceError",
    "GibbsErgodicityWarning",
    "LowAcceptanceWarning",
]


class BayesNetError(ValueError):
    """A Bayesian network, a query or its evidence is invalid.

    Attributes
    ----------
    variable
        Name of the offending variable, or ``None`` when the problem is not about one.
    """

    def __init__(self, message: str, variable: str | None = None):
        super().__init__(message)
        self.variable = variable


class CycleError(BayesNetError):
    """The parent graph has a directed cycle (``.cycle`` lists it, first node repeated last)."""

    def __init__(self, message: str, cycle: list[str]):
        super().__init__(message, cycle[0] if cycle else None)
        self.cycle = cycle


class CPTError(BayesNetError):
    """A conditional probability table has the wrong shape, a negative entry or a row whose
    sum is not one."""


class EvidenceError(BayesNetError):
    """Evidence or query names an unknown variable or state, or has probability zero."""


class BIFSyntaxError(BayesNetError):
    """Malformed BIF text; ``.line`` is the 1-based line number of the offending token."""

    def __init__(self, message: str, line: int, variable: str | None = None):
        super().__init__(f"line {line}: {message}", variable)
        self.line = line


class LowAcceptanceWarning(UserWarning):
    """Rejection sampling accepted very few draws; prefer likelihood weighting or Gibbs."""


class GibbsErgodicityWarning(UserWarning):
    """Zero entries in the CPTs can make single-site Gibbs sampling reducible (non-ergodic)."""
