"""Dispatchers in place of a slash command's file (see `dispatch`): put one in, take it out (by
hand, or when the experiment ends), and the two Claude Code hooks that run a dispatched command.

The original never leaves the state database: it is the experiment's control snapshot, and taking
the dispatcher out writes exactly those bytes back. Each step is one atomic rename under the deploy
lock, so a promote or rollback cannot interleave with it, and each is an event. Putting one in is
recorded before the file is written: a process killed between the two leaves the original in
place, and nothing at the end mistakes it for anything else.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from . import deploy, gitcommit, paths
from .dispatch import (
    CONTEXT_LIMIT,
    SKILL_FILE,
    agent_instructions,
    agent_name,
    agent_path,
    command_path,
    dispatch_problem,
    dispatcher_copies,
    dispatcher_experiment,
    dispatcher_text,
    label,
    parse_prompt,
    render,
    skill_name,
    skill_path,
    slash_name,
)
from .errors import Conflict, ExperimentError, InvalidInput, InvalidState, NotFound, PathError
from .files import atomic_write, backup_bytes
from .models import DURATION_UNITS, FileChange, MetricSpec, Strict, parse_iso

if TYPE_CHECKING:
    from .lifecycle import Lab
    from .models import Experiment, Trial

RUNS_DIR_NAME = "dispatched"  # <state>/dispatched/<session id>.json: the trial a session's command runs
STALE_RUN_SECONDS = 7 * 86400
# An agent launch whose end never came (denied, cancelled, Claude Code killed) leaves its note, and
# while any is pending every SubagentStop starts the package: those go after six hours.
STALE_AGENT_SECONDS = 6 * 3600
# A session started as a dispatched agent keeps the dispatcher as its system prompt when it is
# resumed, however much later: its note (`as-<session>.json`) stays as long as Claude Code keeps an
# idle session by default (cleanupPeriodDays: 30 days since its last activity), renewed at each start.
STALE_SESSION_SECONDS = 31 * 86400
# Claude Code kills a hook after 30 s (hooks.json): a hook waits this long for the database or for
# another process's promote or rollback, then leaves the work to the next run or to auto mode
HOOK_WAIT_SECONDS = 8.0
# Claude Code notices a changed command, skill or agent file a few seconds after the change (its
# file watcher: 2-5 s, measured in its terminal UI, CLI 2.1.332); until then a session open since
# before still runs the file it had. A run that soon after the dispatcher went in is not a trial:
# it gets production's text, which is right whichever file that session runs.
SETTLE_SECONDS = 10.0


class DispatchResult(Strict):
    """What the dispatch tool did."""

    experiment_id: str
    command: Annotated[
        str, Field(description="What is dispatched: a slash command (/review) or an agent (agent reviewer).")
    ]
    production: Annotated[str, Field(description="The command's file (relative to the project root).")]
    dispatching: Annotated[bool, Field(description="True when the file holds the dispatcher now.")]
    changed: Annotated[bool, Field(description="False when the file already was as asked.")]
    backup: Annotated[
        str | None,
        Field(description="Where an edited dispatcher was kept before the original was put back."),
    ] = None
    summary: str


def dispatcher_shas(lab: Lab, experiment_id: str) -> set[str]:
    """The digests of every dispatcher this experiment has put in place."""
    return {str(e.data.get("sha256")) for e in lab.events(experiment_id, kinds=["dispatcher_on"])}


def _command_file(experiment: Experiment) -> FileChange:
    if len(experiment.files) != 1:
        raise InvalidInput(
            f"{experiment.id} tests {len(experiment.files)} files; a dispatcher stands in for one slash command, so "
            "it needs an experiment on that command's file alone. Run this experiment's trials with assign."
        )
    return experiment.files[0]


def hook_lab(project: str | None) -> Lab:
    """The Lab a hook works with: it waits at most HOOK_WAIT_SECONDS for a lock, does not finish
    other processes' unfinished operations on opening (their git commits can take long; the next
    promote or rollback, or the server or CLI, does), and leaves the commit of a promote or
    rollback it makes to a background process (`commit_in_background`)."""
    from .lifecycle import Lab

    session_root = Path(project).resolve() if project else paths.find_session_folder()
    root = paths.owning_project(session_root)
    lab = Lab.open(
        root,
        actor="hook",
        recover=False,
        create=False,  # a prompt that is not ours creates nothing
        busy_timeout_ms=int(HOOK_WAIT_SECONDS * 1000),
    )
    lab.lock_wait = HOOK_WAIT_SECONDS
    lab.commit_later = True
    lab.session_root = session_root if session_root != lab.project_root else None
    return lab


def commit_in_background(lab: Lab) -> bool:
    """After a hook: when a promote or rollback it made left its git commit (phase applied), start
    `meta-experiment recover` detached, which takes the deploy lock and commits it with git's own
    hooks and no 30 s limit. Returns whether one was started."""
    import subprocess
    import sys
    import threading

    from . import journal

    if lab.empty_project or not any(
        journal.load(lab.store, i).phase == "applied" for i in journal.unfinished_ids(lab.store)
    ):
        return False
    command = [sys.executable, *(["-I"] if sys.flags.isolated else []), "-m", "meta_experiment"]
    command += ["--project", str(lab.project_root), "recover", "--announce"]
    detach: dict[str, Any] = (
        {"start_new_session": True}
        if os.name == "posix"
        else {
            "creationflags": getattr(subprocess, "DETACHED_PROCESS", 0)
            | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        }
    )
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=lab.project_root,
            close_fds=True,
            **detach,
        )
    except OSError:
        return False  # the next promote or rollback, or the next start of the server or CLI, commits it
    with suppress(OSError):  # until it holds the deploy lock, status counts its commit as being made
        (lab.state_dir / deploy.RECOVER_STARTED).touch()
    # reaped when it ends (a server lives on: no zombie, no "still running" warning when it is dropped)
    threading.Thread(target=process.wait, name="background-commit", daemon=True).start()
    return True


COMMIT_NOTICE = "commit-failed.json"  # in the runs folder: a background commit that failed, to be told


def recover_waiting(lab: Lab, *, announce: bool = False) -> list[str]:
    """`meta-experiment recover`: wait for the deploy lock, then finish or undo every operation left
    unfinished (a commit a hook left, an operation a killed process left). What was done, a line each.
    `announce` (the process a hook started): a commit that failed is noted for the person's next
    prompt or session (`take_commit_notice`), since the hook that started it has ended."""
    from .operations import recover_held

    with deploy.deploy_lock(lab.state_dir):
        notes = recover_held(lab, when="by meta-experiment recover")
    failed = [n.message for n in notes if n.git is not None and n.git.status == "failed"]
    if announce and failed:
        path = _runs_dir(lab) / COMMIT_NOTICE
        with suppress(OSError):
            earlier = _read(path).get("messages", []) if path.is_file() else []
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps({"messages": [*earlier, *failed][-5:]}).encode())
    return [n.message for n in notes]


def take_commit_notice(lab: Lab) -> str | None:
    """What a person is told at their next prompt or session start about a git commit a hook left
    to the background that failed (once: the note is removed; `status` keeps showing it)."""
    path = _runs_dir(lab) / COMMIT_NOTICE
    if lab.empty_project or not path.is_file():
        return None
    messages = [str(m) for m in _read(path).get("messages", [])]
    with suppress(OSError):
        path.unlink()
    if not messages:
        return None
    return (
        "meta-experiment: " + " ".join(messages) + " The files are changed; `meta-experiment status` shows whether "
        "the commit is still to be made."
    )


def _blob(lab: Lab, digest: str) -> bytes:
    content = lab.store.blob(digest)
    if content is None:
        raise InvalidState(f"The snapshot {digest[:12]} is missing from the state database; nothing was written.")
    return content


def set_dispatch(lab: Lab, experiment_id: str, on: bool) -> DispatchResult:
    """Put the dispatcher in place of the command's file (on) or the original back (off)."""
    lab.get(experiment_id)  # an unknown id is refused before the lock (whose file would make the state folder)
    with deploy.deploy_lock(lab.state_dir, wait=lab.lock_wait):
        experiment = lab.get(experiment_id)
        f = _command_file(experiment)
        what = label(f.production)
        if not on:
            backup = _lift(lab, experiment, f, why="Dispatching stopped by request")
            if backup is False:
                return _result(experiment, f, False, False, f"{what} was not dispatched; its file is unchanged.")
            lab.notify_changed(experiment_id)  # its status and events changed (subscribers hear it, as for on)
            if backup == RESTORED_MISSING:
                return _result(
                    experiment,
                    f,
                    False,
                    True,
                    f"{f.production} had been deleted while dispatched: the original is back in its place, and "
                    f"{what} runs as before. The experiment goes on: assign its trials, or dispatch again."
                    + _committed_note(lab, experiment_id, f.production),
                )
            kept = f" The dispatcher had been edited; that copy is kept at {backup}." if isinstance(backup, str) else ""
            kept += _committed_note(lab, experiment_id, f.production)
            return _result(
                experiment,
                f,
                False,
                True,
                f"Put the original {f.production} back; {what} runs as before. The experiment goes on: "
                f"assign its trials, or dispatch again.{kept}",
                backup=backup if isinstance(backup, str) else None,
            )
        if experiment.status != "running":
            raise InvalidState(
                f"{experiment_id} is {experiment.status}; only a running experiment can take over {what}."
            )
        control, treatment = _blob(lab, f.control_sha256), _blob(lab, f.treatment_sha256)
        problem = _refusal(lab, experiment, f, control.decode(), treatment.decode())
        if problem is not None:
            raise InvalidInput(problem)
        text = dispatcher_text(experiment_id, f.production, control.decode()).encode()
        current = deploy.read_current(lab.project_root, f.production)
        if current == text:
            return _result(experiment, f, True, False, f"{what} is dispatched already.")
        if current is None or deploy.sha256_hex(current) != f.control_sha256:
            raise Conflict(
                f"{f.production} is not what it was when {experiment_id} started, so the dispatcher would overwrite "
                "someone's change, and the arms would no longer be what production runs. Nothing was written. Put "
                "the file back as it was (the diff below), or start a new experiment on it as it is now.",
                diff=deploy.unified_diff(
                    f.production, control, current, before_label="at experiment start", after_label="now on disk"
                ),
            )
        digest = lab.store.put_blob(text)
        lab.event(
            experiment_id,
            "dispatcher_on",
            f"Dispatcher in place of {f.production}: each run of {what} is a trial",
            production=f.production,
            command=what,
            sha256=digest,
            at=lab.clock(),  # when it went in, by the experiment's clock (SETTLE_SECONDS)
        )
        _write(deploy.writable_path(lab.project_root, f.production), text)
    lab.notify_changed(experiment_id)
    runs = (
        f"each launch of {what} (by the model, as usual) runs one trial in the arm it is assigned; "
        if agent_name(f.production)
        else f"each run of {what} (typed, or by the model with its Skill tool) is one trial in the arm it is assigned; "
    ) + _who_records(experiment)
    return _result(
        experiment,
        f,
        True,
        True,
        f"{f.production} now holds a dispatcher: in Claude Code with the meta-experiment plugin, {runs}. The "
        f"original comes back byte for byte when the experiment ends, or with dispatch on=false (CLI: "
        f"`meta-experiment dispatch {experiment.id} --off`). Do not commit "
        "the dispatcher (git shows the file as modified meanwhile).",
    )


