"""From the store to the statistics engine: the running statistics (and, on request, raw values)
of one experiment become `AnalysisInputs`; the result is the engine's Analysis with the policy's
decision. Also the chart and the status of every experiment, which are built on it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from . import monitoring
from .measurements import LOG_PREFIX
from .models import ARMS, TERMINAL_STATUSES, Arm, Experiment, parse_iso
from .stats import cluster
from .stats.cluster import UnitDetail
from .stats.results import Analysis
from .stats.summary import Summary, two_sum
from .status import StatusReport, forced_label, status_item, status_report, unanalysed_item
from .store import SUCCESS, ClusterSums, RunningStats, UnitCounts, success_clusters

if TYPE_CHECKING:
    from .lifecycle import Lab

RANK_TEST_LIMIT = 20_000  # per arm: Hodges-Lehmann's interval costs ~4 s at 1M values per arm
CHART_LIMIT = 100_000  # per arm: the chart recomputes the interval at up to 200 prefixes


def load_engine() -> None:
    """Import the statistics engine, the policy and the release checks that evaluate it (scipy among
    them: about a second the first time), so that a caller can pay for it before it takes the
    store's write lock (and the MCP server in the background once it has started, mcp_server.warm_up)."""
    from . import policy, release  # noqa: F401
    from .stats import analysis  # noqa: F401


def analyze(lab: Lab, experiment_id: str, *, rank_tests: bool = False) -> Analysis:
    """The statistics engine's analysis and the policy's decision, from the running sufficient
    statistics. With `rank_tests`, raw values are read for Mann-Whitney and Hodges-Lehmann (up
    to RANK_TEST_LIMIT values per arm; they are never on the record or auto-mode path)."""
    from .stats.analysis import AnalysisInputs
    from .stats.analysis import analyze as run_analysis

    with lab.store.reading():
        e = lab.get(experiment_id)
        running = lab.store.running_stats(experiment_id)
        units = lab.store.unit_counts(experiment_id)
        clusters = lab.store.cluster_sums(experiment_id) if units else {}
        detail = (
            lab.store.unit_sums(experiment_id)
            if clusters and max(u.recorded_units for u in units.values()) <= cluster.UNIT_DETAIL_LIMIT
            else {}
        )
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
        target[key] = summary_of(s, clusters.get((arm, metric)), detail.get((arm, metric)))
    success: dict[Arm, tuple[int, float, float, float]] = {}
    for arm, progress in zip(ARMS, (e.control, e.treatment), strict=True):
        counts = {"recorded": progress.recorded, "successes": progress.successes}
        found = success_clusters(counts, clusters.get((arm, SUCCESS)))
        if found is not None:
            success[arm] = found
    ended = parse_iso(e.ended_at) if e.ended_at else None
    srm_assigned, srm_recorded = _unit_srm_counts(e, units) if units else (None, None)
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
            control_share=e.control_share,
            started_at=parse_iso(e.started_at) if e.started_at else None,
            now=ended if ended is not None else lab.clock(),
            max_duration_days=e.max_duration_days,
            srm_assigned=srm_assigned,
            srm_recorded=srm_recorded,
            success_clusters=success or None,
            experiment_status=None
            if e.status == "running"
            else e.status.replace("_", " ") + (f": {e.status_reason}" if e.status_reason else ""),
        )
    )
    voided = lab.store.voided_counts(e.id)
    withdrawn = (
        f"{sum(voided.values())} recorded result(s) voided and left out (control {voided.get('control', 0)}, "
        f"treatment {voided.get('treatment', 0)}); the reasons are in the event log"
        if voided
        else None
    )
    messages = [text for text in (note, _unit_note(units) if units else None, withdrawn) if text]
    if messages:
        result = result.model_copy(update={"messages": [*result.messages, *messages]})
    if voided:
        result = result.model_copy(update={"voided_trials": sum(voided.values())})
    if e.status == "running":  # the decision stays the data's (an alert is raised from it); the alerts go beside it
        active = [a.message for a in monitoring.alerts(lab, e.id, active_only=True)]
        if active:
            result = result.model_copy(update={"alerts": active})
    return result


def summary_of(
    running: RunningStats, sums: ClusterSums | None = None, units: tuple[list[int], list[float]] | None = None
) -> Summary:
    """The engine's Summary of the store's running statistics, clustered by unit when units repeat;
    with `units` (each unit's count and shifted sum, Store.unit_sums) it also carries the unit
    detail of the small-sample tests (stats/cluster.py). The values without a unit are the rest of
    the count and of the residual sum of squares."""
    mean, error = two_sum(running.shift, running.shifted_mean)  # the mean, and what its rounding left out
    summary = Summary(running.n, mean, running.variance, running.min, running.max, mean_error=error)
    if sums is None:
        return summary
    unit_ss, cross, n2 = sums.clustering(running.n, running.m2, running.shifted_mean)
    clustered = summary.clustered(running.n - sums.repeats, unit_ss, cross, n2)
    if units is None or not clustered.clusters:
        return clustered
    return replace(clustered, units=UnitDetail.of_sums(units[0], units[1], running.shifted_mean, running.n, unit_ss))


