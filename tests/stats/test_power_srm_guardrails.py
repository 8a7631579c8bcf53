"""Power, SRM and Holm against statsmodels and scipy."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power

from meta_experiment.stats import power, sequential
from meta_experiment.stats.analysis import analyze
from meta_experiment.stats.guardrails import holm
from meta_experiment.stats.srm import srm_check


@pytest.mark.parametrize("d,alpha", [(0.5, 0.05), (1.2, 0.05), (0.2, 0.01), (2.5, 0.2)])
def test_t_test_sample_size_matches_statsmodels(d, alpha):
    ref = tt_ind_solve_power(effect_size=d, alpha=alpha, power=0.8, ratio=1.0)
    assert power.n_fixed(d, alpha, 0.8, t_test=True) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("h,alpha", [(0.3, 0.05), (0.1, 0.05), (0.8, 0.01)])
def test_z_test_sample_size_matches_statsmodels(h, alpha):
    ref = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=0.8, ratio=1.0)
    assert power.n_fixed(h, alpha, 0.8, t_test=False) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("d", [2.3e-4, 2e-4])
def test_sample_sizes_in_the_hundreds_of_millions_are_found(d):
    """Found up to 1e9 per arm (the search once stopped at 4^14 = 2.7e8), and the analysis says them."""
    from meta_experiment.models import MetricSpec, Targets
    from meta_experiment.stats.analysis import AnalysisInputs
    from meta_experiment.stats.summary import Summary

    ref = tt_ind_solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1.0)
    assert 2.7e8 < ref < 1e9
    assert power.n_fixed(d, 0.05, 0.8, t_test=True) == pytest.approx(ref, rel=1e-9)
    assert power.n_fixed(1e-5, 0.05, 0.8, t_test=True) is None  # 1.6e11: beyond the search
    rng = np.random.default_rng(0)
    c, t = rng.normal(0, 1, 30), rng.normal(0, 1, 30)
    c = (c - c.mean()) / c.std(ddof=1) * 1000 + 10  # sd 1000, mean 10: a 2.3% target is d = 2.3e-4
    t = (t - t.mean()) / t.std(ddof=1) * 1000 + 10.5
    recorded = {"control": 30, "treatment": 30}
    a = analyze(
        AnalysisInputs(
            primary=MetricSpec(name="m", direction="higher_is_better"),
            targets=Targets(improvement_threshold=d * 1e4),
            summaries={("control", "m"): Summary.of(c), ("treatment", "m"): Summary.of(t)},
            assigned=recorded,
            recorded=recorded,
            sample_size_required=10**6,
            now=1.0,
            started_at=0.0,
            max_duration_days=14,
        )
    )
    fixed = a.power.n_per_arm_fixed
    assert fixed is not None and fixed == math.ceil(tt_ind_solve_power(effect_size=d, alpha=0.05, power=0.8))
    if a.power.n_per_arm_sequential is not None:  # at 2.3e-4: within 1e9 for the always-valid test too
        assert f"({fixed:,} per arm for a single fixed-horizon test)" in a.power.message
    else:  # at 2e-4 it needs more
        assert a.power.message.startswith("the target improvement is too small to detect")
    assert (a.power.n_per_arm_sequential is not None) == (d > 2.2e-4)


def _t_power_by_integral(d, n, alpha):
    """Power of the two-sided t-test at n per arm, independently of scipy's noncentral t: T = (Z +
    nc) / S with S ~ chi(df) / sqrt(df), so P(|T| > c) = E[Phi(nc - c S) + Phi(-nc - c S)]."""
    from scipy import integrate

    df, nc = 2 * n - 2, d * math.sqrt(n / 2)
    crit = stats.t.isf(alpha / 2, df)
    chi = stats.chi(df)

    def f(x):
        scaled = crit * x / math.sqrt(df)
        return chi.pdf(x) * (stats.norm.cdf(nc - scaled) + stats.norm.cdf(-nc - scaled))

    return integrate.quad(f, 0, np.inf, limit=200, epsabs=1e-13)[0]


@pytest.mark.parametrize("d,alpha", [(8.0, 0.001), (8.0, 0.01), (5.0, 0.001), (10.0, 0.01), (6.0, 0.001)])
def test_large_effects_get_the_sample_size_with_the_power(d, alpha):
    """At 2-5 trials per arm scipy's noncentral t gives NaN in the far tail; the power there is still
    the noncentral t's (not the normal limit's, which had given n = 2 with 6% power at d = 8)."""
    from scipy import optimize

    n = power.n_fixed(d, alpha, 0.8, t_test=True)
    ref = optimize.brentq(lambda m: _t_power_by_integral(d, m, alpha) - 0.8, 2.0, 50.0, xtol=1e-12)
    assert n == pytest.approx(ref, abs=1e-6)
    assert power.t_test_power(d, n, alpha) == pytest.approx(0.8, abs=1e-8)


def test_sequential_needs_more_than_fixed():
    fixed = power.n_fixed(0.5, 0.05)
    seq = power.n_sequential(0.5, 0.025, n_required=20)
    assert seq > fixed
    assert power.n_fixed(0.0, 0.05) is None and power.n_sequential(0.0, 0.025, 20) is None


@pytest.mark.parametrize(
    "c,t,share",
    [(50, 50, 0.5), (520, 480, 0.5), (700, 300, 0.5), (30, 70, 0.3), (2600, 2400, 0.5), (3100, 1900, 0.6)],
)
def test_srm_matches_scipy(c, t, share):
    """The chi-square statistic always; the p-value is the exact binomial test's up to 2,000 trials
    (scipy.stats.binomtest), the chi-square's beyond (scipy.stats.chisquare)."""
    ref = stats.chisquare([c, t], [(c + t) * share, (c + t) * (1 - share)])
    res = srm_check("assigned", c, t, share)
    assert res.chi2 == pytest.approx(ref.statistic, abs=1e-9)
    if c + t <= 2000:
        p = stats.binomtest(t, c + t, 1 - share).pvalue
        assert res.test == "exact binomial" and res.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)
    else:
        p = ref.pvalue
        assert res.test == "chi-square" and res.p_value == pytest.approx(p, abs=1e-12)
    assert res.mismatch == (p < 0.001)


