"""Rank-based comparison for skewed metrics: Mann-Whitney U with the Hodges-Lehmann shift and its
distribution-free interval. These read raw values (O(n log n)), so they stay off the hot path of
`record` and auto mode: the lifecycle passes raw values only when it asks for them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from .numeric import clip_p, z_quantile

EXACT_PAIRS = 2_000_000  # up to this many pairwise differences, sort them all


def mann_whitney(control: Sequence[float], treatment: Sequence[float]) -> tuple[float, float, str] | None:
    """(U of treatment, two-sided p, method) as scipy.stats.mannwhitneyu(treatment, control)
    (exact for small samples without ties, else normal with tie and continuity corrections)."""
    if len(control) == 0 or len(treatment) == 0:
        return None
    x, y = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if np.ptp(np.concatenate([x, y])) == 0:
        return float(x.size * y.size / 2), 1.0, "all values equal"
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    method = (
        "exact"
        if min(x.size, y.size) <= 8 and np.unique(np.concatenate([x, y])).size == x.size + y.size
        else "asymptotic"
    )
    return float(res.statistic), clip_p(res.pvalue), method


def _count_le(t_sorted: np.ndarray, c_sorted: np.ndarray, delta: float) -> int:
    """#{(i, j): t_i - c_j <= delta} = sum_i #{c_j >= t_i - delta}."""
    return int((c_sorted.size - np.searchsorted(c_sorted, t_sorted - delta, side="left")).sum())


def _count_lt(t_sorted: np.ndarray, c_sorted: np.ndarray, delta: float) -> int:
    """#{(i, j): t_i - c_j < delta} = sum_i #{c_j > t_i - delta}."""
    return int((c_sorted.size - np.searchsorted(c_sorted, t_sorted - delta, side="right")).sum())


