"""Promote, rollback and expire on a real git repository: round trips, dry runs, conflicts, path
escapes, git outcomes, and the event log."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VAR, VARIANT, spec
from meta_experiment import release
from meta_experiment.errors import Conflict, InvalidInput, InvalidState, PathError
from meta_experiment.lifecycle import Lab
from release_helpers import (
    UNRELATED,
    commit_paths,
    git,
    head,
    porcelain,
    promoted,
    record_trials,
    unrelated_changes,
    winner,
)
from test_lifecycle import snapshot


def unchanged(lab: Lab, project: Path):
    """Everything a refused or dry-run call must leave as it was: database, files, git."""
    return snapshot(lab), (project / PROD).read_bytes(), head(project), porcelain(project)


def test_promote_round_trip_commits_only_the_experiment_paths(lab: Lab, project: Path) -> None:
    (project / PROD).chmod(0o640)
    unrelated_changes(project)
    e = winner(lab)
    result = release.promote(lab, e.id)
    assert result.outcome == "promoted" and result.status == "promoted"
    assert (project / PROD).read_text() == VARIANT
    assert stat.S_IMODE((project / PROD).stat().st_mode) == 0o640
    backup = lab.state_dir / result.files[0].backup
    assert backup.read_text() == COMMAND
    assert lab.get(e.id).files[0].backup == result.files[0].backup
    # git: exactly the experiment's path; the person's staged and unstaged changes untouched
    assert result.git.status == "committed" and result.git.commit == head(project)
    assert commit_paths(project) == {PROD}
    assert porcelain(project) >= UNRELATED
    message = git(project, "log", "-1", "--format=%B")
    assert message.startswith(f"experiment: Promote {e.id} to production\n\n")
    assert re.search(
        r"\nImprovement: (39|40)\.\d% \(time_to_complete\)\nConfidence: [>\d.]+% \(always-valid two-sided p = ",
        message,
    )
    for line in ("\nExperiment: Parallel PR review\n", "\nTrials: 40\n", "\nPromoted by meta-experiment (manual)"):
        assert line in message
    kinds = [ev.kind for ev in lab.events(e.id)]
    assert kinds[-2:] == ["promoted", "git"]
    # ... and back
    back = release.rollback(lab, e.id, reason="reviews got sloppier")
    assert back.outcome == "rolled_back" and lab.get(e.id).status == "rolled_back"
    assert (project / PROD).read_text() == COMMAND
    assert commit_paths(project) == {PROD}
    message = git(project, "log", "-1", "--format=%B")
    assert message.startswith(f"experiment: Rollback {e.id}\n\nReason: reviews got sloppier\nRegression: ")
    assert "Status: Rolled back to pre-experiment state" in message
    assert porcelain(project) >= UNRELATED
    assert lab.get(e.id).status_reason == "Rolled back (manual) after promotion: reviews got sloppier"


def test_dry_run_returns_the_diff_and_changes_nothing(lab: Lab, project: Path) -> None:
    e = winner(lab)
    before = unchanged(lab, project)
    result = release.promote(lab, e.id, dry_run=True)
    assert result.outcome == "dry_run" and result.status == "running" and result.git is None
    assert f"--- a/{PROD} (production)" in result.diff
    assert "-Review the pull request. Run the security analyst, then the cleanup agent." in result.diff
    assert "+Review the pull request. Run the security analyst and the cleanup agent in parallel." in result.diff
    assert unchanged(lab, project) == before
    release.promote(lab, e.id)
    before = unchanged(lab, project)
    back = release.rollback(lab, e.id, reason="check", dry_run=True)
    assert back.outcome == "dry_run" and "+Review the pull request. Run the security analyst, then" in back.diff
    assert unchanged(lab, project) == before


def test_promote_needs_the_policy_or_force_with_a_reason(lab: Lab, project: Path) -> None:
    e = lab.create(**spec(sample_size_required=20))
    record_trials(lab, e.id, trials=6)
    before = unchanged(lab, project)
    with pytest.raises(InvalidState, match="not ready to promote.*force=true"):
        release.promote(lab, e.id)
    # A dry run shows what a promotion would change even when the call itself would be refused.
    preview = release.promote(lab, e.id, dry_run=True)
    assert preview.outcome == "dry_run" and f"+{VARIANT.strip()}" in preview.diff
    assert preview.would_refuse is not None and "not ready to promote" in preview.would_refuse
    assert "The call itself would be refused: " in preview.summary and preview.against_policy
    forced_preview = release.promote(lab, e.id, force=True, reason="ship", dry_run=True)
    assert forced_preview.would_refuse is None and forced_preview.against_policy == preview.against_policy
    assert "forced against the policy, which says: " in forced_preview.summary
    with pytest.raises(InvalidInput, match="Forcing a promotion needs a reason"):
        release.promote(lab, e.id, force=True)
    assert unchanged(lab, project) == before
    result = release.promote(lab, e.id, force=True, reason="the team reviewed it; ship it")
    assert result.forced and (project / PROD).read_text() == VARIANT
    event = next(ev for ev in lab.events(e.id) if ev.kind == "promoted")
    assert event.data["forced"] is True and event.data["reason"] == "the team reviewed it; ship it"
    message = git(project, "log", "-1", "--format=%B")
    assert "Forced: the team reviewed it; ship it" in message
    # 6 trials of 20 required: no always-valid p yet, so the commit names the p it quotes
    assert re.search(r"\nConfidence: [>\d.]+% \(fixed-horizon p = [^,]+, which does not decide\)", message), message
    with pytest.raises(InvalidState, match="promoted"):
        release.promote(lab, e.id, force=True, reason="again")


def test_rollback_of_a_running_experiment_stops_it_without_touching_files(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    open_trial = lab.assign(e.id)
    before_head, before_file = head(project), (project / PROD).read_bytes()
    with pytest.raises(InvalidInput, match="needs a reason"):
        release.rollback(lab, e.id, reason="  ")
    result = release.rollback(lab, e.id, reason="wrong idea")
    assert result.outcome == "stopped" and result.files == [] and result.git.status == "not_needed"
    assert lab.get(e.id).status == "rolled_back"
    assert (project / PROD).read_bytes() == before_file and head(project) == before_head
    assert lab.trial(open_trial.trial_id).status == "abandoned"
    with pytest.raises(InvalidState):
        release.rollback(lab, e.id, reason="twice")


def test_expire_ends_a_running_experiment(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    result = release.expire(lab, e.id, reason="14 days without a conclusive result")
    assert result.outcome == "expired" and lab.get(e.id).status == "expired"
    assert (project / PROD).read_text() == COMMAND


# -- conflicts ------------------------------------------------------------------------------------


def test_promote_refuses_when_production_was_edited_since_start(lab: Lab, project: Path) -> None:
    e = winner(lab)
    (project / PROD).write_text(COMMAND + "A line someone added.\n")
    before = unchanged(lab, project)
    with pytest.raises(Conflict, match="was edited since the experiment started.*Nothing was overwritten") as err:
        release.promote(lab, e.id)
    assert "+A line someone added." in err.value.diff
    assert unchanged(lab, project) == before
    (project / PROD).unlink()
    with pytest.raises(Conflict, match="was deleted"):
        release.promote(lab, e.id, force=True, reason="even forced")
    assert not (project / PROD).exists()


def test_rollback_refuses_when_the_promoted_file_was_edited(lab: Lab, project: Path) -> None:
    e = promoted(lab)
    (project / PROD).write_text(VARIANT + "tweak after promotion\n")
    before = unchanged(lab, project)
    with pytest.raises(Conflict, match="after promotion") as err:
        release.rollback(lab, e.id, reason="regression")
    assert "+tweak after promotion" in err.value.diff
    assert unchanged(lab, project) == before


def test_a_variant_edited_after_start_promotes_the_tested_snapshot(lab: Lab, project: Path) -> None:
    e = winner(lab)
    (project / VAR).write_text("an untested rewrite\n")
    result = release.promote(lab, e.id)
    assert (project / PROD).read_text() == VARIANT
    assert any("tested snapshot" in w for w in result.warnings)


# -- path escapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../outside.md", "ABSOLUTE", ".claude/../../outside.md"])
def test_create_refuses_paths_outside_the_project(lab: Lab, project: Path, bad: str) -> None:
    outside = project.parent / "outside.md"
    outside.write_text("not yours\n")
    path = str(outside) if bad == "ABSOLUTE" else bad
    with pytest.raises(PathError, match="outside the project"):
        lab.create(**spec(files={path: VAR}))
    with pytest.raises(PathError, match="outside the project"):
        lab.create(**spec(files={PROD: path}))


def test_promote_refuses_a_symlink_swapped_in_after_create(lab: Lab, project: Path) -> None:
    e = winner(lab)
    outside = project.parent / "victim.md"
    outside.write_text(COMMAND)  # same bytes as the snapshot: only the path check can catch it
    (project / PROD).unlink()
    (project / PROD).symlink_to(outside)
    with pytest.raises(PathError, match="symlink"):
        release.promote(lab, e.id)
    assert outside.read_text() == COMMAND and (project / PROD).is_symlink()
    assert lab.get(e.id).status == "running"


def test_rollback_refuses_a_symlinked_folder_swapped_in_after_promotion(lab: Lab, project: Path) -> None:
    e = promoted(lab)
    elsewhere = project.parent / "elsewhere"
    (elsewhere / "commands").mkdir(parents=True)
    (elsewhere / "commands" / "review_pr.md").write_text(VARIANT)
    (project / ".claude").rename(project.parent / "moved")
    (project / ".claude").symlink_to(elsewhere)
    with pytest.raises(PathError):
        release.rollback(lab, e.id, reason="regression")
    assert (elsewhere / "commands" / "review_pr.md").read_text() == VARIANT
    assert lab.get(e.id).status == "promoted"


# -- git outcomes ---------------------------------------------------------------------------------


def test_promote_outside_git_and_with_a_failing_hook_keeps_files_consistent(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'blocked by policy hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    lab = Lab.open(project)
    try:
        result = release.promote(lab, winner(lab).id)
        assert result.git.status == "failed" and "blocked by policy hook" in result.git.detail
        assert "git: commit failed: blocked by policy hook" in result.summary
        assert "not committed" in result.summary and f"-- {PROD}" in result.summary  # the next step
        assert result.status == "promoted" and (project / PROD).read_text() == VARIANT
        assert [ev for ev in lab.events() if ev.kind == "git"][-1].data["status"] == "failed"
    finally:
        lab.close()
    plain = tmp_path / "plain"
    (plain / "cmd").mkdir(parents=True)
    (plain / "cmd" / "a.md").write_text(COMMAND)
    (plain / "cmd" / "a.md.experiment").write_text(VARIANT)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    lab = Lab.open(plain)
    try:
        e = winner(lab, files={"cmd/a.md": "cmd/a.md.experiment"})
        result = release.promote(lab, e.id)
        assert result.git.status == "not_a_repository" and "not a git repository" in result.summary
        assert (plain / "cmd" / "a.md").read_text() == VARIANT
    finally:
        lab.close()


def test_multi_file_promote_and_rollback(lab: Lab, project: Path) -> None:
    (project / "agents").mkdir()
    (project / "agents" / "reviewer.md").write_text("reviewer v1\n")
    (project / "agents" / "reviewer.v2.md").write_text("reviewer v2\n")
    git(project, "add", "--", "agents/reviewer.md")
    git(project, "commit", "-q", "-m", "agent")
    e = winner(lab, files={PROD: VAR, "agents/reviewer.md": "agents/reviewer.v2.md"})
    release.promote(lab, e.id)
    assert (project / "agents" / "reviewer.md").read_text() == "reviewer v2\n"
    assert commit_paths(project) == {PROD, "agents/reviewer.md"}
    release.rollback(lab, e.id, reason="both back")
    assert (project / "agents" / "reviewer.md").read_text() == "reviewer v1\n"
    assert (project / PROD).read_text() == COMMAND


def test_a_write_failure_midway_puts_the_first_file_back(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from meta_experiment import deploy, journal
    from meta_experiment.errors import DeployError

    (project / "agents").mkdir()
    (project / "agents" / "reviewer.md").write_text("reviewer v1\n")
    (project / "agents" / "reviewer.v2.md").write_text("reviewer v2\n")
    e = winner(lab, files={PROD: VAR, "agents/reviewer.md": "agents/reviewer.v2.md"})
    real, calls = deploy.replace_file, []

    def disk_full_on_the_second(path: Path, data: bytes, **how: bool) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, **how)

    monkeypatch.setattr(deploy, "replace_file", disk_full_on_the_second)
    before = head(project)
    with pytest.raises(DeployError, match="No space left on device.*put back to their previous content"):
        release.promote(lab, e.id)
    assert (project / PROD).read_text() == COMMAND  # written, then restored
    assert (project / "agents" / "reviewer.md").read_text() == "reviewer v1\n"
    assert lab.get(e.id).status == "running" and head(project) == before
    assert journal.latest(lab.store, e.id).phase == "undone"
    assert [ev.kind for ev in lab.events(e.id)][-1] == "deploy_undone"


def _detach(project: Path) -> None:
    git(project, "checkout", "-q", "--detach")


def _stage_an_edit(project: Path) -> None:
    (project / PROD).write_text("my staged edit\n")
    git(project, "add", PROD)
    (project / PROD).write_text(COMMAND)  # the working copy is back to what the experiment started from


def _rebase_in_progress(project: Path) -> None:
    (project / ".git" / "rebase-merge").mkdir()


def _skip_worktree(project: Path) -> None:
    git(project, "update-index", "--skip-worktree", PROD)  # git would commit nothing


def _assume_unchanged(project: Path) -> None:
    git(project, "update-index", "--assume-unchanged", PROD)  # git add ignores the change


@pytest.mark.parametrize(
    ("situation", "message"),
    [
        (_detach, "HEAD is detached"),
        (_stage_an_edit, "has staged changes"),
        (_rebase_in_progress, "a rebase is in progress"),
        (_skip_worktree, "skip-worktree.*git update-index --no-skip-worktree"),
        (_assume_unchanged, "assume-unchanged.*git update-index --no-assume-unchanged"),
    ],
)
def test_promote_refuses_when_git_would_lose_the_commit_or_the_index(
    lab: Lab, project: Path, situation, message: str
) -> None:
    e = winner(lab)
    situation(project)
    index_before = git(project, "diff", "--cached")
    with pytest.raises(InvalidState, match=message):
        release.promote(lab, e.id, dry_run=True)
    with pytest.raises(InvalidState, match=message):
        release.promote(lab, e.id)
    assert (project / PROD).read_text() == COMMAND and lab.get(e.id).status == "running"
    assert git(project, "diff", "--cached") == index_before


@pytest.mark.parametrize("working_copy", ["variant", "original"])
def test_a_staged_copy_of_the_variant_is_what_promote_commits_anyway(
    lab: Lab, project: Path, working_copy: str
) -> None:
    """Staged changes of a production file block a promote (the commit would replace them), except
    a staged copy of the variant itself: the commit records exactly that, so nothing is lost."""
    e = winner(lab)
    (project / PROD).write_text(VARIANT)
    git(project, "add", PROD)
    if working_copy == "original":
        (project / PROD).write_text(COMMAND)
    result = release.promote(lab, e.id)
    assert result.outcome == "promoted" and result.git.status == "committed", result.git
    assert git(project, "show", "HEAD:" + PROD) == VARIANT and (project / PROD).read_text() == VARIANT
    assert git(project, "diff", "--cached") == ""


def test_a_commit_hook_that_adds_files_is_reported(lab: Lab, project: Path) -> None:
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho extra > extra.txt\ngit add extra.txt\n")
    hook.chmod(0o755)
    result = release.promote(lab, winner(lab).id)
    assert result.git.status == "committed" and commit_paths(project) == {PROD, "extra.txt"}
    assert "a commit hook added extra.txt" in result.git.detail


def test_analysis_of_an_ended_experiment_says_nothing_acts_on_it(lab: Lab, project: Path) -> None:
    """After a rollback the data still favour the variant; the report must not recommend promoting
    as if the experiment were running."""
    from meta_experiment.report import render_analysis

    e = winner(lab)
    release.rollback(lab, e.id, reason="changed my mind")
    analysis = lab.analyze(e.id)
    assert analysis.decision.action == "promote"  # what the data alone say
    assert analysis.experiment_status.startswith("rolled back: ") and "changed my mind" in analysis.experiment_status
    text = render_analysis(lab.get(e.id), analysis)
    assert "### RECOMMENDATION: NONE: THE EXPERIMENT IS ROLLED BACK" in text
    assert "### RECOMMENDATION: PROMOTE" not in text and "nothing acts on it" in text
    assert lab.analyze(winner(lab).id).experiment_status is None  # running: unchanged


def test_the_marked_file_message_quotes_names_for_the_shell(tmp_path: Path) -> None:
    from meta_experiment import gitcommit

    git(tmp_path, "init", "-q")
    (tmp_path / "my prompt.md").write_text("x\n")
    git(tmp_path, "add", "my prompt.md")
    git(tmp_path, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "init")
    git(tmp_path, "update-index", "--assume-unchanged", "my prompt.md")
    message = gitcommit.blockers(tmp_path, ["my prompt.md"])
    assert message is not None and "git update-index --no-assume-unchanged -- 'my prompt.md'" in message
