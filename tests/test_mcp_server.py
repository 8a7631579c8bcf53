"""Every tool, resource and the prompt through a real MCP client (in memory), in the legacy
(initialize) mode that Claude Code and the Inspector speak and in the default 2026-07-28 mode."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client, MCPDeprecationWarning
from mcp.shared.exceptions import MCPError

from conftest import COMMAND, PROD, VAR, VARIANT
from meta_experiment.mcp_protocol import unknown_arguments_message
from meta_experiment.mcp_server import build_server

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]
CREATE = {
    "name": "Parallel PR review",
    "hypothesis": "Parallel agents save 15 minutes",
    "files": {PROD: VAR},
    "primary_metric": {"name": "time_to_complete", "direction": "lower_is_better", "unit": "min"},
    "secondary_metrics": [{"name": "issues_caught", "direction": "higher_is_better"}],
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


async def call(client: Client, tool: str, args: dict | None = None) -> types.CallToolResult:
    return await client.call_tool(tool, args or {})


async def ok(client: Client, tool: str, args: dict | None = None) -> dict:
    result = await call(client, tool, args)
    assert not result.is_error, result.content[0].text
    assert result.content and result.content[0].type == "text" and result.content[0].text
    return result.structured_content


async def refused(client: Client, tool: str, args: dict, *, says: str) -> str:
    """A refused call: is_error, a message that says what is wrong, and no state change."""
    before = await ok(client, "export_experiments")
    result = await call(client, tool, args)
    assert result.is_error
    text = result.content[0].text
    assert says.lower() in text.lower(), text
    assert "Traceback" not in text
    assert await ok(client, "export_experiments") == before
    return text


async def test_every_tool_is_described_with_schemas_and_annotations(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "create_experiment",
        "start_experiment",
        "assign",
        "record",
        "void_trial",
        "analyze",
        "status",
        "get_experiment",
        "update_settings",
        "export_experiments",
        "import_experiments",
        "promote",
        "rollback",
        "auto",
        "dispatch",
    }
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40, tool.name
        assert tool.output_schema and tool.output_schema.get("type") == "object", tool.name
        assert tool.annotations is not None and tool.annotations.title, tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description") or "$ref" in json.dumps(prop), f"{tool.name}.{name} has no description"
    for read_only in ("analyze", "status", "get_experiment"):
        assert tools[read_only].annotations.read_only_hint is True
    assert tools["create_experiment"].annotations.read_only_hint is False
    for destructive in ("promote", "rollback", "auto"):
        assert tools[destructive].annotations.destructive_hint is True


async def test_full_lifecycle_through_the_protocol(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", CREATE)
        assert e["status"] == "running" and e["sample_size_required"] == 4
        empty = await call(client, "analyze", {"experiment_id": e["id"], "chart": True})
        assert [c.type for c in empty.content] == ["text"]  # no data, no image: and the text says why
        assert (
            "yet: each arm needs at least 2 recorded trials with a value of time_to_complete "
            "(control 0, treatment 0 so far)" in empty.content[0].text
        )
        arms = []
        for i in range(4):
            result = await call(client, "assign", {"experiment_id": e["id"]})
            a = result.structured_content
            arms.append(a["arm"])
            text = {PROD: COMMAND, VAR: VARIANT}[a["files"][0]["path"]]
            assert a["files"][0]["content"] == text
            # the text answer stands alone: a client that shows the model only the text has the file too
            shown = PROD if a["arm"] == "control" else f"{PROD} (this arm: {VAR})"
            assert f"\n\n{shown}:\n```\n{text}" in result.content[0].text
            r = await ok(
                client,
                "record",
                {
                    "trial_id": a["trial_id"],
                    "metrics": {
                        "time_to_complete": 40.0 + i if a["arm"] == "control" else 20.0 + i,
                        "issues_caught": 3,
                    },
                },
            )
            assert r["trials_recorded"] == i + 1
        assert sorted(arms) == ["control", "control", "treatment", "treatment"]
        imported = await ok(
            client, "record", {"experiment_id": e["id"], "arm": "control", "metrics": {"time_to_complete": 41.0}}
        )
        assert imported["arm"] == "control"
        plain = await call(client, "analyze", {"experiment_id": e["id"]})
        assert [c.type for c in plain.content] == ["text"]
        result = await call(client, "analyze", {"experiment_id": e["id"], "chart": True})
        assert not result.is_error and "No chart" not in result.content[0].text
        primary = result.structured_content["primary"]
        assert primary["name"] == "time_to_complete" and primary["control"]["n"] == 3
        assert primary["improvement_pct"] > 0 and primary["welch"]["p_value"] < 0.05
        assert result.structured_content["decision"]["action"] in ("promote", "continue")
        assert "STATISTICAL ANALYSIS" in result.content[0].text
        image = result.content[1]
        assert image.type == "image" and image.mime_type == "image/png"
        assert base64.b64decode(image.data).startswith(b"\x89PNG")
        status = await call(client, "status")
        assert "ACTIVE EXPERIMENTS" in status.content[0].text
        assert status.structured_content["experiments"][0]["progress"]["trials_recorded"] == 5
        assert status.structured_content["experiments"][0]["improvement_pct"] > 0
        detail = await ok(client, "get_experiment", {"experiment_id": e["id"]})
        assert detail["events"][0]["kind"] == "created"


async def test_record_retry_is_idempotent_and_conflicts_are_refused(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", CREATE)
        a = await ok(client, "assign", {"experiment_id": e["id"]})
        args = {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 12.0}}
        first = await call(client, "record", args)
        assert first.structured_content["duplicate"] is False
        assert first.structured_content["missing_guardrails"] == ["issues_caught"]
        assert "Guardrail(s) not recorded for this trial: issues_caught" in first.content[0].text
        assert (await ok(client, "record", args))["duplicate"] is True
        await refused(client, "record", {**args, "metrics": {"time_to_complete": 99.0}}, says="already recorded")


async def test_true_and_false_are_values_of_yes_no_metrics_only(server, mode) -> None:
    binary = {"name": "tests_passed", "direction": "higher_is_better", "kind": "binary"}
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", {**CREATE, "secondary_metrics": [binary]})
        a = await ok(client, "assign", {"experiment_id": e["id"]})
        r = await ok(
            client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 3, "tests_passed": True}}
        )
        assert r["metrics"] == {"time_to_complete": 3.0, "tests_passed": 1.0}
        fix = {"trial_id": a["trial_id"], "reason": "typo"}
        await refused(client, "void_trial", {**fix, "metrics": {"time_to_complete": False}}, says="not yes/no")
        await refused(client, "void_trial", {**fix, "metrics": {"time_to_complete": "true"}}, says="not yes/no")
        await refused(client, "void_trial", {**fix, "metrics": {"time_to_complete": "1_000"}}, says="true/false")
        text = await refused(
            client, "void_trial", {**fix, "metrics": {"tests_passed": [1]}}, says="metrics.tests_passed"
        )
        assert text.count("must be") == 1 and "true/false" in text  # one sentence, not one per accepted type
        v = await ok(client, "void_trial", {**fix, "metrics": {"tests_passed": False}})
        assert v["replacement_metrics"] == {"time_to_complete": 3.0, "tests_passed": 0.0}


async def test_bad_input_is_a_tool_error_and_changes_nothing(server, mode, tmp_path: Path) -> None:
    (tmp_path / "outside.md").write_text("x")
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", CREATE)
        a = await ok(client, "assign", {"experiment_id": e["id"]})
        await refused(client, "assign", {"experiment_id": "exp-unknown"}, says="No experiment with id")
        await refused(client, "get_experiment", {"experiment_id": "exp-unknown"}, says="No experiment with id")
        await refused(client, "analyze", {"experiment_id": "exp-unknown"}, says="No experiment with id")
        await refused(client, "record", {"trial_id": 9999, "metrics": {"time_to_complete": 1}}, says="No trial")
        await refused(
            client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": "NaN"}}, says="finite"
        )
        await refused(
            client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": "Infinity"}}, says="finite"
        )
        await refused(
            client,
            "record",
            {"trial_id": a["trial_id"], "metrics": {"time_to_complete": "slow"}},
            says="time_to_complete",
        )
        await refused(client, "record", {"trial_id": "seven", "metrics": {"time_to_complete": 1}}, says="trial_id")
        # true is 1 only on a yes/no metric; on a duration it is refused, not recorded as 1 minute
        text = await refused(
            client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": True}}, says="not yes/no"
        )
        assert "time_to_complete" in text and "true" in text
        await refused(client, "record", {"metrics": {"time_to_complete": 1}}, says="trial_id")
        await refused(client, "create_experiment", {**CREATE, "sample_size_required": -5}, says="sample_size_required")
        await refused(client, "create_experiment", {**CREATE, "files": {"../outside.md": VAR}}, says="outside")
        await refused(
            client, "create_experiment", {**CREATE, "files": {str(tmp_path / "outside.md"): VAR}}, says="outside"
        )
        await refused(client, "create_experiment", {**CREATE, "files": {"nope.md": VAR}}, says="does not exist")
        await refused(client, "create_experiment", {**CREATE, "primary_metric": {"name": "t"}}, says="direction")
        await refused(client, "update_settings", {"sample_size_required": -1}, says="sample_size_required")
        read = await ok(client, "update_settings", {})  # no value: reads the settings, changes nothing
        assert read["changed"] == [] and read["settings"]["defaults"]["sample_size_required"] == 10
        await refused(client, "import_experiments", {"document": {"nope": 1}}, says="experiments")
        # argument errors are one sentence per field, not pydantic's dump with a link
        text = await refused(client, "create_experiment", {**CREATE, "sample_size_required": 1}, says="greater than")
        assert text.startswith("Invalid arguments for create_experiment: sample_size_required:")
        assert "pydantic.dev" not in text and "\n" not in text
        await refused(client, "update_settings", {"improvement_threshold": "NaN"}, says="finite number")
        text = await refused(
            client, "record", {"trial_id": 10**20, "metrics": {"time_to_complete": 1}}, says="trial_id"
        )
        # and the server keeps serving
        assert (await ok(client, "status"))["counts"]["running"] == 1


async def test_unknown_arguments_are_refused_before_anything_runs(server, mode, project: Path) -> None:
    """The SDK drops arguments a tool does not have; a misspelled optional one (charts for chart)
    would silently change what the call does. Every tool refuses them, naming its arguments."""
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", CREATE)
        for i in range(4):  # both arms: enough for a chart
            a = await ok(client, "assign", {"experiment_id": e["id"]})
            await ok(client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 5.0 + i}})
        text = await refused(client, "analyze", {"experiment_id": e["id"], "charts": True}, says="charts")
        assert text == (
            "analyze has no argument 'charts' (did you mean 'chart'?); "
            "its arguments are: experiment_id, chart, rank_tests."
        )
        text = await refused(client, "status", {"experiment_id": e["id"]}, says="experiment_id")
        assert text == "status has no argument 'experiment_id'; its arguments are: active_only."
        # a tool that writes: refused, so no trial is assigned (refused checks the export)
        text = await refused(client, "assign", {"experiment_id": e["id"], "Unit": "pr-1"}, says="did you mean 'unit'")
        # several at once, case slips, and no suggestion when nothing is close
        text = await refused(
            client,
            "record",
            {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 5.0}, "sucess": False, "zzz": 1},
            says="record has no arguments 'sucess' (did you mean 'success'?) or 'zzz';",
        )
        assert text.endswith("its arguments are: metrics, trial_id, success, experiment_id, arm.")
        assert "\n" not in text
        await refused(client, "update_settings", {"sample_size": 30}, says="did you mean 'sample_size_required'")
        assert (
            not (project / ".meta-experiment" / "settings.toml").exists()
            or "sample_size_required = 30" not in (project / ".meta-experiment" / "settings.toml").read_text()
        )
        # a correctly spelled call still works, the optional argument included
        result = await call(client, "analyze", {"experiment_id": e["id"], "chart": True})
        assert not result.is_error and [c.type for c in result.content] == ["text", "image"]
        assert len((await ok(client, "status", {}))["experiments"]) == 1
        # an unknown tool keeps the SDK's answer
        unknown = await call(client, "analyse", {"experiment_id": e["id"]})
        assert unknown.is_error and "There is no tool" in unknown.content[0].text


def test_unknown_arguments_message_follows_the_schema() -> None:
    schema = {"type": "object", "properties": {"chart": {}, "rank_tests": {}}}
    assert unknown_arguments_message("t", {"chart": True}, schema) is None
    assert unknown_arguments_message("t", {}, {"type": "object"}) is None
    assert (
        unknown_arguments_message("t", {"x": 1}, {"type": "object"}) == "t has no argument 'x'; it takes no arguments."
    )
    assert unknown_arguments_message("t", {"x": 1}, {**schema, "additionalProperties": True}) is None
    long = unknown_arguments_message("t", {"k" * 500: 1}, schema)
    assert long is not None and len(long) < 200
    quoted = unknown_arguments_message("t", {"a'\nb": 1}, schema)
    assert quoted is not None and "\n" not in quoted


async def test_settings_update_through_the_tool(server, mode, project: Path) -> None:
    async with Client(server, mode=mode) as client:
        s = await ok(client, "update_settings", {"sample_size_required": 30, "min_failures": 4})
        assert s["settings"]["defaults"]["sample_size_required"] == 30
        assert s["settings"]["monitoring"]["min_failures"] == 4
        e = await ok(client, "create_experiment", {k: v for k, v in CREATE.items() if k != "sample_size_required"})
        assert e["sample_size_required"] == 30
    assert "sample_size_required = 30" in (project / ".meta-experiment" / "settings.toml").read_text()


async def test_export_and_import_round_trip(server, mode, project: Path, tmp_path: Path) -> None:
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", CREATE)
        for _ in range(3):
            a = await ok(client, "assign", {"experiment_id": e["id"]})
            await ok(client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 5.0}})
        exported = await ok(client, "export_experiments")
        document = exported["document"]
        assert document["experiments"][0]["results"]["trials_completed"] == 3
        (project / "exports").mkdir()
        written = await ok(client, "export_experiments", {"path": "exports/experiments.json"})
        assert written["path"] == "exports/experiments.json"
        assert json.loads((project / "exports" / "experiments.json").read_text()) == document
        await refused(client, "import_experiments", {"document": document}, says="already exists")
        skipped = await ok(client, "import_experiments", {"path": "exports/experiments.json", "on_conflict": "skip"})
        assert skipped["skipped"] == [e["id"]] and skipped["imported"] == []
    other = build_server(project, tmp_path / "other-state")
    async with Client(other, mode=mode) as client:
        result = await ok(client, "import_experiments", {"document": document})
        assert result["imported"] == [e["id"]]
        again = (await ok(client, "export_experiments"))["document"]
        imported = again["experiments"][0]["meta_experiment"]["events"].pop()  # the import's own record
        assert imported["kind"] == "imported"
        assert again == document


async def test_an_imported_draft_is_started_through_the_tool(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", CREATE)
        document = (await ok(client, "export_experiments"))["document"]
        await ok(client, "rollback", {"experiment_id": e["id"], "reason": "make room", "confirm": True})
        item = document["experiments"][0]
        item.update(id="exp-draft-9", status="draft")
        item.pop("meta_experiment")
        await ok(client, "import_experiments", {"document": document})
        await refused(client, "assign", {"experiment_id": "exp-draft-9"}, says="start it first (start_experiment)")
        started = await ok(client, "start_experiment", {"experiment_id": "exp-draft-9"})
        assert started["status"] == "running"
        assert (await ok(client, "assign", {"experiment_id": "exp-draft-9"}))["trial_id"]
        await refused(client, "start_experiment", {"experiment_id": "exp-draft-9"}, says="only a draft")


async def test_resources_list_read_and_errors(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", CREATE)
        for value in (5.0, 6.0, 7.0, 8.0):
            a = await ok(client, "assign", {"experiment_id": e["id"]})
            await ok(client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": value}})
        static = {str(r.uri) for r in (await client.list_resources()).resources}
        assert static == {
            "experiments://list",
            "experiments://status",
            "experiments://alerts",
            "experiments://settings",
        }
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {
            "experiments://list/{status}",
            "experiment://{experiment_id}",
            "experiment://{experiment_id}/analysis",
            "experiment://{experiment_id}/report",
            "experiment://{experiment_id}/chart.png",
            "experiment://{experiment_id}/events",
            "experiment://{experiment_id}/trials",
            "experiment://{experiment_id}/trials/{page}",
        }
        listing = json.loads((await client.read_resource("experiments://list")).contents[0].text)
        assert listing[0]["id"] == e["id"] and listing[0]["progress"]["trials_recorded"] == 4
        for status, listed in (("running", listing), ("active", listing), ("ended", []), ("promoted", [])):
            assert json.loads((await client.read_resource(f"experiments://list/{status}")).contents[0].text) == listed
        with pytest.raises(MCPError, match="'runing' is not a status this list filters by. Use one of active, ended"):
            await client.read_resource("experiments://list/runing")
        state = json.loads((await client.read_resource(f"experiment://{e['id']}")).contents[0].text)
        assert state["experiment"]["status"] == "running"
        analysis = json.loads((await client.read_resource(f"experiment://{e['id']}/analysis")).contents[0].text)
        assert analysis["primary"]["name"] == "time_to_complete" and analysis["trials_recorded"] == 4
        chart = (await client.read_resource(f"experiment://{e['id']}/chart.png")).contents[0]
        assert chart.mime_type == "image/png" and base64.b64decode(chart.blob).startswith(b"\x89PNG")
        report = (await client.read_resource(f"experiment://{e['id']}/report")).contents[0]
        assert report.mime_type == "text/markdown" and f"STATISTICAL ANALYSIS - {e['id']}" in report.text
        status = (await client.read_resource("experiments://status")).contents[0].text
        assert "ACTIVE EXPERIMENTS" in status
        with pytest.raises(MCPError, match="No experiment with id"):
            await client.read_resource("experiment://exp-missing")


async def test_design_prompt(server, mode) -> None:
    async with Client(server, mode=mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert prompts["design_experiment"].description
        assert [a.name for a in prompts["design_experiment"].arguments] == ["target", "goal"]
        result = await client.get_prompt("design_experiment", {"target": "review_pr.md", "goal": "faster reviews"})
        existing = await client.get_prompt("design_experiment", {"target": PROD})
    text = result.messages[0].content.text
    needles = ("DON'T experiment", "hypothesis", "primary metric", "peeking", "review_pr.md", "faster reviews")
    for needle in (*needles, "void_trial"):
        assert needle in text
    # a target that is not in the project is said at once (create_experiment would refuse it at the end)
    assert "Note: The target 'review_pr.md' does not exist." in text and "needs the production file" in text
    assert "Note:" not in existing.messages[0].content.text


async def test_resource_updated_notification_legacy_mode(server) -> None:
    seen: list[str] = []

    async def handler(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            seen.append(str(message.params.uri))

    async with Client(server, mode="legacy", message_handler=handler) as client:
        e = await ok(client, "create_experiment", CREATE)
        uri = f"experiment://{e['id']}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource(uri)
        a = await ok(client, "assign", {"experiment_id": e["id"]})
        with anyio.fail_after(5):
            while uri not in seen:
                await anyio.sleep(0.01)
        seen.clear()
        await ok(client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 5.0}})
        with anyio.fail_after(5):
            while uri not in seen:
                await anyio.sleep(0.01)
        assert f"experiment://{e['id']}/report" not in seen  # only what was subscribed


async def test_resource_updated_notification_modern_mode(server) -> None:
    async with Client(server) as client:
        e = await ok(client, "create_experiment", CREATE)
        uri = f"experiment://{e['id']}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            a = await ok(client, "assign", {"experiment_id": e["id"]})
            with anyio.fail_after(5):
                event = await subscription.__anext__()
            assert getattr(event, "uri", None) == uri
            await ok(client, "record", {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 5.0}})
            with anyio.fail_after(5):
                event = await subscription.__anext__()
            assert getattr(event, "uri", None) == uri


async def test_a_damaged_database_still_serves_and_says_why(project: Path, mode) -> None:
    """The server starts; every tool and resource answers with the reason and what to do."""
    state = project / ".meta-experiment"
    state.mkdir(exist_ok=True)
    (state / "experiments.db").write_bytes(b"not a database" * 100)
    async with Client(build_server(project, state), mode=mode) as client:
        result = await call(client, "status")
        assert result.is_error and "cannot be used" in result.content[0].text
        for uri in ("experiments://status", "experiments://alerts"):
            with pytest.raises(MCPError, match="cannot be used"):
                await client.read_resource(uri)


async def test_record_text_carries_the_alerts_it_raised(server, mode) -> None:
    """A client that reads only the text must learn of an alert (and any auto-rollback) at once."""
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", {**CREATE, "sample_size_required": 1000, "auto_rollback": False})
        texts = []
        for i in range(12):
            for arm, success in (("control", True), ("treatment", False)):
                args = {"experiment_id": e["id"], "arm": arm, "metrics": {"time_to_complete": 30.0 + i}}
                r = await call(client, "record", {**args, "success": success})
                assert not r.is_error
                texts.append(r.content[0].text)
        alerted = [t for t in texts if "ALERT: " in t]
        assert len(alerted) == 1 and "Error rate spike" in alerted[0]


async def test_an_auto_rollback_is_shown_as_itself_not_as_an_alert(server, mode) -> None:
    """From a review: the rollback an alert set off was printed as "ALERT: Stopped exp-... (x); git:
    nothing to commit", and listed among the alerts without a word of what it was."""
    async with Client(server, mode=mode) as client:
        e = await ok(client, "create_experiment", {**CREATE, "sample_size_required": 1000, "auto_rollback": True})
        for i in range(12):
            for arm, success in (("control", True), ("treatment", False)):
                args = {"experiment_id": e["id"], "arm": arm, "metrics": {"time_to_complete": 30.0 + i}}
                r = await call(client, "record", {**args, "success": success})
                if r.structured_content.get("ended"):
                    break
            else:
                continue
            break
        assert r.structured_content["ended"] == "rolled_back"
        spike, stopped = r.structured_content["alerts"]
        assert spike.startswith("Error rate spike") and stopped.startswith(f"Auto-rollback: Stopped {e['id']}")
        lines = r.content[0].text.splitlines()
        assert f"ALERT: {spike}" in lines and stopped in lines and f"ALERT: {stopped}" not in lines


