"""The release half of the status report in the seed's layout: deployments, how experiments ended,
the summary, and the time-saved estimate worked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import spec
from meta_experiment import release
from meta_experiment.lifecycle import Lab
from meta_experiment.release_status import TIME_SAVED_BASIS
from meta_experiment.report import render_status
from release_helpers import LOSER_MEAN, record_trials

DAY = 86400.0
T0 = 1_790_000_000.0


def promoted_after(lab: Lab, days: float, **overrides: object) -> str:
    """45 vs 27 minutes exactly (no noise), 40 trials, promoted `days` after the start."""
    lab.clock = lambda: T0
    e = lab.create(**spec(sample_size_required=20, **overrides))
    record_trials(lab, e.id, noise=0.0)
    lab.clock = lambda: T0 + days * DAY
    release.promote(lab, e.id, force=True, reason="measured by hand")
    return e.id


def test_time_saved_per_month_is_worked_from_the_recorded_usage(lab: Lab) -> None:
    experiment_id = promoted_after(lab, 4.0)
    lab.clock = lambda: T0 + 10 * DAY
    report = lab.status()
    [info] = report.release.experiments
    # (45 - 27) min = 0.3 h per run; 40 runs in 4 days = 10 a day; x 30 days
    assert info.time_saved_hours_per_month == pytest.approx(0.3 * 10 * 30)
    assert report.release.time_saved_hours_per_month == pytest.approx(90.0)
    assert report.release.time_saved_basis == TIME_SAVED_BASIS
    assert info.ended_by == "manual" and info.git.startswith("committed ")
    assert info.days_in_production == pytest.approx(6.0)
    text = render_status(report)
    assert f"### Experiment #1: {experiment_id}" in text and "**Status**: ✅ Promoted to production" in text
    assert "**Deployed**: 2026-" in text and "(running in production for 6 days)" in text
    assert "**Time saved**: 90.0 hours/month (estimated)" in text
    assert "- **Total ROI**: 90.0 hours/month saved (estimated)" in text and "It assumes usage continues" in text
    # forced on data without variance: the policy never said promote, so it is no success
    assert "- **Successful**: 0 experiments (0% success rate)" in text
    assert "- **Promoted (forced)**: 1 experiment (against the policy; not counted as successes)" in text


def test_a_burst_of_runs_counts_as_at_least_a_day(lab: Lab) -> None:
    promoted_after(lab, 0.01)
    assert lab.status().release.time_saved_hours_per_month == pytest.approx(0.3 * 40 * 30)


def test_no_estimate_without_a_duration_metric(lab: Lab) -> None:
    lab.clock = lambda: T0
    e = lab.create(**spec(primary_metric={"name": "time_to_complete", "direction": "lower_is_better"}))
    record_trials(lab, e.id, noise=0.0)
    release.promote(lab, e.id, force=True, reason="no unit")
    report = lab.status()
    assert report.release.time_saved_hours_per_month is None
    assert "Total ROI" not in render_status(report)


def test_failed_experiments_say_how_they_ended(lab: Lab, project: Path) -> None:
    auto = lab.create(**spec(sample_size_required=20, auto_rollback=True))
    while lab.get(auto.id).status == "running":
        a = lab.assign(auto.id)
        lab.record(a.trial_id, {"time_to_complete": (45.0 if a.arm == "control" else LOSER_MEAN) + a.trial_id % 3})
    (project / "b.md").write_text("b\n")
    (project / "b2.md").write_text("b2\n")
    manual = lab.create(**spec(files={"b.md": "b2.md"}))
    release.rollback(lab, manual.id, reason="wrong idea")
    text = render_status(lab.status())
    assert "**Status**: 🔴 Failed - Auto-rolled back" in text
    assert "- Automatically rolled back after 20 trials" in text
    assert "- Manually rolled back after 0 trials" in text and "**Reason**: Rolled back (manual): wrong idea" in text
    assert "**Action**: None (experiment terminated)" in text
    assert "- **Failed**: 2 experiments (1 auto-rolled back, 1 rolled back by hand)" in text
    assert "- **Successful**: 0 experiments (0% success rate)" in text


def test_a_promoted_file_edited_afterwards_is_reported(lab: Lab, project: Path) -> None:
    from conftest import PROD

    promoted_after(lab, 2.0)
    [info] = lab.status().release.experiments
    assert info.changed_since == []  # production holds what the promotion wrote
    (project / PROD).write_text("edited by hand after the promotion\n")
    report = lab.status()
    assert report.release.experiments[0].changed_since == [PROD]
    assert f"**Changed since promotion**: {PROD} no longer holds the promoted content" in render_status(report)
    (project / PROD).unlink()
    assert lab.status().release.experiments[0].changed_since == [f"{PROD} (missing)"]


def test_status_says_stop_when_the_target_is_out_of_reach(lab: Lab) -> None:
    """Thousands of trials, +2%: the status action agrees with the analysis headline."""
    import random

    e = lab.create(**spec(sample_size_required=100))
    rng = random.Random(5)
    for _ in range(3000):
        a = lab.assign(e.id)
        mean = 100.0 if a.arm == "control" else 98.0
        lab.record(a.trial_id, {"time_to_complete": rng.gauss(mean, 10.0), "issues_caught": 3.0})
    [item] = lab.status().experiments
    assert item.target_out_of_reach and item.action == "continue"
    assert "**Action**: Stop: the target is out of reach" in render_status(lab.status())


def test_imported_ended_experiments_and_forced_promotions_count_the_same_in_text_and_json(
    lab: Lab, project: Path
) -> None:
    """From a user test: experiments imported as rolled back read 'Manually rolled back' and counted
    as rolled back by hand, and the JSON success rate counted a forced promotion the text did not."""
    from meta_experiment.interchange import export_experiments, import_experiments

    manual = lab.create(**spec())
    release.rollback(lab, manual.id, reason="wrong idea")
    document = export_experiments(lab)
    item = document["experiments"][0]
    item["id"] = "exp-imported-1"
    item.pop("meta_experiment", None)
    import_experiments(lab, document)
    (project / "b.md").write_text("b\n")
    (project / "b2.md").write_text("b2\n")
    forced = lab.create(**spec(files={"b.md": "b2.md"}))
    release.promote(lab, forced.id, force=True, reason="ship it anyway")  # no data: against the policy
    report = lab.status()
    text = render_status(report)
    assert "- Rolled back before it was imported, after 0 trials" in text
    assert "- **Failed**: 2 experiments (1 rolled back by hand, 1 rolled back before import)" in text
    assert "- **Successful**: 0 experiments (0% success rate)" in text
    assert report.release.success_rate_pct == 0.0  # the JSON agrees: a forced promotion is no success


@pytest.mark.parametrize("older_export", [False, True])
def test_a_forced_promotion_the_data_backed_counts_as_a_success_after_a_round_trip(
    lab: Lab, project: Path, tmp_path: Path, older_export: bool
) -> None:
    """From an export/import review: a promotion forced although the policy said promote counts
    as a success (100%); imported elsewhere its label alone ('forced') made it a failure (0%). An
    export whose promoted event does not hold the verdict is judged by the analysis."""
    from conftest import lab_elsewhere
    from meta_experiment.interchange import export_experiments, import_experiments
    from release_helpers import winner

    e = winner(lab)
    assert lab.analyze(e.id).decision.action == "promote"
    release.promote(lab, e.id, force=True, reason="before the review")
    assert lab.status().release.success_rate_pct == 100.0
    document = export_experiments(lab)
    [said] = [ev for ev in document["experiments"][0]["meta_experiment"]["events"] if ev["kind"] == "promoted"]
    assert said["data"]["decision"] == "promote"
    if older_export:
        del said["data"]["decision"]
    with lab_elsewhere(tmp_path) as other:
        import_experiments(other, document)
        report = other.status()
        assert report.release.success_rate_pct == 100.0
        assert "- **Successful**: 1 experiment (100% success rate)" in render_status(report)


def test_a_rolled_back_promotion_keeps_its_git_line_after_a_round_trip(lab: Lab, tmp_path: Path) -> None:
    """From an export/import review: an imported promotion shows the commit it made where it was
    promoted; one rolled back since showed no Git line at all."""
    from conftest import lab_elsewhere
    from meta_experiment.interchange import export_experiments, import_experiments
    from release_helpers import winner

    e = winner(lab)
    release.promote(lab, e.id)
    release.rollback(lab, e.id, reason="slower in use")
    [here] = lab.status().release.experiments
    assert here.git is not None and here.git.startswith("committed ")
    document = export_experiments(lab)
    with lab_elsewhere(tmp_path) as other:
        import_experiments(other, document)
        [there] = other.status().release.experiments
        assert there.git == here.git.split(" (")[0] + " (where it was made; imported)"
        assert f"**Git**: {there.git}" in render_status(other.status())
