"""The analysis chart as PNG bytes: the improvement and its intervals over the trials, and the two
arms' distributions (their shares of yes for a yes/no metric). matplotlib is imported only when a
chart is drawn (Agg backend), so the server starts without it; the numbers come from the
statistics modules."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .models import MetricSpec
from .stats import continuous, sequential
from .stats.binary import wilson
from .stats.cluster import UnitDetail
from .stats.metric import LOG_RATIO_CAP, Design, MetricData, analyze_metric
from .stats.numeric import norm_sf, t_isf
from .stats.results import Analysis
from .stats.summary import Summary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_POINTS = 200


def _summary(values: np.ndarray, units: np.ndarray | None) -> Summary:
    """Summary of the values; with their units (codes, -1 for a trial without one), clustered by
    unit as the store's sums give it (Summary.clustered)."""
    s = Summary.of(values)
    if units is None or s.n < 2:
        return s
    _, codes = np.unique(np.where(units < 0, -1 - np.arange(units.size), units), return_inverse=True)
    sums, counts = np.bincount(codes, weights=values), np.bincount(codes)
    residuals = sums - s.mean * counts
    clustered = s.clustered(
        int(codes.max()) + 1,
        float(np.sum(residuals**2)),
        float(np.sum(residuals * counts)),
        float(np.sum(counts.astype(float) ** 2)),
    )
    if not clustered.clusters:
        return clustered
    return replace(clustered, units=UnitDetail.of(counts, residuals))


def lift_path(
    control: Sequence[float],
    treatment: Sequence[float],
    order: Sequence[str] | None,
    analysis: Analysis,
    units: Sequence[str | None] | None = None,
) -> dict[str, list[float]]:
    """Improvement % with its fixed 95% interval and its always-valid interval after each trial
    (at most MAX_POINTS evenly spaced looks), recomputed from the raw values in recording order;
    `order` lists the arm of each recorded trial (else the arms are interleaved), and `units` (in
    the same order as `order`) its unit when the analysis is clustered by unit."""
    m = analysis.primary
    log = m.scale == "log" and min(min(control, default=1), min(treatment, default=1)) > 0
    xs = {
        "control": np.log(control) if log else np.asarray(control, float),
        "treatment": np.log(treatment) if log else np.asarray(treatment, float),
    }
    if order is None:
        order = [
            arm
            for i in range(max(len(control), len(treatment)))
            for arm, size in (("control", len(control)), ("treatment", len(treatment)))
            if i < size
        ]
    sign = 1.0 if m.direction == "higher_is_better" else -1.0
    total = len(order)
    looks = sorted({round(v) for v in np.linspace(1, total, min(total, MAX_POINTS))})
    counts = {
        "control": np.cumsum([a == "control" for a in order]),
        "treatment": np.cumsum([a == "treatment" for a in order]),
    }
    codes: dict[str, np.ndarray | None] = {"control": None, "treatment": None}
    if units is not None:
        index: dict[str, int] = {}
        coded = np.array([-1 if u is None else index.setdefault(u, len(index)) for u in units])
        arms = np.asarray(order)
        codes = {arm: coded[arms == arm] for arm in codes}
    alpha = analysis.alpha / 2
    share = analysis.srm[0].expected_control_share if analysis.srm else 0.5
    out: dict[str, list[float]] = {k: [] for k in ("n", "lift", "lo", "hi", "cs_lo", "cs_hi")}
    for n in looks:
        k_c, k_t = counts["control"][n - 1], counts["treatment"][n - 1]
        unit_c, unit_t = codes["control"], codes["treatment"]
        c = _summary(xs["control"][:k_c], None if unit_c is None else unit_c[:k_c])
        t = _summary(xs["treatment"][:k_t], None if unit_t is None else unit_t[:k_t])
        if m.kind == "binary":  # a rate's intervals are the report's (Katz ratio, inverted score test)
            _binary_look(out, n, c, t, m, Design(analysis.sample_size_required, alpha, share))
            continue
        mv = continuous.mean_variances(c, t)
        se_df_seq = continuous.welch_se_df(c, t, small_sample=False)  # as metric.py's always-valid test
        if mv is None or se_df_seq is None or (c.mean == 0 and not log):  # log: a ratio, whatever the mean
            continue
        d = t.mean - c.mean
        q = continuous.t_quantile(0.95, mv[2])
        half = q * math.sqrt(mv[0] + mv[1])
        se, df = se_df_seq
        frac = sequential.fraction(c.n, t.n, analysis.sample_size_required, share)
        zb = sequential.z_boundary(frac, alpha) if frac > 0 else math.inf
        # the boundary's tail probability on the t scale, as metric.py (Jennison & Turnbull 2000, 3.4)
        cs_half = t_isf(norm_sf(zb), df) * se if math.isfinite(zb) else math.inf

        def to_pct(v: float, c_mean: float = c.mean) -> float:
            rel = math.expm1(min(v, LOG_RATIO_CAP)) if log else v / abs(c_mean)
            return sign * rel * 100

        lift = to_pct(d)
        lo, hi = sorted((to_pct(d - half), to_pct(d + half)))
        if not all(math.isfinite(v) for v in (lift, lo, hi)):
            continue  # values too large for a relative change: no point to draw
        # as the report: no relative interval while the control mean is not clearly away from 0
        # (Fieller, continuous.control_too_uncertain), for the fixed and the always-valid band
        uncertain = not log and continuous.control_too_uncertain(c, mv[0], q)
        out["n"].append(float(n))
        out["lift"].append(lift)
        out["lo"].append(math.nan if uncertain else lo)
        out["hi"].append(math.nan if uncertain else hi)
        cs = sorted((to_pct(d - cs_half), to_pct(d + cs_half)))
        cs_uncertain = not log and continuous.control_too_uncertain(c, c.mean_variance, cs_half / se)
        finite = all(math.isfinite(v) for v in cs) and not cs_uncertain  # unbounded: a gap
        out["cs_lo"].append(cs[0] if finite else math.nan)
        out["cs_hi"].append(cs[1] if finite else math.nan)
    return out


