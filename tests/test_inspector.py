"""What a person debugging the server sees in the real MCP Inspector (its CLI mode, from npm:
@modelcontextprotocol/inspector): the tools with their schemas, a whole trial driven by hand, the
resources and the prompt, and a mistyped argument answered in words."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROD, VAR, package_env

ROOT = Path(__file__).resolve().parent.parent
TOOLS = set(json.loads((ROOT / "server" / "meta_experiment" / "tool_schemas.json").read_text())["tools"])


def inspector_cli() -> str:
    found = os.environ.get("META_EXPERIMENT_INSPECTOR") or shutil.which("mcp-inspector")
    if not found:
        pytest.skip("the MCP Inspector is not installed (npm install -g @modelcontextprotocol/inspector)")
    return found


def inspect(project: Path, *request: str, refused: bool = False) -> dict:
    """One request through the Inspector's CLI, which starts the server as a person would; it prints
    the result as JSON, and exits with 5 after a tool error (`refused`)."""
    source = package_env()["PYTHONPATH"]
    command = [inspector_cli(), "--cli", "-e", f"CLAUDE_PROJECT_DIR={project}", "-e", f"PYTHONPATH={source}"]
    command += [sys.executable, "-m", "meta_experiment", "serve", *request]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=project)
    assert done.returncode == (5 if refused else 0), done.stdout + done.stderr
    result, _ = json.JSONDecoder().raw_decode(done.stdout)
    return result


def call(project: Path, tool: str, refused: bool = False, **args: object) -> dict:
    request = ["--method", "tools/call", "--tool-name", tool]
    for key, value in args.items():
        request += ["--tool-arg", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return inspect(project, *request, refused=refused)


def test_the_inspector_lists_every_tool_with_its_schemas(project: Path) -> None:
    tools = inspect(project, "--method", "tools/list")["tools"]
    assert {t["name"] for t in tools} == TOOLS
    for tool in tools:
        assert tool["description"].strip() and tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object"


@pytest.mark.slow
def test_a_trial_driven_by_hand_in_the_inspector(project: Path) -> None:
    created = call(
        project,
        "create_experiment",
        name="by hand",
        hypothesis="h",
        files={PROD: VAR},
        primary_metric={"name": "t", "direction": "lower_is_better", "unit": "s"},
    )
    assert not created.get("isError"), created
    experiment_id = created["structuredContent"]["id"]
    assigned = call(project, "assign", experiment_id=experiment_id)["structuredContent"]
    recorded = call(project, "record", trial_id=assigned["trial_id"], metrics={"t": 2.5})
    assert recorded["structuredContent"]["trials_recorded"] == 1

    trials = inspect(project, "--method", "resources/read", "--uri", f"experiment://{experiment_id}/trials")
    [content] = trials["contents"]
    assert content["mimeType"] == "application/json"
    [trial] = json.loads(content["text"])
    assert trial["trial_id"] == assigned["trial_id"] and trial["status"] == "recorded"
    status = inspect(project, "--method", "resources/read", "--uri", "experiments://status")
    assert "**Name**: by hand" in status["contents"][0]["text"]
    templates = inspect(project, "--method", "resources/templates/list")["resourceTemplates"]
    assert "experiment://{experiment_id}/report" in {t["uriTemplate"] for t in templates}


def test_the_inspector_shows_a_mistake_in_words(project: Path) -> None:
    wrong = call(project, "status", refused=True, activ="true")
    assert wrong["isError"] is True
    assert wrong["content"][0]["text"] == (
        "status has no argument 'activ' (did you mean 'active_only'?); its arguments are: active_only."
    )
    missing = call(project, "record", refused=True, trial_id=999, metrics={"t": 1})
    assert missing["isError"] is True and "No trial with id 999" in missing["content"][0]["text"]
    assert "Traceback" not in json.dumps(missing)
    prompt = inspect(
        project, "--method", "prompts/get", "--prompt-name", "design_experiment", "--prompt-args", "target=nothere.md"
    )
    text = prompt["messages"][0]["content"]["text"]
    assert "The target 'nothere.md' does not exist" in text
    assert not (project / ".meta-experiment").exists()  # looking around in the Inspector creates nothing
