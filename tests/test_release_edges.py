"""Promote and rollback where production changed outside the experiment, from a user test:
production already holding the tested variant (F28), a difference a diff does not show (F6), a
promoted file deleted before rollback (F22), reasons for dry runs (F7), and what a dry run says it
would do. Real git repositories in temp folders, as in test_release.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VAR, VARIANT, spec
from meta_experiment import deploy, journal, operations, release
from meta_experiment.errors import Conflict, DeployError, InvalidInput, InvalidState, PathError
from meta_experiment.lifecycle import Lab
from release_helpers import commit_paths, git, head, porcelain, promoted, winner


class Interrupted(BaseException):
    """Stands for the process dying at a checkpoint (as in test_recovery.py)."""


# -- F28: production already holds the tested variant -------------------------------------------------


def test_promote_when_production_already_holds_the_committed_variant(lab: Lab, project: Path) -> None:
    e = winner(lab)
    (project / PROD).write_text(VARIANT)  # the person copied the variant over production and committed it
    git(project, "commit", "-q", "-am", "copied the variant by hand")
    before_head, inode = head(project), (project / PROD).stat().st_ino

    dry = release.promote(lab, e.id, dry_run=True)
    assert dry.outcome == "dry_run" and dry.would_refuse is None and dry.diff == ""
    assert f"{PROD} already holds the tested variant, so promoting would not write it" in dry.summary
    assert "Promoting would write" not in dry.summary
    assert dry.files[0].before_sha256 == dry.files[0].after_sha256  # before and after: the variant
    assert lab.get(e.id).status == "running"

    result = release.promote(lab, e.id)
    assert result.outcome == "promoted" and lab.get(e.id).status == "promoted"
    assert f"{PROD} already held the tested variant, so it was not written" in result.summary
    assert result.git.status == "nothing_to_commit" and "git: nothing to commit" in result.summary
    assert (project / PROD).read_text() == VARIANT and (project / PROD).stat().st_ino == inode  # not rewritten
    assert head(project) == before_head
    # the pre-experiment content is backed up, so a rollback can restore it
    backup = lab.get(e.id).files[0].backup
    assert backup and (lab.state_dir / backup).read_text() == COMMAND
    event = next(ev for ev in lab.events(e.id) if ev.kind == "promoted")
    assert "already held the new content and was not written" in event.message
    assert journal.latest(lab.store, e.id).phase == "done"
    back = release.rollback(lab, e.id, reason="back to the original")
    assert back.outcome == "rolled_back" and (project / PROD).read_text() == COMMAND
    assert commit_paths(project) == {PROD}


def test_promote_commits_a_variant_copied_by_hand_but_not_committed(lab: Lab, project: Path) -> None:
    e = winner(lab)
    (project / PROD).write_text(VARIANT)
    result = release.promote(lab, e.id)
    assert result.outcome == "promoted" and result.git.status == "committed"
    assert commit_paths(project) == {PROD} and git(project, "show", f"HEAD:{PROD}") == VARIANT
    assert PROD not in {line[3:] for line in porcelain(project)}  # nothing of it left uncommitted


def test_a_multi_file_promote_writes_only_the_file_not_yet_copied(lab: Lab, project: Path) -> None:
    (project / "agents").mkdir()
    (project / "agents" / "reviewer.md").write_text("reviewer v1\n")
    (project / "agents" / "reviewer.v2.md").write_text("reviewer v2\n")
    e = winner(lab, files={PROD: VAR, "agents/reviewer.md": "agents/reviewer.v2.md"})
    (project / PROD).write_text(VARIANT)
    result = release.promote(lab, e.id)
    assert (project / "agents" / "reviewer.md").read_text() == "reviewer v2\n"
    assert f"{PROD} already held the tested variant" in result.summary
    assert "agents/reviewer.md already" not in result.summary
    assert f"b/{PROD}" not in result.diff and "+reviewer v2" in result.diff


def test_rollback_when_production_already_holds_the_pre_experiment_content(lab: Lab, project: Path) -> None:
    e = promoted(lab)
    (project / PROD).write_text(COMMAND)  # reverted by hand
    dry = release.rollback(lab, e.id, dry_run=True)
    assert f"{PROD} already holds the pre-experiment content, so rolling back would not write it" in dry.summary
    result = release.rollback(lab, e.id, reason="reverted by hand already")
    assert result.outcome == "rolled_back" and lab.get(e.id).status == "rolled_back"
    assert f"{PROD} already held the pre-experiment content, so it was not written" in result.summary
    assert result.git.status == "committed" and git(project, "show", f"HEAD:{PROD}") == COMMAND


# -- F6: differences a diff does not show -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "current", "said"),
    [
        (b"a\r\nb\r\n", b"a\nb\n", "only line endings differ (CRLF → LF)"),
        (b"a\nb\n", b"a\r\nb\r\n", "only line endings differ (LF → CRLF)"),
        (b"a\r\nb\r\n", b"a\r\nb\n", "only line endings differ (CRLF → mixed CRLF/LF)"),
        (b"a\nb\n", b"a\nb", "only the final newline differs (removed at the end of the file)"),
        (b"a\nb", b"a\nb\n", "only the final newline differs (added at the end of the file)"),
        (b"a b\n", b"a  b \n\n", "only whitespace differs (spaces, tabs or blank lines)"),
        (b"a\n", b"\xef\xbb\xbfa\n", "only a byte-order mark (BOM) at the start was added"),
        (b"a\n", b"b\n", None),
        (b"a\n", b"a\n", None),
    ],
)
def test_invisible_differences_are_named(expected: bytes, current: bytes, said: str | None) -> None:
    assert deploy.invisible_difference(expected, current) == said


def _crlf_project(project: Path) -> None:
    (project / PROD).write_bytes(COMMAND.replace("\n", "\r\n").encode())
    (project / VAR).write_bytes(VARIANT.replace("\n", "\r\n").encode())
    git(project, "commit", "-q", "-am", "CRLF")


def test_a_line_ending_conversion_is_refused_and_named(lab: Lab, project: Path) -> None:
    _crlf_project(project)
    e = winner(lab)
    (project / PROD).write_bytes(COMMAND.encode())  # an editor converted CRLF to LF
    with pytest.raises(Conflict) as err:
        release.promote(lab, e.id)
    message = str(err.value)
    assert f"{PROD} was edited since the experiment started: only line endings differ (CRLF → LF)" in message
    assert "line-ending setting" in message and "does not cover the edit" not in message
    assert (project / PROD).read_bytes() == COMMAND.encode() and lab.get(e.id).status == "running"


def test_a_whitespace_edit_of_a_promoted_file_is_refused_and_named(lab: Lab, project: Path) -> None:
    e = promoted(lab)
    (project / PROD).write_text(VARIANT.rstrip("\n"))
    with pytest.raises(Conflict, match="edited after promotion: only the final newline differs"):
        release.rollback(lab, e.id, reason="regression")
    assert (project / PROD).read_text() == VARIANT.rstrip("\n")


# -- F22: deleted production files -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "deletion committed", "folder deleted"])
def test_rollback_restores_a_promoted_file_deleted_since(lab: Lab, project: Path, how: str) -> None:
    e = promoted(lab)
    if how == "folder deleted":
        shutil.rmtree(project / ".claude" / "commands")
    else:
        (project / PROD).unlink()
    if how == "deletion committed":
        git(project, "commit", "-q", "-am", "remove the command")
    dry = release.rollback(lab, e.id, dry_run=True)
    assert f"{PROD} was deleted after promotion; rolling back would restore it" in dry.summary
    assert f"--- a/{PROD} (deleted)" in dry.diff and f"+{COMMAND.strip()}" in dry.diff
    assert not (project / PROD).exists()
    result = release.rollback(lab, e.id, reason="the variant was worse")
    assert result.outcome == "rolled_back" and lab.get(e.id).status == "rolled_back"
    assert f"{PROD} had been deleted after promotion; it is restored" in result.summary
    assert (project / PROD).read_text() == COMMAND
    assert result.git.status == "committed" and git(project, "show", f"HEAD:{PROD}") == COMMAND
    assert result.files[0].backup is None  # nothing was on disk to back up
    event = next(ev for ev in lab.events(e.id) if ev.kind == "rolled_back")
    assert "had been deleted and was restored" in event.message


def test_a_deleted_script_comes_back_executable(lab: Lab, project: Path) -> None:
    """From a review: a promoted script deleted by hand came back from a rollback as 0644, and the
    rollback's commit recorded a mode change 100755 => 100644. It is recreated with the mode git
    records for it."""
    import os

    script = project / "run.sh"
    script.write_text("#!/bin/sh\necho a\n")
    script.chmod(0o755)
    (project / "run.v2.sh").write_text("#!/bin/sh\necho b\n")
    git(project, "add", "run.sh")
    git(project, "commit", "-q", "-m", "a script")
    e = promoted(lab, files={PROD: VAR, "run.sh": "run.v2.sh"})
    assert os.access(script, os.X_OK)  # the promotion kept it
    script.unlink()
    result = release.rollback(lab, e.id, reason="the variant was worse")
    assert result.outcome == "rolled_back" and script.read_text() == "#!/bin/sh\necho a\n"
    assert os.access(script, os.X_OK)
    assert "mode change" not in git(project, "show", "--summary", "--format=", "HEAD")
    assert git(project, "ls-files", "-s", "run.sh").startswith("100755 ")


def test_an_undone_rollback_removes_the_file_it_restored(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Undo puts back what was there before: for a file restored after its deletion, nothing."""
    import errno

    (project / "agents").mkdir()
    (project / "agents" / "reviewer.md").write_text("reviewer v1\n")
    (project / "agents" / "reviewer.v2.md").write_text("reviewer v2\n")
    e = promoted(lab, files={PROD: VAR, "agents/reviewer.md": "agents/reviewer.v2.md"})
    (project / PROD).unlink()
    real, calls = deploy.replace_file, []

    def disk_full_on_the_second(path: Path, data: bytes, **how: bool) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, **how)

    monkeypatch.setattr(deploy, "replace_file", disk_full_on_the_second)
    with pytest.raises(DeployError, match="No space left on device"):
        release.rollback(lab, e.id, reason="regression")
    assert [p.name for p in calls] == ["review_pr.md", "reviewer.md"]  # PROD restored first, then undone
    assert not (project / PROD).exists()
    assert (project / "agents" / "reviewer.md").read_text() == "reviewer v2\n"
    assert lab.get(e.id).status == "promoted" and journal.latest(lab.store, e.id).phase == "undone"


