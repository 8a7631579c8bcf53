"""The decision policy: `decide(analysis, targets, now) -> Decision` (promote, rollback, continue,
expire), with the seed's checklist of criteria, each marked met or not with its numbers.

What the numbers mean
---------------------
Automatic decisions come from the always-valid sequential test of the primary metric (see
`stats/sequential.py`), never from the fixed-horizon p-value, which is shown for comparison only
(re-testing it after every trial inflates false decisions: "peeking").

`confidence_threshold` (c) is the confidence of that sequential test. The two-sided error rate of
decisions is

    alpha = min(0.05, 1 - c),   split evenly: alpha / 2 for promote, alpha / 2 for rollback.

As in the seed, where a decision needed both p < 0.05 and a confidence above the threshold, the
seed's 5% significance is a floor that the threshold can only tighten: c = 0.80 (the seed's
default) and c = 0.95 both give alpha = 0.05, c = 0.99 gives 0.01. So, with no true difference,
auto mode promotes with probability at most alpha / 2 = 2.5% and rolls back with probability at
most 2.5%, however often it re-analyses and however long the experiment runs.

The test plans for decisions between `sample_size_required` trials and PLAN_MULTIPLE (7) x that many
(the planned window): WINDOW_SHARE (80%) of each direction's alpha is spent there by an
O'Brien-Fleming-type boundary, which asks for strong evidence early and little more than a single
fixed-horizon test at the window's end; the other 20% goes to a normal-mixture e-process that
catches large effects early and keeps deciding after the window. bench/validate_decisions.py
measures the error rates and the power.
The "confidence" shown in reports is 1 - the always-valid two-sided p-value.

No decision is taken before `sample_size_required` recorded trials, nor before each arm has
MIN_PER_ARM (5) values of the primary metric: with fewer, Welch's t mapped to z is far from its
normal limit, and with an uneven split (20% or 10% treatment) at small sizes the false-decision
rate rose to 3-4% without this floor (bench/validate_decisions.py, the split table). With the even
split and sample_size_required >= 10 the floor is already met at the required size.

Promote when, at or after `sample_size_required` recorded trials:
  the always-valid test shows an improvement (one-sided always-valid p <= alpha / 2), the point
  estimate of the improvement exceeds `improvement_threshold` (any improvement over a zero
  baseline does), every guardrail has values in both arms and shows no regression beyond its
  tolerance at the fixed-horizon level (Holm at alpha, or one-sided p <= 0.05: "suspected"), a
  log-scale primary's arithmetic mean does not regress beyond `max_regression`, and there is no
  sample-ratio mismatch.
Roll back when the always-valid test shows a regression of the primary metric beyond
  `max_regression`, or of a guardrail beyond its own tolerance (Holm across the primary and the
  guardrails at alpha / 2, on always-valid p-values); worse than a zero baseline counts as beyond
  any tolerance. A sample-ratio mismatch blocks promotion but not rollback: restoring the original
  is always safe.
Expire when `max_duration_days` have passed without either.
Otherwise continue; when the always-valid interval of the improvement lies below the target, the
decision says the target is out of reach (`target_out_of_reach`)."""

from __future__ import annotations

from .models import Targets
from .stats.guardrails import SUCCESS_METRIC, arithmetic_regression, change_from_zero, holm
from .stats.plan import MIN_PER_ARM, WINDOW_SHARE
from .stats.report import fmt_against, fmt_confidence, fmt_p, fmt_pct
from .stats.results import Analysis, Criterion, Decision, Interval, MetricAnalysis

SIGNIFICANCE_FLOOR = 0.05  # the seed's p < 0.05, two-sided
SEQUENTIAL = "always-valid sequential test (O'Brien-Fleming-type window boundary or normal-mixture e-process)"


def decision_alpha(targets: Targets) -> float:
    """Two-sided alpha of automatic decisions: min(0.05, 1 - confidence_threshold)."""
    return min(SIGNIFICANCE_FLOOR, 1.0 - targets.confidence_threshold)


def _fmt_p(p: float | None, bar: float | None = None) -> str:
    return "n/a" if p is None else fmt_p(p, bar)


