"""The status report as a user reads it: confidences never rounded to a certainty, production files
edited under a running experiment, one-line hypotheses, binary metrics as rates, alerts of ended
experiments, forced promotions and large time-saved figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PROD, spec
from meta_experiment import monitoring, release
from meta_experiment.lifecycle import Lab
from meta_experiment.report import fmt, render_status
from meta_experiment.stats.report import fmt_against, fmt_confidence
from meta_experiment.status import status_item, status_report
from release_helpers import LOSER_MEAN, record_trials

T0 = 1_790_000_000.0


def line(text: str, start: str) -> str:
    [found] = [x for x in text.splitlines() if x.startswith(start)]
    return found


@pytest.mark.parametrize(
    ("confidence", "shown"),
    [(0.9996, ">99.9%"), (1.0, ">99.9%"), (0.9994, "99.9%"), (0.75, "75.0%"), (0.0004, "<0.1%"), (None, "n/a")],
)
def test_a_confidence_is_never_rounded_to_a_certainty(confidence: float | None, shown: str) -> None:
    assert fmt_confidence(confidence) == shown


def test_status_shows_a_near_certain_confidence_below_100(lab: Lab) -> None:
    e = lab.create(**spec(sample_size_required=20))
    record_trials(lab, e.id)  # 45 vs 27 minutes, sd 1: the always-valid p is tiny
    report = lab.status()
    assert report.experiments[0].confidence > 0.9995
    assert line(render_status(report), "- Confidence:") == "- Confidence: >99.9% (always-valid test of a difference)"


def test_a_production_file_edited_under_a_running_experiment_is_flagged(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())

    def rendered() -> tuple[list[str], str]:
        item = status_item(lab.get(e.id), lab.progress(lab.get(e.id)), lab.analyze(e.id), lab.project_root)
        return item.changed_since_start, render_status(status_report([item]))

    assert rendered()[0] == [] and "Changed since the start" not in rendered()[1]
    (project / PROD).write_text("edited by hand while the experiment runs\n")
    warned = [w for _ in range(2) for w in lab.assign(e.id).warnings]  # a block of two: both arms
    assert any(w.startswith(PROD) for w in warned)  # the check assign warns with
    changed, text = rendered()
    assert changed == [PROD]
    assert f"- ⚠️ {PROD} no longer holds its content from the start: trials use the snapshot" in text
    (project / PROD).unlink()
    assert rendered()[0] == [f"{PROD} (deleted)"]
    assert lab.status().experiments[0].changed_since_start == [f"{PROD} (deleted)"]  # what the status tool shows


def test_the_status_listing_shows_the_hypothesis_on_one_line(lab: Lab) -> None:
    hypothesis = "Parallel agents save time.\n" + "word " * 790
    e = lab.create(**spec(hypothesis=hypothesis))
    report = lab.status()
    shown = line(render_status(report), "**Hypothesis**: ")
    assert len(shown) <= len("**Hypothesis**: ") + 160 and shown.endswith("…")
    assert shown.startswith("**Hypothesis**: Parallel agents save time. word word")
    assert report.experiments[0].hypothesis == lab.get(e.id).hypothesis == hypothesis  # whole outside the text


def test_a_binary_primary_metric_reads_as_rates(lab: Lab) -> None:
    metric = {"name": "ok", "direction": "higher_is_better", "kind": "binary"}
    e = lab.create(**spec(primary_metric=metric, secondary_metrics=[], sample_size_required=100, auto_rollback=False))
    treatment = 0
    for _ in range(20):  # blocks of two: 10 per arm; the treatment says yes every other run
        a = lab.assign(e.id)
        treatment += a.arm == "treatment"
        lab.record(a.trial_id, {"ok": 1.0 if a.arm == "control" or treatment % 2 else 0.0})
    text = render_status(lab.status())
    assert "- Control: 100.0% yes" in text and "- Treatment: 50.0% yes" in text
    assert "- ok down, worse: 50.0 percentage points (50% regression)" in text
    assert "avg" not in text


def test_equal_arms_read_as_no_change_not_as_rounding_noise(lab: Lab) -> None:
    """8 of 12 yes in each arm: the reports say no change, not "lost: 0.0 (0% regression)" (means an
    ulp apart, which printed "1.11e-14 percentage points lower", are tested in stats/test_report)."""
    from meta_experiment.report import render_analysis

    metric = {"name": "passed", "direction": "higher_is_better", "kind": "binary"}
    e = lab.create(**spec(primary_metric=metric, secondary_metrics=[], sample_size_required=24, auto_rollback=False))
    seen = {"control": 0, "treatment": 0}
    while min(seen.values()) < 12:
        a = lab.assign(e.id)
        if seen[a.arm] < 12:
            lab.record(a.trial_id, {"passed": 1.0 if seen[a.arm] % 3 else 0.0})  # 0 at 0, 3, 6, 9: 8 of 12 yes
            seen[a.arm] += 1
    analysis = lab.analyze(e.id)
    assert analysis.primary.control.mean == pytest.approx(analysis.primary.treatment.mean, abs=1e-12)
    status = render_status(lab.status())
    assert "- passed: no change (the arms' means are equal)" in status
    assert "lost" not in status and "regression" not in status
    assert "more trials give 80% power to detect the 15% target)" in status  # not the difference seen
    report = render_analysis(lab.get(e.id), analysis)
    assert "**Improvement**: no change (0.0%)" in report
    assert "- Per run: no change (the arms' means are equal)" in report
    assert "e-1" not in report and "per month" not in report


def test_the_alert_of_an_auto_rolled_back_experiment_is_shown_closed(lab: Lab) -> None:
    e = lab.create(**spec(sample_size_required=20, auto_rollback=True))
    while lab.get(e.id).status == "running":
        a = lab.assign(e.id)
        value = 45.0 if a.arm == "control" else LOSER_MEAN
        lab.record(a.trial_id, {"time_to_complete": value + (a.trial_id % 5) * 0.3})
    report = lab.status()
    [alert] = monitoring.alerts(lab, e.id)
    assert alert.kind == "performance_regression" and alert.cleared_at is not None  # closed when it ended
    assert report.release.alerts == [alert]  # for the ended experiment's block, as closed
    closing = [ev.message for ev in lab.events(e.id) if ev.kind == "alert_cleared"]
    assert closing == [f"Closed (rolled back): {alert.message}"]
    text = render_status(report)
    assert "## ALERTS" not in text and "⚠️" not in text
    assert "**Reason**: Rolled back (auto): auto-rollback on alert: Performance regression" in text
    assert f"**Alerts** (closed: the experiment is rolled back):\n- {alert.message} (raised" in text


def test_forced_promotions_are_counted_apart_from_successes(lab: Lab, project: Path) -> None:
    winner = lab.create(**spec(sample_size_required=20))
    record_trials(lab, winner.id)
    release.promote(lab, winner.id)  # the policy says promote
    (project / "b.md").write_text("b\n")
    (project / "b2.md").write_text("b2\n")
    forced = lab.create(**spec(files={"b.md": "b2.md"}))
    release.promote(lab, forced.id, force=True, reason="ship it anyway")  # no data: 0 confidence
    report = lab.status()
    assert [i.forced for i in report.experiments] == [False, True]
    text = render_status(report)
    assert "**Status**: ✅ Promoted to production (forced against the policy)" in text
    assert "- **Successful**: 1 experiment (50% success rate)" in text
    assert "- **Promoted (forced)**: 1 experiment (against the policy; not counted as successes)" in text


def test_an_active_only_status_counts_the_ended_experiments_without_analysing_them(lab: Lab, project: Path) -> None:
    """The report that lists the active experiments only reads the same whether the ended ones are
    analysed or not: their count, successes, forced promotions and failures are all there."""
    winner = lab.create(**spec(sample_size_required=20))
    record_trials(lab, winner.id)
    release.promote(lab, winner.id)
    for name in ("b", "c", "d", "e"):
        (project / f"{name}.md").write_text(f"{name}\n")
        (project / f"{name}2.md").write_text(f"{name}2\n")
    forced = lab.create(**spec(files={"b.md": "b2.md"}))
    release.promote(lab, forced.id, force=True, reason="ship it anyway")
    loser = lab.create(**spec(files={"c.md": "c2.md"}, auto_rollback=False))
    record_trials(lab, loser.id, treatment=LOSER_MEAN)
    release.rollback(lab, loser.id, reason="worse")
    running = lab.create(**spec(files={"d.md": "d2.md"}))
    record_trials(lab, running.id, trials=6)
    full, active = lab.status(), lab.status(active_only=True)
    assert render_status(active, True) == render_status(full, True)
    assert active.listed(active_only=True) == full.listed(active_only=True) and active.counts == full.counts
    means = {i.id: i.control_mean for i in active.experiments}
    assert means[winner.id] is None and means[loser.id] is None  # ended: not analysed
    assert means[running.id] is not None and [i.forced for i in active.experiments if i.id == forced.id] == [True]
    assert {i.id: i.control_mean for i in full.experiments}[winner.id] is not None


def test_large_time_saved_figures_have_thousands_separators(lab: Lab) -> None:
    lab.clock = lambda: T0
    metric = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "h"}
    e = lab.create(**spec(primary_metric=metric, sample_size_required=20))
    record_trials(lab, e.id, noise=0.0)
    lab.clock = lambda: T0 + 3600.0
    release.promote(lab, e.id, force=True, reason="measured by hand")
    text = render_status(lab.status())
    # 18 h saved per run x 40 runs a day (a burst counts as one day) x 30 days
    assert "**Time saved**: 21,600.0 hours/month (estimated)" in text
    assert "- **Total ROI**: 21,600.0 hours/month saved (estimated)" in text


def test_a_log_scale_metric_says_saved_or_lost_from_the_means_it_shows(lab: Lab) -> None:
    """The treatment is faster for a typical run (geometric mean) but slower on average (a heavy
    tail): the word, the amount and the % come from the arithmetic means shown, and the typical
    run's change is labelled apart."""
    metric = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "s", "log_scale": True}
    e = lab.create(**spec(primary_metric=metric, secondary_metrics=[], sample_size_required=100, auto_rollback=False))
    for i in range(40):
        lab.record_measurement(e.id, "control", {"time_to_complete": 30.0 + i % 5})
        lab.record_measurement(e.id, "treatment", {"time_to_complete": 200.0 if i % 10 == 0 else 20.0 + i % 5})
    [item] = lab.status().experiments
    assert item.scale == "log" and item.improvement_pct > 0  # a typical run is faster
    assert item.treatment_mean > item.control_mean  # the mean is slower
    text = render_status(lab.status())
    lost = (item.treatment_mean - item.control_mean) / item.control_mean * 100
    expected = (
        f"- time_to_complete lost: {fmt(item.treatment_mean - item.control_mean, 's')} "
        f"({lost:,.0f}% regression in the mean);"
        f" a typical run (geometric mean) {item.improvement_pct:,.0f}% better"
    )
    assert expected in text, line(text, "- time_to_complete")
    assert "saved" not in text


