"""The analysis markdown (seed layout) and the PNG chart."""

import re

import numpy as np
import pytest

from meta_experiment.charts import lift_path, render_chart
from meta_experiment.models import MetricSpec
from meta_experiment.stats.analysis import analyze
from meta_experiment.stats.report import render_analysis

from .helpers import inputs

CONTROL = [45, 52, 38, 58, 32, 47, 44]
TREATMENT = [27, 30, 21, 35, 25, 28, 26]


def test_report_has_the_seed_sections():
    # the seed's example, twice over: enough evidence for the sequential test to promote
    a = analyze(inputs(CONTROL * 2, TREATMENT * 2, raw=True, successes={"control": 14, "treatment": 14}))
    text = render_analysis(a, "Enhanced PR review", "exp-1")
    for heading in (
        "## STATISTICAL ANALYSIS - exp-1",
        "### Data Summary",
        "**Control Group** (n=14):",
        "### Statistical Tests",
        "**Effect Size** (Cohen's d)",
        "**95% Confidence Interval**",
        "### Decision Criteria",
        "### RECOMMENDATION: PROMOTE TO PRODUCTION",
        "**Expected Impact**",
        "Student t-test",
        "Always-valid sequential test",
        "drove the decision",
        "(40% of the planned window, which ends at 70 trials)",
    ):
        assert heading in text
    assert "39.2% faster" in text and "nan" not in text.lower()


def test_report_on_degenerate_data():
    text = render_analysis(analyze(inputs([], [], required=4)), "empty")
    assert "n/a" in text and "CONTINUE" in text


