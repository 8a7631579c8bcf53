"""The chart's panels as drawn (matplotlib Axes before encoding): a yes/no metric's success rates,
and the improvement's y range against wide early intervals."""

import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from meta_experiment.charts import _clipped_until, _figure, _limits, lift_path
from meta_experiment.models import MetricSpec
from meta_experiment.stats.analysis import analyze
from stats.helpers import inputs

YES_NO = MetricSpec(name="ok", direction="higher_is_better", kind="binary")


def yes_no_figure(k_c, k_t, n=10, units=None):
    c, t = [1.0] * k_c + [0.0] * (n - k_c), [1.0] * k_t + [0.0] * (n - k_t)
    a = analyze(inputs(c, t, spec=YES_NO, raw=True, successes={"control": k_c, "treatment": k_t}))
    return _figure(a, c, t, None, None, units)


@pytest.mark.parametrize(("k_c", "k_t"), [(0, 10), (10, 0), (10, 10), (0, 0), (3, 7)])
def test_a_yes_no_metric_shows_each_arms_rate_and_count(k_c, k_t):
    """From a review: control 0 of 10 against treatment 10 of 10 drew a box plot of 0s and 1s, two
    flat lines on the axis, and no improvement (none exists over 0%). Each arm now has a bar of its
    rate, its count written inside the panel, and its Wilson interval, also at 0% and 100%."""
    fig = yes_no_figure(k_c, k_t)
    rates = fig.axes[1]
    assert [bar.get_height() for bar in rates.patches] == [10.0 * k_c, 10.0 * k_t]
    low, high = rates.get_ylim()
    labels = {text.get_text(): text.get_position()[1] for text in rates.texts}
    assert set(labels) == {f"{k}/10 ({k / 10:.0%})" for k in (k_c, k_t)}
    assert all(low < y < high - 5 for y in labels.values())  # inside, with room for the text
    intervals = [c for c in rates.containers if isinstance(c, ErrorbarContainer)]
    for (_, _, (whiskers,)), k in zip((c.lines for c in intervals), (k_c, k_t), strict=True):
        ((_, lo), (_, hi)), *_ = whiskers.get_segments()
        assert lo <= 10 * k <= hi and hi - lo > 20  # 10 trials: a wide interval, also at 0% or 100%
        assert low < lo and hi < high
    assert "Wilson" in rates.get_ylabel()


def test_the_improvement_panel_says_why_it_is_empty():
    notes = [text.get_text() for text in yes_no_figure(0, 10).axes[0].texts]
    assert notes == ["no improvement % to draw:\nthe control mean is 0"]
    # every run a yes in both arms: the report's 0% with its interval (from the difference's), drawn
    assert not any("no improvement" in text.get_text() for text in yes_no_figure(10, 10).axes[0].texts)
    assert [text.get_text() for text in _continuous_figure([5.0], [4.0]).axes[0].texts] == [
        "no improvement % to draw:\ntoo few trials or no variation"
    ]


def _continuous_figure(c, t):
    return _figure(analyze(inputs(c, t, raw=True)), c, t, None, None, None)


def test_yes_no_rates_without_wilson_intervals_when_trials_share_units():
    """Trials of one unit are not independent: the per-arm Wilson interval would be too narrow."""
    rates = yes_no_figure(3, 8, units=[f"u{i % 4}" for i in range(20)]).axes[1]
    assert [bar.get_height() for bar in rates.patches] == [30.0, 80.0]
    assert not any(isinstance(c, ErrorbarContainer) for c in rates.containers)
    assert "Wilson" not in rates.get_ylabel()
    assert {text.get_text() for text in rates.texts} == {"3/10 (30%)", "8/10 (80%)"}


def wide_start():
    """40 trials per arm whose first two are far apart: the first looks' intervals span hundreds of %."""
    rng = np.random.default_rng(5)
    c = [5.0, 60.0, *rng.normal(30, 2, 38)]
    t = [4.0, 50.0, *rng.normal(27, 2, 38)]
    return analyze(inputs(c, t, raw=True, required=40)), c, t