def test_a_sample_ratio_mismatch_shows_before_the_sample_size_is_reached(lab: Lab) -> None:
    """From a user test: with every result in one arm, status said only 'Continue (N more trials
    needed)' while analyze said to investigate the mismatch; waiting will not fix a biased split."""
    e = lab.create(**spec(secondary_metrics=[], sample_size_required=100, auto_rollback=False))
    for i in range(3):  # 3 of 3 in one arm is not evidence of a bias yet
        lab.record_measurement(e.id, "control", {"time_to_complete": 40.0 + i})
    assert "mismatch" not in line(render_status(lab.status()), "**Action**")
    for i in range(27):
        lab.record_measurement(e.id, "control", {"time_to_complete": 40.0 + i % 4})
    [item] = lab.status().experiments
    assert item.sample_ratio_mismatch and item.progress.trials_needed
    action = line(render_status(lab.status()), "**Action**")
    assert "more trials needed); investigate the sample-ratio mismatch" in action, action


def test_the_status_line_never_rounds_an_improvement_onto_the_target(lab: Lab) -> None:
    """From a verification pass: 'duration saved: 15 s (15% improvement)' beside 'not met:
    improvement > threshold' for 14.96% against a 15% target."""
    e = lab.create(**spec(secondary_metrics=[], sample_size_required=100, improvement_threshold=15.0))
    for i in range(20):
        lab.record_measurement(e.id, "control", {"time_to_complete": 100.0 + (i % 5)})
        lab.record_measurement(e.id, "treatment", {"time_to_complete": 84.7408 + (i % 5)})  # 14.96% faster
    [item] = lab.status().experiments
    pct = (item.control_mean - item.treatment_mean) / item.control_mean * 100
    assert 14.9 < pct < 15.0 and item.improvement_threshold == 15.0
    text = line(render_status(lab.status()), "- time_to_complete saved")
    assert f"({fmt_against(pct, 15.0, 0)}% improvement)" in text and "(15% improvement)" not in text
    assert fmt_against(pct, 15.0, 0).startswith("14.9")


