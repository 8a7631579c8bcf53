"""Building AnalysisInputs from plain value lists, for tests."""

import numpy as np

from meta_experiment.models import ARMS, MetricSpec, Targets
from meta_experiment.stats.analysis import AnalysisInputs, analyze
from meta_experiment.stats.summary import Summary

DAY = 86400.0
T0 = 1_700_000_000.0


def inputs(
    control,
    treatment,
    *,
    spec=None,
    targets=None,
    required=10,
    days=3.0,
    secondary=(),
    extra=None,
    raw=False,
    assigned=None,
    successes=None,
    max_days=14.0,
    log_summaries=None,
):
    spec = spec or MetricSpec(name="time", direction="lower_is_better", unit="min")
    summaries = {("control", spec.name): Summary.of(control), ("treatment", spec.name): Summary.of(treatment)}
    raw_values = {("control", spec.name): list(control), ("treatment", spec.name): list(treatment)}
    for name, (c, t) in (extra or {}).items():
        summaries[("control", name)], summaries[("treatment", name)] = Summary.of(c), Summary.of(t)
        raw_values[("control", name)], raw_values[("treatment", name)] = list(c), list(t)
    recorded = {"control": len(control), "treatment": len(treatment)}
    return AnalysisInputs(
        primary=spec,
        targets=targets or Targets(),
        summaries=summaries,
        assigned=assigned or recorded,
        recorded=recorded,
        sample_size_required=required,
        now=T0 + days * DAY,
        started_at=T0,
        max_duration_days=max_days,
        secondary=tuple(secondary),
        successes=successes,
        raw_values=raw_values if raw else None,
        log_summaries=log_summaries,
    )


def policy_analyses(arm, x, setting, n_required, log_scale, treatment_percent=50, success=None):
    """analyze (with policy.decide) after every trial of one simulated experiment from
    stats.simulate.generate, from the n_required-th trial on: the Analysis at each look."""
    kind = "binary" if setting == "binary" else "continuous"
    direction = "higher_is_better" if kind == "binary" else "lower_is_better"
    spec = MetricSpec(name="m", direction=direction, kind=kind, log_scale=log_scale)
    for n in range(n_required, x.size + 1):
        arms = {a: x[:n][arm[:n] == i] for i, a in enumerate(ARMS)}
        logs = {(a, "m"): Summary.of(np.log(v)) for a, v in arms.items()} if log_scale else None
        yield analyze(
            AnalysisInputs(
                primary=spec,
                targets=Targets(),
                summaries={(a, "m"): Summary.of(v) for a, v in arms.items()},
                assigned={a: v.size for a, v in arms.items()},
                recorded={a: v.size for a, v in arms.items()},
                successes=None
                if success is None
                else {a: int(success[:n][arm[:n] == i].sum()) for i, a in enumerate(ARMS)},
                sample_size_required=n_required,
                now=0.0,
                started_at=0.0,
                max_duration_days=1e3,
                log_summaries=logs,
                control_share=1 - treatment_percent / 100,
            )
        )


def look_actions(promote, rollback):
    """The action at each look of stats.simulate.looks's (promote, rollback) rows."""
    return ["promote" if p else "rollback" if r else "continue" for p, r in zip(promote, rollback, strict=True)]