def test_the_y_axis_follows_the_last_looks_not_the_first():
    """From a review: the first looks' intervals set the y range and the decision-relevant end of the
    path was a flat line. The range now holds the last look's estimate and both its intervals, and is
    a fraction of the first look's interval, which is cut off at the axis and said to be."""
    a, c, t = wide_start()
    path = lift_path(c, t, None, a)
    first = next(i for i, v in enumerate(path["lo"]) if math.isfinite(v))
    low, high = _limits(path)
    assert all(low < path[k][-1] < high for k in ("lift", "lo", "hi", "cs_lo", "cs_hi"))
    assert high - low < (path["hi"][first] - path["lo"][first]) / 4
    assert path["lo"][first] < low and high < path["hi"][first]
    ax = _figure(a, c, t, None, None, None).axes[0]
    assert ax.get_ylim() == (low, high)
    cut = _clipped_until(path, (low, high))
    assert path["n"][first] <= cut < path["n"][-1]
    assert ax.get_title(loc="left") == f"the path up to trial {cut:g} runs past the axis (cut off)"


def test_the_last_look_is_marked_with_its_interval():
    """A lone banded look between gaps leaves no trace of fill; the last look is marked, with its
    interval, inside the axis."""
    a, c, t = wide_start()
    path = lift_path(c, t, None, a)
    ax = _figure(a, c, t, None, None, None).axes[0]
    ((marker, _, (whiskers,)),) = (c.lines for c in ax.containers if isinstance(c, ErrorbarContainer))
    assert list(marker.get_xdata()) == [path["n"][-1]] and list(marker.get_ydata()) == [path["lift"][-1]]
    ((_, lo), (_, hi)), *_ = whiskers.get_segments()
    assert (lo, hi) == pytest.approx((path["lo"][-1], path["hi"][-1]))
    assert ax.get_xlim()[1] > path["n"][-1]  # not on the frame


def path_of(n, lift, lo, hi, cs_lo=None, cs_hi=None):
    cs_lo = cs_lo if cs_lo is not None else [math.nan] * len(n)
    cs_hi = cs_hi if cs_hi is not None else [math.nan] * len(n)
    return {"n": n, "lift": lift, "lo": lo, "hi": hi, "cs_lo": cs_lo, "cs_hi": cs_hi}


def test_limits_of_a_path_that_narrows_late():
    """Ten looks: ±1000% for the first four, ±5% around 10% after. The later half sets the range."""
    n = [float(i) for i in range(1, 11)]
    lift = [10.0] * 10
    path = path_of(
        n, lift, [-990.0] * 4 + [5.0] * 6, [1010.0] * 4 + [15.0] * 6, [-50.0] * 9 + [0.0], [70.0] * 9 + [20.0]
    )
    low, high = _limits(path)
    assert -2 < low < 0 and 20 < high < 22
    assert _clipped_until(path, (low, high)) == 9.0  # the always-valid band before the last look


def test_limits_stop_at_three_times_the_last_looks_range():
    """When the later half is still wide, the range is at most the last look's range again on each
    side (here [0, 20], so [-20, 40] before the margin), so the last interval fills a third of it."""
    n = [float(i) for i in range(1, 11)]
    path = path_of(n, [10.0] * 10, [-500.0] * 9 + [5.0], [500.0] * 9 + [15.0], cs_hi=[math.nan] * 9 + [20.0])
    assert _limits(path) == pytest.approx((-23.0, 43.0))


@pytest.mark.parametrize(
    "path",
    [
        path_of([1.0, 2.0], [0.0, 0.0], [math.nan] * 2, [math.nan] * 2),  # no band, no change: ±1
        path_of([1.0, 2.0], [5.0, 7.0], [math.nan] * 2, [math.nan] * 2),  # the lift alone
        path_of([4.0], [-3.0], [-9.0], [2.0], [math.nan], [math.inf]),  # an unbounded always-valid bound
    ],
)
def test_limits_are_finite_and_hold_the_last_estimate(path):
    low, high = _limits(path)
    assert math.isfinite(low) and math.isfinite(high) and low < min(0.0, path["lift"][-1]) <= high
    assert low < path["lift"][-1] < high


def test_limits_past_the_float_range_are_not_drawn():
    assert _limits(path_of([1.0], [1e308], [-1.7e308], [1.7e308])) is None


@pytest.mark.parametrize(("required", "line"), [(20, True), (20_000, False)])
def test_a_required_size_far_beyond_the_data_is_named_not_drawn(required, line):
    """Required 20,000 with 12 trials recorded: a line at 20,000 squeezed the whole path into the
    first pixels of the axis. Within 3x of the trials recorded it is drawn, as how far is left to go."""
    rng = np.random.default_rng(1)
    c, t = list(rng.normal(10, 2, 6)), list(rng.normal(9, 2, 6))
    ax = _figure(analyze(inputs(c, t, raw=True, required=required)), c, t, None, None, None).axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    right = ax.get_xlim()[1]
    if line:
        assert "required trials" in labels and required <= right < 2 * required
    else:
        assert "required trials: 20,000 (off the axis)" in labels and right < 20