def _unit_srm_counts(e: Experiment, units: dict[str, UnitCounts]) -> tuple[dict[Arm, int], dict[Arm, int]]:
    """Counts for the sample-ratio check with units, not trials, for the trials assigned with a unit.

    Sticky assignment flips one fair coin per unit, so all trials of a unit land in the same arm and
    per-trial counts are clustered: an A/A run of 30 units x 10 trials raised the alarm 45% of the
    time at alpha 0.001. Per arm, the check counts each trial without a unit (balanced or imported)
    and each distinct unit once (for `recorded`, each unit with at least one recorded trial). Only
    the SRM uses these; success_rate, the sample-size gate and the power still count trials."""
    none = UnitCounts(0, 0, 0, 0, 0)
    c, t = units.get("control", none), units.get("treatment", none)
    assigned: dict[Arm, int] = {
        "control": e.control.assigned - c.trials + c.units,
        "treatment": e.treatment.assigned - t.trials + t.units,
    }
    recorded: dict[Arm, int] = {
        "control": e.control.recorded - c.recorded_trials + c.recorded_units,
        "treatment": e.treatment.recorded - t.recorded_trials + t.recorded_units,
    }
    return assigned, recorded


def _unit_note(units: dict[str, UnitCounts]) -> str | None:
    worst = max(u.max_recorded_per_unit for u in units.values())
    if worst <= 1:
        return None
    trials = sum(u.recorded_trials for u in units.values())
    distinct = sum(u.recorded_units for u in units.values())
    return (
        f"{trials} recorded trials come from {distinct} units (up to {worst} from one unit). Trials of one "
        "unit are correlated, so the sample-ratio check counts units, and Welch's test, the intervals, the "
        "always-valid decision, the guardrails and the sample size use cluster-robust variances (each arm's "
        "design effect is in its summary). Student's t-test, Fisher's test and the rank tests (Mann-Whitney, "
        "Hodges-Lehmann) assume independent trials and are shown for reference only. New units add more "
        "information than more trials of the same units."
    )


def status(lab: Lab, active_only: bool = False) -> StatusReport:
    """Every experiment with its progress and what the policy says now. `active_only`: the ended
    ones are only counted (the report lists the active ones), so they are not analysed, except a
    promotion labelled forced, whose count as a success depends on the analysis."""
    items = []
    for experiment in lab.experiments():
        progress = lab.progress(experiment)
        if active_only and experiment.status in TERMINAL_STATUSES and not forced_label(experiment):
            items.append(unanalysed_item(experiment, progress))
            continue
        try:
            analysis = analyze(lab, experiment.id)
        except Exception as exc:
            failed = unanalysed_item(experiment, progress)
            items.append(failed.model_copy(update={"analysis_error": analysis_failed(experiment.id, exc)}))
            continue
        items.append(status_item(experiment, progress, analysis, lab.project_root))
    from .release_status import release_status

    return status_report(items).model_copy(update={"release": release_status(lab)})


def analysis_failed(experiment_id: str, exc: Exception) -> str:
    """What a report says of an experiment whose analysis raised (a defect: the values that set it
    off once took status, auto and export down for the whole project, from a review)."""
    return (
        f"the analysis of {experiment_id} failed ({type(exc).__name__}: {exc}); the other experiments are "
        "unaffected. This is a defect of meta-experiment: please report it with the experiment's export "
        f"(`meta-experiment export {experiment_id}`)."
    )


def chart_counts(lab: Lab, e: Experiment) -> tuple[int, int]:
    """The values of the primary per arm that the chart draws (a failed run may have none)."""
    if (e.control.recorded, e.treatment.recorded) == (e.control.successes, e.treatment.successes):
        return e.control.recorded, e.treatment.recorded  # every run has its value: no query
    values = lab.store.values_per_arm(e.id, e.primary_metric.name)
    return values.get("control", 0), values.get("treatment", 0)


def chart(lab: Lab, experiment_id: str) -> bytes | None:
    """PNG of the improvement over the trials and the arms' distributions (None without data,
    or past CHART_LIMIT trials per arm)."""
    from .charts import render_chart

    e = lab.get(experiment_id)
    counts = chart_counts(lab, e)
    if min(counts) < 2 or max(counts) > CHART_LIMIT:
        return None
    series = lab.store.raw_series(experiment_id, e.primary_metric.name)
    result = analyze(lab, experiment_id)
    clustered = result.primary.control.units is not None or result.primary.treatment.units is not None
    return render_chart(
        result,
        [v for arm, v, _ in series if arm == "control"],
        [v for arm, v, _ in series if arm == "treatment"],
        [arm for arm, _, _ in series],
        title=f"{e.id}: {e.name}",
        units=[unit for _, _, unit in series] if clustered else None,
    )