def test_chart_when_the_always_valid_interval_is_unbounded():
    """Required 20,000 with 6 trials per arm: the boundary's tail underflows; the chart leaves a gap."""
    rng = np.random.default_rng(1)
    c, t = list(rng.normal(10, 2, 6)), list(rng.normal(9, 2, 6))
    a = analyze(inputs(c, t, raw=True, required=20000))
    assert render_chart(a, c, t)[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_is_png_and_matplotlib_is_lazy():
    import meta_experiment.charts as charts

    assert "matplotlib" not in charts.__dict__
    rng = np.random.default_rng(1)
    c, t = list(rng.lognormal(3.8, 0.8, 40)), list(rng.lognormal(3.5, 0.8, 40))
    a = analyze(inputs(c, t, raw=True))
    png = render_chart(a, c, t)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    path = lift_path(c, t, None, a)
    assert len(path["n"]) == len(path["lift"]) == len(path["cs_lo"]) > 30
    banded = [(lo, mid, hi) for lo, mid, hi in zip(path["lo"], path["lift"], path["hi"], strict=True) if lo == lo]
    assert all(lo <= mid <= hi for lo, mid, hi in banded)
    # only the first looks, with a control mean not yet clearly away from 0, go without a band
    assert len(banded) >= 0.9 * len(path["n"]) and path["lo"][-1] == path["lo"][-1]


def test_binary_report_gives_cohens_h():
    from statsmodels.stats.proportion import proportion_effectsize

    from meta_experiment.models import MetricSpec

    spec = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    a = analyze(inputs([1] * 9 + [0] * 21, [1] * 21 + [0] * 9, spec=spec))
    h = proportion_effectsize(0.7, 0.3)  # statsmodels: 2 asin sqrt(p1) - 2 asin sqrt(p2)
    assert abs(a.primary.cohens_h - h) < 1e-12
    text = render_analysis(a, "x")
    assert f"**Effect Size** (Cohen's h): {h:.2f} (large effect)" in text
    # 0.4 more "yes" per run x 60 runs in 3 days x 30 days
    assert "about 240 more runs with ok = yes per month" in text


def test_a_monthly_total_of_a_unitless_metric_says_when_it_means_something():
    """Tokens add up over a month's runs, a 1-5 rating does not, and a metric without a unit can be
    either: its monthly total says so. One with a unit (tokens) is totalled plainly."""
    from meta_experiment.models import MetricSpec

    score = MetricSpec(name="rating", direction="higher_is_better")
    text = render_analysis(analyze(inputs([3.0, 3.5, 3.2] * 10, [3.9, 4.1, 4.0] * 10, spec=score)), "x")
    [line] = [ln for ln in text.splitlines() if "per month" in ln]
    assert line.endswith("higher per month in total, if rating adds up across runs (a count or a cost, not a score)")
    tokens = MetricSpec(name="tokens", direction="lower_is_better", unit="tokens")
    text = render_analysis(analyze(inputs([900.0, 1100, 1000] * 10, [700.0, 800, 750] * 10, spec=tokens)), "x")
    [line] = [ln for ln in text.splitlines() if "per month" in ln]
    assert "adds up" not in line and "tokens lower per month" in line


def test_report_wording_on_awkward_data():
    negative = render_analysis(analyze(inputs([-11.1, -10.0, -9.5], [-9.0, -8.91, -9.9])), "x")
    assert "- Range: -11.1 to -9.5" in negative  # not "-11.1--9.5"
    constant = render_analysis(analyze(inputs([10.0] * 10, [5.0] * 10, required=20)), "x")
    assert "not computable yet (both arms are constant" in constant  # not "starts at the required size"
    same = render_analysis(analyze(inputs([10.0, 11.0, 12.0], [10.0, 11.0, 12.0])), "x")
    assert "**Improvement**: no change (0.0%)" in same and "-0.0" not in same


def test_log_scale_impact_names_which_mean_each_figure_is_of():
    from meta_experiment.models import MetricSpec
    from meta_experiment.stats.summary import Summary

    spec = MetricSpec(name="time", direction="lower_is_better", unit="min", log_scale=True)
    logs = {("control", "time"): Summary.of(np.log(CONTROL)), ("treatment", "time"): Summary.of(np.log(TREATMENT))}
    text = render_analysis(analyze(inputs(CONTROL, TREATMENT, spec=spec, log_summaries=logs)), "x")
    per_run = np.mean(CONTROL) - np.mean(TREATMENT)
    assert per_run > 0  # the treatment is faster
    pct = per_run / np.mean(CONTROL) * 100
    assert f"- Per run (arithmetic means): {per_run:.3g} min saved ({pct:.1f}% better)" in text
    assert re.search(r"- Typical run \(geometric means\): [0-9.]+% better", text)


def test_zero_baseline_and_draft_wording():
    from meta_experiment.models import MetricSpec

    up = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    a = analyze(inputs([0] * 30, [1] * 20 + [0] * 10, spec=up, required=10))
    text = render_analysis(a, "x")
    assert a.decision.action == "promote" and "shows an improvement over a zero baseline" in a.decision.rationale
    assert "**Improvement**: from 0 to 66.7% (better; no % change exists" in text
    assert "- Per run: 66.7% of runs against 0 in the control arm (better)" in text
    none = render_analysis(analyze(inputs([0] * 30, [0] * 30, spec=up, required=10)), "x")
    assert "**Improvement**: no change (0 in both arms)" in none and "Per run" not in none
    draft = a.model_copy(update={"experiment_status": "draft"})
    assert "RECOMMENDATION: NONE: THE EXPERIMENT HAS NOT STARTED (the data alone would say:" in render_analysis(
        draft, "x"
    )


def test_guardrail_table_says_worse_or_better_as_the_criteria_do():
    """The table's change column and the criteria say the change in the same words (a sign read
    both ways in a table of regressions), and a constant guardrail says it is untestable rather than
    quoting a p it does not have."""
    from meta_experiment.models import MetricSpec

    guard = MetricSpec(name="tests_passed", direction="higher_is_better")
    a = analyze(
        inputs(CONTROL * 2, TREATMENT * 2, secondary=[guard], extra={"tests_passed": ([10.0] * 14, [5.0] * 14)})
    )
    text = render_analysis(a, "x")
    always_valid = a.guardrails[0].always_valid_p
    row = (
        "| tests_passed | 10 -> 5 (14 / 14) | 50.0% worse | 10% | n/a | "
        + ("n/a" if always_valid is None else f"{always_valid:.4f}")
        + " | suspected: untestable, constant arms (blocks promotion) |"
    )
    assert row in text, [r for r in text.splitlines() if "tests_passed" in r]
    assert a.guardrails[0].detail.startswith("50.0% worse (tolerance 10%)")  # the criteria say it alike
    assert "| regressed? |" in text

    def row(control: list[float], treatment: list[float]) -> str:
        extra = {"tests_passed": (control, treatment)}
        text = render_analysis(analyze(inputs(CONTROL * 2, TREATMENT * 2, secondary=[guard], extra=extra)), "x")
        return next(r for r in text.splitlines() if r.startswith("| tests_passed |"))

    assert row([4.0, 6.0] * 7, [8.0, 12.0] * 7).startswith("| tests_passed | 5 -> 10 (14 / 14) | 100.0% better | 10% |")
    assert row([4.0, 6.0] * 7, [6.0, 4.0] * 7).startswith("| tests_passed | 5 -> 5 (14 / 14) | no change | 10% |")


def test_report_states_an_uneven_split_and_its_power_in_totals():
    import dataclasses

    from meta_experiment.models import Targets

    rng = np.random.default_rng(3)
    c, t = list(rng.normal(45, 15, 40)), list(rng.normal(41, 15, 10))
    plain = inputs(c, t, required=20, targets=Targets(improvement_threshold=15))
    a = analyze(dataclasses.replace(plain, control_share=0.8))
    text = render_analysis(a, "x")
    summary = text[text.index("### Data Summary") : text.index("**Control Group**")]
    assert "**Split**: 20% treatment / 80% control (intended)" in summary
    assert a.decision.action == "continue" and f"**Power**: {a.power.message}" in text
    assert f"about {a.power.n_total_sequential} trials (" in text and "per arm" not in text
    assert "**Split**" not in render_analysis(analyze(plain), "x")  # 50/50: as before
    ninety = render_analysis(analyze(dataclasses.replace(plain, control_share=0.05)), "x")
    assert "**Split**: 95% treatment / 5% control (intended)" in ninety


def test_figures_compared_with_a_threshold_never_round_onto_it():
    """From a statistics audit: 14.96% against a 15% target read '+15.0% vs 15% target ❌'; a p of
    0.02502 read '0.0250 (needs <= 0.025) ❌'. They now show the digits that tell them apart."""
    from dataclasses import replace

    from meta_experiment.models import Targets
    from meta_experiment.stats.report import fmt_confidence, fmt_p, fmt_pct
    from meta_experiment.stats.summary import Summary

    assert fmt_pct(14.96, 15) == "+14.96%" and fmt_pct(14.96) == "+15.0%" and fmt_pct(15.0, 15) == "+15.0%"
    assert fmt_pct(-10.04, -10) == "-10.04%" and fmt_pct(0.04) == "+0.04%" and fmt_pct(-0.0) == "+0.0%"
    assert fmt_pct(3e300) == "beyond +1,000,000%" and fmt_pct(-2e6) == "beyond -1,000,000%"
    assert fmt_p(0.02502, 0.025) == "0.02502" and fmt_p(0.02502) == "0.0250" and fmt_p(0.025, 0.025) == "0.0250"
    assert fmt_confidence(0.94998, 0.95) == "94.998%" and fmt_confidence(0.94998) == "95.0%"
    assert fmt_confidence(0.951, 0.95) == "95.1%"
    # from a review: the 6-decimal cap, a certainty and NaN
    assert fmt_pct(14.9999999, 15) == "+14.999999%" and fmt_pct(15.0000001, 15) == "+15.000001%"
    assert fmt_p(0.02500004, 0.025) == "0.02500004" and fmt_confidence(0.99996, 0.9999) == ">99.99%"
    assert fmt_pct(float("nan")) == "n/a"

    def with_summaries(control, treatment, targets=None):
        counts = {"control": control.n, "treatment": treatment.n}
        return replace(
            inputs([100.0], [85.0]),  # the shape; the summaries and counts replace its values
            summaries={("control", "time"): control, ("treatment", "time"): treatment},
            recorded=counts,
            assigned=counts,
            raw_values=None,
            **({"targets": targets} if targets else {}),
        )

    a = analyze(with_summaries(Summary(200, 100.0, 25.0), Summary(200, 85.04, 25.0)))
    assert a.primary.improvement_pct == pytest.approx(14.96)
    criterion = next(c for c in a.decision.criteria if c.name == "Improvement > threshold")
    assert criterion.met is False and criterion.detail == "+14.96% vs 15% target"
    assert "**Improvement**: 14.96% faster (better)" in render_analysis(a, "x")  # the headline agrees
    assert "(14.96% better)" in render_analysis(a, "x")  # and Expected Impact
    # a near-zero improvement promoted at threshold 0 does not read as "no change"
    zero = Targets(improvement_threshold=0.0)
    b = analyze(with_summaries(Summary(5000, 100.0, 0.01), Summary(5000, 99.96, 0.01), zero))
    assert b.decision.action == "promote" and "+0.04%" in b.decision.rationale
    text = render_analysis(b, "x")
    assert "no change" not in text and "0.04% faster (better)" in text and "(0.04% better)" in text


def test_identical_arms_of_a_lower_is_better_metric_improve_by_plus_zero():
    a = analyze(inputs([5.0, 6.0, 7.0], [5.0, 6.0, 7.0]))
    assert a.primary.improvement_pct == 0.0 and str(a.primary.improvement_pct) == "0.0"


def test_expected_impact_is_in_words_not_signs():
    """From a user test: '+7.56 s' per run meant faster and '-4.09 s (-39.9%)' slower, while the
    guardrail table's + is worse. The impact now says saved / lost, higher / lower and better / worse."""
    from meta_experiment.models import MetricSpec

    faster = render_analysis(analyze(inputs([40.0, 42.0, 44.0] * 4, [30.0, 32.0, 34.0] * 4)), "x")
    assert "- Per run: 10 min saved (23.8% better)" in faster
    assert "hours saved per month" in faster and "min saved per month" not in faster  # once, in hours
    latency = MetricSpec(name="latency", direction="lower_is_better", unit="ms")
    ms = render_analysis(analyze(inputs([400.0, 420.0, 440.0] * 4, [300.0, 320.0, 340.0] * 4, spec=latency)), "x")
    assert "): 24 s saved per month" in ms and "ms saved per month" not in ms  # not 24,000 ms
    slower = render_analysis(analyze(inputs([30.0, 32.0, 34.0] * 4, [40.0, 42.0, 44.0] * 4)), "x")
    assert "- Per run: 10 min lost (31.2% worse)" in slower and "hours lost per month" in slower
    score = MetricSpec(name="score", direction="higher_is_better")
    lower = render_analysis(analyze(inputs([8.0, 9.0, 10.0] * 4, [6.0, 7.0, 8.0] * 4, spec=score)), "x")
    assert "- Per run: 2 lower (22.2% worse)" in lower
    ok = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    rates = render_analysis(analyze(inputs([1.0, 0.0] * 10, [1.0, 1.0, 1.0, 0.0] * 5, spec=ok)), "x")
    assert "- Per run: 25 percentage points higher (50.0% better)" in rates


def test_the_guardrail_table_shows_each_arms_mean_and_count():
    """From a user test: the table never showed n or the arms' means or rates, so a guardrail with 3
    treatment values looked like any other."""
    from meta_experiment.models import MetricSpec

    tokens = MetricSpec(name="tokens", direction="lower_is_better")
    a = analyze(
        inputs(
            CONTROL * 2,
            TREATMENT * 2,
            secondary=[tokens],
            extra={"tokens": ([100.0, 102.0, 98.0] * 4, [110.0, 108.0, 112.0])},
            successes={"control": 12, "treatment": 10},
        )
    )
    text = render_analysis(a, "x")
    assert "| tokens | 100 -> 110 (12 / 3) |" in text
    assert f"| success_rate | 85.7% -> {10 / 14:.1%} ({len(CONTROL) * 2} / {len(TREATMENT) * 2}) |" in text


def test_the_chart_draws_no_relative_band_where_the_report_gives_none():
    """From a review: with one control value of 9,000 among values near 10 the report withholds the
    relative interval (Fieller); the chart drew [-101%, 295%]. Its last point now has the lift and no
    band, and a chart is still drawn."""
    control = [10.0 + 0.1 * i for i in range(14)] + [9000.0]
    treatment = [7.0 + 0.1 * i for i in range(15)]
    a = analyze(inputs(control, treatment))
    assert a.primary.improvement_ci is None
    path = lift_path(control, treatment, None, a)
    assert np.isfinite(path["lift"][-1]) and np.isnan(path["lo"][-1]) and np.isnan(path["cs_lo"][-1])
    early = lift_path(control[:14], treatment[:14], None, analyze(inputs(control[:14], treatment[:14])))
    assert np.isfinite(early["lo"][-1]) and np.isfinite(early["hi"][-1])  # a clear control mean keeps it
    assert render_chart(a, control, treatment)[:4] == b"\x89PNG"
    improvement = next(x for x in render_analysis(a, "x").splitlines() if x.startswith("**Improvement**"))
    assert improvement.endswith(" - unstable: the control mean is not clearly away from 0")


def test_means_an_ulp_apart_read_as_no_change_but_equal_averages_on_the_log_scale_do_not():
    """From a user test: arms equal but for float rounding printed '1.11e-14 percentage points lower'.
    From the review: on the log scale the % is of geometric means, which differ although the
    averages are equal (10 and 30 against 20 and 20), so that is a change, said as one."""
    import math

    from meta_experiment.models import MetricSpec
    from meta_experiment.stats.summary import Summary

    score = MetricSpec(name="score", direction="higher_is_better")
    c = [0.1, 0.2, 0.3] * 4
    a = analyze(inputs(c, [math.nextafter(x, 1) for x in c], spec=score))
    assert a.primary.control.mean != a.primary.treatment.mean and a.primary.improvement_pct != 0
    text = render_analysis(a, "x")
    assert "**Improvement**: no change (0.0%)" in text and "- Per run: no change (the arms' means are equal)" in text
    assert "per month" not in text  # no monthly projection of a rounding difference

    logged = MetricSpec(name="time", direction="lower_is_better", unit="min", log_scale=True)
    control, treatment = [10.0, 30.0] * 10, [20.0, 20.0] * 10
    logs = {("control", "time"): Summary.of(np.log(control)), ("treatment", "time"): Summary.of(np.log(treatment))}
    b = analyze(inputs(control, treatment, spec=logged, log_summaries=logs))
    assert b.primary.scale == "log" and b.primary.improvement_pct < -10
    text = render_analysis(b, "x")
    assert "no change" not in text and "- Typical run (geometric means):" in text


def test_tiny_means_that_differ_are_a_change():
    """From a review: means of 4e-13 and 2e-13 (a +48% change, promoted) read as "no change (0.0%)"
    under a fixed 1e-12 tolerance. Rounding is judged against the means and their spread now."""
    from meta_experiment.models import MetricSpec

    rng = np.random.default_rng(3)
    cost = MetricSpec(name="cost", direction="lower_is_better")
    c, t = 4e-13 + rng.normal(0, 1e-14, 40), 2e-13 + rng.normal(0, 1e-14, 40)
    a = analyze(inputs(list(c), list(t), spec=cost))
    assert a.primary.improvement_pct is not None and a.primary.improvement_pct > 40
    text = render_analysis(a, "x")
    assert "no change" not in text
    assert f"**Improvement**: {a.primary.improvement_pct:.1f}% lower (better)" in text


def test_a_duration_wanted_longer_is_not_saved_by_being_longer():
    """From a review: a higher_is_better metric in minutes 11.1 min longer read "11.1 min saved"."""
    from meta_experiment.models import MetricSpec

    engaged = MetricSpec(name="engaged", direction="higher_is_better", unit="min")
    longer = render_analysis(analyze(inputs([30.0, 31.0, 29.0] * 5, [41.0, 42.0, 40.0] * 5, spec=engaged)), "x")
    assert "% higher (better), 11 min longer per run" in longer and "saved" not in longer
    shorter = render_analysis(analyze(inputs([41.0, 42.0, 40.0] * 5, [30.0, 31.0, 29.0] * 5, spec=engaged)), "x")
    assert "% lower (worse), 11 min shorter per run" in shorter and "lost per run" not in shorter


def test_means_of_a_billion_half_a_unit_apart_are_a_change():
    """From a review: a tolerance of 1e-9 of the means read arms at 1e9 that differ by 0.5 (t = -2636)
    as "the arms' means are equal"."""
    from meta_experiment.models import MetricSpec

    rng = np.random.default_rng(8)
    ns = MetricSpec(name="latency", direction="lower_is_better", unit="ns")
    c, t = 1e9 + 0.5 + rng.normal(0, 1e-3, 30), 1e9 + rng.normal(0, 1e-3, 30)
    a = analyze(inputs(list(c), list(t), spec=ns))
    text = render_analysis(a, "x")
    assert "no change" not in text and "means are equal" not in text
    assert a.primary.difference == pytest.approx(float(np.mean(t) - np.mean(c)), rel=1e-6)


def test_means_near_the_value_limit_that_differ_are_a_change():
    """From a review: means of 999,999,999,999,989 and 1e15 (a 95% interval of [6.4, 15.6]) read as
    "the arms' means are equal" under a tolerance of 1e-12 of the means."""
    from meta_experiment.models import MetricSpec

    ms = MetricSpec(name="latency", direction="lower_is_better", unit="ms")
    c = [1e15 - 16.0, 1e15 - 12.0, 1e15 - 8.0, 1e15 - 10.0, 1e15 - 14.0] * 4
    t = [1e15 + 2.0, 1e15 - 2.0, 1e15, 1e15 - 4.0, 1e15 + 4.0] * 4
    a = analyze(inputs(c, t, spec=ms))
    assert a.primary.difference == pytest.approx(12.0)
    text = render_analysis(a, "x")
    assert "no change" not in text and "means are equal" not in text


def test_a_suspected_guardrail_shows_the_p_that_holds_promotion():
    """From a review: the table showed the Holm p (0.0578 here) beside "suspected: fixed-horizon p <=
    0.05"; the p that holds promotion back (0.0289, one-sided, uncorrected) is the one to show."""
    from meta_experiment.models import MetricSpec
    from meta_experiment.stats.report import fmt_p

    quality = MetricSpec(name="quality", direction="higher_is_better", max_regression=5.0)
    tokens = MetricSpec(name="tokens", direction="lower_is_better")
    rng = np.random.default_rng(1)
    flat = [100.0 + i % 3 for i in range(14)]
    extra = {
        "quality": (list(8.0 + rng.normal(0, 1.0, 14)), list(7.8 + rng.normal(0, 1.0, 14))),
        "tokens": (flat, flat),
    }
    a = analyze(inputs(CONTROL * 2, TREATMENT * 2, secondary=[quality, tokens], extra=extra))
    g = next(g for g in a.guardrails if g.name == "quality")
    assert g.regression_suspected and g.p_value is not None and g.p_value_holm is not None
    assert g.p_value <= 0.05 < g.p_value_holm  # Holm over the two guardrails doubles it
    row = next(ln for ln in render_analysis(a, "x").splitlines() if ln.startswith("| quality"))
    assert f"suspected: fixed-horizon p = {fmt_p(g.p_value)} <= 0.05 (blocks promotion)" in row


def test_a_guardrail_that_rose_reads_better_and_rounding_reads_as_no_change():
    """From a review: a success rate that rose read "changed -7.7%" in the structured detail (what
    Claude Code shows), and arms with the same values "0.000001% better" in the table."""
    from meta_experiment.models import MetricSpec

    rate = MetricSpec(name="task_success", direction="higher_is_better", kind="binary")
    bugs = MetricSpec(name="bugs_found", direction="higher_is_better")
    ones = [1.0] * 13 + [0.0] * 2
    more = [1.0] * 14 + [0.0]
    same = [3.0, 4.0, 4.0, 3.0, 4.0] * 3  # mean 3.67, summed around different shifts
    extra = {"task_success": (ones, more), "bugs_found": (same, same[::-1])}
    a = analyze(inputs(CONTROL * 2, TREATMENT * 2, secondary=[rate, bugs], extra=extra))
    details = {g.name: g.detail for g in a.guardrails}
    assert details["task_success"].startswith("7.7% better (tolerance 10%)"), details
    assert details["bugs_found"].startswith("no change (tolerance 10%)"), details
    # the store sums around shifts: arms with the same values can differ in the last digit
    from types import SimpleNamespace

    from meta_experiment.stats.report import change_words

    control, treatment = (
        SimpleNamespace(mean=3.6666666666666665, sd=0.5),
        SimpleNamespace(mean=3.666666666666667, sd=0.5),
    )
    noise = SimpleNamespace(control=control, treatment=treatment, scale="raw")
    regression = -(treatment.mean - control.mean) / control.mean * 100
    assert regression != 0 and change_words(noise, regression, 10.0) == "no change"  # not "0.000001% better"


def test_a_log_scale_guardrail_that_regressed_is_not_read_as_no_change():
    """From a review: a log-scale guardrail whose arithmetic means were equal (9/11 against 5/15)
    but whose geometric means fell 13% read "no change" while it blocked promotion: its change is
    the geometric means', which the arithmetic ones say nothing about."""
    from types import SimpleNamespace

    from meta_experiment.stats.report import change_words

    arm = SimpleNamespace(mean=10.0, sd=1.0)
    regression = 100 * (1 - (75 / 99) ** 0.5)  # geometric means sqrt(75) against sqrt(99)
    log = SimpleNamespace(control=arm, treatment=SimpleNamespace(mean=10.0, sd=5.0), scale="log")
    assert change_words(log, regression, 5.0) == "13.0% worse"
    raw = SimpleNamespace(control=arm, treatment=SimpleNamespace(mean=10.0, sd=5.0), scale="raw")
    assert change_words(raw, 1e-13, 5.0) == "no change"


# -- from a review of the analysis report (2026-11-27) ----------------------------------------------------


def test_intervals_of_thousands_read_as_the_means_do():
    """Latencies of ~8,000 ms: the means read '7,844 ms' and the interval '[-5.16e+03 ms, -565 ms]'."""
    r = np.random.default_rng(9)
    spec = MetricSpec(name="latency", direction="lower_is_better", unit="ms")
    a = analyze(inputs(list(r.normal(8000, 2500, 30)), list(r.normal(6000, 2500, 30)), spec=spec, raw=True))
    text = render_analysis(a, "x")
    assert "e+" not in text
    lower, upper = a.primary.difference_ci.lower, a.primary.difference_ci.upper
    assert f"[{lower:,.0f} ms, {upper:,.0f} ms]" in text


def test_a_rate_difference_reads_in_percentage_points_and_a_disagreement_is_explained():
    """6/12 vs 1/12 errors: the difference's interval printed as shares ([-0.672, -0.0509]) beside
    'Per run: 41.7 percentage points lower', and it excludes 0 where the %'s interval does not."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    spec = MetricSpec(name="had_error", direction="lower_is_better", kind="binary")
    a = analyze(inputs([1.0] * 6 + [0.0] * 6, [1.0] + [0.0] * 11, spec=spec))
    text = render_analysis(a, "x")
    low, high = confint_proportions_2indep(1, 12, 6, 12, method="newcomb", compare="diff")
    assert f"[{100 * low:.3g} percentage points, {100 * high:.3g} percentage points]" in text
    assert "(the two intervals use Newcombe's method for the difference, Katz's log ratio for the %" in text
    assert a.primary.improvement_ci.lower < 0 < a.primary.improvement_ci.upper and high < 0


def test_the_impact_of_a_change_whose_runs_fail_says_so():
    """Half the treatment's runs failed (no metrics recorded): the report said 'roll back' and under
    it '1.36 min saved per run, 40.8 hours saved per month'."""
    r = np.random.default_rng(14)
    a = analyze(
        inputs(
            list(r.normal(34, 3, 30)),
            list(r.normal(32.6, 3, 30)),
            successes={"control": 29, "treatment": 16},
        )
    )
    assert a.decision.action == "rollback"
    text = render_analysis(a, "x")
    assert "- Failures: 53.3% of treatment runs succeed against 96.7% of control runs" in text
    assert "- Monthly impact: none to count on: the recommendation is to roll back" in text
    assert "per month" not in text
    same = analyze(
        inputs(list(r.normal(34, 3, 30)), list(r.normal(32.6, 3, 30)), successes={"control": 29, "treatment": 29})
    )
    assert "Failures" not in render_analysis(same, "x")


def test_commit_messages_never_say_minus_zero():
    """29.5 against 29.503: the promotion's commit said 'Improvement: -0.0%', the rollback's '0.0% worse'."""
    from types import SimpleNamespace

    from meta_experiment.release_text import promote_message, rollback_message

    a = analyze(inputs([29.0, 30.0] * 10, [29.003, 30.003] * 10))
    experiment = SimpleNamespace(id="exp-1", name="n")
    assert "Improvement: -0.01% (time)" in promote_message(experiment, a, "manual", "simpler")  # type: ignore[arg-type]
    assert "Regression: 0.01% worse (time)" in rollback_message(experiment, a, "revert", "manual")  # type: ignore[arg-type]


def test_an_ended_experiment_whose_data_say_roll_back_recommends_nothing():
    """Rolled back by hand: 'RECOMMENDATION: NONE' above 'Monthly impact: none to count on: the
    recommendation is to roll back'."""
    from dataclasses import replace

    r = np.random.default_rng(14)
    data = inputs(list(r.normal(34, 3, 30)), list(r.normal(32.6, 3, 30)), successes={"control": 29, "treatment": 16})
    text = render_analysis(analyze(replace(data, experiment_status="rolled back: slower")), "x")
    assert "RECOMMENDATION: NONE" in text and "the recommendation is" not in text
    assert "- Monthly impact: none to count on: the data say roll back" in text
