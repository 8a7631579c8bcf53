"""Monitoring: error-rate spikes with enough data, silence on tiny samples, satisfaction floors,
regressions through the always-valid policy, deduplication, clearing, and auto-rollback."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, spec
from meta_experiment import monitoring
from meta_experiment.lifecycle import Lab
from meta_experiment.report import render_status
from meta_experiment.settings import MonitoringSettings
from release_helpers import LOSER_MEAN, WINNER_MEAN, head

DEFAULTS = MonitoringSettings()


def counts(c_n: int, c_fail: int, t_n: int, t_fail: int) -> dict[str, dict[str, int]]:
    return {
        "control": {"recorded": c_n, "successes": c_n - c_fail},
        "treatment": {"recorded": t_n, "successes": t_n - t_fail},
    }


def fisher_greater(t_fail: int, t_n: int, c_fail: int, c_n: int) -> float:
    """One-sided Fisher exact p by summing the hypergeometric tail by hand (Fisher 1922)."""
    failures, total = t_fail + c_fail, t_n + c_n
    return sum(
        math.comb(failures, k) * math.comb(total - failures, t_n - k) / math.comb(total, t_n)
        for k in range(t_fail, min(failures, t_n) + 1)
    )


def pair(
    lab: Lab,
    experiment_id: str,
    control: dict[str, float] | None = None,
    treatment: dict[str, float] | None = None,
    *,
    control_ok: bool = True,
    treatment_ok: bool = True,
) -> list[str]:
    """One control and one treatment trial (assignment is in blocks of two), with the alerts
    their recording raised."""
    alerts = []
    for _ in range(2):
        a = lab.assign(experiment_id)
        values, ok = (control, control_ok) if a.arm == "control" else (treatment, treatment_ok)
        alerts += lab.record(a.trial_id, {"time_to_complete": 30.0, **(values or {})}, ok).alerts
    return alerts


def test_error_rate_rule_and_its_guards() -> None:
    spike = monitoring.error_rate_finding(counts(20, 1, 20, 9), DEFAULTS)
    assert spike is not None and "Error rate spike: treatment 45% (9/20 failed) vs control 5% (1/20)" in spike[0]
    assert spike[1]["p_value"] == pytest.approx(fisher_greater(9, 20, 1, 20), rel=1e-9)
    assert monitoring.error_rate_finding(counts(5, 0, 5, 1), DEFAULTS) is None  # 1 failure in 5: not a spike
    assert monitoring.error_rate_finding(counts(10, 0, 10, 2), DEFAULTS) is None  # fewer than min_failures
    assert monitoring.error_rate_finding(counts(9, 0, 30, 10), DEFAULTS) is None  # control below min trials
    assert fisher_greater(3, 10, 1, 10) > 0.05  # 3x the rate, yet noise:
    assert monitoring.error_rate_finding(counts(10, 1, 10, 3), DEFAULTS) is None
    assert monitoring.error_rate_finding(counts(100, 10, 100, 19), DEFAULTS) is None  # 1.9x: under the ratio
    strict = MonitoringSettings(min_trials_per_arm=50)
    assert monitoring.error_rate_finding(counts(20, 1, 20, 9), strict) is None  # configurable


def test_regression_checks_are_thinned_only_past_100_trials() -> None:
    due = [n for n in range(1, 400) if monitoring.regression_due(n, 20)]
    assert due[:81] == list(range(20, 101)) and 101 not in due and 102 in due and 397 not in due
    assert all(b - a <= max(1, b // 50) for a, b in itertools.pairwise(due))


def test_error_spike_raises_one_alert_and_clears(lab: Lab, project: Path) -> None:
    e = lab.create(**spec(sample_size_required=1000, auto_rollback=False))
    alerts = []
    for i in range(24):
        alerts += pair(lab, e.id, treatment_ok=i % 2 == 0)
    assert len(alerts) == 1 and alerts[0].startswith("Error rate spike: treatment ")
    assert [ev.kind for ev in lab.events(e.id)].count("alert") == 1  # not again on every trial
    [active] = monitoring.alerts(lab, e.id, active_only=True)
    assert active.kind == "error_rate" and active.active
    text = render_status(lab.status())
    assert "## ALERTS" in text and "**Alerts**:" in text and "⚠️ Error rate spike" in text
    when = active.raised_at[:16].replace("T", " ") + " UTC"  # the alert's numbers are from then
    assert f"(raised {when})" in text and f"(error_rate, raised {when})" in text
    for _ in range(8):  # the control starts failing too: 8/32 vs 12/32 is under 2x
        pair(lab, e.id, control_ok=False)
    assert monitoring.alerts(lab, e.id, active_only=True) == []
    assert [ev.kind for ev in lab.events(e.id)].count("alert_cleared") == 1
    assert lab.get(e.id).status == "running"


def test_no_alert_from_a_tiny_sample(lab: Lab) -> None:
    e = lab.create(**spec(sample_size_required=1000))
    for i in range(5):
        assert pair(lab, e.id, treatment_ok=i != 0) == []  # one failure in five: not a 2x spike
    for i in range(5, 10):
        assert pair(lab, e.id, treatment_ok=i != 5) == []  # two in ten: fewer than min_failures
    assert monitoring.alerts(lab, e.id) == [] and lab.get(e.id).status == "running"


def test_satisfaction_below_its_floor(lab: Lab) -> None:
    e = lab.create(
        **spec(
            sample_size_required=1000,
            auto_rollback=False,
            secondary_metrics=[{"name": "user_satisfaction", "direction": "higher_is_better"}],
        )
    )
    good, low = {"user_satisfaction": 0.8}, [{"user_satisfaction": 0.3 + 0.01 * i} for i in range(12)]
    for i in range(9):
        assert pair(lab, e.id, good, low[i]) == []  # fewer than min_trials_per_arm
    raised = []
    for i in range(9, 12):
        raised += pair(lab, e.id, good, low[i])
    assert len(raised) == 1 and raised[0].startswith("user_satisfaction below its floor: treatment mean 0.3")
    assert "< 0.5 over 10 trials" in raised[0]


def test_a_regression_rolls_back_an_auto_rollback_experiment_on_the_spot(lab: Lab, project: Path) -> None:
    e = lab.create(**spec(sample_size_required=20, auto_rollback=True))
    before = head(project)
    messages: list[str] = []
    while lab.get(e.id).status == "running":
        a = lab.assign(e.id)
        value = 45.0 if a.arm == "control" else LOSER_MEAN
        messages += lab.record(a.trial_id, {"time_to_complete": value + (a.trial_id % 5) * 0.3}).alerts
    assert messages[0].startswith("Performance regression: the always-valid test shows a regression")
    assert any("Stopped" in m for m in messages)
    stopped = lab.get(e.id)
    assert stopped.status == "rolled_back" and stopped.status_reason.startswith("Rolled back (auto): auto-rollback")
    assert stopped.trials_recorded == 20  # acted as soon as the always-valid test could
    assert (project / PROD).read_text() == COMMAND and head(project) == before


def test_without_auto_rollback_a_regression_is_only_an_alert(lab: Lab) -> None:
    e = lab.create(**spec(sample_size_required=20, auto_rollback=False))
    for i in range(40):
        a = lab.assign(e.id)
        value = 45.0 if a.arm == "control" else LOSER_MEAN
        lab.record(a.trial_id, {"time_to_complete": value + (i % 5) * 0.3})
    assert [a.kind for a in monitoring.alerts(lab, e.id, active_only=True)] == ["performance_regression"]
    assert lab.get(e.id).status == "running"
    assert WINNER_MEAN < 45.0 < LOSER_MEAN