def _shadowed(lab: Lab, production: str) -> str | None:
    """Why a command's or skill's dispatcher would never run: a file of its name that Claude Code
    runs instead (a project skill before a command; the user's own skill, or for a command their
    own command too; see `personal_file`)."""
    name = slash_name(production)
    if name is None:
        return None
    what = "skill" if skill_name(production) else "command"
    if what == "skill":
        personal = personal_file(lab.project_root, name, skills_only=True)
    else:
        runs = _slash_file(lab, name)
        if runs == production:
            return None
        personal = personal_file(lab.project_root, name) if runs is None else None
    if personal is not None:
        kind = "skill" if personal.name == SKILL_FILE else "command"
        return (
            f"You have a personal {kind} named /{name} ({personal}), and Claude Code runs it instead of the "
            f"project's {what} when /{name} is typed, so the {what}'s dispatcher would never run for you. Rename "
            "or move your own one, or run the trials with assign."
        )
    if what == "skill":
        return None
    return (
        f"The project has a skill named like /{name} ({skill_path(name)}), and Claude Code runs the skill when "
        f"/{name} is typed, so the command's dispatcher would never run. Rename one of them, or run the trials "
        "with assign."
    )


def _refusal(lab: Lab, experiment: Experiment, f: FileChange, control: str, treatment: str) -> str | None:
    """Why `dispatch` refuses this experiment's file (its texts, a file of its name that Claude Code
    runs instead, guardrails no hook could measure), or None."""
    problem = dispatch_problem(f.production, control, treatment, duration=experiment.primary_metric.is_duration)
    plain = slash_name(f.production) is None and agent_name(f.production) is None  # not a command's own file
    links = _links_to(lab, f.production) if problem and plain else []
    if links:
        # the experiment was created through a command's symlink: it tests (and names) the target
        return (
            f"{', '.join(links)} {'leads' if len(links) == 1 else 'lead'} to {f.production} through a symlink, and "
            "this experiment tests that file; a dispatcher has to be written in the command's own file, not in a "
            f"file it links to. To dispatch, make {links[0]} a regular file in a real folder (a copy of "
            f"{f.production}), then create the experiment on it; or run this experiment's trials with assign."
        )
    return problem or _shadowed(lab, f.production) or _unmeasured(experiment, f.production)


