"""Two-proportion comparisons (success or error rates) from counts: the pooled z-test, Fisher's
exact test at small counts, Newcombe's interval of the difference and the log risk-ratio interval
of the relative lift. Undefined quantities are None, never NaN. Counts may be fractional (except
for Fisher's test): with repeated units they are divided by a design effect (Rao & Scott 1992)."""

from __future__ import annotations

import math

from scipy import optimize, stats

from .numeric import clip_p, norm_cdf, norm_sf, z_quantile

SMALL_EXPECTED = 5.0  # Cochran's rule: use Fisher's exact test when an expected cell count is below 5


def pooled_z(x_c: float, n_c: float, x_t: float, n_t: float) -> float | None:
    """z of p_t - p_c with the pooled variance (statsmodels proportions_ztest, prop_var=False);
    0.0 when every trial has the same outcome (no evidence either way); None with an empty arm."""
    if n_c == 0 or n_t == 0:
        return None
    se = pooled_se(x_c, n_c, x_t, n_t)
    return 0.0 if se is None else (x_t / n_t - x_c / n_c) / se


def clustered_z(x_c: float, n_c: float, k_c: float, x_t: float, n_t: float, k_t: float) -> float | None:
    """z of p_t - p_c with repeated units: the variance under "no difference" is each arm's
    cluster-robust variance of its rate about the pooled rate, p (1 - p) k / n with k the arm's
    design effect there (Summary.rate_design_effect) - the robust score test of generalized
    estimating equations (Liang & Zeger 1986; Rotnitzky & Jewell 1990) for two groups. With k = 1
    it is `pooled_z`. (Rao & Scott's division of the counts by k would pool the rate weighted by
    1 / k, and an arm whose every trial succeeded, k = 1, would then dominate it.)"""
    if n_c == 0 or n_t == 0:
        return None
    p = (x_c + x_t) / (n_c + n_t)
    var = p * (1 - p) * (k_c / n_c + k_t / n_t)
    return 0.0 if var <= 0 else (x_t / n_t - x_c / n_c) / math.sqrt(var)


def z_test_p(z: float, alternative: str = "two-sided") -> float:
    """p of a standard-normal statistic (two-sided, "larger" or "smaller", as statsmodels names them)."""
    if alternative == "larger":
        return clip_p(norm_sf(z))
    if alternative == "smaller":
        return clip_p(norm_cdf(z))
    return clip_p(2 * norm_sf(abs(z)))


def needs_exact(x_c: float, n_c: float, x_t: float, n_t: float) -> bool:
    """True when an expected count of the 2x2 table is below 5 (Cochran 1954)."""
    n = n_c + n_t
    if n == 0:
        return True
    x = x_c + x_t
    expected = [n_c * x / n, n_c * (n - x) / n, n_t * x / n, n_t * (n - x) / n]
    return min(expected) < SMALL_EXPECTED


def fisher_p(x_c: int, n_c: int, x_t: int, n_t: int, alternative: str = "two-sided") -> float:
    """Fisher's exact test of the table [[x_t, n_t - x_t], [x_c, n_c - x_c]] (scipy.stats.fisher_exact);
    alternative "greater" means the treatment's rate is higher."""
    table = [[x_t, n_t - x_t], [x_c, n_c - x_c]]
    return clip_p(stats.fisher_exact(table, alternative=alternative).pvalue)


def wilson(x: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927; statsmodels proportion_confint 'wilson')."""
    if n == 0:
        return 0.0, 1.0
    z = z_quantile(level)
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_ci(x_c: float, n_c: float, x_t: float, n_t: float, level: float = 0.95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval of p_t - p_c (Newcombe 1998, method 10; statsmodels
    confint_proportions_2indep(method='newcomb'))."""
    if n_c == 0 or n_t == 0:
        return None
    p_t, p_c = x_t / n_t, x_c / n_c
    l_t, u_t = wilson(x_t, n_t, level)
    l_c, u_c = wilson(x_c, n_c, level)
    d = p_t - p_c
    lower = d - math.sqrt((p_t - l_t) ** 2 + (u_c - p_c) ** 2)
    upper = d + math.sqrt((u_t - p_t) ** 2 + (p_c - l_c) ** 2)
    return lower, upper


