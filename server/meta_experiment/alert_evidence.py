"""The evidence a monitoring alert needs before it fires: an always-valid e-value at a fixed level,
and how an alert's message states it. Shared by the error-rate check (monitoring) and the floor
checks (floors)."""

from __future__ import annotations

import math
from typing import Any

# The error-rate and floor checks run after every trial, and a raised alert stops an auto_rollback
# experiment: a fixed-horizon test at 0.05 re-run like that (it was Fisher's exact test) raised
# the error-rate alert on 8-13% of A/A experiments with 5-20% failures. The evidence is instead a
# one-sided normal-mixture e-value (Robbins 1970; Howard et al. 2021, sec. 3; the e-process of
# stats/sequential.py), a nonnegative martingale with no effect: by Ville's inequality it ever
# reaches 1 / ALERT_ALPHA with probability at most ALERT_ALPHA, however often it is looked at
# (in the normal approximation; bench/validate_alerts.py measures it).
ALERT_ALPHA = 0.005
ALERT_TRIALS = 10  # trials per arm (or in the arm, for a floor) at which the mixture's r is 1
Finding = tuple[str, dict[str, Any]] | None  # (message, data) when the condition holds


def alert_e_value(z: float, trials_per_arm: float) -> float:
    """E+(z, r) of stats/sequential.py with r = trials_per_arm / ALERT_TRIALS: the evidence for a
    positive effect, z the standardized statistic (positive = the problem the alert looks for)."""
    from .stats.numeric import Z_CAP
    from .stats.sequential import log_e_value

    if trials_per_arm <= 0 or math.isnan(z):
        return 0.0
    log_e = log_e_value(max(-Z_CAP, min(Z_CAP, z)), trials_per_arm / ALERT_TRIALS)
    return math.exp(min(log_e, 700.0))


def shown_e(e: float) -> str:
    """An e-value in a message."""
    return f"{e:.3g}" if e < 1e6 else "over 1e6"


def evidence_text(e: float) -> str:
    """The evidence behind an alert, as its message ends."""
    return f"always-valid e-value {shown_e(e)} >= {1 / ALERT_ALPHA:g}, p <= {ALERT_ALPHA:g} however often checked"