async def test_create_says_when_a_production_file_has_uncommitted_changes(server, mode, project: Path) -> None:
    """From a user test: an edit not yet committed to a production file ended up in the rollback's
    commit without a word. create_experiment now says so when it snapshots such a file, and which
    operation commits what (a rollback of a running experiment touches nothing)."""
    import subprocess

    (project / "other.md").write_text("committed\n")
    (project / "other.v.md").write_text("variant\n")
    subprocess.run(["git", "add", "other.md"], cwd=project, check=True, capture_output=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "other"],
        cwd=project,
        check=True,
        capture_output=True,
    )
    (project / "other.md").write_text("committed\na local edit, not committed\n")
    async with Client(server, mode=mode) as client:
        clean = await call(client, "create_experiment", CREATE)
        assert not clean.is_error and "uncommitted" not in clean.content[0].text
        # the next step in the structured answer, which is what Claude Code shows the model
        e = clean.structured_content["id"]
        assert clean.structured_content["next_step"] == (
            f"Call assign with experiment_id {e} for each run, then record with its trial_id."
        )
        assert f"Next: call assign with experiment_id {e} for each run" in clean.content[0].text
        # from a review: assign's next step named the primary alone, without its unit, so an agent that
        # followed it never recorded the guardrail, and the experiment could never be promoted
        assigned = (await call(client, "assign", {"experiment_id": e})).structured_content
        assert assigned["next_step"].endswith(
            f"call record with trial_id {assigned['trial_id']} and the measured time_to_complete in min (omit it to "
            "use the time since this assignment) and the guardrail issues_caught, or success false if the run failed."
        )
        dirty = await call(client, "create_experiment", dict(CREATE, name="other", files={"other.md": "other.v.md"}))
        assert not dirty.is_error, dirty.content[0].text
        text = dirty.content[0].text
        assert "Note: other.md has uncommitted changes" in text and "A promote overwrites it with the variant" in text
        assert "rolling back a promotion restores this text and commits it" in text


