"""Small numeric guards shared by the statistics modules: everything that leaves `stats/` is a
finite float or None, never NaN or inf (the reports and the MCP structured content must not carry
them)."""

from __future__ import annotations

import math
import warnings

from scipy import special, stats

Z_CAP = 1e3  # |z| beyond this carries no more information; keeps e-values finite


def finite(x: float | None) -> float | None:
    """x as a plain float when it is finite, else None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def clamped(x: float | None) -> float | None:
    """x as a plain float within +/-1e300 (an infinity too) (a % change of a control mean near 0, 1e-320 say,
    overflows: it read as 'unknown', and a guardrail that collapsed passed as no regression, from a
    review; reports print anything past 1e6% as 'beyond'); None for None or NaN."""
    if x is None or math.isnan(x):
        return None
    return max(-1e300, min(1e300, float(x)))  # one cap wherever it is applied (a lift, then its %)


def t_to_z(t: float, df: float) -> float:
    """The standard-normal quantile with the same one-sided tail probability as Student's t with
    `df` degrees of freedom (the significance-level matching of Jennison & Turnbull 2000, sec. 3.4),
    computed from log tails so that tiny p-values keep their size."""
    if not math.isfinite(t):
        return math.copysign(Z_CAP, t)
    if df > 1e7:
        return max(-Z_CAP, min(Z_CAP, t))
    log_tail = float(stats.t.logsf(abs(t), df))  # log P(T > |t|), no underflow
    z = -float(special.ndtri_exp(log_tail))  # Phi^-1(exp(log_tail)), scipy.special.ndtri_exp
    return math.copysign(min(abs(z), Z_CAP), t)


# The distribution functions the engine evaluates on every analysis, called through scipy.special:
# the same values as scipy.stats (which computes them with these functions) without its generic
# argument handling, which cost ~100 us a call - most of an analysis' time.


def norm_sf(x: float) -> float:
    """scipy.stats.norm.sf(x) = Phi(-x)."""
    return float(special.ndtr(-x))


def norm_cdf(x: float) -> float:
    """scipy.stats.norm.cdf(x)."""
    return float(special.ndtr(x))


def norm_isf(p: float) -> float:
    """scipy.stats.norm.isf(p) = -Phi^-1(p)."""
    return float(-special.ndtri(p))


def norm_ppf(q: float) -> float:
    """scipy.stats.norm.ppf(q)."""
    return float(special.ndtri(q))


def t_sf(x: float, df: float) -> float:
    """scipy.stats.t.sf(x, df) = F_df(-x)."""
    return float(special.stdtr(df, -x))


def t_cdf(x: float, df: float) -> float:
    """scipy.stats.t.cdf(x, df)."""
    return float(special.stdtr(df, x))


def t_isf(p: float, df: float) -> float:
    """scipy.stats.t.isf(p, df) = -F_df^-1(p)."""
    return float(-special.stdtrit(df, p))


NCT_INTEGRAL_MAX_DF = (
    1e5  # beyond, the chi-square density is too narrow for the integral (callers use the normal limit)
)


def nct_cdf(x: float, df: float, nc: float) -> float:
    """scipy.stats.nct.cdf(x, df, nc). Where scipy's series gives NaN (the far tail at small df and a
    large noncentrality, e.g. x = -31.6, df = 2, nc = 8), the CDF by its definition as a mixture:
    T = (Z + nc) / sqrt(V / df), Z ~ N(0, 1), V ~ chi2(df), so P(T <= x) = E[Phi(x sqrt(V / df) - nc)]
    (Owen 1968, eq. 2.3), integrated numerically over all but 2e-15 of V's mass: accurate to about
    1e-15 absolute (for power, not for p-values far in the tail). NaN when it cannot be computed."""
    p = float(special.nctdtr(df, nc, x))
    if math.isfinite(p) or not (math.isfinite(x) and math.isfinite(nc) and 0 < df <= NCT_INTEGRAL_MAX_DF):
        return p
    from scipy import integrate  # only here: rare, and kept out of the server's start-up

    chi2 = stats.chi2(df)

    def mixed(v: float) -> float:
        return float(chi2.pdf(v) * special.ndtr(x * math.sqrt(v / df) - nc))

    lo, hi = chi2.ppf(1e-15), chi2.isf(1e-15)  # where all but 2e-15 of V's mass lies
    with warnings.catch_warnings():  # a tail value below the integral's accuracy: no word on stderr
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(mixed, lo, hi, points=[df], limit=200, epsabs=1e-300, epsrel=1e-10)
    return min(max(value, 0.0), 1.0)


def t_quantile(level: float, df: float) -> float:
    """Two-sided critical value t_{(1+level)/2, df} (scipy.stats.t.ppf)."""
    return float(special.stdtrit(df, 0.5 + level / 2))


def z_quantile(level: float) -> float:
    """Two-sided critical value z_{(1+level)/2} (scipy.stats.norm.ppf)."""
    return norm_ppf(0.5 + level / 2)


def clip_p(p: float) -> float:
    """A p-value forced into [0, 1] (rounding can leave 1 + 1e-16)."""
    return min(1.0, max(0.0, float(p)))