def _binary_look(out: dict[str, list[float]], n: int, c: Summary, t: Summary, m: Any, design: Design) -> None:
    """One look of a yes/no primary metric: its improvement % and both intervals as the analysis
    computes them at those counts (stats.metric._binary). From a review: the continuous formulas
    had drawn a fixed band narrower than the report's and blanked it at small counts."""
    spec = MetricSpec(name=m.name, direction=m.direction, kind="binary")
    result = analyze_metric(MetricData(spec, "primary", c, t), design)
    if result.improvement_pct is None:
        return  # no control successes: no relative change
    out["n"].append(float(n))
    out["lift"].append(result.improvement_pct)
    for key, interval in (
        ("", result.improvement_ci),
        ("cs_", result.sequential.improvement_confidence_sequence if result.sequential else None),
    ):
        out[key + "lo"].append(math.nan if interval is None else interval.lower)
        out[key + "hi"].append(math.nan if interval is None else interval.upper)


def render_chart(
    analysis: Analysis,
    control: Sequence[float],
    treatment: Sequence[float],
    order: Sequence[str] | None = None,
    title: str | None = None,
    units: Sequence[str | None] | None = None,
) -> bytes:
    """PNG of (left) improvement % over trials with its 95% interval and always-valid sequence,
    (right) both arms' distributions, or for a yes/no metric their shares of yes."""
    buf = io.BytesIO()
    _figure(analysis, control, treatment, order, title, units).savefig(buf, format="png")
    return buf.getvalue()