def decide(analysis: Analysis, targets: Targets, now: float) -> Decision:
    alpha = decision_alpha(targets)
    half = alpha / 2
    m = analysis.primary
    seq = m.sequential
    n, required = analysis.trials_recorded, analysis.sample_size_required
    short = min(m.control.n, m.treatment.n)
    enough = n >= required and short >= MIN_PER_ARM
    active = bool(enough and seq is not None and seq.active)
    p_up = seq.p_value_improvement if active and seq else None
    p_two = seq.p_value if active and seq else None
    imp = m.improvement_pct
    srm_bad = [s for s in analysis.srm if s.mismatch]
    bad_guards = [g for g in analysis.guardrails if g.blocks_promotion]

    significant = None if p_up is None else p_up <= half
    from_zero = change_from_zero(m)
    over = (from_zero > 0 or None) if imp is None else imp > targets.improvement_threshold
    confidence = None if p_two is None else 1 - p_two
    # the always-valid test's direction: a significant regression is confidence of the wrong kind
    # (with no evidence either way, p = 1, it leans nowhere: "0.0% that the change is worse" said nothing)
    worse = bool(
        active
        and seq
        and p_up is not None
        and p_two is not None
        and p_two < 1
        and seq.p_value_regression is not None
        and seq.p_value_regression < p_up
    )
    rollback = _rollback_reasons(analysis, targets, half) if active else []
    # the primary's regression rolls back (the seed: regression > max_allowed), so it is one too
    regressions = [f"{g.name}: {g.detail}" for g in bad_guards] + [
        text for name, text in rollback if name not in {g.name for g in bad_guards}
    ]
    # estimates beyond their tolerance that no test shows yet: not a regression detected, not "within"
    unshown = [] if regressions else _beyond_unshown(analysis, targets, active, half)
    criteria = [
        Criterion(
            name="Statistical significance",
            met=significant,
            detail=f"always-valid one-sided p = {_fmt_p(p_up, half)} (needs <= {half:g}); "
            f"fixed-horizon Welch/exact p = {_fmt_p(m.p_value)}, shown only",
        ),
        Criterion(
            name="Improvement > threshold",
            met=over,
            detail=_improvement_detail(m, targets, from_zero),
        ),
        Criterion(
            name="No regression detected",
            met=False if regressions else None if unshown else True,
            detail="; ".join(regressions) or _no_regression_detail(analysis, targets, worse, unshown),
        ),
        Criterion(
            name="Sample size adequate",
            met=enough,
            detail=f"{n} of {required} trials recorded"
            + (
                f"; {m.control.n} control and {m.treatment.n} treatment values of {m.name}, "
                f"each arm needs {MIN_PER_ARM}"
                if short < MIN_PER_ARM
                else ""
            ),
        ),
        Criterion(
            name="Confidence threshold",
            met=None if confidence is None else confidence >= 1 - alpha and not worse,
            detail="not evaluated yet"
            if confidence is None
            else f"always-valid confidence {fmt_confidence(confidence, 1 - alpha)}"
            + (" that the change is worse, not better" if worse else "")
            + f"; needs {1 - alpha:.0%}"
            + (
                f" (the {targets.confidence_threshold:.0%} target, raised to the seed's 5% significance floor)"
                if 1 - alpha > targets.confidence_threshold + 1e-12
                else ""
            ),
        ),
        Criterion(
            name="Sample ratio (SRM)",
            met=not srm_bad,
            detail="; ".join(
                f"{s.counts} {s.control} control / {s.treatment} treatment, {s.test} p = {_fmt_p(s.p_value)}"
                if s.p_value is not None
                else f"{s.counts}: none yet"
                for s in analysis.srm
            ),
        ),
    ]
    original = _original_scale(m, targets)
    if original is not None:
        criteria.insert(2, original)
    expired = analysis.started_at is not None and now - analysis.started_at >= analysis.max_duration_days * 86400
    criteria.append(Criterion(name="Within max duration", met=not expired, detail=_elapsed(analysis, now)))

    if active and significant and over and not regressions and not srm_bad and (original is None or original.met):
        return Decision(
            action="promote",
            criteria=criteria,
            driven_by=SEQUENTIAL,
            rationale="the always-valid test shows "
            + (
                "an improvement over a zero baseline"
                if imp is None
                else f"an improvement of {fmt_pct(imp, targets.improvement_threshold)}"
            )
            + f" (p = {_fmt_p(p_up)} <= {half:g}) above the {targets.improvement_threshold:g}% target, "
            + (
                "with no guardrail regression shown (" + "; ".join(unshown) + ")"
                if unshown
                else "with no guardrail regression"
            )
            + " and no sample-ratio mismatch",
        )
    if rollback:
        return Decision(
            action="rollback",
            criteria=criteria,
            driven_by=SEQUENTIAL,
            rationale="the always-valid test shows a regression (Holm-corrected), and its estimate is beyond "
            "the tolerance: " + "; ".join(text for _, text in rollback),
        )
    if expired:
        return Decision(
            action="expire",
            criteria=criteria,
            driven_by="max_duration_days reached",
            rationale=f"no conclusive result within {_days(analysis.max_duration_days)}"
            + ("" if analysis.ended else "; the original stays in production"),
        )
    return Decision(
        action="continue",
        criteria=criteria,
        driven_by=_why_continue(analysis, active, criteria),
        rationale=_continue_rationale(analysis, criteria, srm_bad, targets),
        target_out_of_reach=_out_of_reach(analysis, targets) is not None,
    )


