"""TEMPORARY — replaced by the stats branch.

A stand-in for the statistics issue's decision policy with the same interface,
`decide(analysis, targets, now) -> Decision` (`Decision.action` in promote / rollback / continue /
expire, `criteria`, `rationale`, `driven_by`), so that auto mode and the regression monitor can be
built and tested before the real engine lands. It reads only fields that the baseline `Analysis`
and the stats branch's `Analysis` both have (`primary.improvement_pct`, `primary.p_value`,
`trials_recorded`, `sample_size_required`, `started_at`, `max_duration_days`).

Its rule is the seed's, with its known flaw: a fixed-horizon Welch p-value re-tested after every
trial (peeking). The stats branch replaces it with an always-valid sequential test. Do not extend
this module; delete it when `policy.py` from the stats branch is on main.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .models import Targets

SIGNIFICANCE_FLOOR = 0.05


class Criterion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    met: bool | None
    detail: str


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["promote", "rollback", "continue", "expire"]
    criteria: list[Criterion]
    rationale: str
    driven_by: str


def decision_alpha(targets: Targets) -> float:
    return min(SIGNIFICANCE_FLOOR, 1.0 - targets.confidence_threshold)


def decide(analysis: Any, targets: Targets, now: float) -> Decision:
    alpha = decision_alpha(targets)
    primary = analysis.primary
    n, required = analysis.trials_recorded, analysis.sample_size_required
    enough = n >= required
    p = primary.p_value if enough else None
    imp = primary.improvement_pct
    significant = None if p is None else p <= alpha
    expired = analysis.started_at is not None and now - analysis.started_at >= analysis.max_duration_days * 86400
    criteria = [
        Criterion(name="Statistical significance", met=significant, detail=f"Welch p = {p} (needs <= {alpha:g})"),
        Criterion(
            name="Improvement > threshold",
            met=None if imp is None else imp > targets.improvement_threshold,
            detail="unknown" if imp is None else f"{imp:+.1f}% vs {targets.improvement_threshold:g}% target",
        ),
        Criterion(name="Sample size adequate", met=enough, detail=f"{n} of {required} trials recorded"),
        Criterion(name="Within max duration", met=not expired, detail=f"{analysis.max_duration_days:g} days allowed"),
    ]
    if significant and imp is not None and imp > targets.improvement_threshold:
        return Decision(
            action="promote",
            criteria=criteria,
            driven_by="temporary Welch rule",
            rationale=f"significant improvement of {imp:+.1f}% (p = {p:.2g}) above the "
            f"{targets.improvement_threshold:g}% target",
        )
    if significant and imp is not None and -imp > targets.max_regression:
        return Decision(
            action="rollback",
            criteria=criteria,
            driven_by="temporary Welch rule",
            rationale=f"{primary.name} {-imp:.1f}% worse (tolerance {targets.max_regression:g}%), p = {p:.2g}",
        )
    if expired:
        return Decision(
            action="expire",
            criteria=criteria,
            driven_by="max_duration_days reached",
            rationale=f"no conclusive result within {analysis.max_duration_days:g} days",
        )
    return Decision(
        action="continue",
        criteria=criteria,
        driven_by="sample size not reached" if not enough else "temporary Welch rule",
        rationale="not enough evidence yet" if not enough else "inconclusive: continue collecting data",
    )