def _links_to(lab: Lab, production: str) -> list[str]:
    """The project's command, skill and agent files that lead to `production` through a symlink
    (the file's own, or a folder's on the way)."""
    target = (lab.project_root / production).resolve()
    claude = lab.project_root / ".claude"
    found = []
    candidates: list[Path] = [*claude.glob("skills/*/SKILL.md"), *claude.glob("agents/*.md")]
    # commands nest in folders, which may be symlinks themselves (glob's ** does not follow them)
    for folder, subfolders, names in os.walk(claude / "commands", followlinks=True):
        depth = len(Path(folder).relative_to(claude).parts)
        subfolders[:] = subfolders if depth < 6 else []  # a link loop ends here
        candidates += [Path(folder, n) for n in names if n.endswith(".md")]
    for path in candidates:
        named = path.relative_to(lab.project_root).as_posix()
        try:
            if named != production and path.resolve() == target:
                found.append(named)
        except OSError:
            continue
    return sorted(found)


def _unmeasured(experiment: Experiment, production: str) -> str | None:
    """Why an agent's dispatcher could not give a promotion what it needs: the hooks measure an
    agent run's time only, and its guardrails would never have values (a command's or skill's run
    is asked to record them; see `_context`)."""
    if agent_name(production) is None or not experiment.secondary_metrics:
        return None
    names = ", ".join(m.name for m in experiment.secondary_metrics)
    return (
        f"The hooks measure only the time of a dispatched agent's run, so this experiment's guardrails ({names}) "
        "would never get a value and it could never be promoted. Run its trials with assign and record, or "
        "start an experiment without guardrails to dispatch."
    )


def dispatch_hint(lab: Lab, experiment: Experiment) -> str | None:
    """For a new experiment on one command, skill or agent that a dispatcher could stand in for:
    a note that `dispatch` makes each run of it a trial. None otherwise."""
    if len(experiment.files) != 1:
        return None
    f = experiment.files[0]
    control, treatment = lab.store.blob(f.control_sha256), lab.store.blob(f.treatment_sha256)
    if control is None or treatment is None or label(f.production) == f.production:
        return None
    try:
        if _refusal(lab, experiment, f, control.decode(), treatment.decode()) is not None:
            return None
    except UnicodeDecodeError:
        return None
    what = label(f.production)
    runs = f"each launch of {what}" if agent_name(f.production) else f"each run of {what}"
    return (
        f"{what} can be dispatched: the dispatch tool (or /meta-experiment:meta_experiment dispatch {experiment.id}) "
        f"puts a dispatcher in its file, and then {runs} in Claude Code is a trial that the plugin's hooks assign, "
        f"without assign calls; {_who_records(experiment)}."
    )


def _who_records(experiment: Experiment) -> str:
    """Which of a dispatched run's values the hooks record and which the model is asked for (the
    hooks measure time only; `_context` asks for the rest)."""
    primary, guardrails = experiment.primary_metric, experiment.secondary_metrics
    when = "at its end" if agent_name(experiment.files[0].production) else "when the reply ends"
    if primary.is_duration and not guardrails:
        return f"its time is recorded {when}"
    if primary.is_duration:
        return (
            f"its time is recorded {when}, and the model is asked to record {_measured(guardrails)} with the "
            "record tool (a hook cannot measure them)"
        )
    return (
        f"the model is asked to record {_measured([primary, *guardrails])} with the record tool (a hook measures "
        "time only)"
    )


def _result(
    experiment: Experiment, f: FileChange, dispatching: bool, changed: bool, summary: str, backup: str | None = None
) -> DispatchResult:
    return DispatchResult(
        experiment_id=experiment.id,
        command=label(f.production),
        production=f.production,
        dispatching=dispatching,
        changed=changed,
        backup=backup,
        summary=summary,
    )


# What _lift did when it found the command's file gone while dispatched: the original written back.
RESTORED_MISSING = "restored: the file was missing"


def dispatcher_in_place(lab: Lab, experiment_id: str) -> bool:
    """Whether this experiment's dispatcher was put in and not taken out since (by its events)."""
    last = lab.events(experiment_id, kinds=["dispatcher_on", "dispatcher_off"])
    return bool(last) and last[-1].kind == "dispatcher_on"


def _write(path: Path, data: bytes) -> None:
    """Replace the command's file, and remove any temp file a killed earlier write left beside it
    (it would stay in the commands folder, and a `git add .` commit it)."""
    deploy.replace_file(path, data)
    deploy.remove_stale_temps(path)


def _lift(lab: Lab, experiment: Experiment, f: FileChange, *, why: str) -> str | bool:
    """Put the original back where a dispatcher of this experiment is (the caller holds the deploy
    lock). False when there is none; True when it was taken out; the backup's path when the
    dispatcher had been edited (kept there first: nobody's edit is lost); RESTORED_MISSING when the
    file had been deleted while the dispatcher was in (the original's only copy may be the snapshot:
    it is written back, which overwrites nothing)."""
    current = deploy.read_current(lab.project_root, f.production)
    with suppress(OSError):  # a write killed half-way left a temp file, whatever happens next
        deploy.remove_stale_temps(deploy.writable_path(lab.project_root, f.production))
    if current is None and dispatcher_in_place(lab, experiment.id):
        original = _blob(lab, production_digest(experiment))
        path = deploy.writable_path(lab.project_root, f.production)
        path.parent.mkdir(parents=True, exist_ok=True)  # a skill's whole folder deleted, say
        _write(path, original)
        lab.event(
            experiment.id,
            "dispatcher_off",
            f"{why}: {f.production} had been deleted while dispatched; the original is back",
            production=f.production,
            was_missing=True,
        )
        return RESTORED_MISSING
    if current is None or dispatcher_experiment(current.decode("utf-8", "replace")) != experiment.id:
        return False
    backup: str | bool = True
    if deploy.sha256_hex(current) not in dispatcher_shas(lab, experiment.id):
        kept = backup_bytes(lab.state_dir, current)
        backup = kept.relative_to(lab.project_root).as_posix() if kept.is_relative_to(lab.project_root) else str(kept)
    original = _blob(lab, production_digest(experiment))
    _write(deploy.writable_path(lab.project_root, f.production), original)
    lab.event(
        experiment.id,
        "dispatcher_off",
        f"{why}: the original {f.production} is back"
        + (f" (the dispatcher had been edited; that copy is kept at {backup})" if isinstance(backup, str) else ""),
        production=f.production,
        **({"edited_dispatcher_backup": backup} if isinstance(backup, str) else {}),
    )
    return backup


