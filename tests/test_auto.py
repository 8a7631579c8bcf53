"""Auto mode: promote, roll back, expire, inconclusive, recommendations, idempotence, dry run, and
several processes running it at once - with the statistics branch's always-valid policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VARIANT, package_env, spec
from meta_experiment import journal, monitoring
from meta_experiment.auto import run_auto
from meta_experiment.lifecycle import Lab
from meta_experiment.report import render_auto
from release_helpers import CONTROL_MEAN, LOSER_MEAN, git, head, record_trials, winner
from test_lifecycle import snapshot

DAY = 86400.0


@pytest.fixture
def unmonitored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record without the per-trial monitor (as data imported from elsewhere would arrive), so
    that auto mode, not the monitor, is the first to act on a regression."""
    monkeypatch.setattr(monitoring, "on_trial", lambda *args, **kwargs: [])
    monkeypatch.setattr(monitoring, "after_trial", lambda *args, **kwargs: [])


def test_auto_promotes_a_winner_created_with_auto_promote(lab: Lab, project: Path) -> None:
    e = winner(lab, auto_promote=True)
    report = run_auto(lab)
    [item] = report.items
    assert (item.decision, item.action) == ("promote", "promoted")
    assert "improvement" in item.rationale and item.criteria and item.driven_by
    assert (project / PROD).read_text() == VARIANT and lab.get(e.id).status == "promoted"
    assert "Promoted by meta-experiment (auto)" in git(project, "log", "-1", "--format=%B")
    assert f"✅ Auto-promoting: {e.id}" in render_auto(report)
    # why, where it is read later (status, the event log, a session told of it): it had said only
    # "Promoted (auto)" (from a review)
    assert lab.get(e.id).status_reason == f"Promoted (auto): {item.rationale}"
    [promoted] = [ev for ev in lab.events(e.id) if ev.kind == "promoted"]
    assert promoted.message.startswith(f"Promoted (auto): {item.rationale}")


def test_without_auto_promote_it_only_recommends_once(lab: Lab, project: Path) -> None:
    e = winner(lab)
    first = run_auto(lab)
    assert first.items[0].action == "recommend_promote"
    assert lab.get(e.id).status == "running" and (project / PROD).read_text() == COMMAND
    assert [ev.kind for ev in lab.events(e.id)].count("recommendation") == 1
    before = snapshot(lab)
    second = run_auto(lab)
    assert second.items[0].action == "recommend_promote"
    assert snapshot(lab) == before  # the same advice again is not news


def test_auto_rolls_back_a_regression_created_with_auto_rollback(lab: Lab, project: Path, unmonitored) -> None:
    e = lab.create(**spec(sample_size_required=20, auto_rollback=True))
    record_trials(lab, e.id, treatment=LOSER_MEAN)
    before_head = head(project)
    [item] = run_auto(lab).items
    assert (item.decision, item.action) == ("rollback", "rolled_back")
    assert "worse" in item.rationale
    assert lab.get(e.id).status == "rolled_back"
    assert lab.get(e.id).status_reason.startswith("Rolled back (auto): ")
    assert (project / PROD).read_text() == COMMAND and head(project) == before_head  # never touched


def test_expires_an_inconclusive_experiment_past_its_duration(lab: Lab, project: Path) -> None:
    start = 1_790_000_000.0
    lab.clock = lambda: start
    e = lab.create(**spec(sample_size_required=20, max_duration_days=14))
    record_trials(lab, e.id, treatment=CONTROL_MEAN)  # A/A: no difference to find
    [item] = run_auto(lab).items
    assert (item.decision, item.action) == ("continue", "continue")
    lab.clock = lambda: start + 14.5 * DAY
    [item] = run_auto(lab).items
    assert (item.decision, item.action) == ("expire", "expired")
    assert lab.get(e.id).status == "expired" and (project / PROD).read_text() == COMMAND


def test_inconclusive_and_idempotent_runs_change_nothing(lab: Lab, project: Path) -> None:
    e = lab.create(**spec(sample_size_required=20, auto_promote=True))
    record_trials(lab, e.id, treatment=CONTROL_MEAN)
    before = snapshot(lab), head(project)
    for _ in range(2):
        [item] = run_auto(lab).items
        assert item.action == "continue" and item.rationale
        assert (snapshot(lab), head(project)) == before
    (project / "b.md").write_text("b v1\n")
    (project / "b2.md").write_text("b v2\n")
    done = winner(lab, files={"b.md": "b2.md"}, auto_promote=True)
    run_auto(lab)
    after_first = snapshot(lab), head(project)
    report = run_auto(lab)
    assert (snapshot(lab), head(project)) == after_first  # nothing new the second time
    assert [i.experiment_id for i in report.items] == [e.id] and lab.get(done.id).status == "promoted"


