"""Hooks under the conditions a review found: a run's fallback keeps the session's arm, a name
followed by a no-break space, two runs in one reply, a notes folder that cannot be written, the
waits of a hook (Claude Code kills it after 30 s) and the git commit of a promotion a hook made."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import PROD, VARIANT, git, spec
from meta_experiment import deploy, dispatch, dispatch_ops, journal
from meta_experiment.dispatch_ops import hook_lab, on_prompt, on_skill, on_stop, set_dispatch
from meta_experiment.errors import InvalidState, StoreError
from meta_experiment.lifecycle import Lab


@pytest.fixture(autouse=True)
def no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch_ops, "SETTLE_SECONDS", 0.0)


def payload(prompt: str = "/review_pr 42", session: str = "s-1", **more: object) -> dict[str, object]:
    return {"session_id": session, "prompt": prompt, "hook_event_name": "UserPromptSubmit", **more}


def dispatched_with_a_subfolder(project: Path) -> tuple[str, Path]:
    """An experiment dispatched at the project's top, and a packages/app folder below it."""
    lab = Lab.open(project)
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    lab.close()
    app = project / "packages" / "app"
    app.mkdir(parents=True)
    return e.id, app


def refusing_pre_commit(project: Path, body: str = "echo 'lint failed' >&2\nexit 1") -> Path:
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\n{body}\n")
    hook.chmod(0o755)
    return hook


def promoted_by_a_hook(project: Path, monkeypatch: pytest.MonkeyPatch, **overrides: object) -> tuple[Lab, str]:
    """A winner promoted as a hook promotes (its commit left pending; no background process started)."""
    from meta_experiment import release
    from release_helpers import record_trials

    monkeypatch.setattr(dispatch_ops, "commit_in_background", lambda lab: True)
    lab = Lab.open(project)
    lab.commit_later, lab.actor = True, "hook"
    e = lab.create(**spec(sample_size_required=20, secondary_metrics=[], **overrides))
    record_trials(lab, e.id)
    release.promote(lab, e.id)
    return lab, e.id


def test_the_dispatchers_own_fallback_keeps_the_sessions_arm() -> None:
    """Where the hook hands nothing over (arguments too long), the model assigns: without the
    session as the unit, one conversation got control, treatment, control."""
    text = dispatch.dispatcher_text("exp-1", PROD, "Review.\n")
    assert 'assign tool with experiment_id "exp-1" and unit "session ${CLAUDE_SESSION_ID}"' in text


@pytest.mark.parametrize("space", ["\u3000", "\u00a0", "\f", "\v", "\u2003"])
def test_a_name_followed_by_a_space_javascript_knows_is_a_trial(lab: Lab, project: Path, space: str) -> None:
    """Claude Code splits /name from its arguments at JavaScript's whitespace: an ideographic space
    (a Japanese IME) or a pasted no-break space ran the dispatcher, yet the hook handed nothing."""
    assert dispatch.parse_prompt(f"/review_pr{space}42") == ("review_pr", "42")
    assert dispatch.parse_prompt("/review_pr\x1c42") is None  # Python's whitespace, not JavaScript's
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    out = on_prompt(lab, payload(f"/review_pr{space}42"))
    assert out is not None and "<command-text>" in out["hookSpecificOutput"]["additionalContext"]
    assert len(lab.trials(e.id)) == 1
    assert dispatch.render("Do $0.\n", f"{space}42 \ufeff") == "Do 42.\n"  # JavaScript's trim()


