"""Two-proportion tests against statsmodels and scipy."""

import pytest
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from meta_experiment.stats import binary as b
from meta_experiment.stats.analysis import analyze

CASES = [(30, 100, 45, 100), (3, 12, 9, 11), (120, 400, 90, 380), (0, 10, 4, 10)]


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", CASES)
def test_pooled_z_matches_statsmodels(x_c, n_c, x_t, n_t):
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c])
    assert b.pooled_z(x_c, n_c, x_t, n_t) == pytest.approx(z, abs=1e-9)
    assert b.z_test_p(b.pooled_z(x_c, n_c, x_t, n_t)) == pytest.approx(p, abs=1e-9)
    z1, p1 = proportions_ztest([x_t, x_c], [n_t, n_c], alternative="larger")
    assert b.z_test_p(z1, "larger") == pytest.approx(p1, abs=1e-9)


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", CASES)
def test_newcombe_matches_statsmodels(x_c, n_c, x_t, n_t):
    lo, hi = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", compare="diff")
    assert b.newcombe_ci(x_c, n_c, x_t, n_t) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))


@pytest.mark.parametrize("x,n", [(0, 10), (3, 10), (10, 10), (57, 200)])
def test_wilson_matches_statsmodels(x, n):
    lo, hi = proportion_confint(x, n, method="wilson")
    assert b.wilson(x, n) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_fisher_matches_scipy(alternative):
    ref = stats.fisher_exact([[9, 2], [3, 9]], alternative=alternative).pvalue
    assert b.fisher_p(3, 12, 9, 11, alternative) == pytest.approx(ref, abs=1e-12)


def test_small_counts_need_exact():
    assert b.needs_exact(1, 10, 4, 10)
    assert not b.needs_exact(30, 100, 45, 100)


def test_all_failures_is_no_evidence():
    assert b.pooled_z(0, 10, 0, 10) == 0.0
    assert b.pooled_z(0, 0, 3, 10) is None
    assert b.relative_lift_ci(0, 10, 0, 10) is None


def test_cohens_h_matches_statsmodels():
    assert b.cohens_h(0.5, 0.65) == pytest.approx(proportion_effectsize(0.65, 0.5), abs=1e-12)


@pytest.mark.parametrize(
    "x_c,n_c,x_t,n_t", [*CASES[:3], (10, 20, 0, 20), (20, 20, 19, 20), (4, 20, 1, 20), (3, 63, 12, 63)]
)
def test_relative_lift_ci_is_statsmodels_log_adjusted_risk_ratio(x_c, n_c, x_t, n_t):
    lo, hi = confint_proportions_2indep(x_t, n_t, x_c, n_c, compare="ratio", method="log-adjusted")
    lift = (x_t / n_t) / (x_c / n_c) - 1  # widened to hold the observed lift (it can miss at a zero count)
    got = b.relative_lift_ci(x_c, n_c, x_t, n_t)
    assert got == (pytest.approx(min(lo - 1, lift), abs=1e-9), pytest.approx(max(hi - 1, lift), abs=1e-9))
    # never below -100%, never zero width, even at 0 or all successes in one arm (the delta method
    # gave (-1, -1) for 10/20 vs 0/20)
    assert -1 <= got[0] < got[1]


def test_relative_lift_ci_is_none_when_both_arms_always_succeed():
    assert b.relative_lift_ci(20, 20, 20, 20) is None  # the delta method gave the zero-width (0, 0)


def test_relative_lift_ci_agrees_with_the_exact_test_at_small_counts():
    """4/20 vs 1/20 errors: Fisher p = 0.34, so the ratio's interval must include no change (the
    delta method gave [-127%, -22%], which excluded it)."""
    lo, hi = b.relative_lift_ci(4, 20, 1, 20)
    assert b.fisher_p(4, 20, 1, 20) > 0.3 and lo < 0 < hi


def test_pooled_se_is_what_pooled_z_divides_by():
    se = b.pooled_se(30, 100, 45, 100)
    assert (45 / 100 - 30 / 100) / se == pytest.approx(b.pooled_z(30, 100, 45, 100), rel=1e-12)
    assert b.pooled_se(0, 10, 0, 10) is None and b.pooled_se(0, 0, 1, 10) is None


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", [(30, 100, 45, 100), (0, 10, 7, 10), (0, 10, 0, 10), (100, 200, 2, 40)])
@pytest.mark.parametrize("delta", [-0.9, -0.55, -0.1, 0.05, 0.3, 0.8])
def test_restricted_estimates_maximise_the_likelihood(x_c, n_c, x_t, n_t, delta):
    """Against a brute-force grid (the cubic's closed form picks a wrong root at zero counts)."""
    import numpy as np

    grid = np.linspace(max(0.0, -delta), min(1.0, 1.0 - delta), 200001)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = [
            np.where(x_c > 0, x_c * np.log(grid), 0.0),
            np.where(n_c - x_c > 0, (n_c - x_c) * np.log1p(-grid), 0.0),
            np.where(x_t > 0, x_t * np.log(grid + delta), 0.0),
            np.where(n_t - x_t > 0, (n_t - x_t) * np.log1p(-(grid + delta)), 0.0),
        ]
    best = grid[int(np.nanargmax(np.nan_to_num(sum(terms), nan=-np.inf)))]
    p_c, p_t = b._restricted_rates(x_c, n_c, x_t, n_t, delta)
    assert p_c == pytest.approx(best, abs=2e-5) and p_t == pytest.approx(p_c + delta, abs=1e-15)


def test_score_interval_is_symmetric_for_symmetric_data_and_inverts_the_pooled_test():
    lo, hi = b.score_interval(0, 10, 0, 10, 2.6)
    assert lo == pytest.approx(-hi, abs=1e-9)
    for table in [(3, 12, 9, 11), (4, 200, 6, 20), (10, 20, 0, 20)]:
        z = abs(b.pooled_z(*table))
        for crit in (z - 0.01, z + 0.01):
            lo, hi = b.score_interval(*table, crit)
            assert (lo > 0 or hi < 0) == (z > crit)


def test_relative_lift_ci_contains_the_observed_lift():
    lo, hi = b.relative_lift_ci(10, 100, 0, 100)  # the adjusted centre alone gave [-99.7%, -19.8%]
    assert lo == -1.0 and hi < 0


def test_every_trial_succeeding_in_both_arms_still_gets_an_interval_of_the_lift():
    """10/10 against 10/10: the log risk ratio has no variance, so the report showed 'improvement
    n/a' above a wider always-valid interval. The lift's interval is Newcombe's interval of the
    difference over the control rate (1 here), checked against statsmodels."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    from meta_experiment.models import MetricSpec
    from stats.helpers import inputs

    spec = MetricSpec(name="ok", direction="higher_is_better", kind="binary")
    a = analyze(inputs([1.0] * 10, [1.0] * 10, spec=spec))
    lo, hi = confint_proportions_2indep(10, 10, 10, 10, compare="diff", method="newcomb")
    ci = a.primary.improvement_ci
    assert ci is not None and (ci.lower, ci.upper) == pytest.approx((lo * 100, hi * 100), abs=1e-9)
    assert a.primary.relative_lift_ci.lower == pytest.approx(lo, abs=1e-9)