def test_an_interrupted_restore_of_a_deleted_file_is_finished_on_restart(lab: Lab, project: Path) -> None:
    e = promoted(lab)
    (project / PROD).unlink()

    def die(name: str) -> None:
        if name == "journal_written":
            raise Interrupted(name)

    deploy.set_checkpoint_hook(die)
    try:
        with pytest.raises(Interrupted):
            release.rollback(lab, e.id, reason="regression")
    finally:
        deploy.set_checkpoint_hook(None)
    assert not (project / PROD).exists()  # killed before any file was touched
    [note] = operations.recover(lab)
    assert note.outcome == "finished", note.message
    assert (project / PROD).read_text() == COMMAND and lab.get(e.id).status == "rolled_back"


def test_promote_of_a_deleted_production_file_is_refused_with_words_for_a_deletion(lab: Lab, project: Path) -> None:
    e = winner(lab)
    (project / PROD).unlink()
    with pytest.raises(Conflict) as err:
        release.promote(lab, e.id, force=True, reason="even forced")
    message = str(err.value)
    assert f"{PROD} was deleted since the experiment started" in message
    assert "Promoting would recreate a file someone deleted" in message and f"git restore -- {PROD}" in message
    assert "does not cover the edit" not in message
    assert not (project / PROD).exists()


# -- F7 and dry runs: reasons, and what the real call would do --------------------------------------------


def test_a_rollback_dry_run_needs_no_reason_and_says_what_it_would_do(lab: Lab, project: Path) -> None:
    e = winner(lab)
    dry = release.rollback(lab, e.id, reason=None, dry_run=True)
    assert dry.outcome == "dry_run" and dry.reason is None and lab.get(e.id).status == "running"
    assert "Rolling back would stop the experiment after 40 recorded trial(s)" in dry.summary
    assert "production was never changed, so no file is touched or committed" in dry.summary
    with pytest.raises(InvalidInput, match="A rollback needs a reason.*a dry run .* needs none"):
        release.rollback(lab, e.id, reason=" ")
    release.promote(lab, e.id)
    dry = release.rollback(lab, e.id, reason=None, dry_run=True)
    assert f"Rolling back would restore the pre-experiment content of {PROD}" in dry.summary


def test_a_promote_dry_run_says_what_it_would_write(lab: Lab, project: Path) -> None:
    dry = release.promote(lab, winner(lab).id, dry_run=True)
    assert f"Promoting would write the tested variant over {PROD} (backed up first) and commit" in dry.summary


