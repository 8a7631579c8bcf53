"""deploy.py and gitcommit.py: confinement at write time, atomic replacement, the journaled steps,
the deploy lock, and git commits of named paths only - on real files and real git repositories."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VARIANT
from meta_experiment import deploy, gitcommit
from meta_experiment.errors import Conflict, PathError
from release_helpers import UNRELATED, commit_paths, git, head, porcelain, unrelated_changes

BLOBS = {deploy.sha256_hex(COMMAND.encode()): COMMAND.encode(), deploy.sha256_hex(VARIANT.encode()): VARIANT.encode()}
STEP = deploy.FileStep(PROD, deploy.sha256_hex(COMMAND.encode()), deploy.sha256_hex(VARIANT.encode()))


def test_replace_file_is_complete_keeps_the_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    target = tmp_path / "dir" / "run.sh"
    target.write_text("old\n")
    target.chmod(0o754)
    deploy.replace_file(target, b"new content\n" * 1000)
    assert target.read_bytes() == b"new content\n" * 1000
    assert stat.S_IMODE(target.stat().st_mode) == 0o754
    assert [p.name for p in target.parent.iterdir()] == ["run.sh"]


def test_stale_temp_files_are_removed_but_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    target = tmp_path / "dir" / "a.md"
    target.write_text("x")
    (target.parent / ".a.md.meta-experiment-abc123.tmp").write_text("half")
    (target.parent / ".b.md.meta-experiment-abc123.tmp").write_text("another file's")
    (target.parent / ".a.md.orig.tmp").write_text("the user's own notes")  # not ours: kept
    assert deploy.remove_stale_temps(target) == 1
    assert sorted(p.name for p in target.parent.iterdir()) == [
        ".a.md.orig.tmp",
        ".b.md.meta-experiment-abc123.tmp",
        "a.md",
    ]


def test_temp_cleanup_is_not_fooled_by_glob_characters(tmp_path: Path) -> None:
    target = tmp_path / "[ab].md"
    target.write_text("x")
    (tmp_path / ".a.md.meta-experiment-1.tmp").write_text("matches [ab] as a glob, but is not ours")
    (tmp_path / ".[ab].md.meta-experiment-2.tmp").write_text("ours")
    assert deploy.remove_stale_temps(target) == 1
    assert (tmp_path / ".a.md.meta-experiment-1.tmp").exists()


def test_promote_leaves_a_users_temp_files_alone(tmp_path: Path) -> None:
    """What a killed write of ours leaves is named .<file>.meta-experiment-*.tmp; a user's
    .<file>.orig.tmp survives replace_file and the cleanup around it."""
    target = tmp_path / "a.md"
    target.write_text("old")
    mine = tmp_path / ".a.md.orig.tmp"
    mine.write_text("my precious notes")
    deploy.replace_file(target, b"new")
    deploy.remove_stale_temps(target)
    assert target.read_bytes() == b"new" and mine.read_text() == "my precious notes"


def test_writable_path_refuses_escapes_and_symlinks(project: Path, tmp_path: Path) -> None:
    assert deploy.writable_path(project, PROD) == project.resolve() / PROD
    for bad in ("../outside.md", str(tmp_path / "outside.md"), "/etc/passwd"):
        with pytest.raises(PathError):
            deploy.writable_path(project, bad)
    inside = project / "real.md"
    inside.write_text("real")
    link = project / "link.md"
    link.symlink_to(inside)
    with pytest.raises(PathError, match="symlink"):
        deploy.writable_path(project, "link.md")  # even pointing inside the project
    (project / "dir").symlink_to(project / ".claude")
    with pytest.raises(PathError, match="symlink"):
        deploy.writable_path(project, "dir/commands/review_pr.md")


def test_apply_steps_is_resumable_and_never_overwrites_foreign_content(project: Path) -> None:
    deploy.apply_steps(project, [STEP], BLOBS.__getitem__)
    assert (project / PROD).read_text() == VARIANT
    deploy.apply_steps(project, [STEP], BLOBS.__getitem__)  # already new: left alone
    assert (project / PROD).read_text() == VARIANT
    assert deploy.undo_steps(project, [STEP], BLOBS.__getitem__) == [PROD]
    assert (project / PROD).read_text() == COMMAND
    (project / PROD).write_text("a person's edit\n")
    with pytest.raises(Conflict) as err:
        deploy.apply_steps(project, [STEP], BLOBS.__getitem__)
    assert "+a person's edit" in (err.value.diff or "")
    assert deploy.undo_steps(project, [STEP], BLOBS.__getitem__) == []
    assert (project / PROD).read_text() == "a person's edit\n"


def test_a_missing_file_is_written_only_where_the_caller_allows_it(project: Path) -> None:
    """A rollback may restore a promoted file someone deleted (absent_ok); undoing that removes it
    again. Anywhere else a missing file is a conflict."""
    shutil.rmtree((project / PROD).parent)
    with pytest.raises(Conflict):
        deploy.apply_steps(project, [STEP], BLOBS.__getitem__)
    deploy.apply_steps(project, [STEP], BLOBS.__getitem__, absent_ok={PROD})
    assert (project / PROD).read_text() == VARIANT  # its folder is made again too
    assert deploy.undo_steps(project, [STEP], BLOBS.__getitem__, absent_ok={PROD}) == [PROD]
    assert not (project / PROD).exists()


def test_deploy_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    with deploy.deploy_lock(tmp_path) as first:
        assert first
        with deploy.deploy_lock(tmp_path, wait=None) as second:
            assert second is False
    with deploy.deploy_lock(tmp_path, wait=None) as again:
        assert again


# -- git ----------------------------------------------------------------------------------------


def test_commit_contains_exactly_the_named_paths_and_leaves_the_index_alone(project: Path) -> None:
    unrelated_changes(project)
    before = porcelain(project)
    (project / PROD).write_text(VARIANT)
    outcome = gitcommit.commit_paths(project, [PROD], "experiment: test\n")
    assert outcome.status == "committed" and outcome.commit == head(project)
    assert outcome.detail == f"committed {outcome.commit[:12]}"
    assert commit_paths(project) == {PROD}
    assert porcelain(project) == before - {f" M {PROD}"}
    assert porcelain(project) >= UNRELATED
    assert git(project, "show", "HEAD:" + PROD) == VARIANT


def test_an_untracked_production_file_is_added_then_committed(project: Path) -> None:
    (project / "new.md").write_text("new\n")
    (project / "stray.md").write_text("not ours\n")
    outcome = gitcommit.commit_paths(project, ["new.md"], "add new\n")
    assert outcome.status == "committed"
    assert commit_paths(project) == {"new.md"}
    assert "?? stray.md" in porcelain(project)


def test_nothing_to_commit_is_reported_not_an_error(project: Path) -> None:
    outcome = gitcommit.commit_paths(project, [PROD], "same\n")
    assert outcome.status == "nothing_to_commit"


def test_a_failing_pre_commit_hook_is_reported_and_our_add_is_undone(project: Path) -> None:
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed: trailing spaces' >&2\nexit 1\n")
    hook.chmod(0o755)
    (project / "new.md").write_text("new\n")
    before, before_head = porcelain(project), head(project)
    outcome = gitcommit.commit_paths(project, ["new.md"], "add new\n")
    assert outcome.status == "failed"
    assert outcome.detail.startswith("commit failed:") and "lint failed" in outcome.detail
    assert head(project) == before_head and porcelain(project) == before


def test_not_a_repository_and_git_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.md").write_text("a")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert gitcommit.commit_paths(plain, ["a.md"], "m").status == "not_a_repository"
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    outcome = gitcommit.commit_paths(plain, ["a.md"], "m")
    assert outcome.status == "git_not_installed" and outcome.detail.startswith("git not installed")


def test_identity_falls_back_only_when_none_is_configured(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert gitcommit.identity_args(project) == ()
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    config = Path(os.environ["GIT_CONFIG_GLOBAL"])
    config.write_text("[user]\n\tuseConfigOnly = true\n")
    assert gitcommit.identity_args(project) == gitcommit.FALLBACK_IDENTITY
    (project / PROD).write_text(VARIANT)
    assert gitcommit.commit_paths(project, [PROD], "m\n").status == "committed"
    assert git(project, "log", "-1", "--format=%an <%ae>").strip() == "meta-experiment <meta-experiment@localhost>"
    assert "user.name" not in git(project, "config", "--list", "--show-origin")  # nothing written to config
