"""Markdown reports in the seed's layouts. Formatting only: every number comes in computed.

The analysis report lives with the statistics engine (`stats/report.py`); this module renders the
status report and re-exports `render_analysis` for the MCP layer and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

from .models import Experiment
from .outcomes import Alert, AutoReport, DeployResult, ReleaseInfo, ReleaseStatus
from .stats.report import PCT_LIMIT, fmt_against, fmt_confidence, plural, same_means
from .stats.report import render_analysis as _render_analysis
from .stats.results import Analysis
from .status import LISTED_ENDED, StatusItem, StatusReport, file_drift, newest_ended

STATUS_BADGE = {
    "draft": "⚪ Draft",
    "running": "🟡 Running",
    "promoted": "✅ Promoted to production",
    "rolled_back": "🔴 Rolled back",
    "expired": "⏱️ Expired",
}
ENDED = {"promoted": "promoted", "rolled_back": "rolled back", "expired": "expired"}
HYPOTHESIS_CHARS = 160
ACTION = {
    "promote": "Promote (the always-valid test shows the improvement)",
    "rollback": "Roll back (a significant regression, estimated beyond tolerance)",
    "expire": "Expire (max duration reached without a conclusive result)",
}


def render_analysis(experiment: Experiment, analysis: Analysis, project_root: Path | None = None) -> str:
    """The seed's analysis report; with `project_root`, a running experiment whose production files
    were edited since its start says that a recommended promotion would be refused."""
    text = _render_analysis(analysis, experiment.name, experiment.id)
    promote = analysis.decision is not None and analysis.decision.action == "promote"
    if project_root is None or experiment.status != "running" or not promote:
        return text  # the files are read only when the report recommends a promotion
    blocked, _, _ = file_drift(project_root, experiment)
    if blocked:
        text += (
            f"\n\n⚠️ Promote would refuse now: {', '.join(blocked)} no longer "
            f"{'holds its' if len(blocked) == 1 else 'hold their'} content from the start. Restore it (promote with "
            "dry_run shows the diff), or roll this experiment back and start a new one on the edited file.\n"
        )
    return text


def fmt(value: float | None, unit: str | None = None, digits: int = 3) -> str:
    """A number for people: significant digits, never NaN or inf (those print as 'n/a')."""
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}g}"
    if "e+" in text:  # 1,000 (999.7) and 21,600, not 1e+03
        text = f"{value:,.0f}"
    return f"{text} {unit}" if unit else text


def one_line(text: str, limit: int = HYPOTHESIS_CHARS) -> str:
    """The text on one line, cut to `limit` characters with an ellipsis (get_experiment has it whole)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def rate(value: float | None) -> str:
    """A binary metric's mean as the share of yes: 0.96 is '96.0%'."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1%}"


def bar(fraction: float, width: int = 10) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def _results(item: StatusItem) -> list[str]:
    unit = item.unit
    binary = item.metric_kind == "binary"
    if binary:
        lines = [f"- Control: {rate(item.control_mean)} yes", f"- Treatment: {rate(item.treatment_mean)} yes"]
    else:
        lines = [
            f"- Control avg: {fmt(item.control_mean, unit)}",
            f"- Treatment avg: {fmt(item.treatment_mean, unit)}",
        ]
    if (
        item.scale == "raw"  # on the log scale a typical run can differ although the averages are equal
        and item.control_mean is not None
        and item.treatment_mean is not None
        and same_means(item.control_mean, item.treatment_mean)
    ):
        lines.append(f"- {item.primary_metric}: no change (the arms' means are equal)")
    elif item.control_mean is not None and item.treatment_mean is not None:
        # (also from a control of 0, where no % exists: the amount and its direction still do; from a
        # review, the line had gone, and nothing said 0% -> 25% errors was worse)
        # the word, the amount and the % all of the means shown above; on the log scale the
        # improvement % is the geometric mean's (a typical run), which can differ even in sign
        diff = item.treatment_mean - item.control_mean
        better = (diff <= 0) if item.direction == "lower_is_better" else (diff >= 0)
        if binary:  # a rate moves up or down; 'saved' fits time, not a share of runs
            word = f"{'down' if diff < 0 else 'up'}, {'better' if better else 'worse'}"
        elif item.direction == "lower_is_better":
            word = "saved" if better else "lost"
        else:
            word = "gained" if better else "lost"
        shown = f"{100 * abs(diff):.1f} percentage points" if binary else fmt(abs(diff), unit)
        line = f"- {item.primary_metric} {word}: {shown}"
        # whole percents, or the decimals that keep a figure off the target it is compared with
        target = item.improvement_threshold
        if item.control_mean != 0:
            pct = 100 * abs(diff) / abs(item.control_mean)
            of_mean = " in the mean" if item.scale == "log" else ""
            shown = _whole_pct(pct, target if better and item.scale == "raw" else None)
            unstable = "; unstable: the control mean is not clearly away from 0" if item.relative_unstable else ""
            line += f" ({shown}% {'improvement' if better else 'regression'}{of_mean}{unstable})"
        if item.scale == "log" and item.improvement_pct is not None:
            typical = "better" if item.improvement_pct >= 0 else "worse"
            size = abs(item.improvement_pct)
            typical_pct = _whole_pct(size, target if item.improvement_pct >= 0 else None)
            line += f"; a typical run (geometric mean) {typical_pct}% {typical}"
        lines.append(line)
    # the power figure is for the target improvement, not for the difference seen so far
    power = f"80% power to detect the {item.improvement_threshold:g}% target"
    if item.confidence is not None:
        need = f" (about {item.trials_needed:,} more trials give {power})" if item.trials_needed else ""
        none = ": no evidence of one yet" if item.confidence <= 0 else ""
        lines.append(f"- Confidence: {fmt_confidence(item.confidence)} (always-valid test of a difference{none}){need}")
    elif item.trials_needed:
        lines.append(f"- Confidence: not yet (about {item.trials_needed:,} more trials give {power})")
    return lines


def _whole_pct(pct: float, target: float | None) -> str:
    """A size in whole percents (the decimals that keep it off `target` when given); past a million
    percent 'beyond 1,000,000', as the analysis says it (a control mean near 0 printed a 100-digit
    number, from a review)."""
    if not math.isfinite(pct) or pct >= PCT_LIMIT:
        return "beyond 1,000,000"
    return fmt_against(pct, target, 0) if target is not None else f"{pct:,.0f}"


def _when(iso: str) -> str:
    """'2026-11-26 03:45 UTC' from a stored ISO time: alerts keep the numbers of when they fired."""
    return iso[:16].replace("T", " ") + " UTC" if len(iso) >= 16 else iso


def _split(item: StatusItem) -> list[str]:
    """The intended split, when it is not the even one."""
    if item.treatment_percent == 50:
        return []
    return [f"Split: {item.treatment_percent}% treatment / {100 - item.treatment_percent}% control"]


def _running_action(item: StatusItem, alerts: list[Alert]) -> str:
    """What to do with a running experiment now. What more trials cannot change comes first: an
    active alert, the end of its time, production edited under a promotion."""
    p = item.progress
    if item.analysis_error:
        return f"None: {item.analysis_error}"
    if alerts:
        return "Roll back: a monitoring alert is active (see Alerts); " + (
            "auto mode stops it" if item.auto_rollback else "auto_rollback is off, so roll it back yourself"
        )
    if item.action == "expire":
        return f"{ACTION['expire']}; auto mode ends it, and its data stays as it is"
    if item.action == "promote" and item.changed_since_start:
        return (
            "Promote, once production holds its content from the start again (see Changed since the start; "
            "promote refuses until then), or roll back and start a new experiment on the edited file"
        )
    if p.trials_needed:
        action = f"Continue ({p.trials_needed} more trials needed)"
        if item.sample_ratio_mismatch:  # said even before the sample size: it will not fix itself
            action += "; investigate the sample-ratio mismatch (assignment or recording is biased)"
        return action
    if item.target_out_of_reach:
        return f"Stop: the target is out of reach ({item.rationale})"
    if item.action == "rollback" and item.rationale:  # which metric regressed: the primary or a guardrail
        return f"Roll back: {item.rationale}"
    return ACTION.get(item.action or "", f"Continue ({item.rationale})")


def _block(number: int, item: StatusItem, info: ReleaseInfo | None, alerts: list[Alert]) -> list[str]:
    p = item.progress
    auto = info is not None and info.ended_by == "auto"
    badge = "🔴 Failed - Auto-rolled back" if item.status == "rolled_back" and auto else STATUS_BADGE[item.status]
    if item.forced:
        badge += " (forced against the policy)"
    # the trials the experiment waits for: the required size, or more while an arm lacks its minimum
    waits = p.trials_needed > max(0, p.sample_size_required - p.trials_recorded)
    target = p.trials_recorded + p.trials_needed if waits else p.sample_size_required
    lines = [
        f"### Experiment #{number}: {item.id}",
        f"**Name**: {item.name}",
        f"**Status**: {badge}" + (f" ({p.trials_recorded}/{target} trials)" if item.status == "running" else ""),
        f"**Hypothesis**: {one_line(item.hypothesis)}",
    ]
    if item.analysis_error and item.status != "running":  # (a running one's Action says it)
        lines.append(f"**Analysis**: ⚠️ {item.analysis_error}")
    if item.status == "running":
        action = _running_action(item, alerts)
        lines += [
            "**Progress**:",
            f"Trials: {bar(p.percent / 100)} {p.percent:.0f}% ({p.trials_recorded}/{target}"
            + (
                f"; {p.sample_size_required} required, but {p.per_arm_floor}: about {p.trials_needed} more trials)"
                if p.per_arm_floor
                else ")"
            ),
            *_split(item),
            "**Current Results**:",
            *_results(item),
        ]
        if item.changed_since_start or item.holds_variant:
            lines += [
                "**Changed since the start**:",
                *(
                    f"- ⚠️ {path} no longer holds its content from the start: trials use the snapshot that "
                    "assign returns, and promote refuses until the file is restored"
                    for path in item.changed_since_start
                ),
                *(
                    f"- ℹ️ {path} already holds the tested variant: trials use the snapshots that assign returns, "
                    "and promote records it without writing"
                    for path in item.holds_variant
                ),
            ]
        if item.dispatching:
            lines.append(
                f"**Dispatching**: {', '.join(item.dispatching)}: each run of it is a trial (its file holds a "
                "dispatcher until the experiment ends; do not commit it)"
            )
        if alerts:
            lines += ["**Alerts**:", *(f"- ⚠️ {a.message} (raised {_when(a.raised_at)})" for a in alerts)]
        lines.append(f"**Action**: {action}")
        return [*lines, "", "---", ""]
    closed = (
        [f"**Alerts** (closed: the experiment is {ENDED[item.status]}):"]
        + [f"- {a.message} (raised {_when(a.raised_at)})" for a in alerts]
        if alerts and item.status in ENDED
        else []
    )
    if item.status == "promoted":
        if item.status_reason:
            lines.append(f"**Reason**: {item.status_reason}")
        lines += ["**Final Results**:", *_results(item), f"- Trials: {p.trials_recorded}", *_split(item)]
        if info is not None and info.deployed_at:
            days = info.days_in_production or 0.0
            lines.append(f"**Deployed**: {info.deployed_at[:10]} (running in production for {days:g} days)")
        if info is not None and info.changed_since:
            lines.append(
                f"**Changed since promotion**: {', '.join(info.changed_since)} no longer holds the promoted "
                "content (edited, deleted, or replaced by a later experiment), so the days in production and "
                "the time saved may no longer apply"
            )
        if info is not None and info.time_saved_hours_per_month is not None:
            lines.append(f"**Time saved**: {info.time_saved_hours_per_month:,.1f} hours/month (estimated)")
        if info is not None and info.git:
            lines.append(f"**Git**: {info.git}")
        lines += closed
    elif item.status == "draft":
        lines.append(
            f"**Action**: Start it (start_experiment; CLI: `meta-experiment start {item.id}`): a draft is not started, "
            "so no trials are assigned"
        )
    else:
        if item.status_reason:
            lines.append(f"**Reason**: {item.status_reason}")
        ended = "expired" if item.status == "expired" else "rolled back"
        imported = info is not None and info.ended_by == "import"
        how = f"{'Automatically' if auto else 'Manually'} {ended}"
        if imported:
            how = f"{ended.capitalize()} before it was imported,"
        lines += [
            "**Results**:",
            *_results(item),
            f"- {how} after {plural(p.trials_recorded, 'trial')}",
            *_split(item),
        ]
        if info is not None and info.git:
            lines.append(f"**Git**: {info.git}")
        lines += [*closed, "**Action**: None (experiment terminated)"]
    return [*lines, "", "---", ""]


def render_status(report: StatusReport, active_only: bool = False) -> str:
    """The seed's status report. `active_only`: the ended experiments are counted, not listed (the
    summary still covers them all)."""
    release = report.release or ReleaseStatus()
    infos = {i.experiment_id: i for i in release.experiments}
    active = [i for i in report.experiments if i.status in ("draft", "running")]
    failed = [i for i in report.experiments if i.status in ("rolled_back", "expired")]
    done = [i for i in report.experiments if i.status == "promoted"]
    out: list[str] = []
    number = 0
    in_full = {i.id for i in newest_ended(report.experiments)[:LISTED_ENDED]}
    for title, items in (
        ("ACTIVE EXPERIMENTS", active),
        ("FAILED / ROLLED BACK EXPERIMENTS", failed),
        ("COMPLETED EXPERIMENTS", done),
    ):
        out += [f"## {title}", ""]
        if not items:
            out += ["(none)", ""]
        elif active_only and title != "ACTIVE EXPERIMENTS":
            out += [f"({plural(len(items), 'experiment')}, not listed: the report without active_only lists them)", ""]
            continue
        briefly = []
        for item in items:
            if title != "ACTIVE EXPERIMENTS" and item.id not in in_full:
                briefly.append(item)  # older: a line each (the report's size must not grow with the history)
                continue
            number += 1
            alerts = [a for a in release.alerts if a.experiment_id == item.id]
            out += _block(number, item, infos.get(item.id), alerts)
        if briefly:
            out += [
                f"Ended before the {LISTED_ENDED} latest, a line each (analyze, or `meta-experiment analyze ID`, "
                "shows one):",
                *(
                    f"- {i.id} ({one_line(i.name)}): {ENDED.get(i.status, i.status)} {(i.ended_at or '')[:10]}"
                    + (" (forced)" if i.forced else "")
                    for i in briefly
                ),
                "",
            ]
    finished = len(done) + len(failed)
    forced = sum(1 for i in done if i.forced)
    success = f" ({100 * (len(done) - forced) / finished:.0f}% success rate)" if finished else ""
    auto_rolled = sum(
        1 for i in failed if i.status == "rolled_back" and getattr(infos.get(i.id), "ended_by", None) == "auto"
    )
    expired = sum(1 for i in failed if i.status == "expired")
    imported = sum(
        1 for i in failed if i.status == "rolled_back" and getattr(infos.get(i.id), "ended_by", None) == "import"
    )
    by_hand = len(failed) - auto_rolled - expired - imported
    detail = [f"{auto_rolled} auto-rolled back"] if auto_rolled else []
    detail += [f"{by_hand} rolled back by hand"] if by_hand else []
    detail += [f"{imported} rolled back before import"] if imported else []
    detail += [f"{expired} expired"] if expired else []
    out += [
        "## SUMMARY",
        f"- **Active**: {plural(len(active), 'experiment')}",
        f"- **Successful**: {plural(len(done) - forced, 'experiment')}{success}",
        *(
            [f"- **Promoted (forced)**: {plural(forced, 'experiment')} (against the policy; not counted as successes)"]
            if forced
            else []
        ),
        f"- **Failed**: {plural(len(failed), 'experiment')}" + (f" ({', '.join(detail)})" if detail else ""),
    ]
    if release.time_saved_hours_per_month is not None:
        out.append(f"- **Total ROI**: {release.time_saved_hours_per_month:,.1f} hours/month saved (estimated)")
        out.append(f"  _{release.time_saved_basis}_")
    ended = {i.id for i in report.experiments if i.status in ENDED}
    active_alerts = [a for a in release.alerts if a.experiment_id not in ended]  # ended ones: in their block
    if active_alerts:
        out += [
            "",
            "## ALERTS",
            *(f"- ⚠️ {a.experiment_id} ({a.kind}, raised {_when(a.raised_at)}): {a.message}" for a in active_alerts),
        ]
    if release.operations:
        out += ["", "## INTERRUPTED OPERATIONS", *(f"- {line}" for line in release.operations)]
    if release.settings_problem:
        out += [
            "",
            "## SETTINGS",
            f"- ⚠️ {release.settings_problem} Until then monitoring uses its default thresholds, and creating an "
            "experiment is refused.",
        ]
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
    from .policy import collecting

    out = ["Running automatic experiment management" + (" (dry run: nothing changes)" if report.dry_run else "")]
    out += [f"- 🔧 {note.message}" for note in report.recovered]
    if not report.items:
        out.append("- No running experiments.")
    for item in report.items:
        if item.action == "continue" and item.target_out_of_reach:
            label = "🛑 Target out of reach (stop recommended)"
        elif item.action == "continue":
            label = "📊 Monitoring" if collecting(item.driven_by) else "⏳ Inconclusive"
        else:
            label = AUTO_LINE[item.action]
        line = f"- {label}: {item.experiment_id} ({item.rationale})"
        if item.result is not None and item.result.git is not None:
            line += f" - git: {item.result.git.detail}"
        out.append(line)
        out += [f"  - ⚠️ {a}" for a in item.alerts]
        out += [f"  - {w}" for w in (item.result.warnings if item.result is not None else [])]
    return "\n".join(out) + "\n"


def render_deploy(result: DeployResult) -> str:
    out = [result.summary]
    out += [f"Warning: {w}" for w in result.warnings]
    if result.diff:
        out += ["", "```diff", result.diff.rstrip("\n"), "```"]
    return "\n".join(out) + "\n"
