"""Markdown of an analysis in the seed's layout: data summary, statistical tests, effect size,
intervals, guardrails, decision criteria, recommendation and expected impact. Formatting only:
every number comes from the Analysis."""

from __future__ import annotations

import math

from ..models import DURATION_UNITS
from .guardrails import SUCCESS_METRIC
from .plan import MIN_PER_ARM
from .results import Analysis, ArmSummary, Decision, Guardrail, Interval, MetricAnalysis

HEADLINE = {
    "promote": "PROMOTE TO PRODUCTION",
    "rollback": "ROLL BACK",
    "continue": "CONTINUE COLLECTING DATA",
    "expire": "EXPIRE (INCONCLUSIVE)",
}
MARK = {True: "✅", False: "❌", None: "⚠️"}


def fmt_num(x: float | None, unit: str | None = None, digits: int = 3) -> str:
    """A value to 3 significant digits, with thousands separators from 1,000 on (never 8e+03)."""
    if x is None:
        return "n/a"
    text = f"{x:.{digits}g}"
    if "e+" in text:  # 4,000 and 1,000 (999.7), not 4e+03 and 1e+03
        text = f"{x:,.0f}"
    return f"{text} {unit}" if unit else text


PCT_LIMIT = 1e6  # a change beyond +/-1,000,000% reads as such, not as a 300-digit number


def _decimals(value: float, avoid: tuple[float, ...], digits: int, cap: int = 6) -> tuple[int, float]:
    """(decimals, value to print) so that `value` does not read as any of `avoid` (a threshold it is
    compared with, a certainty) that it is not equal to: `digits` decimals, more up to `cap` while the
    rounding lands on one of them, then the value cut towards its own side of it (14.9999999
    against 15 prints 14.999999, never 15.000000)."""
    for d in range(digits, cap + 1):
        if all(value == a or round(value, d) != round(a, d) for a in avoid):
            return d, value
    scale = 10.0**cap
    near = min(avoid, key=lambda a: abs(a - value))
    return cap, (math.floor if value < near else math.ceil)(value * scale) / scale


