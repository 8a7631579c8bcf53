"""Pure numeric functions over sufficient statistics or arrays. No I/O, no store, no files.

Entry point: `analyze(AnalysisInputs) -> Analysis` (the decision from `policy.decide` included);
result models in `results.py`; markdown in `report.render_analysis`; the chart in
`meta_experiment.charts.render_chart`. Nothing is imported eagerly here: scipy and numpy load on the
first analysis, not when the server starts."""

from __future__ import annotations

from typing import Any

__all__ = ["AnalysisInputs", "Summary", "analyze"]


def __getattr__(name: str) -> Any:
    if name in ("AnalysisInputs", "analyze"):
        from . import analysis

        return getattr(analysis, name)
    if name == "Summary":
        from .summary import Summary

        return Summary
    raise AttributeError(name)
