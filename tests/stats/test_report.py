"""The analysis markdown (seed layout) and the PNG chart."""

import numpy as np

from meta_experiment.charts import lift_path, render_chart
from meta_experiment.stats.analysis import analyze
from meta_experiment.stats.report import render_analysis

from .helpers import inputs

CONTROL = [45, 52, 38, 58, 32, 47, 44]
TREATMENT = [27, 30, 21, 35, 25, 28, 26]


def test_report_has_the_seed_sections():
    # the seed's example, twice over: enough evidence for the sequential test to promote
    a = analyze(inputs(CONTROL * 2, TREATMENT * 2, raw=True, successes={"control": 14, "treatment": 14}))
    text = render_analysis(a, "Enhanced PR review", "exp-1")
    for heading in (
        "## STATISTICAL ANALYSIS - exp-1",
        "### Data Summary",
        "**Control Group** (n=14):",
        "### Statistical Tests",
        "**Effect Size** (Cohen's d)",
        "**95% Confidence Interval**",
        "### Decision Criteria",
        "### RECOMMENDATION: PROMOTE TO PRODUCTION",
        "**Expected Impact**",
        "Student t-test",
        "Always-valid sequential test",
        "drove the decision",
        "(40% of the planned window, which ends at 70 trials)",
    ):
        assert heading in text
    assert "39.2% faster" in text and "nan" not in text.lower()


def test_report_on_degenerate_data():
    text = render_analysis(analyze(inputs([], [], required=4)), "empty")
    assert "n/a" in text and "CONTINUE" in text


def test_chart_when_the_always_valid_interval_is_unbounded():
    """Required 20,000 with 6 trials per arm: the boundary's tail underflows; the chart leaves a gap."""
    rng = np.random.default_rng(1)
    c, t = list(rng.normal(10, 2, 6)), list(rng.normal(9, 2, 6))
    a = analyze(inputs(c, t, raw=True, required=20000))
    assert render_chart(a, c, t)[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_is_png_and_matplotlib_is_lazy():
    import meta_experiment.charts as charts

    assert "matplotlib" not in charts.__dict__
    rng = np.random.default_rng(1)
    c, t = list(rng.lognormal(3.8, 0.8, 40)), list(rng.lognormal(3.5, 0.8, 40))
    a = analyze(inputs(c, t, raw=True))
    png = render_chart(a, c, t)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    path = lift_path(c, t, None, a)
    assert len(path["n"]) == len(path["lift"]) == len(path["cs_lo"]) > 30
    assert all(lo <= mid <= hi for lo, mid, hi in zip(path["lo"], path["lift"], path["hi"], strict=True))