async def test_resources_of_a_damaged_database_say_what_to_do(project: Path, tmp_path: Path) -> None:
    """From a user test: with the database damaged mid-file, the tools said what to do but
    experiments://list and experiments://status answered only 'Error reading resource', with a
    traceback on the server's stderr."""
    from conftest import damaged_copies
    from meta_experiment.lifecycle import Lab

    state = tmp_path / "state"
    lab = Lab.open(project, state)
    for k in range(4):
        (project / f"c{k}.md").write_text("a\\n")
        (project / f"c{k}.v.md").write_text("b\\n")
        e = lab.create(**dict(CREATE, name=f"e{k}", files={f"c{k}.md": f"c{k}.v.md"}, sample_size_required=100))
        for _ in range(40):
            a = lab.assign(e.id)
            lab.record(a.trial_id, {"time_to_complete": 40.0 + a.trial_id % 7, "issues_caught": 2.0})
    lab.close()
    said: list[str] = []
    for copy in damaged_copies(state, tmp_path):
        async with Client(build_server(project, copy), mode="legacy") as client:
            for uri in ("experiments://list", "experiments://status", "experiments://alerts"):
                try:
                    await client.read_resource(uri)
                except MCPError as exc:
                    said.append(str(exc))
    assert said, "no damage was read: the test damaged nothing that the resources read"
    assert all("Move it aside" in text for text in said), said