def plural(count: int, word: str) -> str:
    """'1 trial', '2 trials', '1,200 experiments'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def same_means(a: float, b: float, spread: float | None = None) -> bool:
    """The arms' means differ by float rounding only (two arms with identical values, summed around
    different shifts, can differ in the 16th digit): a report says "no change", not "1.11e-14 lower".
    Rounding is judged against the means and, near 0, against the values' `spread` (their larger
    standard deviation), never against a fixed amount: means of 4e-13 and 2e-13 do differ."""
    # 4e-15 of the means: some 18 ulps, above the rounding of two sums of the same values, below a
    # difference a test can see (means of 1e15 that differ by 11 are 1.1e-14 apart); near 0, the
    # values' spread says what rounding is
    return math.isclose(a, b, rel_tol=4e-15, abs_tol=1e-9 * (spread or 0.0))


def _spread(m: MetricAnalysis) -> float:
    return max(m.control.sd or 0.0, m.treatment.sd or 0.0)


def fmt_against(value: float, bar: float, digits: int = 1) -> str:
    """`value` with `digits` decimals, or more, never reading as the `bar` it is compared with
    (14.03 days against 14 is '14.03', not '14.0')."""
    d, shown = _decimals(value, (bar,), digits)
    return f"{shown:,.{d}f}"


def fmt_pct(x: float, bar: float | None = None) -> str:
    """A signed change in %: one decimal (more when it would read as equal to `bar`, or as 0 when it
    is not), never -0.0%, and 'beyond +/-1,000,000%' past that; NaN is 'n/a'."""
    if math.isnan(x):
        return "n/a"
    if not math.isfinite(x) or abs(x) >= PCT_LIMIT:
        return f"beyond {'+' if x > 0 else '-'}1,000,000%"
    d, shown = _decimals(x, (0.0,) if bar is None else (bar, 0.0), 1)
    return f"{shown + 0.0:+.{d}f}%"


def fmt_confidence(confidence: float | None, bar: float | None = None) -> str:
    """A confidence (1 - p) in %, one decimal, never rounded to a certainty: 0.9996 is '>99.9%',
    not '100.0%', and 0.0004 is '<0.1%'; against a `bar` (a threshold), never rounded onto it:
    0.94998 against 0.95 is '94.998%'. One helper for every confidence a report shows."""
    if confidence is None or not math.isfinite(confidence):
        return "n/a"
    if bar is not None and confidence < 1:  # against a threshold: never read as it, nor as a certainty
        d, shown = _decimals(confidence * 100, (bar * 100,), 1)
        text = f"{shown:.{d}f}"
        if float(text) >= 100:  # '>99.9%', or '>99.99%' where the bar needs the digits
            return ">" + f"{100 - 10.0**-d:.{d}f}%"
        if d > 1:
            return f"{text}%"
    text = f"{confidence:.1%}"
    if text == "100.0%" or confidence >= 1:
        return ">99.9%"
    if text == "0.0%" and confidence > 0:
        return "<0.1%"
    return text


def fmt_p(p: float | None, bar: float | None = None) -> str:
    """A p-value: 4 decimals, or 2 significant digits below 1e-4; against a `bar` (the alpha it is
    compared with) never rounded onto it: 0.02502 against 0.025 is '0.02502'."""
    if p is None:
        return "n/a"
    if p < 1e-4:
        return f"{p:.1e}"
    if bar is None:
        return f"{p:.4f}"
    d, shown = _decimals(p, (bar,), 4, cap=8)
    return f"{shown:,.{d}f}"


def _ci(ci: Interval | None, unit: str | None = None, pct: bool = False) -> str:
    if ci is None:
        return "n/a"
    suffix = "%" if pct else f" {unit}" if unit else ""

    def bound(x: float) -> str:  # -5,160 ms, not -5.16e+03 ms; a % past a million as the changes show it
        if pct and (not math.isfinite(x) or abs(x) >= PCT_LIMIT):
            return f"{'' if x > 0 else '-'}1,000,000+"
        return fmt_num(x)

    return f"[{bound(ci.lower)}{suffix}, {bound(ci.upper)}{suffix}]"


def _difference(m: MetricAnalysis, ci: Interval | None, unit: str | None) -> str:
    """A difference's interval: of rates in percentage points (as 'Per run' says them), else in the unit."""
    if m.kind == "binary" and ci is not None:
        return _ci(ci.model_copy(update={"lower": 100 * ci.lower, "upper": 100 * ci.upper}), "percentage points")
    return _ci(ci, unit)


def _disagree(difference: Interval | None, improvement: Interval | None, kind: str) -> str:
    """A note when the difference's interval and the improvement's disagree about 0 (one excludes it,
    the other does not): they come from different methods, and an engineer reading both got two
    answers to "is it better?" with no word why (from a review)."""
    if difference is None or improvement is None:
        return ""

    def excludes_zero(ci: Interval) -> bool:
        return ci.lower > 0 or ci.upper < 0

    if excludes_zero(difference) == excludes_zero(improvement):
        return ""
    methods = (
        "Newcombe's method for the difference, Katz's log ratio for the %"
        if kind == "binary"
        else "Welch's interval for the difference, the delta method for the %"
    )
    return (
        f" (the two intervals use {methods}, and disagree about 0 near the edge; neither decides: the "
        "always-valid test below does)"
    )


def _effect_label(d: float | None) -> str:
    """Cohen's (1988) conventions, with Sawilowsky's (2009) 'very large' above 1.2."""
    if d is None:
        return "n/a"
    a = abs(d)
    label = (
        "negligible"
        if a < 0.2
        else "small"
        if a < 0.5
        else "medium"
        if a < 0.8
        else "large"
        if a < 1.2
        else "very large"
    )
    return f"{d:.2f} ({label} effect)"


