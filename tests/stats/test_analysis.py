"""The whole analysis: the seed's worked example, log scale, binary primary, degenerate data."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from meta_experiment.charts import render_chart
from meta_experiment.models import MetricSpec
from meta_experiment.stats.analysis import analyze
from meta_experiment.stats.report import render_analysis
from meta_experiment.stats.results import Analysis

from .helpers import inputs

CONTROL = [45, 52, 38, 58, 32, 47, 44]
TREATMENT = [27, 30, 21, 35, 25, 28, 26]


def no_nan(analysis: Analysis) -> None:
    text = analysis.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)


def test_seed_example_waits_then_promotes_with_numbers_that_agree():
    """The seed's example (7 per arm, fixed-horizon p = 0.0009) is 20% into a 70-trial plan: the
    sequential test wants more evidence than one look's p there; twice the data decides."""
    a = analyze(inputs(CONTROL, TREATMENT, raw=True, successes={"control": 7, "treatment": 7}))
    no_nan(a)
    m = a.primary
    ref = stats.ttest_ind(TREATMENT, CONTROL)
    assert m.student.t == pytest.approx(ref.statistic, abs=1e-9) and m.student.df == 12
    assert m.improvement_pct == pytest.approx((np.mean(CONTROL) - np.mean(TREATMENT)) / np.mean(CONTROL) * 100)
    assert m.mann_whitney is not None and m.sequential.active
    s = m.sequential
    assert s.phase == "window" and s.window_end_trials == 70 and s.information_fraction == pytest.approx(0.2)
    assert s.z < s.z_boundary and s.p_value_improvement > 0.025
    assert a.decision.action == "continue" and "would look significant" in a.decision.rationale
    a = analyze(inputs(CONTROL * 2, TREATMENT * 2, raw=True, successes={"control": 14, "treatment": 14}))
    assert a.decision.action == "promote" and a.primary.sequential.p_value_improvement <= 0.025
    assert a.decision.driven_by.startswith("always-valid")
    assert [c.name for c in a.decision.criteria][:4] == [
        "Statistical significance",
        "Improvement > threshold",
        "No regression detected",
        "Sample size adequate",
    ]
    assert a.power.n_per_arm_sequential >= a.power.n_per_arm_fixed


def test_log_scale_analyses_geometric_means():
    spec = MetricSpec(name="time", direction="lower_is_better", unit="min", log_scale=True)
    a = analyze(inputs(CONTROL, TREATMENT, spec=spec, raw=True))
    m = a.primary
    assert m.scale == "log"
    ref = stats.ttest_ind(np.log(TREATMENT), np.log(CONTROL), equal_var=False)
    assert m.welch.p_value == pytest.approx(ref.pvalue, abs=1e-9)
    ratio = np.exp(np.mean(np.log(TREATMENT)) - np.mean(np.log(CONTROL)))
    assert m.improvement_pct == pytest.approx((1 - ratio) * 100, abs=1e-9)


def test_log_scale_without_log_statistics_falls_back_with_a_message():
    spec = MetricSpec(name="time", direction="lower_is_better", log_scale=True)
    a = analyze(inputs(CONTROL, TREATMENT, spec=spec))
    assert a.primary.scale == "raw" and any("log scale" in msg for msg in a.primary.messages)


def test_binary_primary():
    spec = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    a = analyze(inputs([1] * 20 + [0] * 20, [1] * 35 + [0] * 5, spec=spec, required=20))
    no_nan(a)
    assert a.primary.proportions is not None and a.primary.improvement_pct == pytest.approx(75.0)
    assert a.decision.action == "promote"