async def test_a_retry_after_the_experiment_ended_says_it_ended(server) -> None:
    """From a user test: after the experiment expired, an identical retry answered "Progress 1/10,
    9 more needed"."""
    async with Client(server, mode="legacy") as client:
        e = await ok(client, "create_experiment", CREATE)
        a = await ok(client, "assign", {"experiment_id": e["id"]})
        args = {"trial_id": a["trial_id"], "metrics": {"time_to_complete": 3.0, "issues_caught": 1}}
        await ok(client, "record", args)
        await ok(client, "rollback", {"experiment_id": e["id"], "reason": "stopped", "confirm": True})
        retry = await call(client, "record", args)
        assert not retry.is_error and retry.structured_content["ended"] == "rolled_back"
        assert retry.content[0].text == (
            f"Already recorded (identical retry) trial {a['trial_id']} ({a['arm']}). {e['id']} has ended "
            "(rolled_back) with 1 trial; it takes no more."
        )


def test_an_assigned_file_in_the_text_is_fenced_past_its_own_backticks_and_a_long_one_is_named() -> None:
    from meta_experiment.mcp_server import ASSIGN_TEXT_LIMIT, assigned_file_text
    from meta_experiment.models import AssignedFile

    code = "Run:\n```sh\nls\n```"  # a fence of three inside, no final newline
    text = assigned_file_text(AssignedFile(production="a.md", path="a.md", sha256="0" * 64, content=code))
    assert text == f"\n\na.md:\n````\n{code}\n````"
    long = AssignedFile(production="a.md", path="a.v.md", sha256="0" * 64, content="x" * (ASSIGN_TEXT_LIMIT + 1))
    assert assigned_file_text(long) == (
        f"\n\na.md (this arm: a.v.md): {ASSIGN_TEXT_LIMIT + 1:,} characters, too long to show here: read a.v.md in "
        "the project (the text under test is its snapshot from the start, in files[].content of the structured "
        "result)."
    )


