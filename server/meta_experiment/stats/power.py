"""Sample sizes to detect the target improvement with 80% power, at the intended split between the
arms: for the fixed-horizon test (agreeing with statsmodels, `ratio` = treatment / control) and for
the always-valid test that actually drives decisions (through the effective sample size
n_eff = n_c n_t / (n_c + n_t), which is s (1 - s) N for N trials at treatment share s)."""

from __future__ import annotations

import math

from scipy import optimize

from . import sequential
from .numeric import NCT_INTEGRAL_MAX_DF, nct_cdf, norm_cdf, norm_isf, norm_ppf, norm_sf, t_isf

N_MAX = 1e9
# A standardized effect this small needs far more than N_MAX trials ((2.8 + 0.84) / 1e-6)^2 = 1.3e13),
# and one near 1e-160 overflows the square: every size here is None below it.
TINY_EFFECT = 1e-6


def t_test_power(d: float, n: float, alpha: float, ratio: float = 1.0) -> float:
    """Power of the two-sided two-sample t-test with n in the first arm and ratio * n in the second
    (statsmodels TTestIndPower.power, nobs1 = n: noncentral t with df = n1 + n2 - 2 and
    noncentrality d sqrt(n1 n2 / (n1 + n2)); at ratio 1, df = 2n - 2 and d sqrt(n / 2))."""
    n2 = ratio * n
    df = n + n2 - 2
    nc = d * math.sqrt(n * n2 / (n + n2))
    crit = t_isf(alpha / 2, df)
    p = 1.0 - nct_cdf(crit, df, nc) + nct_cdf(-crit, df, nc)
    return p if math.isfinite(p) else z_test_power(d, n, alpha, ratio)  # nct fails at huge df: normal limit


def z_test_power(h: float, n: float, alpha: float, ratio: float = 1.0) -> float:
    """Power of the two-sided z-test with n in the first arm and ratio * n in the second
    (statsmodels NormalIndPower.power, nobs1 = n: shift h sqrt(n1 n2 / (n1 + n2)))."""
    crit = norm_isf(alpha / 2)
    n2 = ratio * n
    shift = h * math.sqrt(n * n2 / (n + n2))
    return norm_sf(crit - shift) + norm_cdf(-crit - shift)


def n_fixed(effect: float, alpha: float, power: float = 0.8, t_test: bool = True, ratio: float = 1.0) -> float | None:
    """n of the first (control) arm, not rounded, with the given power when the second (treatment)
    arm has ratio * n: statsmodels tt_ind_solve_power(..., ratio=ratio) (t_test) or
    NormalIndPower().solve_power(..., ratio=ratio); at ratio 1, n per arm. None when the effect is 0
    or would need more than 1e9."""
    effect = abs(effect)
    if effect < TINY_EFFECT or not math.isfinite(effect):
        return None
    fn = t_test_power if t_test else z_test_power
    lo = 2.0 if t_test else 1e-6  # statsmodels' lower bracket for nobs1 is 2 as well
    if fn(effect, lo, alpha, ratio) >= power:
        return lo
    hi = 4.0
    while fn(effect, hi, alpha, ratio) < power:
        if hi >= N_MAX:
            return None
        lo, hi = hi, min(hi * 4, N_MAX)
    return float(optimize.brentq(lambda n: fn(effect, n, alpha, ratio) - power, lo, hi, xtol=1e-10, rtol=1e-13))


def arms_at_split(total: float, control_share: float) -> tuple[int, int]:
    """(control, treatment) trials, each rounded up, for `total` (not rounded) trials at the split."""
    return math.ceil(control_share * total - 1e-9), math.ceil((1 - control_share) * total - 1e-9)


def required_for_window(
    effect: float, alpha_per_direction: float, power: float = 0.8, control_share: float = 0.5, t_test: bool = True
) -> int | None:
    """The smallest sample_size_required whose planned window ends where the window's boundary alone
    (z >= c at t = 1) has the given power (crossing_probability with the PLAN_MULTIPLE * required
    trials of the window's end, n_eff = that times share * (1 - share)). The normal approximation,
    n_eff >= ((c + z_power) / effect)^2, is where the search starts: the t's few degrees of freedom
    only lower the power, and barely at large sizes."""
    effect = abs(effect)
    if effect < TINY_EFFECT or not math.isfinite(effect):  # (1e-160 overflowed the square: from a review)
        return None
    c = sequential.window_critical(alpha_per_direction)
    spread = sequential.PLAN_MULTIPLE * control_share * (1 - control_share)
    need = ((c + norm_ppf(power)) / effect) ** 2 / spread
    if need > N_MAX:
        return None
    required = max(2, math.ceil(need - 1e-9))
    if not t_test:
        return required
    while crossing_probability(effect, required * spread, c, sequential.PLAN_MULTIPLE * required) < power:
        required += 1
    return required