def _arm(title: str, arm: ArmSummary, unit: str | None) -> list[str]:
    units = []
    if arm.units:
        deff = arm.design_effect or 1.0
        units = [
            f"- Units: {arm.units} (design effect {deff:.3g}: the {arm.n} trials carry the information of "
            f"about {arm.n / deff:.0f} independent ones)"
        ]
    return [
        f"**{title}** (n={arm.n}):",
        f"- Mean: {fmt_num(arm.mean, unit)}",
        f"- Std Dev: {fmt_num(arm.sd, unit)}",
        f"- Range: {fmt_num(arm.min)} to {fmt_num(arm.max, unit)}",
        *units,
        "",
    ]


def _improvement(m: MetricAnalysis, target: float | None = None) -> str:
    if m.improvement_pct is None:
        if m.control.mean == 0 and m.treatment.mean == 0 and m.treatment.n and m.control.n:
            return "no change (0 in both arms)"
        if m.control.mean == 0 and m.treatment.mean is not None and m.treatment.n and m.control.n:
            better = (m.treatment.mean > 0) == (m.direction == "higher_is_better")
            shown = f"{m.treatment.mean:.1%}" if m.kind == "binary" else fmt_num(m.treatment.mean, m.unit)
            return f"from 0 to {shown} ({'better' if better else 'worse'}; no % change exists over a zero baseline)"
        return "n/a"
    duration = m.unit in DURATION_UNITS
    if m.improvement_pct == 0 or (  # on the log scale the % is of geometric means: equal averages say nothing
        m.scale == "raw"
        and m.control.mean is not None
        and m.treatment.mean is not None
        and same_means(m.control.mean, m.treatment.mean, _spread(m))
    ):
        return "no change (0.0%)"
    better = m.improvement_pct >= 0
    if m.direction == "lower_is_better":
        word = ("faster" if better else "slower") if duration else ("lower" if better else "higher")
    else:
        word = "higher" if better else "lower"
    # against the target it is compared with, so that 14.96% never reads as the 15% target
    shown = fmt_pct(abs(m.improvement_pct), target if better else None).lstrip("+")
    text = f"{shown} {word} ({'better' if better else 'worse'})"
    if m.scale == "raw" and m.difference is not None and m.kind == "continuous":
        if duration and m.direction == "lower_is_better":  # time a run takes: saved or lost
            text += f", {fmt_num(abs(m.difference), m.unit)} {'lost' if m.difference > 0 else 'saved'} per run"
        elif duration:  # a time wanted longer: not saved by being longer
            text += f", {fmt_num(abs(m.difference), m.unit)} {'shorter' if m.difference < 0 else 'longer'} per run"
        else:
            text += f", {fmt_num(m.difference, m.unit)} difference per run"
    if m.scale == "log":
        text += " (ratio of geometric means)"
    if m.relative_unstable:
        text += " - unstable: the control mean is not clearly away from 0"
    return text