def test_srm_without_trials():
    res = srm_check("assigned", 0, 0)
    assert res.p_value is None and not res.mismatch


def test_holm_matches_statsmodels():
    ps = [0.01, 0.04, 0.03, 0.5, 0.001]
    ref = multipletests(ps, method="holm")[1]
    assert holm(ps) == pytest.approx(list(ref), abs=1e-12)
    assert holm([None, 0.02, None]) == [None, 0.02, None]


@pytest.mark.parametrize("t_test", [True, False])
@pytest.mark.parametrize("d", [0.2, 0.5, 1.0, 1.8])
def test_suggested_required_gives_the_power_at_the_window_end(d, t_test):
    """At the window's end boundary A is a one-sided test at 0.8 * 2.5% / 2 = 1%: Welch's t mapped to
    z at its degrees of freedom is a one-sided t-test there (statsmodels' TTestIndPower), a rate's
    pooled z a z-test (NormalIndPower). Its power reaches 80% with the suggested
    sample_size_required, and not with one less."""
    from statsmodels.stats.power import TTestIndPower

    req = power.required_for_window(d, 0.025, t_test=t_test)
    per_arm = lambda r: sequential.PLAN_MULTIPLE * r / 2  # noqa: E731  (n per arm at the window's end)
    ref = TTestIndPower() if t_test else NormalIndPower()
    assert ref.power(effect_size=d, nobs1=per_arm(req), alpha=0.01, alternative="larger") >= 0.8
    if req > 2:
        assert ref.power(effect_size=d, nobs1=per_arm(req - 1), alpha=0.01, alternative="larger") < 0.8
    n_sm = ref.solve_power(effect_size=d, alpha=0.01, power=0.8, alternative="larger")  # per arm
    assert req == max(2, math.ceil(2 * n_sm / sequential.PLAN_MULTIPLE - 1e-6))


def _crossing_by_scipy(d: float, n_c: float, n_t: float, z_bound: float) -> float:
    """P(T > t_b): T noncentral t with df = n_c + n_t - 2 and noncentrality d sqrt(n_c n_t / (n_c +
    n_t)), t_b the t quantile with the normal tail of z_bound (scipy.stats.nct and t)."""
    df = n_c + n_t - 2
    return float(stats.nct.sf(stats.t.isf(stats.norm.sf(z_bound), df), df, d * math.sqrt(n_c * n_t / (n_c + n_t))))


