"""Small-sample inference on the difference of two arm means when trials come from repeated
(sticky) units: the bias-reduced cluster-robust variance CR2 and its Satterthwaite degrees of
freedom under a random-effects working model (Bell & McCaffrey 2002, "Bias reduction in standard
errors for linear regression with multi-stage samples", Survey Methodology 28(2); Imbens & Kolesar
2016, "Robust standard errors in small samples: some practical advice", REStat 98(4), sec. III-IV,
whose recommended procedure this is). The fixed-horizon Welch test, its interval and the
guardrails' one-sided test use it when units repeat; the always-valid test keeps the
large-sample CR1 variance (`Summary.clustered`) that its simulations were run with.

Why: with few units of unequal size, CR1 with units - 1 degrees of freedom rejected 7.2% of A/A
runs at 5% (35 trials per arm, intra-unit correlation 0.3); this procedure 4.4-5.2% across the
cells of bench/validate_welch_units.py. Unlike CR1 (Summary.clustered) it has no floor at
variance / n: flooring made it conservative where units barely correlate (2.2% at 35 trials per
arm and none, 1.0% at 15; 3,000 runs each), and the degrees of freedom already carry the noise of
a sandwich from few units. When the between-unit spread is 0 in both arms the test is undefined.

The model is the two-arm regression y = a + b treatment + e, with units nested in arms, so the hat
matrix is block diagonal by arm and within an arm of N values H_gg = J / N for a unit g of n_g
values. CR2 adjusts each unit's residuals by (I - H_gg)^(-1/2), whose eigenvalue on the constant
vector is (1 - n_g / N)^(-1/2), so for the mean of an arm

    V_CR2 = sum_g r_g^2 / (1 - n_g / N) / N^2,    r_g = s_g - mean n_g (the unit's residual sum),

unbiased when the values are independent with equal variance (every unit of one value: the
variance / N of Welch's test). The estimator is a quadratic form e' W W' e in the errors, with
w_g = (1 - p_g)^(-1/2) (1_g - p_g 1) / N and p_g = n_g / N; under the working model
Var(e) = sigma^2 ((1 - rho) I + rho blockdiag(J_g)) (sigma^2 per arm, rho common) its
Satterthwaite degrees of freedom are (sum of eigenvalues)^2 / (sum of squared eigenvalues) of
sigma^2 W' Omega W, summed over the two arms. W' Omega W is a diagonal plus a rank-3 matrix, so
its trace and Frobenius norm come in O(units) (`bm_terms`; tests check them against the dense
matrices). rho is the ANOVA estimate of the intra-unit correlation, pooled over the arms (each
with its own mean), clipped to [0, 1]. With every unit of one value all of this is Welch's test
exactly: V = variance / N and the Welch-Satterthwaite degrees of freedom."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where used: the server starts without it
    from typing import TypeAlias

    import numpy as np

    Values: TypeAlias = Sequence[float] | np.ndarray


@dataclass(frozen=True, eq=False)
class UnitDetail:
    """One arm's clusters: entry i stands for weights[i] clusters of sizes[i] values each, whose
    squared residual sums r_g^2 add up to ss[i]. Units are entries of weight 1; the values with no
    unit (each its own cluster) are one entry of size 1 and weight k - only sums over equal sizes
    matter, so their individual residuals are not needed."""

    sizes: np.ndarray
    weights: np.ndarray
    ss: np.ndarray
    units: int = 0  # how many of the clusters are units (the rest: values without a unit)

    @classmethod
    def of(cls, sizes: Values, residuals: Values, singles: int = 0, singles_ss: float = 0.0) -> UnitDetail:
        """From each unit's count and residual sum r_g, plus `singles` values without a unit whose
        squared residuals sum to `singles_ss`."""
        import numpy as np

        size = np.asarray(sizes, dtype=float)
        ss = np.asarray(residuals, dtype=float) ** 2
        weights = np.ones_like(size)
        units = int(size.size)
        if singles > 0:
            size = np.append(size, 1.0)
            weights = np.append(weights, float(singles))
            ss = np.append(ss, max(0.0, singles_ss))
        return cls(size, weights, ss, units)

    @classmethod
    def of_sums(cls, sizes: Sequence[float], sums: Sequence[float], mean: float, n: int, total_ss: float) -> UnitDetail:
        """From each unit's count and sum (values shifted alike, `mean` on that shift), the arm's n
        and the residual sum of squares of all its clusters (`Summary.unit_ss`): the values without
        a unit are the rest of the count and of the sum of squares."""
        import numpy as np

        size = np.asarray(sizes, dtype=float)
        residuals = np.asarray(sums, dtype=float) - mean * size
        singles = n - int(size.sum())
        rest = max(0.0, total_ss - float(np.sum(residuals**2))) if singles > 0 else 0.0
        return cls.of(size, residuals, singles, rest)

    @classmethod
    def independent(cls, n: int, variance: float) -> UnitDetail:
        """n independent values: n clusters of one, residual sum of squares (n - 1) variance."""
        import numpy as np

        return cls(np.array([1.0]), np.array([float(n)]), np.array([max(0.0, (n - 1) * variance)]))

    @property
    def clusters(self) -> float:
        return float(self.weights.sum())

    @property
    def between_ss(self) -> float:
        """sum_g n_g (mean_g - mean)^2 = sum_g r_g^2 / n_g."""
        return float((self.ss / self.sizes).sum())


# Above this many units in an arm the fixed-horizon tests use the CR1 variance with units - 1
# degrees of freedom (Summary.clustered) in every view, and the store does not read a row per unit:
# CR2's correction, about max n_g / N and 1 / G, fades with many units. Measured with 2 metrics:
# an analysis takes 2.7 ms at 50 units per arm (1.5 ms without the per-unit rows), 3.9 ms at 200
# (2.1 ms), and would take 9-11 ms at 450 (1.9-2.7 ms), most of it reading the rows.
UNIT_DETAIL_LIMIT = 200


def cr2_variance(d: UnitDetail, n: int) -> float:
    """V_CR2 of an arm's mean of n values (module doc); inf when one unit holds every value."""
    if float(d.sizes.max()) >= n:
        return math.inf
    return float((d.ss / (1.0 - d.sizes / n)).sum()) / (n * n)


