"""Recovery of interrupted operations as people see it: in the event log, in the status report, at
the start of the server and of every CLI command, and when another process is still deploying.
(tests/test_crash.py kills real processes; here an exception raised at a checkpoint leaves the
same journal state in-process.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from conftest import COMMAND, PROD, VARIANT, package_env
from meta_experiment import deploy, journal, release
from meta_experiment.lifecycle import Lab
from meta_experiment.mcp_server import build_server
from meta_experiment.report import render_status
from release_helpers import commit_paths, winner


class Interrupted(BaseException):
    """Stands for the process dying at a checkpoint."""


@pytest.fixture
def interrupt():
    def at(point: str):
        def hook(name: str) -> None:
            if name == point:
                raise Interrupted(name)

        deploy.set_checkpoint_hook(hook)

    yield at
    deploy.set_checkpoint_hook(None)


def interrupted_promote(project: Path, interrupt, point: str = "file_replaced") -> str:
    lab = Lab.open(project)
    try:
        e = winner(lab)
        interrupt(point)
        with pytest.raises(Interrupted):
            release.promote(lab, e.id)
        deploy.set_checkpoint_hook(None)
        assert journal.unfinished_ids(lab.store)
        text = render_status(lab.status())
        assert "## INTERRUPTED OPERATIONS" in text and "promote unfinished (appl" in text
        return e.id
    finally:
        lab.close()


def test_the_next_open_finishes_it_and_says_so(project: Path, interrupt) -> None:
    experiment_id = interrupted_promote(project, interrupt)
    lab = Lab.open(project)
    try:
        [note] = lab.recovered
        assert note.outcome == "finished" and note.experiment_id == experiment_id
        assert note.message.startswith(f"Interrupted promote of {experiment_id}: finished on restart")
        assert note.git is not None and note.git.status == "committed"
        assert lab.get(experiment_id).status == "promoted" and (project / PROD).read_text() == VARIANT
        assert commit_paths(project) == {PROD}
        kinds = [e.kind for e in lab.events(experiment_id)]
        assert "recovered" in kinds and kinds.count("promoted") == 1
        assert "finished on restart" in render_status(lab.status())
        assert journal.unfinished_ids(lab.store) == []
    finally:
        lab.close()


def test_an_edit_made_meanwhile_wins_and_the_operation_is_undone(project: Path, interrupt) -> None:
    experiment_id = interrupted_promote(project, interrupt, "temp_synced")
    (project / PROD).write_text("a person fixed a typo meanwhile\n")
    lab = Lab.open(project)
    try:
        [note] = lab.recovered
        assert note.outcome == "undone" and "changed while it was being deployed" in note.message
        assert (project / PROD).read_text() == "a person fixed a typo meanwhile\n"
        assert lab.get(experiment_id).status == "running"
        assert "undone" in render_status(lab.status())
    finally:
        lab.close()


def test_recovery_waits_for_a_process_that_is_still_deploying(project: Path, interrupt) -> None:
    experiment_id = interrupted_promote(project, interrupt)
    state = project / ".meta-experiment"
    with deploy.deploy_lock(state):  # someone holds the lock: the row may be theirs, in progress
        lab = Lab.open(project)
        try:
            assert [n.outcome for n in lab.recovered] == ["busy"]
            assert lab.get(experiment_id).status == "running"
        finally:
            lab.close()
    lab = Lab.open(project)
    try:
        assert [n.outcome for n in lab.recovered] == ["finished"]
    finally:
        lab.close()


@pytest.mark.anyio
async def test_the_server_start_recovers(project: Path, interrupt) -> None:
    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    async with Client(build_server(project, project / ".meta-experiment"), mode="legacy") as client:
        status = await client.call_tool("status", {})
    release_status = status.structured_content["release"]
    assert any("finished on restart" in line for line in release_status["operations"])
    [item] = [i for i in status.structured_content["experiments"] if i["id"] == experiment_id]
    assert item["status"] == "promoted" and (project / PROD).read_text() == VARIANT


def test_a_cli_command_recovers_and_reports_on_stderr(project: Path, interrupt) -> None:
    experiment_id = interrupted_promote(project, interrupt, "journal_written")
    assert (project / PROD).read_text() == COMMAND
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "--project", str(project), "status"],
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"Interrupted promote of {experiment_id}: finished on restart" in result.stderr
    assert "COMPLETED EXPERIMENTS" in result.stdout and (project / PROD).read_text() == VARIANT


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_server_switches_to_the_state_put_in_place_of_its_database(project: Path, how: str) -> None:
    """The state folder deleted under a running server (a `git clean -x`, a reset by hand), or its
    database put back from a copy: the call that finds it does nothing and says so, and the calls
    after it use what is there now, without a restart of the server."""
    import shutil

    import anyio

    state = project / ".meta-experiment"
    create = {
        "name": "first",
        "hypothesis": "h",
        "files": {PROD: ".claude/commands/review_pr.md.experiment"},
        "primary_metric": {"name": "t", "direction": "lower_is_better"},
    }

    async def run() -> None:
        async with Client(build_server(project, state), mode="legacy") as client:
            first = (await client.call_tool("create_experiment", create)).structured_content["id"]
            copy = project.parent / "copy"
            if how == "replaced":  # a backup with the experiment, made now (the file and its write-ahead log)
                shutil.copytree(state, copy, ignore=lambda _, names: [n for n in names if "experiments.db" not in n])
            shutil.rmtree(state)
            if how == "replaced":
                shutil.copytree(copy, state)
            found = await client.call_tool("status", {})
            assert found.is_error
            text = found.content[0].text
            assert f"was {how} while the server had it open, so this call did nothing" in text
            if how == "deleted":
                assert "now uses an empty project: the next call that stores something makes a new database" in text
                assert (await client.call_tool("status", {})).structured_content["experiments"] == []
                assert not state.exists()  # a read makes nothing
                again = await client.call_tool("create_experiment", create)
                assert not again.is_error, again.content[0].text
                assert (state / "experiments.db").is_file()
            else:
                assert "now uses the file there now, from this call on" in text
                listed = (await client.call_tool("status", {})).structured_content["experiments"]
                assert [item["id"] for item in listed] == [first]
                assigned = await client.call_tool("assign", {"experiment_id": first})
                assert not assigned.is_error, assigned.content[0].text

    anyio.run(run)