@pytest.mark.parametrize("d,required", [(1.0, 10), (0.5, 100), (0.5, 10), (1.845, 10)])
def test_sequential_n_gives_the_power_at_its_look(d, required):
    """At the returned n per arm the statistic (Welch's t mapped to z at its degrees of freedom)
    crosses that look's boundary with probability 0.8, inside the window (first two, fourth) or
    after it (the third: the window, 35 per arm, is short for d = 0.5)."""
    n = power.n_sequential(d, 0.025, required)
    t = sequential.fraction(1, 1, required) * n
    assert sequential.in_window(t) == (required == 100 or d != 0.5)
    assert _crossing_by_scipy(d, n, n, sequential.z_boundary(t, 0.025)) == pytest.approx(0.8, abs=1e-6)
    # a rate's test is a pooled z: the normal shift d sqrt(n / 2) meets the boundary at the power quantile
    z = power.n_sequential(d, 0.025, required, t_test=False)
    t_z = sequential.fraction(1, 1, required) * z
    assert d * (z / 2) ** 0.5 - sequential.z_boundary(t_z, 0.025) == pytest.approx(stats.norm.ppf(0.8), abs=1e-4)
    assert z <= n


def test_the_sequential_sample_size_delivers_its_power_in_simulation():
    """From a stats review: at d = 1.845 with sample_size_required 10 the report said about 12 per
    arm give 80% power; the real test, looking after every pair from 5 per arm, had crossed by 12
    in 64% of simulated experiments (the normal approximation ignored the t's few degrees of
    freedom). At the n it gives now (15: the power at that look alone, so an upper bound), at least
    80% have (1,000 seeded experiments; standard error about 1.2 points)."""
    from meta_experiment.models import MetricSpec
    from meta_experiment.stats.metric import Design, MetricData, analyze_metric
    from meta_experiment.stats.summary import Summary

    d, required = 1.845, 10
    n = math.ceil(power.n_sequential(d, 0.025, required) - 1e-9)
    assert n == 15
    spec = MetricSpec(name="t", direction="lower_is_better")
    rng = np.random.default_rng(7)
    crossed = 0
    for _ in range(1000):
        c, t = rng.normal(10, 1, n), rng.normal(10 - d, 1, n)
        for k in range(5, n + 1):
            data = MetricData(spec, "primary", Summary.of(c[:k]), Summary.of(t[:k]))
            s = analyze_metric(data, Design(required, 0.025)).sequential
            if s.active and s.p_value_improvement <= 0.025:
                crossed += 1
                break
    assert crossed / 1000 >= 0.8, crossed  # (841 with this seed; 64% crossed by the old figure, 12)


def test_analysis_suggests_a_longer_plan_when_the_window_is_short():
    from meta_experiment.models import Targets

    from .helpers import inputs

    rng = np.random.default_rng(5)
    c, t = rng.normal(45, 15, 12), rng.normal(44, 15, 12)  # 15% of 45 is 0.45 sd: d = 0.45
    a = analyze(inputs(list(c), list(t), targets=Targets(improvement_threshold=15)))
    p = a.power
    assert p.suggested_sample_size_required is not None and p.suggested_sample_size_required > 10
    assert f"sample_size_required = {p.suggested_sample_size_required}" in p.message
    wide = analyze(inputs(list(c), list(t), required=p.suggested_sample_size_required))
    assert wide.power.suggested_sample_size_required is None


RATIOS = [0.25, 1 / 9, 4.0, 1.0, 19.0]  # treatment / control: 20%, 10%, 80%, 50%, 95% treatment


def _statsmodels_root(test, effect, alpha, ratio):
    """nobs1 where statsmodels' own power function equals 0.8, found to 1e-10: its solve_power
    (fsolve first) stops within about 2e-6 of it at some ratios (872.0956138 for 872.0956121)."""
    from scipy import optimize

    f = lambda n: test.power(effect_size=effect, nobs1=n, alpha=alpha, ratio=ratio) - 0.8  # noqa: E731
    near = test.solve_power(effect_size=effect, alpha=alpha, power=0.8, ratio=ratio)
    return optimize.brentq(f, near * 0.99, near * 1.01, xtol=1e-10, rtol=1e-14)  # (its nct is NaN at huge df)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("d,alpha", [(0.5, 0.05), (0.2, 0.01), (1.2, 0.05)])
