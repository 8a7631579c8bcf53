"""Crash safety: a real process is killed with SIGKILL at every checkpoint inside promote and
rollback (single- and two-file experiments, a person's edit between crash and restart, restarts
that are killed too). After the restart every production file is byte-identical to its old or its
new content, no operation is left unfinished, the experiment's status agrees with the files, and git
holds the commit of exactly the experiment's paths. See tests/crash_harness.py; bench/crash_bench.py
runs 200 of these and prints a table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crash_harness import Case, Template, Zygote, build_templates, cases, run_case
from release_helpers import record_trials

CASES = cases()


def test_enough_crash_points_are_covered() -> None:
    assert len(CASES) >= 50
    assert {c.point for c in CASES} >= {"journal_written", "temp_partial", "file_replaced", "state_marked", "committed"}


@pytest.fixture(scope="module")
def crash_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    config = tmp_path_factory.mktemp("git") / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_GLOBAL", str(config))
        for name in ("CLAUDE_PROJECT_DIR", "META_EXPERIMENT_HOME"):
            mp.delenv(name, raising=False)
        yield dict(os.environ)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory, crash_env: dict[str, str]) -> dict[str, Template]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in crash_env.items():
            mp.setenv(key, value)
        from crash_harness import GIT_IDENTITY

        for key, value in GIT_IDENTITY.items():
            mp.setenv(key, value)
        return build_templates(tmp_path_factory.mktemp("templates"), lambda lab, e: record_trials(lab, e))


@pytest.fixture(scope="module")
def zygote(crash_env: dict[str, str]) -> Iterator[Zygote]:
    z = Zygote(crash_env)
    yield z
    z.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_killed_at_checkpoint_then_restarted(case: Case, templates, zygote: Zygote, tmp_path: Path) -> None:
    status = run_case(zygote, templates, case, tmp_path)
    if case.edit:  # the person's edit wins: the operation was undone around it
        assert status == ("running" if case.op == "promote" else "promoted")
    elif case.point != "backup_written":  # once journaled, an operation is always finished
        assert status == ("promoted" if case.op == "promote" else "rolled_back")
