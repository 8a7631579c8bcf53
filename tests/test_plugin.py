"""The Claude Code plugin (`.claude-plugin/marketplace.json`, `plugin/`): its manifests agree with
the package, its launcher installs the server into the plugin's data folder and runs it, and the
real Claude Code CLI validates it, installs it from a marketplace in a clone and connects to its
server. (tests/test_plugin_launcher.py: the launcher's installs on a stand-in package.)"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from mcp import Client, StdioServerParameters

from conftest import PROD, VAR, git, spec
from fake_model import FakeModel, fake_model
from meta_experiment.dispatch_ops import set_dispatch
from meta_experiment.lifecycle import Lab
from test_plugin_launcher import run

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugin"
SERVER = "mcp__plugin_meta-experiment_meta-experiment__"  # how Claude Code names the plugin's tools
SCHEMAS = json.loads((ROOT / "server" / "meta_experiment" / "tool_schemas.json").read_text())["tools"]
TOOLS = set(SCHEMAS)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_manifests_name_one_plugin_that_every_commit_updates() -> None:
    marketplace = read_json(ROOT / ".claude-plugin" / "marketplace.json")
    manifest = read_json(PLUGIN / ".claude-plugin" / "plugin.json")
    [entry] = marketplace["plugins"]
    assert entry["source"] == "./plugin" and entry["name"] == manifest["name"] == "meta-experiment"
    # With a version, Claude Code updates an installed plugin only when the version is bumped; without
    # one, every commit of the marketplace is an update (`claude plugin update` takes it).
    assert "version" not in manifest and "version" not in entry
    server = read_json(PLUGIN / ".mcp.json")["mcpServers"]["meta-experiment"]
    assert server["command"] == "python3"
    assert server["args"] == ["${CLAUDE_PLUGIN_ROOT}/scripts/launch.py", "serve"]
    start, agent = read_json(PLUGIN / "hooks" / "hooks.json")["hooks"]["SessionStart"]
    assert "matcher" not in start  # every start: a resumed session after an update installs too
    assert start["hooks"][0]["command"].endswith('scripts/launch.py" install') and start["hooks"][0]["timeout"] >= 300
    assert "matcher" not in agent and agent["hooks"][0]["command"].endswith('scripts/launch.py" hook session-start')


def test_the_plugin_carries_the_package_source() -> None:
    """Symbolic links, which Claude Code follows when it copies the plugin into its cache."""
    for name in ("server", "pyproject.toml"):
        assert (PLUGIN / name).is_symlink() and (PLUGIN / name).resolve() == (ROOT / name).resolve()


def test_the_command_names_only_tools_the_server_has() -> None:
    text = (PLUGIN / "commands" / "meta_experiment.md").read_text(encoding="utf-8")
    front = text.split("---")[1]
    allowed = re.search(r"^allowed-tools: (.+)$", front, re.M)
    assert allowed is not None
    named = {name.strip().removeprefix(SERVER) for name in allowed.group(1).split(",")}
    assert named <= TOOLS and named == {"status", "analyze", "get_experiment"}  # read-only ones only
    called = set(re.findall(r"call `([a-z_]+)`", text, re.I))
    tools = {"status", "create_experiment", "assign", "record", "dispatch", "analyze", "promote", "rollback", "auto"}
    assert tools <= called
    assert called <= TOOLS, f"the command calls tools the server does not have: {called - TOOLS}"
    # every argument it spells out (`dry_run: true`, `log_scale: true`) is one a tool or a metric takes
    arguments = {name for tool in SCHEMAS.values() for name in tool["parameters"]["properties"]}
    arguments |= set(SCHEMAS["create_experiment"]["parameters"]["$defs"]["MetricSpec"]["properties"])
    spelled = set(re.findall(r"`([a-z_]+): [^`]+`", text)) | set(re.findall(r"call `[a-z_]+` with `([a-z_]+)", text))
    assert {"active_only", "dry_run", "log_scale", "success", "files"} <= spelled <= arguments


def plugin_copy(tmp_path: Path, pyproject: str | None = None) -> Path:
    """A plugin folder as Claude Code's cache holds it: links replaced by the files they lead to."""
    copy = tmp_path / "plugin"
    shutil.copytree(PLUGIN, copy, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
    if pyproject is not None:
        (copy / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return copy


def test_a_failed_install_keeps_nothing_and_says_what_to_do(tmp_path: Path) -> None:
    plugin = plugin_copy(tmp_path, pyproject="[project\nname = broken\n")
    data = tmp_path / "data"
    done = run(plugin, data, "serve")
    assert done.returncode == 1
    assert done.stdout == ""  # stdout is the MCP channel: never a word of pip there
    assert "could not install" in done.stderr and "the next start tries again" in done.stderr
    assert "Expected ']' at the end of a table declaration" in done.stderr  # pip's own reason, passed on
    assert not [p for p in data.glob("venv-*") if p.is_dir()]  # no environment; its log stays, for the reason


def load_launcher(plugin: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("launch", plugin / "scripts" / "launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hooks_quick_look_passes_on_only_what_concerns_a_dispatcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every prompt of every session runs the launcher's hook: it must start the package only for
    a dispatched command (or a session with a dispatched run), and stay silent without an install."""
    launch = load_launcher(PLUGIN)
    from meta_experiment.cli import HOOKS

    assert set(launch.HOOK_EVENTS) == set(HOOKS)  # the launcher passes on every event the package has
    # run by hand, the data folder Claude Code gives the plugin: under CLAUDE_CONFIG_DIR when it is set
    monkeypatch.delenv("CLAUDE_PLUGIN_DATA", raising=False)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "config"))
    assert launch.data_dir() == tmp_path / "config" / "plugins" / "data" / "meta-experiment-meta-experiment"
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert launch.data_dir() == tmp_path / "home" / ".claude" / "plugins" / "data" / "meta-experiment-meta-experiment"
    project = tmp_path / "project"
    commands = project / ".claude" / "commands"
    (commands / "git").mkdir(parents=True)
    (commands / "plain.md").write_text("Just a command $ARGUMENTS\n")
    dispatcher = "---\ndescription: d\n---\n<!-- meta-experiment dispatcher for experiment e1: x -->\n"
    (commands / "git" / "pr.md").write_text(dispatcher)
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))

    def concerns(event: str, payload: object) -> bool:
        return launch.hook_concerns_us(event, json.dumps(payload).encode())

    assert concerns("prompt", {"prompt": "/git:pr 12"}) and concerns("prompt", {"prompt": "/git:pr"})
    for prompt in ("/plain x", "/missing", "hello /git:pr", " /git:pr", "/git:pr/../x", "", None):
        assert not concerns("prompt", {"prompt": prompt}), prompt
    assert not launch.hook_concerns_us("prompt", b"not json")
    assert not concerns("stop", {"session_id": "s1"})
    (project / ".meta-experiment" / "dispatched").mkdir(parents=True)
    (project / ".meta-experiment" / "dispatched" / "s1.json").write_text("{}")
    assert concerns("stop", {"session_id": "s1"}) and not concerns("stop", {"session_id": "../dispatched/s1"})
    # a command the model runs itself (the Skill tool)
    assert concerns("skill", {"tool_input": {"skill": "git:pr"}}) and concerns(
        "skill", {"tool_input": {"skill": "/git:pr"}}
    )
    assert not concerns("skill", {"tool_input": {"skill": "plain"}}) and not concerns("skill", {"tool_input": {}})
    # a skill, typed or run by the model; a skill of a command's name is what runs
    (project / ".claude" / "skills" / "greet").mkdir(parents=True)
    (project / ".claude" / "skills" / "greet" / "SKILL.md").write_text(dispatcher)
    assert concerns("prompt", {"prompt": "/greet Bob"}) and concerns("skill", {"tool_input": {"skill": "greet"}})
    (project / ".claude" / "skills" / "pr").mkdir()
    (project / ".claude" / "skills" / "pr" / "SKILL.md").write_text("A plain skill.\n")
    (commands / "pr.md").write_text(dispatcher)
    assert not concerns("prompt", {"prompt": "/pr 1"}) and not concerns("skill", {"tool_input": {"skill": "pr"}})
    assert not concerns("prompt", {"prompt": "/" + "x" * 300})  # too long a name for a file: no, not a crash
    # an agent's launch, by its subagent_type; its end, by the launch's id or (SubagentStop) while any is pending
    (project / ".claude" / "agents").mkdir()
    (project / ".claude" / "agents" / "reviewer.md").write_text(dispatcher)
    (project / ".claude" / "agents" / "plain.md").write_text("---\nname: plain\n---\nYou help.\n")
    assert concerns("agent-start", {"tool_input": {"subagent_type": "reviewer"}})
    assert concerns("session-start", {"agent_type": "reviewer"}) and not concerns("session-start", {})
    for agent in ("plain", "..", ""):
        assert not concerns("session-start", {"agent_type": agent}), agent
    (project / ".meta-experiment" / "dispatched" / "as-s7.json").write_text("{}")  # handed instructions before
    assert concerns("session-start", {"agent_type": "plain", "session_id": "s7"})
    for agent in ("plain", "missing", "../commands/git/pr", ""):
        assert not concerns("agent-start", {"tool_input": {"subagent_type": agent}}), agent
    assert not concerns("agent-end", {"tool_use_id": "t1"}) and not concerns("agent-stop", {"agent_id": "a1"})
    (project / ".meta-experiment" / "dispatched" / "call-t1.json").write_text("{}")
    assert concerns("agent-end", {"tool_use_id": "t1"}) and not concerns("agent-end", {"tool_use_id": "t2"})
    assert concerns("agent-stop", {"agent_id": "a1"})
    # a state folder elsewhere (META_EXPERIMENT_HOME): the runs are looked for there, the commands still in the project
    monkeypatch.setenv("META_EXPERIMENT_HOME", str(tmp_path / "elsewhere"))
    assert not concerns("prompt", {"prompt": "/plain"}) and concerns("prompt", {"prompt": "/git:pr 1"})
    assert not concerns("stop", {"session_id": "s1"}) and not concerns("agent-end", {"tool_use_id": "t1"})
    (tmp_path / "elsewhere" / "dispatched").mkdir(parents=True)
    (tmp_path / "elsewhere" / "dispatched" / "s1.json").write_text("{}")
    assert concerns("stop", {"session_id": "s1"})
    # relative: of the project, as the package reads it (not of the hook's working folder)
    monkeypatch.setenv("META_EXPERIMENT_HOME", "../elsewhere")
    assert concerns("stop", {"session_id": "s1"}) and not concerns("stop", {"session_id": "s2"})

    # not installed yet: a dispatched command's prompt passes untouched, with a word on stderr
    monkeypatch.delenv("META_EXPERIMENT_HOME")
    env = {**os.environ, "CLAUDE_PLUGIN_DATA": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, str(PLUGIN / "scripts" / "launch.py"), "hook", "prompt"],
        input=json.dumps({"prompt": "/git:pr 1", "session_id": "s1"}),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == ""
    assert "still being installed" in done.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").glob("venv-*"))  # no install started


def test_the_environment_follows_the_plugins_content(tmp_path: Path) -> None:
    """A plugin update (any changed file of the package) gets a new environment; the same content
    reuses the installed one."""
    first = plugin_copy(tmp_path / "a")
    second = plugin_copy(tmp_path / "b")
    assert load_launcher(first).fingerprint() == load_launcher(second).fingerprint()
    status = second / "server" / "meta_experiment" / "status.py"
    status.write_text(status.read_text() + "\n# changed\n")
    assert load_launcher(first).fingerprint() != load_launcher(second).fingerprint()


def test_an_old_python3_builds_with_a_newer_one_on_path_or_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = load_launcher(PLUGIN)
    assert launch.base_python((3, 11)) == sys.executable
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SystemExit) as stopped:
        launch.base_python((3, 9))
    assert stopped.value.code == 1
    said = capsys.readouterr().err
    assert "needs Python 3.11 or newer; python3 here is 3.9 and no usable python3.11 or newer" in said
    for minor in (11, 13):
        shim = bin_dir / f"python3.{minor}"
        shim.write_text("#!/bin/sh\n")
        shim.chmod(0o755)
    assert launch.base_python((3, 10)) == str(bin_dir / "python3.13")  # the newest that runs


# ---- the real Claude Code CLI (from npm: @anthropic-ai/claude-code) ---------------------------------


def claude_cli() -> str:
    found = os.environ.get("META_EXPERIMENT_CLAUDE") or shutil.which("claude")
    if not found:
        pytest.skip("the Claude Code CLI is not installed (npm install -g @anthropic-ai/claude-code)")
    return found


def claude(
    cli: str, home: Path, *args: str, cwd: Path | None = None, model: FakeModel | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI offline, with a throwaway HOME: no login, no update check, no telemetry; with
    `model`, its requests go to that stand-in on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLAUDE_PROJECT_DIR", "CLAUDE_CONFIG_DIR")}
    env.update(
        HOME=str(home),
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
    )
    if model is not None:
        env.update(ANTHROPIC_BASE_URL=model.url, ANTHROPIC_API_KEY="sk-test-not-a-key")
    return subprocess.run([cli, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_claude_code_validates_the_marketplace_and_the_plugin(tmp_path: Path) -> None:
    """No errors; the one warning is the version left out on purpose (see above)."""
    cli = claude_cli()
    for target in (ROOT, PLUGIN):
        done = claude(cli, tmp_path, "plugin", "validate", "--json", str(target))
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["success"] is True and report["manifest"]["errors"] == []
        warnings = [w["path"] for w in report["manifest"]["warnings"]]
        if target == PLUGIN:
            assert warnings == ["version"], report["manifest"]["warnings"]
            assert report.get("advice", []) == [], report["advice"]  # (its README had no install line)
            provides = report["provides"]
            assert provides["commands"] == ["meta-experiment:meta_experiment"]
            assert [s["name"] for s in provides["mcpServers"]] == ["meta-experiment"]
            events = sorted(h["event"] for h in provides["hooks"])
            assert sorted(set(events)) == [
                "PostToolUse",
                "PreToolUse",
                "SessionStart",
                "Stop",
                "SubagentStop",
                "UserPromptSubmit",
            ]
            assert events.count("PostToolUse") == 2  # the Agent tool and the Skill tool
        else:
            assert warnings in ([], ["plugins[0] plugin.json → version"]), report["manifest"]["warnings"]


def marketplace_repo(tmp_path: Path) -> Path:
    """This checkout's marketplace and plugin, committed to a git repository of their own, links and
    all: what a user's clone holds. (This CLI adds a git marketplace only by a remote address.)"""
    repo = tmp_path / "marketplace"
    repo.mkdir()
    for name in (".claude-plugin", "plugin", "server", "pyproject.toml", "README.md"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "marketplace")
    return repo


@pytest.mark.slow
def test_claude_code_installs_the_plugin_and_connects_to_its_server(tmp_path: Path, project: Path) -> None:
    cli = claude_cli()
    home = tmp_path / "home"
    home.mkdir()
    repo = marketplace_repo(tmp_path)

    added = claude(cli, home, "plugin", "marketplace", "add", str(repo))
    assert added.returncode == 0, added.stdout + added.stderr
    installed = claude(cli, home, "plugin", "install", "meta-experiment@meta-experiment")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    record = read_json(home / ".claude" / "plugins" / "installed_plugins.json")
    [entry] = record["plugins"]["meta-experiment@meta-experiment"]
    cached = Path(entry["installPath"])
    assert entry["version"] == entry["gitCommitSha"][:12]  # no version of its own: the commit is the version
    # the cache holds the package itself, not links out of the plugin
    assert not (cached / "server").is_symlink() and (cached / "server" / "meta_experiment" / "lifecycle.py").is_file()

    # the first session, nothing installed yet, is started as a dispatched agent: its SessionStart
    # hook waits for the install (which the `install` hook runs alongside), then hands the session
    # the agent's production instructions
    agent, variant = ".claude/agents/reviewer.md", ".claude/agents/reviewer.md.experiment"
    front = "---\nname: reviewer\ndescription: Reviews a change\ntools: Read\n---\n"
    (project / ".claude" / "agents").mkdir()
    (project / agent).write_text(front + "You review code. Be thorough.\n")
    (project / variant).write_text(front + "You review code. Report only real bugs.\n")
    lab = Lab.open(project, create=True)
    lab.clock = lambda: time.time() - 60  # dispatched a minute ago
    try:
        primary = {"name": "seconds", "direction": "lower_is_better", "unit": "s"}
        agent_experiment = lab.create(**spec(files={agent: variant}, primary_metric=primary, secondary_metrics=[]))
        set_dispatch(lab, agent_experiment.id, True)
    finally:
        lab.close()
    with fake_model() as model:
        first = claude(cli, home, "-p", "review x.py", "--agent", "reviewer", cwd=project, model=model)
        assert first.returncode == 0, first.stdout + first.stderr
        texts = "\n".join(t for r in model.conversation_requests() for t in model.texts(r))
    assert "<agent-instructions>\nYou review code. Be thorough.\n</agent-instructions>" in texts, texts[-2000:]

    # the SessionStart hook's install, started twice at once as two sessions would: one installs
    # (here: it is done already, and neither builds again)
    data = home / ".claude" / "plugins" / "data" / "meta-experiment-meta-experiment"  # Claude Code's CLAUDE_PLUGIN_DATA
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: run(cached, data, "install"), range(2)))
    for each in runs:
        assert each.returncode == 0, each.stderr
        assert each.stdout == ""
    [env] = [p for p in data.glob("venv-*") if p.is_dir()]
    log = (data / f"{env.name}.log").read_text()
    assert log.count(" -m venv ") == 1 and "Successfully installed" in log  # built once

    listed = claude(cli, home, "mcp", "list", cwd=project)
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("plugin:meta-experiment:meta-experiment:"))
    assert "Connected" in line, listed.stdout + listed.stderr
    assert "launch.py serve" in line
    assert [p.name for p in (home / ".claude" / "plugins" / "data").iterdir()] == [data.name]
    assert [p for p in data.glob("venv-*") if p.is_dir()] == [env]  # Claude Code's server used the installed one

    # the plugin's server, started as its .mcp.json says, runs a trial in the project
    dispatched_at: list[float] = []

    async def drive() -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=[str(cached / "scripts" / "launch.py"), "serve"],
            env={
                **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                "CLAUDE_PLUGIN_ROOT": str(cached),
                "CLAUDE_PLUGIN_DATA": str(data),
                "CLAUDE_PROJECT_DIR": str(project),  # as Claude Code sets it for a plugin's server
            },
            cwd=str(project),
        )
        async with Client(params, mode="legacy", read_timeout_seconds=120) as client:
            created = await client.call_tool(
                "create_experiment",
                {
                    "name": "plugin",
                    "hypothesis": "h",
                    "files": {PROD: VAR},
                    "primary_metric": {"name": "t", "direction": "lower_is_better", "unit": "s"},
                },
            )
            assert not created.is_error, created.content[0].text
            trial = await client.call_tool("assign", {"experiment_id": created.structured_content["id"]})
            recorded = await client.call_tool(
                "record", {"trial_id": trial.structured_content["trial_id"], "metrics": {"t": 2.0}}
            )
            assert recorded.structured_content["trials_recorded"] == 1
            dispatched = await client.call_tool("dispatch", {"experiment_id": created.structured_content["id"]})
            dispatched_at.append(time.monotonic())
            assert dispatched.structured_content["dispatching"] is True, dispatched.content[0].text

    anyio.run(drive)
    assert (project / ".meta-experiment" / "experiments.db").is_file()
    # the installed environment's own code ran it, not this checkout's
    where = subprocess.run(
        [str(env / "bin" / "python"), "-I", "-c", "import meta_experiment; print(meta_experiment.__file__)"],
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(env))

    # the CLI through the launcher: the same store
    status = run(cached, data, "status", cwd=project)
    assert status.returncode == 0, status.stderr
    assert "**Name**: plugin" in status.stdout and "(1/10)" in status.stdout

    # a person types the dispatched command: the plugin's hooks assign a trial, hand the model its
    # arm's text and record the reply's time (the model is a stand-in on loopback)
    from meta_experiment.dispatch_ops import SETTLE_SECONDS

    time.sleep(max(0.0, SETTLE_SECONDS + 0.5 - (time.monotonic() - dispatched_at[0])))  # runs before: not trials
    with fake_model() as model:
        typed = claude(cli, home, "-p", "/review_pr 12", cwd=project, model=model)
        assert typed.returncode == 0, typed.stdout + typed.stderr
        texts = "\n".join(t for r in model.requests for t in model.texts(r))
    assert "/review_pr is under an A/B test" in texts
    assert "trial 2 of experiment" in texts and "<command-text>\nReview the pull request." in texts
    status = run(cached, data, "status", cwd=project)
    # 2 of 10 recorded; more while an arm lacks its 5 (the arms vary: the session is the unit)
    assert re.search(r"\(2/(10\)|\d+; 10 required, but each arm)", status.stdout), status.stdout


