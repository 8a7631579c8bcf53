"""CR2 and the Bell-McCaffrey degrees of freedom (stats/cluster.py) against their definitions
computed with dense matrices: the regression on a treatment dummy, its hat matrix, the adjustment
(I - H_gg)^(-1/2) by eigendecomposition, and the eigenvalues of G' Omega G (Imbens & Kolesar
2016, eq. 7 and sec. IV); the intra-unit correlation against the textbook ANOVA computed from the
raw values; every unit of one value against scipy's Welch test."""

import math

import numpy as np
import pytest
from scipy import stats

from meta_experiment.stats import cluster
from meta_experiment.stats.summary import Summary
from stats.helpers import anova_icc, cr2_dense


def detail_of(values, units):
    values = np.asarray(values, float)
    mean = values.mean()
    keyed = [u for u in units if u is not None]
    names = list(dict.fromkeys(keyed))
    sizes = np.array([sum(1 for u in units if u == name) for name in names], float)
    sums = np.array([values[[u == name for u in units]].sum() for name in names])
    singles = [v for v, u in zip(values, units, strict=True) if u is None]
    return cluster.UnitDetail.of(sizes, sums - mean * sizes, len(singles), float(sum((v - mean) ** 2 for v in singles)))


def arm_of(values, units):
    return len(values), float(np.var(values, ddof=1)), detail_of(values, units)


def sticky(rng, n, icc, new_share=0.3, none_share=0.0):
    levels, units, values = [], [], []
    for _ in range(n):
        if rng.random() < none_share:
            units.append(None)
            values.append(float(rng.normal()))
            continue
        if not levels or rng.random() < new_share:
            levels.append(float(rng.normal(0, math.sqrt(icc))))
        k = len(levels) - 1 if rng.random() < new_share else int(rng.integers(len(levels)))
        units.append(f"u{k}")
        values.append(levels[k] + float(rng.normal(0, math.sqrt(1 - icc))))
    return values, units


CASES = [  # (n per arm, icc, new-unit share, share of trials without a unit, seed)
    (12, 0.3, 0.3, 0.0, 1),
    (35, 0.3, 0.3, 0.0, 2),
    (40, 0.1, 0.5, 0.2, 3),
    (25, 0.8, 0.15, 0.0, 4),  # a few big units
    (30, 0.0, 0.9, 0.5, 5),  # mostly single values
]


@pytest.mark.parametrize("n,icc,new_share,none_share,seed", CASES)
@pytest.mark.parametrize("rho", [0.0, 0.35, 1.0])
def test_se_and_df_match_the_dense_definitions(n, icc, new_share, none_share, seed, rho):
    rng = np.random.default_rng(seed)
    vc, uc = sticky(rng, n, icc, new_share, none_share)
    vt, ut = sticky(rng, n + 3, icc, new_share, none_share)
    ref_se, ref_df = cr2_dense(vc, uc, vt, ut, rho)
    control, treatment = arm_of(vc, uc), arm_of(vt, ut)
    var = cluster.cr2_variance(control[2], n) + cluster.cr2_variance(treatment[2], n + 3)
    assert math.sqrt(var) == pytest.approx(ref_se, rel=1e-9)
    tr_c, fr_c = cluster.bm_terms(control[2], n, rho)
    tr_t, fr_t = cluster.bm_terms(treatment[2], n + 3, rho)
    a, b = control[1], treatment[1]
    assert (a * tr_c + b * tr_t) ** 2 / (a * a * fr_c + b * b * fr_t) == pytest.approx(ref_df, rel=1e-8)


def test_one_dominant_unit_matches_dense():
    """One unit holds 45 of 50 values: the closed form must not lose the norm to cancellation."""
    rng = np.random.default_rng(7)
    vc = list(rng.normal(size=50))
    uc = ["big"] * 45 + [f"s{i}" for i in range(5)]
    vt = list(rng.normal(size=30))
    ut = [f"t{i % 10}" for i in range(30)]
    for rho in (0.0, 0.5, 0.99):
        ref_se, ref_df = cr2_dense(vc, uc, vt, ut, rho)
        control, treatment = arm_of(vc, uc), arm_of(vt, ut)
        se = math.sqrt(cluster.cr2_variance(control[2], 50) + cluster.cr2_variance(treatment[2], 30))
        assert se == pytest.approx(ref_se, rel=1e-9)
        tr_c, fr_c = cluster.bm_terms(control[2], 50, rho)
        tr_t, fr_t = cluster.bm_terms(treatment[2], 30, rho)
        a, b = control[1], treatment[1]
        assert (a * tr_c + b * tr_t) ** 2 / (a * a * fr_c + b * b * fr_t) == pytest.approx(ref_df, rel=1e-8)


def test_every_unit_of_one_value_is_welch():
    rng = np.random.default_rng(11)
    vc, vt = rng.normal(10, 2, 9), rng.normal(11, 5, 14)
    var_c, var_t, df = cluster.mean_variances_df(arm_of(vc, [f"c{i}" for i in range(9)]), arm_of(vt, [None] * 14))
    ref = stats.ttest_ind(vt, vc, equal_var=False)
    assert (vt.mean() - vc.mean()) / math.sqrt(var_c + var_t) == pytest.approx(ref.statistic, rel=1e-10)
    assert df == pytest.approx(ref.df, rel=1e-10)


def test_intra_unit_correlation_matches_the_anova_estimator():
    rng = np.random.default_rng(3)
    arms = [sticky(rng, 60, 0.4, 0.25, 0.1), sticky(rng, 45, 0.4, 0.25, 0.1)]
    expected = anova_icc(arms)
    assert 0 < expected < 1
    got = cluster.intra_unit_correlation([arm_of(v, u) for v, u in arms])
    assert got == pytest.approx(expected, rel=1e-9)


def test_correlation_is_clipped_and_degenerate_cases_give_none():
    # units with identical values and no spread between them: MSB < MSW gives 0, not a negative rho
    a = arm_of([1.0, 2.0, 1.0, 2.0], ["x", "x", "y", "y"])
    assert cluster.intra_unit_correlation([a, a]) == 0.0
    # one unit holds every value of an arm: no finite CR2
    whole = arm_of([1.0, 2.0, 3.0], ["x", "x", "x"])
    assert cluster.mean_variances_df(whole, a) is None
    # both arms constant
    flat = arm_of([2.0, 2.0, 2.0, 2.0], ["x", "x", "y", "y"])
    assert cluster.mean_variances_df(flat, flat) is None


def test_summary_of_units_carries_the_detail():
    values = [3.0, 4.0, 8.0, 1.0, 2.0, 9.0]
    units = ["a", "a", "b", None, "b", "c"]
    s = Summary.of_units(values, units)
    ref = detail_of(values, units)
    assert s.units is not None
    assert s.units.clusters == ref.clusters == 4
    assert cluster.cr2_variance(s.units, s.n) == pytest.approx(cluster.cr2_variance(ref, 6), rel=1e-12)
    assert s.units.between_ss == pytest.approx(ref.between_ss, rel=1e-12)