def _rollback_reasons(analysis: Analysis, targets: Targets, half: float) -> list[tuple[str, str]]:
    """Holm across the primary's and the guardrails' always-valid regression p-values at alpha/2,
    each also needing a point regression beyond its tolerance: (metric, why) for each."""
    m = analysis.primary
    names = [m.name, *(g.name for g in analysis.guardrails)]
    regression = [
        None if m.improvement_pct is None else -m.improvement_pct,
        *(g.regression_pct for g in analysis.guardrails),
    ]
    from_zero = [change_from_zero(m) < 0, *(g.worse_from_zero for g in analysis.guardrails)]
    limits = [targets.max_regression, *(g.max_regression_pct for g in analysis.guardrails)]
    out = []
    for name, p_adj, reg, zero, limit in zip(
        names, _holm_regression_p(analysis), regression, from_zero, limits, strict=True
    ):
        if p_adj is None or p_adj > half:
            continue
        if zero:
            out.append((name, f"{name} worse than its zero baseline, Holm always-valid p = {_fmt_p(p_adj)}"))
        elif reg is not None and reg > limit:
            shown = fmt_pct(reg, limit).lstrip("+")
            out.append((name, f"{name} {shown} worse (tolerance {limit:g}%), Holm always-valid p = {_fmt_p(p_adj)}"))
    return out


def _holm_regression_p(analysis: Analysis) -> list[float | None]:
    """The primary's and the guardrails' always-valid regression p-values, Holm-corrected together
    (the family `_rollback_reasons` tests)."""
    seq = analysis.primary.sequential
    return holm([seq.p_value_regression if seq else None, *(g.always_valid_p for g in analysis.guardrails)])


def _beyond_unshown(analysis: Analysis, targets: Targets, active: bool, half: float) -> list[str]:
    """The primary (once the always-valid test is active) and the guardrails whose estimate is
    worse than their tolerance, though no test shows it strongly enough to count: what they are,
    with the p-value that falls short. A checklist that called them "within tolerance" read as
    safe (from a review: a primary 38.6% worse against a 10% tolerance)."""
    m = analysis.primary
    out = []
    if active and m.improvement_pct is not None and -m.improvement_pct > targets.max_regression:
        p = _holm_regression_p(analysis)[0]
        out.append(
            f"{m.name} {fmt_pct(-m.improvement_pct, targets.max_regression).lstrip('+')} worse, beyond its "
            f"{targets.max_regression:g}% tolerance, not yet shown: Holm-corrected always-valid p = "
            f"{_fmt_p(p, half)} > {half:g}"
        )
    for g in analysis.guardrails:
        if g.checked and not g.blocks_promotion and (g.regression_pct or 0) > g.max_regression_pct:
            out.append(
                f"{g.name} {fmt_pct(g.regression_pct or 0, g.max_regression_pct).lstrip('+')} worse, beyond its "
                f"{g.max_regression_pct:g}% tolerance, not significant: one-sided p = {_fmt_p(g.p_value)}"
                + ("" if g.p_value_holm in (None, g.p_value) else f" (Holm {_fmt_p(g.p_value_holm)})")
            )
    return out


