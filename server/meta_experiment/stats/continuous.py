"""Two-sample comparisons of a continuous metric from sufficient statistics (n, mean, variance):
Welch's and Student's t-tests, the interval of the difference, the delta-method interval of the
relative lift, Cohen's d and Hedges' g. Every function returns None (with no warning) where the
quantity is undefined; `why_undefined` says why in words."""

from __future__ import annotations

import math

from . import cluster
from .numeric import clip_p, t_cdf, t_quantile, t_sf
from .summary import Summary, mean_difference


def why_undefined(c: Summary, t: Summary) -> str | None:
    """A plain reason the mean/variance tests cannot run, or None when they can."""
    if c.n < 2 or t.n < 2:
        return f"needs at least 2 values per arm for a t-test (control n={c.n}, treatment n={t.n})"
    if c.groups < 2 or t.groups < 2:
        return (
            "needs values from at least 2 units per arm: trials of one unit are correlated, so the spread "
            f"between units is what the tests use (control: {c.groups} unit(s), treatment: {t.groups})"
        )
    if not all(math.isfinite(x) for x in (c.mean, t.mean, c.variance, t.variance, c.mean_variance + t.mean_variance)):
        return "the values are too large to analyse (their variance overflows floating point): use a larger unit"
    underflow = (
        "the values differ by less than floating point can square (their variance underflows to 0): "
        "record them in a smaller unit (e.g. ms instead of s)"
    )
    if c.variance <= 0 and t.variance <= 0:
        if any(s.n > 1 and s.min < s.max for s in (c, t)):
            return underflow
        if c.mean == t.mean:
            return "both arms are constant and equal: there is no difference to test"
        return "both arms are constant (zero variance): a t-test is undefined"
    if not c.mean_variance + t.mean_variance > 0:  # e.g. a variance of 5e-324 over 8 values
        return underflow
    return None


def mean_variances(c: Summary, t: Summary, small_sample: bool = True) -> tuple[float, float, float] | None:
    """(variance of mean(c), variance of mean(t), Welch-Satterthwaite degrees of freedom), or None
    when the tests are undefined (`why_undefined`). Independent values: variance / n per arm (Welch
    1947; scipy.stats.ttest_ind(equal_var=False)). When units repeat and both arms carry their unit
    detail, with `small_sample`: the CR2 variances and the Bell-McCaffrey degrees of freedom
    (stats/cluster.py), which reduce to Welch's without repeats. Otherwise (the always-valid test,
    which was simulated with it, or more units than the store reads): the CR1 cluster-robust
    variance with clusters - 1 degrees of freedom per arm (Summary.clustered)."""
    if why_undefined(c, t):
        return None
    detailed = all(
        (s.units is not None and s.units.units <= cluster.UNIT_DETAIL_LIMIT) or not s.clusters for s in (c, t)
    )
    if small_sample and detailed and (c.units is not None or t.units is not None):
        # None when every unit sits at its arm's mean in both arms (the between-unit spread is 0):
        # undefined, as the sandwich says, rather than CR1's answer, which a change of 0.01 in one
        # value would swap for CR2's (metric.py says why)
        return cluster.mean_variances_df(_arm(c), _arm(t))
    a, b = t.mean_variance, c.mean_variance
    se2 = a + b
    # se2^2 / (a^2 / (n_t - 1) + b^2 / (n_c - 1)), written with the shares a / se2 and b / se2 so
    # that huge variances cannot overflow the squares
    df = 1 / ((a / se2) ** 2 / (t.groups - 1) + (b / se2) ** 2 / (c.groups - 1))
    return b, a, df


def _arm(s: Summary) -> tuple[int, float, cluster.UnitDetail]:
    return s.n, s.variance, s.units if s.units is not None else cluster.UnitDetail.independent(s.n, s.variance)


Variances = tuple[float, float, float]  # what mean_variances returns, computed once per metric


def welch_se_df(
    c: Summary, t: Summary, small_sample: bool = True, *, variances: Variances | None = None
) -> tuple[float, float] | None:
    """Standard error of mean(t) - mean(c) and its degrees of freedom (`mean_variances`, or the
    `variances` it already gave for these arms)."""
    found = variances if variances is not None else mean_variances(c, t, small_sample)
    if found is None:
        return None
    return math.sqrt(found[0] + found[1]), found[2]


def student_se_df(c: Summary, t: Summary) -> tuple[float, float] | None:
    """Pooled-variance standard error and n1 + n2 - 2 df (Student 1908; scipy.stats.ttest_ind)."""
    if why_undefined(c, t):
        return None
    df = c.n + t.n - 2
    pooled = ((c.n - 1) * c.variance + (t.n - 1) * t.variance) / df
    return math.sqrt(pooled * (1 / c.n + 1 / t.n)), float(df)


