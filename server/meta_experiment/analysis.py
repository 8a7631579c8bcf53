"""Analysis of one experiment from the store's running sufficient statistics (never raw rows for
the mean/variance tests)."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .models import Direction, Experiment, MetricKind, MetricSpec, Progress, parse_iso
from .outcomes import ReleaseStatus
from .stats.summary import Summary
from .store import RunningStats


class ArmSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    mean: float | None
    sd: float | None
    min: float | None
    max: float | None


class MetricAnalysis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    direction: Direction
    kind: MetricKind
    unit: str | None
    control: ArmSummary
    treatment: ArmSummary
    difference: Annotated[float | None, Field(description="treatment mean - control mean")]
    improvement_pct: Annotated[
        float | None, Field(description="Relative change in the metric's own direction: positive is better.")
    ]
    t_statistic: float | None = None
    df: float | None = None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    cohens_d: float | None = None
    message: str = ""


class Analysis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment_id: str
    status: str
    trials_recorded: int
    sample_size_required: int
    metrics: list[MetricAnalysis]
    started_at: Annotated[float | None, Field(description="Epoch seconds when the experiment started.")] = None
    max_duration_days: float = 14.0

    @property
    def primary(self) -> MetricAnalysis:
        return self.metrics[0]


def summary_of(stats: RunningStats | None) -> Summary:
    if stats is None:
        return Summary(0, 0.0, 0.0)
    return Summary(stats.n, stats.mean, stats.variance, stats.min, stats.max)


def _arm(s: Summary) -> ArmSummary:
    if s.n == 0:
        return ArmSummary(n=0, mean=None, sd=None, min=None, max=None)
    return ArmSummary(n=s.n, mean=s.mean, sd=s.sd if s.n > 1 else None, min=s.min, max=s.max)


def improvement_pct(control_mean: float, treatment_mean: float, direction: Direction) -> float | None:
    """(treatment - control) / |control| * 100, sign flipped for lower-is-better metrics, so that a
    positive number always means the treatment is better (the seed: (control - treatment) / control)."""
    if control_mean == 0:
        return None
    change = (treatment_mean - control_mean) / abs(control_mean) * 100.0
    return -change if direction == "lower_is_better" else change


def analyze_metric(spec: MetricSpec, control: Summary, treatment: Summary) -> MetricAnalysis:
    result = MetricAnalysis(
        name=spec.name,
        direction=spec.direction,
        kind=spec.kind,
        unit=spec.unit,
        control=_arm(control),
        treatment=_arm(treatment),
        difference=None,
        improvement_pct=None,
    )
    if control.n == 0 or treatment.n == 0:
        result.message = "No data yet in " + ("either arm." if control.n == treatment.n == 0 else "one arm.")
        return result
    result.difference = treatment.mean - control.mean
    result.improvement_pct = improvement_pct(control.mean, treatment.mean, spec.direction)
    if control.n < 2 or treatment.n < 2:
        result.message = "Each arm needs at least 2 trials for a t-test."
        return result
    se2 = control.variance / control.n + treatment.variance / treatment.n
    if se2 <= 0:
        result.message = "Both arms have zero variance; no test is possible (the difference is exact)."
        return result
    from scipy import stats as sps

    # Welch's t-test from summary statistics; must agree with scipy.stats.ttest_ind_from_stats(equal_var=False).
    se = math.sqrt(se2)
    t = result.difference / se
    # Welch-Satterthwaite degrees of freedom.
    df = se2**2 / (
        (control.variance / control.n) ** 2 / (control.n - 1)
        + (treatment.variance / treatment.n) ** 2 / (treatment.n - 1)
    )
    result.t_statistic = t
    result.df = df
    result.p_value = float(2 * sps.t.sf(abs(t), df))
    half = float(sps.t.ppf(0.975, df)) * se
    result.ci_low, result.ci_high = result.difference - half, result.difference + half
    # Cohen's d with the pooled standard deviation (the seed's formula).
    pooled = math.sqrt(
        ((control.n - 1) * control.variance + (treatment.n - 1) * treatment.variance) / (control.n + treatment.n - 2)
    )
    result.cohens_d = result.difference / pooled if pooled > 0 else None
    return result


def analyze(experiment: Experiment, running: dict[tuple[str, str], RunningStats]) -> Analysis:
    return Analysis(
        experiment_id=experiment.id,
        status=experiment.status,
        trials_recorded=experiment.trials_recorded,
        sample_size_required=experiment.sample_size_required,
        started_at=None if experiment.started_at is None else parse_iso(experiment.started_at),
        max_duration_days=experiment.max_duration_days,
        metrics=[
            analyze_metric(
                spec, summary_of(running.get(("control", spec.name))), summary_of(running.get(("treatment", spec.name)))
            )
            for spec in experiment.metrics
        ],
    )


class StatusItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: Experiment
    progress: Progress
    primary: MetricAnalysis


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiments: list[StatusItem]
    counts: Annotated[dict[str, int], Field(description="Number of experiments per status.")]
    release: Annotated[
        ReleaseStatus | None, Field(description="Alerts, interrupted operations, deployments and time saved.")
    ] = None
