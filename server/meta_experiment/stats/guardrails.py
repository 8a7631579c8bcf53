"""Guardrails: secondary metrics that must not regress, each with its own direction and tolerance;
one-sided tests for regression, Holm-adjusted across the family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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
    """Enough values in both arms to test for a regression: 2 per arm (1 for a yes/no metric)."""
    least = 1 if m.kind == "binary" else 2
    return m.control.n >= least and m.treatment.n >= least
