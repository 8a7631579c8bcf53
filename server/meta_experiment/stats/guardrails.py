"""Guardrails: secondary metrics that must not regress, each with its own direction and tolerance;
one-sided tests for regression, Holm-adjusted across the family."""

from __future__ import annotations

from collections.abc import Sequence


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
