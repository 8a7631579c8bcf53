"""The README stays true: every tool is described and listed, and its set-up commands are the
ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
from mcp import Client

from meta_experiment.mcp_server import build_server

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def listed_tools(project: Path):
    async def run():
        async with Client(build_server(project, project / ".state"), mode="legacy") as client:
            return (await client.list_tools()).tools

    return anyio.run(run)


def test_every_tool_has_a_description_and_a_readme_row(project: Path) -> None:
    tools = listed_tools(project)
    assert len(tools) >= 9
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", README, flags=re.M))
    for tool in tools:
        assert tool.description and tool.description.strip(), f"{tool.name} has no description"
        assert tool.name in rows, f"{tool.name} is not in the README's tool table"
    assert rows == {t.name for t in tools}, "the README lists tools the server does not have"


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/meta-experiment demo" in README
    assert "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest" in README
    assert "pip install --quiet .\n" in ci and 'meta-experiment" demo' in ci
    assert 'pip install --quiet ".[test]"' in ci and "-m pytest" in ci


def test_readme_figures_are_filled_in() -> None:
    assert "FIGURE_" not in README