@pytest.mark.parametrize(
    "control,treatment",
    [
        ([], []),
        ([5.0], [4.0]),
        ([3.0] * 6, [3.0] * 6),
        ([3.0] * 6, [2.0] * 6),
        ([10.0, 11, 9, 10, 12, 10], [10.0, 11, 9, 10, 12, 1e9]),
        ([0.0] * 6, [0.0] * 6),
        ([10.0, 11, 9, 10, 12, 10], [10.0, 11, 9, 10, 12, 1e100]),
        ([10.0, 11, 9, 10, 12, 10], [10.0, 11, 9, 10, 12, -1.7e308]),
    ],
    ids=[
        "empty",
        "n1",
        "identical-constant",
        "constant-different",
        "huge-outlier",
        "all-zero",
        "outlier-whose-square-overflows",
        "outlier-at-the-float-limit",
    ],
)
def test_degenerate_data_gives_a_message_not_an_exception(control, treatment):
    a = analyze(inputs(control, treatment, raw=True, required=4, successes={"control": 0, "treatment": 0}))
    no_nan(a)
    assert a.decision is not None and a.decision.action in ("continue", "rollback")
    if len(control) < 2 or np.ptp(control + treatment) == 0:
        assert a.primary.messages
    if min(treatment, default=0) < -1e300:
        assert any("too large" in m for m in a.primary.messages)
    if control and treatment:  # the report and the chart draw too
        assert "nan" not in render_analysis(a, "x").lower()
        assert render_chart(a, control, treatment)[:4] == b"\x89PNG"


def test_all_failures_binary():
    spec = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    a = analyze(inputs([0] * 10, [0] * 10, spec=spec, successes={"control": 0, "treatment": 0}))
    no_nan(a)
    assert a.decision.action == "continue"
    assert any("same outcome" in m for m in a.primary.messages)


def test_guardrail_regression_blocks_promotion():
    rng = np.random.default_rng(0)
    quality = (rng.normal(10, 1, 30), rng.normal(5, 1, 30))
    guard = MetricSpec(name="issues_caught", direction="higher_is_better")
    a = analyze(
        inputs(
            rng.normal(45, 5, 30),
            rng.normal(25, 5, 30),
            secondary=[guard],
            extra={"issues_caught": quality},
            required=10,
        )
    )
    g = a.guardrails[0]
    assert g.regression_detected and g.regression_pct > 10
    assert a.decision.action == "rollback"  # the guardrail's always-valid test also fires


def test_srm_blocks_promotion():
    a = analyze(inputs(CONTROL, TREATMENT, assigned={"control": 60, "treatment": 7}))
    assert a.srm[0].mismatch and a.decision.action == "continue"
    assert "sample-ratio" in a.decision.rationale


@pytest.mark.parametrize("x_c,x_t,n", [(0, 7, 10), (3, 9, 10), (2, 11, 20), (10, 2, 20), (5, 5, 10), (0, 10, 10)])
def test_binary_always_valid_interval_agrees_with_the_decision(x_c, x_t, n):
    """The interval excludes 0 exactly when the sequential test decides, and stays within [-1, 1]
    (0/10 vs 7/10 used to give [0.18, 1.22] while the test did not decide)."""
    spec = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    control, treatment = [1] * x_c + [0] * (n - x_c), [1] * x_t + [0] * (n - x_t)
    a = analyze(inputs(control, treatment, spec=spec, required=10, successes={"control": x_c, "treatment": x_t}))
    seq = a.primary.sequential
    half = seq.alpha_per_direction
    cs = seq.confidence_sequence
    if cs is None:
        assert x_c + x_t in (0, 2 * n)
        return
    assert -1.0 <= cs.lower <= cs.upper <= 1.0
    assert (cs.lower > 0) == (seq.p_value_improvement <= half)
    assert (cs.upper < 0) == (seq.p_value_regression <= half)


def test_binary_always_valid_interval_is_not_narrowed_by_unequal_arms():
    """200 control trials at 2% against 20 treatment at 30%: the interval inverts the score test, so
    each bound is a difference the test just rejects, with the variance at the restricted maximum
    likelihood estimates (found here by brute force), and it still excludes 0 with the decision."""
    from meta_experiment.stats import binary

    spec = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    control, treatment = [1] * 4 + [0] * 196, [1] * 6 + [0] * 14
    a = analyze(inputs(control, treatment, spec=spec, required=10, successes={"control": 4, "treatment": 6}))
    seq = a.primary.sequential
    cs, zb = seq.confidence_sequence, seq.z_boundary
    for bound, side in ((cs.lower, 1), (cs.upper, -1)):
        p_c = np.linspace(max(0.0, -bound), min(1.0, 1.0 - bound), 400001)[1:-1]
        p_t = p_c + bound
        loglik = 4 * np.log(p_c) + 196 * np.log1p(-p_c) + 6 * np.log(p_t) + 14 * np.log1p(-p_t)
        i = int(np.argmax(loglik))
        var = p_t[i] * (1 - p_t[i]) / 20 + p_c[i] * (1 - p_c[i]) / 200
        assert (0.3 - 0.02 - bound) / np.sqrt(var) == pytest.approx(side * zb, abs=1e-4)
    assert cs.lower > 0 and seq.p_value_improvement <= seq.alpha_per_direction
    assert binary.score_z(4, 200, 6, 20, 0.0) == pytest.approx(binary.pooled_z(4, 200, 6, 20), rel=1e-12)


