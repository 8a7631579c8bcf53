"""The sequential test that drives automatic decisions. It is valid however often auto mode
re-analyses (after every trial, or whenever someone asks) and is evaluated from the current
sufficient statistics only.

The plan
--------
An experiment is planned to decide between `sample_size_required` recorded trials and
PLAN_MULTIPLE (7) times that many: the planned window. Each direction's error budget alpha (half
the policy's two-sided alpha) is split between two boundaries, and a direction is decided when
either is reached.

* A: WINDOW_SHARE (80%) is spent inside the window by an O'Brien-Fleming-type boundary monitored
  continuously. With t = n_eff / n_eff(end of the window) the information fraction
  (n_eff = n_c n_t / (n_c + n_t)) and z the standardized statistic (Welch t mapped to z by equal
  tail probability, or the pooled two-proportion z), A is reached when

      t <= 1 and z sqrt(t) >= c,   c = Phi^-1(1 - alpha_A / 2),   alpha_A = WINDOW_SHARE * alpha.

  With no effect, z sqrt(t) follows Brownian motion W(t) in information time (the canonical joint
  distribution of Jennison & Turnbull 2000, "Group Sequential Methods", sec. 3.1), and by the
  reflection principle P(sup_{t <= 1} W(t) >= c) = 2 (1 - Phi(c)) = alpha_A. By information t the
  boundary has spent 2 - 2 Phi(c / sqrt(t)): the O'Brien-Fleming-type spending function of Lan &
  DeMets (1983, Biometrika 70(3), 659-663). This is its continuous-monitoring limit, so it covers
  any number of looks at any information fractions; discrete looks only lower the error.

* B: the rest, alpha_B = (1 - WINDOW_SHARE) alpha, goes to a one-sided normal-mixture e-process
  (mixture SPRT), valid from `sample_size_required` on with no end: it catches large effects
  early, when A's boundary is still high, and keeps deciding after the window. At information
  r = MIXTURE_R0 * PLAN_MULTIPLE * t (MIXTURE_R0 at the required size) its value is

      E+(z, r) = 2 (1 + r)^(-1/2) exp(z^2 r / (2 (1 + r))) Phi(z sqrt(r / (1 + r)))

  (Robbins 1970; the one-sided normal mixture of Howard, Ramdas, McAuliffe & Sekhon 2021, Ann.
  Statist. 49(2), sec. 3; the two-sided version is the mSPRT of Johari, Pekelis & Walsh 2022,
  Oper. Res. 70(3), eq. (11)). Under no effect it is a nonnegative supermartingale; conditioning
  Ville's inequality on its value at the required size (r0) gives, for all looks from there on,

      P(sup_{r >= r0} E+ >= B) <= P(Z >= z*) + (1/B) E[E+(Z, r0); Z < z*],  E+(z*, r0) = B,

  with the expectation in closed form, Phi(h) - 2 T(h, sqrt(r0)), h = z* / sqrt(1 + r0), Owen's T
  (Owen 1956; see `crossing_probability`). B is solved so that this bound equals alpha_B. B is
  looked at only from r0 on (with unbalanced arms that can be a few trials after the required
  count). For Welch's t mapped to z the martingale property holds in the normal limit.

By the union bound the chance of ever deciding wrongly in a direction is at most
alpha_A + alpha_B = alpha, however many looks, inside the window or after it. Why this shape:
almost all decisions are expected in the window, and there A keeps nearly the power of a single
test at the window's end (z >= 2.33 at the end for alpha 2.5%, against 1.96 for a test that looks
once), where an e-process alone needs z of about 3 throughout. bench/validate_decisions.py
measures the error rates and the power.

The p-value reported at a look is the repeated p-value (Jennison & Turnbull 2000, ch. 9): the
smallest alpha at which this look reaches A or B, min(p_A / WINDOW_SHARE, p_B / (1 - WINDOW_SHARE)),
so that `p <= alpha` is exactly the decision rule."""

from __future__ import annotations

import math
from functools import lru_cache

from scipy import optimize, special

from .numeric import norm_cdf, norm_isf, norm_sf
from .plan import MIXTURE_R0, PLAN_MULTIPLE, WINDOW_SHARE  # callers use sequential.X too

METHOD = (
    "O'Brien-Fleming-type boundary monitored continuously over the planned window (Lan & DeMets 1983; "
    f"{WINDOW_SHARE:.0%} of alpha) or a one-sided normal-mixture e-process from the required size on "
    f"(mSPRT; Johari, Pekelis & Walsh 2022; Howard et al. 2021; {1 - WINDOW_SHARE:.0%}), whichever is reached first"
)


def fraction(n_c: int, n_t: int, n_required: int, control_share: float = 0.5) -> float:
    """Information fraction t = n_eff / n_eff at the end of the planned window (PLAN_MULTIPLE x
    n_required trials with the intended split); 0 while an arm is empty."""
    if n_c == 0 or n_t == 0:
        return 0.0
    n_eff = n_c * n_t / (n_c + n_t)
    return n_eff / (PLAN_MULTIPLE * max(n_required, 2) * control_share * (1 - control_share))


