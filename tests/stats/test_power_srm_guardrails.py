"""Power, SRM and Holm against statsmodels and scipy."""

import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power

from meta_experiment.stats import power
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


def test_sequential_needs_more_than_fixed():
    fixed = power.n_fixed(0.5, 0.05)
    seq = power.n_sequential(0.5, 0.025, n_required=20)
    assert seq > fixed
    assert power.n_fixed(0.0, 0.05) is None and power.n_sequential(0.0, 0.025, 20) is None


@pytest.mark.parametrize("c,t,share", [(50, 50, 0.5), (520, 480, 0.5), (700, 300, 0.5), (30, 70, 0.3)])
def test_srm_matches_scipy_chisquare(c, t, share):
    ref = stats.chisquare([c, t], [(c + t) * share, (c + t) * (1 - share)])
    res = srm_check("assigned", c, t, share)
    assert res.chi2 == pytest.approx(ref.statistic, abs=1e-9)
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert res.mismatch == (ref.pvalue < 0.001)


def test_srm_without_trials():
    res = srm_check("assigned", 0, 0)
    assert res.p_value is None and not res.mismatch


def test_holm_matches_statsmodels():
    ps = [0.01, 0.04, 0.03, 0.5, 0.001]
    ref = multipletests(ps, method="holm")[1]
    assert holm(ps) == pytest.approx(list(ref), abs=1e-12)
    assert holm([None, 0.02, None]) == [None, 0.02, None]