def test_dry_run_reports_and_changes_nothing(lab: Lab, project: Path) -> None:
    e = winner(lab, auto_promote=True)
    before = snapshot(lab), head(project), (project / PROD).read_bytes()
    report = run_auto(lab, dry_run=True)
    assert report.dry_run and report.items[0].action == "would_promote"
    assert (snapshot(lab), head(project), (project / PROD).read_bytes()) == before
    assert lab.get(e.id).status == "running"


def test_a_conflict_is_reported_per_experiment_and_nothing_is_overwritten(lab: Lab, project: Path) -> None:
    e = winner(lab, auto_promote=True)
    (project / PROD).write_text("edited by a person\n")
    [item] = run_auto(lab).items
    assert item.action == "skipped" and "edited since the experiment started" in item.rationale
    assert (project / PROD).read_text() == "edited by a person\n" and lab.get(e.id).status == "running"


AUTO = """
import sys
from pathlib import Path
from meta_experiment.auto import run_auto
from meta_experiment.lifecycle import Lab
from meta_experiment.report import render_auto
lab = Lab.open(Path(sys.argv[1]))
sys.stdin.readline()  # start together
print(render_auto(run_auto(lab)), end="")
lab.close()
"""


def _together(project: Path, runs: int) -> list[tuple[str, str]]:
    """`runs` auto runs in their own processes, released at once: (stdout, stderr) of each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", AUTO, str(project)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=package_env(),
        )
        for _ in range(runs)
    ]
    for p in procs:  # all are imported and waiting: release them together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    return outputs


def test_concurrent_runs_recommend_once(lab: Lab, project: Path) -> None:
    """From a review: of 8 auto runs at once, 4 logged the same recommendation (the check and the
    write were two transactions)."""
    e = winner(lab)
    outputs = _together(project, 8)
    assert all("Recommend promoting" in out for out, _ in outputs), outputs
    assert [ev.kind for ev in lab.events(e.id)].count("recommendation") == 1


def test_concurrent_runs_act_once(lab: Lab, project: Path) -> None:
    e = winner(lab, auto_promote=True)
    start = head(project)
    outputs = _together(project, 3)
    assert sum("Auto-promoting" in out for out, _ in outputs) == 1, outputs
    others = [out for out, _ in outputs if "Auto-promoting" not in out]
    assert all("already promoted by a concurrent run" in o or "No running experiments" in o for o in others), others
    assert [ev.kind for ev in lab.events(e.id)].count("promoted") == 1
    assert git(project, "rev-list", "--count", f"{start}..HEAD").strip() == "1"
    assert (project / PROD).read_text() == VARIANT
    op = journal.latest(lab.store, e.id)
    assert op is not None and op.phase == "done" and op.id == 1


def test_a_recommendation_says_when_the_tool_would_refuse(lab: Lab, project: Path) -> None:
    """From a user test: with auto_promote off and the production file edited by hand, auto said
    'Recommend promoting' while promote would refuse: the recommendation now says so, and why."""
    e = lab.create(**spec(sample_size_required=20, auto_promote=False))
    record_trials(lab, e.id)
    assert run_auto(lab, dry_run=True).items[0].action == "recommend_promote"
    (project / PROD).write_text(COMMAND + "a person's edit\n")
    [item] = run_auto(lab).items
    assert item.action == "recommend_promote"
    assert "The promote tool would refuse now" in item.rationale
    assert "edited since the experiment started" in item.rationale
    assert f"(the diff: promote with dry_run, or `meta-experiment promote {e.id} --dry-run`)" in item.rationale
    [event] = lab.events(e.id, kinds=["recommendation"])
    assert "would refuse now" in event.message


def test_an_arm_short_of_its_minimum_is_monitored_not_inconclusive(lab: Lab) -> None:
    """From a first-hour review: at a 20% split with 16 control and 4 treatment values auto said
    '⏳ Inconclusive' while its own reason was 'too few values in an arm' (status: 'more trials
    needed'); an experiment short of its sample size said '📊 Monitoring'."""
    e = lab.create(**spec(sample_size_required=20, treatment_percent=20))
    for i in range(16):
        lab.record_measurement(e.id, "control", {"time_to_complete": 45.0 + i % 3, "issues_caught": 3.0})
    for i in range(4):
        lab.record_measurement(e.id, "treatment", {"time_to_complete": 40.0 + i % 3, "issues_caught": 3.0})
    report = run_auto(lab)
    [item] = report.items
    assert item.action == "continue" and item.driven_by.startswith("too few values in an arm")
    assert f"- 📊 Monitoring: {e.id}" in render_auto(report)