def dispatched_file(lab: Lab, experiment: Experiment) -> str | None:
    """The production file that holds `experiment`'s dispatcher now (what ending it takes out), else None."""
    if len(experiment.files) != 1 or not dispatcher_shas(lab, experiment.id):
        return None
    production = experiment.files[0].production
    try:
        current = deploy.read_current(lab.project_root, production)
    except (PathError, OSError):
        return None
    held = current is not None and dispatcher_experiment(current.decode("utf-8", "replace")) == experiment.id
    return production if held else None


def _copies_note(lab: Lab, experiment_id: str, production: str) -> str:
    """What lift_for_end adds about copies of the dispatcher elsewhere (none: nothing)."""
    copies = dispatcher_copies(lab.project_root, experiment_id, production)
    if not copies:
        return ""
    now = "the promoted text" if lab.get(experiment_id).status == "promoted" else "the original"
    return (
        f" {', '.join(copies)} still {'holds' if len(copies) == 1 else 'hold'} a copy of this experiment's dispatcher "
        f"(moved or copied from {production} while it was dispatched), which has no text of its own: put the "
        f"command's text there ({production} holds {now} now) or delete it."
    )


def lift_for_end(lab: Lab, experiment_id: str, why: str) -> str | None:
    """Before a promote, rollback or expiry, under the deploy lock the caller holds (so that no
    dispatch can come between): take this experiment's dispatcher out, if any. Returns a note for
    the result (None when there was nothing to do). A file that cannot be read (a folder replaced
    by a link) does not stop the experiment from ending: the note says so."""
    experiment = lab.get(experiment_id)
    if len(experiment.files) != 1 or not dispatcher_shas(lab, experiment_id):
        return None
    f = experiment.files[0]
    try:
        done = _lift(lab, experiment, f, why=why)
    except (PathError, OSError) as exc:
        return f"{f.production} could not be checked for this experiment's dispatcher ({exc}); look at it."
    copies = _copies_note(lab, experiment_id, f.production)
    if done is False:
        return copies.strip() or None
    committed = "" if why == "Promoting" else _committed_note(lab, experiment_id, f.production)  # (promote commits)
    if done == RESTORED_MISSING:
        return (
            f"{f.production} had been deleted while dispatched: the original is back in its place." + committed + copies
        )
    note = (  # (a promotion writes the variant right after: 'the original is back' read as its result)
        f"The dispatcher in {f.production} was taken out (the original put back) before the promotion"
        if why == "Promoting"
        else f"The dispatcher in {f.production} was taken out: the original is back"
    )
    edited = f" (the dispatcher had been edited; that copy is kept at {done})." if isinstance(done, str) else "."
    return note + edited + committed + copies


def _committed_note(lab: Lab, experiment_id: str, production: str) -> str:
    """When the dispatcher just taken out had been committed (HEAD holds it): the original, back in
    the working tree, is still to be committed, or every clone gets the dispatcher (a rollback had
    said 'nothing to commit', from a review). The commit is the person's: the line that makes it."""
    head = gitcommit.head_bytes(lab.project_root, production)
    if head is None or dispatcher_experiment(head.decode("utf-8", "replace")) != experiment_id:
        return ""
    subject = f"Put back {production} (meta-experiment dispatcher)"
    line = gitcommit.manual_commit(lab.project_root, [production], subject)
    return (
        f" {HEAD_HOLDS} {production}), so the original is not committed yet: commit it, or every clone runs the "
        f"dispatcher: {line}"
    )


HEAD_HOLDS = "The dispatcher had been committed (HEAD holds it in"


# -- the hooks -----------------------------------------------------------------------------------------


def _session_file(lab: Lab, payload: dict[str, Any]) -> Path | None:
    session = str(payload.get("session_id") or "")
    if not re.fullmatch(r"[\w-]{1,128}", session):
        return None
    return lab.state_dir / RUNS_DIR_NAME / f"{session}.json"


def on_prompt(lab: Lab, payload: dict[str, Any]) -> dict[str, Any] | None:
    """UserPromptSubmit: `/name args` of a dispatched command assigns a trial and returns the hook
    output that hands the model the assigned arm's text. None for any other prompt."""
    parsed = parse_prompt(str(payload.get("prompt") or ""))
    if parsed is None:
        return None
    return _hand_over(lab, *parsed, payload, "UserPromptSubmit")


def on_skill(lab: Lab, payload: dict[str, Any]) -> dict[str, Any] | None:
    """PostToolUse of the Skill tool: the model ran a dispatched command itself (Claude Code lists
    commands as skills). As for a typed one: a trial, and the arm's text right after the
    dispatcher's (the run ends at the Stop of the reply)."""
    tool_input = payload.get("tool_input")
    if not isinstance(tool_input, dict):
        return None
    name = str(tool_input.get("skill") or "").removeprefix("/")
    return _hand_over(lab, name, str(tool_input.get("args") or ""), payload, "PostToolUse")


def _dispatched(lab: Lab, production: str | None) -> Experiment | None:
    """The experiment whose dispatcher `production` holds (any status), None when it holds none."""
    current = deploy.read_current(lab.project_root, production) if production else None
    experiment_id = dispatcher_experiment(current.decode("utf-8", "replace")) if current else None
    if experiment_id is None or not lab.has_database():
        return None
    try:
        experiment = lab.get(experiment_id)
    except NotFound:
        return None
    return experiment if [f.production for f in experiment.files] == [production] else None


def _copy_of_dispatcher(lab: Lab, production: str, experiment: Experiment, text_of: Callable[[str], str]) -> str:
    """What the model is told when `production` holds a copy of the dispatcher of an experiment on
    another file (the command renamed or copied while dispatched): what the person can do about it,
    and the text of the tested command as production has it (no trial), to go on with."""
    [tested] = [f.production for f in experiment.files] or [""]
    running = experiment.status == "running"
    missing = deploy.read_current(lab.project_root, tested) is None if tested else False
    moved = f"it looks moved from {tested}, which is missing now" if missing else f"it was copied from {tested}"
    fix = (
        f"move it back to {tested} while the experiment runs, or end the dispatch (`meta-experiment dispatch "
        f"{experiment.id} --off` writes the original text back to {tested}) and then rename that file"
        if running and missing
        else f"put this command's own text in it ({tested} holds "
        + ("the original" if experiment.status != "promoted" else "the promoted text")
        + f"{'' if running else ' now'}) or delete it"
    )
    digest = experiment.files[0].control_sha256 if running else production_digest(experiment)
    told = (
        f"meta-experiment: {production} holds a copy of the dispatcher of experiment {experiment.id} "
        f"({experiment.status}), which tests {tested}: {moved}. This run is not a trial. Tell the person, who can "
        f"{fix}."
    )
    context = f"{told} Meanwhile, follow the text of {tested} as production has it:\n\n" + _wrapped(text_of(digest))
    return context if len(context) <= CONTEXT_LIMIT else f"{told} Meanwhile, follow the text of {tested}."


