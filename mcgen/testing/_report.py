"""The decision shared by the reports of mcgen.testing: a Bonferroni bound over p-values."""

from __future__ import annotations

import numpy as np


class BonferroniDecision:
    """Mixin for a report with ``p_values`` (one per compared quantity) and a level ``alpha``;
    reports that also carry ``names`` can say which quantities fail."""

    p_values: np.ndarray
    alpha: float

    @property
    def p_value(self) -> float:
        """Bonferroni-adjusted smallest p-value."""
        return float(min(1.0, np.min(self.p_values) * self.p_values.size))

    @property
    def passed(self) -> bool:
        return self.p_value >= self.alpha

    @property
    def failing(self) -> list:
        """Names of the quantities that fail on their own at the Bonferroni level."""
        names = getattr(self, "names", None) or [str(i) for i in range(self.p_values.size)]
        return [n for n, p in zip(names, self.p_values) if p * self.p_values.size < self.alpha]
