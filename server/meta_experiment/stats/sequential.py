"""The always-valid test that drives automatic decisions: a one-sided normal-mixture e-process per
direction (a mixture sequential probability ratio test), evaluated from the current sufficient
statistics only, so auto mode may re-analyse after every trial without inflating its error rates.

Method. At a look with standardized statistic z (Welch t mapped to z by equal tail probability,
or the pooled two-proportion z) and information r = tau^2 * n_eff (n_eff = n_c n_t / (n_c + n_t),
tau the mixing scale in standardized units), the likelihood ratio of effect theta against 0,
mixed over theta ~ N(0, tau^2) restricted to one side, is

    E+(z, r) = 2 (1 + r)^(-1/2) exp(z^2 r / (2 (1 + r))) Phi(z sqrt(r / (1 + r)))

(Robbins 1970; the one-sided normal mixture of Howard, Ramdas, McAuliffe & Sekhon 2021, Ann.
Statist. 49(2), sec. 3; the two-sided version is the mSPRT of Johari, Pekelis & Walsh 2022,
Oper. Res. 70(3), eq. (11)). Under theta <= 0 it is a nonnegative supermartingale, so by Ville's
inequality it exceeds a threshold B at any look with probability at most 1/B.

Looks start only at `sample_size_required` (information r0), so the threshold is calibrated to
that start: conditioning Ville's inequality on the value at r0 gives, for continuous monitoring
over the whole unbounded future,

    P(sup_{r >= r0} E+ >= B) = P(Z >= z*) + (1/B) E[E+(Z, r0); Z < z*],  E+(z*, r0) = B,

and the expectation has the closed form Phi(h) - 2 T(h, sqrt(r0)), h = z* / sqrt(1 + r0), with
Owen's T function (Owen 1956; derived in `crossing_probability`). Solving it for B = alpha gives
the smallest threshold valid for every number of looks after the start, and reading it backwards
turns the current e-value into an always-valid p-value. Discrete looks only lower the error.

The mixing scale puts r0 = MIXTURE_R0 at the start, which makes the boundary nearly flat (about
z = 3.0 for alpha = 0.025) between 1x and 7x the required sample size, the window where auto mode
is expected to decide; the bench/validate_decisions.py table measures the error rates."""

from __future__ import annotations

import math
from functools import lru_cache

from scipy import optimize, special, stats

from .numeric import Z_CAP

MIXTURE_R0 = 3.0  # tau^2 * n_eff at sample_size_required (tuned by bench/validate_decisions.py)
E_VALUE_CAP = 1e15  # reported e-values are capped here (the decision only needs the comparison)
METHOD = (
    "one-sided normal-mixture e-process (mSPRT; Johari, Pekelis & Walsh 2022; Howard et al. 2021), "
    "Ville's inequality calibrated to start at sample_size_required"
)


def log_e_value(z: float, r: float) -> float:
    """log E+(z, r): one-sided normal-mixture likelihood ratio for a positive effect
    (Howard et al. 2021, sec. 3, one-sided normal mixture; scipy.special.log_ndtr for the tail)."""
    s = math.sqrt(r / (1 + r))
    return math.log(2) - 0.5 * math.log1p(r) + z * z * r / (2 * (1 + r)) + float(special.log_ndtr(z * s))


def _z_at(log_b: float, r: float) -> float:
    """The z at which log E+(z, r) = log_b (log E+ is increasing in z)."""
    hi = 10.0
    while log_e_value(hi, r) < log_b:
        hi *= 2
    lo = -10.0
    while log_e_value(lo, r) > log_b:
        lo *= 2
    return float(optimize.brentq(lambda z: log_e_value(z, r) - log_b, lo, hi, xtol=1e-13, rtol=1e-15))


def crossing_probability(log_b: float, r0: float = MIXTURE_R0) -> float:
    """P(the e-process ever reaches B = exp(log_b) at or after information r0) under theta = 0.

    With Z ~ N(0, 1) the statistic at r0: E+(z, r0) phi(z) = 2 Phi(s z) phi(z / sqrt(1 + r0)) /
    sqrt(1 + r0), s = sqrt(r0 / (1 + r0)), so E[E+; Z < z*] = 2 P(W < z*, U < s W) with
    W ~ N(0, 1 + r0), U ~ N(0, 1): a bivariate normal orthant of correlation -s, equal to
    Phi(h) - 2 T(h, sqrt(r0)) by Owen (1956), eq. (2.1) with k = 0 (scipy.special.owens_t)."""
    z_star = _z_at(log_b, r0)
    h = z_star / math.sqrt(1 + r0)
    below = float(stats.norm.cdf(h)) - 2 * float(special.owens_t(h, math.sqrt(r0)))
    return min(1.0, float(stats.norm.sf(z_star)) + math.exp(-log_b) * below)


@lru_cache(maxsize=64)
def log_threshold(alpha: float, r0: float = MIXTURE_R0) -> float:
    """log B with crossing_probability(log B) = alpha (at most log(1/alpha), Ville's bound)."""
    upper = math.log(1 / alpha)
    if crossing_probability(0.0, r0) <= alpha:
        return 0.0
    return float(optimize.brentq(lambda lb: crossing_probability(lb, r0) - alpha, 0.0, upper, xtol=1e-12))


def always_valid_p(log_e: float, r0: float = MIXTURE_R0) -> float:
    """The smallest alpha whose threshold the current e-value reaches: crossing_probability(log E)."""
    if log_e <= 0:
        return 1.0
    if log_e > 700:
        return 0.0
    return crossing_probability(log_e, r0)


def information(n_c: int, n_t: int, n_required: int, control_share: float = 0.5, r0: float = MIXTURE_R0) -> float:
    """r = tau^2 n_eff, scaled so that r = r0 at the required sample size with the intended split."""
    if n_c == 0 or n_t == 0:
        return 0.0
    n_eff = n_c * n_t / (n_c + n_t)
    n_eff_required = max(n_required, 2) * control_share * (1 - control_share)
    return r0 * n_eff / n_eff_required


@lru_cache(maxsize=4096)
def z_boundary(r: float, alpha: float, r0: float = MIXTURE_R0) -> float:
    """The z that the statistic must reach at information r to reject one direction at alpha."""
    return min(Z_CAP, _z_at(log_threshold(alpha, r0), r))


def e_value(log_e: float) -> float:
    """exp(log E) capped at E_VALUE_CAP, for reports."""
    return E_VALUE_CAP if log_e >= math.log(E_VALUE_CAP) else math.exp(log_e)
