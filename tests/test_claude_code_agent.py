"""The agent's side, in the real Claude Code CLI (`claude -p`): a stand-in model on loopback
(tests/fake_model.py) makes the tool calls an agent would make, Claude Code runs them against this
server over stdio and sends the results back, and the test reads what the model was given. Only the
model is scripted; the MCP client, the permissions and the tool results are Claude Code's own."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from conftest import PROD, VAR, package_env
from fake_model import fake_model
from meta_experiment.lifecycle import Lab
from test_dispatch_cli import claude_p
from test_plugin import claude_cli

SERVER = "mcp__meta-experiment__"


def run_agent(tmp_path: Path, project: Path, script: list[dict[str, Any]], tools: list[str]) -> list[dict[str, Any]]:
    """One `claude -p` session with this checkout's server and the scripted model; the tool
    results Claude Code sent the model, in order."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    config = tmp_path / "mcp.json"
    server = {"command": sys.executable, "args": ["-m", "meta_experiment", "serve"], "env": package_env()}
    server["env"]["CLAUDE_PROJECT_DIR"] = str(project)
    config.write_text(json.dumps({"mcpServers": {"meta-experiment": server}}))
    with fake_model(script) as model:
        allowed = ",".join(SERVER + t for t in tools)
        options = ("--mcp-config", str(config), "--strict-mcp-config", "--allowedTools", allowed)
        claude_p(claude_cli(), home, project, model, "run the experiment", *options)
        assert model.script == [], "Claude Code ended the session before the script did"
        return model.tool_results()


def structured(result: dict[str, Any]) -> dict[str, Any]:
    """What the model gets of a tool result with structured content: that JSON (not the text)."""
    content = result["content"]
    texts = [content] if isinstance(content, str) else [b["text"] for b in content if b.get("type") == "text"]
    return json.loads(next(t for t in texts if t.startswith("{")))


def test_an_agent_runs_a_trial_through_claude_code(tmp_path: Path, project: Path) -> None:
    created = {
        "name": "Parallel review",
        "hypothesis": "Parallel agents save 15 minutes",
        "files": {PROD: VAR},
        "primary_metric": {"name": "minutes", "direction": "lower_is_better", "unit": "min"},
    }
    script: list[dict[str, Any]] = [
        {"tool": SERVER + "create_experiment", "input": created},
        {"tool": SERVER + "status", "input": {}},
        {"text": "done"},
    ]
    results = run_agent(tmp_path, project, script, ["create_experiment", "status"])
    assert [r.get("is_error", False) for r in results] == [False, False]
    experiment = structured(results[0])
    assert experiment["status"] == "running" and experiment["name"] == "Parallel review"

    lab = Lab.open(project)
    try:
        [stored] = lab.experiments()
        assert stored.id == experiment["id"]
    finally:
        lab.close()
    status = structured(results[1])
    assert [e["id"] for e in status["experiments"]] == [experiment["id"]]
    assert "Parallel review" in status["report"]  # the seed's status layout reaches the model as text in the JSON

    # the next session: a trial, a refused call (an unknown metric) and its message
    script = [
        {"tool": SERVER + "assign", "input": {"experiment_id": experiment["id"]}},
        {"tool": SERVER + "record", "input": {"trial_id": 1, "metrics": {"minuets": 12}}},
        {"tool": SERVER + "record", "input": {"trial_id": 1, "metrics": {"minutes": 12}}},
        {"text": "done"},
    ]
    results = run_agent(tmp_path, project, script, ["assign", "record"])
    assignment = structured(results[0])
    assert assignment["trial_id"] == 1 and assignment["files"][0]["production"] == PROD
    assert results[1].get("is_error") is True
    refused = json.dumps(results[1]["content"])
    assert "Unknown metric(s) ['minuets']" in refused and "Traceback" not in refused
    assert structured(results[2])["trials_recorded"] == 1


def test_the_chart_reaches_the_model_as_an_image(tmp_path: Path, project: Path) -> None:
    lab = Lab.open(project, create=True)
    try:
        e = lab.create(
            name="x",
            hypothesis="h",
            files={PROD: VAR},
            primary_metric={"name": "t", "direction": "lower_is_better", "unit": "s"},
        )
        rnd = random.Random(1)
        for _ in range(30):
            a = lab.assign(e.id)
            lab.record(a.trial_id, {"t": rnd.gauss(100 if a.arm == "control" else 80, 10)})
    finally:
        lab.close()
    script = [{"tool": SERVER + "analyze", "input": {"experiment_id": e.id, "chart": True}}, {"text": "done"}]
    [result] = run_agent(tmp_path, project, script, ["analyze"])
    blocks = result["content"]
    images = [b for b in blocks if b.get("type") == "image"]
    assert [i["source"]["media_type"] for i in images] == ["image/png"]
    assert len(images[0]["source"]["data"]) > 10_000
    analysis = structured(result)
    assert analysis["primary"]["control"]["n"] + analysis["primary"]["treatment"]["n"] == 30
    assert analysis["report"].startswith(f"## STATISTICAL ANALYSIS - {e.id}")  # the seed's layout, as JSON text
