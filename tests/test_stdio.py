"""Smoke test over a real stdio subprocess (`python -m meta_experiment serve`), in the legacy
initialize mode (what Claude Code and the MCP Inspector speak) and the default 2026-07-28 mode."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from conftest import PROD, VAR, server_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_subprocess_round_trip(project: Path, mode: str) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "meta_experiment", "serve"], env=server_env(project), cwd=str(project)
    )
    async with Client(params, mode=mode, read_timeout_seconds=60) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"create_experiment", "assign", "record", "analyze", "status"} <= tools
        created = await client.call_tool(
            "create_experiment",
            {
                "name": "stdio",
                "hypothesis": "h",
                "files": {PROD: VAR},
                "primary_metric": {"name": "t", "direction": "lower_is_better", "unit": "s"},
            },
        )
        assert not created.is_error, created.content[0].text
        experiment_id = created.structured_content["id"]
        assignment = await client.call_tool("assign", {"experiment_id": experiment_id})
        trial_id = assignment.structured_content["trial_id"]
        recorded = await client.call_tool("record", {"trial_id": trial_id, "metrics": {"t": 1.5}})
        assert recorded.structured_content["trials_recorded"] == 1

        bad = await client.call_tool("record", {"trial_id": trial_id, "metrics": {"t": "NaN"}})
        assert bad.is_error and "finite" in bad.content[0].text
        bad = await client.call_tool("assign", {"experiment_id": "exp-none"})
        assert bad.is_error and "No experiment" in bad.content[0].text
        status = await client.call_tool("status", {})
        item = status.structured_content["experiments"][0]
        assert item["progress"]["trials_recorded"] == 1  # the refused calls changed nothing
        detail = (await client.call_tool("get_experiment", {"experiment_id": experiment_id})).structured_content
        assert detail["experiment"]["control"]["assigned"] + detail["experiment"]["treatment"]["assigned"] == 1
    # state lives in the project's own folder, with its .gitignore
    assert (project / ".meta-experiment" / "experiments.db").exists()
    assert (project / ".meta-experiment" / ".gitignore").exists()


def test_server_builds_without_the_heavy_libraries(project: Path) -> None:
    """Cold start: scipy, numpy, matplotlib and tomlkit load on first use, not when the server is
    built (a fresh interpreter; this test process has them all loaded already)."""
    import subprocess

    code = (
        "import sys; from pathlib import Path; from meta_experiment.mcp_server import build_server; "
        f"build_server(Path({str(project)!r})); "
        "print(sorted(m for m in ('scipy', 'numpy', 'matplotlib', 'tomlkit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=server_env(project), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_running_server_imports_the_statistics_engine_in_the_background(project: Path) -> None:
    """Not while it starts (the first requests are answered without scipy), but soon after, so the
    first call that analyses does not pay for the import."""
    import subprocess

    code = f"""
import sys, time, anyio
from pathlib import Path
from mcp import Client
from meta_experiment import mcp_server

mcp_server.WARM_UP_AFTER_S = 0.5

async def main():
    async with Client(mcp_server.build_server(Path({str(project)!r})), mode="legacy") as client:
        await client.list_tools()
        print("scipy.stats" in sys.modules)
        waited = 0.0
        engine = None  # listed in sys.modules as its import starts; complete once it defines analyze
        while getattr(engine, "analyze", None) is None and waited < 60:
            await anyio.sleep(0.1)
            waited += 0.1
            engine = sys.modules.get("meta_experiment.stats.analysis")
        print("scipy.stats" in sys.modules, getattr(engine, "analyze", None) is not None)