def _orphan(lab: Lab, production: str | None, text_of: Callable[[str], str]) -> str | None:
    """Where `_dispatched` found no experiment: what to tell the model when `production` still holds
    a dispatcher, of an experiment this project's database does not have on that file (committed by
    mistake and pulled elsewhere, the database removed, a copy): there is no text to hand over, so
    say where the original is. None when it holds no dispatcher."""
    current = deploy.read_current(lab.project_root, production) if production else None
    experiment_id = dispatcher_experiment(current.decode("utf-8", "replace")) if current else None
    if experiment_id is None:
        return None
    try:
        tested = [f.production for f in lab.get(experiment_id).files] if lab.has_database() else None
    except NotFound:
        tested = None
    if tested is not None and production is not None:  # a copy of another file's dispatcher
        return _copy_of_dispatcher(lab, production, lab.get(experiment_id), text_of)
    return (
        f"meta-experiment: {production} holds a dispatcher of experiment {experiment_id}, which this project's "
        "experiment database does not have, so no hook can hand over its text. If meta-experiment's assign tool "
        f"knows {experiment_id} (a server with another state folder), follow the file's own instructions. "
        "Otherwise the dispatcher was probably committed by mistake (or the database was removed): tell the "
        f"person, and offer to restore the file from git as it was before the dispatcher (git log -p -- "
        f"{production}); meanwhile do what they asked as best you can without it."
    )


def personal_dir() -> Path | None:
    """The user's own Claude Code folder, where their personal skills and commands are: the
    CLAUDE_CONFIG_DIR Claude Code runs with, or ~/.claude. None when there is no home to find."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    try:
        return Path.home() / ".claude"
    except RuntimeError:
        return None


def personal_file(project_root: Path, name: str, *, skills_only: bool = False) -> Path | None:
    """The user's own skill (or, unless `skills_only`, command) that Claude Code runs for `/name`
    instead of the project's file. Seen in its CLI: a personal skill wins over the project's skill
    and command of that name, and a personal command over the project's command (a project skill
    wins over a personal command). A personal skill answers here to its folder's name only. None
    when the personal folder is the project's own `.claude` (a project in the home folder)."""
    home = personal_dir()
    if home is None:
        return None
    with suppress(OSError):
        if home.resolve() == (project_root / ".claude").resolve():
            return None
    skill, command = skill_path(name), command_path(name)
    candidates = [home / skill.removeprefix(".claude/")] if skill else []
    if command and not skills_only:
        candidates.append(home / command.removeprefix(".claude/"))
    for candidate in candidates:
        with suppress(OSError):
            if candidate.is_file():
                return candidate
    return None


def _session_own(lab: Lab, production: str) -> bool:
    """Whether a session started in a subfolder has its own file at `production` (relative to that
    folder): that one runs there, not the project's (see hook_lab)."""
    return lab.session_root is not None and (lab.session_root / production).exists()


def _slash_file(lab: Lab, name: str) -> str | None:
    """The project file `/name` runs, in Claude Code's order: a skill of that name wins over a
    command. None when the user's own skill or command of that name runs instead (`personal_file`)."""
    skill = skill_path(name)
    command = command_path(name)
    if any(_session_own(lab, p) for p in (skill, command) if p is not None):  # its own runs there
        return None
    if skill is not None and (lab.project_root / skill).exists():
        return None if personal_file(lab.project_root, name, skills_only=True) else skill
    return None if personal_file(lab.project_root, name) else command


def _hand_over(lab: Lab, name: str, arguments: str, payload: dict[str, Any], event: str) -> dict[str, Any] | None:
    production = _slash_file(lab, name)
    experiment = _dispatched(lab, production)
    session = str(payload.get("session_id") or "")
    skill_dir = str(lab.project_root / production.rsplit("/", 1)[0]) if production and skill_name(production) else None

    def arm_text(digest: str) -> str:
        return render(_blob(lab, digest).decode(), arguments, session, skill_dir)

    if experiment is None or production is None:
        orphan = _orphan(lab, production, arm_text)
        if orphan is None:
            return None
        return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": orphan}}
    experiment_id = experiment.id

    if experiment.status != "running":  # ended without taking it out (a crash, an older version): do it now
        set_dispatch(lab, experiment_id, False)
        context = (
            f"meta-experiment: experiment {experiment_id} on /{name} has ended ({experiment.status}), so the "
            f"command's own file ({production}) was put back just now. Its text for this run:\n\n"
            + _wrapped(arm_text(production_digest(experiment)))
        )
        return _handed(event, context, name, production)
    if _settling(lab, experiment_id):
        context = (
            f"meta-experiment: /{name} was put under an A/B test (experiment {experiment_id}) moments ago, and "
            "a session open since before may still run its previous file, so this run is not a trial: it runs "
            f"the command as it is in production. Follow this text as the instructions of /{name}.\n\n"
            + _wrapped(arm_text(experiment.files[0].control_sha256))
        )
        return _handed(event, context, name, production)
    # Both arms' contexts are built before the assignment: when either would be too long for Claude
    # Code to pass whole, neither is handed over (whichever arm came up), and the dispatcher's own
    # text sends the model to assign.
    f = experiment.files[0]
    texts = {
        arm: arm_text(digest) for arm, digest in (("control", f.control_sha256), ("treatment", f.treatment_sha256))
    }
    if max(len(_context(name, experiment, 10**12, text)) for text in texts.values()) > CONTEXT_LIMIT:
        return _handed(event, "", name, production)
    # The session is the unit: a second run in one conversation sees the first one's text, so runs of
    # one session stay in one arm (and count as one unit in the analysis), as assign's `unit` does.
    runs = _session_file(lab, payload)
    if runs is not None:  # the run's note is written after the assignment: its folder is checked first
        _writable_runs_folder(runs.parent)
        same = _same_reply_trial(lab, runs, experiment_id, payload)
        if same is not None:  # run again in the same reply (two Skill calls): one reply, one trial
            return {
                "hookSpecificOutput": {
                    "hookEventName": event,
                    "additionalContext": _context(name, experiment, same.trial_id, texts[same.arm]),
                }
            }
    assignment = lab.assign(experiment_id, unit=f"session {session[:180]}" if session else None)
    if runs is not None:
        stash = {
            "trial_id": assignment.trial_id,
            "experiment_id": experiment_id,
            "command": f"/{name}",
            "prompt_id": payload.get("prompt_id"),
        }
        # the runs of other experiments in this same reply (a dispatched command that runs a dispatched
        # skill) stay: the Stop records each (one note a session had lost the first run, from a review)
        prompt_id = payload.get("prompt_id")
        same_reply = [n for n in _notes(runs) if prompt_id and n.get("prompt_id") == prompt_id]
        runs.write_text(json.dumps({"runs": [*same_reply, stash]}))
    context = _context(name, experiment, assignment.trial_id, texts[assignment.arm])
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": context}}