def _tests(m: MetricAnalysis, drove: str, reached: bool = False, target: float | None = None) -> list[str]:
    out = [f"**Improvement**: {_improvement(m, target)}", ""]
    clustered = bool(m.control.units or m.treatment.units)
    if m.welch:
        out += [
            "**Welch t-test** ("
            + ("cluster-robust by unit, unequal variances" if clustered else "default, unequal variances")
            + "):",
            f"- t-statistic: {m.welch.t:.3g}",
            f"- p-value: {fmt_p(m.welch.p_value)} (fixed horizon)",
            f"- Degrees of freedom: {m.welch.df:.1f}",
            "",
        ]
    if m.student:
        out += [
            "**Student t-test** (the seed's test" + ("; assumes independent trials" if clustered else "") + "):",
            f"- t-statistic: {m.student.t:.3g}",
            f"- p-value: {fmt_p(m.student.p_value)}",
            f"- Degrees of freedom: {m.student.df:.0f}",
            "",
        ]
    if m.proportions:
        pr = m.proportions
        out += [
            f"**Two-proportion test** ({pr.method.replace('_', ' ')}): "
            f"{pr.control_successes}/{m.control.n} vs {pr.treatment_successes}/{m.treatment.n}, "
            f"p = {fmt_p(pr.p_value)}",
            "",
        ]
    if m.mann_whitney:
        mw = m.mann_whitney
        method = mw.method + ("; assumes independent trials" if clustered else "")
        out += [
            f"**Mann-Whitney U**: U = {mw.u:.6g}, p = {fmt_p(mw.p_value)} ({method}); "
            f"Hodges-Lehmann shift {fmt_num(mw.hodges_lehmann, m.unit)}, "
            f"95% CI {_ci(mw.hodges_lehmann_ci, m.unit)}",
            "",
        ]
    s = m.sequential
    if s is not None and s.active:
        from . import sequential  # not at import: the server starts without scipy

        out += [
            "**Always-valid sequential test** (" + drove + "):",
            f"- z = {fmt_num(s.z)}; a decision needs |z| >= {fmt_num(s.z_boundary)} at this look "
            + (
                f"({s.information_fraction:.0%} of the planned window, which ends at {s.window_end_trials} trials)"
                if s.phase == "window"
                else f"(after the planned window{_early_end(m, s.window_end_trials)}: only the e-process, "
                f"{1 - sequential.WINDOW_SHARE:.0%} of alpha, decides now)"
            ),
            f"- always-valid p: improvement {fmt_p(s.p_value_improvement)}, regression {fmt_p(s.p_value_regression)}",
            f"- {s.method}",
            "",
        ]
    elif s is not None and reached and min(m.control.n, m.treatment.n) < MIN_PER_ARM:
        out += [
            f"**Always-valid sequential test**: starts when each arm has {MIN_PER_ARM} values "
            f"({m.control.n} control, {m.treatment.n} treatment so far)",
            "",
        ]
    elif s is not None and reached:
        why = "; ".join(m.messages) or "the arms give no usable statistic yet"
        out += [f"**Always-valid sequential test**: not computable yet ({why})", ""]
    elif s is not None:
        out += ["**Always-valid sequential test**: starts at the required sample size", ""]
    return out


