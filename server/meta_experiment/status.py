"""The status of every experiment, compact enough for an agent to read at a glance: progress toward
the sample size, the primary metric's current results, and what the policy would do now."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .models import Direction, Experiment, ExperimentStatus, Progress
from .outcomes import ReleaseStatus
from .stats.results import Action, Analysis


class StatusItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    status: ExperimentStatus
    status_reason: str | None
    hypothesis: str
    created_at: str
    ended_at: str | None
    primary_metric: str
    unit: str | None
    direction: Direction
    progress: Progress
    control_mean: float | None
    treatment_mean: float | None
    improvement_pct: Annotated[float | None, Field(description="Positive when the treatment is better.")]
    p_value: Annotated[float | None, Field(description="Fixed-horizon p (shown, not used for decisions).")]
    confidence: Annotated[float | None, Field(description="1 - the always-valid two-sided p.")]
    trials_needed: Annotated[
        int | None, Field(description="More trials for 80% power at the target improvement (always-valid test).")
    ]
    action: Annotated[Action | None, Field(description="What the policy decides now (running experiments).")]
    rationale: str
    target_out_of_reach: Annotated[
        bool, Field(description="The always-valid interval lies below the target: more data will not promote.")
    ] = False


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiments: list[StatusItem]
    counts: Annotated[dict[str, int], Field(description="Number of experiments per status.")]
    release: Annotated[
        ReleaseStatus | None, Field(description="Alerts, interrupted operations, deployments and time saved.")
    ] = None


def status_item(experiment: Experiment, progress: Progress, analysis: Analysis) -> StatusItem:
    m = analysis.primary
    seq = m.sequential
    decision = analysis.decision
    running = experiment.status == "running"
    return StatusItem(
        id=experiment.id,
        name=experiment.name,
        status=experiment.status,
        status_reason=experiment.status_reason,
        hypothesis=experiment.hypothesis,
        created_at=experiment.created_at,
        ended_at=experiment.ended_at,
        primary_metric=m.name,
        unit=m.unit,
        direction=m.direction,
        progress=progress,
        control_mean=m.control.mean,
        treatment_mean=m.treatment.mean,
        improvement_pct=m.improvement_pct,
        p_value=m.p_value,
        confidence=None if seq is None or seq.p_value is None else 1 - seq.p_value,
        trials_needed=analysis.power.trials_needed_total
        if analysis.power and running and decision and decision.action == "continue"
        else None,
        action=decision.action if decision and running else None,
        rationale=decision.rationale if decision and running else (experiment.status_reason or ""),
        target_out_of_reach=bool(decision and running and decision.target_out_of_reach),
    )


def status_report(items: list[StatusItem]) -> StatusReport:
    statuses = ("draft", "running", "promoted", "rolled_back", "expired")
    return StatusReport(experiments=items, counts={s: sum(1 for i in items if i.status == s) for s in statuses})
