"""Fixes from a review of the command line: the demo in front of a person's own git settings, the
exit status and the advice after a commit that failed, a confirmation nobody would see, output
that cannot encode the reports' emoji, --project after the command, `serve` at a terminal, and
the seed's own import example."""

from __future__ import annotations

import builtins
import json
import os
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VAR, VARIANT, package_env, spec
from meta_experiment.cli import main
from meta_experiment.lifecycle import Lab
from release_helpers import git, head, winner

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", *args],
        capture_output=True,
        text=True,
        env=env or package_env(),
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_the_demo_does_not_depend_on_the_persons_git_signing_or_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: with commits signed by a gpg that fails, or a global hooks folder whose
    pre-commit fails, `meta-experiment demo` ended in a CalledProcessError traceback."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-commit").write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    (hooks / "pre-commit").chmod(0o755)
    config = tmp_path / "signing-gitconfig"
    config.write_text(
        "[commit]\n\tgpgsign = true\n[tag]\n\tgpgsign = true\n[gpg]\n\tprogram = false\n"  # a signing that fails
        f"[core]\n\thooksPath = {hooks.as_posix()}\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    result = cli("demo", "--trials", "4")
    assert result.returncode == 0, result.stderr
    assert "STATISTICAL ANALYSIS" in result.stdout and "Running (4/" in result.stdout


def test_the_demo_says_in_one_line_when_git_cannot_make_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "broken-gitconfig"
    config.write_text("[core\n")  # a setting no command line overrides: git refuses to read it
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    result = cli("demo", "--trials", "4")
    assert result.returncode == 1
    assert result.stderr.startswith("meta-experiment: the demo could not make its throwaway git repository: git init")
    assert "bad config line 1" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_commit_that_failed_exits_3_with_commands_that_work_from_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """From a review: promote said 'run: git add -- PATH && git commit ...' with paths relative to
    the project, which fail from a subfolder or with the project a folder of a larger repository,
    and it exited 0 although nothing was committed."""
    top = tmp_path / "monorepo"
    project = top / "my tools"  # a space, for the quoting
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / PROD).write_text(COMMAND)
    (project / VAR).write_text(VARIANT)
    git(top, "init", "-q")
    git(top, "add", "--", f"my tools/{PROD}")
    git(top, "commit", "-q", "-m", "initial")
    lab = Lab.open(project)
    try:
        experiment_id = winner(lab).id
    finally:
        lab.close()
    hook = top / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = head(top)

    assert main(["--project", str(project), "promote", experiment_id, "--yes"]) == 3
    out = capsys.readouterr().out
    assert "lint failed" in out and (project / PROD).read_text() == VARIANT and head(top) == before
    advice = re.search(r"run: `(git -C [^`]*)`", out)  # quoted: the summary's full stop is not in it
    assert advice is not None, out

    hook.unlink()  # "once that is fixed"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = subprocess.run(advice.group(1), shell=True, cwd=elsewhere, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    assert git(top, "show", "--name-only", "--format=", "HEAD").split("\n")[0] == f"my tools/{PROD}"
    assert git(top, "status", "--porcelain", "--", f"my tools/{PROD}") == ""

    assert main(["--project", str(project), "rollback", experiment_id, "--reason", "r", "--yes"]) == 0
    assert "git: committed" in capsys.readouterr().out  # a commit that went through: 0


def test_the_exit_status_of_a_failed_commit_is_in_the_help() -> None:
    for command in ("promote", "rollback"):
        assert "3 the files were changed but the git commit failed" in " ".join(cli(command, "--help").stdout.split())


class _Terminal:
    """A stdin that is a terminal (no line is ever read from it here)."""

    def isatty(self) -> bool:
        return True


def test_no_question_is_asked_when_the_output_is_not_a_terminal(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """From a review: with stdin a terminal and stdout in a file, the y/N question went to the file
    and the command looked hung. It is refused as without a terminal (capsys: stdout is no tty)."""
    lab = Lab.open(project)
    try:
        experiment_id = winner(lab).id
    finally:
        lab.close()
    asked: list[str] = []
    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "y")
    assert main(["--project", str(project), "promote", experiment_id]) == 2
    captured = capsys.readouterr()
    assert "needs a confirmation, and the output goes to a file or a pipe" in captured.err
    assert "pass --yes to confirm" in captured.err and captured.out == ""  # refused before the preview
    assert asked == [] and (project / PROD).read_text() == COMMAND
    assert main(["--project", str(project), "rollback", experiment_id, "--reason", "r"]) == 2
    assert "pass --yes" in capsys.readouterr().err and asked == []


def test_output_that_cannot_encode_emoji_gets_a_replacement_not_a_traceback(project: Path) -> None:
    lab = Lab.open(project)
    try:
        lab.create(**spec())
    finally:
        lab.close()
    result = cli("--project", str(project), "status", env=dict(package_env(), PYTHONIOENCODING="latin-1"))
    assert result.returncode == 0, result.stderr
    assert "? Running (0/10 trials)" in result.stdout  # the emoji, replaced


