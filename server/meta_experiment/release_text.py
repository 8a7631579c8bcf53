"""Commit messages in the seed's format, and the headline numbers they quote."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .models import Experiment
from .stats.report import fmt_confidence, fmt_p, fmt_pct


@dataclass(frozen=True)
class Headline:
    metric: str
    improvement_pct: float | None
    p_value: float | None
    trials: int
    decisive: bool = True  # the always-valid p decisions use, else the seed's fixed-horizon p


def headline(analysis: Any) -> Headline:
    """Improvement of the primary metric and the p-value that decisions use: the always-valid
    (sequential) p when the analysis has one, else the fixed-horizon p."""
    primary = analysis.primary
    sequential = getattr(primary, "sequential", None)
    p = getattr(sequential, "p_value", None)
    if p is not None and getattr(sequential, "active", True):
        return Headline(primary.name, primary.improvement_pct, p, analysis.trials_recorded)
    # before the always-valid test is active (a forced promotion, say): the seed's fixed-horizon p,
    # named as such, since no decision rests on it
    return Headline(primary.name, primary.improvement_pct, primary.p_value, analysis.trials_recorded, decisive=False)


def pct(value: float | None) -> str:
    """A change in %, as the reports print it: one decimal, more where it would read as 0 (never
    '-0.0%'), and no '+' (the seed's 'Improvement: [X]%')."""
    return "n/a" if value is None or math.isnan(value) else fmt_pct(value).lstrip("+")


def promote_message(experiment: Experiment, analysis: Any, how: str, forced_reason: str | None) -> str:
    h = headline(analysis)
    lines = [
        f"experiment: Promote {experiment.id} to production",
        "",
        f"Experiment: {experiment.name}",
        f"Improvement: {pct(h.improvement_pct)} ({h.metric})",
        f"Confidence: {fmt_confidence(None if h.p_value is None else 1 - h.p_value)} ("
        + (
            f"always-valid two-sided p = {fmt_p(h.p_value)}"
            if h.decisive
            else f"fixed-horizon p = {fmt_p(h.p_value)}, which does not decide"
        )
        + ")",
        f"Trials: {h.trials}",
    ]
    if forced_reason:
        lines.append(f"Forced: {forced_reason}")
    voided = getattr(analysis, "voided_trials", 0)
    if voided:
        lines.append(f"Voided: {voided} recorded result(s) withdrawn and left out (see the event log)")
    lines += ["", f"Promoted by meta-experiment ({how})"]
    return "\n".join(lines) + "\n"


def rollback_message(experiment: Experiment, analysis: Any, reason: str, how: str) -> str:
    h = headline(analysis)
    if h.improvement_pct is None:
        regression = f"not measured ({h.metric})"
    elif h.improvement_pct < 0:
        regression = f"{pct(-h.improvement_pct)} worse ({h.metric})"
    else:
        regression = f"none measured ({h.metric} {pct(h.improvement_pct)} better)"
    return (
        "\n".join(
            [
                f"experiment: Rollback {experiment.id}",
                "",
                f"Reason: {reason}",
                f"Regression: {regression}",
                "Status: Rolled back to pre-experiment state",
                "",
                f"Rolled back by meta-experiment ({how})",
            ]
        )
        + "\n"
    )