def t_test(
    c: Summary, t: Summary, method: str = "welch", *, variances: Variances | None = None
) -> tuple[float, float, float] | None:
    """(t, df, two-sided p) of treatment minus control; agrees with scipy.stats.ttest_ind."""
    se_df = welch_se_df(c, t, variances=variances) if method == "welch" else student_se_df(c, t)
    if se_df is None:
        return None
    se, df = se_df
    tt = mean_difference(c, t) / se
    return tt, df, clip_p(2 * t_sf(abs(tt), df))


def one_sided_p(c: Summary, t: Summary, worse_is_higher: bool, *, variances: Variances | None = None) -> float | None:
    """Welch one-sided p for "treatment is worse" (scipy.stats.ttest_ind(..., alternative=...))."""
    res = t_test(c, t, "welch", variances=variances)
    if res is None:
        return None
    tt, df, _ = res
    return clip_p(t_sf(tt, df) if worse_is_higher else t_cdf(tt, df))


def difference_ci(
    c: Summary, t: Summary, level: float = 0.95, method: str = "welch", *, variances: Variances | None = None
) -> tuple[float, float] | None:
    """Interval of mean(t) - mean(c): d -/+ t_{df} * se (scipy TtestResult.confidence_interval)."""
    se_df = welch_se_df(c, t, variances=variances) if method == "welch" else student_se_df(c, t)
    if se_df is None:
        return None
    se, df = se_df
    d = mean_difference(c, t)
    h = t_quantile(level, df) * se
    return d - h, d + h


def relative_lift(c: Summary, t: Summary) -> float | None:
    """(mean(t) - mean(c)) / |mean(c)|; None when the control mean is 0."""
    if c.n == 0 or t.n == 0 or c.mean == 0:
        return None
    return mean_difference(c, t) / abs(c.mean)


def relative_lift_ci(
    c: Summary, t: Summary, level: float = 0.95, *, variances: Variances | None = None
) -> tuple[float, float] | None:
    """Delta-method interval of the relative lift, as GrowthBook's gbstats frequentist engine:
    var = var_t / (n_t mu_c^2) + var_c mu_t^2 / (n_c mu_c^4), with the Welch df quantile."""
    lift = relative_lift(c, t)
    found = variances if variances is not None else mean_variances(c, t)
    if lift is None or found is None:
        return None
    v_c, v_t, df = found
    q = t_quantile(level, df)
    if control_too_uncertain(c, v_c, q):
        return None
    # the same variance as (var_t / n_t + r^2 var_c / n_c) / mu_c^2 with r = mu_t / mu_c, written so
    # that neither mu_c^4 underflows (|mu| < 1e-77) nor overflows (|mu| > 1e77); with repeated
    # units each arm's variance of the mean is the cluster-robust one (`mean_variances`)
    ratio = t.mean / c.mean
    sd = math.sqrt(v_t + ratio * ratio * v_c) / abs(c.mean)
    h = q * sd
    if not math.isfinite(h):
        return None
    return lift - h, lift + h


def control_too_uncertain(c: Summary, variance_of_mean: float, quantile: float) -> bool:
    """Whether the control mean is not distinguishable from 0 at the interval's level, Fieller's
    g = q^2 var(mean_c) / mean_c^2 >= 1 (Fieller 1954; Franz 2007, "Ratios: a short guide to
    confidence limits and proper use", eq. 8): the exact interval of the ratio is then unbounded,
    and the delta method's finite one is an artefact of linearising (one control value of 9,000
    among values near 10 gave [96%, 101%] while the difference's interval spanned 0)."""
    return quantile * quantile * variance_of_mean >= c.mean * c.mean


def pooled_sd(c: Summary, t: Summary) -> float | None:
    """sqrt(((n1-1)s1^2 + (n2-1)s2^2) / (n1+n2-2)), the seed's pooled_std; None when 0 or inf."""
    if c.n + t.n < 3 or c.n < 1 or t.n < 1:
        return None
    v = ((c.n - 1) * c.variance + (t.n - 1) * t.variance) / (c.n + t.n - 2)
    return math.sqrt(v) if 0 < v < math.inf else None  # an overflowed variance gives no effect size


def cohens_d(c: Summary, t: Summary) -> float | None:
    """(mean(t) - mean(c)) / pooled sd (Cohen 1988; the seed's formula)."""
    sd = pooled_sd(c, t)
    return None if sd is None else mean_difference(c, t) / sd


def hedges_g(c: Summary, t: Summary) -> float | None:
    """Cohen's d times J = 1 - 3 / (4 N - 9) (Hedges & Olkin 1985; statsmodels effectsize_smd)."""
    d = cohens_d(c, t)
    n = c.n + t.n
    return None if d is None or n < 3 else d * (1 - 3 / (4 * n - 9))
