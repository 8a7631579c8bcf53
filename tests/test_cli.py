"""The `meta-experiment` command: real subprocesses, clear errors, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import package_env, spec
from meta_experiment.lifecycle import Lab


def run(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "--project", str(project), *args],
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def experiment_id(project: Path) -> str:
    lab = Lab.open(project)
    try:
        e = lab.create(**spec(sample_size_required=4))
        for value in (40.0, 30.0, 41.0, 29.0):
            a = lab.assign(e.id)
            lab.record(a.trial_id, {"time_to_complete": value})
        return e.id
    finally:
        lab.close()


def test_status_and_analyze(project: Path, experiment_id: str) -> None:
    assert "ACTIVE EXPERIMENTS" in run(project, "status").stdout
    data = json.loads(run(project, "status", "--json").stdout)
    assert data["experiments"][0]["progress"]["trials_recorded"] == 4
    assert f"STATISTICAL ANALYSIS - {experiment_id}" in run(project, "analyze", experiment_id).stdout


def test_export_import_and_settings(project: Path, experiment_id: str, tmp_path: Path) -> None:
    run(project, "export", "--out", "exported.json")
    document = json.loads((project / "exported.json").read_text())
    assert document["experiments"][0]["id"] == experiment_id
    refused = run(project, "import", str(project / "exported.json"), check=False)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert "skipped 1" in run(project, "import", str(project / "exported.json"), "--skip-existing").stdout
    out = json.loads(run(project, "settings", "defaults.sample_size_required=25", "min_failures=4").stdout)
    assert out["defaults"]["sample_size_required"] == 25 and out["monitoring"]["min_failures"] == 4


def test_start_a_draft(project: Path, experiment_id: str) -> None:
    run(project, "export", "--out", "exported.json")
    document = json.loads((project / "exported.json").read_text())
    run(project, "rollback", experiment_id, "--reason", "make room", "--yes")
    item = document["experiments"][0]
    item.update(id="exp-draft-2", status="draft")
    item.pop("meta_experiment")
    (project / "draft.json").write_text(json.dumps(document))
    run(project, "import", str(project / "draft.json"))
    assert "Started exp-draft-2" in run(project, "start", "exp-draft-2").stdout
    again = run(project, "start", "exp-draft-2", check=False)
    assert again.returncode == 2 and "only a draft can be started" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("analyze", "exp-missing"), "No experiment with id"),
        (("settings", "defaults.sample_size_required=-2"), "sample_size_required"),
        (("settings", "nonsense"), "key=value"),
        (("import", "no-such-file.json"), "Cannot read"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(project: Path, args, message) -> None:
    result = run(project, *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.startswith("meta-experiment: ")


def test_demo_runs_end_to_end_over_stdio() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "demo", "--trials", "12"],
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ACTIVE EXPERIMENTS" in result.stdout and "STATISTICAL ANALYSIS" in result.stdout
    assert "(12/12 trials)" in result.stdout


@pytest.mark.parametrize("content", [b"\x8b" * 5000, b"SQLite format 3\x00garbage", None])
def test_a_damaged_database_is_a_clear_error_and_is_left_alone(project: Path, content: bytes | None) -> None:
    state = project / ".meta-experiment"
    state.mkdir(exist_ok=True)
    db = state / "experiments.db"
    if content is None:  # a SQLite file of someone else's: a table of ours with another shape
        import sqlite3

        other = sqlite3.connect(db)
        other.execute("CREATE TABLE experiments (x)")
        other.commit()
        other.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    result = run(project, "status", check=False)
    assert result.returncode == 2
    assert "cannot be used" in result.stderr and "Move it aside" in result.stderr
    assert db.read_bytes() == before


def test_a_project_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-project"
    result = run(missing, "status", check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not missing.exists()
