"""Dispatched slash commands in the real Claude Code CLI (@anthropic-ai/claude-code from npm, as
.ci/run installs it), run with `claude -p` against a stand-in for the model on loopback
(tests/fake_model.py). Claude Code reads the command files, runs the hooks and builds the request
itself; only the model's reply is canned. tests/test_plugin.py runs the same through the installed
plugin's hooks."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import COMMAND, PROD, VARIANT, git, package_env, spec
from fake_model import FakeModel, fake_model
from meta_experiment import dispatch, release
from meta_experiment.dispatch_ops import on_prompt, set_dispatch
from meta_experiment.lifecycle import Lab
from meta_experiment.models import Trial
from test_dispatch import RENDER_CASES
from test_plugin import claude_cli


def claude_p(
    cli: str, home: Path, project: Path, model: FakeModel, prompt: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """One prompt in print mode (with more of the CLI's `args`), offline: a throwaway HOME, the
    model on loopback, and this checkout's package importable by the hooks."""
    env = offline_env(home, ANTHROPIC_BASE_URL=model.url, ANTHROPIC_API_KEY="sk-test-not-a-key")
    done = subprocess.run([cli, "-p", prompt, *args], env=env, cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def offline_env(home: Path, **more: str) -> dict[str, str]:
    """The environment of the CLI run offline (a throwaway HOME: no update check, no telemetry)
    with this checkout's package importable by the hooks, and `more`."""
    env = {k: v for k, v in package_env().items() if k not in ("CLAUDE_PROJECT_DIR", "CLAUDE_CONFIG_DIR")}
    env.update(
        HOME=str(home), DISABLE_AUTOUPDATER="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1"
    )
    return {**env, **more}


def sent(model: FakeModel, since: int = 0) -> list[str]:
    return [text for request in model.requests[since:] for text in model.texts(request)]


def test_render_is_what_claude_code_sends_for_a_command(tmp_path: Path, project: Path) -> None:
    """The hook fills in the arguments itself: it must do so exactly as Claude Code does."""
    cli = claude_cli()
    home = tmp_path / "home"
    home.mkdir()
    commands = project / ".claude" / "commands"
    with fake_model() as model:
        for i, (body, arguments, expected) in enumerate(RENDER_CASES):
            text = "---\ndescription: case\n---\n" + body
            (commands / f"case{i}.md").write_text(text)
            since = len(model.requests)
            claude_p(cli, home, project, model, f"/case{i} {arguments}" if arguments else f"/case{i}")
            texts = sent(model, since)
            assert expected in texts, (body, arguments, [t for t in texts if "case" in t or "ARGUMENTS" in t])
            assert dispatch.render(text, arguments) == expected


def hooks_settings(project: Path) -> None:
    """The plugin's hooks (plugin/hooks/hooks.json: the same events and matchers) as project
    settings, each running this checkout's package instead of the launcher's installed one."""
    plugin = json.loads((Path(__file__).resolve().parent.parent / "plugin" / "hooks" / "hooks.json").read_text())
    run = f"{shlex.quote(sys.executable)} -m meta_experiment hook"
    hooks: dict[str, Any] = {}
    for event, entries in plugin["hooks"].items():
        for entry in entries:
            [hook] = entry["hooks"]
            if " hook " not in hook["command"]:  # the install: nothing to install here
                continue
            name = hook["command"].rsplit(" hook ", 1)[1]
            hooks.setdefault(event, []).append({**entry, "hooks": [{"type": "command", "command": f"{run} {name}"}]})
    assert set(hooks) == {"SessionStart", "UserPromptSubmit", "Stop", "PreToolUse", "PostToolUse", "SubagentStop"}
    (project / ".claude" / "settings.json").write_text(json.dumps({"hooks": hooks}))


def dispatched(tmp_path: Path, project: Path, **fields: Any) -> tuple[str, Path, str]:
    """(the CLI, a HOME, the id of a running experiment on PROD with its dispatcher in place), the
    hooks set up as the plugin has them."""
    cli = claude_cli()
    home = tmp_path / "home"
    home.mkdir()
    hooks_settings(project)
    lab = Lab.open(project, create=True)
    lab.clock = lambda: time.time() - 60  # dispatched a minute ago: every open session has noticed it
    try:
        e = lab.create(**spec(**fields))
        set_dispatch(lab, e.id, True)
    finally:
        lab.close()
    return cli, home, e.id


def test_typing_a_dispatched_command_runs_a_trial_in_claude_code(tmp_path: Path, project: Path) -> None:
    primary = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "s"}
    cli, home, experiment_id = dispatched(tmp_path, project, primary_metric=primary)
    lab = Lab.open(project)
    try:
        e = lab.get(experiment_id)
    finally:
        lab.close()
    arms = {"control": COMMAND, "treatment": VARIANT}
    with fake_model() as model:
        for i in range(4):
            since = len(model.requests)
            claude_p(cli, home, project, model, f"/review_pr {40 + i}")
            texts = "\n".join(sent(model, since))
            lab = Lab.open(project)
            try:
                trial = lab.trials(e.id)[-1]
            finally:
                lab.close()
            assert trial.trial_id == i + 1
            # the person's command expanded to the dispatcher, and the hook's context carries the arm's text
            assert f"/review_pr is under an A/B test (meta-experiment, experiment {e.id})" in texts
            assert f"trial {trial.trial_id} of experiment {e.id}" in texts
            arm_text = dispatch.render(arms[trial.arm], str(40 + i))
            end = "" if arm_text.endswith("\n") else "\n"  # the arm's text byte for byte, then the tag on a line
            assert f"<command-text>\n{arm_text}{end}</command-text>" in texts
            other = "control" if trial.arm == "treatment" else "treatment"
            start = texts.index("meta-experiment: the text of /review_pr for this run (trial")
            handed = texts[start : texts.index("</command-text>", start)]
            assert arms[other].strip() not in handed  # the other arm's text is not handed over
            # the Stop hook recorded the reply's time
            assert trial.status == "recorded" and trial.success is True
            assert 0 < trial.metrics["time_to_complete"] < 120

    lab = Lab.open(project)
    try:
        units = [t.unit for t in lab.trials(e.id)]
        assert len(set(units)) == 4 and all(u and u.startswith("session ") for u in units)  # four sessions
        assert dispatch.dispatcher_experiment((project / PROD).read_text()) == e.id
        release.rollback(lab, e.id, reason="done")
    finally:
        lab.close()
    assert (project / PROD).read_text() == COMMAND
    assert not any((project / ".meta-experiment" / "dispatched").iterdir())


def test_a_prompt_that_is_not_a_dispatched_command_is_left_alone(tmp_path: Path, project: Path) -> None:
    cli = claude_cli()
    home = tmp_path / "home"
    home.mkdir()
    hooks_settings(project)
    with fake_model() as model:
        claude_p(cli, home, project, model, "/review_pr 7")  # a command, but no experiment on it
        claude_p(cli, home, project, model, "hello")
        texts = "\n".join(sent(model))
    assert "Review the pull request. Run the security analyst" in texts  # Claude Code's own expansion
    assert "meta-experiment" not in texts
    assert not (project / ".meta-experiment").exists()


def test_the_users_own_command_of_the_name_runs_and_is_not_a_trial(tmp_path: Path, project: Path) -> None:
    """The person has a personal command named like the dispatched one (in their ~/.claude):
    Claude Code runs theirs, so the hook hands over nothing and no trial is made."""
    cli, home, experiment_id = dispatched(tmp_path, project)
    (home / ".claude" / "commands").mkdir(parents=True)
    (home / ".claude" / "commands" / "review_pr.md").write_text("My own review routine for $ARGUMENTS.\n")
    with fake_model() as model:
        claude_p(cli, home, project, model, "/review_pr 7")
        texts = "\n".join(sent(model))
    assert "My own review routine for 7." in texts
    assert "meta-experiment" not in texts and "<command-text>" not in texts
    lab = Lab.open(project)
    try:
        assert lab.trials(experiment_id) == []
    finally:
        lab.close()


def test_the_longest_text_a_hook_hands_over_arrives_whole(tmp_path: Path, project: Path) -> None:
    """Claude Code passes a hook's context whole only up to about 10,000 characters (longer, the
    model gets a 2 KB preview and a file path): the limit the prompt hook keeps to, checked here at
    its edge."""
    from meta_experiment.dispatch import CONTEXT_LIMIT

    cli, home, probed = dispatched(tmp_path, project)
    lab = Lab.open(project)
    try:
        e = lab.get(probed)
        probe = on_prompt(lab, {"session_id": "probe", "prompt": "/review_pr x"})
        assert probe is not None
        [trial] = lab.trials(e.id)
        release.rollback(lab, e.id, reason="probe only")  # (a new experiment below, with no trial yet)
        longer_arm = max(
            0, len(VARIANT if trial.arm == "control" else COMMAND) - len(COMMAND if trial.arm == "control" else VARIANT)
        )
        # (less 20: the hook leaves room for a trial id of up to 13 digits)
        longest = CONTEXT_LIMIT - len(probe["hookSpecificOutput"]["additionalContext"]) - longer_arm - 20
        lab.clock = lambda: time.time() - 60  # dispatched a minute ago
        e = lab.create(**spec())
        set_dispatch(lab, e.id, True)
    finally:
        lab.close()
    words = " ".join(f"w{i:05d}" for i in range(longest // 7))
    with fake_model() as model:
        claude_p(cli, home, project, model, f"/review_pr x{words}")
        texts = "\n".join(sent(model))
    assert "persisted-output" not in texts
    assert f"x{words}\n</command-text>" in texts
    start = texts.index("meta-experiment: the text of /review_pr for this run (trial")
    handed = texts[start : texts.index("</command-text>", start) + len("</command-text>")]
    assert CONTEXT_LIMIT - 100 < len(handed) <= CONTEXT_LIMIT  # at the edge
    assert trial.trial_id == 1


def scripted(cli: str, home: Path, project: Path, script: list[dict[str, Any]], prompt: str) -> str:
    """One session in which the model plays `script` to its end; every text Claude Code sent it."""
    with fake_model(script) as model:
        claude_p(cli, home, project, model, prompt)
        assert model.script == [], "Claude Code ended the session before the script did"
        return "\n".join(sent(model))


def only_trial(project: Path, experiment_id: str) -> Trial:
    lab = Lab.open(project)
    try:
        [trial] = lab.trials(experiment_id)
        return trial
    finally:
        lab.close()


def test_the_model_launching_a_dispatched_agent_runs_a_trial_in_claude_code(tmp_path: Path, project: Path) -> None:
    """The model launches the agent as usual (the Agent tool): the launch gets the arm's
    instructions, the agent's own file is the dispatcher, and the run's time is recorded."""
    agent, variant = ".claude/agents/reviewer.md", ".claude/agents/reviewer.md.experiment"
    front = "---\nname: reviewer\ndescription: Reviews a change\ntools: Read\n---\n"
    arms = {"control": "You review code. Be thorough.", "treatment": "You review code. Report only real bugs."}
    (project / ".claude" / "agents").mkdir()
    (project / agent).write_text(front + arms["control"] + "\n")
    (project / variant).write_text(front + arms["treatment"] + "\n")
    primary = {"name": "seconds", "direction": "lower_is_better", "unit": "s"}
    cli, home, experiment_id = dispatched(
        tmp_path, project, files={agent: variant}, primary_metric=primary, secondary_metrics=[]
    )
    task = {"description": "review", "prompt": "Review x.py", "subagent_type": "reviewer"}
    script = [{"tool": "Agent", "input": task}, {"text": "The agent's report."}, {"text": "Reviewed."}]
    texts = scripted(cli, home, project, script, "review x.py")
    trial = only_trial(project, experiment_id)
    assert trial.status == "recorded" and 0 < trial.metrics["seconds"] < 120
    assert f"<agent-instructions>\n{arms[trial.arm]}\n</agent-instructions>\n\nReview x.py" in texts
    other = "control" if trial.arm == "treatment" else "treatment"
    assert arms[other] not in texts
    assert f"experiment {experiment_id}, is testing two versions" in texts  # the agent's file: the dispatcher


def test_a_session_started_as_a_dispatched_agent_runs_its_production_instructions(
    tmp_path: Path, project: Path
) -> None:
    """`claude --agent reviewer` makes the agent's file (the dispatcher) the session's system
    prompt; the SessionStart hook hands it the production instructions, and no trial is made."""
    agent, variant = ".claude/agents/reviewer.md", ".claude/agents/reviewer.md.experiment"
    front = "---\nname: reviewer\ndescription: Reviews a change\ntools: Read\n---\n"
    (project / ".claude" / "agents").mkdir()
    (project / agent).write_text(front + "You review code. Be thorough.\n")
    (project / variant).write_text(front + "You review code. Report only real bugs.\n")
    primary = {"name": "seconds", "direction": "lower_is_better", "unit": "s"}
    cli, home, experiment_id = dispatched(
        tmp_path, project, files={agent: variant}, primary_metric=primary, secondary_metrics=[]
    )
    with fake_model() as model:
        done = claude_p(cli, home, project, model, "review x.py", "--agent", "reviewer", "--output-format", "json")
        [request] = model.conversation_requests()
    system = json.dumps(request.get("system"))
    assert f"experiment {experiment_id}, is testing two versions" in system  # the dispatcher is the system prompt
    texts = "\n".join(model.texts(request))
    assert "<agent-instructions>\nYou review code. Be thorough.\n</agent-instructions>" in texts
    assert "Report only real bugs" not in texts
    lab = Lab.open(project)
    try:
        assert lab.trials(experiment_id) == []
        release.promote(lab, experiment_id, force=True, reason="ship it")
    finally:
        lab.close()
    assert "Report only real bugs" in (project / agent).read_text()

    # resumed after the promotion (without --agent): Claude Code keeps the system prompt the session
    # started with, the dispatcher, and the hook hands over what production holds now
    with fake_model() as model:
        claude_p(cli, home, project, model, "and y.py", "--resume", json.loads(done.stdout)["session_id"])
        request = model.conversation_requests()[-1]
    assert f"experiment {experiment_id}, is testing two versions" in json.dumps(request.get("system"))
    texts = "\n".join(model.texts(request))
    assert "(the experiment is promoted)" in texts
    assert "<agent-instructions>\nYou review code. Report only real bugs.\n</agent-instructions>" in texts


def test_the_model_running_a_dispatched_command_itself_runs_a_trial(tmp_path: Path, project: Path) -> None:
    """Claude Code lists the project's commands as skills; the model runs one with the Skill tool."""
    primary = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "s"}
    cli, home, experiment_id = dispatched(tmp_path, project, primary_metric=primary)
    script = [{"tool": "Skill", "input": {"skill": "review_pr", "args": "42"}}, {"text": "Reviewed."}]
    texts = scripted(cli, home, project, script, "review PR 42 the usual way")
    trial = only_trial(project, experiment_id)
    assert trial.status == "recorded" and 0 < trial.metrics["time_to_complete"] < 120
    arm_text = dispatch.render(COMMAND if trial.arm == "control" else VARIANT, "42")
    dispatcher = texts.index(f"/review_pr is under an A/B test (meta-experiment, experiment {experiment_id})")
    handed = texts.index(f"<command-text>\n{arm_text}\n</command-text>")
    assert dispatcher < handed  # the dispatcher's text, then the arm's


def test_a_dispatched_skill_typed_or_run_by_the_model_runs_a_trial(tmp_path: Path, project: Path) -> None:
    """A project skill (.claude/skills/NAME/SKILL.md): Claude Code runs it when it is typed as
    /NAME and when the model calls the Skill tool. The arm handed over is what Claude Code itself
    makes of that arm's file (its folder in ${CLAUDE_SKILL_DIR}, after a line naming the folder)."""
    skill, variant = ".claude/skills/greet/SKILL.md", ".claude/skills/greet/variant.md"
    front = "---\nname: greet\ndescription: Greets someone\n---\n"
    arms = {
        "control": front + "Say hi to [$ARGUMENTS]. Notes in ${CLAUDE_SKILL_DIR}/notes.md\n",
        "treatment": front + "Greet $1, then $0, warmly.\n",
    }
    folder = project / ".claude" / "skills" / "greet"
    folder.mkdir(parents=True)
    cli = claude_cli()
    home = tmp_path / "home"
    home.mkdir()
    base = f"Base directory for this skill: {folder.resolve()}\n\n"
    with fake_model() as model:  # Claude Code's own expansion of each arm, not dispatched
        for text in arms.values():
            (project / skill).write_text(text)
            since = len(model.requests)
            claude_p(cli, home, project, model, "/greet Ann Lee")
            assert base + dispatch.render(text, "Ann Lee", "", str(folder.resolve())) in sent(model, since)
    (project / skill).write_text(arms["control"])
    (project / variant).write_text(arms["treatment"])
    git(project, "add", skill)
    git(project, "commit", "-qm", "a skill")
    primary = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "s"}
    (tmp_path / "run").mkdir()
    cli, home, experiment_id = dispatched(
        tmp_path / "run", project, files={skill: variant}, primary_metric=primary, secondary_metrics=[]
    )
    seen = []
    for how in ("typed", "Skill tool"):
        if how == "typed":
            with fake_model() as model:
                claude_p(cli, home, project, model, "/greet Ann Lee")
                texts = "\n".join(sent(model))
        else:
            script = [{"tool": "Skill", "input": {"skill": "greet", "args": "Ann Lee"}}, {"text": "Hi, Ann."}]
            texts = scripted(cli, home, project, script, "please greet Ann Lee")
        lab = Lab.open(project)
        try:
            trial = lab.trials(experiment_id)[-1]
        finally:
            lab.close()
        seen.append(trial.trial_id)
        assert trial.status == "recorded" and 0 < trial.metrics["time_to_complete"] < 120, how
        assert f"/greet is under an A/B test (meta-experiment, experiment {experiment_id})" in texts, how
        arm_text = dispatch.render(arms[trial.arm], "Ann Lee", "", str(folder.resolve()))
        assert f"<command-text>\n{arm_text}</command-text>" in texts, how
    assert seen == [1, 2]
    lab = Lab.open(project)
    try:
        release.rollback(lab, experiment_id, reason="done")
    finally:
        lab.close()
    assert (project / skill).read_text() == arms["control"]