def test_an_active_alert_turns_the_action_into_a_rollback_whatever_the_trials(lab: Lab) -> None:
    """From a user test: every treatment run failed, the alert was active, auto_rollback was off, and
    status said "Continue (170 more trials needed)" while auto only monitored: nobody said stop."""
    from meta_experiment.auto import run_auto

    e = lab.create(**spec(sample_size_required=200, auto_rollback=False))
    record_trials(lab, e.id, trials=30, failures={"treatment": 15})
    assert [a.kind for a in monitoring.alerts(lab, e.id, active_only=True)] == ["error_rate"]
    text = render_status(lab.status())
    assert line(text, "**Action**:") == (
        "**Action**: Roll back: a monitoring alert is active (see Alerts); auto_rollback is off, so roll it "
        "back yourself"
    )
    [item] = run_auto(lab, dry_run=True).items
    assert item.action == "recommend_rollback" and item.rationale.startswith("monitoring alert: ")
    assert lab.get(e.id).status == "running"


def test_an_experiment_past_its_time_says_it_expires(lab: Lab) -> None:
    """It said "Continue (9 more trials needed)" until someone ran auto."""
    now = [T0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec(sample_size_required=10, max_duration_days=1))
    record_trials(lab, e.id, trials=2)
    now[0] += 2 * 86400
    assert line(render_status(lab.status()), "**Action**:") == (
        "**Action**: Expire (max duration reached without a conclusive result); auto mode ends it, and its data "
        "stays as it is"
    )


