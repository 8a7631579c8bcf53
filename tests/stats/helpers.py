"""Building AnalysisInputs from plain value lists, for tests."""

from meta_experiment.models import MetricSpec, Targets
from meta_experiment.stats.analysis import AnalysisInputs
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