async def test_a_variant_that_differs_in_invisible_bytes_only_is_named_at_create(server, project: Path) -> None:
    """From a review: a variant saved with CRLF line ends (or a BOM) got no note, and the dry run's
    diff then showed pairs of identical-looking lines."""
    (project / "crlf.md").write_bytes(b"one\ntwo\n")
    (project / "crlf.v.md").write_bytes(b"one\r\ntwo\r\n")
    (project / "bom.md").write_bytes(b"text\n")
    (project / "bom.v.md").write_bytes(b"\xef\xbb\xbftext\n")
    (project / "tail.md").write_bytes(b"one\ntwo\n")
    (project / "tail.v.md").write_bytes(b"one  \ntwo\n")
    (project / "a.py").write_bytes(b"if x:\n  y()\n")  # indentation: seen in a diff, maybe the change meant
    (project / "a.v.py").write_bytes(b"if x:\n    y()\n")
    async with Client(server, mode="legacy") as client:
        files = {"crlf.md": "crlf.v.md", "bom.md": "bom.v.md", "tail.md": "tail.v.md", "a.py": "a.v.py"}
        notes = (await call(client, "create_experiment", dict(CREATE, files=files))).structured_content["notes"]
    said = [n for n in notes if "differs from production in bytes a diff does not show" in n]
    assert len(said) == 3 and not any("a.py" in n for n in said)
    assert any("tail.md" in n and "only spaces or tabs at the ends of lines differ" in n for n in said)
    assert any("crlf.md" in n and "only line endings differ (LF → CRLF)" in n for n in said)
    assert any("bom.md" in n and "only a byte-order mark (BOM) at the start was added" in n for n in said)