def test_a_promotion_blocked_by_a_hand_edit_says_so_in_the_action(lab: Lab, project: Path) -> None:
    e = lab.create(**spec(sample_size_required=20))
    record_trials(lab, e.id)
    assert line(render_status(lab.status()), "**Action**:").startswith("**Action**: Promote (")
    (project / PROD).write_text("edited by hand\n")
    assert line(render_status(lab.status()), "**Action**:").startswith(
        "**Action**: Promote, once production holds its content from the start again"
    )


def test_the_status_line_counts_towards_what_the_experiment_waits_for(lab: Lab) -> None:
    """ "Running (4/4 trials)" stood beside a 40% bar: each arm needs 5 results first."""
    e = lab.create(**spec(sample_size_required=4))
    record_trials(lab, e.id, trials=4)
    text = render_status(lab.status())
    assert line(text, "**Status**:").endswith("(4/10 trials)")
    assert "40%" in line(text, "Trials:")


def test_the_status_line_past_the_required_size_shows_the_required_size(lab: Lab) -> None:
    """Beyond the required size it read "40/40 trials" beside "(40/20)"."""
    e = lab.create(**spec(sample_size_required=20, auto_promote=False, auto_rollback=False))
    record_trials(lab, e.id, trials=40, treatment=45.0)
    text = render_status(lab.status())
    assert line(text, "**Status**:").endswith("(40/20 trials)")


def test_analyze_says_a_recommended_promotion_would_be_refused_after_a_hand_edit(lab: Lab, project: Path) -> None:
    from meta_experiment.report import render_analysis

    e = lab.create(**spec(sample_size_required=20))
    record_trials(lab, e.id)
    assert "Promote would refuse now" not in render_analysis(lab.get(e.id), lab.analyze(e.id), lab.project_root)
    (project / PROD).write_text("edited by hand\n")
    text = render_analysis(lab.get(e.id), lab.analyze(e.id), lab.project_root)
    assert f"⚠️ Promote would refuse now: {PROD} no longer holds its content from the start." in text


def test_production_holding_the_tested_variant_does_not_block_the_promotion(lab: Lab, project: Path) -> None:
    """Promote records such a file without writing it (a person copied the variant over by hand)."""
    from conftest import VARIANT

    e = lab.create(**spec(sample_size_required=20))
    record_trials(lab, e.id)
    (project / PROD).write_text(VARIANT)
    report = lab.status()
    item = report.experiments[0]
    assert (item.changed_since_start, item.holds_variant) == ([], [PROD])
    text = render_status(report)
    assert f"- ℹ️ {PROD} already holds the tested variant: trials use the snapshots" in text
    assert line(text, "**Action**:").startswith("**Action**: Promote (")


