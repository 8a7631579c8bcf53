"""The MCP surface beyond the tools, through real MCP clients (in memory and over stdio): prompt
argument errors, the settings resource, completion of resource and prompt arguments, the event-log
resource, subscriptions refused for unknown experiments, notifications of changes that another
process commits, and the descriptions and notes a user test found wrong."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import get_args

import anyio
import mcp_types as types
import pytest
from mcp import Client, MCPDeprecationWarning, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from conftest import PROD, VAR, server_env, spec
from meta_experiment import mcp_common
from meta_experiment.lifecycle import Lab
from meta_experiment.mcp_common import LIST_FILTERS, ChangeWatcher
from meta_experiment.mcp_server import build_server
from meta_experiment.models import ExperimentStatus

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]
CREATE = {
    "name": "Parallel PR review",
    "hypothesis": "Parallel agents save 15 minutes",
    "files": {PROD: VAR},
    "primary_metric": {"name": "time_to_complete", "direction": "lower_is_better", "unit": "min"},
    "sample_size_required": 4,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(project: Path):
    return build_server(project, project / ".meta-experiment")


async def ok(client: Client, tool: str, args: dict | None = None) -> types.CallToolResult:
    result = await client.call_tool(tool, args or {})
    assert not result.is_error, result.content[0].text
    return result


def stdio(project: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "meta_experiment", "serve"], env=server_env(project), cwd=str(project)
    )


async def legacy_subscribe(client: Client, uri: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await client.subscribe_resource(uri)


def experiment_ids(uris: list[str]) -> set[str]:
    return {uri.removeprefix("experiment://").split("/")[0] for uri in uris if uri.startswith("experiment://")}


def updates():
    """A client message handler that collects the URIs of resource-updated notifications, and that list."""
    seen: list[str] = []

    async def handler(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            seen.append(str(message.params.uri))

    return seen, handler


async def wait_for(seen: list[str], uri: str, seconds: float = 8.0) -> None:
    with anyio.fail_after(seconds):
        while uri not in seen:
            await anyio.sleep(0.02)


# -- F14: a prompt argument it does not have ---------------------------------------------------------


async def test_a_prompt_refuses_an_argument_it_does_not_have_in_one_sentence(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("design_experiment", {"bogus": "1"})
        assert str(refused.value) == ("design_experiment has no argument 'bogus'; its arguments are: target, goal.")
        with pytest.raises(MCPError, match=r"no argument 'targt' \(did you mean 'target'\?\)"):
            await client.get_prompt("design_experiment", {"targt": "review_pr.md"})
        said = r"There is no prompt 'design'. Did you mean design_experiment\? The prompts are: design_experiment."
        with pytest.raises(MCPError, match=said):
            await client.get_prompt("design", {})
        # the right arguments still render
        result = await client.get_prompt("design_experiment", {"target": "review_pr.md"})
        assert "review_pr.md" in result.messages[0].content.text


@pytest.mark.parametrize("protocol", MODES)
async def test_a_prompt_argument_error_leaves_no_traceback_on_the_servers_stderr(
    project: Path, tmp_path: Path, protocol: str
) -> None:
    errlog = tmp_path / "stderr.txt"
    with errlog.open("w") as err:
        async with Client(stdio_client(stdio(project), errlog=err), mode=protocol, read_timeout_seconds=60) as client:
            with pytest.raises(MCPError) as refused:
                await client.get_prompt("design_experiment", {"bogus": "1"})
            assert str(refused.value) == "design_experiment has no argument 'bogus'; its arguments are: target, goal."
            assert (await client.get_prompt("design_experiment", {"goal": "faster"})).messages
    logged = errlog.read_text()
    assert "Traceback" not in logged and "ValidationError" not in logged, logged


# -- F20: reading the settings without changing one ---------------------------------------------------


async def test_settings_are_readable_as_a_resource_and_through_update_settings(server, mode, project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.meta-experiment.defaults]\nmax_regression = 7.0\n")
    async with Client(server, mode=mode) as client:
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert resources["experiments://settings"].description
        before = json.loads((await client.read_resource("experiments://settings")).contents[0].text)
        assert before["defaults"]["max_regression"] == 7.0
        assert before["sources"]["defaults"]["max_regression"] == "pyproject.toml [tool.meta-experiment]"
        assert before["sources"]["defaults"]["sample_size_required"] == "default"
        read = await ok(client, "update_settings", {})
        assert read.structured_content["changed"] == []
        assert read.structured_content["settings"] == {k: v for k, v in before.items() if k != "sources"}
        assert read.structured_content["sources"] == before["sources"]
        text = read.content[0].text
        assert text.startswith("No setting given, nothing changed. Current settings - defaults:")
        assert "From pyproject.toml [tool.meta-experiment]: max_regression; the rest are defaults." in text
        assert not (project / ".meta-experiment").exists()  # reading stores nothing

        await ok(client, "update_settings", {"sample_size_required": 30})
        after = json.loads((await client.read_resource("experiments://settings")).contents[0].text)
        assert after["defaults"]["sample_size_required"] == 30
        assert after["sources"]["defaults"]["sample_size_required"] == "settings.toml"
    cli = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "settings"],
        env=server_env(project),
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == {k: v for k, v in after.items() if k != "sources"}  # as the CLI shows them


async def test_a_settings_change_notifies_the_settings_resource(server) -> None:
    seen, handler = updates()

    async with Client(server, mode="legacy", message_handler=handler) as client:
        await legacy_subscribe(client, "experiments://settings")
        await ok(client, "update_settings", {"min_failures": 4})
        await wait_for(seen, "experiments://settings")


# -- F26: completion of experiment ids and the prompt's file; the event log as a resource ------------


async def test_resource_and_prompt_arguments_are_completed(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        first = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        await ok(client, "rollback", {"experiment_id": first, "reason": "make room", "confirm": True})
        second = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        for template in ("experiment://{experiment_id}", "experiment://{experiment_id}/events"):
            ref = types.ResourceTemplateReference(uri=template)
            done = (await client.complete(ref, {"name": "experiment_id", "value": ""})).completion
            assert done.values == [second, first] and done.total == 2  # newest first
        typed = first[: len("exp-")]
        assert set((await client.complete(ref, {"name": "experiment_id", "value": typed})).completion.values) == {
            first,
            second,
        }
        none = await client.complete(ref, {"name": "experiment_id", "value": "zzz"})
        assert none.completion.values == []
        listed = types.ResourceTemplateReference(uri="experiments://list/{status}")
        statuses = (await client.complete(listed, {"name": "status", "value": "r"})).completion.values
        # starting with it, then containing it; a filter for every status
        assert statuses == ["running", "rolled_back", "draft", "promoted", "expired"]
        assert set(get_args(ExperimentStatus)) <= set(LIST_FILTERS)
        ended = json.loads((await client.read_resource("experiments://list/ended")).contents[0].text)
        assert [(item["id"], item["status"]) for item in ended] == [(first, "rolled_back")]

        prompt = types.PromptReference(name="design_experiment")
        files = (await client.complete(prompt, {"name": "target", "value": "review"})).completion.values
        assert PROD in files and VAR in files  # the uncommitted variant too
        assert not any(f.startswith(".meta-experiment") or f.startswith(".git/") for f in files)
        assert (await client.complete(prompt, {"name": "goal", "value": "x"})).completion.values == []


def test_project_files_without_git_skip_the_state_folder_and_caches(tmp_path: Path) -> None:
    from meta_experiment.prompts import project_files

    root = tmp_path / "plain"
    for name in (
        "a.md",
        ".claude/commands/r.md",
        ".meta-experiment/experiments.db",
        ".git/config",
        "node_modules/x.js",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    assert project_files(root, root / ".meta-experiment") == [".claude/commands/r.md", "a.md"]


async def test_completion_is_advertised(server) -> None:
    async with Client(server, mode="legacy") as client:
        assert client.session.server_capabilities.completions is not None


async def test_the_event_log_is_a_resource_and_notified(server) -> None:
    seen, handler = updates()

    async with Client(server, mode="legacy", message_handler=handler) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "experiment://{experiment_id}/events" in templates
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        uri = f"experiment://{e}/events"
        await legacy_subscribe(client, uri)
        a = (await ok(client, "assign", {"experiment_id": e})).structured_content
        await ok(client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 5.0}})
        await ok(client, "void_trial", {"trial_id": a["trial_id"], "reason": "typo"})
        await wait_for(seen, uri)
        events = json.loads((await client.read_resource(uri)).contents[0].text)
        assert [item["kind"] for item in events] == ["created", "trial_voided"]
        assert events[1]["data"]["reason"] == "typo" and events[1]["actor"]
        with pytest.raises(MCPError, match="No experiment with id"):
            await client.read_resource("experiment://exp-missing/events")


async def test_the_trials_with_their_ids_are_a_resource(server) -> None:
    """Finding the trial to void: every trial with its id, status and values (a user test found no
    place that showed trial ids after record)."""
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        ids = [(await ok(client, "assign", {"experiment_id": e})).structured_content["trial_id"] for _ in range(3)]
        await ok(client, "record", {"trial_id": ids[0], "metrics": {"time_to_complete": 5.0}})
        await ok(client, "record", {"trial_id": ids[1], "metrics": {"time_to_complete": 50.0}})
        await ok(client, "void_trial", {"trial_id": ids[1], "reason": "typo", "metrics": {"time_to_complete": 5.5}})
        trials = json.loads((await client.read_resource(f"experiment://{e}/trials")).contents[0].text)
        by_id = {t["trial_id"]: t for t in trials}
        assert [t["trial_id"] for t in trials] == sorted(by_id) and len(trials) == 4  # the replacement too
        assert by_id[ids[0]]["status"] == "recorded" and by_id[ids[0]]["metrics"] == {"time_to_complete": 5.0}
        assert by_id[ids[1]]["status"] == "voided" and by_id[ids[1]]["metrics"]["time_to_complete"] == 50.0
        assert by_id[ids[2]]["status"] == "assigned" and by_id[ids[2]]["metrics"] == {}
        [replacement] = [t for t in trials if t["trial_id"] not in ids]
        assert replacement["metrics"] == {"time_to_complete": 5.5} and replacement["status"] == "recorded"
        with pytest.raises(MCPError, match="No experiment with id"):
            await client.read_resource("experiment://exp-missing/trials")


# -- F2: subscribing to an experiment that does not exist ---------------------------------------------


async def test_a_subscription_to_an_unknown_experiment_is_refused(server) -> None:
    async with Client(server, mode="legacy") as client:
        with pytest.raises(MCPError, match="No experiment with id 'exp-unknown'"):
            await legacy_subscribe(client, "experiment://exp-unknown")
        with pytest.raises(MCPError, match="No experiment with id 'exp-unknown'"):
            await legacy_subscribe(client, "experiment://exp-unknown/analysis")
        for uri in ("experiments://list", "experiments://status", "experiments://alerts", "experiments://settings"):
            await legacy_subscribe(client, uri)  # always fine, with or without experiments
        await legacy_subscribe(client, "experiments://list/running")
        with pytest.raises(MCPError, match="There is no resource 'experiments://list/runing'. Did you mean"):
            await legacy_subscribe(client, "experiments://list/runing")
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        await legacy_subscribe(client, f"experiment://{e}/report")
        with pytest.raises(MCPError) as long:  # cut short in the answer, as a read's
            await legacy_subscribe(client, "experiments://lists" + "s" * 100_000)
        assert len(str(long.value)) < 2_000
        await legacy_subscribe(client, f"experiment://{e}/trials/01")  # as a read takes it
        for typo in ("experiments://lists", f"experiment://{e}/analysys", "file:///etc/passwd"):
            with pytest.raises(
                MCPError, match=f"There is no resource '{typo}'.* The resources are: experiments://list,"
            ):
                await legacy_subscribe(client, typo)


# -- F1: changes committed by another process ---------------------------------------------------------


def test_the_watcher_names_what_another_connection_changed(project: Path) -> None:
    (project / "second.md").write_text("a\n")
    (project / "second.v.md").write_text("b\n")
    own, other = Lab.open(project), Lab.open(project)
    try:
        first = own.create(**spec(name="first"))
        second = own.create(**spec(name="second", files={"second.md": "second.v.md"}))
        watcher = ChangeWatcher()
        assert watcher.poll(own) == []  # the baseline
        own.assign(first.id)  # this process's own write: run_lab notifies it, not the watcher
        assert watcher.poll(own) == []
        a = other.assign(second.id)
        changed = watcher.poll(own)
        assert f"experiment://{second.id}" in changed and f"experiment://{second.id}/events" in changed
        assert "experiments://list" in changed and experiment_ids(changed) == {second.id}
        assert watcher.poll(own) == []  # nothing new since
        other.record(a.trial_id, {"time_to_complete": 3.0})  # a record inserts nothing: the counts move
        assert f"experiment://{second.id}/analysis" in watcher.poll(own)
        own.assign(first.id)  # own, then another's write in the same interval: both are named
        other.assign(second.id)
        assert experiment_ids(watcher.poll(own)) == {first.id, second.id}
        other.void_trial(a.trial_id, "typo")
        assert f"experiment://{second.id}/events" in watcher.poll(own)
        from meta_experiment.settings import update_settings

        update_settings(other.state_dir, {"defaults": {"sample_size_required": 12}})  # a file: no commit
        other.event(None, "settings_updated", "Settings changed from the CLI")
        changed = watcher.poll(own)
        assert "experiments://settings" in changed and experiment_ids(changed) == set()
        assert watcher.poll(own) == []
        settings_file = own.state_dir / "settings.toml"  # a hand edit: no event, no commit
        settings_file.write_text(settings_file.read_text() + "# longer now\n")
        assert watcher.poll(own) == ["experiments://settings"]
        (project / "pyproject.toml").write_text("[tool.meta-experiment.defaults]\nsample_size_required = 14\n")
        assert watcher.poll(own) == ["experiments://settings"]
        assert watcher.poll(own) == []
    finally:
        own.close()
        other.close()


async def test_the_watcher_does_not_poll_while_nobody_subscribes(server, monkeypatch: pytest.MonkeyPatch) -> None:
    polls: list[int] = []
    real = ChangeWatcher.poll

    def counted(self, lab, *args):  # type: ignore[no-untyped-def]
        polls.append(1)
        return real(self, lab, *args)

    monkeypatch.setattr(ChangeWatcher, "poll", counted)
    monkeypatch.setattr(mcp_common, "WATCH_INTERVAL_S", 0.05)
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        await ok(client, "assign", {"experiment_id": e})
        await anyio.sleep(0.5)
        assert polls == []
        await legacy_subscribe(client, "experiments://list")
        with anyio.fail_after(5):
            while len(polls) < 3:
                await anyio.sleep(0.02)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.unsubscribe_resource("experiments://list")
        await anyio.sleep(0.2)
        settled = len(polls)
        await anyio.sleep(0.5)
        assert len(polls) == settled  # idle again


async def test_a_record_by_another_process_reaches_a_stdio_subscriber(project: Path) -> None:
    """Legacy resources/subscribe over stdio: a record committed by this test process (another
    connection) and a void by the CLI each notify the subscriber within a few seconds."""
    lab = Lab.open(project)
    try:
        e = lab.create(**spec(name="elsewhere"))
        a = lab.assign(e.id)
    finally:
        lab.close()
    uri = f"experiment://{e.id}/analysis"
    seen, handler = updates()

    async with Client(stdio(project), mode="legacy", read_timeout_seconds=60, message_handler=handler) as client:
        await legacy_subscribe(client, uri)
        await anyio.sleep(1.5)  # the watcher's baseline is taken
        assert seen == []
        other = Lab.open(project)
        try:
            other.record(a.trial_id, {"time_to_complete": 12.0, "issues_caught": 3.0})
        finally:
            other.close()
        await wait_for(seen, uri)
        seen.clear()
        void = subprocess.run(
            [sys.executable, "-m", "meta_experiment", "void", str(a.trial_id), "--reason", "typo"],
            env=server_env(project),
            cwd=project,
            capture_output=True,
            text=True,
        )
        assert void.returncode == 0, void.stderr
        await wait_for(seen, uri)


async def test_another_process_reaches_a_listen_stream_and_a_server_without_state(project: Path) -> None:
    """2026-07-28 subscriptions/listen over stdio, on a server that started before the project had
    any state: the experiment another process creates, and its trials, are notified."""
    async with Client(stdio(project), read_timeout_seconds=60) as client:
        async with client.listen(resource_subscriptions=["experiments://list"]) as subscription:
            await anyio.sleep(1.5)
            lab = Lab.open(project)  # makes the database the server read as empty
            try:
                made = lab.create(**spec(name="from elsewhere"))
            finally:
                lab.close()
            with anyio.fail_after(8):
                event = await subscription.__anext__()
            assert getattr(event, "uri", None) == "experiments://list"
        uri = f"experiment://{made.id}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await anyio.sleep(1.5)
            lab = Lab.open(project)
            try:
                lab.assign(made.id)
            finally:
                lab.close()
            with anyio.fail_after(8):
                event = await subscription.__anext__()
            assert getattr(event, "uri", None) == uri


# -- F15, F21, F8, F9: descriptions and notes -----------------------------------------------------------


async def test_descriptions_say_what_the_arguments_do(server) -> None:
    async with Client(server, mode="legacy") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        prompt = await client.get_prompt("design_experiment", {})
        templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
    create = tools["create_experiment"].input_schema["properties"]
    confidence = json.dumps(create["confidence_threshold"])
    assert "min(0.05, 1 - this)" in confidence and "acts as 0.95" in confidence and "0.99" in confidence
    rollback = json.dumps(create["auto_rollback"])
    assert "monitoring alert" in rollback and "true unless changed" in rollback
    path = tools["export_experiments"].input_schema["properties"]["path"]["description"]
    assert "previous export" in path and "refused" in path
    document = json.dumps(tools["import_experiments"].input_schema["properties"]["document"])
    for needle in ('\\"changes\\"', '\\"variant\\"', '\\"primary\\"', '\\"status\\"', "export_experiments"):
        assert needle in document, needle
    guide = prompt.messages[0].content.text
    assert "0.95 for risky changes" not in guide and "0.99 for risky changes" in guide
    assert "event log" in templates["experiment://{experiment_id}/events"].description


async def test_create_notes_an_identical_variant_and_what_a_promote_commits(server, mode, project: Path) -> None:
    (project / "same.md").write_text("unchanged\n")
    (project / "same.v.md").write_text("unchanged\n")
    async with Client(server, mode=mode) as client:
        plain = (await ok(client, "create_experiment", CREATE)).content[0].text
        assert "identical" not in plain
        text = (
            (await ok(client, "create_experiment", dict(CREATE, name="aa", files={"same.md": "same.v.md"})))
            .content[0]
            .text
        )
        assert "Note: the variant of same.md is identical to production: this runs an A/A test" in text
        assert "symlink" not in text and "symlink" not in plain
        (project / "real.md").write_text("real\n")
        (project / "link.md").symlink_to("real.md")
        (project / "real.v.md").write_text("changed\n")
        linked = await ok(client, "create_experiment", dict(CREATE, name="ln", files={"./link.md": "real.v.md"}))
        assert linked.structured_content["files"][0]["production"] == "real.md"
        (project / "b.md").write_text("b\n")
        (project / "b.v.md").write_text("b2\n")
        (project / "a.md").write_text("a\n")
        (project / "a.v.md").write_text("a2\n")
        unsorted = await ok(
            client, "create_experiment", dict(CREATE, name="two", files={"b.md": "b.v.md", "a.md": "a.v.md"})
        )
        assert "symlink" not in unsorted.content[0].text  # given out of order: matched by path, not position
        assert (
            "Note: ./link.md leads to real.md (a symlink): the experiment tests that file, and a promote or "
            "rollback writes it." in linked.content[0].text
        )
        assert "uncommitted" in text  # same.md was never committed
        assert "A promote overwrites it with the variant and commits that" in text
        assert "promote or rollback commits" not in text
        assert "A rollback while the experiment runs leaves the file alone." in text


async def test_the_chart_of_an_ended_experiment_does_not_say_yet(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        with pytest.raises(MCPError, match=r"No chart for .* yet: each arm needs at least 2 recorded trials"):
            await client.read_resource(f"experiment://{e}/chart.png")
        await ok(client, "rollback", {"experiment_id": e, "reason": "stop", "confirm": True})
        with pytest.raises(MCPError) as ended:
            await client.read_resource(f"experiment://{e}/chart.png")
        assert "yet" not in str(ended.value) and "ended (rolled_back)" in str(ended.value)
        analyzed = await ok(client, "analyze", {"experiment_id": e, "chart": True})
        assert "ended (rolled_back)" in analyzed.content[0].text


async def test_every_resource_is_in_the_readme(server) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    async with Client(server, mode="legacy") as client:
        static = [str(r.uri) for r in (await client.list_resources()).resources]
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
    for uri in static + templates:
        assert f"`{uri}`" in readme, uri


def test_completing_a_file_lists_the_project_once_per_pause(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: completion asks at every keystroke, and each ask ran `git ls-files` over the
    project (up to 10 s on a large one): the list is kept for FILES_FRESH_S seconds."""
    import meta_experiment.mcp_resources as resources
    from meta_experiment.mcp_common import AppState

    calls: list[Path] = []
    real = resources.project_files
    monkeypatch.setattr(resources, "project_files", lambda root, state: calls.append(root) or real(root, state))
    resources._listed.clear()
    lab = Lab.open(project)
    try:
        box = {"state": AppState(opened=lab)}
        first = resources._files(box)
        (project / "new.md").write_text("x\n")
        assert resources._files(box) == first and len(calls) == 1  # a keystroke later: the same list
        monkeypatch.setattr(resources, "FILES_FRESH_S", -1.0)
        assert "new.md" in resources._files(box) and len(calls) == 2  # after the pause: listed again
    finally:
        lab.close()
        resources._listed.clear()