@pytest.mark.parametrize("n_c,n_t", [(30, 5), (30, 3), (12, 12), (5, 0)])
def test_trials_needed_counts_the_short_arm(n_c, n_t):
    """More trials go to both arms equally; the count is the fewest that bring n_eff = n_c n_t / (n_c + n_t)
    to the sequential size's n/2 (30 vs 5 used to say 23 more in total, fewer than one arm needs)."""
    from meta_experiment.stats import analysis as an

    a = analyze(inputs(list(np.linspace(30, 60, n_c)), list(np.linspace(20, 50, n_t)), required=10))
    p = a.power
    if n_t < 2:  # no observed variance in the treatment arm: sized from nothing, or from the control
        return
    n = p.n_per_arm_sequential
    x = p.trials_needed_per_arm
    assert p.trials_needed_total == 2 * x
    assert (n_c + x) * (n_t + x) / (n_c + n_t + 2 * x) >= n / 2 - 1e-9
    if x:
        assert (n_c + x - 1) * (n_t + x - 1) / (n_c + n_t + 2 * x - 2) < n / 2
        assert f"needs {2 * x} more trials" in p.message
    assert an._more_per_arm(30, 5, 29) == 17


def test_one_dominating_value_is_pointed_out():
    """Samuelson's bound: no value is more than (n-1)/sqrt(n) sd from the mean; a 1e14 typo among
    minutes sits at the bound, ordinary lognormal data does not."""
    typo = analyze(inputs([10.0, 11, 9, 10, 12, 10] * 2, [10.0, 11, 9, 10, 12, 1e14, 10, 11, 9, 10, 12, 10]))
    assert any("one treatment value (1e+14 min) carries nearly all" in m for m in typo.primary.messages)
    rare = analyze(inputs([0.0] * 30, [0.0] * 29 + [1.0]))  # one rare event among zeros: not a typo
    assert not any("carries nearly all" in m for m in rare.primary.messages)
    rng = np.random.default_rng(2)
    plain = analyze(inputs(list(rng.lognormal(3, 0.8, 30)), list(rng.lognormal(3, 0.8, 30))))
    assert not any("carries nearly all" in m for m in plain.primary.messages)
    # the bound itself, checked against numpy on the extreme case
    x = np.array([0.0] * 9 + [1.0])
    assert (x.max() - x.mean()) / x.std(ddof=1) == pytest.approx(9 / np.sqrt(10))


def test_a_near_zero_value_on_the_log_scale_is_pointed_out():
    from meta_experiment.stats.summary import Summary

    spec = MetricSpec(name="time", direction="lower_is_better", unit="s", log_scale=True)
    control, treatment = [30.0, 32, 28, 31, 29, 30] * 2, [5.0, 60, 12, 40, 25, 1e-300, 5.0, 60, 12, 40, 25, 30]
    logs = {("control", "time"): Summary.of(np.log(control)), ("treatment", "time"): Summary.of(np.log(treatment))}
    a = analyze(inputs(control, treatment, spec=spec, log_summaries=logs))
    assert any(
        "one treatment value (1e-300 s) carries nearly all of that arm's variance on the log scale" in m
        for m in a.primary.messages
    )


def _n_eff(c, t):
    return c * t / (c + t) if c + t else 0.0