def _figure(
    analysis: Analysis,
    control: Sequence[float],
    treatment: Sequence[float],
    order: Sequence[str] | None,
    title: str | None,
    units: Sequence[str | None] | None,
) -> Figure:
    """The chart's figure, apart from its encoding so that tests can read what each panel draws."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    m = analysis.primary
    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    path = lift_path(control, treatment, order, analysis, units)
    if path["n"]:
        ax1.fill_between(
            path["n"],
            path["cs_lo"],
            path["cs_hi"],
            alpha=0.15,
            color="tab:orange",
            label="always-valid interval",
        )
        ax1.fill_between(path["n"], path["lo"], path["hi"], alpha=0.3, color="tab:blue", label="95% CI (fixed)")
        ax1.plot(path["n"], path["lift"], color="tab:blue", label="improvement")
        # the last look marked with its interval: the band alone leaves no trace at a lone point between
        # gaps; and a margin (the bands hold the x axis to the data) keeps that mark off the frame
        n, lift, lo, hi = (path[k][-1] for k in ("n", "lift", "lo", "hi"))
        band = [[max(lift - lo, 0)], [max(hi - lift, 0)]] if math.isfinite(lo) else None
        ax1.errorbar(n, lift, yerr=band, fmt="o", ms=4, color="tab:blue", capsize=3)
        ax1.use_sticky_edges = False
        limits = _limits(path)
        if limits is not None:
            ax1.set_ylim(*limits)
            cut = _clipped_until(path, limits)
            if cut is not None:
                ax1.set_title(f"the path up to trial {cut:g} runs past the axis (cut off)", fontsize=8, loc="left")
    recorded = len(control) + len(treatment)
    required = analysis.sample_size_required
    # a required size far beyond the trials recorded would squeeze the path against the left edge:
    # then the legend gives it in words instead of a line
    on_axis = required <= REQUIRED_ON_AXIS * recorded
    if not path["n"]:
        ax1.set_xlim(0, (max(recorded, required) if on_axis else recorded) * 1.05)
        why = "the control mean is 0" if len(control) and np.mean(control) == 0 else "too few trials or no variation"
        ax1.text(0.5, 0.5, f"no improvement % to draw:\n{why}", ha="center", va="center", transform=ax1.transAxes)
    ax1.axhline(0, color="grey", lw=0.8)
    if on_axis:
        ax1.axvline(required, color="grey", ls=":", lw=0.8, label="required trials")
    else:
        ax1.plot([], [], " ", label=f"required trials: {required:,} (off the axis)")
    ax1.set_xlabel("trials recorded")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no tick at 7.5 trials
    ax1.set_ylabel(f"improvement of {m.name} (%)")
    ax1.legend(fontsize=8, loc="best")
    data = [np.asarray(control, float), np.asarray(treatment, float)]
    # matplotlib's axis arithmetic overflows long before the float range ends
    plottable = all(v.size for v in data) and bool(np.abs(np.concatenate(data)).max() <= PLOT_LIMIT)
    if all(v.size for v in data) and not plottable:
        ax2.text(0.5, 0.5, "values too large to plot", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_ylabel(f"{m.name}{f' ({m.unit})' if m.unit else ''}")  # the rates panel names its own
    if plottable and m.kind == "binary":
        _rates(ax2, data, m.name, independent=units is None)
    elif plottable:
        ax2.boxplot(data, showfliers=True)
        ax2.set_xticks([1, 2], [f"control (n={data[0].size})", f"treatment (n={data[1].size})"])
        rng = np.random.default_rng(0)
        for i, v in enumerate(data, start=1):
            shown = v if v.size <= 2000 else rng.choice(v, 2000, replace=False)
            ax2.scatter(i + rng.uniform(-0.12, 0.12, shown.size), shown, s=6, alpha=0.4)
        if m.scale == "log" and min(v.min() for v in data) > 0:
            ax2.set_yscale("log")
    fig.suptitle(title or f"{m.name}: {analysis.decision.action if analysis.decision else 'analysis'}")
    fig.tight_layout()
    return fig


def _rates(ax: Axes, data: list[np.ndarray], name: str, independent: bool) -> None:
    """Each arm's share of yes (1) as a bar labelled with its count, so that 0% and 100% read as
    clearly as any rate (a box plot of 0s and 1s collapses to lines on the axis); with each rate's
    Wilson interval while the trials are independent (not clustered by unit)."""
    for i, v in enumerate(data):
        k, n = int(np.count_nonzero(v)), v.size
        rate = label_at = 100 * k / n
        ax.bar(i, rate, width=0.6, color=f"C{i}", alpha=0.6, edgecolor=f"C{i}")
        if independent:
            lo, hi = (100 * b for b in wilson(k, n))  # rounding can put a bound a hair past 0% or 100%
            ax.errorbar(i, rate, yerr=[[max(rate - lo, 0)], [max(hi - rate, 0)]], fmt="o", color="k", capsize=4)
            label_at = hi
        ax.text(i, label_at + 2, f"{k}/{n} ({k / n:.0%})", ha="center", va="bottom")
    ax.set_xticks([0, 1], [f"control (n={data[0].size})", f"treatment (n={data[1].size})"])
    ax.set_ylim(-3, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(f"trials with {name} = yes (%)" + (", 95% Wilson interval" if independent else ""))


PLOT_LIMIT = 1e100  # largest |value| the distribution panel draws
REQUIRED_ON_AXIS = 3  # the required size is drawn as a line up to this many times the trials recorded
SERIES = ("lift", "lo", "hi", "cs_lo", "cs_hi")  # what lift_path gives at each look


def _limits(path: dict[str, list[float]]) -> tuple[float, float] | None:
    """y range that keeps the last look readable: 0, its estimate and both its intervals, widened
    to the estimates and fixed intervals of the later half of the trials by at most that range again
    on each side. The first looks' intervals (and the always-valid ones before the last) can be many
    times wider, or unbounded, and would flatten the rest of the path: they run past the axis. None
    when the range is not drawable."""
    last = [v for v in (0.0, *(path[k][-1] for k in SERIES)) if math.isfinite(v)]
    lo, hi = min(last), max(last)
    reach = hi - lo or 1.0
    half = [i for i, n in enumerate(path["n"]) if n >= path["n"][-1] / 2]
    later = [path[k][i] for k in ("lift", "lo", "hi") for i in half if math.isfinite(path[k][i])]
    lo, hi = max(min([lo, *later]), lo - reach), min(max([hi, *later]), hi + reach)
    pad = 0.05 * (hi - lo) or 1.0
    return (lo - pad, hi + pad) if math.isfinite(lo - pad) and math.isfinite(hi + pad) else None


def _clipped_until(path: dict[str, list[float]], limits: tuple[float, float]) -> float | None:
    """Trials at the last look drawn past the limits (None when all is inside), for the chart to say
    that the early path is cut off."""
    out = [
        n
        for i, n in enumerate(path["n"])
        if any(not limits[0] <= path[k][i] <= limits[1] for k in SERIES if math.isfinite(path[k][i]))
    ]
    return max(out, default=None)