def test_a_log_scale_path_is_drawn_when_the_control_mean_of_logs_is_0():
    """On the log scale the improvement is a ratio of geometric means: a control geometric mean of
    exactly 1 (mean of logs 0) has one, and its looks are drawn (they were skipped as a 0 mean)."""
    spec = MetricSpec(name="tokens", direction="lower_is_better", log_scale=True)
    c, t = [0.5, 2.0, 0.5, 2.0, 0.25, 4.0], [0.4, 1.5, 0.45, 1.8, 0.3, 2.5]
    path = lift_path(c, t, None, analyze(inputs(c, t, spec=spec, raw=True)))
    last = math.expm1(np.mean(np.log(t)) - np.mean(np.log(c)))
    assert path["n"][-1] == 12 and path["lift"][-1] == pytest.approx(-100 * last)
    assert 4 in path["n"]  # the look after two of each, control logs [-log 2, log 2]: mean 0


def test_the_trial_axis_has_whole_ticks_only():
    """From a user test: 20 trials drew ticks at 7.5, 12.5 and 17.5 trials recorded."""
    c, t = [10.0 + (i % 5) for i in range(11)], [9.0 + (i % 4) for i in range(11)]  # 22: ticks at 7.5 before
    ax = _figure(analyze(inputs(c, t, raw=True)), c, t, None, None, None).axes[0]
    ax.figure.canvas.draw()  # the locator places the ticks at draw time
    ticks = [x for x in ax.get_xticks() if ax.get_xlim()[0] <= x <= ax.get_xlim()[1]]
    assert len(ticks) >= 2 and all(float(x).is_integer() for x in ticks), ticks


@pytest.mark.parametrize(("k_c", "k_t", "n"), [(30, 50, 100), (3, 9, 20), (8, 2, 40)])
def test_a_yes_no_metrics_bands_are_the_reports_intervals(k_c, k_t, n):
    """From a stats review: the chart drew a rate's lift with the continuous formulas: a fixed band
    narrower than the report's interval (Katz log ratio) and none at all at 3/20 vs 9/20. Its last
    look is now the report's, both intervals, and each look is the analysis of the trials so far."""
    c, t = [1.0] * k_c + [0.0] * (n - k_c), [1.0] * k_t + [0.0] * (n - k_t)
    a = analyze(inputs(c, t, spec=YES_NO, raw=True, successes={"control": k_c, "treatment": k_t}))
    path = lift_path(c, t, None, a)
    p = a.primary
    assert path["n"][-1] == 2 * n and path["lift"][-1] == pytest.approx(p.improvement_pct, rel=1e-12)
    assert (path["lo"][-1], path["hi"][-1]) == pytest.approx((p.improvement_ci.lower, p.improvement_ci.upper))
    cs = p.sequential.improvement_confidence_sequence
    assert (path["cs_lo"][-1], path["cs_hi"][-1]) == pytest.approx((cs.lower, cs.upper))
    # an earlier look: the analysis of the trials recorded by then (interleaved)
    i = len(path["n"]) // 2
    half = int(path["n"][i]) // 2
    early = analyze(
        inputs(
            c[:half], t[:half], spec=YES_NO, raw=True, successes={"control": sum(c[:half]), "treatment": sum(t[:half])}
        )
    ).primary
    if early.improvement_pct is not None and int(path["n"][i]) % 2 == 0:
        assert path["lift"][i] == pytest.approx(early.improvement_pct, rel=1e-12)
        if early.improvement_ci is not None:
            assert path["lo"][i] == pytest.approx(early.improvement_ci.lower)


def test_a_log_scale_lift_is_capped_where_the_report_caps_it():
    """From a stats review: one control value of 1e-300 among tens made the report's improvement
    -1.03e32% and the chart's -5.2e23% (the chart capped the log ratio at 50, the report at 700)."""
    from meta_experiment.charts import render_chart

    spec = MetricSpec(name="c", direction="lower_is_better", log_scale=True)
    c = [10.0 + i % 3 for i in range(9)] + [1e-300]
    t = [8.0 + i % 3 for i in range(10)]
    order = ["control"] * 10 + ["treatment"] * 10
    a = analyze(inputs(c, t, spec=spec, raw=True))
    path = lift_path(c, t, order, a)
    assert path["lift"][-1] == pytest.approx(a.primary.improvement_pct, rel=1e-9)
    assert path["lift"][-1] < -1e31
    assert render_chart(a, c, t, order).startswith(b"\x89PNG")