def test_two_runs_in_one_reply_are_one_trial(lab: Lab, project: Path) -> None:
    """The model ran the dispatched command twice in one reply: the second note replaced the first,
    whose trial stayed assigned for ever."""
    now = [1000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    skill = {"session_id": "m1", "prompt_id": "p1", "tool_name": "Skill"}
    first = on_skill(lab, {**skill, "tool_input": {"skill": "review_pr", "args": "7"}})
    second = on_skill(lab, {**skill, "tool_input": {"skill": "review_pr", "args": "8"}})
    [trial] = lab.trials(e.id)
    for out in (first, second):
        assert (
            out is not None
            and f"trial {trial.trial_id} of experiment" in out["hookSpecificOutput"]["additionalContext"]
        )
    now[0] += 60
    on_stop(lab, {"session_id": "m1", "prompt_id": "p1"})
    assert lab.trial(trial.trial_id).status == "recorded"
    on_skill(lab, {**skill, "prompt_id": "p2", "tool_input": {"skill": "review_pr", "args": "9"}})  # a new reply
    assert len(lab.trials(e.id)) == 2


def test_a_notes_folder_that_cannot_be_written_assigns_nothing(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    (lab.state_dir / dispatch_ops.RUNS_DIR_NAME).write_text("in the way")
    with pytest.raises(InvalidState, match="cannot write the runs' notes in .* so no trial was assigned"):
        on_prompt(lab, payload())
    assert lab.trials(e.id) == []


def test_a_hook_waits_for_another_promote_a_few_seconds_not_two_minutes(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Code kills a hook after 30 s: with another process's promote holding the deploy lock,
    the Stop hook's expiry waited 120 s (and the database 30 s). A hook gives up after its budget."""
    monkeypatch.setattr(dispatch_ops, "HOOK_WAIT_SECONDS", 0.5)
    lab = Lab.open(project)
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    lab.close()
    hook = hook_lab(str(project))
    assert hook.lock_wait == 0.5 and hook.store.busy_timeout_ms == 500 and hook.commit_later
    with deploy.deploy_lock(hook.state_dir):  # as another process's promote would
        started = time.monotonic()
        with pytest.raises(StoreError, match="has held the deploy lock for 0.5 s"):
            set_dispatch(hook, e.id, False)
        assert time.monotonic() - started < 5
    hook.close()


@pytest.mark.parametrize("hook_fails", [False, True])
def test_a_promotion_a_hook_makes_is_committed_by_a_separate_process(
    project: Path, monkeypatch: pytest.MonkeyPatch, hook_fails: bool
) -> None:
    """The Stop hook's auto-promotion ran `git commit` (and the repository's commit hooks) inside
    the hook's 30 s: a slow pre-commit was killed midway. The hook now leaves the commit pending and
    `meta-experiment recover` (started detached) makes it; a failed commit is said in the message."""
    monkeypatch.setattr(dispatch_ops, "commit_in_background", lambda lab: True)  # run by hand below
    if hook_fails:
        refusing_pre_commit(project)
    lab = Lab.open(project)
    now = [1_000_000.0]
    lab.clock = lambda: now[0]
    primary = {"name": "seconds", "direction": "lower_is_better", "unit": "s"}
    e = lab.create(**spec(primary_metric=primary, secondary_metrics=[], auto_promote=True, sample_size_required=10))
    set_dispatch(lab, e.id, True)
    lab.commit_later = True  # as hook_lab opens it
    lab.actor = "hook"
    message = None
    for i in range(200):
        on_prompt(lab, payload(session=f"s{i}", prompt_id=f"p{i}"))
        arm = lab.trials(e.id)[-1].arm
        now[0] += (60.0 if arm == "control" else 20.0) + (i % 7)
        out = on_stop(lab, {"session_id": f"s{i}", "prompt_id": f"p{i}"})
        if out is not None:
            message = out["systemMessage"]
            break
    assert lab.get(e.id).status == "promoted" and (project / PROD).read_text() == VARIANT
    assert message is not None and "Its git commit is being made in the background" in message
    [op_id] = journal.unfinished_ids(lab.store)
    assert journal.load(lab.store, op_id).phase == "applied"
    before = git(project, "rev-list", "--count", "HEAD")
    lab.commit_later = False
    said = dispatch_ops.recover_waiting(lab)  # what `meta-experiment recover` runs
    assert journal.unfinished_ids(lab.store) == []
    done = journal.load(lab.store, op_id).git
    assert done is not None
    from meta_experiment.report import render_status

    text = render_status(lab.status())
    assert "INTERRUPTED" not in text.upper() and "interrupted" not in " ".join(said)  # nothing was interrupted
    if hook_fails:
        assert done.status == "failed" and "lint failed" in done.detail
        assert git(project, "rev-list", "--count", "HEAD") == before
        assert (
            said
            and f"The promote of {e.id} that a hook made could not be committed by meta-experiment recover" in said[0]
        )
        assert "**Git**: commit failed: lint failed" in text and "run: `git -C " in text  # where people look
    else:
        assert done.status == "committed" and int(git(project, "rev-list", "--count", "HEAD")) == int(before) + 1
        assert said and f"The promote of {e.id} that a hook made was committed by meta-experiment recover" in said[0]
    lab.close()


def test_a_hook_leaves_another_hooks_commit_to_recover(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: a second hook that took the deploy lock first made the first hook's commit
    itself (recover_held), with its 40 s pre-commit, past the 30 s a hook gets."""
    from meta_experiment import release
    from release_helpers import record_trials

    lab, _ = promoted_by_a_hook(project, monkeypatch)  # its commit pending
    [pending] = journal.unfinished_ids(lab.store)
    refusing_pre_commit(project, "sleep 30")
    (project / "b.md").write_text("B\n")
    (project / "b.md.experiment").write_text("B2\n")
    git(project, "add", "b.md")
    git(project, "commit", "-qm", "b", "--no-verify")
    second = lab.create(**spec(files={"b.md": "b.md.experiment"}, sample_size_required=20, secondary_metrics=[]))
    record_trials(lab, second.id)
    started = time.monotonic()
    result = release.promote(lab, second.id)  # another hook's promotion, right after
    assert time.monotonic() - started < 10  # no commit (and no 30 s pre-commit) ran in it
    assert result.git is not None and result.git.status == "pending"
    assert pending in journal.unfinished_ids(lab.store) and len(journal.unfinished_ids(lab.store)) == 2
    lab.close()


def test_an_arm_with_one_unit_asks_for_a_new_unit_not_more_trials(lab: Lab, project: Path) -> None:
    """30 trials from 3 repeating units, the treatment arm with one: status said 'about 28 more
    trials give 80% power', yet more trials of the same units can never decide (a review's case)."""
    from meta_experiment.report import render_status

    e = lab.create(**spec(secondary_metrics=[]))
    control: list[str] = []
    treatment: list[str] = []
    for k in range(200):  # random assignment: new units until two are in control and one in treatment
        if len(control) >= 2 and treatment:
            break
        unit = f"u{k}"
        (control if lab.assign(e.id, unit=unit).arm == "control" else treatment).append(unit)  # sticky per unit
    assert len(control) >= 2 and treatment, (control, treatment)
    units = control[:2] + treatment[:1]  # two units in control, one in treatment
    for i in range(30):
        a = lab.assign(e.id, unit=units[i % 3])
        lab.record(a.trial_id, {"time_to_complete": (60.0 if a.arm == "control" else 40.0) + i % 5})
    short = ["treatment"]
    analysis = lab.analyze(e.id)
    assert analysis.power is not None and analysis.power.trials_needed_total is None
    assert f"It needs trials from at least one more unit (another session, PR or user) in the {short[0]} arm" in (
        analysis.power.message
    )
    text = render_status(lab.status())
    assert "more trials give 80% power" not in text
    assert "the treatment arm has trials from one unit only, so it needs trials from at least one more unit" in text


def test_a_session_started_in_a_subfolder_runs_the_projects_dispatched_command(project: Path) -> None:
    """A monorepo: the experiment is dispatched at the repository's top, Claude Code is started in
    packages/app (it runs the top's commands too). The hooks looked for the command and the state in
    packages/app, handed nothing over, and the person's /review_pr ran without instructions."""
    experiment_id, app = dispatched_with_a_subfolder(project)
    hook = hook_lab(str(app))
    assert hook.project_root == project.resolve() and hook.session_root == app.resolve()
    out = on_prompt(hook, payload(session="sub", prompt_id="p1"))
    assert out is not None and "<command-text>" in out["hookSpecificOutput"]["additionalContext"]
    on_stop(hook, {"session_id": "sub", "prompt_id": "p1"})
    [trial] = hook.trials(experiment_id)
    assert trial.status == "recorded"
    # the subfolder's own command of that name is what runs there: not a trial
    (app / ".claude" / "commands").mkdir(parents=True)
    (app / ".claude" / "commands" / "review_pr.md").write_text("The app's own review.\n")
    assert on_prompt(hook, payload(session="sub2", prompt_id="p2")) is None
    hook.close()
    # a subfolder with state of its own is a project of its own
    Lab.open(app).close()
    (app / ".meta-experiment").mkdir(exist_ok=True)
    own = hook_lab(str(app))
    assert own.project_root == app.resolve() and own.session_root is None
    own.close()


def test_the_stop_hook_promotes_and_a_detached_recover_commits(project: Path) -> None:
    """End to end over the real hook command: the Stop hook's auto-promotion leaves its commit to
    `meta-experiment recover`, which it starts detached; the commit lands shortly after."""
    import json
    import subprocess
    import sys

    from conftest import package_env
    from release_helpers import record_trials

    lab = Lab.open(project)
    e = lab.create(**spec(sample_size_required=20, auto_promote=True, secondary_metrics=[]))
    record_trials(lab, e.id)
    set_dispatch(lab, e.id, True)
    lab.close()
    before = int(git(project, "rev-list", "--count", "HEAD"))
    env = {**package_env(), "CLAUDE_PROJECT_DIR": str(project)}

    def hook(event: str, body: dict[str, object]) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "meta_experiment", "hook", event],
            input=json.dumps(body),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done.stdout

    messages = []
    for i in range(40):  # until the auto decision promotes (the sample is there already)
        hook("prompt", payload(session=f"h{i}", prompt_id=f"q{i}"))
        out = hook("stop", {"session_id": f"h{i}", "prompt_id": f"q{i}"})
        if out:
            messages.append(json.loads(out)["systemMessage"])
            break
    assert messages and " promoted: " in messages[0], messages
    assert "Its git commit is being made in the background" in messages[0]
    deadline = time.monotonic() + 60
    while int(git(project, "rev-list", "--count", "HEAD")) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(git(project, "rev-list", "--count", "HEAD")) == before + 1
    assert "Promote" in git(project, "log", "-1", "--format=%s")
    lab = Lab.open(project)
    deadline = time.monotonic() + 30
    while journal.unfinished_ids(lab.store) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert journal.unfinished_ids(lab.store) == [] and lab.get(e.id).status == "promoted"
    assert (project / PROD).read_text() == VARIANT and git(project, "status", "--porcelain", "--", PROD) == ""
    lab.close()


def test_a_background_commit_that_failed_is_told_at_the_next_prompt_once(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hook that promoted has ended when its commit, made by `recover` in the background, is
    refused (a commit hook): `status` showed it, and Claude Code nothing. The person's next prompt
    (or session start) now says so, once."""
    import io

    from meta_experiment import cli

    lab, e = promoted_by_a_hook(project, monkeypatch)
    refusing_pre_commit(project)
    lab.commit_later = False
    dispatch_ops.recover_waiting(lab, announce=True)  # as the process the hook started
    lab.close()

    def prompt(text: str) -> str:
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(payload(text, session="s-9"))))
        assert cli.main(["--project", str(project), "hook", "prompt"]) == 0
        return capsys.readouterr().out

    said = json.loads(prompt("hello"))["systemMessage"]
    assert said.startswith(f"meta-experiment: The promote of {e} that a hook made could not be committed")
    assert "lint failed" in said and "`meta-experiment status` shows whether the commit is still to be made" in said
    assert prompt("hello again") == ""  # told once


def test_recover_with_nothing_unfinished_says_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meta_experiment import cli

    assert cli.main(["--project", str(project), "recover"]) == 0
    assert capsys.readouterr().out.strip() == "Nothing to finish: no promote or rollback is unfinished."
    assert not (project / ".meta-experiment").exists()  # nothing is made to say so


def test_the_progress_line_counts_toward_the_same_target_as_the_status_line(lab: Lab, project: Path) -> None:
    """4 of 4 required, but 5 per arm needed: the status line said 4/10 and the bar 4/4."""
    from meta_experiment.report import render_status

    e = lab.create(**spec(sample_size_required=4, secondary_metrics=[]))
    for _ in range(4):
        lab.record(lab.assign(e.id).trial_id, {"time_to_complete": 10.0})
    text = render_status(lab.status())
    assert "Running (4/10 trials)" in text
    assert "40% (4/10; 4 required, but each arm needs 5 results before a decision" in text


def test_a_repositorys_top_never_serves_a_project_above_it(tmp_path: Path) -> None:
    """From a review: a repository inside a folder that has state of its own served that outer
    folder's experiments (the walk up checked .git only in the folders above the session)."""
    outer = tmp_path / "outer"
    outer.mkdir()
    Lab.open(outer).close()  # state of its own
    inner = outer / "repo"
    inner.mkdir()
    git(inner, "init", "-q")
    lab = hook_lab(str(inner))
    assert lab.project_root == inner.resolve() and lab.session_root is None
    lab.close()


def test_a_subfolder_sessions_run_too_long_to_hand_over_goes_to_assign(project: Path) -> None:
    """A run too long for the hook to hand over is sent to the dispatcher's own fallback, assign:
    that session's MCP server now serves the project above (test_stdio), so it knows the
    experiment (a review had found it did not, and the hook said to run the command elsewhere)."""
    experiment_id, app = dispatched_with_a_subfolder(project)
    hook = hook_lab(str(app))
    out = on_prompt(hook, payload("/review_pr " + "long log line " * 1200, session="sub", prompt_id="p1"))
    assert out is not None
    said = out["hookSpecificOutput"]["additionalContext"]
    assert "too long for a hook to hand over" in said and "call assign and use the text it returns" in said
    assert "subfolder" not in said
    assert hook.trials(experiment_id) == []
    hook.close()
    assert "If assign says there is no experiment with that id" in dispatch.dispatcher_text(experiment_id, PROD, "x\n")


def test_status_after_a_refused_commit_was_made_by_hand_and_while_one_is_pending(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: status kept 'commit failed ... run: git ...' after the person made that
    commit; and listed a hook's commit in the background under INTERRUPTED OPERATIONS."""
    from meta_experiment.report import render_status

    lab, _ = promoted_by_a_hook(project, monkeypatch)
    with deploy.deploy_lock(lab.state_dir):  # as `recover` holds it while it commits
        text = render_status(lab.status())
    assert "INTERRUPTED" not in text and "git commit pending (made in the background)" in text
    hook = refusing_pre_commit(project)
    lab.commit_later = False
    dispatch_ops.recover_waiting(lab)
    assert "**Git**: commit failed: lint failed" in render_status(lab.status())
    hook.unlink()
    git(project, "stash", "-q")  # put back instead (the promotion is then in no commit): still not committed
    assert "**Git**: commit failed: lint failed" in render_status(lab.status())
    git(project, "stash", "pop", "-q")
    git(project, "commit", "-qm", "by hand", "--", PROD)
    text = render_status(lab.status())
    assert "**Git**: committed since, by hand (the promote's own commit had failed: commit failed: lint failed" in text
    assert "run: `git" not in text
    with (project / PROD).open("a") as typo:  # a later commit of the file: it was committed all the same
        typo.write("typo fixed\n")
    git(project, "commit", "-qam", "typo")
    assert "**Git**: committed since, by hand" in render_status(lab.status())
    lab.close()


def test_a_commit_made_by_hand_counts_though_a_file_git_ignores_is_in_no_commit(project: Path) -> None:
    """From a review: the check wanted every file in a commit, and an ignored one never is."""
    from meta_experiment import release
    from meta_experiment.report import render_status
    from release_helpers import record_trials

    (project / ".gitignore").write_text("CLAUDE.local.md\n")
    (project / "CLAUDE.local.md").write_text("local\n")
    (project / "CLAUDE.local.md.experiment").write_text("local 2\n")
    git(project, "add", ".gitignore")
    git(project, "commit", "-qm", "ignore")
    hook = refusing_pre_commit(project)
    lab = Lab.open(project)
    files = {PROD: PROD + ".experiment", "CLAUDE.local.md": "CLAUDE.local.md.experiment"}
    e = lab.create(**spec(files=files, sample_size_required=20, secondary_metrics=[]))
    record_trials(lab, e.id)
    result = release.promote(lab, e.id)
    assert result.git is not None and result.git.status == "failed"
    hook.unlink()
    git(project, "commit", "-qm", "by hand", "--", PROD)  # the advised command: the ignored file left out
    assert "**Git**: committed since, by hand" in render_status(lab.status())
    lab.close()


def test_outside_git_a_hooks_promotion_says_so_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: a project that is no repository got 'its git commit is being made in the
    background' and a recover process for nothing."""
    from meta_experiment import release
    from release_helpers import record_trials

    started = []
    monkeypatch.setattr(dispatch_ops, "commit_in_background", lambda lab: started.append(1) or True)
    plain = tmp_path / "plain"
    (plain / ".claude" / "commands").mkdir(parents=True)
    (plain / PROD).write_text("Review.\n")
    (plain / (PROD + ".experiment")).write_text("Review faster.\n")
    lab = Lab.open(plain)
    lab.commit_later, lab.actor = True, "hook"
    e = lab.create(**spec(files={PROD: PROD + ".experiment"}, sample_size_required=20, secondary_metrics=[]))
    record_trials(lab, e.id)
    result = release.promote(lab, e.id)
    assert result.git is not None and result.git.status == "not_a_repository"
    assert journal.unfinished_ids(lab.store) == [] and dispatch_ops._git_note(lab, e.id) == ""
    lab.close()


def test_an_alert_whose_rollback_waited_out_the_lock_is_rolled_back_at_the_next_run(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: the alert's rollback gave up on a busy deploy lock, and later runs never
    tried again: the failing variant was handed out for 107 more runs, until the whole sample."""
    from meta_experiment import monitoring

    monkeypatch.setattr(dispatch_ops, "HOOK_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(dispatch_ops, "commit_in_background", lambda lab: True)
    lab = Lab.open(project)
    lab.lock_wait = 0.2
    e = lab.create(**spec(sample_size_required=200, auto_rollback=True, secondary_metrics=[]))
    set_dispatch(lab, e.id, True)
    with deploy.deploy_lock(lab.state_dir):  # another process's promote holds the lock meanwhile
        for i in range(60):  # the treatment fails nearly every run: the error-rate alert, its rollback not done
            a = lab.assign(e.id)
            lab.record(a.trial_id, {"time_to_complete": 10.0}, success=a.arm == "control" or i % 10 == 0)
            if monitoring.alerts(lab, e.id, active_only=True):
                break
        assert monitoring.alerts(lab, e.id, active_only=True) and lab.get(e.id).status == "running"
    lab.close()
    hook = hook_lab(str(project))
    from meta_experiment import release

    tries = []
    stop_on_alert = release.stop_on_alert
    monkeypatch.setattr(release, "stop_on_alert", lambda *a, **k: tries.append(1) or stop_on_alert(*a, **k))
    with deploy.deploy_lock(hook.state_dir):  # still held at the next run
        on_prompt(hook, payload(session="x1", prompt_id="q1"))
        out = on_stop(hook, {"session_id": "x1", "prompt_id": "q1"})
        assert out is not None and "could not be done now" in out["systemMessage"]
        assert "has held the deploy lock" in out["systemMessage"]
        assert hook.get(e.id).status == "running"
        assert len(tries) == 1  # the run's record tried it: after_run does not wait on the lock a second time
    on_prompt(hook, payload(session="x2", prompt_id="q2"))
    out = on_stop(hook, {"session_id": "x2", "prompt_id": "q2"})
    assert out is not None and " rolled back: " in out["systemMessage"] and hook.get(e.id).status == "rolled_back"
    hook.close()


def test_a_relative_state_folder_is_looked_for_above_a_subfolder_too(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a review: with META_EXPERIMENT_HOME set, a subfolder's session was never served."""
    from test_plugin import PLUGIN, load_launcher

    launcher = load_launcher(PLUGIN)
    app = project / "packages" / "app"
    app.mkdir(parents=True)
    monkeypatch.setenv("META_EXPERIMENT_HOME", ".mx")  # relative: of the project's folder
    Lab.open(project).close()
    assert (project / ".mx" / "experiments.db").exists()
    lab = hook_lab(str(app))
    assert lab.project_root == project.resolve() and launcher.owning_project(str(app)) == str(project.resolve())
    lab.close()
    monkeypatch.setenv("META_EXPERIMENT_HOME", str(tmp_path / "shared"))  # absolute: no folder owns it
    lab = hook_lab(str(app))
    assert lab.project_root == app.resolve() and launcher.owning_project(str(app)) == str(app)
    lab.close()


def test_a_commit_by_hand_is_seen_with_line_end_normalising_and_an_unchanged_file(project: Path) -> None:
    """From a review: with `* text=auto` and CRLF files the content was hashed as on disk, not as
    git stores it, so the person's commit was never seen; a file the operation did not change (its
    variant the same) is in no later commit; and git's CRLF warnings were quoted as the reason."""
    from meta_experiment import release
    from meta_experiment.report import render_status
    from release_helpers import record_trials

    (project / ".gitattributes").write_text("* text=auto\n")
    (project / PROD).write_bytes(b"Review the PR.\r\n")
    (project / (PROD + ".experiment")).write_bytes(b"Review the PR in parallel.\r\n")
    (project / "same.md").write_text("Unchanged.\n")
    (project / "same.md.experiment").write_text("Unchanged.\n")
    git(project, "add", ".gitattributes", PROD, "same.md")
    git(project, "commit", "-qm", "crlf")
    lab = Lab.open(project)
    files = {PROD: PROD + ".experiment", "same.md": "same.md.experiment"}
    e = lab.create(**spec(files=files, sample_size_required=20, secondary_metrics=[]))
    record_trials(lab, e.id)
    hook = refusing_pre_commit(project)
    time.sleep(2.1)  # the check looks at commits since the operation (to the second)
    result = release.promote(lab, e.id)
    assert result.git is not None and result.git.status == "failed"
    assert result.git.detail.startswith("commit failed: lint failed.")  # not git's CRLF warning
    hook.unlink()
    git(project, "commit", "-qm", "by hand", "--", PROD)
    assert "**Git**: committed since, by hand" in render_status(lab.status())
    lab.close()