def test_an_undone_promote_leaves_a_file_it_found_already_copied(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: the undo put back every file holding the new content, so a variant the person
    had copied over production by hand was replaced by the old text (and said to be put back)."""
    import errno

    from meta_experiment import deploy
    from meta_experiment.errors import DeployError

    (project / "agents").mkdir()
    (project / "agents" / "reviewer.md").write_text("reviewer v1\n")
    (project / "agents" / "reviewer.v2.md").write_text("reviewer v2\n")
    e = winner(lab, files={PROD: VAR, "agents/reviewer.md": "agents/reviewer.v2.md"})
    (project / PROD).write_text(VARIANT)  # the person's copy

    real = deploy.replace_file

    def disk_full_for_the_agent(path: Path, data: bytes, **how: bool) -> None:
        if path.name == "reviewer.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, **how)

    monkeypatch.setattr(deploy, "replace_file", disk_full_for_the_agent)
    with pytest.raises(DeployError, match="No space left on device") as err:
        release.promote(lab, e.id)
    assert (project / PROD).read_text() == VARIANT  # left as the person made it
    assert (project / "agents" / "reviewer.md").read_text() == "reviewer v1\n"
    assert PROD not in str(err.value).split("put back", 1)[-1]
    assert lab.get(e.id).status == "running"


# -- from a review of releasing (2026-11-27) ------------------------------------------------------------


def _stop_at(point: str, exc: BaseException) -> None:
    def hook(name: str) -> None:
        if name == point:
            raise exc

    deploy.set_checkpoint_hook(hook)


@pytest.fixture
def checkpoints():
    yield _stop_at
    deploy.set_checkpoint_hook(None)


def test_a_stop_first_finishes_a_promote_a_dead_process_left(lab: Lab, project: Path, checkpoints) -> None:
    """From a review: with a promote's journal row left open (its process killed after writing it),
    a server's rollback stopped the experiment; the next start then finished the promote over it,
    so the person's rollback was silently reversed. The stop now finishes the promote first and
    refuses, saying so."""
    e = winner(lab)
    checkpoints("journal_written", Interrupted("killed"))
    with pytest.raises(Interrupted):
        release.promote(lab, e.id)
    deploy.set_checkpoint_hook(None)
    with pytest.raises(InvalidState) as refused:
        release.rollback(lab, e.id, reason="changed my mind")
    assert f"Interrupted promote of {e.id}: finished before this stop" in str(refused.value)
    assert (
        f"{e.id} was promoted meanwhile, so nothing was stopped; to undo the promotion, run `meta-experiment rollback"
        in str(refused.value)
    )
    assert lab.get(e.id).status == "promoted" and (project / PROD).read_text() == VARIANT
    assert journal.unfinished_ids(lab.store) == []
    result = release.rollback(lab, e.id, reason="changed my mind")  # now the rollback of the promotion
    assert result.outcome == "rolled_back" and (project / PROD).read_text() == COMMAND


def test_recovery_does_not_commit_on_a_detached_head(project: Path, checkpoints) -> None:
    """From a review: a promote's recovery committed on a detached HEAD ("git: committed"), so the
    promotion vanished from the branch at the next checkout. It now leaves the commit to the
    person, with the commands."""
    lab = Lab.open(project)
    try:
        e = winner(lab)
        checkpoints("state_marked", Interrupted("killed"))
        with pytest.raises(Interrupted):
            release.promote(lab, e.id)
        deploy.set_checkpoint_hook(None)
    finally:
        lab.close()
    branch_head = head(project)
    git(project, "checkout", "-q", "--detach")
    lab = Lab.open(project)
    try:
        [note] = lab.recovered
        assert note.git is not None and note.git.status == "failed"
        assert "HEAD is detached" in note.git.detail and f"add -- {PROD} && git -C " in note.git.detail
        assert head(project) == branch_head  # nothing committed anywhere
        assert lab.get(e.id).status == "promoted" and (project / PROD).read_text() == VARIANT
    finally:
        lab.close()


def _ignored_local_file(project: Path) -> None:
    """CLAUDE.local.md and its variant, which the project's .gitignore keeps out of git."""
    (project / ".gitignore").write_text("*.local.md\n")
    (project / "CLAUDE.local.md").write_text("local notes\n")
    (project / "CLAUDE.local.md.experiment").write_text("local notes, shorter\n")


def test_a_production_file_git_ignores_is_not_a_failed_commit(project: Path) -> None:
    """From a review: promoting a gitignored file (CLAUDE.local.md) said "commit failed" with a
    git commit command that could never work."""
    _ignored_local_file(project)
    lab = Lab.open(project)
    try:
        e = winner(lab, files={"CLAUDE.local.md": "CLAUDE.local.md.experiment"})
        result = release.promote(lab, e.id)
        assert result.git is not None and result.git.status == "not_needed"
        assert result.git.detail == "CLAUDE.local.md is ignored by git (.gitignore): not committed"
        assert "commit failed" not in result.summary
    finally:
        lab.close()


def test_the_commands_after_a_failed_commit_leave_out_a_file_git_ignores(project: Path) -> None:
    """From a review of this fix: the commands to run by hand named the ignored file too, so the
    `git add` in them failed."""
    _ignored_local_file(project)
    lab = Lab.open(project)
    try:
        e = winner(lab, files={"CLAUDE.local.md": "CLAUDE.local.md.experiment", PROD: VAR})
        (project / ".git" / "index.lock").write_text("")  # another git, or one killed, holds the index
        result = release.promote(lab, e.id)
        assert result.git is not None and result.git.status == "failed"
        assert "run: `git -C " in result.git.detail and f"add -- {PROD} && git -C " in result.git.detail
        assert f"-- {PROD}`; CLAUDE.local.md is ignored by git (.gitignore): not committed" in result.git.detail
    finally:
        (project / ".git" / "index.lock").unlink()
        lab.close()


def test_a_failed_commit_says_how_to_commit_an_untracked_file_by_hand(lab: Lab, project: Path) -> None:
    """From a review: after a pre-commit hook refused, the suggested `git commit ... -- PATH` failed
    for a file git did not track (the promote's own `git add` was undone)."""
    git(project, "rm", "-q", "--cached", PROD)
    git(project, "commit", "-q", "-m", "untrack the command")
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed: see above' >&2\nexit 1\n")
    hook.chmod(0o755)
    e = winner(lab)
    result = release.promote(lab, e.id)
    assert result.git is not None and result.git.status == "failed"
    assert "lint failed: see above" in result.summary
    assert "once that is fixed, run: `git -C " in result.summary and f"add -- {PROD} && git -C " in result.summary
    assert PROD not in git(project, "diff", "--cached", "--name-only")  # our add was undone


def test_a_project_in_a_folder_of_a_repository_is_read_as_git_names_it(tmp_path: Path) -> None:
    """From a review: in a monorepo, git names paths from the repository's top: uncommitted() missed
    a modified file, and the promoted file was called one "a commit hook added"."""
    from conftest import GIT_ENV
    from meta_experiment import gitcommit

    repo = tmp_path / "mono"
    project = repo / "proj"
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / PROD).write_text(COMMAND)
    (project / VAR).write_text(VARIANT)
    (project / "café.md").write_text("x\n")
    env = {**GIT_ENV}
    import os
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **env})

    run("init", "-q")
    run("add", "proj/" + PROD, "proj/café.md")
    run("commit", "-q", "-m", "init")
    (project / "café.md").write_text("y\n")
    assert gitcommit.uncommitted(project, [PROD, VAR, "café.md"]) == [VAR, "café.md"]
    lab = Lab.open(project)
    try:
        e = lab.create(**spec(sample_size_required=20))
        from release_helpers import record_trials

        record_trials(lab, e.id)
        result = release.promote(lab, e.id)
        assert result.git is not None and result.git.status == "committed"
        assert "commit hook" not in result.git.detail
        assert commit_paths(repo) == {"proj/" + PROD}
    finally:
        lab.close()


