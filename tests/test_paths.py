"""Path confinement and where the project and its state live."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from meta_experiment import paths
from meta_experiment.errors import PathError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "a.md").write_text("a")
    (tmp_path / "outside.md").write_text("secret")
    return r


def test_relative_path_inside_is_normalised(root: Path) -> None:
    assert paths.confine(root, "sub/./a.md") == "sub/a.md"
    assert paths.confine(root, str(root / "sub" / "a.md")) == "sub/a.md"
    assert paths.confine(root, "sub/../sub/a.md") == "sub/a.md"


@pytest.mark.parametrize("bad", ["../outside.md", "sub/../../outside.md", "/etc/passwd"])
def test_escapes_are_refused(root: Path, bad: str) -> None:
    with pytest.raises(PathError, match=f"outside the project root '{root.resolve()}'"):
        paths.confine(root, bad)


def test_symlink_pointing_outside_is_refused(root: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside.md", root / "sub" / "link.md")
    with pytest.raises(PathError, match="symlink"):
        paths.confine(root, "sub/link.md")


def test_symlinked_folder_pointing_outside_is_refused(root: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path, root / "escape")
    with pytest.raises(PathError, match="symlink"):
        paths.confine(root, "escape/outside.md")


def test_symlink_inside_the_root_is_accepted_as_its_target(root: Path) -> None:
    os.symlink(root / "sub" / "a.md", root / "alias.md")
    assert paths.confine(root, "alias.md") == "sub/a.md"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("sub/missing.md", "does not exist"),
        ("sub", r"not a regular file \(a folder: name a file inside it\)"),
        (".", "project root itself"),
        ("a\x00b", "NUL"),
    ],
)
def test_unusable_paths_say_why(root: Path, bad: str, message: str) -> None:
    with pytest.raises(PathError, match=message):
        paths.confine(root, bad)


def test_missing_file_allowed_when_asked(root: Path) -> None:
    assert paths.confine(root, "sub/new.json", must_exist=False) == "sub/new.json"


def test_project_root_prefers_claude_project_dir(tmp_path: Path) -> None:
    assert paths.find_project_root(tmp_path, {"CLAUDE_PROJECT_DIR": str(tmp_path / "x")}) == (tmp_path / "x").resolve()


def test_a_session_in_a_subfolder_works_with_the_nearest_project_above_with_state(tmp_path: Path) -> None:
    """Claude Code gives a session started in packages/app that folder as CLAUDE_PROJECT_DIR: the
    project is the nearest folder above with state, up to the repository's top, unless the
    subfolder has state of its own; nothing above the repository's top counts."""
    outer = tmp_path / "outer"
    repo = outer / "repo"
    app = repo / "packages" / "app"
    app.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (outer / ".meta-experiment").mkdir()
    (outer / ".meta-experiment" / paths.DB_FILE_NAME).write_bytes(b"")
    env = {"CLAUDE_PROJECT_DIR": str(app)}
    assert paths.find_project_root(app, env) == app.resolve()  # the state above the repository is another's
    (repo / ".meta-experiment").mkdir()
    (repo / ".meta-experiment" / paths.DB_FILE_NAME).write_bytes(b"")
    assert paths.find_project_root(app, env) == repo.resolve()
    assert paths.find_session_folder(app, env) == app.resolve()
    assert paths.find_project_root(app, {**env, "META_EXPERIMENT_HOME": "state"}) == app.resolve()  # none there
    assert paths.find_project_root(app, {**env, "META_EXPERIMENT_HOME": str(tmp_path / "s")}) == app.resolve()
    (app / ".meta-experiment").mkdir()
    (app / ".meta-experiment" / paths.DB_FILE_NAME).write_bytes(b"")
    assert paths.find_project_root(app, env) == app.resolve()  # state of its own: a project of its own


def test_a_terminal_in_a_subfolder_with_its_own_experiments_sees_them(tmp_path: Path) -> None:
    """From a review: a session started in packages/app stored its experiments there (nothing
    above had any), but the CLI in that same folder read the repository's top and said there were
    none, telling the person to go to the folder they were in."""
    repo = tmp_path / "repo"
    app = repo / "packages" / "app"
    (app / "src").mkdir(parents=True)
    (repo / "docs").mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    assert paths.find_project_root(app / "src", {}) == repo.resolve()  # no state anywhere: the top
    (app / ".meta-experiment").mkdir()
    (app / ".meta-experiment" / paths.DB_FILE_NAME).write_bytes(b"")
    assert paths.find_project_root(app, {}) == app.resolve()
    assert paths.find_project_root(app / "src", {}) == app.resolve()
    assert paths.find_project_root(repo / "docs", {}) == repo.resolve()  # another folder: the top
    assert paths.find_project_root(app, {"META_EXPERIMENT_HOME": str(tmp_path / "s")}) == repo.resolve()


def test_outside_a_repository_no_folder_above_is_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: a state folder in the home folder (not a repository) was adopted by every
    folder below it, so a session in ~/proj created and promoted the home folder's notes.md. A
    CLAUDE_PROJECT_DIR that does not exist is refused as before, not replaced by a folder above."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    home = tmp_path / "home"
    proj = home / "proj" / "sub"
    proj.mkdir(parents=True)
    (home / ".meta-experiment").mkdir()
    (home / ".meta-experiment" / paths.DB_FILE_NAME).write_bytes(b"")
    assert paths.find_project_root(proj, {"CLAUDE_PROJECT_DIR": str(proj)}) == proj.resolve()
    assert paths.find_project_root(proj, {}) == proj.resolve()
    typo = home / "pakages" / "typo"
    assert paths.find_project_root(proj, {"CLAUDE_PROJECT_DIR": str(typo)}) == typo.resolve()


