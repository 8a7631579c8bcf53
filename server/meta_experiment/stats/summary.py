"""Sufficient statistics of one arm of one metric, as the statistical functions consume them."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """n, mean, sample variance (n - 1 denominator), min and max of one arm's values.

    Built from the store's running (Welford) statistics, so mean/variance tests never read raw
    rows; or from an array with `Summary.of`."""

    n: int
    mean: float
    variance: float
    min: float = math.nan
    max: float = math.nan

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance) if self.variance > 0 else 0.0

    @property
    def sum(self) -> float:
        return self.mean * self.n

    @classmethod
    def of(cls, values) -> Summary:  # type: ignore[no-untyped-def]
        """From a sequence of floats (two-pass, exact enough for tests and simulations)."""
        xs = [float(v) for v in values]
        n = len(xs)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = math.fsum(xs) / n
        try:
            var = math.fsum((x - mean) * (x - mean) for x in xs) / (n - 1) if n > 1 else 0.0
        except OverflowError:  # fsum of squares beyond the float range
            var = math.inf
        return cls(n, mean, var, min(xs), max(xs))