def _no_regression_detail(analysis: Analysis, targets: Targets, worse: bool, unshown: list[str]) -> str:
    """The 'No regression detected' line when nothing regressed: what is beyond its tolerance but
    not shown, the primary when it leans worse within its tolerance, and how many guardrails are
    within theirs."""
    m = analysis.primary
    parts = list(unshown)
    imp = m.improvement_pct
    if worse and imp is not None and 0 < -imp <= targets.max_regression:
        parts.append(
            f"{m.name} {fmt_pct(-imp, targets.max_regression).lstrip('+')} worse, within its "
            f"{targets.max_regression:g}% tolerance"
        )
    beyond = {text.split(" ", 1)[0] for text in unshown}
    within = [g for g in analysis.guardrails if g.name not in beyond]
    if within:
        parts.append(f"{len(within)} guardrail(s) within tolerance")
    elif not analysis.guardrails:
        parts.append("no guardrails")
    return "; ".join(parts)


def _why_no_rollback(analysis: Analysis, targets: Targets) -> str:
    """Why a primary that the always-valid interval shows worse is not rolled back: its estimate is
    within the tolerance, or (beyond it) the Holm-corrected regression p falls short."""
    imp = analysis.primary.improvement_pct
    if imp is None or -imp <= targets.max_regression:
        return f"within the {targets.max_regression:g}% tolerance, so no automatic rollback"
    half = decision_alpha(targets) / 2
    p = _holm_regression_p(analysis)[0]
    return (
        f"{fmt_pct(-imp, targets.max_regression).lstrip('+')} worse, beyond the {targets.max_regression:g}% "
        f"tolerance, but not yet shown strongly enough for an automatic rollback: Holm-corrected always-valid "
        f"p = {_fmt_p(p, half)} > {half:g}"
    )


def _improvement_detail(m: MetricAnalysis, targets: Targets, from_zero: int) -> str:
    if m.improvement_pct is not None:
        target = targets.improvement_threshold
        unstable = (
            f"; unstable: the control mean {m.control.mean:.4g} is not clearly away from 0, so a % of it means "
            "little (the significance criterion tests the difference itself)"
            if m.relative_unstable and m.control.mean is not None
            else ""
        )
        return f"{fmt_pct(m.improvement_pct, target)} vs {target:g}% target{unstable}"
    if from_zero:
        base = f"(control {m.control.mean:.4g}, treatment {m.treatment.mean:.4g}): no % change exists"
        if from_zero > 0:
            return f"better than a zero baseline {base}, and any improvement over 0 exceeds the target"
        return f"worse than a zero baseline {base}, and any worsening from 0 is beyond tolerance"
    return "improvement unknown"


def _original_scale(m: MetricAnalysis, targets: Targets) -> Criterion | None:
    """For a primary analysed on the log scale (geometric means), the arithmetic means must not
    regress beyond max_regression: a change can shorten the typical run while lengthening the
    total (a heavier tail), and promotion must not make the total worse."""
    regression = arithmetic_regression(m)
    if regression is None:
        return None
    change = -regression + 0.0
    return Criterion(
        name="Mean not worse on the original scale",
        met=change >= -targets.max_regression,
        detail=f"arithmetic means {m.control.mean:.4g} -> {m.treatment.mean:.4g} "
        f"({fmt_pct(change, -targets.max_regression)}; "
        f"tolerance {targets.max_regression:g}%); the test above compares geometric means",
    )