def test_project_root_is_the_git_top_level(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "deep" / "er").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    assert paths.find_project_root(repo / "deep" / "er", {}) == repo.resolve()


def test_project_root_falls_back_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert paths.find_project_root(plain, {}) == plain.resolve()


def test_state_dir_default_and_override(tmp_path: Path) -> None:
    assert paths.find_state_dir(tmp_path, {}) == tmp_path / ".meta-experiment"
    assert paths.find_state_dir(tmp_path, {"META_EXPERIMENT_HOME": str(tmp_path / "s")}) == (tmp_path / "s").resolve()
    # relative: of the project, not of the working folder (a command from a subfolder finds the same state)
    assert paths.find_state_dir(tmp_path, {"META_EXPERIMENT_HOME": "state"}) == (tmp_path / "state").resolve()
    assert paths.find_state_dir(tmp_path / "p", {"META_EXPERIMENT_HOME": "../s"}) == (tmp_path / "s").resolve()


def test_state_dir_gets_its_own_gitignore(tmp_path: Path) -> None:
    state = paths.ensure_state_dir(tmp_path / ".meta-experiment")
    assert (state / ".gitignore").read_text().splitlines()[-1] == "*"


def test_the_state_folder_and_backups_are_the_owners_alone(tmp_path: Path) -> None:
    """From a review: a 0600 file under test (a token in .mcp.json) had its snapshot in a
    database and its backup in a file that anyone on the machine could read."""
    from meta_experiment.files import backup_bytes

    state = paths.ensure_state_dir(tmp_path / "deep" / ".meta-experiment")
    assert state.stat().st_mode & 0o777 == 0o700
    assert backup_bytes(state, b"token=secret\n").stat().st_mode & 0o777 == 0o600
    (tmp_path / "shared").mkdir(mode=0o755)
    paths.ensure_state_dir(tmp_path / "shared")  # a folder that exists (META_EXPERIMENT_HOME) is left as it is
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o755


def test_a_new_database_is_private_in_a_private_folder_and_a_shared_folder_stays_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database holds every snapshot: made 0600 in the folder ensure_state_dir makes (0700). A
    review found that tightening existing folders on every open locked out a group sharing one
    (chmod -R g+rwX), so an existing folder keeps its permissions, and what is made in a shared one
    is made as the umask gives."""
    from meta_experiment.files import backup_bytes
    from meta_experiment.lifecycle import Lab

    project = tmp_path / "p"
    project.mkdir()
    Lab.open(project).close()
    state = project / ".meta-experiment"
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / paths.DB_FILE_NAME).stat().st_mode & 0o777 == 0o600
    shared = tmp_path / "shared" / ".meta-experiment"
    shared.mkdir(parents=True)
    shared.chmod(0o2775)  # a group's: g+rwX, g+s
    monkeypatch.setenv("META_EXPERIMENT_HOME", str(shared))
    (tmp_path / "q").mkdir()
    Lab.open(tmp_path / "q").close()
    assert shared.stat().st_mode & 0o7777 == 0o2775  # left as it was
    assert (shared / paths.DB_FILE_NAME).stat().st_mode & 0o044 == 0o044  # readable by the group, as before
    assert backup_bytes(shared, b"x\n").stat().st_mode & 0o040


def test_a_state_folder_this_user_cannot_read_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: another user's private state folder gave a PermissionError traceback. (Root,
    which runs the tests here, is never refused: the refusal is simulated.)"""
    from meta_experiment.errors import StoreError
    from meta_experiment.lifecycle import Lab

    real = Path.exists

    def refused(self: Path, *args: object, **kwargs: object) -> bool:
        if self.name == paths.DB_FILE_NAME:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "exists", refused)
    with pytest.raises(StoreError, match=r"cannot be read by this user.*chmod -R g\+rwX.*META_EXPERIMENT_HOME"):
        Lab.open(tmp_path, create=False)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (".git/config", "git's own folder"),
        ("sub/.git/HEAD", "git's own folder"),
        (".meta-experiment/experiments.db", "state folder"),
    ],
)
def test_git_and_state_files_are_refused(root: Path, path: str, message: str) -> None:
    with pytest.raises(PathError, match=message):
        paths.confine(root, path, must_exist=False)


def test_a_state_folder_moved_into_the_project_is_refused(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("META_EXPERIMENT_HOME", str(root / "state"))
    with pytest.raises(PathError, match="state folder"):
        paths.confine(root, "state/experiments.db", must_exist=False)
    assert paths.confine(root, "sub/a.md") == "sub/a.md"


def test_a_file_in_a_nested_repository_or_submodule_is_refused(root: Path) -> None:
    (root / "sub" / ".git").write_text("gitdir: ../.git/modules/sub\n")  # how a submodule looks
    with pytest.raises(PathError, match="nested git repository or submodule"):
        paths.confine(root, "sub/a.md")


def test_a_state_folder_that_is_a_file_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: META_EXPERIMENT_HOME naming a file gave "File exists. Make the project folder
    writable", the wrong cause."""
    from meta_experiment.errors import StoreError
    from meta_experiment.lifecycle import Lab

    (tmp_path / "notes.txt").write_text("mine\n")
    monkeypatch.setenv("META_EXPERIMENT_HOME", "notes.txt")  # relative: of the project
    with pytest.raises(StoreError, match="is a file, not a folder \\(META_EXPERIMENT_HOME names it\\)"):
        Lab.open(tmp_path, create=True)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