def test_more_trials_at_an_uneven_split_worked_example():
    """30 control and 2 treatment recorded, 20% treatment, target n_eff 10: X more trials in all, 0.8 X
    to the control and 0.2 X to the treatment, solve 0.16 X^2 + (30 * 0.2 + 2 * 0.8 - 10) X + 30 * 2
    - 10 * 32 = 0.16 X^2 - 2.4 X - 260 = 0: X = (2.4 + sqrt(2.4^2 + 4 * 0.16 * 260)) / 0.32 = 48.5, so
    49 (69.2 and 11.8 trials: n_eff 10.08; with 48, 9.92)."""
    from meta_experiment.stats import analysis as an

    root = an._more_root(30, 2, 10.0, 0.2)
    assert root == pytest.approx((2.4 + math.sqrt(2.4**2 + 4 * 0.16 * 260)) / 0.32, rel=1e-12)
    assert an._more_total(30, 2, 10.0, 0.2) == 49
    assert _n_eff(30 + 0.8 * 49, 2 + 0.2 * 49) >= 10 > _n_eff(30 + 0.8 * 48, 2 + 0.2 * 48)


@pytest.mark.parametrize(
    "a,b,target,s",
    [
        (30, 2, 10.0, 0.2),
        (0, 0, 25.0, 0.1),
        (5, 40, 12.5, 0.2),
        (100, 3, 40.0, 0.05),
        (12, 12, 30.0, 0.8),
        (40, 10, 5, 0.2),
    ],
)
def test_more_trials_is_the_fewest_that_reach_the_target(a, b, target, s):
    from meta_experiment.stats import analysis as an

    x = an._more_total(a, b, target, s)
    assert _n_eff(a + (1 - s) * x, b + s * x) >= target - 1e-9
    if x:
        assert _n_eff(a + (1 - s) * (x - 1), b + s * (x - 1)) < target
    else:
        assert _n_eff(a, b) >= target


@pytest.mark.parametrize("a,b,n", [(30, 5, 29), (0, 0, 40), (12, 12, 30), (3, 50, 17), (7, 8, 101)])
def test_more_trials_at_half_is_twice_the_per_arm_formula(a, b, n):
    """At s = 1/2 the quadratic is the per-arm one with X = 2x: x^2 + (a+b-n) x + ab - n(a+b)/2 = 0."""
    from meta_experiment.stats import analysis as an

    p, q = a + b - n, a * b - n * (a + b) / 2
    x = (-p + math.sqrt(p * p - 4 * q)) / 2
    assert an._more_root(a, b, n / 2, 0.5) == pytest.approx(2 * x, rel=1e-12)
    assert an._more_per_arm(a, b, n) == math.ceil(x - 1e-9)


def _at_split(share, control, treatment, **kw):
    import dataclasses

    return dataclasses.replace(inputs(control, treatment, **kw), control_share=share)


def test_power_at_a_20_percent_treatment_split():
    """Totals at the intended split, per-arm fields None, the fixed-horizon total from statsmodels
    with ratio 1/4 (nobs1 the control arm), and the more-trials count from the quadratic."""
    from statsmodels.stats.power import tt_ind_solve_power

    from meta_experiment.models import Targets
    from meta_experiment.stats import power

    rng = np.random.default_rng(3)
    c, t = list(rng.normal(45, 15, 40)), list(rng.normal(41, 15, 10))
    a = analyze(_at_split(0.8, c, t, required=20, targets=Targets(improvement_threshold=15)))
    no_nan(a)
    p = a.power
    assert p.treatment_share == 0.2 and p.basis == "observed"
    assert p.n_per_arm_fixed is None and p.n_per_arm_sequential is None and p.trials_needed_per_arm is None
    n1 = tt_ind_solve_power(effect_size=p.effect_size, alpha=a.alpha, power=0.8, ratio=0.25)
    assert p.n_total_fixed == math.ceil(n1) + math.ceil(n1 / 4)
    n_eff = power.n_eff_sequential(p.effect_size, a.alpha / 2, 20, 0.8, 0.8)
    total = n_eff / 0.16
    n_c, n_t = math.ceil(0.8 * total), math.ceil(0.2 * total)
    assert p.n_total_sequential == n_c + n_t > p.n_total_fixed
    x = p.trials_needed_total
    target = _n_eff(n_c, n_t)
    assert _n_eff(40 + 0.8 * x, 10 + 0.2 * x) >= target > _n_eff(40 + 0.8 * (x - 1), 10 + 0.2 * (x - 1))
    assert p.message.startswith(
        f"about {n_c + n_t} trials ({n_c} control, {n_t} treatment at the 20% treatment split) give 80% power "
        "to detect a 15% improvement with the always-valid test "
        f"({p.n_total_fixed} trials, {math.ceil(n1)} control and {math.ceil(n1 / 4)} treatment, for a single "
        f"fixed-horizon test); needs {x} more trials (about {x - math.ceil(0.2 * x)} control and "
        f"{math.ceil(0.2 * x)} treatment)"
    )
    assert "per arm" not in p.message and "in each arm" not in p.message
    # the window to 140 trials is short: the suggested size's window ends where n_eff is enough
    req = p.suggested_sample_size_required
    assert req == power.required_for_window(p.effect_size, a.alpha / 2, 0.8, 0.8) and req > 20
    assert f"sample_size_required = {req} would plan up to {7 * req} trials" in p.message
    wide = analyze(_at_split(0.8, c, t, required=req, targets=Targets(improvement_threshold=15)))
    assert wide.power.suggested_sample_size_required is None
    # the same data at the even split: per-arm fields as before, totals twice them
    even = analyze(inputs(c, t, required=20, targets=Targets(improvement_threshold=15))).power
    assert even.treatment_share == 0.5 and even.n_total_fixed == 2 * even.n_per_arm_fixed
    assert even.n_total_sequential == 2 * even.n_per_arm_sequential
    assert even.trials_needed_total == 2 * even.trials_needed_per_arm
    assert even.message.startswith(f"about {even.n_per_arm_sequential} trials per arm give 80% power")


