"""Markdown reports in the seed's layouts. Formatting only: every number comes in computed."""

from __future__ import annotations

import math

from .analysis import Analysis, MetricAnalysis, StatusItem, StatusReport
from .models import Experiment
from .outcomes import Alert, AutoReport, DeployResult, ReleaseInfo, ReleaseStatus

STATUS_BADGE = {
    "draft": "⚪ Draft",
    "running": "🟡 Running",
    "promoted": "✅ Promoted to production",
    "rolled_back": "🔴 Rolled back",
    "expired": "⏱️ Expired",
}


def fmt(value: float | None, unit: str | None = None, digits: int = 3) -> str:
    """A number for people: significant digits, no NaN/inf ever (those print as 'n/a')."""
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"
    return f"{text} {unit}" if unit else text


def pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f}%"


def bar(fraction: float, width: int = 10) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def _current_results(primary: MetricAnalysis) -> list[str]:
    unit = primary.unit
    lines = [
        f"- Control avg: {fmt(primary.control.mean, unit)} (n={primary.control.n})",
        f"- Treatment avg: {fmt(primary.treatment.mean, unit)} (n={primary.treatment.n})",
    ]
    if primary.difference is not None and primary.improvement_pct is not None:
        word = "better" if primary.improvement_pct >= 0 else "worse"
        lines.append(
            f"- Change in {primary.name}: {fmt(primary.difference, unit)} ({pct(abs(primary.improvement_pct))} {word})"
        )
    if primary.p_value is not None:
        lines.append(f"- p-value (Welch): {fmt(primary.p_value)}")
    elif primary.message:
        lines.append(f"- {primary.message}")
    return lines


def _experiment_block(number: int, item: StatusItem, info: ReleaseInfo | None, alerts: list[Alert]) -> list[str]:
    e, progress = item.experiment, item.progress
    badge = STATUS_BADGE[e.status]
    if e.status == "rolled_back" and info is not None and info.ended_by == "auto":
        badge = "🔴 Failed - Auto-rolled back"
    lines = [
        f"### Experiment #{number}: {e.id}",
        f"**Name**: {e.name}",
        f"**Status**: {badge}"
        + (f" ({progress.trials_recorded}/{progress.sample_size_required} trials)" if e.status == "running" else ""),
        f"**Hypothesis**: {e.hypothesis}",
    ]
    if e.status_reason:
        lines.append(f"**Reason**: {e.status_reason}")
    confidence = [] if info is None or info.confidence_pct is None else [f"- Confidence: {info.confidence_pct:.0f}%"]
    if e.status == "running":
        lines += [
            "**Progress**:",
            f"Trials: {bar(progress.percent / 100)} {progress.percent:.0f}% "
            f"({progress.trials_recorded}/{progress.sample_size_required})",
            "**Current Results**:",
            *_current_results(item.primary),
            *confidence,
        ]
        if alerts:
            lines += ["**Alerts**:", *(f"- ⚠️ {a.message}" for a in alerts)]
        action = info.action if info is not None and info.action else None
        if action is None:
            action = (
                f"Continue ({progress.trials_needed} more trials needed)"
                if progress.trials_needed
                else "Analyse: the required sample size is reached"
            )
        lines.append(f"**Action**: {action}")
    elif e.status == "promoted":
        lines += ["**Final Results**:", *_current_results(item.primary), f"- Trials: {progress.trials_recorded}"]
        if info is not None and info.deployed_at:
            days = info.days_in_production or 0.0
            lines.append(f"**Deployed**: {info.deployed_at[:10]} (running in production for {days:g} days)")
        if info is not None and info.time_saved_hours_per_month is not None:
            lines.append(f"**Time saved**: {info.time_saved_hours_per_month:.1f} hours/month (estimated)")
        if info is not None and info.git:
            lines.append(f"**Git**: {info.git}")
    else:
        how = "Automatically" if info is not None and info.ended_by == "auto" else "Manually"
        ended = "expired" if e.status == "expired" else "rolled back"
        lines += [
            "**Results**:",
            *_current_results(item.primary),
            f"- {how} {ended} after {progress.trials_recorded} trials",
        ]
        if info is not None and info.git:
            lines.append(f"**Git**: {info.git}")
        lines.append("**Action**: None (experiment terminated)")
    return [*lines, "", "---", ""]