def crossing_probability(effect: float, n_eff: float, z_bound: float, total: float, t_test: bool = True) -> float:
    """The probability that the sequential test's statistic reaches z_bound at a look with effective
    sample size n_eff (of `total` trials) under a standardized effect `effect`. The test maps Welch's
    t to z at its degrees of freedom (numeric.t_to_z), so it crosses where t exceeds the t quantile
    of the same tail, t_b = F_df^-1(Phi(z_bound)), df = total - 2; t is noncentral t with
    noncentrality effect sqrt(n_eff) (as statsmodels' TTestIndPower; the normal limit at huge df or
    where it cannot be computed). The normal approximation effect sqrt(n_eff) - z_bound had
    overstated the power at small samples: 64% where it said 80% at 12 per arm (from a review).
    Not `t_test` (a rate's pooled z): the normal shift, P(Z > z_bound - effect sqrt(n_eff))."""
    shift = effect * math.sqrt(n_eff)
    if not math.isfinite(z_bound):
        return 0.0
    if not t_test:
        return norm_sf(z_bound - shift)
    df = max(total - 2.0, 1.0)
    tail = norm_sf(z_bound)
    t_bound = t_isf(tail, df) if tail > 0 else math.inf  # (a bound far out: the normal limit, ~0)
    if df <= NCT_INTEGRAL_MAX_DF and math.isfinite(t_bound):
        p = 1.0 - nct_cdf(t_bound, df, shift)
        if math.isfinite(p):
            return min(1.0, max(0.0, p))
    return norm_sf(z_bound - shift)


def n_eff_sequential(
    effect: float,
    alpha_per_direction: float,
    n_required: int,
    power: float = 0.8,
    control_share: float = 0.5,
    t_test: bool = True,
) -> float | None:
    """The effective sample size n_eff = n_c n_t / (n_c + n_t) at which the sequential test crosses
    its one-sided boundary at that look with the given probability (crossing_probability, with the
    N = n_eff / (s (1 - s)) trials of that look at the intended split). The information fraction is
    t = n_eff / n_eff(window end), n_eff(window end) = PLAN_MULTIPLE * n_required * s (1 - s)
    (sequential.fraction); an upper bound for the sample size, since the boundary may be crossed
    earlier. The boundary falls inside the planned window and jumps up after it (the e-process
    keeps only the rest of alpha), so the window is searched first."""
    effect = abs(effect)
    if effect < TINY_EFFECT or not math.isfinite(effect):
        return None
    spread = control_share * (1 - control_share)
    end = sequential.PLAN_MULTIPLE * max(n_required, 2) * spread  # n_eff, t = 1

    def gap(n_eff: float) -> float:
        bound = sequential.z_boundary(n_eff / end, alpha_per_direction)
        return crossing_probability(effect, n_eff, bound, n_eff / spread, t_test) - power

    lo = 0.5  # one trial in each arm
    if gap(lo) >= 0:
        return lo
    if gap(end) >= 0:  # increasing inside the window
        return float(optimize.brentq(gap, lo, end, xtol=5e-7))
    after = end * (1 + 1e-9)
    if gap(after) >= 0:
        return after
    cap = N_MAX / 2  # the information of N_MAX trials per arm at the even split
    if gap(cap) < 0:
        return None
    return float(optimize.brentq(gap, after, cap, xtol=5e-7))


def n_sequential(
    effect: float,
    alpha_per_direction: float,
    n_required: int,
    power: float = 0.8,
    control_share: float = 0.5,
    t_test: bool = True,
) -> float | None:
    """n of the control arm (statsmodels' nobs1; the treatment arm has s / (1 - s) times as many, s =
    1 - control_share the treatment share; n per arm at the even split) at which the sequential test
    has the given power: N = n_eff / (s (1 - s)) trials in all (n_eff from n_eff_sequential), of
    which the control arm has (1 - s) N = n_eff / s. At s = 1/2, n = 2 n_eff: effect sqrt(n / 2) -
    z_boundary = z_power, as before uneven splits."""
    n_eff = n_eff_sequential(effect, alpha_per_direction, n_required, power, control_share, t_test)
    return None if n_eff is None else n_eff / (1 - control_share)
