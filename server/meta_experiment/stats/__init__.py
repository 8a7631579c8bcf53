"""Pure numeric functions over sufficient statistics or arrays. No I/O, no store, no files.

Entry point: `analyze(AnalysisInputs) -> Analysis` (the decision from `policy.decide` included);
result models in `results.py`; markdown in `report.render_analysis`; the chart in
`meta_experiment.charts.render_chart`."""

from .analysis import AnalysisInputs, analyze
from .summary import Summary

__all__ = ["AnalysisInputs", "Summary", "analyze"]