def test_t_test_sample_size_at_a_ratio_matches_statsmodels(d, alpha, ratio):
    """n of the control arm (statsmodels' nobs1) with ratio * n treatment trials: df = n1 + n2 - 2,
    noncentrality d sqrt(n1 n2 / (n1 + n2))."""
    from statsmodels.stats.power import TTestIndPower

    n = power.n_fixed(d, alpha, 0.8, t_test=True, ratio=ratio)
    assert n == pytest.approx(_statsmodels_root(TTestIndPower(), d, alpha, ratio), abs=1e-6)
    assert n == pytest.approx(tt_ind_solve_power(effect_size=d, alpha=alpha, power=0.8, ratio=ratio), rel=1e-6)
    for n1 in (3.0, n / 2, n, 2 * n):  # (statsmodels gives NaN where the power is 1 to double precision)
        ref_power = TTestIndPower().power(effect_size=d, nobs1=n1, alpha=alpha, ratio=ratio)
        assert power.t_test_power(d, n1, alpha, ratio) == pytest.approx(ref_power, abs=1e-9)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("h,alpha", [(0.3, 0.05), (0.1, 0.05), (0.8, 0.01)])
def test_z_test_sample_size_at_a_ratio_matches_statsmodels(h, alpha, ratio):
    n = power.n_fixed(h, alpha, 0.8, t_test=False, ratio=ratio)
    assert n == pytest.approx(_statsmodels_root(NormalIndPower(), h, alpha, ratio), abs=1e-6)
    ref = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=0.8, ratio=ratio)
    assert n == pytest.approx(ref, rel=1e-6)
    ref_power = NormalIndPower().power(effect_size=h, nobs1=40.0, alpha=alpha, ratio=ratio)
    assert power.z_test_power(h, 40.0, alpha, ratio) == pytest.approx(ref_power, abs=1e-12)


@pytest.mark.parametrize("share", [0.8, 0.9, 0.2, 0.5])
@pytest.mark.parametrize("d,required", [(1.0, 10), (0.5, 100), (0.5, 10)])
def test_sequential_n_at_any_split_goes_through_n_eff(d, required, share):
    """N = n_eff / (s (1 - s)) trials at treatment share s: with n_c = (1 - s) N and n_t = s N the
    statistic d sqrt(n_eff) meets the boundary at the power quantile, where the information fraction
    is sequential.fraction of those arms; the control arm is n_sequential. At 50%, n per arm = 2 n_eff."""
    s = 1 - share
    n_eff = power.n_eff_sequential(d, 0.025, required, control_share=share)
    total = n_eff / (s * share)
    n_c, n_t = share * total, s * total
    assert n_c * n_t / (n_c + n_t) == pytest.approx(n_eff, rel=1e-12)
    t = sequential.fraction(n_c, n_t, required, share)
    assert t == pytest.approx(total / sequential.plan_end(required), rel=1e-12)  # t = N / window end, any split
    assert _crossing_by_scipy(d, n_c, n_t, sequential.z_boundary(t, 0.025)) == pytest.approx(0.8, abs=1e-6)
    assert power.n_sequential(d, 0.025, required, control_share=share) == pytest.approx(n_c, rel=1e-12)
    even = power.n_eff_sequential(d, 0.025, required)
    assert power.n_sequential(d, 0.025, required) == pytest.approx(2 * even, rel=1e-12)
    # t depends on N alone and the statistic on d sqrt(s (1 - s) N): the total N at share s is the
    # even split's for the effect d sqrt(4 s (1 - s))
    same = power.n_eff_sequential(d * math.sqrt(4 * s * share), 0.025, required) / 0.25
    assert total == pytest.approx(same, rel=1e-5)


@pytest.mark.parametrize("share", [0.5, 0.8, 0.9, 0.05])
@pytest.mark.parametrize("d", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("t_test", [True, False])
def test_suggested_required_at_a_split_gives_the_power_at_the_window_end(d, share, t_test):
    """As above, at an uneven split: the window ends at 7 x required trials, (1 - s) of them control."""
    from statsmodels.stats.power import TTestIndPower

    s = 1 - share
    req = power.required_for_window(d, 0.025, control_share=share, t_test=t_test)
    arms = lambda r: dict(nobs1=share * sequential.PLAN_MULTIPLE * r, ratio=s / share)  # noqa: E731
    ref = TTestIndPower() if t_test else NormalIndPower()
    assert ref.power(effect_size=d, alpha=0.01, alternative="larger", **arms(req)) >= 0.8 - 1e-9
    if req > 2:
        assert ref.power(effect_size=d, alpha=0.01, alternative="larger", **arms(req - 1)) < 0.8