def _elapsed(analysis: Analysis, now: float) -> str:
    if analysis.started_at is None:
        return "not started"
    days = max(0.0, now - analysis.started_at) / 86400
    return f"{fmt_against(days, analysis.max_duration_days)} of {_days(analysis.max_duration_days)}"


def _days(n: float) -> str:
    return f"{n:g} day" if n == 1 else f"{n:g} days"


SAMPLE_SIZE_NOT_REACHED = "sample size not reached"
TOO_FEW_PER_ARM = f"too few values in an arm (each needs {MIN_PER_ARM})"


def collecting(driven_by: str) -> bool:
    """Whether a 'continue' only waits for the trials it needs before it can decide (auto mode's
    'Monitoring', not 'Inconclusive')."""
    return driven_by in (SAMPLE_SIZE_NOT_REACHED, TOO_FEW_PER_ARM)


def _why_continue(analysis: Analysis, active: bool, criteria: list[Criterion]) -> str:
    if analysis.trials_recorded < analysis.sample_size_required:
        return SAMPLE_SIZE_NOT_REACHED
    if min(analysis.primary.control.n, analysis.primary.treatment.n) < MIN_PER_ARM:
        return TOO_FEW_PER_ARM
    if not active:
        return "sequential test not computable yet"
    return SEQUENTIAL


def _out_of_reach(analysis: Analysis, targets: Targets) -> Interval | None:
    """The always-valid interval of the improvement when it lies wholly below the target (it is
    always-valid, so reading it at any look and stopping on it is safe), else None."""
    seq = analysis.primary.sequential
    ics = seq.improvement_confidence_sequence if seq is not None and seq.active else None
    return ics if ics is not None and ics.upper < targets.improvement_threshold else None


# What an unmet criterion means, in words that say what is missing: "not met: sample size
# adequate" read as if the sample size were adequate (from a review).
UNMET_WORDS = {
    "Statistical significance": "no statistical significance yet",
    "Improvement > threshold": "improvement not above the threshold",
    "No regression detected": "a regression",
    "Sample size adequate": "too few trials",
    "Confidence threshold": "confidence below the threshold",
    "Sample ratio (SRM)": "a sample-ratio mismatch",
    "Mean not worse on the original scale": "the arithmetic mean worse beyond the tolerance",
}