def test_a_folder_on_the_path_that_became_a_file_is_named(lab: Lab, project: Path) -> None:
    e = promoted(lab)
    shutil.move(project / ".claude" / "commands", project / "commands-aside")
    (project / ".claude" / "commands").write_text("")
    with pytest.raises(PathError, match="A folder on the path of .* is now a file.*Move that file aside"):
        release.rollback(lab, e.id, dry_run=True)


def test_an_operation_running_in_another_process_is_in_progress_not_interrupted(
    lab: Lab, project: Path, checkpoints
) -> None:
    """From a review: while a promote ran (a slow git hook), every other command called it
    interrupted, to be finished at the next start."""
    from meta_experiment.report import render_status

    e = winner(lab)
    checkpoints("journal_written", Interrupted("killed"))
    with pytest.raises(Interrupted):
        release.promote(lab, e.id)
    deploy.set_checkpoint_hook(None)
    with deploy.deploy_lock(lab.state_dir):  # as the process still running it holds the lock
        [note] = operations.recover(lab)
        assert note.message == (
            f"The promote of {e.id} is in progress in another process (it holds the deploy lock); if that "
            "process is killed, the next start of the server or CLI finishes or undoes it"
        )
        assert f"{e.id}: promote in progress (applying) in another process" in render_status(lab.status())
    assert "by the next promote or rollback, or at the next start" in render_status(lab.status())


def test_rolling_back_a_file_another_running_experiment_tests_is_warned_of(lab: Lab, project: Path) -> None:
    """From a review: a rollback changed the baseline of a running experiment on the same file with
    no word; that experiment's promote then refused."""

    first = promoted(lab)
    (project / "v3.md").write_text(VARIANT + "v3\n")
    second = lab.create(**spec(files={PROD: "v3.md"}))
    dry = release.rollback(lab, first.id, dry_run=True)
    assert any(f"{PROD} is under test in {second.id}, which has not ended" in w for w in dry.warnings)
    assert not any("under test" in w for w in release.rollback(lab, second.id, dry_run=True).warnings)


@pytest.mark.parametrize(("point", "stays"), [("journal_written", "running"), ("state_marked", "promoted")])
def test_ctrl_c_during_a_cli_promote_cancels_it_or_finishes_it(
    project: Path, checkpoints, capsys, point: str, stays: str
) -> None:
    """From a review: Ctrl-C during `meta-experiment promote` ended silently, and the next command
    (even `status`) then finished the promotion and committed it. Before the status changed, a
    Ctrl-C now cancels (files put back); after, the promote is closed without running the commit
    (and its hook) again, with the commands to commit; either way it says so."""
    from meta_experiment import cli

    lab = Lab.open(project)
    try:
        e = winner(lab)
    finally:
        lab.close()
    checkpoints(point, KeyboardInterrupt())
    assert cli.main(["--project", str(project), "promote", e.id, "--yes"]) == 130
    deploy.set_checkpoint_hook(None)
    said = capsys.readouterr().err
    lab = Lab.open(project)
    try:
        assert lab.recovered == [] and journal.unfinished_ids(lab.store) == []
        assert lab.get(e.id).status == stays
        if stays == "running":
            assert f"Cancelled: promote of {e.id} undone: Interrupted (Ctrl-C) before it was done." in said
            assert (project / PROD).read_text() == COMMAND
        else:
            assert (
                f"The promote of {e.id} was done when interrupted (its status was recorded); git: commit failed: "
                in said
            )
            assert "the commit was interrupted (Ctrl-C). The files are changed on disk but not committed" in said
            assert "run: `git -C " in said and f"add -- {PROD} && git -C " in said
            assert (project / PROD).read_text() == VARIANT and PROD in git(project, "status", "--porcelain")
    finally:
        lab.close()


def test_a_commit_hook_that_refuses_without_a_word_is_named(lab: Lab, project: Path) -> None:
    """From a review: a pre-commit hook that is just `exit 1` gave 'commit failed: no message from
    git ... once that is fixed', where nothing said what 'that' was."""
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    done = release.promote(lab, winner(lab).id)
    assert done.git.status == "failed"
    assert "git commit exited with status 1 and printed nothing (a commit hook that refused it" in done.git.detail


def test_a_live_commit_waits_for_another_gits_brief_index_lock(lab: Lab, project: Path) -> None:
    """From a review: an editor's `git status` running in a loop held index.lock at the moment of the
    promote's commit in 3 of 30 operations; the promote failed (exit 3) with git's advice to remove
    a lock that a running git held. A fresh lock is waited for, briefly, and the commit made."""
    import threading

    e = winner(lab)
    lock = project / ".git" / "index.lock"

    def other_git(point: str) -> None:
        if point == "state_marked":  # right before the commit: another git takes the lock for 0.5 s
            lock.write_text("")
            threading.Timer(0.5, lock.unlink).start()

    deploy.set_checkpoint_hook(other_git)
    try:
        done = release.promote(lab, e.id)
    finally:
        deploy.set_checkpoint_hook(None)
    assert done.git.status == "committed", done.git.detail
    assert git(project, "status", "--porcelain", "--", PROD) == "" and not lock.exists()