def test_power_at_an_uneven_split_keeps_each_arm_at_the_policy_floor():
    """A large effect at 10% treatment: the required total alone would leave one treatment trial, but
    no decision comes before 5 values in each arm (plan.MIN_PER_ARM), so at least 50 trials."""
    from meta_experiment.models import Targets
    from meta_experiment.stats.plan import MIN_PER_ARM

    c, t = [45.0, 52, 38, 58, 32, 47, 44, 50, 41], [20.0, 22, 18]
    p = analyze(_at_split(0.9, c, t, targets=Targets(improvement_threshold=50))).power
    assert (
        p.n_total_sequential == 45 + MIN_PER_ARM and "(45 control, 5 treatment at the 10% treatment split)" in p.message
    )
    assert p.trials_needed_total and _n_eff(9 + 0.9 * p.trials_needed_total, 3 + 0.1 * p.trials_needed_total) >= 4.5


def test_the_store_path_keeps_the_digits_a_difference_of_near_equal_means_needs():
    """From a review: values 1e9 + noise of 1e-3. The store keeps each mean as shift + shifted mean;
    their rounded sum lost up to an ulp of 1e9 (1.2e-7), 2.7e-4 of the Welch t. The difference now
    adds back what the rounding left out, and agrees with exact rational arithmetic on the values."""
    from fractions import Fraction

    from meta_experiment.analysis import summary_of
    from meta_experiment.stats import continuous
    from meta_experiment.stats.summary import mean_difference
    from meta_experiment.store import EMPTY_STATS

    rng = np.random.default_rng(11)
    arms = [list(1e9 + rng.normal(0, 1e-3, 200)), list(1e9 + 3e-4 + rng.normal(0, 1e-3, 200))]
    running = []
    for values in arms:
        r = EMPTY_STATS
        for x in values:
            r = r.add(x)
        running.append(r)
    c, t = (summary_of(r) for r in running)

    def exact(values):
        n = len(values)
        mean = sum(map(Fraction, values)) / n
        return mean, sum((Fraction(x) - mean) ** 2 for x in values) / (n - 1), n

    (mc, vc, nc), (mt, vt, nt) = exact(arms[0]), exact(arms[1])
    se = math.sqrt(float(vc / nc + vt / nt))
    want = float(mt - mc) / se
    got, _, _ = continuous.t_test(c, t)
    assert got == pytest.approx(want, rel=1e-9)
    assert mean_difference(c, t) == pytest.approx(float(mt - mc), rel=1e-9)
    assert (t.mean - c.mean) != pytest.approx(float(mt - mc), rel=1e-5)  # the rounded means alone are off