def intra_unit_correlation(arms: list[tuple[int, float, UnitDetail]]) -> float:
    """The ANOVA estimate of the intra-unit correlation for unbalanced one-way data (Searle, Casella
    & McCulloch 1992, Variance Components, sec. 3.6), pooled over arms that each have their own mean:
    with N values in G units over A arms, SSB = sum n_g (mean_g - mean_arm)^2 on G - A degrees of
    freedom, SSW the rest of each arm's sum of squares on N - G,
    n0 = (N - sum_arms sum_g n_g^2 / N_arm) / (G - A), and
    rho = (MSB - MSW) / (MSB + (n0 - 1) MSW), clipped to [0, 1]. `arms`: (n, variance, detail)."""
    n_total = sum(n for n, _, _ in arms)
    g_total = sum(d.clusters for _, _, d in arms)
    df_b, df_w = g_total - len(arms), n_total - g_total
    if df_b <= 0 or df_w <= 0:
        return 0.0
    ssb = sum(d.between_ss for _, _, d in arms)
    ssw = max(0.0, sum((n - 1) * v - d.between_ss for n, v, d in arms))
    n0 = (n_total - sum(float((d.weights * d.sizes**2).sum()) / n for n, _, d in arms)) / df_b
    msb, msw = ssb / df_b, ssw / df_w
    denominator = msb + (n0 - 1) * msw
    if not denominator > 0 or not math.isfinite(denominator):
        return 0.0
    return min(1.0, max(0.0, (msb - msw) / denominator))


def bm_terms(d: UnitDetail, n: int, rho: float) -> tuple[float, float]:
    """(trace, squared Frobenius norm) of W' Omega W / sigma^2 for one arm (module doc).

    With c_g^2 = 1 / (1 - p_g), N^2 W' Omega W = diag(e) + alpha P P' - rho (Q P' + P Q') where
    e_g = c_g^2 ((1 - rho) n_g + rho n_g^2), P_g = c_g p_g, Q_g = c_g n_g^2 and
    alpha = rho sum n_g^2 - (1 - rho) N; expanding the square of that matrix gives the norm."""
    w, size = d.weights, d.sizes
    c2 = 1.0 / (1.0 - size / n)
    e = c2 * ((1 - rho) * size + rho * size * size)
    p2, pq_g, q2 = c2 * (size / n) ** 2, c2 * size**3 / n, c2 * size**4  # P_g^2, P_g Q_g, Q_g^2
    alpha = rho * float((w * size * size).sum()) - (1 - rho) * n
    pp, pq, qq = float((w * p2).sum()), float((w * pq_g).sum()), float((w * q2).sum())
    trace = float((w * e).sum()) + alpha * pp - 2 * rho * pq
    frob = (
        float((w * e * e).sum())
        + 2 * (alpha * float((w * e * p2).sum()) - 2 * rho * float((w * e * pq_g).sum()))
        + alpha * alpha * pp * pp
        + 2 * rho * rho * (qq * pp + pq * pq)
        - 4 * alpha * rho * pp * pq
    )
    return trace / n**2, max(frob, 0.0) / n**4


def mean_variances_df(
    control: tuple[int, float, UnitDetail], treatment: tuple[int, float, UnitDetail]
) -> tuple[float, float, float] | None:
    """(CR2 variance of mean(control), CR2 variance of mean(treatment), degrees of freedom of their
    difference) (Bell-McCaffrey / Imbens-Kolesar, module doc); each arm is (n, variance, detail).
    None when a unit holds all of an arm's values or neither arm varies."""
    (n_c, v_c, d_c), (n_t, v_t, d_t) = control, treatment
    var_c, var_t = cr2_variance(d_c, n_c), cr2_variance(d_t, n_t)
    if not (math.isfinite(var_c + var_t) and var_c + var_t > 0):
        return None
    rho = intra_unit_correlation([control, treatment])
    (tr_c, fr_c), (tr_t, fr_t) = bm_terms(d_c, n_c, rho), bm_terms(d_t, n_t, rho)
    # sigma^2 per arm as shares of their sum, so that huge variances cannot overflow the squares
    total = v_c + v_t
    if not (math.isfinite(total) and total > 0):
        return None
    a, b = v_c / total, v_t / total
    denominator = a * a * fr_c + b * b * fr_t
    if not denominator > 0:
        return None
    return var_c, var_t, (a * tr_c + b * tr_t) ** 2 / denominator