def test_an_active_alert_does_not_keep_an_experiment_past_its_time_from_expiring(lab: Lab) -> None:
    """From a review: with the alert turned into a rollback recommendation, auto_rollback off, an
    experiment past max_duration_days was recommended a rollback on every run and never expired."""
    from meta_experiment.auto import run_auto

    now = [T0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec(sample_size_required=200, auto_rollback=False, max_duration_days=14))
    record_trials(lab, e.id, trials=30, failures={"treatment": 15})
    assert monitoring.alerts(lab, e.id, active_only=True)
    now[0] += 14.5 * 86400
    [item] = run_auto(lab).items
    assert item.action == "expired" and lab.get(e.id).status == "expired"


def test_a_percent_over_a_control_mean_near_zero_is_marked_unstable_in_status(lab: Lab) -> None:
    metric = {"name": "score_delta", "direction": "higher_is_better"}
    e = lab.create(**spec(primary_metric=metric, secondary_metrics=[], sample_size_required=24, auto_rollback=False))
    seen = {"control": 0, "treatment": 0}
    values = {"control": [-1.0, 1.1], "treatment": [0.9, 1.1]}  # control mean 0.05, sd about 1.1
    while min(seen.values()) < 12:
        a = lab.assign(e.id)
        if seen[a.arm] < 12:
            lab.record(a.trial_id, {"score_delta": values[a.arm][seen[a.arm] % 2]})
            seen[a.arm] += 1
    [item] = lab.status().experiments
    assert item.relative_unstable and item.improvement_pct > 1000
    line_ = line(render_status(lab.status()), "- score_delta gained:")
    assert line_.endswith("% improvement; unstable: the control mean is not clearly away from 0)")


def test_a_recommended_rollback_names_what_regressed(lab: Lab) -> None:
    """From a review: status said "Roll back (a significant regression, estimated beyond tolerance)"
    when the primary had improved 41% and the guardrail quality had regressed 48%."""
    quality = {"name": "quality", "direction": "higher_is_better"}
    e = lab.create(**spec(secondary_metrics=[quality], sample_size_required=20, auto_rollback=False))
    for i in range(60):
        a = lab.assign(e.id)
        control = a.arm == "control"
        lab.record(
            a.trial_id,
            {"time_to_complete": (45.0 if control else 27.0) + i % 5, "quality": (8.0 if control else 4.0) + i % 3},
        )
    from meta_experiment.report import _running_action

    [item] = lab.status().experiments
    assert item.action == "rollback" and "quality" in item.rationale
    # (here the regression raised an alert too, which the Action line names first)
    assert _running_action(item, monitoring.alerts(lab, e.id, active_only=True)).startswith(
        "Roll back: a monitoring alert is active"
    )
    assert _running_action(item, []) == f"Roll back: {item.rationale}"


def test_a_long_history_is_listed_briefly_and_the_answer_does_not_grow_with_it(lab: Lab, project: Path) -> None:
    """From a review of a project used for months: the status tool's answer (what Claude Code shows
    the model) carried every ended experiment in full, with its release facts and closed alerts, also
    with active_only: about 3 KB per experiment ever run. The newest ended ones are listed in full,
    older ones a line each; the totals still count them all."""
    import json

    from meta_experiment.status import LISTED_ENDED

    ended = []
    for n in range(LISTED_ENDED + 4):
        (project / f"f{n}.md").write_text("a\n")
        (project / f"f{n}.v.md").write_text("b\n")
        e = lab.create(**spec(name=f"history {n}", files={f"f{n}.md": f"f{n}.v.md"}))
        release.rollback(lab, e.id, reason=f"stop {n}")
        ended.append(e.id)
    running = lab.create(**spec(name="still running"))
    full = lab.status()
    assert len(full.experiments) == LISTED_ENDED + 5  # the report itself has them all (CLI --json)
    text = render_status(full)
    assert text.count("### Experiment #") == LISTED_ENDED + 1
    assert f"Ended before the {LISTED_ENDED} latest, a line each" in text
    assert all(f"- {old} (history {n}): rolled back " in text for n, old in enumerate(ended[:4]))
    assert all(f": {new}\n**Name**" in text for new in ended[4:])  # the newest in full blocks
    assert f"**Failed**: {LISTED_ENDED + 4} experiments" in text
    listed = full.listed()
    assert {i.id for i in listed.experiments} == {running.id, *ended[4:]}
    assert listed.ended_not_listed == 4 and listed.counts == full.counts
    active = full.listed(active_only=True)
    assert [i.id for i in active.experiments] == [running.id] and active.ended_not_listed == LISTED_ENDED + 4
    assert active.release is not None and [r.experiment_id for r in active.release.experiments] == [running.id]
    small = len(json.dumps(full.listed().model_dump(mode="json")))
    for n in range(20):  # twenty more ended experiments: the answer does not grow
        (project / f"g{n}.md").write_text("a\n")
        (project / f"g{n}.v.md").write_text("b\n")
        e = lab.create(**spec(name=f"more {n}", files={f"g{n}.md": f"g{n}.v.md"}))
        release.rollback(lab, e.id, reason="stop")
    assert len(json.dumps(lab.status().listed().model_dump(mode="json"))) < small * 1.2