def _bracket(t_sorted: np.ndarray, c_sorted: np.ndarray, k: int) -> tuple[float, float]:
    """A value interval likely to hold the k-th difference, from the same quantile of the
    differences of evenly spaced subsamples (verified by the caller, widened when wrong)."""
    st, sc = max(1, t_sorted.size // 1000), max(1, c_sorted.size // 1000)
    sub = np.sort(np.subtract.outer(t_sorted[::st], c_sorted[::sc]).ravel())
    q = k / (t_sorted.size * c_sorted.size)
    width = 0.02 + 6 * math.sqrt(q * (1 - q) / 1000)
    lo = sub[max(0, math.floor((q - width) * sub.size))]
    hi = sub[min(sub.size - 1, math.ceil((q + width) * sub.size))]
    return float(lo), float(hi)


def kth_difference(t_sorted: np.ndarray, c_sorted: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) pairwise difference t_i - c_j of two sorted arrays.

    Small inputs: partition all differences. Large ones: narrow a value interval [lo, hi] by
    bisection until few differences remain in it, then select among those (the selection idea of
    Johnson & Mizoguchi 1978 and Monahan 1984); each step is a vectorised O(n log m) count."""
    n_pairs = t_sorted.size * c_sorted.size
    if n_pairs <= EXACT_PAIRS:
        return float(np.partition(np.subtract.outer(t_sorted, c_sorted).ravel(), k - 1)[k - 1])
    lo, hi = _bracket(t_sorted, c_sorted, k)
    below, upto = _count_lt(t_sorted, c_sorted, lo), _count_le(t_sorted, c_sorted, hi)
    if below >= k:
        lo, below = float(t_sorted[0] - c_sorted[-1]), 0
    if upto < k:
        hi, upto = float(t_sorted[-1] - c_sorted[0]), n_pairs
    budget = max(t_sorted.size + c_sorted.size, EXACT_PAIRS)
    while upto - below > budget:  # invariant: below = #{d < lo} < k <= #{d <= hi} = upto
        mid = lo + (hi - lo) / 2
        if mid in (lo, hi):
            break
        at_most = _count_le(t_sorted, c_sorted, mid)
        if at_most >= k:
            hi, upto = mid, at_most
        else:
            lo, below = mid, _count_lt(t_sorted, c_sorted, mid)
    eps = 1e-9 * max(abs(lo), abs(hi), float(t_sorted[-1] - t_sorted[0]), 1e-300)
    if upto - below > budget:
        # lo and hi are adjacent floats: the pairs left share a few values, as when most values are
        # equal (a count that is nearly always 0, a 1-5 score). Listing them took n x m memory (12 GB
        # at 20,000 zeros per arm): select among the distinct pairs of values, weighted by how often
        # each occurs, instead.
        return _kth_of_distinct(t_sorted, c_sorted, k, lo, hi, eps)
    # candidates: for each t_i the c_j in [t_i - hi, t_i - lo], widened by a rounding margin so that
    # no pair is lost to floating point; `skipped` counts the pairs left below the window
    starts = np.searchsorted(c_sorted, t_sorted - hi - eps, side="left")
    ends = np.searchsorted(c_sorted, t_sorted - lo + eps, side="right")
    skipped = int((c_sorted.size - ends).sum())
    counts = ends - starts
    rows = np.repeat(np.arange(t_sorted.size), counts)
    cols = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(rows.size)
    diffs = t_sorted[rows] - c_sorted[cols]
    j = min(max(k - skipped - 1, 0), diffs.size - 1)
    return float(np.partition(diffs, j)[j])


def _kth_of_distinct(t_sorted: np.ndarray, c_sorted: np.ndarray, k: int, lo: float, hi: float, eps: float) -> float:
    """The k-th smallest difference, from the distinct values of each sample and their counts: the
    difference of values u and v occurs count(u) x count(v) times. The same window [lo, hi] (plus
    the rounding margin) as kth_difference, over distinct values."""
    ut, nt = np.unique(t_sorted, return_counts=True)
    uc, nc = np.unique(c_sorted, return_counts=True)
    above = np.concatenate([np.cumsum(nc[::-1])[::-1], [0]])  # above[j] = #{c values from uc[j] on}
    starts = np.searchsorted(uc, ut - hi - eps, side="left")
    ends = np.searchsorted(uc, ut - lo + eps, side="right")
    skipped = int((nt * above[ends]).sum())  # pairs below the window
    counts = ends - starts
    rows = np.repeat(np.arange(ut.size), counts)
    cols = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(rows.size)
    diffs = ut[rows] - uc[cols]
    order = np.argsort(diffs, kind="stable")
    reached = np.cumsum((nt[rows] * nc[cols])[order])
    j = min(int(np.searchsorted(reached, k - skipped, side="left")), diffs.size - 1)
    return float(diffs[order][j])


EXACT_CI_PAIRS = 2_500  # up to m x n pairs, the interval's rank comes from the exact null distribution


def u_null_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u), u = 0..mn, of the Mann-Whitney U of samples of sizes m and n under the null,
    without ties: the counts of the recursion f(u; m, n) = f(u - n; m - 1, n) + f(u; m, n - 1)
    (Mann & Whitney 1947) over C(m + n, m) equally likely arrangements."""
    # f[j] holds the counts for (i, j) while i grows; float64 is exact up to 2^53 arrangements and
    # keeps the ratios accurate beyond that
    f = [np.ones(1) for _ in range(n + 1)]  # i = 0: U = 0 in one way, for every j
    for i in range(1, m + 1):
        g = [np.ones(1)]  # j = 0: one way
        for j in range(1, n + 1):
            size = i * j + 1
            counts = np.zeros(size)
            counts[j : j + f[j].size] += f[j]  # the largest value is from the first sample: U + j
            counts[: g[j - 1].size] += g[j - 1]  # or from the second: U unchanged
            g.append(counts)
        f = g
    total = f[n]
    return np.cumsum(total) / total.sum()


def _exact_rank(m: int, n: int, level: float) -> int:
    """The largest C with P(U <= C - 1) <= (1 - level) / 2: the interval between the C-th smallest
    and the C-th largest differences covers the shift with probability >= level (Lehmann 1975,
    sec. 2.6); 0 when even C = 1 falls short."""
    cdf = u_null_cdf(m, n)
    return int(np.searchsorted(cdf, (1 - level) / 2 * (1 + 1e-12), side="right"))


def hodges_lehmann(
    control: Sequence[float], treatment: Sequence[float], level: float = 0.95
) -> tuple[float, tuple[float, float] | None]:
    """Hodges-Lehmann shift (median of all t_i - c_j; Hodges & Lehmann 1963) and its interval from
    inverting the Mann-Whitney test: the C-th smallest and C-th largest differences with
    C from the exact null distribution of U up to EXACT_CI_PAIRS pairs, else
    C = floor(mn/2 - z sqrt(mn (m + n + 1) / 12)) (Lehmann 1975, sec. 2.6; Bauer 1972, normal
    approximation). The interval is None when no such interval reaches `level` (2 against 2 to 5,
    say: the widest one, from the smallest to the largest difference, covers less)."""
    t = np.sort(np.asarray(treatment, dtype=float))
    c = np.sort(np.asarray(control, dtype=float))
    n_pairs = t.size * c.size
    if n_pairs % 2:
        shift = kth_difference(t, c, n_pairs // 2 + 1)
    else:
        shift = (kth_difference(t, c, n_pairs // 2) + kth_difference(t, c, n_pairs // 2 + 1)) / 2
    if n_pairs <= EXACT_CI_PAIRS:
        c_rank = _exact_rank(t.size, c.size, level)
    else:
        c_rank = math.floor(n_pairs / 2 - z_quantile(level) * math.sqrt(n_pairs * (t.size + c.size + 1) / 12))
    if c_rank < 1:
        return shift, None
    return shift, (kth_difference(t, c, c_rank), kth_difference(t, c, n_pairs - c_rank + 1))