def plan_end(n_required: int) -> int:
    """Total recorded trials at the end of the planned window."""
    return PLAN_MULTIPLE * max(n_required, 2)


# t is a ratio of float products: at a 10% or 20% treatment share the window's last look comes out
# at 1 + 2.2e-16; it is in the window (the boundary's guarantee covers t <= 1 exactly)
WINDOW_ROUNDING = 1e-12


def in_window(t: float) -> bool:
    return t <= 1.0 + WINDOW_ROUNDING


# --- A: the continuously monitored O'Brien-Fleming-type boundary over the window ---------------


def window_critical(alpha: float) -> float:
    """c with P(sup_{t <= 1} W(t) >= c) = 2 (1 - Phi(c)) = WINDOW_SHARE * alpha."""
    return norm_isf(WINDOW_SHARE * alpha / 2)


def spent(t: float, alpha: float) -> float:
    """Alpha spent by boundary A by information fraction t (Lan & DeMets 1983, O'Brien-Fleming
    type): 2 - 2 Phi(c / sqrt(t))."""
    if t <= 0:
        return 0.0
    return 2 * norm_sf(window_critical(alpha) / math.sqrt(min(t, 1.0)))


def _window_p(z: float, t: float) -> float:
    """The smallest alpha_A whose boundary A this look reaches: 2 (1 - Phi(z sqrt(t)))."""
    return 2 * norm_sf(z * math.sqrt(t)) if in_window(t) else 1.0


# --- B: the normal-mixture e-process ------------------------------------------------------------


def mixture_information(t: float) -> float:
    """r = tau^2 n_eff, with r = MIXTURE_R0 at the required size (t = 1 / PLAN_MULTIPLE)."""
    return MIXTURE_R0 * PLAN_MULTIPLE * t


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
    """P(the e-process ever reaches B = exp(log_b) at or after information r0) under no effect.

    With Z ~ N(0, 1) the statistic at r0: E+(z, r0) phi(z) = 2 Phi(s z) phi(z / sqrt(1 + r0)) /
    sqrt(1 + r0), s = sqrt(r0 / (1 + r0)), so E[E+; Z < z*] = 2 P(W < z*, U < s W) with
    W ~ N(0, 1 + r0), U ~ N(0, 1): a bivariate normal orthant of correlation -s, equal to
    Phi(h) - 2 T(h, sqrt(r0)) by Owen (1956), eq. (2.1) with k = 0 (scipy.special.owens_t)."""
    z_star = _z_at(log_b, r0)
    h = z_star / math.sqrt(1 + r0)
    below = norm_cdf(h) - 2 * float(special.owens_t(h, math.sqrt(r0)))
    return min(1.0, norm_sf(z_star) + math.exp(-log_b) * below)


@lru_cache(maxsize=64)
def log_threshold(alpha: float, r0: float = MIXTURE_R0) -> float:
    """log B with crossing_probability(log B) = alpha (at most log(1/alpha), Ville's bound)."""
    upper = math.log(1 / alpha)
    if crossing_probability(0.0, r0) <= alpha:
        return 0.0
    return float(optimize.brentq(lambda lb: crossing_probability(lb, r0) - alpha, 0.0, upper, xtol=1e-12))


def mixture_active(t: float) -> bool:
    """B is calibrated from the required size's information r0 on: with unbalanced arms the required
    trial count can come before it, and B waits (A covers those looks)."""
    return mixture_information(t) >= MIXTURE_R0 * (1 - 1e-9)


def _mixture_p(z: float, t: float) -> float:
    """The smallest alpha_B whose threshold this look's e-value reaches: crossing_probability(log E)."""
    if not mixture_active(t) or z == -math.inf:
        return 1.0
    if z == math.inf:
        return 0.0
    log_e = log_e_value(z, mixture_information(t))
    if log_e <= 0:
        return 1.0
    if log_e > 700:
        return 0.0
    return crossing_probability(log_e)


# --- the combined rule ----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def z_boundary(t: float, alpha: float) -> float:
    """The z that the statistic must reach at information fraction t to decide one direction at
    alpha (the direction's whole budget; the split between A and B is applied here)."""
    if t <= 0:
        return math.inf
    b = _z_at(log_threshold((1 - WINDOW_SHARE) * alpha), mixture_information(t)) if mixture_active(t) else math.inf
    a = window_critical(alpha) / math.sqrt(t) if in_window(t) else math.inf
    return min(a, b)  # finite: t > 0 reaches A inside the window and B after it


def p_value(z: float, t: float) -> float:
    """Repeated one-sided p-value for a positive effect at this look: p <= alpha exactly when
    z >= z_boundary(t, alpha). A z that is not a number decides nothing."""
    if t <= 0 or math.isnan(z):
        return 1.0
    return min(1.0, _window_p(z, t) / WINDOW_SHARE, _mixture_p(z, t) / (1 - WINDOW_SHARE))