def test_the_quick_look_serves_a_session_started_in_a_subfolder_and_never_reads_a_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: a session started in packages/app (a monorepo) runs the commands of the
    folders above it, dispatchers included, but the launcher looked in packages/app only, so the
    package never ran; and a FIFO at a command's path hung the launcher until Claude Code killed it."""
    launch = load_launcher(PLUGIN)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".meta-experiment").mkdir()
    (repo / ".meta-experiment" / "experiments.db").write_text("")  # the top level has the experiments
    (repo / ".claude" / "commands").mkdir(parents=True)
    dispatcher = "<!-- meta-experiment dispatcher for experiment e1: x -->\n"
    (repo / ".claude" / "commands" / "rev.md").write_text(dispatcher)
    (repo / ".claude" / "agents").mkdir()
    (repo / ".claude" / "agents" / "reviewer.md").write_text(dispatcher)
    app = repo / "packages" / "app"
    app.mkdir(parents=True)
    monkeypatch.delenv("META_EXPERIMENT_HOME", raising=False)
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(app))

    def concerns(event: str, payload: object) -> bool:
        return launch.hook_concerns_us(event, json.dumps(payload).encode())

    assert launch.owning_project(str(app)) == str(repo.resolve())
    assert concerns("prompt", {"prompt": "/rev 1"}) and concerns(
        "agent-start", {"tool_input": {"subagent_type": "reviewer"}}
    )
    (repo / ".meta-experiment" / "dispatched").mkdir()
    (repo / ".meta-experiment" / "dispatched" / "s1.json").write_text("{}")
    assert concerns("stop", {"session_id": "s1"})  # the run's note is in the top level's state
    # a commit a hook left to the background failed: any prompt or session start tells the person
    assert not concerns("prompt", {"prompt": "hello"}) and not concerns("session-start", {"session_id": "s2"})
    (repo / ".meta-experiment" / "dispatched" / "commit-failed.json").write_text('{"messages": ["x"]}')
    assert concerns("prompt", {"prompt": "hello"}) and concerns("session-start", {"session_id": "s2"})
    assert not concerns("stop", {"session_id": "s9"})
    (repo / ".meta-experiment" / "dispatched" / "commit-failed.json").unlink()
    # the subfolder's own command of that name is what runs there
    (app / ".claude" / "commands").mkdir(parents=True)
    (app / ".claude" / "commands" / "rev.md").write_text("The app's own review.\n")
    assert not concerns("prompt", {"prompt": "/rev 1"})
    # a repository's top does not look above itself; a subfolder with state of its own is its own project
    (app / ".git").mkdir()
    assert launch.owning_project(str(app)) == str(app)
    # a FIFO at a command's path: answered at once, never read
    os.mkfifo(app / ".claude" / "commands" / "pipe.md")
    started = time.monotonic()
    assert not concerns("prompt", {"prompt": "/pipe 1"}) and time.monotonic() - started < 5