def render_analysis(analysis: Analysis, experiment_name: str, experiment_id: str | None = None) -> str:
    m = analysis.primary
    d = analysis.decision
    unit = m.unit
    drove = "drove the decision" if d and d.driven_by.startswith("always-valid") else "decides automatically"
    lines = [f"## STATISTICAL ANALYSIS - {experiment_id or experiment_name}", ""]
    if experiment_id:
        lines += [f"**Name**: {experiment_name}", ""]
    if analysis.experiment_status:
        lines += [
            f"**Status**: {analysis.experiment_status}. This analysis is for the record: nothing acts on it.",
            "",
        ]
    lines += [f"### Data Summary ({m.name}{', log scale' if m.scale == 'log' else ''})", ""]
    lines += _split(analysis)
    lines += _arm("Control Group", m.control, unit) + _arm("Treatment Group", m.treatment, unit)
    reached = analysis.trials_recorded >= analysis.sample_size_required
    target = analysis.power.target_improvement_pct if analysis.power else None
    lines += ["### Statistical Tests", "", *_tests(m, drove, reached, target)]
    if m.kind == "binary":
        lines += [f"**Effect Size** (Cohen's h): {_effect_label(m.cohens_h)}", ""]
    else:
        lines += [f"**Effect Size** (Cohen's d): {_effect_label(m.cohens_d)}; Hedges' g: {fmt_num(m.hedges_g)}", ""]
    diff_unit = None if m.scale == "log" else unit
    lines += [
        f"**95% Confidence Interval** (treatment - control{', log scale' if m.scale == 'log' else ''}): "
        f"{_difference(m, m.difference_ci, diff_unit)}; improvement {_ci(m.improvement_ci, pct=True)}"
        + _disagree(m.difference_ci, m.improvement_ci, m.kind)
    ]
    if m.sequential and m.sequential.active:
        s = m.sequential
        lines += [
            f"**Always-valid {s.confidence_sequence.level if s.confidence_sequence else 0.95:.0%} "
            f"confidence sequence**: {_difference(m, s.confidence_sequence, diff_unit)}; improvement "
            f"{_ci(s.improvement_confidence_sequence, pct=True)}"
        ]
    lines += [""]
    if analysis.guardrails:
        lines += [
            "### Guardrails",
            "",
            "| metric | control -> treatment (n) | change | tolerance "
            "| Holm p (one-sided, fixed-horizon) | always-valid p (one-sided) | regressed? |",
            "|---|---|---|---|---|---|---|",
        ]
        measured = {m.name: m for m in analysis.secondary}
        for g in analysis.guardrails:
            change = (
                "worse than 0"
                if g.worse_from_zero
                else "n/a"
                if g.regression_pct is None
                else change_words(measured.get(g.name), g.regression_pct, g.max_regression_pct)
                + (_arithmetic(g) if g.mean_regression_pct is not None else "")
            )
            lines.append(
                f"| {g.name} | {_arms(measured.get(g.name))} | {change} | {g.max_regression_pct:g}% "
                f"| {fmt_p(g.p_value_holm)} | {fmt_p(g.always_valid_p)} | {_guard_state(g)} |"
            )
        lines += [""]
    ended = analysis.ended
    if analysis.power and (d is None or (d.action == "continue" and not d.target_out_of_reach)) and not ended:
        # how many more trials would give power: not for an experiment that takes none, nor one more
        # data cannot promote (from a review: "needs 1,482 more trials" under "STOP")
        lines += [f"**Power**: {analysis.power.message}", ""]
    if analysis.alerts:
        lines += ["### ⚠️ Active monitoring alerts", ""] + [f"- {a}" for a in analysis.alerts] + [""]
    if d:
        lines += ["### Decision Criteria", ""]
        lines += [f"{MARK[c.met]} {c.name}: {c.detail}" for c in d.criteria]
        lines += [
            "",
            "### RECOMMENDATION: "
            + (
                "NONE: THE EXPERIMENT "
                + (
                    "HAS NOT STARTED"
                    if analysis.experiment_status.startswith("draft")
                    else f"IS {analysis.experiment_status.split(':')[0].upper()}"
                )
                + " "
                f"(the data alone would say: {_headline(d).lower()})"
                if analysis.experiment_status
                else f"ROLL BACK: A MONITORING ALERT IS ACTIVE (the data alone would say: {_headline(d).lower()})"
                if analysis.alerts
                else _headline(d)
            ),
            "",
            f"**Rationale**: {d.rationale}",
            f"**Decided by**: {d.driven_by}",
            "",
        ]
    lines += _impact(analysis)
    notes = [*analysis.messages, *m.messages]
    if notes:
        lines += ["### Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _headline(d: Decision) -> str:
    return "STOP: THE TARGET IS OUT OF REACH" if d.target_out_of_reach else HEADLINE[d.action]


def _early_end(m: MetricAnalysis, window_end: int) -> str:
    """How the window ended: at its trial count, or earlier in trials when the arms, nearer even
    than the intended split, carried its information sooner (the window is measured in information)."""
    n = m.control.n + m.treatment.n
    if n >= window_end:
        return f" of {window_end} trials"
    return (
        f", measured in information: {m.control.n} control and {m.treatment.n} treatment values carry what "
        f"{window_end} trials at the intended split would"
    )


def _split(analysis: Analysis) -> list[str]:
    """The intended split, when it is not 50/50 (the sample-ratio checks carry it; the power section
    too)."""
    if analysis.srm:
        treatment = 1 - analysis.srm[0].expected_control_share
    elif analysis.power:
        treatment = analysis.power.treatment_share
    else:
        return []
    if abs(treatment - 0.5) < 1e-12:
        return []
    pct = round(treatment * 100, 1)
    return [f"**Split**: {pct:g}% treatment / {round(100 - pct, 1):g}% control (intended)", ""]


def _impact(analysis: Analysis) -> list[str]:
    m = analysis.primary
    if m.control.mean is None or m.treatment.mean is None or not (m.control.n and m.treatment.n):
        return []
    if m.improvement_pct is None:
        if m.control.mean != 0 or m.treatment.mean == 0:
            return []
        better = (m.treatment.mean > 0) == (m.direction == "higher_is_better")
        shown = f"{m.treatment.mean:.1%} of runs" if m.kind == "binary" else fmt_num(m.treatment.mean, m.unit)
        return [
            "**Expected Impact**:",
            f"- Per run: {shown} against 0 in the control arm ({'better' if better else 'worse'})",
            "",
        ]
    if m.scale == "raw" and same_means(m.control.mean, m.treatment.mean, _spread(m)):
        return ["**Expected Impact**:", "- Per run: no change (the arms' means are equal)", ""]
    # In words, as the Improvement line: 'saved' / 'lost' for a duration, 'higher' / 'lower' with
    # 'better' / 'worse' otherwise; never a bare sign, whose meaning would flip with the direction.
    # positive when the treatment is better; the difference as the tests have it (its rounding kept)
    exact = m.scale == "raw" and m.difference is not None  # on the log scale `difference` is of the logs
    difference = m.difference if exact and m.difference is not None else m.treatment.mean - m.control.mean
    per_run = -difference if m.direction == "lower_is_better" else difference
    duration = m.unit in DURATION_UNITS

    def amount(better_by: float) -> str:
        diff = better_by if m.direction == "higher_is_better" else -better_by  # treatment - control
        if duration and m.direction == "lower_is_better":
            return f"{fmt_num(abs(better_by), m.unit)} {'saved' if better_by >= 0 else 'lost'}"
        shown = f"{abs(diff) * 100:.3g} percentage points" if m.kind == "binary" else fmt_num(abs(diff), m.unit)
        return f"{shown} {'higher' if diff >= 0 else 'lower'}"

    target = analysis.power.target_improvement_pct if analysis.power else None

    def relative(pct: float, bar: float | None = None) -> str:  # `bar`: the target it is compared with
        return f"{fmt_pct(abs(pct), bar if pct >= 0 else None).lstrip('+')} {'better' if pct >= 0 else 'worse'}"

    if m.scale == "log":  # the % is of geometric means; per run (and per month) is of arithmetic means
        raw_pct = per_run / abs(m.control.mean) * 100 if m.control.mean else None
        out = [
            "**Expected Impact**:",
            f"- Per run (arithmetic means): {amount(per_run)}" + ("" if raw_pct is None else f" ({relative(raw_pct)})"),
            f"- Typical run (geometric means): {relative(m.improvement_pct, target)}",
        ]
    else:
        out = ["**Expected Impact**:", f"- Per run: {amount(per_run)} ({relative(m.improvement_pct, target)})"]
    out += _failures(analysis)
    d = analysis.decision
    if per_run > 0 and (analysis.alerts or (d is not None and d.action == "rollback")):
        # a month's gain from a change the report says to roll back (a guardrail, failures) is no
        # gain anyone should count on; a loss still says what keeping it would cost
        why = "the data say roll back" if analysis.ended else "the recommendation is to roll back"
        out.append(f"- Monthly impact: none to count on: {why}")
    elif analysis.runs_per_day and m.kind == "binary":
        yes = (m.treatment.mean - m.control.mean) * analysis.runs_per_day * 30
        out.append(
            f"- At the observed {analysis.runs_per_day:.3g} runs/day (runs recorded per day so far, counting at "
            f"least one day): about {abs(yes):.3g} {'more' if yes >= 0 else 'fewer'} runs with {m.name} = yes "
            "per month"
        )
    elif analysis.runs_per_day:
        monthly = per_run * analysis.runs_per_day * 30
        seconds = DURATION_UNITS.get(m.unit or "")
        if seconds:  # a month of time in the unit that reads best (hours, minutes or seconds), not 109,011 ms
            total = abs(monthly) * seconds
            span = (
                f"{fmt_num(total / 3600)} hours"
                if total >= 3600
                else f"{fmt_num(total / 60)} min"
                if total >= 60
                else f"{fmt_num(total)} s"
            )
            words = ("saved", "lost") if m.direction == "lower_is_better" else ("more", "less")
            shown = f"{span} {words[0] if monthly >= 0 else words[1]}"
        else:
            shown = amount(monthly)
        out.append(
            f"- At the observed {analysis.runs_per_day:.3g} runs/day (runs recorded per day so far, counting at "
            f"least one day): {shown} per month"
            # a count adds up over a month's runs; a score or a rating does not, and no unit tells them apart
            + (
                ""
                if seconds or m.unit
                else f" in total, if {m.name} adds up across runs (a count or a cost, not a score)"
            )
        )
    else:
        out.append("- Monthly impact: estimated once the experiment has started and recorded runs")
    return [*out, ""]


def _failures(analysis: Analysis) -> list[str]:
    """A line when the treatment's runs fail more than the tolerance allows (or enough to hold a
    promotion back): the per-run figures above are of the runs that recorded the metric, and a
    change that saves a minute on half as many successful runs is no saving (from a review)."""
    guard = next((g for g in analysis.guardrails if g.name == SUCCESS_METRIC), None)
    rates = next((s for s in analysis.secondary if s.name == SUCCESS_METRIC), None)
    if guard is None or rates is None or rates.control.mean is None or rates.treatment.mean is None:
        return []
    if guard.regression_pct is None or guard.regression_pct <= 0:
        return []
    if not (guard.blocks_promotion or guard.regression_pct > guard.max_regression_pct):
        return []
    return [
        f"- Failures: {rates.treatment.mean:.1%} of treatment runs succeed against {rates.control.mean:.1%} of "
        f"control runs; the figures above are of the runs that recorded {analysis.primary.name}"
    ]


def _arms(m: MetricAnalysis | None) -> str:
    """'0.9 -> 0.6 (20 / 20)': the arms' means (rates in % for yes/no) and counts, for a table."""
    if m is None:
        return "n/a"

    def mean(arm: ArmSummary) -> str:
        if arm.mean is None:
            return "n/a"
        return f"{arm.mean:.1%}" if m.kind == "binary" else fmt_num(arm.mean, m.unit)

    return f"{mean(m.control)} -> {mean(m.treatment)} ({m.control.n} / {m.treatment.n})"


def change_words(m: MetricAnalysis | None, regression_pct: float, tolerance: float) -> str:
    """A guardrail's change in words ('8.3% worse', '2.1% better', 'no change'): a sign would read
    as 'better' in a table of regressions to some and as 'worse' to others (a success rate that
    rose read as "changed -7.7%"). Means that differ by rounding only are 'no change', not
    '0.000001% better'."""
    shown = fmt_pct(regression_pct, tolerance)
    if shown == "n/a":
        return shown
    if regression_pct == 0 or (
        m is not None
        and m.scale == "raw"  # on the log scale the change is the geometric means', not these
        and m.control.mean is not None
        and m.treatment.mean is not None
        and same_means(m.control.mean, m.treatment.mean, _spread(m))
    ):
        return "no change"
    return f"{shown.replace('+', '', 1).replace('-', '', 1)} {'worse' if regression_pct > 0 else 'better'}"


def _arithmetic(g: Guardrail) -> str:
    """A log-scale guardrail's arithmetic change beside its geometric one: a heavier tail can move
    them apart (the typical cost lower, the total higher)."""
    assert g.mean_regression_pct is not None
    p = "" if g.mean_regression_p is None else f", one-sided p = {fmt_p(g.mean_regression_p)}"
    return f" (geometric means); arithmetic means {change_words(None, g.mean_regression_pct, g.max_regression_pct)}" + (
        p if g.mean_regression_pct > 0 else ""
    )


def _guard_state(g: Guardrail) -> str:
    if not g.checked:
        return "unchecked: too few values yet (blocks promotion)"
    if g.treatment_all_worst:
        return "every treatment run failed (blocks promotion)"
    if g.regression_detected:
        return "yes"
    if g.regression_suspected and g.p_value is None:
        return "suspected: untestable, constant arms (blocks promotion)"
    if g.regression_suspected:  # the uncorrected one-sided p that holds promotion, not the Holm p beside it
        return f"suspected: fixed-horizon p = {fmt_p(g.p_value)} <= 0.05 (blocks promotion)"
    if g.mean_regressed and g.mean_regression_pct is not None:
        worse = fmt_pct(g.mean_regression_pct, g.max_regression_pct).lstrip("+")
        return f"arithmetic mean {worse} worse (blocks promotion)"
    if g.worse_from_zero:
        return "not yet significant"
    return "no"
