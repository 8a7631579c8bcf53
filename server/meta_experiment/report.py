"""Markdown reports in the seed's layouts. Formatting only: every number comes in computed."""

from __future__ import annotations

import math

from .analysis import Analysis, MetricAnalysis, StatusItem, StatusReport
from .models import Experiment

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


def _experiment_block(number: int, item: StatusItem) -> list[str]:
    e, progress = item.experiment, item.progress
    lines = [
        f"### Experiment #{number}: {e.id}",
        f"**Name**: {e.name}",
        f"**Status**: {STATUS_BADGE[e.status]}"
        + (f" ({progress.trials_recorded}/{progress.sample_size_required} trials)" if e.status == "running" else ""),
        f"**Hypothesis**: {e.hypothesis}",
    ]
    if e.status_reason:
        lines.append(f"**Reason**: {e.status_reason}")
    if e.status == "running":
        lines += [
            "**Progress**:",
            f"Trials: {bar(progress.percent / 100)} {progress.percent:.0f}% "
            f"({progress.trials_recorded}/{progress.sample_size_required})",
            "**Current Results**:",
            *_current_results(item.primary),
            "**Action**: "
            + (
                f"Continue ({progress.trials_needed} more trials needed)"
                if progress.trials_needed
                else "Analyse: the required sample size is reached"
            ),
        ]
    else:
        lines += ["**Final Results**:", *_current_results(item.primary), f"- Trials: {progress.trials_recorded}"]
    return [*lines, "", "---", ""]


def render_status(report: StatusReport) -> str:
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
            out += _experiment_block(number, item)
    finished = len(done) + len(failed)
    rate = f" ({100 * len(done) / finished:.0f}% success rate)" if finished else ""
    out += [
        "## SUMMARY",
        f"- **Active**: {len(active)} experiment{'s' if len(active) != 1 else ''}",
        f"- **Successful**: {len(done)} experiment{'s' if len(done) != 1 else ''}{rate}",
        f"- **Failed**: {len(failed)} experiment{'s' if len(failed) != 1 else ''} (rolled back or expired)",
    ]
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