async def test_the_reports_and_notes_are_in_the_structured_result_too(server, project: Path) -> None:
    """Claude Code shows the model only the structured result when there is one: the seed-layout
    reports of analyze and status, and create's notes, are carried there as in the text."""
    (project / "same.md").write_text("unchanged\n")
    (project / "same.v.md").write_text("unchanged\n")
    async with Client(server, mode="legacy") as client:
        created = await call(client, "create_experiment", dict(CREATE, name="aa", files={"same.md": "same.v.md"}))
        notes = created.structured_content["notes"]
        assert len(notes) == 2 and "identical to production" in notes[0] and "uncommitted" in notes[1]
        assert all(f"Note: {n}" in created.content[0].text for n in notes)
        plain = await ok(client, "create_experiment", CREATE)  # on a command: it can be dispatched
        [hint] = plain["notes"]
        assert hint.startswith(
            "/review_pr can be dispatched: the dispatch tool (or /meta-experiment:meta_experiment dispatch "
        )
        analysis = await call(client, "analyze", {"experiment_id": plain["id"]})
        assert analysis.structured_content["report"] == analysis.content[0].text
        assert f"STATISTICAL ANALYSIS - {plain['id']}" in analysis.structured_content["report"]
        status = await call(client, "status")
        assert status.structured_content["report"] == status.content[0].text
        assert "ACTIVE EXPERIMENTS" in status.structured_content["report"]


async def test_status_can_list_only_the_active_experiments(server, project: Path) -> None:
    (project / "other.md").write_text("a\n")
    (project / "other.v.md").write_text("b\n")
    async with Client(server, mode="legacy") as client:
        ended = await ok(client, "create_experiment", dict(CREATE, name="old", files={"other.md": "other.v.md"}))
        await ok(client, "rollback", {"experiment_id": ended["id"], "reason": "superseded", "confirm": True})
        running = await ok(client, "create_experiment", CREATE)
        whole = await call(client, "status")
        active = await call(client, "status", {"active_only": True})
    assert {i["id"] for i in whole.structured_content["experiments"]} == {running["id"], ended["id"]}
    assert [i["id"] for i in active.structured_content["experiments"]] == [running["id"]]
    assert active.structured_content["counts"] == whole.structured_content["counts"]
    text = active.content[0].text
    assert f"### Experiment #1: {running['id']}\n" in text and f": {ended['id']}\n" not in text
    assert "(1 experiment, not listed: the report without active_only lists them)" in text
    assert "- **Failed**: 1 experiment" in text  # the summary still counts the ended one
