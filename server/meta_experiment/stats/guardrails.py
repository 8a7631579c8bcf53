"""Guardrails: secondary metrics that must not regress, each with its own direction and tolerance;
one-sided tests for regression, Holm-adjusted across the family."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .plan import MIN_PER_ARM

SUCCESS_METRIC = "success_rate"  # the implicit guardrail: each trial's success flag

if TYPE_CHECKING:
    from .results import MetricAnalysis


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm (1979) step-down adjusted p-values (statsmodels multipletests(method='holm')); None
    entries are skipped and stay None."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank_, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank_) * p))
        out[i] = running
    return out


def change_from_zero(m: MetricAnalysis) -> int:
    """+1 when the metric moved in its better direction from a control mean (or rate) of exactly 0,
    -1 when it moved in its worse direction, else 0. A relative change (%) is undefined there, yet
    going from 0 crashes to some crashes is a regression beyond any tolerance."""
    if m.improvement_pct is not None or not m.difference or m.control.mean != 0:
        return 0
    better = m.difference > 0 if m.direction == "higher_is_better" else m.difference < 0
    return 1 if better else -1


def has_data(m: MetricAnalysis) -> bool:
    """Enough values in both arms to clear a guardrail: the primary metric's per-arm minimum
    (plan.MIN_PER_ARM). Three treatment values against twenty say little about a regression."""
    return m.control.n >= MIN_PER_ARM and m.treatment.n >= MIN_PER_ARM


def all_worst(m: MetricAnalysis) -> bool:
    """The implicit success_rate guardrail with every treatment run failed: nothing that works to
    promote, even when every control run failed too. (Another yes/no guardrail at its worse value
    in both arms is no regression, and one worse in the treatment only is the regression test's.)"""
    return m.name == SUCCESS_METRIC and bool(m.treatment.n) and m.treatment.mean == 0.0


def arithmetic_regression(m: MetricAnalysis) -> float | None:
    """For a metric analysed on the log scale (its tests compare geometric means), the regression of
    its arithmetic means in % of the control's (positive = worse in the metric's direction), else
    None. A heavier tail can lower the typical value while raising the total: 9.7 -> 13.8 usd read
    as '36% better' by geometric means, 43% worse by arithmetic ones."""
    if m.scale != "log" or m.control.mean is None or m.treatment.mean is None or m.control.mean == 0:
        return None
    sign = 1.0 if m.direction == "higher_is_better" else -1.0
    regression = -sign * (m.treatment.mean - m.control.mean) / abs(m.control.mean) * 100 + 0.0  # never -0.0
    if not math.isfinite(regression):  # means at the float limits: the % overflows
        regression = 0.0 if math.isnan(regression) else math.copysign(1e300, regression)
    return regression
