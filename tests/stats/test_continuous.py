"""Continuous-metric tests against scipy.stats, statsmodels and hand-worked values."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.meta_analysis import effectsize_smd

from meta_experiment.stats import continuous as c
from meta_experiment.stats.summary import Summary

CONTROL = [45, 52, 38, 58, 32, 47, 44]
TREATMENT = [27, 30, 21, 35, 25, 28, 26, 31]


@pytest.fixture
def arms():
    return Summary.of(CONTROL), Summary.of(TREATMENT)


@pytest.mark.parametrize("method,equal_var", [("welch", False), ("student", True)])
def test_t_test_matches_scipy(arms, method, equal_var):
    ref = stats.ttest_ind(TREATMENT, CONTROL, equal_var=equal_var)
    t, df, p = c.t_test(*arms, method)
    assert t == pytest.approx(ref.statistic, abs=1e-9)
    assert df == pytest.approx(ref.df, abs=1e-9)
    assert p == pytest.approx(ref.pvalue, abs=1e-9)
    lo, hi = c.difference_ci(*arms, 0.95, method)
    ci = ref.confidence_interval(0.95)
    assert (lo, hi) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))


@pytest.mark.parametrize("worse_is_higher,alternative", [(True, "greater"), (False, "less")])
def test_one_sided_matches_scipy(arms, worse_is_higher, alternative):
    ref = stats.ttest_ind(TREATMENT, CONTROL, equal_var=False, alternative=alternative)
    assert c.one_sided_p(*arms, worse_is_higher) == pytest.approx(ref.pvalue, abs=1e-9)


def test_relative_lift_delta_method_worked_example():
    ctrl, trt = Summary(100, 10.0, 4.0), Summary(100, 11.0, 9.0)
    # var = 9 / (100 * 100) + 4 * 121 / (100 * 10^4) = 0.0009 + 0.000484 = 0.001384
    df = (0.09 + 0.04) ** 2 / (0.09**2 / 99 + 0.04**2 / 99)
    h = stats.t.ppf(0.975, df) * math.sqrt(0.001384)
    assert c.relative_lift(ctrl, trt) == pytest.approx(0.1, abs=1e-12)
    lo, hi = c.relative_lift_ci(ctrl, trt)
    assert (lo, hi) == (pytest.approx(0.1 - h, abs=1e-9), pytest.approx(0.1 + h, abs=1e-9))


def test_effect_sizes(arms):
    ctrl, trt = arms
    sd = math.sqrt(((ctrl.n - 1) * ctrl.variance + (trt.n - 1) * trt.variance) / (ctrl.n + trt.n - 2))
    assert c.cohens_d(ctrl, trt) == pytest.approx((trt.mean - ctrl.mean) / sd, abs=1e-12)
    g, _ = effectsize_smd(trt.mean, trt.sd, trt.n, ctrl.mean, ctrl.sd, ctrl.n)
    assert c.hedges_g(ctrl, trt) == pytest.approx(g, abs=1e-9)


@pytest.mark.parametrize(
    "ctrl,trt,needle",
    [
        (Summary(1, 3.0, 0.0), Summary(5, 2.0, 1.0), "at least 2"),
        (Summary(5, 3.0, 0.0), Summary(5, 3.0, 0.0), "constant and equal"),
        (Summary(5, 3.0, 0.0), Summary(5, 4.0, 0.0), "zero variance"),
        (Summary(0, 0.0, 0.0), Summary(0, 0.0, 0.0), "at least 2"),
    ],
)
def test_degenerate_inputs_are_explained_not_raised(ctrl, trt, needle):
    assert needle in c.why_undefined(ctrl, trt)
    assert c.t_test(ctrl, trt) is None and c.difference_ci(ctrl, trt) is None
    assert c.relative_lift_ci(ctrl, trt) is None


def test_one_zero_variance_arm_still_tests():
    ctrl, trt = Summary(5, 3.0, 0.0), Summary.of([1.0, 2.0, 3.0, 2.5, 2.0])
    with warnings.catch_warnings():  # scipy warns about the constant arm; we must not
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = stats.ttest_ind([1.0, 2.0, 3.0, 2.5, 2.0], [3.0] * 5, equal_var=False)
    assert c.t_test(ctrl, trt)[2] == pytest.approx(ref.pvalue, abs=1e-9)


def test_zero_control_mean_gives_no_relative_lift():
    assert c.relative_lift(Summary.of([-1.0, 1.0]), Summary.of([1.0, 2.0])) is None


def test_large_sample_precision():
    rng = np.random.default_rng(1)
    x, y = rng.normal(1e6, 1.0, 50_000), rng.normal(1e6 + 0.01, 1.0, 50_000)
    ref = stats.ttest_ind(y, x, equal_var=False)
    assert c.t_test(Summary.of(x), Summary.of(y))[0] == pytest.approx(ref.statistic, rel=1e-6)


@pytest.mark.parametrize("scale", [1e-90, 1e-40, 1e40, 1e80, 1e150])
def test_relative_lift_ci_does_not_depend_on_the_unit(scale):
    """The relative lift and its interval are scale-free; mu_c^4 used to underflow (ZeroDivisionError
    below 1e-77) or overflow (NaN above 1e77)."""
    ref = c.relative_lift_ci(Summary.of(CONTROL), Summary.of(TREATMENT))
    got = c.relative_lift_ci(Summary.of([x * scale for x in CONTROL]), Summary.of([x * scale for x in TREATMENT]))
    assert got == (pytest.approx(ref[0], rel=1e-9), pytest.approx(ref[1], rel=1e-9))


def test_effect_sizes_are_none_when_the_variance_overflows():
    big_c, big_t = Summary.of([x * 1e160 for x in CONTROL]), Summary.of([x * 1e160 for x in TREATMENT])
    assert math.isinf(big_c.variance)  # the precondition: the squares overflow
    assert c.cohens_d(big_c, big_t) is None and c.hedges_g(big_c, big_t) is None  # not -0.0


def test_a_variance_that_underflows_gives_a_plain_reason_not_an_exception():
    """A variance of 5e-324 (the smallest subnormal) over 8 values is 0 as a variance of the mean,
    and values around 1e-300 square to 0: both read as a unit problem, never a ZeroDivisionError
    and never 'constant' for values that differ."""
    tiny = (Summary(5, 1.0, 0.0), Summary(8, 1e-162, 5e-324))
    assert "underflows" in c.why_undefined(*tiny)
    assert c.welch_se_df(*tiny) is None and c.t_test(*tiny) is None
    small = (Summary.of([1e-300, 2e-300, 3e-300, 4e-300]), Summary.of([1e-300, 1e-300, 2e-300, 5e-300]))
    assert small[0].variance == 0.0  # the squares underflow
    assert "underflows" in c.why_undefined(*small) and "constant" not in c.why_undefined(*small)
    assert "constant" in c.why_undefined(Summary.of([2.0, 2.0]), Summary.of([3.0, 3.0]))


def test_no_relative_interval_when_the_control_mean_is_not_clearly_away_from_zero():
    """From a user test: one control value of 9,000 (a typo) among values near 10 made the delta
    method's interval of the improvement [96%, 101%] while the difference's interval spanned 0.
    Fieller's g = q^2 var(mean_c) / mean_c^2 is then above 1 (its exact interval is unbounded): no
    relative interval, and the analysis says why."""
    from meta_experiment.stats.analysis import analyze
    from stats.helpers import inputs

    control = [10.0 + 0.1 * i for i in range(14)] + [9000.0]
    treatment = [7.0 + 0.1 * i for i in range(15)]
    ctrl, trt = Summary.of(control), Summary.of(treatment)
    v_c, _, df = c.mean_variances(ctrl, trt)
    g = stats.t.ppf(0.975, df) ** 2 * v_c / ctrl.mean**2
    assert g > 1
    assert c.relative_lift_ci(ctrl, trt) is None
    lo, hi = c.difference_ci(ctrl, trt)
    assert lo < 0 < hi
    m = analyze(inputs(control, treatment)).primary
    assert m.relative_lift_ci is None and m.improvement_ci is None and m.difference_ci is not None
    assert m.sequential.confidence_sequence is not None and m.sequential.improvement_confidence_sequence is None
    assert any("Fieller" in message for message in m.messages) and m.relative_unstable
    a = analyze(inputs(control, treatment))
    [criterion] = [x for x in a.decision.criteria if x.name == "Improvement > threshold"]
    assert "unstable: the control mean 609.9 is not clearly away from 0" in criterion.detail
    assert not analyze(inputs(control[:14], treatment)).primary.relative_unstable
    # a control mean well away from 0 keeps GrowthBook's delta-method interval
    assert c.relative_lift_ci(Summary.of(control[:14]), trt) is not None
