"""Mann-Whitney and Hodges-Lehmann against scipy and brute force."""

import math

import numpy as np
import pytest
from scipy import stats

from meta_experiment.stats import rank


@pytest.mark.parametrize("n_c,n_t", [(5, 7), (30, 40)])
def test_mann_whitney_matches_scipy(n_c, n_t):
    rng = np.random.default_rng(n_c)
    c, t = rng.lognormal(size=n_c), rng.lognormal(0.3, size=n_t)
    ref = stats.mannwhitneyu(t, c, alternative="two-sided")
    u, p, _ = rank.mann_whitney(c, t)
    assert u == pytest.approx(ref.statistic, abs=1e-9) and p == pytest.approx(ref.pvalue, abs=1e-9)


def test_hodges_lehmann_is_median_of_pairwise_differences():
    rng = np.random.default_rng(2)
    c, t = rng.lognormal(size=40), rng.lognormal(0.5, size=31)
    diffs = np.sort(np.subtract.outer(t, c).ravel())
    shift, (lo, hi) = rank.hodges_lehmann(c, t)
    assert shift == pytest.approx(np.median(diffs), abs=1e-12)
    mn = diffs.size
    k = math.floor(mn / 2 - stats.norm.ppf(0.975) * math.sqrt(mn * (40 + 31 + 1) / 12))
    assert (lo, hi) == (diffs[k - 1], diffs[mn - k])


def test_hodges_lehmann_interval_inverts_the_rank_test():
    """Shifts just inside the interval are not rejected by the asymptotic Mann-Whitney test at 5%
    (no continuity correction), shifts well outside are."""
    rng = np.random.default_rng(3)
    c, t = rng.normal(size=60), rng.normal(0.4, size=60)
    _, (lo, hi) = rank.hodges_lehmann(c, t)

    def p(shift):
        return stats.mannwhitneyu(t - shift, c, use_continuity=False, method="asymptotic").pvalue

    span = hi - lo
    assert p(lo + 0.02 * span) > 0.05 and p(hi - 0.02 * span) > 0.05
    assert p(lo - 0.2 * span) < 0.05 and p(hi + 0.2 * span) < 0.05


def test_selection_path_matches_brute_force(monkeypatch):
    monkeypatch.setattr(rank, "EXACT_PAIRS", 100)
    rng = np.random.default_rng(4)
    t, c = np.sort(rng.lognormal(size=700)), np.sort(rng.lognormal(size=500))
    diffs = np.sort(np.subtract.outer(t, c).ravel())
    for k in (1, 2, 1000, diffs.size // 2, diffs.size - 1, diffs.size):
        assert rank.kth_difference(t, c, k) == diffs[k - 1]


def test_degenerate():
    assert rank.mann_whitney([], [1.0]) is None
    assert rank.mann_whitney([2.0, 2.0], [2.0, 2.0])[1] == 1.0
    shift, ci = rank.hodges_lehmann([1.0], [2.0])
    assert shift == 1.0 and ci is None
