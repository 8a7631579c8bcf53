"""Markdown reports in the seed's layouts. Formatting only: every number comes in computed.

The analysis report lives with the statistics engine (`stats/report.py`); this module renders the
status report and re-exports `render_analysis` for the MCP layer and the CLI."""

from __future__ import annotations

import math

from .models import Experiment
from .stats.report import render_analysis as _render_analysis
from .stats.results import Analysis
from .status import StatusItem, StatusReport

STATUS_BADGE = {
    "draft": "⚪ Draft",
    "running": "🟡 Running",
    "promoted": "✅ Promoted to production",
    "rolled_back": "🔴 Rolled back",
    "expired": "⏱️ Expired",
}
ACTION = {
    "promote": "Promote (the always-valid test shows the improvement)",
    "rollback": "Roll back (a regression beyond tolerance)",
    "expire": "Expire (max duration reached without a conclusive result)",
}


def render_analysis(experiment: Experiment, analysis: Analysis) -> str:
    return _render_analysis(analysis, experiment.name, experiment.id)


def fmt(value: float | None, unit: str | None = None, digits: int = 3) -> str:
    """A number for people: significant digits, never NaN or inf (those print as 'n/a')."""
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"
    return f"{text} {unit}" if unit else text


def bar(fraction: float, width: int = 10) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def _results(item: StatusItem) -> list[str]:
    unit = item.unit
    lines = [
        f"- Control avg: {fmt(item.control_mean, unit)}",
        f"- Treatment avg: {fmt(item.treatment_mean, unit)}",
    ]
    if item.control_mean is not None and item.treatment_mean is not None and item.improvement_pct is not None:
        change = abs(item.treatment_mean - item.control_mean)
        better = item.improvement_pct >= 0
        if item.direction == "lower_is_better":
            word = "saved" if better else "lost"
        else:
            word = "gained" if better else "lost"
        lines.append(
            f"- {item.primary_metric} {word}: {fmt(change, unit)} "
            f"({abs(item.improvement_pct):.0f}% {'improvement' if better else 'regression'})"
        )
    if item.confidence is not None:
        need = f" (needs {item.trials_needed} more trials for 80% power)" if item.trials_needed else ""
        lines.append(f"- Confidence: {item.confidence:.0%} (always-valid){need}")
    elif item.trials_needed:
        lines.append(f"- Confidence: not yet (needs {item.trials_needed} more trials for 80% power)")
    return lines


def _block(number: int, item: StatusItem) -> list[str]:
    p = item.progress
    lines = [
        f"### Experiment #{number}: {item.id}",
        f"**Name**: {item.name}",
        f"**Status**: {STATUS_BADGE[item.status]}"
        + (f" ({p.trials_recorded}/{p.sample_size_required} trials)" if item.status == "running" else ""),
        f"**Hypothesis**: {item.hypothesis}",
    ]
    if item.status == "running":
        if p.trials_needed:
            action = f"Continue ({p.trials_needed} more trials needed)"
        else:
            action = ACTION.get(item.action or "", f"Continue ({item.rationale})")
        lines += [
            "**Progress**:",
            f"Trials: {bar(p.percent / 100)} {p.percent:.0f}% ({p.trials_recorded}/{p.sample_size_required})",
            "**Current Results**:",
            *_results(item),
            f"**Action**: {action}",
        ]
    else:
        if item.status_reason:
            lines.append(f"**Reason**: {item.status_reason}")
        lines += ["**Final Results**:", *_results(item), f"- Trials: {p.trials_recorded}"]
    return [*lines, "", "---", ""]


def render_status(report: StatusReport) -> str:
    active = [i for i in report.experiments if i.status in ("draft", "running")]
    failed = [i for i in report.experiments if i.status in ("rolled_back", "expired")]
    done = [i for i in report.experiments if i.status == "promoted"]
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
            out += _block(number, item)
    finished = len(done) + len(failed)
    rate = f" ({100 * len(done) / finished:.0f}% success rate)" if finished else ""
    out += [
        "## SUMMARY",
        f"- **Active**: {len(active)} experiment{'s' if len(active) != 1 else ''}",
        f"- **Successful**: {len(done)} experiment{'s' if len(done) != 1 else ''}{rate}",
        f"- **Failed**: {len(failed)} experiment{'s' if len(failed) != 1 else ''} (rolled back or expired)",
    ]
    return "\n".join(out) + "\n"