anyio.run(main)
"""
    out = subprocess.run([sys.executable, "-c", code], env=server_env(project), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]


async def test_a_project_without_state_gets_none_until_a_call_stores_something(project: Path) -> None:
    """A plugin enabled for every project starts this server in each one: reading (tools and
    resources) creates no state folder. An experiment another process creates meanwhile is seen at
    once; create_experiment makes the folder, with its .gitignore (not when it is refused)."""
    from conftest import spec
    from meta_experiment.lifecycle import Lab

    state = project / ".meta-experiment"
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "meta_experiment", "serve"], env=server_env(project), cwd=str(project)
    )
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        status = await client.call_tool("status", {})
        assert not status.is_error and status.structured_content["experiments"] == []
        assert (await client.read_resource("experiments://status")).contents
        assert (await client.read_resource("experiments://list")).contents
        exported = await client.call_tool("export_experiments", {})
        assert not exported.is_error and exported.structured_content["document"]["experiments"] == []
        refused = await client.call_tool("assign", {"experiment_id": "exp-none"})
        assert refused.is_error and "There are no experiments yet" in refused.content[0].text
        assert not state.exists()

        other = Lab.open(project)  # another process (here: this test) creates the state and an experiment
        try:
            made = other.create(**spec(name="from elsewhere"))
        finally:
            other.close()
        listed = (await client.call_tool("status", {})).structured_content["experiments"]
        assert [item["id"] for item in listed] == [made.id]
        assigned = await client.call_tool("assign", {"experiment_id": made.id})
        assert not assigned.is_error, assigned.content[0].text
    assert Lab.open(project).trial(assigned.structured_content["trial_id"]).experiment_id == made.id

    fresh = project.parent / "fresh"
    fresh.mkdir()
    (fresh / "a.md").write_text("a\n")
    (fresh / "b.md").write_text("b\n")
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "meta_experiment", "serve"], env=server_env(fresh), cwd=str(fresh)
    )
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        await client.call_tool("status", {})
        assert not (fresh / ".meta-experiment").exists()
        first = {
            "name": "first",
            "hypothesis": "h",
            "files": {"a.md": "missing.md"},
            "primary_metric": {"name": "t", "direction": "lower_is_better", "unit": "s"},
        }
        refused = await client.call_tool("create_experiment", first)  # a typo: refused, and nothing is made
        assert refused.is_error and "missing.md" in refused.content[0].text
        refused = await client.call_tool("import_experiments", {"document": {"experiments": [{"id": "../x"}]}})
        assert refused.is_error and "not a usable experiment id" in refused.content[0].text
        (fresh / "pyproject.toml").write_text('[tool.meta-experiment.defaults]\nsample_size_required = "many"\n')
        refused = await client.call_tool("update_settings", {"auto_promote": True})  # pyproject's value is wrong
        assert refused.is_error and "Nothing was written" in refused.content[0].text, refused.content[0].text
        assert not (fresh / ".meta-experiment").exists()
        (fresh / "pyproject.toml").unlink()
        created = await client.call_tool(
            "create_experiment",
            {
                "name": "first",
                "hypothesis": "h",
                "files": {"a.md": "b.md"},
                "primary_metric": {"name": "t", "direction": "lower_is_better", "unit": "s"},
            },
        )
        assert not created.is_error, created.content[0].text
        assert (fresh / ".meta-experiment" / "experiments.db").exists()
        assert (fresh / ".meta-experiment" / ".gitignore").exists()
        status = (await client.call_tool("status", {})).structured_content["experiments"]
        assert [item["id"] for item in status] == [created.structured_content["id"]]


def subfolder_server(project: Path) -> tuple[Path, StdioServerParameters]:
    """packages/app, and a server started there as Claude Code starts it for a session there."""
    app = project / "packages" / "app"
    app.mkdir(parents=True)
    env = {**server_env(project), "CLAUDE_PROJECT_DIR": str(app)}
    return app, StdioServerParameters(
        command=sys.executable, args=["-m", "meta_experiment", "serve"], env=env, cwd=str(app)
    )


async def test_a_session_in_a_subfolder_serves_the_experiments_of_the_project_above(project: Path) -> None:
    """A monorepo: Claude Code started in packages/app gives its MCP server that folder as
    CLAUDE_PROJECT_DIR, and it runs the commands of the repository's top too. The server read the
    subfolder's (missing) state, so assign did not know the experiment the hooks dispatch; it now
    serves the nearest folder above with experiments, up to the repository's top, as the hooks do."""
    from meta_experiment.lifecycle import Lab

    metric = {"name": "t", "direction": "lower_is_better"}
    lab = Lab.open(project)
    e = lab.create(name="Parallel PR review", hypothesis="h", files={PROD: VAR}, primary_metric=metric)
    lab.close()
    app, params = subfolder_server(project)
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        assigned = await client.call_tool("assign", {"experiment_id": e.id, "unit": "session s-1"})
        assert not assigned.is_error, assigned.content[0].text
        assert assigned.structured_content["files"][0]["production"] == PROD
        missing = await client.call_tool(
            "create_experiment",
            {"name": "x", "hypothesis": "h", "files": {"nope.md": VAR}, "primary_metric": metric},
        )
        assert missing.is_error and f"paths are relative to the project root, {str(project.resolve())!r}" in (
            missing.content[0].text
        )
        # the subfolder's own command of the same path is what runs in this session: create says so
        (app / "notes.md").write_text("the app's notes\n")
        (project / "notes.md").write_text("the top's notes\n")
        (project / "notes.v.md").write_text("the top's notes, v2\n")
        files = {"notes.md": "notes.v.md"}
        created = await client.call_tool(
            "create_experiment", {"name": "n", "hypothesis": "h", "files": files, "primary_metric": metric}
        )
        note = created.structured_content["notes"][0]
        assert note.startswith(
            f"this session started in packages/app, and the project whose experiments it works "
            f"with is {project.resolve()}"
        )
        assert "packages/app has its own notes.md, which is what runs in this session" in note
    assert not (app / ".meta-experiment").exists()  # nothing was made in the subfolder
    lab = Lab.open(project)
    try:
        assert [t.arm for t in lab.trials(e.id)] == [assigned.structured_content["arm"]]
    finally:
        lab.close()


async def test_a_subfolder_session_started_before_the_project_had_experiments_finds_them(project: Path) -> None:
    """From a review: the server of a session in packages/app, started while the repository's top
    had no experiments, kept reading the subfolder, though the hooks served the top's experiment
    created since (by a session there); its assign did not know it."""
    from meta_experiment.lifecycle import Lab

    app, params = subfolder_server(project)
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        assert (await client.call_tool("status", {})).structured_content["experiments"] == []
        lab = Lab.open(project)  # a session at the top creates one
        e = lab.create(
            name="n", hypothesis="h", files={PROD: VAR}, primary_metric={"name": "t", "direction": "lower_is_better"}
        )
        lab.close()
        assigned = await client.call_tool("assign", {"experiment_id": e.id, "unit": "session s-1"})
        assert not assigned.is_error, assigned.content[0].text
    assert not (app / ".meta-experiment").exists()
