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
from release_helpers import head, winner


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
    with pytest.raises(SystemExit) as usage:
        main(["--project", str(project), "rollback", ready, "--yes"])
    assert usage.value.code == 2 and "required: --reason" in capsys.readouterr().err
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