def _same_reply_trial(lab: Lab, runs: Path, experiment_id: str, payload: dict[str, Any]) -> Trial | None:
    """The trial of this experiment the session's note names, still unrecorded, when the note is
    from this same prompt: a second run in one reply (the Skill tool called twice) is the same trial,
    timed from the first run to the reply's end, instead of a new one that would orphan the first."""
    prompt_id = payload.get("prompt_id")
    if not prompt_id:
        return None
    for note in reversed(_notes(runs)):  # the newest first; one recorded already (a failed run) is passed over
        if note.get("prompt_id") != prompt_id or note.get("experiment_id") != experiment_id:
            continue
        try:
            trial = lab.trial(int(note["trial_id"]))
        except (ValueError, KeyError, TypeError, NotFound):
            continue
        if trial.status == "assigned":
            return trial
    return None


def _notes(runs: Path) -> list[dict[str, Any]]:
    """The session's dispatched runs: {"runs": [...]}, or one run (a note of an earlier version)."""
    try:
        data = json.loads(runs.read_text())
    except (OSError, ValueError):
        return []
    notes = data.get("runs") if isinstance(data, dict) and "runs" in data else [data]
    return [n for n in notes if isinstance(n, dict)] if isinstance(notes, list) else []


def _writable_runs_folder(folder: Path) -> None:
    """Make the folder of the runs' notes (and clear old notes), or say why it cannot be, before a
    trial is assigned: a trial without its note is never recorded."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise InvalidState(
            f"cannot write the runs' notes in {str(folder)!r} ({reason}), so no trial was assigned for this run: "
            "make that folder (in the state folder) writable, or move aside a file of that name"
        ) from None
    _remove_stale_runs(folder)


def _handed(event: str, context: str, name: str, production: str) -> dict[str, Any]:
    """The hook's output handing `context` over; one too long for Claude Code to pass whole (an
    empty `context` says so too) is replaced by a pointer to the dispatcher's own instructions."""
    if not context or len(context) > CONTEXT_LIMIT:
        context = (
            f"meta-experiment: the text of /{name} for this run, with these arguments, is too long for a hook to "
            "hand over, so no trial was assigned here: follow the instructions in the command's file for that "
            f"case ({production}: call assign and use the text it returns, or, if the experiment has ended, "
            "follow the file itself)."
        )
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": context}}


def production_digest(experiment: Experiment) -> str:
    """The snapshot production holds once `experiment` has ended: the variant after a promotion,
    else the original."""
    f = experiment.files[0]
    return f.treatment_sha256 if experiment.status == "promoted" else f.control_sha256


def _settling(lab: Lab, experiment_id: str) -> bool:
    """Whether the dispatcher went in less than SETTLE_SECONDS ago, by the experiment's clock at
    its dispatcher_on event: not the file's time, which an editor, git or a copy can change."""
    put_in = []
    for event in lab.events(experiment_id, kinds=["dispatcher_on"]):
        at = event.data.get("at")
        put_in.append(float(at) if isinstance(at, (int, float)) else parse_iso(event.at))
    return bool(put_in) and abs(lab.clock() - max(put_in)) < SETTLE_SECONDS


def _measured(metrics: list[MetricSpec]) -> str:
    """'a, b (what b is) and c': the metrics a run's record call carries."""
    named = [m.name + (f" ({m.description})" if m.description else "") for m in metrics]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _context(name: str, experiment: Experiment, trial_id: int, text: str) -> str:
    """What the model is handed for one run: the arm's text (not which arm it is), and what to
    record: the guardrails too, which no hook can measure (a promotion needs them in both arms)."""
    primary, guardrails = experiment.primary_metric, experiment.secondary_metrics
    if primary.is_duration and not guardrails:
        record = (
            f"Its time is recorded when your reply ends. If the run fails, call meta-experiment's record tool with "
            f"trial_id {trial_id} and success=false before you finish."
        )
    elif primary.is_duration:
        record = (
            f"Just before you finish, call meta-experiment's record tool with trial_id {trial_id} and the measured "
            f"{_measured(guardrails)} (its time is filled in from the run; success=false if the run failed)."
        )
    else:
        record = (
            f"When you are done, call meta-experiment's record tool with trial_id {trial_id} and the "
            f"measured {_measured([primary, *guardrails])} (or success=false if the run failed)."
        )
    what = "skill" if skill_name(experiment.files[0].production) else "command"
    return (
        f"meta-experiment: the text of /{name} for this run (trial {trial_id} of experiment "
        f"{experiment.id}). Follow it as the instructions of /{name}; the {what}'s file holds a dispatcher "
        f"while the experiment runs. {record}\n\n{_wrapped(text)}"
    )


def _wrapped(text: str) -> str:
    """The command's text as Claude Code would have sent it, byte for byte, between tags."""
    end = "" if text.endswith("\n") else "\n"
    return f"<command-text>\n{text}{end}</command-text>"


def on_stop(lab: Lab, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Stop: record the time of each of the session's dispatched runs when their reply ends (a
    duration primary metric), or ask the model once to record them (any other metric). Once a run
    is recorded and its experiment has its sample (or is past its time), auto mode's decision for
    it follows, as the experiment's auto flags allow (`after_run`)."""
    runs = _session_file(lab, payload)
    if runs is None or not runs.is_file():
        return None
    asks: list[tuple[dict[str, Any], str]] = []  # the runs the model is asked to record, and how
    said: list[str] = []
    for run in _notes(runs):
        try:
            trial = lab.trial(int(run["trial_id"]))
        except (ValueError, KeyError, TypeError, NotFound):
            continue
        out = None
        if trial.status == "assigned":
            if run.get("prompt_id") and payload.get("prompt_id") and run["prompt_id"] != payload["prompt_id"]:
                # the end of another prompt's reply: the dispatched run was interrupted (Esc, an API error;
                # no Stop then), and its time is unknown. It stays unrecorded (abandoned when the experiment ends).
                continue
            experiment = lab.get(trial.experiment_id)
            if not experiment.primary_metric.is_duration:
                if not payload.get("stop_hook_active"):  # asked once already: leave the trial unrecorded
                    asks.append(
                        (
                            run,
                            f"trial {trial.trial_id} ({run.get('command', 'the command')}) is not recorded. Call "
                            f"meta-experiment's record tool with trial_id {trial.trial_id} and the measured "
                            f"{_measured([experiment.primary_metric, *experiment.secondary_metrics])} (or "
                            "success=false if the run failed)",
                        )
                    )
                continue
            out = _recorded_run(lab, trial.trial_id, {})
        elif trial.status == "recorded":  # recorded by the model when asked at the last Stop
            out = after_run(lab, trial.experiment_id, recorded_at=trial.recorded_at)
        if out is not None:
            said.append(out["systemMessage"])
    if not asks:
        runs.unlink(missing_ok=True)
        return {"systemMessage": "\n".join(said)} if said else None
    runs.write_text(json.dumps({"runs": [run for run, _ in asks]}))  # for the Stop after the record calls
    told = {"systemMessage": "\n".join(said)} if said else {}
    reason = "meta-experiment: " + "; ".join(ask for _, ask in asks) + ", then finish."
    return {"decision": "block", "reason": reason, **told}


