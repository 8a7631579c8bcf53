"""Recovery of interrupted operations as people see it: in the event log, in the status report, at
the start of the server and of every CLI command, and when another process is still deploying.
(tests/test_crash.py kills real processes; here an exception raised at a checkpoint leaves the
same journal state in-process.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from conftest import COMMAND, PROD, VARIANT, package_env, spec
from meta_experiment import deploy, journal, release
from meta_experiment.errors import InvalidState
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
    experiment_id = interrupted_promote(project, interrupt, "journal_written")
    async with Client(build_server(project, project / ".meta-experiment"), mode="legacy") as client:
        status = await client.call_tool("status", {})
        [item] = [i for i in status.structured_content["experiments"] if i["id"] == experiment_id]
        assert item["status"] == "promoted" and (project / PROD).read_text() == VARIANT
        operations = status.structured_content["release"]["operations"]
        assert any("finished on restart" in line for line in operations), operations
        # its git commit is made by a detached `meta-experiment recover`
        await wait_for_commit(project, experiment_id)


async def wait_for_commit(project: Path, experiment_id: str, seconds: float = 60.0) -> None:
    import anyio

    with anyio.fail_after(seconds):
        while True:
            lab = Lab.open(project, recover=False)
            try:
                if not journal.unfinished_ids(lab.store):
                    break
            finally:
                lab.close()
            await anyio.sleep(0.1)
    assert commit_paths(project) == {PROD}
    assert (
        experiment_id
        in subprocess.run(
            ["git", "log", "-1", "--format=%s"], cwd=project, capture_output=True, text=True, check=True
        ).stdout
    )


@pytest.mark.anyio
async def test_the_server_starts_without_waiting_for_the_repositorys_commit_hooks(project: Path, interrupt) -> None:
    """From a review: after a promote killed before its commit, the next server start ran the
    commit, and the repository's commit hooks (a test suite, 40 s) with it, before answering
    `initialize`; Claude Code gives a starting server 30 s, killed it, and the next start ran them
    again. The commit is left to a detached `meta-experiment recover` now."""
    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nsleep 6\n")
    hook.chmod(0o755)
    async with Client(build_server(project, project / ".meta-experiment"), mode="legacy") as client:
        status = await client.call_tool("status", {})
        # answered while the hook still runs: the promotion is there, its commit is being made
        assert (
            not (project / ".git" / "COMMIT_EDITMSG").exists()
            or experiment_id
            not in subprocess.run(
                ["git", "log", "-1", "--format=%s"], cwd=project, capture_output=True, text=True
            ).stdout
        )
        [item] = [i for i in status.structured_content["experiments"] if i["id"] == experiment_id]
        assert item["status"] == "promoted"
        await wait_for_commit(project, experiment_id)
        status = await client.call_tool("status", {})
    [info] = [i for i in status.structured_content["release"]["experiments"] if i["experiment_id"] == experiment_id]
    assert info["git"].startswith("committed"), info


def test_a_stale_index_lock_is_not_waited_for_and_the_commit_waits_for_it(project: Path, interrupt) -> None:
    """From a review: a lock a crashed git left made every command's recovery wait 120 s per
    unfinished commit (status took 4 minutes for two), then closed the operation as failed with
    git's advice to remove the lock. An old lock is not waited for; the commit is left for the next
    recovery, and status says why; once the lock is gone the commit is made."""
    import os
    import time

    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    lock = project / ".git" / "index.lock"
    lock.write_text("")
    old = time.time() - 600
    os.utime(lock, (old, old))
    started = time.monotonic()
    lab = Lab.open(project)
    try:
        assert time.monotonic() - started < 30
        [note] = lab.recovered
        assert note.git is not None and note.git.status == "pending" and "index.lock exists" in note.git.detail
        assert journal.unfinished_ids(lab.store)  # left for the next recovery
        [info] = [i for i in lab.status().release.experiments if i.experiment_id == experiment_id]
        assert info.git is not None and "index.lock exists" in info.git and "remove the lock only if" in info.git
    finally:
        lab.close()
    lab = Lab.open(project)  # still locked: nothing new in the log
    try:
        assert len(lab.events(experiment_id, kinds=["recovered"])) == 1
        line = next(x for x in lab.status().release.operations if "done but for its git commit" in x)
        assert "index.lock exists" in line
    finally:
        lab.close()
    lock.unlink()
    lab = Lab.open(project)
    try:
        [note] = lab.recovered
        assert note.git is not None and note.git.status == "committed", note
        said = [e.message for e in lab.events(experiment_id, kinds=["recovered"])]
        assert len(said) == 2 and "the git commit an earlier recovery left, on restart: committed" in said[1]
        assert journal.unfinished_ids(lab.store) == []
        newest = lab.status().release.operations[0]  # what the report shows first: the commit made
        assert "committed" in newest and "index.lock" not in newest
    finally:
        lab.close()


def test_a_command_that_only_reads_does_not_wait_for_a_young_index_lock(project: Path, interrupt, capsys) -> None:
    """From a review: a promote killed with its git (the terminal closed) left a young index.lock,
    and every command, `status` too, waited up to 120 s for a git that no longer ran. The commands
    that only read (status, analyze, trials, export) show the commit as not made yet, at once; a
    command that acts still waits for it (a git still making the commit must finish first)."""
    import time

    from meta_experiment import cli

    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    lock = project / ".git" / "index.lock"
    lock.write_text("")  # made just now: a git at work, as far as anyone can tell
    for command in (["status"], ["analyze", experiment_id], ["trials", experiment_id], ["export"]):
        started = time.monotonic()
        assert cli.main(["--project", str(project), *command]) == 0
        assert time.monotonic() - started < 20, command
        assert "waiting for another git process" not in capsys.readouterr().err
    assert cli.main(["--project", str(project), "status"]) == 0
    assert "index.lock exists" in capsys.readouterr().out
    lab = Lab.open(project, git_wait=0.5)  # one that acts waits (here briefly), then leaves it too
    try:
        assert journal.unfinished_ids(lab.store)
    finally:
        lab.close()
    assert "waiting for another git process to finish" in capsys.readouterr().err
    lock.unlink()
    assert cli.main(["--project", str(project), "status"]) == 0  # the lock gone: made now
    lab = Lab.open(project)
    try:
        assert journal.unfinished_ids(lab.store) == []
    finally:
        lab.close()


def test_a_rollback_waits_for_a_commit_a_lock_holds_and_says_so(project: Path, interrupt) -> None:
    """From two reviews: with the promotion's commit held by git's index.lock, its rollback was
    refused as 'another promote or rollback is unfinished', which a restart never changed; closing
    that commit to go ahead instead let a git still at work land the promotion over the rollback. The
    refusal now names the lock and what to do; other experiments are not held up."""
    import os
    import time

    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    lock = project / ".git" / "index.lock"
    lock.write_text("")
    old = time.time() - 600
    os.utime(lock, (old, old))
    lab = Lab.open(project)
    try:
        said = r"done but for its git commit, which waits for git's index.lock"
        with pytest.raises(InvalidState, match=said) as info:
            release.rollback(lab, experiment_id, reason="undo")
        assert "if no git process runs, remove the lock" in str(info.value)
        assert (project / PROD).read_text() == VARIANT and lab.get(experiment_id).status == "promoted"
        (project / "other.md").write_text("a\n")
        (project / "other.v.md").write_text("b\n")
        other = lab.create(**spec(name="other", files={"other.md": "other.v.md"}))
        assert release.rollback(lab, other.id, reason="stop").outcome == "stopped"  # not held up
        assert journal.unfinished_ids(lab.store)  # the promotion's commit still waits
    finally:
        lab.close()
    lock.unlink()
    lab = Lab.open(project)  # the commit is made now, and the rollback goes ahead
    try:
        assert [n.git.status for n in lab.recovered if n.git] == ["committed"]
        assert release.rollback(lab, experiment_id, reason="undo").outcome == "rolled_back"
    finally:
        lab.close()


def test_status_counts_a_background_commit_just_started_as_being_made(project: Path, interrupt) -> None:
    """From a review: in the moment between a hook starting `meta-experiment recover` and that
    process taking the deploy lock, status said the process making the commit had stopped."""
    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    (project / ".meta-experiment" / deploy.RECOVER_STARTED).touch()
    lab = Lab.open(project, recover=False)
    try:
        [info] = [i for i in lab.status().release.experiments if i.experiment_id == experiment_id]
        assert info.git == "git commit pending (made in the background)"
    finally:
        lab.close()


def test_recovery_waits_for_the_killed_processs_git_and_takes_its_commit(project: Path, interrupt) -> None:
    """From a review: a promote killed while git ran its commit hook left that git running; the next
    start's commit failed on git's index.lock (advising to delete the lock of a git still at work)
    and the commit the orphan then made was credited to "by hand". Recovery waits for the lock to go
    and takes the operation's own commit as made."""
    import threading

    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    lab = Lab.open(project, recover=False)
    try:
        [op] = [journal.load(lab.store, i) for i in journal.unfinished_ids(lab.store)]
    finally:
        lab.close()
    lock = project / ".git" / "index.lock"
    lock.write_text("")  # the orphaned git, its hook still running

    def orphan_finishes() -> None:
        import time

        time.sleep(1.5)
        lock.unlink()
        subprocess.run(["git", "add", "--", PROD], cwd=project, check=True)
        subprocess.run(["git", "commit", "-q", "-m", op.commit_message], cwd=project, check=True)

    other = threading.Thread(target=orphan_finishes)
    other.start()
    try:
        lab = Lab.open(project)
    finally:
        other.join()
    try:
        [note] = lab.recovered
        made = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
        assert note.outcome == "finished" and note.git is not None, note
        assert note.git.status == "committed" and note.git.commit == made, note.git
        [info] = [i for i in lab.status().release.experiments if i.experiment_id == experiment_id]
        assert info.git is not None and info.git.startswith("committed") and "by hand" not in info.git
    finally:
        lab.close()


