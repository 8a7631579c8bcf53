"""Shared fixtures: a real git repository in a temp folder with a command file and its variant,
and a Lab (the lifecycle) on a real SQLite file inside it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import meta_experiment
from meta_experiment.lifecycle import Lab

COMMAND = "Review the pull request. Run the security analyst, then the cleanup agent.\n"
VARIANT = "Review the pull request. Run the security analyst and the cleanup agent in parallel.\n"
PROD = ".claude/commands/review_pr.md"
VAR = ".claude/commands/review_pr.md.experiment"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's project or state: clear the variables that choose them."""
    for name in ("CLAUDE_PROJECT_DIR", "META_EXPERIMENT_HOME"):
        monkeypatch.delenv(name, raising=False)
    # nor the developer's own skills and commands, which Claude Code runs before a project's
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "personal-claude"))
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@contextlib.contextmanager
def lab_elsewhere(tmp_path: Path, name: str = "elsewhere") -> Iterator[Lab]:
    """A Lab on another, empty git project (where an export is imported), closed after."""
    folder = tmp_path / name
    folder.mkdir()
    git(folder, "init", "-q")
    other = Lab.open(folder, create=True)
    try:
        yield other
    finally:
        other.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with one committed command file and an uncommitted variant beside it."""
    repo = tmp_path / "project"
    (repo / ".claude" / "commands").mkdir(parents=True)
    (repo / PROD).write_text(COMMAND, encoding="utf-8")
    (repo / VAR).write_text(VARIANT, encoding="utf-8")
    if shutil.which("git"):
        git(repo, "init", "-q")
        git(repo, "add", "--", PROD)
        git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def lab(project: Path):
    lab = Lab.open(project)
    yield lab
    lab.close()


def spec(**overrides):
    """Arguments for Lab.create with a duration primary metric and one guardrail."""
    base = {
        "name": "Parallel PR review",
        "hypothesis": "Parallel agents save 15 minutes per review",
        "files": {PROD: VAR},
        "primary_metric": {"name": "time_to_complete", "direction": "lower_is_better", "unit": "min"},
        "secondary_metrics": [{"name": "issues_caught", "direction": "higher_is_better"}],
    }
    base.update(overrides)
    return base


def package_env() -> dict[str, str]:
    """Environment for a subprocess that must import the same meta_experiment as this test run."""
    env = dict(os.environ)
    source = str(Path(meta_experiment.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH", "")) if p)
    return env


def server_env(project: Path) -> dict[str, str]:
    """Environment for a server subprocess: the project, and this checkout's package on the path."""
    env = package_env()
    env.pop("META_EXPERIMENT_HOME", None)
    env["CLAUDE_PROJECT_DIR"] = str(project)
    return env


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """In CI (META_EXPERIMENT_REQUIRE_ALL=1) a skipped test is a failure: CI installs every tool a
    test needs, so a skip there means a missing install step."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("META_EXPERIMENT_REQUIRE_ALL") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"


def damaged_copies(state: Path, into: Path):  # type: ignore[no-untyped-def]
    """Copies of a state folder, each with 4 KB of garbage written over one more region of its
    database past the header (a disk fault, or a bad copy), for tests that every read of a damaged
    store says what to do."""
    from meta_experiment.lifecycle import DB_FILE_NAME

    size = (state / DB_FILE_NAME).stat().st_size
    for offset in range(8192, size - 4096, 8192):
        copy = into / f"state-{offset}"
        shutil.copytree(state, copy)
        with open(copy / DB_FILE_NAME, "r+b") as f:
            f.seek(offset)
            f.write(bytes(range(256)) * 16)
        yield copy


def derived_rows(lab: Lab, experiment_id: str) -> dict[str, list[tuple]]:
    """Every derived row of an experiment (counts, running statistics, unit sums), without row ids:
    what recording builds, and an import or a void must build the same, to the bit."""
    out = {}
    for table in ("arm_counts", "arm_stats", "unit_sums", "unit_trials", "unit_totals"):
        with lab.store.reading() as db:
            rows = db.execute(f"SELECT * FROM {table} WHERE experiment_id = ?", (experiment_id,)).fetchall()
        out[table] = sorted(tuple(r) for r in rows)
    return out
