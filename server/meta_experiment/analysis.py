"""From the store to the statistics engine: the running statistics (and, on request, raw values)
of one experiment become `AnalysisInputs`; the result is the engine's Analysis with the policy's
decision. Also the chart and the status of every experiment, which are built on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .measurements import LOG_PREFIX
from .models import ARMS, Arm, parse_iso
from .stats.results import Analysis
from .stats.summary import Summary
from .status import StatusReport, status_item, status_report

if TYPE_CHECKING:
    from .lifecycle import Lab

RANK_TEST_LIMIT = 20_000  # per arm: Hodges-Lehmann's interval costs ~4 s at 1M values per arm
CHART_LIMIT = 100_000  # per arm: the chart recomputes the interval at up to 200 prefixes


def analyze(lab: Lab, experiment_id: str, *, rank_tests: bool = False) -> Analysis:
    """The statistics engine's analysis and the policy's decision, from the running sufficient
    statistics. With `rank_tests`, raw values are read for Mann-Whitney and Hodges-Lehmann (up
    to RANK_TEST_LIMIT values per arm; they are never on the record or auto-mode path)."""
    from .stats.analysis import AnalysisInputs
    from .stats.analysis import analyze as run_analysis

    with lab.store.reading():
        e = lab.get(experiment_id)
        running = lab.store.running_stats(experiment_id)
        raw, note = None, None
        if rank_tests:
            if max(e.control.recorded, e.treatment.recorded) <= RANK_TEST_LIMIT:
                raw = {
                    (arm, m.name): lab.store.raw_values(experiment_id, arm, m.name) for arm in ARMS for m in e.metrics
                }
            else:
                note = f"rank tests skipped: more than {RANK_TEST_LIMIT:,} trials per arm"
    summaries: dict[tuple[Arm, str], Summary] = {}
    logs: dict[tuple[Arm, str], Summary] = {}
    for (arm, metric), s in running.items():
        target = logs if metric.startswith(LOG_PREFIX) else summaries
        key: tuple[Arm, str] = ("control" if arm == "control" else "treatment", metric.removeprefix(LOG_PREFIX))
        target[key] = Summary(s.n, s.mean, s.variance, s.min, s.max)
    ended = parse_iso(e.ended_at) if e.ended_at else None
    result = run_analysis(
        AnalysisInputs(
            primary=e.primary_metric,
            secondary=e.secondary_metrics,
            targets=e.targets,
            summaries=summaries,
            log_summaries=logs,
            raw_values=raw,
            assigned={"control": e.control.assigned, "treatment": e.treatment.assigned},
            recorded={"control": e.control.recorded, "treatment": e.treatment.recorded},
            successes={"control": e.control.successes, "treatment": e.treatment.successes},
            sample_size_required=e.sample_size_required,
            started_at=parse_iso(e.started_at) if e.started_at else None,
            now=ended if ended is not None else lab.clock(),
            max_duration_days=e.max_duration_days,
        )
    )
    if note:
        result = result.model_copy(update={"messages": [*result.messages, note]})
    return result


def status(lab: Lab) -> StatusReport:
    """Every experiment with its progress and what the policy says now."""
    items = []
    for experiment in lab.experiments():
        items.append(status_item(experiment, lab.progress(experiment), analyze(lab, experiment.id)))
    from .release_status import release_status

    return status_report(items).model_copy(update={"release": release_status(lab)})


def chart(lab: Lab, experiment_id: str) -> bytes | None:
    """PNG of the improvement over the trials and the arms' distributions (None without data,
    or past CHART_LIMIT trials per arm)."""
    from .charts import render_chart

    e = lab.get(experiment_id)
    if min(e.control.recorded, e.treatment.recorded) < 2 or max(e.control.recorded, e.treatment.recorded) > CHART_LIMIT:
        return None
    series = lab.store.raw_series(experiment_id, e.primary_metric.name)
    return render_chart(
        analyze(lab, experiment_id),
        [v for arm, v in series if arm == "control"],
        [v for arm, v in series if arm == "treatment"],
        [arm for arm, _ in series],
        title=f"{e.id}: {e.name}",
    )