def relative_lift_ci(x_c: float, n_c: float, x_t: float, n_t: float, level: float = 0.95) -> tuple[float, float] | None:
    """Interval of p_t / p_c - 1 from the log risk ratio with 0.5 added to each count and each
    total (Katz et al. 1978; statsmodels confint_proportions_2indep(compare='ratio'), its default
    method 'log-adjusted'): log r +- z sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c). Unlike the delta method
    on the ratio it stays above -100% and keeps a width when one arm has 0 or all successes. None with
    an empty arm, no control successes (the lift itself is then undefined) or all successes in both."""
    if n_c == 0 or n_t == 0 or x_c == 0:
        return None
    a_t, m_t, a_c, m_c = x_t + 0.5, n_t + 0.5, x_c + 0.5, n_c + 0.5
    var = 1 / a_t - 1 / m_t + 1 / a_c - 1 / m_c
    if var <= 0:
        return None  # every trial succeeded in both arms: the ratio's uncertainty is not estimable
    log_ratio = math.log((a_t / m_t) / (a_c / m_c))
    h = z_quantile(level) * math.sqrt(var)
    # centred on the adjusted ratio, the interval can miss the observed lift at a zero count (0 of
    # 100 errors against 10: lift -100%, interval [-99.7%, -19.8%]): widen it to include it
    lift = (x_t / n_t) / (x_c / n_c) - 1
    return min(math.expm1(log_ratio - h), lift), max(math.expm1(log_ratio + h), lift)


def pooled_se(x_c: float, n_c: float, x_t: float, n_t: float) -> float | None:
    """sqrt(p (1 - p) (1/n_c + 1/n_t)) with the pooled rate p: the standard error of p_t - p_c that
    `pooled_z` divides by; None with an empty arm or when every trial has the same outcome."""
    if n_c == 0 or n_t == 0:
        return None
    p = (x_c + x_t) / (n_c + n_t)
    var = p * (1 - p) * (1 / n_c + 1 / n_t)
    return math.sqrt(var) if var > 0 else None


def _restricted_rates(x_c: float, n_c: float, x_t: float, n_t: float, delta: float) -> tuple[float, float]:
    """(p_c, p_t) maximising the likelihood subject to p_t - p_c = delta (the restricted estimates
    of Miettinen & Nurminen 1985). The log-likelihood is concave along that line, so its slope
    falls from + to - across the feasible segment: the root of the slope, or the segment's end
    where it does not change sign (found numerically: the cubic's closed form picks a wrong root
    at zero counts)."""
    if delta == 0:
        p = (x_c + x_t) / (n_c + n_t)
        return p, p

    def term(x: float, p: float) -> float:
        return 0.0 if x == 0 else x / p if p > 0 else math.inf

    def slope(p_c: float) -> float:
        p_t = p_c + delta
        return term(x_c, p_c) - term(n_c - x_c, 1 - p_c) + term(x_t, p_t) - term(n_t - x_t, 1 - p_t)

    lo, hi = max(0.0, -delta), min(1.0, 1.0 - delta)
    width = hi - lo
    a, b = lo + 1e-12 * max(width, 1e-300), hi - 1e-12 * max(width, 1e-300)
    if width <= 0 or slope(a) <= 0:
        p_c = lo
    elif slope(b) >= 0:
        p_c = hi
    else:
        p_c = optimize.brentq(slope, a, b, xtol=1e-15, rtol=1e-15)
    return p_c, p_c + delta


def score_z(x_c: float, n_c: float, x_t: float, n_t: float, delta: float) -> float:
    """Score statistic of H0: p_t - p_c = delta, with the variance at the restricted estimates
    (Mee 1984; Miettinen & Nurminen 1985 without their n/(n-1) factor). At delta = 0 it is the
    pooled z."""
    p_c, p_t = _restricted_rates(x_c, n_c, x_t, n_t, delta)
    var = p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c
    d = x_t / n_t - x_c / n_c - delta
    if var <= 0:
        return 0.0 if d == 0 else math.copysign(math.inf, d)
    return d / math.sqrt(var)


def score_interval(x_c: float, n_c: float, x_t: float, n_t: float, crit: float) -> tuple[float, float] | None:
    """{delta : |score_z(delta)| <= crit}: the differences the score test does not reject at this
    critical value (Mee 1984). It excludes 0 exactly when |pooled z| > crit, and stays within
    [-1, 1]. statsmodels' confint_proportions_2indep(method='score') takes the closed-form restricted
    estimates, which are not the maximum at some tables (46/50 against 30/1000): the tests check
    these against a brute-force maximisation instead."""
    if n_c == 0 or n_t == 0 or not math.isfinite(crit):
        return None
    d = x_t / n_t - x_c / n_c
    eps = 1e-12

    def f(delta: float, target: float) -> float:
        return score_z(x_c, n_c, x_t, n_t, delta) - target

    lo = -1.0 if f(-1 + eps, crit) <= 0 else optimize.brentq(f, -1 + eps, d, args=(crit,), xtol=1e-13)
    hi = 1.0 if f(1 - eps, -crit) >= 0 else optimize.brentq(f, d, 1 - eps, args=(-crit,), xtol=1e-13)
    return float(lo), float(hi)


def cohens_h(p_c: float, p_t: float) -> float:
    """2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c)) (Cohen 1988; statsmodels proportion_effectsize)."""
    return 2 * math.asin(math.sqrt(p_t)) - 2 * math.asin(math.sqrt(p_c))
