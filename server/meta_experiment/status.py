"""The status of every experiment, compact enough for an agent to read at a glance: progress toward
the sample size, the primary metric's current results, and what the policy would do now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import deploy
from .dispatch import agent_name, dispatcher_copies, dispatcher_experiment, label, slash_name
from .errors import PathError
from .models import Direction, Experiment, ExperimentStatus, MetricKind, Progress
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
    metric_kind: Annotated[MetricKind, Field(description="binary: the means are rates of yes (0 to 1).")] = "continuous"
    unit: str | None
    direction: Direction
    progress: Progress
    treatment_percent: Annotated[int, Field(description="Intended share of trials in the treatment arm, in %.")] = 50
    control_mean: float | None
    treatment_mean: float | None
    improvement_pct: Annotated[
        float | None,
        Field(
            description="Positive when the treatment is better; on the log scale, the change of the geometric "
            "mean (a typical run), not of control_mean and treatment_mean."
        ),
    ]
    scale: Annotated[Literal["raw", "log"], Field(description="The primary metric's analysis scale.")] = "raw"
    relative_unstable: Annotated[
        bool, Field(description="The control mean is not clearly away from 0: the % of it is unstable.")
    ] = False
    improvement_threshold: Annotated[
        float, Field(description="The improvement % (on the analysis scale) a promotion needs.")
    ] = 0.0
    p_value: Annotated[float | None, Field(description="Fixed-horizon p (shown, not used for decisions).")]
    confidence: Annotated[float | None, Field(description="1 - the always-valid two-sided p.")]
    trials_needed: Annotated[
        int | None, Field(description="More trials for 80% power at the target improvement (always-valid test).")
    ]
    action: Annotated[Action | None, Field(description="What the policy decides now (running experiments).")]
    rationale: str
    sample_ratio_mismatch: Annotated[
        bool, Field(description="The sample-ratio check fails: assignment or recording is biased.")
    ] = False
    target_out_of_reach: Annotated[
        bool, Field(description="The always-valid interval lies below the target: more data will not promote.")
    ] = False
    analysis_error: Annotated[
        str | None, Field(description="Its analysis failed (a defect, to report): what failed; nothing decides it.")
    ] = None
    forced: Annotated[
        bool,
        Field(description="Promoted with force although the policy did not say promote: not counted as a success."),
    ] = False
    changed_since_start: Annotated[
        list[str],
        Field(
            description="Production files of a running experiment that no longer hold the snapshot taken at its "
            "start (edited or deleted): assign warns and promote refuses until they are restored."
        ),
    ] = []
    holds_variant: Annotated[
        list[str],
        Field(
            description="Production files of a running experiment that already hold the tested variant (copied "
            "by hand): trials use the snapshots, and promote records them without writing."
        ),
    ] = []
    auto_rollback: Annotated[
        bool, Field(description="Auto mode (and an alert during record) may roll this experiment back.")
    ] = True
    dispatching: Annotated[
        list[str],
        Field(
            description="Slash commands (/NAME) or agents (agent NAME) whose file holds this experiment's "
            "dispatcher: each run of one is a trial (the original comes back when the experiment ends)."
        ),
    ] = []


LISTED_ENDED = 10  # ended experiments the status report shows in full; older ones get a line each


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiments: list[StatusItem]
    counts: Annotated[dict[str, int], Field(description="Number of experiments per status.")]
    release: Annotated[
        ReleaseStatus | None, Field(description="Alerts, interrupted operations, deployments and time saved.")
    ] = None

    ended_not_listed: Annotated[
        int,
        Field(
            description=f"Ended experiments counted but not listed: all of them with active_only, else those "
            f"older than the {LISTED_ENDED} that ended last (analyze shows one; the CLI's `status --json` lists all)."
        ),
    ] = 0

    def listed(self, active_only: bool = False) -> StatusReport:
        """The report as the status tool answers it (what the model reads: its size must not grow with
        the project's history): the draft and running experiments, and unless `active_only` the
        LISTED_ENDED ended ones that ended last; the release facts and alerts of those alone. The
        summary's totals (counts, time saved) still cover every experiment."""
        ended = newest_ended(self.experiments)
        keep = set() if active_only else {i.id for i in ended[:LISTED_ENDED]}
        items = [i for i in self.experiments if i.status in ("draft", "running") or i.id in keep]
        ids = {i.id for i in items}
        release = self.release
        if release is not None:
            release = release.model_copy(
                update={
                    "experiments": [r for r in release.experiments if r.experiment_id in ids],
                    "alerts": [a for a in release.alerts if a.experiment_id is None or a.experiment_id in ids],
                }
            )
        return self.model_copy(
            update={"experiments": items, "release": release, "ended_not_listed": len(ended) - len(keep)}
        )


def newest_ended(items: list[StatusItem]) -> list[StatusItem]:
    """The ended experiments, the one that ended last first."""
    ended = [i for i in items if i.status in ("promoted", "rolled_back", "expired")]
    return sorted(ended, key=lambda i: (i.ended_at or "", i.created_at), reverse=True)


def file_drift(project_root: Path, experiment: Experiment) -> tuple[list[str], list[str], list[str]]:
    """(production paths that no longer hold the content snapshotted at the start, those of them
    that hold the tested variant instead, the slash commands whose file holds this experiment's
    dispatcher): the comparison promote makes before it writes (release._plan), read only. The
    first make promote refuse; the second it records as they are; the third it puts back first."""
    changed, in_place, dispatching = [], [], []
    changes_some = any(f.control_sha256 != f.treatment_sha256 for f in experiment.files)
    for f in experiment.files:
        if f.control_sha256 == f.treatment_sha256 and changes_some:
            continue  # the same in both arms: promote leaves it alone (release._plan)
        try:
            current = deploy.read_current(project_root, f.production)
        except (OSError, PathError):
            changed.append(f"{f.production} (unreadable)")
            continue
        digest = None if current is None else deploy.sha256_hex(current)
        if digest is None:
            copies = (
                dispatcher_copies(project_root, experiment.id, f.production)
                if slash_name(f.production) or agent_name(f.production)
                else []
            )
            moved = f"; its dispatcher is in {', '.join(copies)}: moved back, it goes on" if copies else ""
            changed.append(f"{f.production} (deleted{moved})")
        elif digest == f.treatment_sha256 != f.control_sha256:
            in_place.append(f.production)
        elif digest != f.control_sha256:
            if current is not None and dispatcher_experiment(current.decode("utf-8", "replace")) == experiment.id:
                dispatching.append(label(f.production))
            else:
                changed.append(f.production)
    return changed, in_place, dispatching


def forced_label(experiment: Experiment) -> bool:
    """A promotion that operations._finish labelled 'Promoted (<how>, forced)'."""
    label = (experiment.status_reason or "").split(":", 1)[0]
    return experiment.status == "promoted" and label.endswith(", forced)")


def forced_promotion(experiment: Experiment, analysis: Analysis) -> bool:
    """A promotion forced although the data did not say promote; the analysis of an ended
    experiment is still the policy's verdict on the data it ended with."""
    decision = analysis.decision
    return forced_label(experiment) and (decision is None or decision.action != "promote")


def _described(experiment: Experiment, progress: Progress) -> dict[str, Any]:
    """The fields of an item that come from the experiment's definition and progress alone."""
    return dict(
        id=experiment.id,
        name=experiment.name,
        status=experiment.status,
        status_reason=experiment.status_reason,
        hypothesis=experiment.hypothesis,
        created_at=experiment.created_at,
        ended_at=experiment.ended_at,
        progress=progress,
        treatment_percent=experiment.treatment_percent,
        improvement_threshold=experiment.targets.improvement_threshold,
        auto_rollback=experiment.auto_rollback,
    )


def unanalysed_item(experiment: Experiment, progress: Progress) -> StatusItem:
    """An ended experiment's item without its analysis (no means, p or confidence): for a report
    that counts ended experiments without listing them. Not for a forced promotion (`forced`
    needs the analysis)."""
    m = experiment.primary_metric
    return StatusItem(
        **_described(experiment, progress),
        primary_metric=m.name,
        metric_kind=m.kind,
        unit=m.unit,
        direction=m.direction,
        control_mean=None,
        treatment_mean=None,
        improvement_pct=None,
        scale="log" if m.log_scale else "raw",
        p_value=None,
        confidence=None,
        trials_needed=None,
        action=None,
        rationale=experiment.status_reason or "",
    )


def status_item(
    experiment: Experiment, progress: Progress, analysis: Analysis, project_root: Path | None = None
) -> StatusItem:
    """`project_root` lets a running experiment's item say which production files were edited
    since its start (without it, none are checked)."""
    m = analysis.primary
    seq = m.sequential
    decision = analysis.decision
    running = experiment.status == "running"
    drift = file_drift(project_root, experiment) if running and project_root else ([], [], [])
    return StatusItem(
        **_described(experiment, progress),
        primary_metric=m.name,
        metric_kind=m.kind,
        unit=m.unit,
        direction=m.direction,
        control_mean=m.control.mean,
        treatment_mean=m.treatment.mean,
        improvement_pct=m.improvement_pct,
        scale=m.scale,
        relative_unstable=m.relative_unstable,
        p_value=m.p_value,
        confidence=None if seq is None or seq.p_value is None else 1 - seq.p_value,
        trials_needed=analysis.power.trials_needed_total
        if analysis.power
        and running
        and decision
        and decision.action == "continue"
        and not decision.target_out_of_reach
        else None,  # (more trials cannot promote one whose target is out of reach)
        action=decision.action if decision and running else None,
        rationale=decision.rationale if decision and running else (experiment.status_reason or ""),
        target_out_of_reach=bool(decision and running and decision.target_out_of_reach),
        sample_ratio_mismatch=any(check.mismatch for check in analysis.srm),
        forced=forced_promotion(experiment, analysis),
        changed_since_start=drift[0],
        holds_variant=drift[1],
        dispatching=drift[2],
    )


def status_report(items: list[StatusItem]) -> StatusReport:
    statuses = ("draft", "running", "promoted", "rolled_back", "expired")
    return StatusReport(experiments=items, counts={s: sum(1 for i in items if i.status == s) for s in statuses})