def test_project_after_the_command(project: Path, tmp_path: Path) -> None:
    lab = Lab.open(project)
    try:
        experiment_id = lab.create(**spec()).id
    finally:
        lab.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = cli("status", "--json", "--project", str(project), cwd=empty)
    assert [e["id"] for e in json.loads(listed.stdout)["experiments"]] == [experiment_id]
    # given on both sides, the one after the command wins
    both = cli("--project", str(empty), "status", "--json", "--project", str(project))
    assert [e["id"] for e in json.loads(both.stdout)["experiments"]] == [experiment_id]
    before = cli("--project", str(project), "status", "--json", cwd=empty)
    assert before.stdout == listed.stdout
    # the hint names the folder --project gave, instead of telling to pass --project
    read = cli("status", "--project", str(empty), cwd=project)
    assert f"no experiments in {empty.resolve()} yet" in read.stderr
    assert "That is the folder --project" in read.stderr and "pass --project" not in read.stderr


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_serve_at_a_terminal_says_what_it_is(project: Path) -> None:
    """From a review: `meta-experiment serve` typed at a terminal waited without a word."""
    master, terminal = os.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "meta_experiment", "--project", str(project), "serve"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=package_env(),
        ) as server:
            assert server.stderr is not None
            ready, _, _ = select.select([server.stderr], [], [], 60)  # silent before the fix: no line
            line = server.stderr.readline().decode() if ready else ""
            server.kill()
    finally:
        os.close(terminal)
        os.close(master)
    assert line.startswith("meta-experiment serve: this is the MCP server") and "--help" in line


def test_serve_without_a_terminal_says_nothing(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "--project", str(project), "serve"],
        input="",
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
    )
    assert "MCP server" not in result.stderr


def seed_document(trials_completed: object) -> dict[str, object]:
    """The seed's own example: 7 values in each group, and trials_completed 7."""
    return {
        "experiments": [
            {
                "id": "exp-2025-10-20-001",
                "name": "Enhanced PR review with parallel agents",
                "created": "2025-10-20T10:30:00Z",
                "status": "running",
                "hypothesis": "Running security-analyst + code-cleanup in parallel saves 15min per PR",
                "changes": {"type": "command_modification", "files": {PROD: {"backup": None, "variant": VAR}}},
                "metrics": {"primary": "time_to_complete_review", "secondary": []},
                "sample_size_required": 10,
                "results": {
                    "trials_completed": trials_completed,
                    "control_group": [45, 50, 41, 48, 44, 52, 47],
                    "treatment_group": [27, 30, 25, 29, 26, 31, 28],
                },
            }
        ]
    }


def test_import_says_when_trials_completed_disagrees_with_the_groups(project: Path, tmp_path: Path) -> None:
    """From a review: the seed's example (trials_completed 7 over 7 + 7 values, 10 required)
    became 14/10 trials without a word."""
    document = tmp_path / "experiments.json"
    document.write_text(json.dumps(seed_document(7)))
    result = cli("--project", str(project), "import", str(document))
    assert result.returncode == 0, result.stderr
    assert (
        "warning: exp-2025-10-20-001: results.trials_completed is 7, but its groups hold 14 values (7 control, "
        "7 treatment); 14 trials were imported, one for each value (trials_completed is not used)."
    ) in result.stderr
    assert "(14/10 trials)" in cli("--project", str(project), "status").stdout

    agreeing = tmp_path / "agreeing"
    (agreeing / ".claude" / "commands").mkdir(parents=True)
    (agreeing / PROD).write_text(COMMAND)
    (agreeing / VAR).write_text(VARIANT)
    document.write_text(json.dumps(seed_document(14)))
    quiet = cli("--project", str(agreeing), "import", str(document))
    assert quiet.returncode == 0 and "trials_completed" not in quiet.stderr


def test_a_permission_error_is_one_line_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """From a review: in a state folder a group shares, another member's lock file or backups folder
    gave a PermissionError traceback. (Root, which runs the tests here, is never refused: the
    refusal is simulated.)"""
    from meta_experiment import cli
    from meta_experiment.lifecycle import Lab

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / ".meta-experiment" / "deploy.lock"))

    monkeypatch.setattr(Lab, "open", refused)
    assert cli.main(["--project", str(tmp_path), "status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"Permission denied on '{tmp_path / '.meta-experiment' / 'deploy.lock'}'" in err
    assert "chmod -R g+rwX and g+s on the folder; its members then need umask 002" in err


def test_an_unknown_id_or_an_ended_experiment_is_named_before_a_confirmation_is_asked_for(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    """From a first-hour review: `promote exp-typo` without --yes answered 'needs a confirmation:
    pass --yes', and only with --yes said there is no such experiment (likewise for a rollback of an
    experiment already rolled back), which taught a script to add --yes before it knew what it
    confirmed."""
    lab = Lab.open(project)
    try:
        experiment_id = winner(lab).id
    finally:
        lab.close()
    assert main(["--project", str(project), "promote", experiment_id[:-1] + "x"]) == 2
    err = capsys.readouterr().err
    assert "No experiment with id" in err and "confirmation" not in err
    assert main(["--project", str(project), "rollback", experiment_id, "--reason", "r", "--yes"]) == 0
    capsys.readouterr()
    assert main(["--project", str(project), "rollback", experiment_id, "--reason", "again"]) == 2
    err = capsys.readouterr().err
    assert "is rolled_back" in err and "cannot be rolled back" in err and "confirmation" not in err
    assert main(["--project", str(project), "promote", experiment_id]) == 2
    assert "cannot be promoted" in capsys.readouterr().err


def test_auto_in_a_folder_without_experiments_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """From a first-hour review: `auto` run from cron in the wrong folder printed 'No running
    experiments.' and nothing else; status and export say where they looked."""
    folder = tmp_path / "not-the-project"
    folder.mkdir()
    assert main(["--project", str(folder), "auto"]) == 0
    captured = capsys.readouterr()
    assert f"no experiments in {folder} yet" in captured.err and "--project" in captured.err
    assert "No running experiments." in captured.out
    assert list(folder.iterdir()) == []  # nothing was created, as it says
