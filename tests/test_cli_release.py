"""`meta-experiment promote | rollback | auto`: in-process through `cli.main` (same code, no
interpreter start), and once as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VARIANT, package_env
from meta_experiment.cli import main
from meta_experiment.lifecycle import Lab
from release_helpers import git, head, winner


@pytest.fixture
def ready(project: Path) -> str:
    lab = Lab.open(project)
    try:
        return winner(lab, auto_promote=True).id
    finally:
        lab.close()


def test_promote_dry_run_then_refuse_without_yes(project: Path, ready: str, capsys: pytest.CaptureFixture) -> None:
    before = head(project)
    assert main(["--project", str(project), "promote", ready, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Dry run, nothing changed: {ready}") and f"--- a/{PROD} (production)" in out
    assert main(["--project", str(project), "promote", ready]) == 2  # no terminal, no --yes
    err = capsys.readouterr().err
    assert "pass --yes to confirm" in err and "Traceback" not in err
    assert (project / PROD).read_text() == COMMAND and head(project) == before


def test_promote_yes_then_rollback(project: Path, ready: str, capsys: pytest.CaptureFixture) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "--project", str(project), "promote", ready, "--yes"],
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"Promoted {ready}" in result.stdout and "git: committed" in result.stdout
    assert "Dry run" not in result.stdout and "Preview" not in result.stdout  # --yes: confirmed beforehand
    assert (project / PROD).read_text() == VARIANT
    assert main(["--project", str(project), "rollback", ready, "--yes"]) == 2  # --reason: required, not a dry run
    assert "A rollback needs a reason" in capsys.readouterr().err
    assert main(["--project", str(project), "rollback", ready, "--reason", "slower in practice", "--yes"]) == 0
    assert f"Rolled back {ready}" in capsys.readouterr().out
    assert (project / PROD).read_text() == COMMAND


def test_auto_from_the_command_line(project: Path, ready: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--project", str(project), "auto", "--dry-run"]) == 0
    assert f"✅ Would auto-promote: {ready}" in capsys.readouterr().out
    assert main(["--project", str(project), "auto"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Running automatic experiment management") and f"✅ Auto-promoting: {ready}" in out
    assert main(["--project", str(project), "auto"]) == 0
    assert "No running experiments." in capsys.readouterr().out


def test_a_conflict_prints_its_diff(project: Path, ready: str, capsys: pytest.CaptureFixture) -> None:
    (project / PROD).write_text(COMMAND + "a person's edit\n")
    assert main(["--project", str(project), "promote", ready, "--yes"]) == 2
    err = capsys.readouterr().err
    assert "was edited since the experiment started" in err
    assert "+a person's edit" in err  # the diff itself, not only "see the diff"


def test_auto_dry_run_reports_the_conflict_the_real_run_would_meet(
    project: Path, ready: str, capsys: pytest.CaptureFixture
) -> None:
    """From a user test: with the production file edited by hand, `auto --dry-run` said 'Would
    auto-promote' and the real run then refused. The dry run now makes the same checks."""
    (project / PROD).write_text(COMMAND + "a person's edit\n")
    assert main(["--project", str(project), "auto", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Would auto-promote" not in out
    assert f"⏭️ Skipped: {ready}" in out and "was edited since the experiment started" in out
    assert (project / PROD).read_text() == COMMAND + "a person's edit\n"  # nothing written


def test_a_missing_reason_is_reported_before_any_confirmation(
    project: Path, ready: str, capsys: pytest.CaptureFixture
) -> None:
    """From a user test: `promote ID --force` without --reason said 'pass --yes to confirm' first,
    and `rollback --dry-run` required a reason although a dry run records nothing."""
    assert main(["--project", str(project), "promote", ready, "--force"]) == 2
    err = capsys.readouterr().err
    assert "Forcing a promotion needs a reason" in err and "--yes" not in err
    assert main(["--project", str(project), "rollback", ready]) == 2
    err = capsys.readouterr().err
    assert "A rollback needs a reason" in err and "--yes" not in err
    assert main(["--project", str(project), "rollback", ready, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Dry run, nothing changed: {ready}")
    assert "Rolling back would stop the experiment after 40 recorded trial(s)" in out
    assert (project / PROD).read_text() == COMMAND


def test_promote_of_a_variant_copied_by_hand_says_so(project: Path, ready: str, capsys: pytest.CaptureFixture) -> None:
    (project / PROD).write_text(VARIANT)
    assert main(["--project", str(project), "promote", ready, "--dry-run"]) == 0
    assert f"{PROD} already holds the tested variant, so promoting would not write it" in capsys.readouterr().out
    assert main(["--project", str(project), "promote", ready, "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Promoted {ready}") and f"{PROD} already held the tested variant" in out


def test_the_cli_dry_run_prints_the_whole_diff(project: Path, capsys: pytest.CaptureFixture) -> None:
    """The MCP text cuts a long diff and points here for all of it."""
    experiment_id = big_diff_experiment(project)
    assert main(["--project", str(project), "promote", experiment_id, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "+line 4999 rewritten" in out and "more diff lines" not in out


def big_diff_experiment(project: Path, lines: int = 5000) -> str:
    """A running winner whose production file has `lines` lines, every one changed by the variant."""
    (project / "big.md").write_text("".join(f"line {i}\n" for i in range(lines)))
    (project / "big.v2.md").write_text("".join(f"line {i} rewritten\n" for i in range(lines)))
    git(project, "add", "big.md")
    git(project, "commit", "-q", "-m", "big")
    lab = Lab.open(project)
    try:
        return winner(lab, files={"big.md": "big.v2.md"}).id
    finally:
        lab.close()