def _plural(n: int, word: str = "experiment") -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def render_status(report: StatusReport) -> str:
    release = report.release or ReleaseStatus()
    infos = {i.experiment_id: i for i in release.experiments}
    active = [i for i in report.experiments if i.experiment.status in ("draft", "running")]
    failed = [i for i in report.experiments if i.experiment.status in ("rolled_back", "expired")]
    done = [i for i in report.experiments if i.experiment.status == "promoted"]
    out: list[str] = []
    number = 0
    for title, items in (
        ("ACTIVE EXPERIMENTS", active),
        ("FAILED / ROLLED BACK EXPERIMENTS", failed),
        ("COMPLETED EXPERIMENTS", done),
    ):
        out += [f"## {title}", ""]
        if not items:
            out += ["(none)", ""]
        for item in items:
            number += 1
            alerts = [a for a in release.alerts if a.experiment_id == item.experiment.id]
            out += _experiment_block(number, item, infos.get(item.experiment.id), alerts)
    finished = len(done) + len(failed)
    rate = f" ({100 * len(done) / finished:.0f}% success rate)" if finished else ""
    auto_rolled = sum(
        1
        for i in failed
        if i.experiment.status == "rolled_back" and getattr(infos.get(i.experiment.id), "ended_by", None) == "auto"
    )
    expired = sum(1 for i in failed if i.experiment.status == "expired")
    detail = [f"{auto_rolled} auto-rolled back"] if auto_rolled else []
    detail += (
        [f"{len(failed) - auto_rolled - expired} rolled back by hand"] if len(failed) - auto_rolled - expired else []
    )
    detail += [f"{expired} expired"] if expired else []
    out += [
        "## SUMMARY",
        f"- **Active**: {_plural(len(active))}",
        f"- **Successful**: {_plural(len(done))}{rate}",
        f"- **Failed**: {_plural(len(failed))}" + (f" ({', '.join(detail)})" if detail else ""),
    ]
    if release.time_saved_hours_per_month is not None:
        out.append(f"- **Total ROI**: {release.time_saved_hours_per_month:.1f} hours/month saved (estimated)")
        out.append(f"  _{release.time_saved_basis}_")
    if release.alerts:
        out += ["", "## ALERTS", *(f"- ⚠️ {a.experiment_id} ({a.kind}): {a.message}" for a in release.alerts)]
    if release.operations:
        out += ["", "## INTERRUPTED OPERATIONS", *(f"- {line}" for line in release.operations)]
    return "\n".join(out) + "\n"


def render_analysis(experiment: Experiment, analysis: Analysis) -> str:
    p = analysis.primary
    unit = p.unit
    out = [
        f"## STATISTICAL ANALYSIS - {experiment.id}",
        "",
        "### Data Summary",
    ]
    for label, arm in (("Control Group", p.control), ("Treatment Group", p.treatment)):
        out += [
            f"**{label}** (n={arm.n}):",
            f"- Mean: {fmt(arm.mean, unit)}",
            f"- Std Dev: {fmt(arm.sd, unit)}",
            f"- Range: {fmt(arm.min)}-{fmt(arm.max, unit)}",
            "",
        ]
    out += ["### Statistical Tests"]
    if p.improvement_pct is not None and p.difference is not None:
        word = "better" if p.improvement_pct >= 0 else "worse"
        out.append(f"**Improvement**: {pct(abs(p.improvement_pct))} {word} ({fmt(p.difference, unit)} difference)")
    out += [
        "**T-Test** (Welch):",
        f"- t-statistic: {fmt(p.t_statistic)}",
        f"- p-value: {fmt(p.p_value)}",
        f"- Degrees of freedom: {fmt(p.df)}",
        "",
        f"**Effect Size** (Cohen's d): {fmt(p.cohens_d)}",
        f"**95% Confidence Interval** of the difference: [{fmt(p.ci_low, unit)}, {fmt(p.ci_high, unit)}]",
    ]
    if p.message:
        out += ["", f"_{p.message}_"]
    if len(analysis.metrics) > 1:
        out += [
            "",
            "### Secondary Metrics",
            "| metric | control | treatment | improvement | p |",
            "|---|---|---|---|---|",
        ]
        for m in analysis.metrics[1:]:
            out.append(
                f"| {m.name} | {fmt(m.control.mean, m.unit)} | {fmt(m.treatment.mean, m.unit)} | "
                f"{pct(m.improvement_pct)} | {fmt(m.p_value)} |"
            )
    return "\n".join(out) + "\n"


AUTO_LINE = {
    "promoted": "✅ Auto-promoting",
    "rolled_back": "❌ Auto-rolling back",
    "expired": "⏱️ Expiring",
    "recommend_promote": "💡 Recommend promoting",
    "recommend_rollback": "💡 Recommend rolling back",
    "would_promote": "✅ Would auto-promote",
    "would_rollback": "❌ Would auto-roll back",
    "would_expire": "⏱️ Would expire",
    "skipped": "⏭️ Skipped",
}


def render_auto(report: AutoReport) -> str:
    """Auto mode's log, one line per experiment, in the seed's wording."""
    out = ["Running automatic experiment management" + (" (dry run: nothing changes)" if report.dry_run else "")]
    out += [f"- 🔧 {note.message}" for note in report.recovered]
    if not report.items:
        out.append("- No running experiments.")
    for item in report.items:
        if item.action == "continue":
            label = "⏳ Inconclusive" if item.driven_by and "sample size" not in item.driven_by else "📊 Monitoring"
        else:
            label = AUTO_LINE[item.action]
        line = f"- {label}: {item.experiment_id} ({item.rationale})"
        if item.result is not None and item.result.git is not None:
            line += f" - git: {item.result.git.detail}"
        out.append(line)
        out += [f"  - ⚠️ {a}" for a in item.alerts]
    return "\n".join(out) + "\n"


def render_deploy(result: DeployResult) -> str:
    out = [result.summary]
    out += [f"Warning: {w}" for w in result.warnings]
    if result.diff:
        out += ["", "```diff", result.diff.rstrip("\n"), "```"]
    return "\n".join(out) + "\n"