def _recorded_run(lab: Lab, trial_id: int, values: dict[str, float]) -> dict[str, Any] | None:
    """Record a dispatched run (its monitoring may roll the experiment back), then auto mode for it
    (`after_run`); when recording tried the alert's rollback and could not do it, say so without
    trying again at once (one lock wait per hook, not two)."""
    from . import monitoring

    try:
        alerts = lab.record(trial_id, values, success=True).alerts
    except ExperimentError:  # the experiment ended meanwhile: nothing to record
        alerts = []
    trial = lab.trial(trial_id)
    if trial.status != "recorded":
        return None
    if (blocked := monitoring.rollback_blocked(alerts)) is not None:
        return _rollback_not_done(lab.get(trial.experiment_id), blocked)
    return after_run(lab, trial.experiment_id, recorded_at=trial.recorded_at)


def after_run(lab: Lab, experiment_id: str, recorded_at: str | None = None) -> dict[str, Any] | None:
    """Auto mode for one experiment after a dispatched run, once there is something to decide: the
    sample size reached (the policy says continue before that, and the analysis is not loaded for
    nothing) or the experiment past its time. The always-valid test keeps this re-analysis after
    every run honest. A promotion or rollback is shown to the person (systemMessage)."""
    from . import auto

    experiment = lab.get(experiment_id)
    if experiment.status != "running":  # ended by the recording itself (a monitoring alert): say so
        ended_now = experiment.ended_at is not None and recorded_at is not None and experiment.ended_at >= recorded_at
        return _ended(lab, experiment, experiment.status, experiment.status_reason or "") if ended_now else None
    from . import monitoring

    started = lab.definition(experiment_id).started_at
    past_time = started is not None and lab.clock() - started >= experiment.max_duration_days * 86400
    # an alert whose rollback could not be done when it was raised (another process held the deploy
    # lock) is retried at every run, before the sample too: the variant must not go on being handed out
    alerted = experiment.auto_rollback and bool(monitoring.alerts(lab, experiment_id, active_only=True))
    if lab.progress(experiment).trials_needed > 0 and not past_time and not alerted:
        return None
    item = auto.decide_one(lab, experiment)
    if item.action not in ("promoted", "rolled_back", "expired"):
        if alerted and item.action == "skipped":
            return _rollback_not_done(experiment, item.rationale.split("Not done: ")[-1])
        return None
    return _ended(lab, experiment, item.action, item.rationale)


def _rollback_not_done(experiment: Experiment, why: str) -> dict[str, Any]:
    return {
        "systemMessage": f"meta-experiment: {experiment.id} ({experiment.name}) has an active monitoring "
        f"alert, and its automatic rollback could not be done now ({why.rstrip('.')}); the next run tries "
        "again, or roll it back yourself."
    }


def _ended(lab: Lab, experiment: Experiment, how: str, why: str) -> dict[str, Any]:
    done = how.replace("_", " ")
    if why.lower().startswith(done):  # a status reason: "Rolled back (auto): ..."
        why = why.split(": ", 1)[-1]
    what = label(experiment.files[0].production) if len(experiment.files) == 1 else None
    now = "" if what is None else f" {what} now runs " + ("the variant." if how == "promoted" else "its original text.")
    notes = ""
    if len(experiment.files) == 1 and how != "promoted":  # what the person has to do about the dispatcher
        production = experiment.files[0].production
        notes = _committed_note(lab, experiment.id, production) + _copies_note(lab, experiment.id, production)
    return {
        "systemMessage": f"meta-experiment: {experiment.id} ({experiment.name}) {done}: {why.rstrip('.')}.{now}"
        + notes
        + _git_note(lab, experiment.id)
    }


def _git_note(lab: Lab, experiment_id: str) -> str:
    """What becomes of the git commit of the promote or rollback that just ended the experiment: a
    hook leaves it pending (operations.execute), for `meta-experiment recover` to make; outside a
    repository there is none to mention."""
    from . import journal

    op = journal.latest(lab.store, experiment_id)
    if op is None or op.phase != "applied":
        return ""
    return (
        " Its git commit is being made in the background: `meta-experiment status` shows whether it went "
        "through (a commit hook may refuse it) and what to run if not."
    )


def _remove_stale_runs(folder: Path) -> None:
    """Sessions that ended without a Stop (killed) leave their file: remove those older than a
    week, an agent launch's notes older than six hours, and notes of sessions started as an agent
    idle for longer than Claude Code keeps a session."""
    now = time.time()
    for old in folder.glob("*.json"):
        if old.name.startswith(("call-", "agent-", "stopped-")):
            kept = STALE_AGENT_SECONDS
        else:
            kept = STALE_SESSION_SECONDS if old.name.startswith("as-") else STALE_RUN_SECONDS
        with suppress(OSError):
            if old.stat().st_mtime < now - kept:
                old.unlink()


# -- dispatched agents: launched by the model with the Agent tool ---------------------------------------
#
# PreToolUse (Agent) assigns the trial and puts the arm's instructions at the start of the task;
# the agent's file (the dispatcher) tells it to follow them. The run ends at SubagentStop (a
# background agent) or PostToolUse (an agent that ran to its end inside the call). Claude Code may
# send those two in either order, so each leaves a note for the other: PostToolUse of a background
# launch names the agent id (`agent-<id>`), and a SubagentStop that comes first leaves its time
# (`stopped-<id>`).


def _runs_dir(lab: Lab) -> Path:
    return lab.state_dir / RUNS_DIR_NAME


def _key(value: object) -> str | None:
    text = str(value or "")
    return text if re.fullmatch(r"[\w-]{1,128}", text) else None