def test_a_ctrl_c_to_the_cli_alone_during_the_commit_hook_leaves_no_index_lock(project: Path) -> None:
    """From a review: SIGINT to the CLI's own pid (`kill -INT`, an IDE's stop button) while the
    repository's pre-commit hook ran: subprocess.run SIGKILLed git, which left .git/index.lock
    behind, and the `git add ... && git commit ...` line the CLI printed then failed on it. git now
    gets the SIGINT and removes its lock, as at a terminal's Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import package_env

    lab = Lab.open(project)
    try:
        e = winner(lab)
    finally:
        lab.close()
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nsleep 3\n")
    hook.chmod(0o755)
    lock = project / ".git" / "index.lock"
    promote = subprocess.Popen(
        [sys.executable, "-m", "meta_experiment", "--project", str(project), "promote", e.id, "--yes"],
        env=package_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not lock.exists() and time.monotonic() < deadline and promote.poll() is None:
            time.sleep(0.01)
        assert lock.exists(), "the commit's hook never ran"
        time.sleep(0.3)
        os.kill(promote.pid, signal.SIGINT)
        _, err = promote.communicate(timeout=60)
    finally:
        if promote.poll() is None:
            promote.kill()
            promote.wait()
    assert promote.returncode == 130, err
    assert not lock.exists()
    hook.unlink()
    line = err.split("run: `", 1)[1].split("`", 1)[0]
    done = subprocess.run(line, shell=True, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert git(project, "status", "--porcelain", "--", PROD) == "" and (project / PROD).read_text() == VARIANT


def test_promote_yes_prints_the_warnings(lab: Lab, project: Path, capsys) -> None:
    """From a review: `promote --yes` printed the summary line only, so a warning (here: the variant
    was edited after the start, and the tested snapshot is what is promoted) was never seen."""
    from meta_experiment import cli

    e = winner(lab)
    (project / VAR).write_text(VARIANT + "an edit after the start\n")
    assert cli.main(["--project", str(project), "promote", e.id, "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Promoted {e.id}") and "\nWarning: " in out and "```diff" not in out


def test_ctrl_c_is_dealt_with_before_the_lock_is_let_go(lab: Lab, project: Path, checkpoints, monkeypatch) -> None:
    """From a review: the CLI cancelled an interrupted promote only after the deploy lock was let go,
    so another process waiting for it (a stop in another terminal) took the promote for a dead
    process's and finished it. Now nothing is left unfinished when the Ctrl-C leaves the promote;
    a second Ctrl-C during the cancel leaves it to recovery, and says so."""
    e = winner(lab)
    checkpoints("journal_written", KeyboardInterrupt())
    with pytest.raises(operations.Interrupted) as stopped:
        release.promote(lab, e.id)
    assert journal.unfinished_ids(lab.store) == []
    assert stopped.value.said == [
        f"Cancelled: promote of {e.id} undone: Interrupted (Ctrl-C) before it was done. Files put back to their "
        "previous content: none needed; the experiment stays running."
    ]
    assert lab.get(e.id).status == "running" and (project / PROD).read_text() == COMMAND

    def again(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy, "undo_steps", again)
    with pytest.raises(operations.Interrupted) as twice:
        release.promote(lab, e.id)
    [said] = twice.value.said
    assert said.startswith(f"Interrupted again: the promote of {e.id} is left unfinished")
    assert len(journal.unfinished_ids(lab.store)) == 1


def test_ctrl_c_before_the_journal_says_nothing_was_written(lab: Lab, project: Path, checkpoints) -> None:
    """From a review: Ctrl-C while the backup was written ended the CLI with no word."""
    e = winner(lab)
    checkpoints("backup_written", KeyboardInterrupt())
    with pytest.raises(operations.Interrupted) as stopped:
        release.promote(lab, e.id)
    assert stopped.value.said == [f"Cancelled before the promote of {e.id} began: nothing was promoted."]
    assert lab.get(e.id).status == "running" and journal.unfinished_ids(lab.store) == []


def test_a_stop_that_waited_for_a_promote_says_to_roll_the_promotion_back(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: a rollback that waited for the deploy lock while another process promoted
    refused with "it cannot be stopped". It says now what happened and what to run; it does not
    write production files the person did not see."""
    e = winner(lab)
    real = deploy.deploy_lock

    def promoted_meanwhile(state_dir, **kwargs):  # another process promotes before this one has the lock
        monkeypatch.setattr(deploy, "deploy_lock", real)
        other = Lab.open(project)
        try:
            release.promote(other, e.id)
        finally:
            other.close()
        return real(state_dir, **kwargs)

    monkeypatch.setattr(deploy, "deploy_lock", promoted_meanwhile)
    with pytest.raises(InvalidState, match=f"{e.id} was promoted meanwhile, so nothing was stopped; to undo"):
        release.rollback(lab, e.id, reason="ship nothing")
    assert lab.get(e.id).status == "promoted" and (project / PROD).read_text() == VARIANT


def test_a_promote_the_policy_refuses_says_first_that_production_was_edited(lab: Lab, project: Path) -> None:
    """From a review: with production edited since the start and the policy not ready, promote
    advised force, which then failed on the edit that only the dry run had shown."""

    e = lab.create(**spec(sample_size_required=20))
    (project / PROD).write_text(COMMAND + "an edit by a person\n")
    with pytest.raises(Conflict, match="The policy does not say promote yet either") as refused:
        release.promote(lab, e.id)
    assert "force" not in str(refused.value).split("The policy does not say")[0]
    assert refused.value.diff and "an edit by a person" in refused.value.diff


# -- from a review of the fixes above (2026-11-27) --------------------------------------------------------


def test_ctrl_c_commands_leave_out_ignored_files(project: Path, checkpoints) -> None:
    _ignored_local_file(project)
    lab = Lab.open(project)
    try:
        e = winner(lab, files={"CLAUDE.local.md": "CLAUDE.local.md.experiment", PROD: VAR})
        checkpoints("state_marked", KeyboardInterrupt())
        with pytest.raises(operations.Interrupted) as stopped:
            release.promote(lab, e.id)
        [said] = stopped.value.said
        assert said.endswith(f"-- {PROD}`") and f"add -- {PROD} && git -C " in said  # not the ignored file
    finally:
        lab.close()


def test_ctrl_c_after_the_commit_or_after_the_end_says_it_was_done(lab: Lab, project: Path, checkpoints) -> None:
    """From a review: a Ctrl-C after the commit went through recorded "nothing to commit" without the
    commit; one after the operation had ended said nothing at all."""
    e = winner(lab)
    checkpoints("committed", KeyboardInterrupt())
    with pytest.raises(operations.Interrupted) as stopped:
        release.promote(lab, e.id)
    [said] = stopped.value.said
    sha = head(project)
    assert said.endswith(f"git: committed {sha[:12]}") and commit_paths(project) == {PROD}
    op = journal.latest(lab.store, e.id)
    assert op is not None and op.git is not None and op.git.commit == sha
    assert journal.unfinished_ids(lab.store) == []


