"""Sufficient statistics of one arm of one metric, as the statistical functions consume them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .cluster import UnitDetail


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
    # When the values come in clusters (trials of one sticky unit): the number of clusters and the
    # design effect, the cluster-robust variance of the mean over variance / n (see `clustered`).
    # 0 and 1.0: every value is independent.
    clusters: int = 0
    design_effect: float = 1.0
    # sum_c (s_c - mean n_c)^2, sum_c (s_c - mean n_c) n_c and sum_c n_c^2: the residual sums of
    # squares of the clusters about any other centre follow (`rate_design_effect`)
    unit_ss: float = 0.0
    unit_cross: float = 0.0
    unit_n2: float = 0.0
    # Each unit's size and residual sum, for the small-sample variance of the fixed-horizon tests
    # (stats/cluster.py); None when the values are independent, or (from the store) when an arm
    # has more units than cluster.UNIT_DETAIL_LIMIT.
    units: UnitDetail | None = field(default=None, compare=False, repr=False)
    # What the float `mean` leaves out (the exact mean is mean + mean_error): the store keeps its
    # mean as shift + shifted mean, and their rounded sum can lose digits the difference of two
    # arms' means needs when the values barely vary (1e9 + noise of 1e-3). See `mean_difference`.
    mean_error: float = 0.0

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance) if self.variance > 0 else 0.0

    @property
    def groups(self) -> int:
        """The number of independent groups: clusters when the values are clustered, else n."""
        return self.clusters if self.clusters else self.n

    @property
    def effective_groups(self) -> float:
        """The number of groups a test on clustered values may count on when the clusters differ in
        size: n^2 / sum_c n_c^2 (Kish 1965's effective number of the cluster totals; equal sizes
        give G, one dominant cluster about 1), at most G. It is the effective number of clusters G*
        of Carter, Schnepel & Steigerwald (2017, "Asymptotic behavior of a t-test robust to cluster
        heterogeneity") for cluster scores whose variance grows with the cluster's size; correlation
        within clusters makes their G* smaller still. Unclustered: n."""
        if not self.clusters or self.unit_n2 <= 0:
            return float(self.groups)
        return min(float(self.clusters), self.n * self.n / self.unit_n2)

    @property
    def mean_variance(self) -> float:
        """The variance of the mean: variance / n, times the design effect."""
        return self.variance * self.design_effect / self.n if self.n else math.inf

    def clustered(self, clusters: int, unit_ss: float, cross: float = 0.0, n2: float = 0.0) -> Summary:
        """This summary with its values in `clusters` clusters, whose residual sum of squares about
        the mean is unit_ss = sum_c (s_c - mean n_c)^2 (s_c, n_c: a cluster's sum and count).

        The cluster-robust (sandwich) variance of the mean (Liang & Zeger 1986) with the CR1
        small-sample factor G / (G - 1) (statsmodels OLS cov_type='cluster' on a constant):

            var_CR = G / (G - 1) * unit_ss / n^2,    design effect = var_CR / (variance / n),

        taken to be at least 1: clustering is never credited with more precision than independent
        values would have (with few clusters the sandwich is itself noisy and can come out small).
        With every cluster of one value, unit_ss = (n - 1) variance and the design effect is 1.
        Tests on clustered values use G - 1 degrees of freedom per arm (`groups`)."""
        if clusters >= self.n or self.n < 2:
            return self
        deff = 1.0
        if clusters >= 2 and self.variance > 0 and math.isfinite(self.variance):
            var_cr = clusters / (clusters - 1) * unit_ss / (self.n * self.n)
            deff = max(1.0, var_cr * self.n / self.variance)
        return replace(self, clusters=clusters, design_effect=deff, unit_ss=unit_ss, unit_cross=cross, unit_n2=n2)

    def rate_design_effect(self, rate: float) -> float:
        """For 0/1 values: the design effect with the clusters' residuals taken about `rate` instead
        of the arm's own mean, against the binomial variance rate (1 - rate) / n, and never below
        the arm's own design effect. Under "both arms have the same rate" the variance of a
        proportion is taken at the pooled rate, and so is its clustering: an arm whose every trial
        succeeded has no spread about its own mean (design effect 1) yet a clustered one about
        the pooled rate. sum_c (s_c - r n_c)^2 = unit_ss + 2 (m - r) cross + (m - r)^2 n2."""
        if not self.clusters or self.clusters < 2 or self.n < 2 or not 0 < rate < 1:
            return self.design_effect
        gap = self.mean - rate
        ss = max(0.0, self.unit_ss + 2 * gap * self.unit_cross + gap * gap * self.unit_n2)
        var_cr = self.clusters / (self.clusters - 1) * ss / (self.n * self.n)
        return max(self.design_effect, var_cr * self.n / (rate * (1 - rate)))

    @property
    def sum(self) -> float:
        return self.mean * self.n

    @classmethod
    def of_units(cls, values, units) -> Summary:  # type: ignore[no-untyped-def]
        """From values and the unit of each (None: a trial of its own), clustered by unit when a
        unit repeats (two-pass, fsum; for exports and tests)."""
        s = cls.of(values)
        clusters: dict[object, list[float]] = {}
        for i, (value, unit) in enumerate(zip(values, units, strict=True)):
            clusters.setdefault(("trial", i) if unit is None else unit, []).append(float(value))
        if len(clusters) >= s.n:
            return s
        residuals = [(math.fsum(v) - s.mean * len(v), len(v)) for v in clusters.values()]
        clustered = s.clustered(
            len(clusters),
            math.fsum(r * r for r, _ in residuals),
            math.fsum(r * n for r, n in residuals),
            float(sum(n * n for _, n in residuals)),
        )
        return replace(clustered, units=UnitDetail.of([n for _, n in residuals], [r for r, _ in residuals]))

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
        # what the rounded mean leaves out (x - mean is exact for values near the mean, Sterbenz)
        error = math.fsum(x - mean for x in xs) / n if math.isfinite(mean) else 0.0
        return cls(n, mean, var, min(xs), max(xs), mean_error=error if math.isfinite(error) else 0.0)


def rate_design_effects(c: Summary, t: Summary) -> tuple[float, float]:
    """Each arm's design effect for comparing two proportions with repeated units (Rao & Scott
    1992): the larger of the arm's own and the one about the pooled rate (`rate_design_effect`), so
    that the test's variance under "no difference" reflects the clustering of both arms."""
    n = c.n + t.n
    if n == 0:
        return c.design_effect, t.design_effect
    pooled = (c.mean * c.n + t.mean * t.n) / n
    return c.rate_design_effect(pooled), t.rate_design_effect(pooled)


def mean_difference(c: Summary, t: Summary) -> float:
    """mean(t) - mean(c), with each mean's rounding error added back (Knuth's TwoSum, TAOCP vol. 2,
    4.2.2: for a + b rounded to s, the exact error is (a - (s - bb)) + (b - bb), bb = s - a)."""
    return (t.mean - c.mean) + (t.mean_error - c.mean_error)


def two_sum(a: float, b: float) -> tuple[float, float]:
    """(s, e): s = a + b rounded, e its exact rounding error (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)
