"""Small numeric guards shared by the statistics modules: everything that leaves `stats/` is a
finite float or None, never NaN or inf (the reports and the MCP structured content must not carry
them)."""

from __future__ import annotations

import math

from scipy import special, stats

Z_CAP = 1e3  # |z| beyond this carries no more information; keeps e-values finite


def finite(x: float | None) -> float | None:
    """x as a plain float when it is finite, else None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


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


def t_quantile(level: float, df: float) -> float:
    """Two-sided critical value t_{(1+level)/2, df} (scipy.stats.t.ppf)."""
    return float(stats.t.ppf(0.5 + level / 2, df))


def z_quantile(level: float) -> float:
    """Two-sided critical value z_{(1+level)/2} (scipy.stats.norm.ppf)."""
    return float(stats.norm.ppf(0.5 + level / 2))


def clip_p(p: float) -> float:
    """A p-value forced into [0, 1] (rounding can leave 1 + 1e-16)."""
    return min(1.0, max(0.0, float(p)))