def test_ctrl_c_after_the_dispatcher_was_taken_out_says_to_dispatch_again(lab: Lab, project: Path, checkpoints) -> None:
    from meta_experiment.dispatch_ops import set_dispatch

    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    checkpoints("backup_written", KeyboardInterrupt())
    with pytest.raises(operations.Interrupted) as stopped:
        release.promote(lab, e.id, force=True, reason="ship")
    first, second = stopped.value.said
    assert first == f"Cancelled before the promote of {e.id} began: nothing was promoted."
    assert "was taken out (the original put back) before the promotion" in second
    assert second.endswith(f"The experiment still runs: to hand its runs trials again, run dispatch {e.id}.")
    assert lab.get(e.id).status == "running"


# -- a path under test that became a FIFO, a folder; names too long; an arm too large to hand over -----


def test_a_fifo_in_place_of_a_file_under_test_is_named_and_never_read(lab: Lab, project: Path) -> None:
    """From a review: reading a FIFO blocks until a writer comes, so status, promote (even a dry
    run, with the deploy lock held) and assign hung, in every process. Each finishes at once now."""
    import os
    import threading

    from meta_experiment.report import render_status

    e = winner(lab)
    (project / PROD).unlink()
    os.mkfifo(project / PROD)
    done: list[object] = []

    def calls() -> None:
        with pytest.raises(PathError, match="is now a special file .* not a regular file. Nothing was written"):
            release.promote(lab, e.id, dry_run=True)
        done.append(render_status(lab.status()))
        done.append([w for _ in range(6) for w in lab.assign(e.id).warnings])

    worker = threading.Thread(target=calls, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "a call blocked on the FIFO"
    report, warnings = done
    assert f"{PROD} (unreadable)" in str(report)
    assert any("is now a special file (a FIFO, socket or device), not a file" in w for w in warnings)  # type: ignore[union-attr]


def test_assign_says_a_file_that_became_a_folder_is_a_folder(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    (project / PROD).unlink()
    (project / PROD).mkdir()
    warnings = [w for _ in range(6) for w in lab.assign(e.id).warnings]
    assert any(f"{PROD} is now a folder, not a file" in w for w in warnings) and not any(
        "missing" in w for w in warnings
    )


def test_an_arm_whose_files_would_make_assign_answer_too_large_is_refused_at_create(lab: Lab, project: Path) -> None:
    """From a review: each file was capped at 2 MB but not an arm's total, and assign's answer of
    11.9 MB made a TypeScript client (the Inspector) drop the connection, leaving the trial open."""
    from meta_experiment.lifecycle import MAX_ARM_BYTES

    files = {}
    for i in range(4):
        (project / f"f{i}.md").write_text("prod line\n" * 1000)
        (project / f"f{i}.var").write_text('var "x"\n' * 200_000)  # 1.6 MB, 2 MB JSON-escaped
        files[f"f{i}.md"] = f"f{i}.var"
    before = lab.experiments()
    with pytest.raises(InvalidInput, match=r"The treatment arm's files come to 8,\d{3},\d{3} bytes .* the limit is"):
        lab.create(**spec(files=files))
    assert lab.experiments() == before  # nothing was made
    two = dict(list(files.items())[:2])
    made = lab.create(**spec(files=two))  # 4 MB escaped: under the limit, and assign hands it whole
    import json

    answer = lab.assign(made.id).model_dump_json()
    assert len(answer.encode()) < MAX_ARM_BYTES + 100_000 and json.loads(answer)["files"]


def test_a_name_too_long_for_the_file_system_is_a_path_error(lab: Lab, project: Path) -> None:
    from meta_experiment import interchange

    long = "e" * 300 + ".md"
    with pytest.raises(PathError, match=r"The production file 'e{60}\.\.\.e{9}\.md' is too long for the file system"):
        lab.create(**spec(files={long: VAR}))
    with pytest.raises(PathError, match="The variant file .* is too long for the file system"):
        lab.create(**spec(files={PROD: "a/" * 3000 + "x.md"}))
    with pytest.raises(PathError, match="The export path .* is too long for the file system"):
        interchange.export_path(lab, long)
    with pytest.raises(PathError, match="The import file .* is too long"):
        interchange.read_document(lab, long)


def test_a_file_the_same_in_both_arms_is_left_alone_by_promote_and_rollback(lab: Lab, project: Path) -> None:
    """From a review: a file under test with the same content in both arms (one of several) took
    part in promote and rollback, so a hand edit of it, which the experiment never made, blocked
    rolling back the file it did change. It is left as it is, and said so."""
    (project / "shared.md").write_text("shared\n")
    git(project, "add", "shared.md")
    git(project, "commit", "-q", "-m", "shared")
    (project / "shared.v2.md").write_text("shared\n")
    e = winner(lab, files={PROD: VAR, "shared.md": "shared.v2.md"})
    (project / "shared.md").write_text("shared\nmy own edit, before the promotion\n")
    from meta_experiment.status import file_drift

    assert file_drift(project, lab.get(e.id))[0] == []  # status does not say promote would refuse
    done = release.promote(lab, e.id)
    assert done.outcome == "promoted" and "shared.md is the same in both arms: left as it is." in done.warnings
    assert git(project, "show", "--name-only", "--format=", "HEAD").split() == [PROD]
    (project / "shared.md").write_text("shared\nanother edit, after it\n")
    back = release.rollback(lab, e.id, reason="undo")
    assert back.outcome == "rolled_back" and (project / PROD).read_text() == COMMAND
    assert (project / "shared.md").read_text() == "shared\nanother edit, after it\n"


def test_rolling_back_a_promotion_another_was_promoted_on_top_of_names_it(lab: Lab, project: Path) -> None:
    """From a review: rolling back E1 after E2 promoted another variant of the same file said the
    file "was edited after promotion" and advised reverting it by hand, which would undo E2 behind
    its back. The refusal names E2, to be rolled back first."""
    first = promoted(lab)
    (project / "review_pr.v3.md").write_text(VARIANT + "And a third version.\n")
    second = promoted(lab, files={PROD: "review_pr.v3.md"})
    before = (project / PROD).read_bytes()
    with pytest.raises(Conflict, match=f"now holds what {second.id} promoted after it.*Roll {second.id} back first"):
        release.rollback(lab, first.id, reason="undo")
    assert (project / PROD).read_bytes() == before and lab.get(first.id).status == "promoted"
    release.rollback(lab, second.id, reason="undo the second")
    assert release.rollback(lab, first.id, reason="undo").outcome == "rolled_back"
    assert (project / PROD).read_text() == COMMAND


def test_a_later_promotion_of_the_same_variant_is_not_undone_by_rolling_back_the_first(lab: Lab, project: Path) -> None:
    """From a review: A promoted X->Y, B promoted Y->X (a revert), C promoted Y again: rolling A back
    went through (the file held A's variant) and wrote X, leaving C marked promoted with its change
    gone. The rollback names the latest promotion after it, to be rolled back first; a promotion
    made before A does not count."""
    (project / "revert.md").write_text(COMMAND)
    (project / "again.md").write_text(VARIANT)
    first = promoted(lab)
    revert = promoted(lab, files={PROD: "revert.md"})
    again = promoted(lab, files={PROD: "again.md"})
    assert (project / PROD).read_text() == VARIANT
    with pytest.raises(Conflict, match=f"{again.id} was promoted on {PROD} after it.*Roll {again.id} back first"):
        release.rollback(lab, first.id, reason="undo")
    assert (project / PROD).read_text() == VARIANT and lab.get(first.id).status == "promoted"
    release.rollback(lab, again.id, reason="undo the third")  # back to X, what the revert promoted
    assert release.rollback(lab, first.id, reason="undo").outcome == "rolled_back"  # it holds X already
    assert (project / PROD).read_text() == COMMAND and lab.get(revert.id).status == "promoted"


def test_a_later_promotion_that_left_the_file_as_it_was_does_not_hold_a_rollback(lab: Lab, project: Path) -> None:
    """From a review: B, promoted after A, listed A's file with the same content in both arms (left as
    it was) and changed another; A's rollback was refused as if B's change of that file would go."""
    first = promoted(lab)
    other = ".claude/commands/other.md"
    (project / other).write_text("other v1\n")
    git(project, "add", other)
    git(project, "commit", "-qm", "other")
    (project / "b_prod.md").write_text(VARIANT)
    (project / "b_other.md").write_text("other v2\n")
    promoted(lab, name="B", files={PROD: "b_prod.md", other: "b_other.md"})
    assert release.rollback(lab, first.id, reason="undo A").outcome == "rolled_back"
    assert (project / PROD).read_text() == COMMAND and (project / other).read_text() == "other v2\n"


def test_a_later_a_a_promotion_of_the_same_content_still_holds_the_rollback(lab: Lab, project: Path) -> None:
    """From a review: an experiment whose only file is the same in both arms (an A/A test) holds that
    file when promoted; the rule for files left as they were must not let A's rollback undo it."""
    first = promoted(lab)
    (project / "same.md").write_text(VARIANT)
    same = promoted(lab, name="A/A", files={PROD: "same.md"})
    with pytest.raises(Conflict, match=f"Roll {same.id} back first"):
        release.rollback(lab, first.id, reason="undo")
    assert (project / PROD).read_text() == VARIANT


def test_rolling_back_under_another_experiments_dispatcher_names_it(lab: Lab, project: Path) -> None:
    """From a review: rolling A back while a later experiment B on the same file was dispatching
    said the file "was edited after promotion" and advised reverting it by hand (which would have
    thrown B's dispatcher away)."""
    from meta_experiment.dispatch_ops import set_dispatch

    first = promoted(lab)
    (project / "third.md").write_text(VARIANT + "A third version.\n")
    later = lab.create(**spec(name="later", files={PROD: "third.md"}))
    set_dispatch(lab, later.id, True)
    held = (project / PROD).read_bytes()
    with pytest.raises(Conflict, match=f"holds the dispatcher of experiment {later.id}.*nobody edited it") as info:
        release.rollback(lab, first.id, reason="undo")
    assert f"meta-experiment dispatch {later.id} --off" in str(info.value)
    assert (project / PROD).read_bytes() == held and lab.get(first.id).status == "promoted"


def test_a_commit_hook_that_reformats_the_promoted_file(lab: Lab, project: Path) -> None:
    """From a review: a formatter run by a pre-commit hook (lint-staged style: it rewrites the file
    and adds it) made the commit hold its version, left git's index holding the variant as tested
    (the person's next commit would undo the formatting), and the rollback then refused the
    formatted file as an edit. The index is put back, the note says what happened, and a rollback
    starts from the hook's version."""
    (project / VAR).write_text(VARIANT.replace("\n", "   \n", 1))  # trailing spaces the formatter strips
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text(f'#!/bin/sh\nsed -i "s/ *$//" {PROD} && git add {PROD}\n')
    hook.chmod(0o755)
    e = winner(lab)
    done = release.promote(lab, e.id)
    assert done.git.status == "committed"
    assert f"a commit hook changed {PROD} as it committed: the commit holds the hook's version" in done.git.detail
    assert git(project, "show", f"HEAD:{PROD}") == VARIANT == (project / PROD).read_text()
    assert git(project, "diff", "--cached", "--name-only") == ""  # nothing staged behind the person's back
    assert git(project, "diff", "--name-only", "--", PROD) == ""
    from meta_experiment.release_status import changed_since_promotion

    assert changed_since_promotion(lab, lab.get(e.id)) == []  # status does not call it an edit
    (project / "notes.md").write_text("an unrelated edit\n")  # a later edit elsewhere changes nothing here
    back = release.rollback(lab, e.id, reason="undo")
    assert back.outcome == "rolled_back" and (project / PROD).read_text() == COMMAND
    assert any("holds the version a commit hook made of the promoted file" in w for w in back.warnings)
    assert (lab.state_dir / back.files[0].backup).read_text() == VARIANT  # the hook's version, backed up


def test_a_save_between_the_promotions_write_and_its_commit_is_not_taken_for_a_hooks_version(
    lab: Lab, project: Path
) -> None:
    """From a review: `git commit --only` commits the file as it is on disk when it runs, so an
    editor's save landing between the promote's write and its commit went into the commit; the
    promote said 'committed' without a word, and a rollback then took the person's line for a
    commit hook's version and replaced it. The commit is checked against what was written."""
    e = winner(lab)

    def editor_saves(point: str) -> None:
        if point == "state_marked":  # the variant is written, the commit not yet made
            with (project / PROD).open("a") as f:
                f.write("a line the person saved\n")

    deploy.set_checkpoint_hook(editor_saves)
    try:
        done = release.promote(lab, e.id)
    finally:
        deploy.set_checkpoint_hook(None)
    assert done.git.status == "committed" and done.git.not_as_written == [PROD]
    assert f"note: {PROD} changed on disk between the write and the commit (an editor saving it?)" in done.git.detail
    with pytest.raises(Conflict, match=f"{PROD} was edited after promotion. Nothing was overwritten"):
        release.rollback(lab, e.id, reason="undo")
    assert (project / PROD).read_text() == VARIANT + "a line the person saved\n"  # kept
    assert lab.get(e.id).status == "promoted"
    # an ordinary promotion has nothing to note
    (project / "other.md").write_text("original\n")
    (project / "other.md.v").write_text("variant\n")
    git(project, "add", "other.md")
    git(project, "commit", "-qm", "other")
    plain = winner(lab, files={"other.md": "other.md.v"})
    assert release.promote(lab, plain.id).git.not_as_written == []


def test_a_formatter_that_fixes_the_file_and_refuses_the_commit(lab: Lab, project: Path) -> None:
    """From a review of the fix above: pre-commit's fixers (trailing-whitespace, black, prettier)
    rewrite the file and fail the commit; the person then runs the advised command, and the commit
    holds the fixed version. status kept advising that commit, and the rollback refused the fixed
    file as an edit. A commit since under the promotion's own message now counts for both; an edit
    committed under another message is still an edit."""
    from meta_experiment.release_status import changed_since_promotion
    from meta_experiment.report import render_status

    (project / VAR).write_text(VARIANT.replace("\n", "   \n", 1))
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text(
        f'#!/bin/sh\nif grep -q " $" {PROD}; then sed -i "s/ *$//" {PROD}; echo "Fixing {PROD}" >&2; exit 1; fi\n'
    )
    hook.chmod(0o755)
    e = winner(lab)
    done = release.promote(lab, e.id)
    assert done.git.status == "failed" and "Fixing" in done.git.detail
    assert (project / PROD).read_text() == VARIANT  # fixed by the hook, not committed
    assert changed_since_promotion(lab, lab.get(e.id)) == []  # the hook's version, read as it refused
    git(project, "commit", "-qm", f"experiment: Promote {e.id} to production", "--", PROD)  # the advice
    assert changed_since_promotion(lab, lab.get(e.id)) == []
    assert "**Git**: committed since, by hand" in render_status(lab.status())
    back = release.rollback(lab, e.id, reason="undo", dry_run=True)
    assert any("holds the version a commit hook made" in w for w in back.warnings)
    (project / PROD).write_text(VARIANT + "My own edit.\n")
    git(project, "commit", "-qm", "an edit of my own", "--", PROD)
    with pytest.raises(Conflict, match="edited after promotion"):
        release.rollback(lab, e.id, reason="undo")


def test_an_edit_made_while_a_refusing_hook_runs_is_not_taken_for_the_hooks(lab: Lab, project: Path) -> None:
    """From a review: a test-suite hook that rewrote nothing ran for minutes, the person edited the
    file meanwhile, and the file as read after the refusal was taken for the hook's version (status
    hid the edit, a rollback replaced it). Only a hook that says it rewrote files has a version."""
    from meta_experiment.release_status import changed_since_promotion

    hook = project / ".git" / "hooks" / "pre-commit"  # the person's edit lands while the tests run
    hook.write_text(f'#!/bin/sh\necho "typed meanwhile" >> {PROD}\necho "2 tests failed" >&2\nexit 1\n')
    hook.chmod(0o755)
    e = winner(lab)
    assert release.promote(lab, e.id).git.status == "failed"
    assert changed_since_promotion(lab, lab.get(e.id)) == [PROD]
    with pytest.raises(Conflict, match="edited after promotion"):
        release.rollback(lab, e.id, reason="undo")
    assert (project / PROD).read_text().endswith("typed meanwhile\n")


def test_an_edit_committed_under_the_promotions_message_is_still_an_edit(lab: Lab, project: Path) -> None:
    """From a review of the change above: when a test-suite hook refused the promotion's commit,
    the advised command, run later, committed the person's own edit too, and under the promotion's
    message it was taken for a commit hook's version: status hid it and a rollback replaced it.
    Only what the refusing hook left on disk at once counts as its version."""
    from meta_experiment.release_status import changed_since_promotion

    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text(f'#!/bin/sh\n[ -f "{project}/tests-pass" ] || {{ echo "tests failed" >&2; exit 1; }}\n')
    hook.chmod(0o755)
    e = winner(lab)
    assert release.promote(lab, e.id).git.status == "failed"
    (project / PROD).write_text(VARIANT + "Also check the migration files by hand.\n")  # the person's own edit
    (project / "tests-pass").write_text("")
    git(project, "commit", "-qm", f"experiment: Promote {e.id} to production", "--", PROD)  # as advised
    assert changed_since_promotion(lab, lab.get(e.id)) == [PROD]
    with pytest.raises(Conflict, match="edited after promotion"):
        release.rollback(lab, e.id, reason="undo")
    assert "Also check the migration files by hand." in (project / PROD).read_text()


@pytest.mark.parametrize(
    ("output", "rewrote"),
    [
        ("- hook id: trailing-whitespace\n- exit code: 1\n- files were modified by this hook\n\nFixing a.md", True),
        ("reformatted bad.py\nAll done! 1 file reformatted, 1 file left unchanged.", True),
        ("Found 3 errors (3 fixed, 0 remaining).", True),
        ("FAILED tests/test_math.py::test_fixed_point - assert 1 == 2", False),
        ("    def test_fmt():\n        reformatted = fmt(text)\n>       assert text == 'b'", False),  # pytest's source
        ("@@ -1,3 +1,3 @@\n def f(x):\n-    fixing = x\n+    fixing = x\n", False),  # a --check --diff
        ("fixing = True", False),
        ("would reformat bad.py\nOh no! 1 file would be reformatted, 2 files would be left unchanged.", False),
        ("Found 3 errors (0 fixed, 3 remaining).", False),
        ("2 tests failed", False),
    ],
)
def test_what_a_refusing_hook_says_when_it_rewrote_files(output: str, rewrote: bool) -> None:
    """From a review: matching words anywhere ('fixed' in a test's name, black --check's 'would be
    reformatted') took a person's edit for the hook's version."""
    from meta_experiment.gitcommit import says_it_rewrote

    assert says_it_rewrote(output) is rewrote


def test_a_fixer_after_many_hooks_is_still_read_as_one(lab: Lab, project: Path) -> None:
    """From a review: the hooks' words were looked for in the first 8 lines kept for display; with
    pre-commit's status line per hook, a fixer after five others was missed and its version called
    an edit. The whole output is read."""
    from meta_experiment.release_status import changed_since_promotion

    (project / VAR).write_text(VARIANT.replace("\n", "   \n", 1))
    lines = "".join(f'echo "check {k}{"." * 60}Passed" >&2\n' for k in range(9))
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text(
        f"#!/bin/sh\n{lines}"
        f'sed -i "s/ *$//" {PROD}\n'
        'echo "trim trailing whitespace....Failed" >&2\n'
        'echo "- files were modified by this hook" >&2\nexit 1\n'
    )
    hook.chmod(0o755)
    e = winner(lab)
    done = release.promote(lab, e.id)
    assert done.git.status == "failed" and "files were modified" not in done.git.detail  # cut from the display
    assert changed_since_promotion(lab, lab.get(e.id)) == []
    assert release.rollback(lab, e.id, reason="undo").outcome == "rolled_back"