def test_a_target_out_of_reach_is_not_given_trials_to_reach_it(lab: Lab) -> None:
    """From a review: status said 'Stop: the target is out of reach' under 'about 1,482 more trials
    give 80% power', and auto mode called the same experiment '⏳ Inconclusive'."""
    from meta_experiment.auto import run_auto
    from meta_experiment.report import render_auto

    e = lab.create(**spec(secondary_metrics=[], auto_rollback=False, sample_size_required=20))
    for i in range(60):  # the arms alike: the always-valid interval closes around 0, under the 15% target
        for arm in ("control", "treatment"):
            lab.record_measurement(e.id, arm, {"time_to_complete": 30.0 + (i * 7) % 11})
    item = status_item(lab.get(e.id), lab.progress(lab.get(e.id)), lab.analyze(e.id), lab.project_root)
    assert item.target_out_of_reach and item.action == "continue"
    assert item.trials_needed is None
    text = render_status(lab.status())
    assert "Stop: the target is out of reach" in text and "more trials give 80% power" not in text
    report = run_auto(lab, dry_run=True)
    assert report.items[0].target_out_of_reach
    assert f"- 🛑 Target out of reach (stop recommended): {e.id}" in render_auto(report)


def test_a_refused_promotion_is_told_what_would_change_the_answer(lab: Lab) -> None:
    """From a review: refused with 'Keep recording trials (auto mode promotes when the policy says
    so)' when the policy said more data cannot promote it, or said roll back."""
    from meta_experiment.errors import InvalidState

    for treatment, wanted in (
        (30.0, "More trials will not promote it: its target is out of reach"),  # the arms alike
        (43.0, "The data say roll back, not promote (rollback keeps the original)"),  # slower
    ):
        e = lab.create(**spec(secondary_metrics=[], auto_rollback=False, sample_size_required=20))
        for i in range(60):
            lab.record_measurement(e.id, "control", {"time_to_complete": 30.0 + (i * 7) % 11})
            lab.record_measurement(e.id, "treatment", {"time_to_complete": treatment + (i * 7) % 11})
        with pytest.raises(InvalidState) as refused:
            release.promote(lab, e.id)
        assert wanted in str(refused.value) and "Keep recording" not in str(refused.value)
        release.rollback(lab, e.id, reason="next case")


@pytest.mark.parametrize(
    ("metric", "control", "treatment", "expected"),
    [
        ({"kind": "binary"}, lambda i: 0, lambda i: int(i % 4 == 0), "- err up, worse: 25.0 percentage points"),
        ({"unit": "min"}, lambda i: 0.0, lambda i: 1.0 + i % 2, "- err lost: 1.5 min"),
        ({"kind": "binary", "direction": "higher_is_better"}, lambda i: 0, lambda i: 1, "- err up, better: 100.0 "),
    ],
)
def test_the_change_from_a_control_of_zero_is_shown_with_its_direction(
    lab: Lab, metric: dict, control, treatment, expected: str
) -> None:
    """From a stats review: with a control mean of 0 (no % exists) the change line went, so nothing
    said that 0% -> 25% errors was worse (analyze said so)."""
    primary = {"name": "err", "direction": "lower_is_better", **metric}
    e = lab.create(**spec(primary_metric=primary, auto_rollback=False))
    for i in range(20):
        lab.record_measurement(e.id, "control", {"err": control(i)})
        lab.record_measurement(e.id, "treatment", {"err": treatment(i)})
    text = render_status(lab.status())
    assert expected in text, text
    assert "% improvement" not in line(text, "- err ") and "% regression" not in line(text, "- err ")