# -- from a review of the MCP surface (2026-11-27) ------------------------------------------------------


async def test_the_trials_come_in_pages_small_enough_for_a_client(
    server, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: the trials resource sent every trial at once, pretty-printed (~408 bytes a
    trial); past ~13,000 trials per arm it exceeded the 10 MB a TypeScript client (the Inspector,
    Claude Code) reads, and the client dropped the server. It now sends the newest page, compact,
    and every page at experiment://ID/trials/N."""
    from meta_experiment import mcp_resources

    monkeypatch.setattr(mcp_resources, "TRIALS_PER_PAGE", 2)
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        ids = [(await ok(client, "assign", {"experiment_id": e})).structured_content["trial_id"] for _ in range(5)]

        async def page(uri: str) -> list[int]:
            text = (await client.read_resource(uri)).contents[0].text
            assert "\n" not in text  # compact
            return [t["trial_id"] for t in json.loads(text)]

        assert await page(f"experiment://{e}/trials") == ids[3:]  # the newest, as many as a page holds
        assert [await page(f"experiment://{e}/trials/{n}") for n in (1, 2, 3)] == [ids[:2], ids[2:4], ids[4:]]
        with pytest.raises(MCPError, match="5 trials in 3 page\\(s\\) .*; there is no page 4"):
            await client.read_resource(f"experiment://{e}/trials/4")
        one = len((await client.read_resource(f"experiment://{e}/trials/3")).contents[0].text) - 2  # "[...]"
        monkeypatch.setattr(mcp_resources, "PAGE_BYTES", one + 5)  # one trial a page: a byte budget
        assert await page(f"experiment://{e}/trials") == ids[4:]
        assert [await page(f"experiment://{e}/trials/{n}") for n in range(1, 6)] == [[i] for i in ids]
        with pytest.raises(MCPError, match="the page is a number from 1"):
            await client.read_resource(f"experiment://{e}/trials/0")


def test_a_numbered_page_is_found_from_its_number(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: a numbered page's boundaries depended on the size of every trial before it, so
    reading page 1 of 400,000 trials read all of them (16 s), and recording an early trial (which
    makes it longer) moved every later page. A page now holds a fixed number of trials, fewer when
    the experiment's largest possible trial (a long unit, many metrics) would pass the byte budget."""
    from meta_experiment import mcp_resources
    from meta_experiment.errors import NotFound

    monkeypatch.setattr(mcp_resources, "TRIALS_PER_PAGE", 3)
    e = lab.create(**spec(auto_rollback=False))
    ids = [lab.assign(e.id).trial_id for _ in range(7)]

    def pages(count: int) -> list[list[int]]:
        return [
            [t["trial_id"] for t in json.loads(mcp_resources.trials_page(lab, e.id, n))] for n in range(1, count + 1)
        ]

    assert pages(3) == [ids[:3], ids[3:6], ids[6:]]
    before = mcp_resources.trials_page(lab, e.id, 1)
    lab.record(ids[0], {"time_to_complete": 12.5, "issues_caught": 3.0})
    assert len(mcp_resources.trials_page(lab, e.id, 1)) > len(before)  # the first page's trial grew ...
    assert pages(3) == [ids[:3], ids[3:6], ids[6:]]  # ... and no boundary moved
    assert json.loads(mcp_resources.trials_page(lab, e.id, 1))[0]["metrics"] == {
        "time_to_complete": 12.5,
        "issues_caught": 3.0,
    }
    with pytest.raises(NotFound, match="7 trials in 3 page\\(s\\) of up to 3 trials; there is no page 4"):
        mcp_resources.trials_page(lab, e.id, 4)
    # the size is the definition's: a unit as long as can be (control characters print as six bytes
    # each) moves no page, and every page stays in the budget
    monkeypatch.setattr(mcp_resources, "TRIALS_PER_PAGE", 10_000)
    per_page = mcp_resources.trials_per_page(lab, e.id)
    monkeypatch.setattr(mcp_resources, "PAGE_BYTES", 2 * (mcp_resources.PAGE_BYTES // per_page))  # two a page
    assert mcp_resources.trials_per_page(lab, e.id) == 2
    assert pages(4) == [ids[:2], ids[2:4], ids[4:6], ids[6:]]
    worst = "\x01" * 200
    ids += [lab.assign(e.id, unit=worst).trial_id, lab.assign(e.id, unit="\U0001f600" * 200).trial_id]
    lab.record(ids[-1], {"time_to_complete": 1.2345678901234567e-300, "issues_caught": -1.2345678901234567e-300})
    assert mcp_resources.trials_per_page(lab, e.id) == 2
    assert pages(5) == [ids[:2], ids[2:4], ids[4:6], ids[6:8], ids[8:]]
    assert all(len(mcp_resources.trials_page(lab, e.id, n).encode()) <= mcp_resources.PAGE_BYTES for n in range(1, 6))
    assert [t["unit"] for t in json.loads(mcp_resources.trials_page(lab, e.id, 4))] == [None, worst]
    newest = json.loads(mcp_resources.trials_page(lab, e.id, None))
    assert len(mcp_resources.trials_page(lab, e.id, None).encode()) <= mcp_resources.PAGE_BYTES
    assert newest[-1]["unit"] == "\U0001f600" * 200


async def test_an_export_too_large_for_one_answer_asks_for_a_path(
    server, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meta_experiment import mcp_data

    monkeypatch.setattr(mcp_data, "MAX_ANSWER_BYTES", 1000)
    async with Client(server, mode="legacy") as client:
        await ok(client, "create_experiment", CREATE)
        result = await client.call_tool("export_experiments", {})
        assert result.is_error and "too large to return in one answer" in result.content[0].text
        assert "Pass path to write it to a file" in result.content[0].text
        written = await ok(client, "export_experiments", {"path": "experiments.json"})
        assert written.structured_content["path"] == "experiments.json"


async def test_record_is_not_marked_idempotent_and_takes_a_padded_id(server) -> None:
    """From a review: record was annotated idempotentHint, yet a past measurement sent twice is two
    measurements (a client may retry a call so marked on its own); and its experiment_id, unlike
    every other tool's, kept the spaces around a pasted id."""
    async with Client(server, mode="legacy") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["record"].annotations is not None and not tools["record"].annotations.idempotent_hint
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        args = {"experiment_id": f" {e} ", "arm": "control", "metrics": {"time_to_complete": 5.0}}
        assert (await ok(client, "record", args)).structured_content["experiment_id"] == e


async def test_a_failed_run_is_recorded_without_metrics(server) -> None:
    """From a review: the README and the hooks' own instructions say a failed run may leave its
    metrics out ("record ... with trial_id 1 and success=false"), yet record refused the call
    ("metrics: Field required")."""
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        trial = (await ok(client, "assign", {"experiment_id": e})).structured_content["trial_id"]
        failed = await ok(client, "record", {"trial_id": trial, "success": False})
        assert failed.structured_content["trial_id"] == trial and failed.structured_content["success"] is False
        second = (await ok(client, "assign", {"experiment_id": e})).structured_content["trial_id"]
        timed = await ok(client, "record", {"trial_id": second})  # the duration primary, measured from assign
        assert "time_to_complete" in timed.structured_content["metrics"]


async def test_an_unknown_list_filter_is_not_found_not_an_internal_error(server) -> None:
    async with Client(server, mode="legacy") as client:
        with pytest.raises(MCPError) as info:
            await client.read_resource("experiments://list/Running")
        assert info.value.error.code != types.INTERNAL_ERROR
        assert "'Running' is not a status this list filters by" in info.value.error.message


async def test_an_ended_experiment_needs_no_more_trials(server) -> None:
    """From a review: an ended experiment's structured progress said 9 trials were needed."""
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        trial = (await ok(client, "assign", {"experiment_id": e})).structured_content["trial_id"]
        await ok(client, "record", {"trial_id": trial, "metrics": {"time_to_complete": 5.0}})
        await ok(client, "rollback", {"experiment_id": e, "reason": "wrong file", "confirm": True})
        [item] = json.loads((await client.read_resource("experiments://list/ended")).contents[0].text)
        assert item["progress"]["trials_needed"] == 0 and item["progress"]["percent"] == 25.0
        retry = await ok(client, "record", {"trial_id": trial, "metrics": {"time_to_complete": 5.0}})
        assert retry.structured_content["ended"] == "rolled_back" and retry.structured_content["trials_needed"] == 0


async def test_a_trial_id_of_true_is_refused_not_read_as_trial_1(server, mode) -> None:
    """From a review: void_trial {"trial_id": true} withdrew trial 1; record recorded into it."""
    async with Client(server, mode=mode) as client:
        for tool, args in (("void_trial", {"reason": "r"}), ("record", {"metrics": {"t": 1.0}})):
            refused = await client.call_tool(tool, {"trial_id": True, **args})
            assert refused.is_error and "trial_id: must be a number, not true" in refused.content[0].text


# -- a review of the surface in the MCP Inspector ------------------------------------------------------


async def test_dispatch_off_is_notified_as_dispatch_on_is(server) -> None:
    seen, handler = updates()

    async with Client(server, mode="legacy", message_handler=handler) as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        await legacy_subscribe(client, "experiments://status")
        await ok(client, "dispatch", {"experiment_id": e})
        await wait_for(seen, "experiments://status")
        seen.clear()
        off = await ok(client, "dispatch", {"experiment_id": e, "on": False})
        assert "Put the original" in off.content[0].text
        await wait_for(seen, "experiments://status")
        seen.clear()
        await ok(client, "dispatch", {"experiment_id": e, "on": False})  # nothing changed: nothing said
        await ok(client, "status")
        await anyio.sleep(0.2)
        assert seen == []


async def test_a_numbered_trials_page_can_be_subscribed_to_and_is_notified(server, project: Path) -> None:
    (project / "other.md").write_text("a\n")
    (project / "other.v.md").write_text("b\n")
    seen, handler = updates()

    async with Client(server, mode="legacy", message_handler=handler) as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        other = (
            await ok(client, "create_experiment", {**CREATE, "files": {"other.md": "other.v.md"}})
        ).structured_content
        page = f"experiment://{e}/trials/1"
        await legacy_subscribe(client, page)
        await legacy_subscribe(client, f"experiment://{other['id']}/trials/2")  # a page that is not there yet
        for bad in (f"experiment://{e}/trials/0", f"experiment://{e}/trials/x", f"experiment://{e}/trials/1/"):
            with pytest.raises(MCPError, match=r"experiment://\{experiment_id\}/trials/\{page\}"):
                await legacy_subscribe(client, bad)
        a = (await ok(client, "assign", {"experiment_id": e})).structured_content
        await wait_for(seen, page)
        assert seen == [page]  # not the other experiment's page
        seen.clear()
        await ok(client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 5.0}})
        await wait_for(seen, page)


async def test_a_listen_stream_on_a_numbered_trials_page_is_notified(server) -> None:
    async with Client(server) as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        page = f"experiment://{e}/trials/1"
        async with client.listen(resource_subscriptions=[page]) as subscription:
            await ok(client, "assign", {"experiment_id": e})
            with anyio.fail_after(8):
                event = await subscription.__anext__()
            assert getattr(event, "uri", None) == page
        state_wanted = server._subscriptions.wanted
        with anyio.fail_after(5):
            while state_wanted:  # the stream's URIs are forgotten when it closes
                await anyio.sleep(0.02)


@pytest.mark.parametrize("page", ["²", "٣", "１", "9" * 4301, "0" * 5000, "-1"])
async def test_a_page_that_is_no_plain_number_is_refused_in_one_sentence(server, page: str) -> None:
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        with pytest.raises(MCPError, match="the page is a number from 1") as info:
            await client.read_resource(f"experiment://{e}/trials/{page}")
        assert info.value.error.code == types.INVALID_PARAMS and len(str(info.value)) < 400


async def test_an_unknown_resource_or_tool_gets_the_names_there_are(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        for typo in ("experiments://lists", "EXPERIMENTS://list"):
            with pytest.raises(MCPError) as info:
                await client.read_resource(typo)
            message = str(info.value)
            assert f"There is no resource '{typo}'. Did you mean experiments://list" in message, message
            assert "experiment://{experiment_id}/trials/{page}" in message and "experiments://settings" in message
        unknown = await client.call_tool("analyse", {"experiment_id": "x"})
        text = unknown.content[0].text
        assert unknown.is_error and "There is no tool 'analyse'. Did you mean analyze?" in text, text
        assert "record" in text and "void_trial" in text


async def test_the_report_resource_has_the_rank_tests_the_analyze_tool_gives(server) -> None:
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        for arm, value in [("control", 3.0), ("control", 4.0), ("control", 5.0), ("treatment", 2.0)] * 2:
            await ok(client, "record", {"experiment_id": e, "arm": arm, "metrics": {"time_to_complete": value}})
        tool = await ok(client, "analyze", {"experiment_id": e})
        assert "Mann-Whitney" in tool.content[0].text
        report_text = (await client.read_resource(f"experiment://{e}/report")).contents[0].text
        assert "Mann-Whitney" in report_text
        analysis = json.loads((await client.read_resource(f"experiment://{e}/analysis")).contents[0].text)
        assert analysis["primary"]["mann_whitney"] is not None


async def test_dispatch_is_marked_destructive_and_a_drafts_chart_says_start_it(server) -> None:
    async with Client(server, mode="legacy") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["dispatch"].annotations.destructive_hint is True
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        with pytest.raises(MCPError) as info:
            await client.read_resource(f"experiment://{e}/chart.png")
        assert info.value.error.code == types.INVALID_PARAMS  # not there yet: not a server failure
        document = (await ok(client, "export_experiments")).structured_content["document"]
        await ok(client, "rollback", {"experiment_id": e, "reason": "make room", "confirm": True})
        item = document["experiments"][0]
        item.update(id="exp-draft-9", status="draft")
        item.pop("meta_experiment")
        await ok(client, "import_experiments", {"document": document})
        with pytest.raises(MCPError, match=r"it is a draft, which takes no trials until it starts \(start_experiment"):
            await client.read_resource("experiment://exp-draft-9/chart.png")


async def test_get_experiment_answers_the_newest_events_and_their_count(server) -> None:
    """From a review: 300 dispatch cycles made get_experiment's answer 200 KB (the whole log)."""
    from meta_experiment.mcp_server import EVENTS_SHOWN

    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        for _ in range(EVENTS_SHOWN // 2 + 3):
            await ok(client, "dispatch", {"experiment_id": e})
            await ok(client, "dispatch", {"experiment_id": e, "on": False})
        detail = await ok(client, "get_experiment", {"experiment_id": e})
        events = detail.structured_content["events"]
        total = detail.structured_content["events_total"]
        whole = json.loads((await client.read_resource(f"experiment://{e}/events")).contents[0].text)
        assert len(events) == EVENTS_SHOWN < total == len(whole)
        assert [ev["id"] for ev in events] == [ev["id"] for ev in whole[-EVENTS_SHOWN:]]
        assert f"all of them: experiment://{e}/events" in detail.content[0].text


async def test_a_percent_sent_as_text_and_a_retried_record_say_what_they_should(server) -> None:
    """From a review: treatment_percent "20" was told 'Input should be 10, 20, ...'; an identical
    retry of a record that left a guardrail out answered missing_guardrails [] (the first answer,
    which named it, may be the one that was lost)."""
    async with Client(server, mode="legacy") as client:
        refused = await client.call_tool("create_experiment", {**CREATE, "treatment_percent": "20"})
        assert refused.is_error and "as a number: 20, not the text '20'" in refused.content[0].text
        guarded = {**CREATE, "secondary_metrics": [{"name": "issues_caught", "direction": "higher_is_better"}]}
        e = (await ok(client, "create_experiment", guarded)).structured_content["id"]
        trial = (await ok(client, "assign", {"experiment_id": e})).structured_content["trial_id"]
        args = {"trial_id": trial, "metrics": {"time_to_complete": 6.0}}
        first = (await ok(client, "record", args)).structured_content
        retry = (await ok(client, "record", args)).structured_content
        assert first["missing_guardrails"] == ["issues_caught"] and retry["duplicate"]
        assert retry["missing_guardrails"] == ["issues_caught"]


async def test_an_overlong_id_is_not_echoed_whole_and_export_ids_are_read_as_tool_ids(server) -> None:
    """From a review: export_experiments' ids had no length limit and the not-found message echoed
    the id whole (a 1 MB id, a 1 MB answer; a resource read of a 5,000-character id too); an id
    with a space around it, which every other tool strips, was refused."""
    async with Client(server, mode="legacy") as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        refused = await client.call_tool("export_experiments", {"experiment_ids": ["x" * 1_000_000]})
        assert refused.is_error and len(refused.content[0].text) < 2_000
        assert "at most 100 characters" in refused.content[0].text
        exported = await ok(client, "export_experiments", {"experiment_ids": [f" {e}\n"]})
        assert exported.structured_content["experiments"] == 1
        with pytest.raises(MCPError) as unknown:
            await client.read_resource(f"experiment://{'y' * 5_000}")
        assert len(str(unknown.value)) < 2_000 and "that is 5,000 characters" in str(unknown.value)


async def test_an_assign_or_a_record_notifies_only_what_it_can_change(server, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: every assign notified experiments://alerts, experiments://list and every
    list filter (nothing there had changed), and update_settings notified the settings twice: the
    watcher took this process's own write of settings.toml for a hand edit."""
    monkeypatch.setattr(mcp_common, "WATCH_INTERVAL_S", 0.05)
    seen, handler = updates()
    async with Client(server, mode="legacy", message_handler=handler) as client:
        e = (await ok(client, "create_experiment", CREATE)).structured_content["id"]
        watched = [
            "experiments://alerts",
            "experiments://list",
            "experiments://list/promoted",
            "experiments://list/running",
            "experiments://settings",
            f"experiment://{e}/trials",
        ]
        for uri in watched:
            await legacy_subscribe(client, uri)
        await anyio.sleep(0.3)  # the watcher's baseline
        seen.clear()
        trial = (await ok(client, "assign", {"experiment_id": e})).structured_content["trial_id"]
        assert seen == [f"experiment://{e}/trials"]
        seen.clear()
        await ok(client, "record", {"trial_id": trial, "metrics": {"time_to_complete": 10.0}})
        assert sorted(seen) == sorted(["experiments://list", "experiments://list/running", f"experiment://{e}/trials"])
        seen.clear()
        await ok(client, "update_settings", {"min_failures": 4})
        await anyio.sleep(0.5)  # several polls of the watcher
        assert seen == ["experiments://settings"]
        seen.clear()
        await ok(client, "rollback", {"experiment_id": e, "reason": "done", "confirm": True})
        assert {"experiments://list/running", "experiments://alerts", f"experiment://{e}/trials"} <= set(seen)


async def test_a_unit_sent_as_a_number_is_its_text_and_an_ended_experiment_gets_no_guardrail_advice(server) -> None:
    """From a review: the MCP Inspector sends `unit=123` as a number, which assign refused ("Input
    should be a valid string"); and the record whose alert rolled the experiment back still told the
    agent to record its guardrails on every run."""
    async with Client(server, mode="legacy") as client:
        guardrails = [
            {"name": "issues_caught", "direction": "higher_is_better"},
            {"name": "satisfaction", "direction": "higher_is_better"},  # (a floor of 0.5)
        ]
        create = {**CREATE, "secondary_metrics": guardrails}
        e = (await ok(client, "create_experiment", create)).structured_content["id"]
        by_number = (await ok(client, "assign", {"experiment_id": e, "unit": 123})).structured_content
        by_text = (await ok(client, "assign", {"experiment_id": e, "unit": " 123"})).structured_content
        assert by_number["unit"] == by_text["unit"] == "123" and by_number["arm"] == by_text["arm"]
        for bad in (True, 1.5):
            assert (await client.call_tool("assign", {"experiment_id": e, "unit": bad})).is_error
        for i in range(10):
            values = {"time_to_complete": 9.0, "issues_caught": 2, "satisfaction": 0.9 + i % 3 / 100}
            await ok(client, "record", {"experiment_id": e, "arm": "control", "metrics": values})
        for i in range(40):  # the treatment's satisfaction far under its floor; issues_caught left out
            values = {"time_to_complete": 9.0, "satisfaction": 0.1 + i % 3 / 100}
            r = await ok(client, "record", {"experiment_id": e, "arm": "treatment", "metrics": values})
            if r.structured_content["ended"]:
                break
        assert r.structured_content["ended"] == "rolled_back" and r.structured_content["missing_guardrails"]
        assert "Guardrail(s) not recorded" not in r.content[0].text