def on_agent_start(lab: Lab, payload: dict[str, Any]) -> dict[str, Any] | None:
    """PreToolUse of the Agent tool: a dispatched agent's launch assigns a trial and returns the
    tool input with that arm's instructions at the start of the task."""
    tool_input = payload.get("tool_input")
    call = _key(payload.get("tool_use_id"))
    if not isinstance(tool_input, dict) or call is None:
        return None
    agent = str(tool_input.get("subagent_type") or "")
    production = agent_path(agent)
    if production is None or _session_own(lab, production):
        return None
    experiment = _dispatched(lab, production)
    task = str(tool_input.get("prompt") or "")
    if experiment is None:
        orphan = _orphan(lab, production, lambda digest: agent_instructions(_blob(lab, digest).decode()))
        if orphan is None:
            return None
        updated = {**tool_input, "prompt": f"{orphan}\n\n{task}"}
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "updatedInput": updated}}
    if experiment.status != "running":  # ended without taking it out (a crash, an older version): do it now
        set_dispatch(lab, experiment.id, False)
        text = _blob(lab, production_digest(experiment)).decode()
    elif _settling(lab, experiment.id):  # see SETTLE_SECONDS: production's instructions, not a trial
        text = _blob(lab, experiment.files[0].control_sha256).decode()
    else:
        session = str(payload.get("session_id") or "")
        folder = _runs_dir(lab)
        _writable_runs_folder(folder)
        assignment = lab.assign(experiment.id, unit=f"session {session[:180]}" if session else None)
        note = {"trial_id": assignment.trial_id, "started": lab.clock(), "agent": agent, "session": session}
        (folder / f"call-{call}.json").write_text(json.dumps(note))
        text = assignment.files[0].content
    updated = {
        **tool_input,
        "prompt": f"<agent-instructions>\n{agent_instructions(text)}\n</agent-instructions>\n\n{task}",
    }
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "updatedInput": updated}}


def on_session_start(lab: Lab, payload: dict[str, Any]) -> dict[str, Any] | None:
    """SessionStart of a session started as a dispatched agent (`claude --agent NAME`, or the
    `agent` setting): the agent's system prompt is then the dispatcher, and no launch brings it an
    arm's instructions. Such a session is not a trial (its runs have no launch and no end to time):
    it gets the agent's production instructions, so it runs as it did before the experiment.

    Claude Code keeps a session's system prompt from its first start: resumed or compacted later,
    even after the experiment ended, the session still runs the dispatcher. A note of the session
    (`as-<session id>.json`) finds it then, with or without `--agent` given again, and it gets what
    production holds at that time."""
    session = _key(payload.get("session_id"))
    handed = _runs_dir(lab) / f"as-{session}.json" if session else None
    note = _read(handed) if handed is not None and handed.is_file() else {}
    agent = str(payload.get("agent_type") or note.get("agent") or "")
    production = agent_path(agent)
    if production is None or _session_own(lab, production):
        return None
    experiment = _dispatched(lab, production)
    if experiment is None:
        orphan = _orphan(lab, production, lambda digest: agent_instructions(_blob(lab, digest).decode()))
        if orphan is not None or not note:
            return None if orphan is None else _session_context(orphan)
        try:
            experiment = lab.get(str(note.get("experiment_id")))
        except (NotFound, ExperimentError):
            return None
        if handed is not None:  # renewed: kept while the session is in use
            with suppress(OSError):
                os.utime(handed)
        why = (
            f"meta-experiment: this session runs as agent {agent}. It started while experiment {experiment.id} "
            f"tested two versions of the agent's instructions, and the agent's file no longer holds that "
            f"experiment's dispatcher (the experiment is {experiment.status})."
        )
    elif experiment.status != "running":  # ended without taking it out (a crash, an older version): do it now
        set_dispatch(lab, experiment.id, False)
        why = (
            f"meta-experiment: this session runs as agent {agent}, whose file held a dispatcher of experiment "
            f"{experiment.id}, which has ended ({experiment.status}); the agent's own file is back now."
        )
    else:
        why = (
            f"meta-experiment: this session runs as agent {agent}, whose file holds a dispatcher while experiment "
            f"{experiment.id} tests two versions of its instructions. A session started as the agent is not one "
            "of the experiment's trials."
        )
        if handed is not None:  # found at the session's later starts (resumed, compacted)
            handed.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_runs(handed.parent)
            handed.write_text(json.dumps({"experiment_id": experiment.id, "agent": agent}))
    instructions = agent_instructions(_blob(lab, production_digest(experiment)).decode())
    return _session_context(
        f"{why} These are the agent's instructions as they are in production now. Follow them as your own "
        "instructions for the whole session, in place of any given earlier.\n\n"
        f"<agent-instructions>\n{instructions}\n</agent-instructions>"
    )


def _session_context(context: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": context}}


def on_agent_end(lab: Lab, payload: dict[str, Any]) -> dict[str, Any] | None:
    """PostToolUse of the Agent tool: the end of an agent that ran inside the call, or the launch
    of a background one (then its SubagentStop ends the run, or has already)."""
    call = _key(payload.get("tool_use_id"))
    path = _runs_dir(lab) / f"call-{call}.json" if call else None
    if path is None or not path.is_file():
        return None
    response = payload.get("tool_response")
    agent_id = _key(response.get("agentId")) if isinstance(response, dict) else None
    if agent_id is not None and isinstance(response, dict) and response.get("status") == "async_launched":
        stopped = _runs_dir(lab) / f"stopped-{agent_id}.json"
        if not stopped.is_file():
            (_runs_dir(lab) / f"agent-{agent_id}.json").write_text(json.dumps({"call": call}))
            return None
        ended = _read(stopped).get("at")
        stopped.unlink(missing_ok=True)
        return _agent_ran(lab, path, ended if isinstance(ended, (int, float)) else None)
    return _agent_ran(lab, path, None)


def on_agent_stop(lab: Lab, payload: dict[str, Any]) -> dict[str, Any] | None:
    """SubagentStop: the end of a background agent's run."""
    agent_id = _key(payload.get("agent_id"))
    if agent_id is None:
        return None
    folder = _runs_dir(lab)
    named = folder / f"agent-{agent_id}.json"
    if named.is_file():
        call = _key(_read(named).get("call"))
        named.unlink(missing_ok=True)
        return _agent_ran(lab, folder / f"call-{call}.json", None) if call else None
    agent = str(payload.get("agent_type") or "")
    session = str(payload.get("session_id") or "")
    pending = [p for p in folder.glob("call-*.json")] if folder.is_dir() else []
    if any(_read(p).get("agent") == agent and _read(p).get("session") == session for p in pending):
        # before the launch's PostToolUse: keep the time for it
        (folder / f"stopped-{agent_id}.json").write_text(json.dumps({"at": lab.clock()}))
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _agent_ran(lab: Lab, call: Path, ended: float | None) -> dict[str, Any] | None:
    """Record a dispatched agent's run: its time from launch to `ended` (now when None)."""
    note = _read(call)
    call.unlink(missing_ok=True)
    started = note.get("started")
    try:
        trial = lab.trial(int(note["trial_id"]))
    except (KeyError, TypeError, ValueError, NotFound):
        return None
    if trial.status != "assigned" or not isinstance(started, (int, float)):
        return None
    experiment = lab.get(trial.experiment_id)
    primary = experiment.primary_metric
    seconds = max(0.0, (lab.clock() if ended is None else ended) - started)
    return _recorded_run(lab, trial.trial_id, {primary.name: seconds / DURATION_UNITS[primary.unit or "s"]})
