"""Sample size per arm to detect the target improvement with 80% power: for the fixed-horizon
test (agreeing with statsmodels) and for the always-valid test that actually drives decisions."""

from __future__ import annotations

import math

from scipy import optimize

from . import sequential
from .numeric import nct_cdf, norm_cdf, norm_isf, norm_ppf, norm_sf, t_isf

N_MAX = 1e9


def t_test_power(d: float, n: float, alpha: float) -> float:
    """Power of the two-sided two-sample t-test, n per arm (statsmodels TTestIndPower.power:
    noncentral t with df = 2n - 2, noncentrality d sqrt(n / 2))."""
    df = 2 * n - 2
    nc = d * math.sqrt(n / 2)
    crit = t_isf(alpha / 2, df)
    p = 1.0 - nct_cdf(crit, df, nc) + nct_cdf(-crit, df, nc)
    return p if math.isfinite(p) else z_test_power(d, n, alpha)  # nct fails at huge df: normal limit


def z_test_power(h: float, n: float, alpha: float) -> float:
    """Power of the two-sided z-test, n per arm (statsmodels NormalIndPower.power)."""
    crit = norm_isf(alpha / 2)
    shift = h * math.sqrt(n / 2)
    return norm_sf(crit - shift) + norm_cdf(-crit - shift)


def n_fixed(effect: float, alpha: float, power: float = 0.8, t_test: bool = True) -> float | None:
    """n per arm (not rounded) with the given power: statsmodels tt_ind_solve_power (t_test) or
    NormalIndPower().solve_power; None when the effect is 0 or would need more than 1e9."""
    effect = abs(effect)
    if effect == 0 or not math.isfinite(effect):
        return None
    fn = t_test_power if t_test else z_test_power
    lo = 2.0 if t_test else 1e-6
    if fn(effect, lo, alpha) >= power:
        return lo
    hi = 4.0
    while fn(effect, hi, alpha) < power:
        lo, hi = hi, hi * 4
        if hi > N_MAX:
            return None
    return float(optimize.brentq(lambda n: fn(effect, n, alpha) - power, lo, hi, xtol=1e-10, rtol=1e-13))


def required_for_window(
    effect: float, alpha_per_direction: float, power: float = 0.8, control_share: float = 0.5
) -> int | None:
    """The smallest sample_size_required whose planned window ends where the window's boundary alone
    (z >= c at t = 1) has the given power: n_eff at the end >= ((c + z_power) / effect)^2 (normal
    approximation), n_eff at the end = PLAN_MULTIPLE * required * share * (1 - share)."""
    effect = abs(effect)
    if effect == 0 or not math.isfinite(effect):
        return None
    n_eff = ((sequential.window_critical(alpha_per_direction) + norm_ppf(power)) / effect) ** 2
    need = n_eff / (sequential.PLAN_MULTIPLE * control_share * (1 - control_share))
    return None if need > N_MAX else max(2, math.ceil(need - 1e-9))


def n_sequential(
    effect: float, alpha_per_direction: float, n_required: int, power: float = 0.8, control_share: float = 0.5
) -> float | None:
    """n per arm at which the sequential test crosses its one-sided boundary at that look with
    the given probability: effect sqrt(n/2) - z_boundary(n) = z_power (normal approximation; an
    upper bound for the sample size, since the boundary may be crossed earlier). The boundary falls
    inside the planned window and jumps up after it (the e-process keeps only the rest of alpha),
    so the window is searched first."""
    effect = abs(effect)
    if effect == 0 or not math.isfinite(effect):
        return None
    z_power = norm_ppf(power)
    unit = sequential.fraction(1, 1, n_required, control_share)  # t per trial per arm (n_eff = n / 2)
    per_arm_end = 1 / unit  # the window's end (t = 1), n per arm

    def gap(n: float) -> float:
        t = unit * n
        return effect * math.sqrt(n / 2) - sequential.z_boundary(t, alpha_per_direction) - z_power

    lo = 1.0
    if gap(lo) >= 0:
        return lo
    if gap(per_arm_end) >= 0:  # increasing inside the window
        return float(optimize.brentq(gap, lo, per_arm_end, xtol=1e-6))
    after = per_arm_end * (1 + 1e-9)
    if gap(after) >= 0:
        return after
    if gap(N_MAX) < 0:
        return None
    return float(optimize.brentq(gap, after, N_MAX, xtol=1e-6))