def test_status_says_when_the_process_making_a_commit_stopped(project: Path, interrupt) -> None:
    """From a review: 'git commit pending (made in the background)' stayed after the background
    process was killed; with no process holding the deploy lock it says what to run."""
    experiment_id = interrupted_promote(project, interrupt, "state_marked")
    lab = Lab.open(project, recover=False)
    try:

        def git_line() -> str:
            [info] = [i for i in lab.status().release.experiments if i.experiment_id == experiment_id]
            assert info.git is not None
            return info.git

        assert "`meta-experiment recover` makes it" in git_line()
        with deploy.deploy_lock(project / ".meta-experiment"):  # the background process at work
            assert git_line() == "git commit pending (made in the background)"
    finally:
        lab.close()


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


def test_a_subscribed_server_still_tells_the_next_call_its_database_was_deleted(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: with a subscription open, the change watcher found the deleted database
    first, switched to an empty project and swallowed the explanation; the next call said only 'No
    experiment with id ...', and the subscriber of the experiment heard nothing of it."""
    import shutil

    import anyio

    from meta_experiment import mcp_common
    from test_mcp_surface import legacy_subscribe, updates, wait_for

    monkeypatch.setattr(mcp_common, "WATCH_INTERVAL_S", 0.05)
    state = project / ".meta-experiment"
    create = {
        "name": "first",
        "hypothesis": "h",
        "files": {PROD: ".claude/commands/review_pr.md.experiment"},
        "primary_metric": {"name": "t", "direction": "lower_is_better"},
    }
    seen, handler = updates()

    async def run() -> None:
        async with Client(build_server(project, state), mode="legacy", message_handler=handler) as client:
            first = (await client.call_tool("create_experiment", create)).structured_content["id"]
            await legacy_subscribe(client, f"experiment://{first}")
            await anyio.sleep(0.3)  # the watcher's baseline
            seen.clear()
            shutil.rmtree(state)
            await wait_for(seen, f"experiment://{first}")
            await anyio.sleep(0.3)  # more polls: told once
            assert seen.count(f"experiment://{first}") == 1
            # the subscriber re-reads what it was told of: that read does not use up the model's notice
            # (a review of the fix: the read was told, and the model's next call saw an empty project)
            listed = await client.read_resource("experiments://list")
            assert json.loads(listed.contents[0].text) == []
            found = await client.call_tool("get_experiment", {"experiment_id": first})
            assert found.is_error
            assert "was deleted while the server had it open, so this call did nothing" in found.content[0].text
            assert (await client.call_tool("status", {})).structured_content["experiments"] == []  # told once

    anyio.run(run)


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