def _continue_rationale(analysis: Analysis, criteria: list[Criterion], srm_bad: list, targets: Targets) -> str:
    unmet = [
        UNMET_WORDS.get(c.name, c.name.lower()) for c in criteria if c.met is False and c.name != "Within max duration"
    ]
    held = [g for g in analysis.guardrails if g.blocks_promotion]
    if held and UNMET_WORDS["No regression detected"] in unmet:  # say which guardrail holds promotion back, and why
        unmet[unmet.index(UNMET_WORDS["No regression detected"])] = (
            "guardrails ("
            + "; ".join(
                (
                    f"{g.name} has too few values: record trials in both arms ({g.name} comes from each "
                    "trial's success flag)"
                    if g.name == SUCCESS_METRIC
                    else f"{g.name} has too few values: record it in both arms"
                )
                if not g.checked
                else f"{g.name}: {g.detail}"
                if g.treatment_all_worst
                else f"{g.name} regression suspected"
                if g.regression_suspected
                else f"{g.name} regressed"
                if g.regression_detected
                else f"{g.name}'s arithmetic mean regressed beyond its tolerance"
                for g in held
            )
            + ")"
        )
    text = "not enough evidence yet" if not unmet else "held back by: " + ", ".join(unmet)
    # an ended experiment takes no more trials and no action: its rationale says what the data show,
    # without telling anyone to add trials to it or stop it (from a review)
    ended = analysis.ended
    m = analysis.primary
    empty = [arm.arm for arm in (m.control, m.treatment) if arm.n == 0]
    if empty and (m.control.n or m.treatment.n):
        recorded = next((s for s in analysis.srm if s.counts == "recorded"), None)
        if recorded is not None and all(getattr(recorded, arm) == 0 for arm in empty):
            arms = " and ".join(empty)
            text = f"the {arms} arm has no recorded runs{'' if ended else ' yet'}, so nothing can be compared" + (
                "" if ended else "; keep running trials"
            )
        else:
            text = (
                f"the {' and '.join(empty)} arm has no {m.name} values{'' if ended else ' yet'}, so nothing can be "
                "compared" + ("" if ended else "; check that runs in that arm record the metric")
            )
    constant = all(a.n >= 2 and a.min is not None and a.min == a.max for a in (m.control, m.treatment))
    if constant and m.kind == "continuous" and m.control.mean != m.treatment.mean:
        text = (
            f"every control value of {m.name} is {m.control.mean:.6g} and every treatment value "
            f"{m.treatment.mean:.6g}: the tests need some spread, so more identical values will not decide"
        ) + (
            ""
            if ended
            else ". Check that the metric is measured per run (not a constant or a rounded value); to act on it "
            "as it is, promote or roll back by hand (promote needs force and a reason)"
        )
    elif constant and m.kind == "continuous":
        text = f"every value of {m.name} in both arms is {m.control.mean:.6g}: no difference" + (
            ""
            if ended
            else ", and more identical values will not show one. Check that the metric is measured per run (not a "
            "constant or a rounded value); if it is, the change makes no difference to it: roll back, or let the "
            "experiment expire"
        )
    ics = _out_of_reach(analysis, targets)
    if ics is not None:
        span = f"[{fmt_pct(ics.lower)}, {fmt_pct(ics.upper)}]"
        if ics.upper <= 0:  # no gain to adopt: the change makes the metric worse
            text = (
                f"the {targets.improvement_threshold:g}% target is out of reach: the always-valid interval of the "
                f"improvement, {span}, lies below 0, so the change makes {analysis.primary.name} worse "
                f"({_why_no_rollback(analysis, targets)})"
            ) + ("" if ended else ". More data will not promote it: roll it back (production keeps the original)")
        else:
            real = ", so the improvement is real but smaller" if ics.lower > 0 else ""
            text = (
                f"the {targets.improvement_threshold:g}% target is out of reach: the always-valid interval of the "
                f"improvement, {span}, lies below it{real}"
            ) + (
                ""
                if ended
                else ". More data will not promote it: stop the experiment (rollback keeps the original), or start "
                "a new one with a lower improvement_threshold to adopt a smaller gain"
            )
        if srm_bad:
            text += "; also investigate the sample-ratio mismatch (assignment or recording is biased)"
        return text
    if srm_bad:
        text += "; investigate the sample-ratio mismatch (assignment or recording is biased)"
    p = analysis.primary.p_value
    if p is not None and p < 0.05 and UNMET_WORDS["Statistical significance"] in unmet:
        text += (
            f"; the fixed-horizon p = {_fmt_p(p)} would look significant, but re-testing it after "
            "every trial inflates false decisions, so it does not decide"
        )
    one_unit = [a.arm for a in (m.control, m.treatment) if a.units is not None and 0 < a.units < 2]
    if ended:
        return text
    if one_unit:  # more runs of the same units add no independent evidence (see _power)
        arms = " and ".join(one_unit)
        text += (
            f"; the {arms} arm has trials from one unit only, so it needs trials from at least one more unit "
            "(another session, PR or user): more trials of the same units cannot decide"
        )
    elif analysis.power and analysis.power.trials_needed_total:
        more, target = analysis.power.trials_needed_total, analysis.power.target_improvement_pct
        text += f"; about {more:,} more trials give 80% power to detect the {target:g}% target"
    seq = analysis.primary.sequential
    if seq is not None and seq.active and seq.phase == "after_window":
        m = analysis.primary
        early = (
            f", measured in information: the arms' {m.control.n} control and {m.treatment.n} treatment values "
            "already carry what it plans for"
            if m.control.n + m.treatment.n < seq.window_end_trials
            else ""
        )
        text += (
            f"; the planned window ({seq.window_end_trials} trials{early}) ended without a decision: only the "
            f"e-process ({1 - WINDOW_SHARE:.0%} of alpha) can still decide, so a real but small effect may take long; "
            "consider stopping the experiment (rollback keeps the original) or starting a larger one"
        )
    return text
