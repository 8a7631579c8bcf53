"""`meta-experiment` commands. Each one calls the lifecycle (nothing here has rules of its own);
domain errors print as one line on stderr with exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import Conflict, ExperimentError


def _lab(args: argparse.Namespace, *, create: bool = False, reads: bool = False):  # type: ignore[no-untyped-def]
    """Open the project; an interrupted promote/rollback finished or undone on the way is reported.
    Only commands that store something (`create`) make the state folder: the others read a project
    without one as empty. A command that only `reads` does not wait for another git's index.lock
    to make a killed promote's commit (Lab.git_wait): it shows the commit as not made yet."""
    from .lifecycle import Lab

    where = Path(args.project) if args.project else None
    lab = Lab.open(where, actor="cli", create=create, git_wait=0.0 if reads else Lab.git_wait)
    for note in lab.recovered:
        print(f"meta-experiment: {note.message}", file=sys.stderr)
    return lab


def cmd_serve(args: argparse.Namespace) -> int:
    # Start-up allocates hundreds of thousands of long-lived objects (the MCP SDK, pydantic models,
    # tool schemas); collecting garbage while they are created is wasted work (~6% of the cold
    # start here). Collect nothing until the server is built, then freeze those objects out of
    # future collections.
    if sys.stdin is not None and sys.stdin.isatty():  # a person typed it: say what it is, not wait silently
        print(
            "meta-experiment serve: this is the MCP server, speaking JSON-RPC on stdin and stdout; Claude Code "
            "starts it. It waits for a client now (Ctrl-C to stop); `meta-experiment --help` lists the commands.",
            file=sys.stderr,
        )
        # The SDK reads stdin in a worker thread: Python's KeyboardInterrupt waited for the next line
        # (Ctrl-C did nothing until Ctrl-D). A person at a terminal means stop: stop at once (every
        # write of ours is a transaction or a rename, so nothing is left half-written).
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    gc.disable()
    try:
        from .mcp_server import build_server

        server = build_server(Path(args.project) if args.project else None)
    finally:
        gc.freeze()
        gc.enable()
    server.run("stdio")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.project:  # (it was taken and ignored, a mistyped path too: from a review)
        print(
            "meta-experiment: the demo always runs in a throwaway git repository of its own; --project does not "
            "apply to it. Run `meta-experiment demo` without it; to experiment on your project, install the plugin "
            "(the README's 'Install as a Claude Code plugin').",
            file=sys.stderr,
        )
        return 2
    return run_demo(trials=args.trials, seed=args.seed, keep=args.keep)


def cmd_status(args: argparse.Namespace) -> int:
    from .report import render_status

    lab = _lab(args, reads=True)
    try:
        if lab.empty_project:
            print(f"meta-experiment: {_nothing_here(args, lab.project_root)}", file=sys.stderr)
        report = lab.status(args.active)
        if args.active and args.json:
            report = report.listed(active_only=True)  # as the status tool answers it
        print(report.model_dump_json(indent=2) + "\n" if args.json else render_status(report, args.active), end="")
    finally:
        lab.close()
    return 0


def _nothing_here(args: argparse.Namespace, project_root: Path) -> str:
    """Where `status` looked and found no experiment database, and what to try: the advice to pass
    --project is no help to someone who did (nor to a project named by CLAUDE_PROJECT_DIR)."""
    said = f"no experiments in {project_root} yet (no experiment database there; nothing was created)."
    if args.project:
        return f"{said} That is the folder --project {shlex.quote(args.project)} names: check the path."
    if os.environ.get("CLAUDE_PROJECT_DIR"):
        return f"{said} That is the folder CLAUDE_PROJECT_DIR names; pass --project to read another one."
    return f"{said} Run this in the project's folder, or pass --project."


def cmd_analyze(args: argparse.Namespace) -> int:
    lab = _lab(args, reads=True)
    try:
        experiment = lab.get(args.experiment_id)  # an unknown id is refused before the statistics load
        from .report import render_analysis

        result = lab.analyze(args.experiment_id)
        print(result.model_dump_json(indent=2) if args.json else render_analysis(experiment, result, lab.project_root))
    finally:
        lab.close()
    return 0


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse turns the ValueError into its usage
    error, naming the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give a number of trials, like 20") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a number of trials; give 1 or more")
    return value


def cmd_trials(args: argparse.Namespace) -> int:
    lab = _lab(args, reads=True)
    try:
        trials = lab.trials(args.experiment_id, args.last)
    finally:
        lab.close()
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in trials], indent=2))
        return 0
    print(f"{'trial':>7}  {'arm':<9}  {'status':<9}  {'recorded (UTC)':<16}  {'ok':<3}  values")
    for t in trials:
        when = (t.recorded_at or "")[:16].replace("T", " ")
        ok = "" if t.success is None else "yes" if t.success else "no"
        values = ", ".join(f"{name}={value:.15g}" for name, value in t.metrics.items())  # 1234567, not 1.23457e+06
        print(f"{t.trial_id:>7}  {t.arm:<9}  {t.status:<9}  {when:<16}  {ok:<3}  {values}".rstrip())
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    lab = _lab(args)
    try:
        experiment = lab.start(args.experiment_id)
        print(f"Started {experiment.id} ({experiment.name}); {experiment.sample_size_required} trials required.")
    finally:
        lab.close()
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """Finish or undo what a promote or rollback left unfinished: the git commit a hook leaves to a
    separate process (started by the hook itself), or an operation a killed process left."""
    from . import dispatch_ops
    from .lifecycle import Lab

    lab = Lab.open(Path(args.project) if args.project else None, actor="cli", recover=False, create=False)
    try:
        done = [] if lab.empty_project else dispatch_ops.recover_waiting(lab, announce=args.announce)
    finally:
        lab.close()
    for line in done:
        print(line)
    if not done:
        print("Nothing to finish: no promote or rollback is unfinished.")
    return 0


def cmd_void(args: argparse.Namespace) -> int:
    from .errors import InvalidInput
    from .models import value_from_text

    metrics: dict[str, float | bool] = {}
    for item in args.metric:
        name, sep, raw = item.partition("=")
        if name.strip() in metrics:
            raise InvalidInput(f"--metric {name.strip()} is given twice; give each metric once.")
        value = value_from_text(raw)  # a number, or true/false for a yes/no metric, as record reads them
        if value is not None:
            metrics[name.strip()] = value
        if not sep or not name.strip() or value is None:
            raise InvalidInput(
                f"--metric takes NAME=VALUE with a number (or true/false for a yes/no metric), "
                f"e.g. time_to_complete=95; not {item!r}."
            )
    if args.succeeded and not metrics:
        raise InvalidInput("--succeeded describes the corrected run: give its values with --metric NAME=VALUE.")
    success = False if args.failed else True if args.succeeded else None
    lab = _lab(args)
    try:
        r = lab.void_trial(args.trial_id, args.reason, metrics or None, success)
    finally:
        lab.close()
    print(f"Voided trial {r.trial_id} ({r.arm}) of {r.experiment_id}: {r.reason}.")
    if r.replacement_trial_id is not None:
        values = ", ".join(f"{k}={v:g}" for k, v in (r.replacement_metrics or {}).items())
        failed = " (a failed run)" if r.replacement_success is False else ""
        print(f"Corrected values recorded as trial {r.replacement_trial_id}{failed}: {values or 'no values'}.")
    print(
        f"{r.experiment_id} has ended ({r.ended}): it takes no more trials."
        if r.ended
        else f"Progress {r.trials_recorded}/{r.sample_size_required}."
    )
    from .monitoring import alert_line

    for alert in r.alerts:
        print(alert_line(alert))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .interchange import export_experiments, export_path, write_document
    from .store import to_json

    lab = _lab(args, reads=True)
    try:
        if lab.empty_project:  # (an empty document, exit 0, and not a word: from a review)
            print(f"meta-experiment: {_nothing_here(args, lab.project_root)}", file=sys.stderr)
            if args.out:  # nothing to write (and "nothing was created" stays true)
                return 2
        out = _in_project(lab.project_root, args.out, _redirect(args)) if args.out else None
        if out:
            export_path(lab, out)  # a bad path is refused before every experiment is analysed
        document = export_experiments(lab, args.ids or None)
        if out:
            written, backup = write_document(lab, out, document)
            print(
                f"Exported {len(document['experiments'])} experiment(s) to {written}"
                + (f" (the previous export there is kept as {backup})" if backup else ""),
                file=sys.stderr,
            )
        else:
            print(to_json(document, indent=2, ensure_ascii=False))
    finally:
        lab.close()
    return 0


def _redirect(args: argparse.Namespace) -> str:
    """The export command that writes what this one would, to stdout: its --project and ids kept
    (the hint without them exported the current folder, an empty document, from a review)."""
    words = ["meta-experiment", *(["--project", args.project] if args.project else []), "export", *(args.ids or [])]
    return shlex.join(words)


def _in_project(project_root: Path, given: str, command: str) -> str:
    """A path given at the command line (relative to the current folder, as `import` reads it) as
    the project-relative path an export is written to; outside the project, a refusal that says
    how to save there (with `command`, the export to redirect)."""
    from .errors import InvalidInput

    target = (Path.cwd() / given).resolve()
    try:
        return target.relative_to(project_root.resolve()).as_posix()
    except ValueError:
        if (Path.cwd() / given).is_symlink():
            raise InvalidInput(
                f"{given!r} is a symbolic link to {str(target)!r}, outside the project {str(project_root)!r}; "
                "--out does not write through it. Give another file name in the project, or save there with a "
                f"redirect: {command} > {shlex.quote(str(target))}"
            ) from None
        raise InvalidInput(
            f"{given!r} {'' if given == str(target) else f'is {str(target)!r}, '}"
            f"outside the project {str(project_root)!r}: --out writes inside it, "
            "and a relative path starts at the current folder (as import reads it). Give a path inside the project "
            f"(e.g. {str(project_root / Path(given).name)!r}), or save elsewhere with a redirect: "
            f"{command} > {shlex.quote(str(target))}"
        ) from None


def cmd_import(args: argparse.Namespace) -> int:
    from .interchange import import_experiments, read_document_file

    document = read_document_file(args.file)
    on_conflict = "skip" if args.skip_existing else "error"
    lab = _lab(args)
    if lab.empty_project:  # what the import would refuse is refused before the state folder is made
        try:
            lab.rehearse(lambda empty: import_experiments(empty, document, on_conflict=on_conflict))
        finally:
            lab.close()
        lab = _lab(args, create=True)
    try:
        result = import_experiments(lab, document, on_conflict=on_conflict)
    finally:
        lab.close()
    print(f"Imported {len(result['imported'])}, skipped {len(result['skipped'])}.")
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from .errors import InvalidInput
    from .settings import SECTIONS, load_settings, update_settings

    lab = _lab(args)
    try:
        if not args.assignments:
            print(load_settings(lab.state_dir, lab.project_root).model_dump_json(indent=2))
            return 0
        changes: dict[str, dict[str, object]] = {}
        for item in args.assignments:
            key, sep, raw = item.partition("=")
            if not sep:
                raise InvalidInput(f"Expected key=value, got {item!r} (e.g. defaults.sample_size_required=20).")
            section, _, name = key.rpartition(".")
            if not section:
                section = next((s for s, m in SECTIONS.items() if name in m.model_fields), "defaults")
            changes.setdefault(section, {})[name] = _setting_value(name, raw)
        if lab.empty_project:  # what the update would refuse is refused before the state folder is made
            update_settings(lab.state_dir, changes, lab.project_root, dry_run=True)
            lab.close()
            lab = _lab(args, create=True)
        result = lab.update_settings(changes, f"Settings changed from the CLI: {args.assignments}")
        print(result.model_dump_json(indent=2))
    finally:
        lab.close()
    return 0


def _setting_value(name: str, raw: str) -> object:
    """A KEY=VALUE value as JSON (20, true), else the text; NaN and infinities are refused here,
    since the settings' range checks would only say they are out of range."""
    from .errors import InvalidInput

    try:
        value: object = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    try:
        number = float(value) if isinstance(value, str | float) else 0.0
    except ValueError:
        number = 0.0
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number, not {raw!r}. Give a plain number in the setting's range.")
    return value


def _confirmed(args: argparse.Namespace, question: str) -> bool:
    """--yes, or a y/N answer at a terminal; without a terminal and --yes, refuse."""
    if args.yes:
        return True
    _confirmable(args, question)
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # Ctrl-D at the prompt: a no
        print()
        return False


def _confirmable(args: argparse.Namespace, question: str) -> None:
    """Refuse unless there is --yes or a terminal to ask at: the question is read from stdin and
    written to stdout, so with either one redirected nobody would see it or answer it (with stdout
    in a file, the command would look hung)."""
    from .errors import InvalidInput

    if args.yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(f"{question} needs a confirmation: pass --yes to confirm, or run it in a terminal.")
    if not sys.stdout.isatty():
        raise InvalidInput(
            f"{question} needs a confirmation, and the output goes to a file or a pipe, where the question would "
            "not be seen: pass --yes to confirm, or run it with the output on the terminal."
        )


# git outcomes after which a promote or rollback is complete: committed, or nothing to commit or no
# repository to commit to; any other ("failed") leaves the change on disk without its commit
SETTLED = frozenset({"committed", "nothing_to_commit", "not_needed", "not_a_repository", "git_not_installed"})
NOT_COMMITTED = 3  # the exit status then, distinct from a refusal (2) and a declined prompt (1)
DEPLOY_EXIT_STATUS = (
    "Exit status: 0 done (or a dry run); 1 declined at the prompt; 2 refused, nothing changed; "
    f"{NOT_COMMITTED} the files were changed but the git commit failed (the output says why and what to run)."
)


def _deploy(
    args: argparse.Namespace, call: Callable[..., object], question: str, statuses: tuple[str, ...], doing: str
) -> int:
    from .release import require_status
    from .report import render_deploy

    lab = _lab(args)
    try:
        # an unknown id or an ended experiment first (from a review: the confirmation was asked for
        # first, which taught a script to add --yes before it knew what it confirmed) ...
        require_status(lab.get(args.experiment_id), statuses, doing)
        if not args.dry_run:
            _confirmable(args, question)  # ... then refused at once, not after the preview's analysis
        if not args.yes or args.dry_run:  # with --yes the person confirmed beforehand: no preview
            text = render_deploy(call(lab, dry_run=True))  # type: ignore[arg-type]
            if not args.dry_run:  # a preview before the question, not a finished dry run
                text = text.replace("Dry run, nothing changed:", "Preview, nothing changed yet:", 1)
            print(text, end="")
        if args.dry_run:
            return 0
        if not _confirmed(args, question):
            print("Declined: nothing changed.")
            return 1
        done = call(lab, dry_run=False)
        # the summary and its warnings (a hand edit kept in backups/, say); the diff was in the preview
        print(render_deploy(done.model_copy(update={"diff": ""})), end="")  # type: ignore[attr-defined]
    finally:
        lab.close()
    git = done.git  # type: ignore[attr-defined]
    return NOT_COMMITTED if git is not None and git.status not in SETTLED else 0


def cmd_promote(args: argparse.Namespace) -> int:
    from .release import promote, promote_reason

    promote_reason(args.reason, args.force)  # a missing reason first, before any confirmation
    return _deploy(
        args,
        lambda lab, dry_run: promote(lab, args.experiment_id, reason=args.reason, force=args.force, dry_run=dry_run),
        f"Promote {args.experiment_id} to production?",
        ("running",),
        "promoted",
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    from .release import rollback, rollback_reason

    rollback_reason(args.reason, args.dry_run)  # a missing reason first, before any confirmation
    return _deploy(
        args,
        lambda lab, dry_run: rollback(lab, args.experiment_id, reason=args.reason, dry_run=dry_run),
        f"Roll back {args.experiment_id}?",
        ("draft", "running", "promoted"),
        "rolled back",
    )


def cmd_auto(args: argparse.Namespace) -> int:
    from .auto import run_auto
    from .report import render_auto

    lab = _lab(args)
    try:
        if lab.empty_project:  # (cron in the wrong folder: 'No running experiments.' alone, from a review)
            print(f"meta-experiment: {_nothing_here(args, lab.project_root)}", file=sys.stderr)
        result = run_auto(lab, dry_run=args.dry_run)
        print(result.model_dump_json(indent=2) + "\n" if args.json else render_auto(result), end="")
    finally:
        lab.close()
    return 0


def cmd_dispatch(args: argparse.Namespace) -> int:
    from .dispatch_ops import set_dispatch

    lab = _lab(args)
    try:
        print(set_dispatch(lab, args.experiment_id, on=not args.off).summary)
    finally:
        lab.close()
    return 0


# hook event (the plugin's hooks.json) -> its function in dispatch_ops
HOOKS = {
    "prompt": "on_prompt",  # UserPromptSubmit
    "stop": "on_stop",  # Stop
    "skill": "on_skill",  # PostToolUse of Skill
    "agent-start": "on_agent_start",  # PreToolUse of Agent
    "agent-end": "on_agent_end",  # PostToolUse of Agent
    "agent-stop": "on_agent_stop",  # SubagentStop
    "session-start": "on_session_start",  # SessionStart (a session started as an agent: claude --agent)
}


def cmd_hook(args: argparse.Namespace) -> int:
    """A Claude Code hook (the plugin's hooks.json): the event's JSON on stdin, the hook's JSON on
    stdout. It never blocks the prompt or the reply because of its own trouble: a problem is one
    line on stderr and exit status 0 (status 2 would block the person's prompt)."""
    from . import dispatch_ops

    try:
        payload = json.loads(sys.stdin.read() or "{}")
        if not isinstance(payload, dict):
            raise ValueError("the hook input is not a JSON object")
        lab = dispatch_ops.hook_lab(args.project)  # short waits; a commit is left to `recover`
        try:
            out = getattr(dispatch_ops, HOOKS[args.event])(lab, payload)
            # a commit a hook left to the background that failed: told at the person's next prompt or
            # session (the hook that started it had ended), once
            notice = dispatch_ops.take_commit_notice(lab) if args.event in ("prompt", "session-start") else None
            if notice is not None:
                said = (out or {}).get("systemMessage")
                out = {**(out or {}), "systemMessage": notice if not said else f"{said}\n{notice}"}
        finally:
            try:
                dispatch_ops.commit_in_background(lab)
            finally:
                lab.close()
    except Exception as exc:  # whatever it is (a locked or full disk too): one line, never a traceback
        print(f"meta-experiment ({args.event} hook): {exc}", file=sys.stderr)
        return 0
    if out is not None:
        print(json.dumps(out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meta-experiment",
        description="A/B experiments on changes to files in a project, as an MCP server and a CLI.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    project_help = (
        "Project root (default: $CLAUDE_PROJECT_DIR, else the git top level, else the current folder; from a "
        "subfolder without experiments, the nearest folder above with them, up to the repository's top)."
    )
    parser.add_argument("--project", help=project_help)
    # --project after the command too (`status --project X`); SUPPRESS: a command given none leaves
    # the one before it in place, and one given after the command wins
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--project", default=argparse.SUPPRESS, help=project_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        fn: Callable[[argparse.Namespace], int],
        help_text: str,
        epilog: str | None = None,
        project: bool = True,  # False: a command that works on no project (its help offers no --project)
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_text, description=help_text, epilog=epilog, parents=[shared] if project else []
        )
        p.set_defaults(func=fn)
        return p

    add("serve", cmd_serve, "Run the MCP server on stdio (what Claude Code starts).")
    demo = add(
        "demo", cmd_demo, "Run a full experiment end to end in a temporary git repository over MCP.", project=False
    )
    demo.add_argument("--trials", type=int, default=40, help="Trials to run (default 40).")
    demo.add_argument("--seed", type=int, default=7, help="Random seed for the synthetic durations.")
    demo.add_argument("--keep", action="store_true", help="Keep the temporary repository and print its path.")
    status = add("status", cmd_status, "Print the status report of every experiment.")
    status.add_argument("--json", action="store_true", help="Structured output instead of markdown.")
    status.add_argument(
        "--active", action="store_true", help="List only draft and running experiments (the ended ones are counted)."
    )
    analyze = add("analyze", cmd_analyze, "Print the analysis report of one experiment.")
    analyze.add_argument("experiment_id")
    analyze.add_argument("--json", action="store_true", help="Structured output instead of markdown.")
    recover = add(
        "recover",
        cmd_recover,
        "Finish a promote or rollback left unfinished: the git commit a hook leaves to a separate process (the "
        "hook starts this itself), or an operation of a process that was killed (the server and every other "
        "command finish those when they start, too).",
    )
    recover.add_argument("--announce", action="store_true", help=argparse.SUPPRESS)  # started by a hook
    start = add("start", cmd_start, "Start a draft (an experiment imported with status draft).")
    start.add_argument("experiment_id")
    trials = add("trials", cmd_trials, "List an experiment's trials with their ids (what void takes) and values.")
    trials.add_argument("experiment_id")
    trials.add_argument("--last", type=_positive, metavar="N", help="Only the N newest trials.")
    trials.add_argument("--json", action="store_true", help="Structured output instead of a table.")
    export = add("export", cmd_export, "Export experiments in the seed's experiments.json format.")
    export.add_argument("ids", nargs="*", help="Experiment ids (default: all).")
    export.add_argument(
        "--out", help="File to write, inside the project (relative to the current folder; default: stdout)."
    )
    imp = add("import", cmd_import, "Import experiments from an experiments.json file.")
    imp.add_argument("file")
    imp.add_argument("--skip-existing", action="store_true", help="Skip ids that exist instead of refusing.")
    promote = add(
        "promote",
        cmd_promote,
        "Write an experiment's tested variant over production and commit it.",
        DEPLOY_EXIT_STATUS,
    )
    promote.add_argument("experiment_id")
    promote.add_argument(
        "--force", action="store_true", help="Promote whatever the policy's criteria say (needs --reason)."
    )
    promote.add_argument("--reason", help="Why (required with --force; recorded in the event log and the commit).")
    promote.add_argument("--dry-run", action="store_true", help="Print the diff; change nothing.")
    promote.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
    rollback = add(
        "rollback",
        cmd_rollback,
        "Stop a running experiment or discard a draft, or restore a promoted one's backup.",
        DEPLOY_EXIT_STATUS,
    )
    rollback.add_argument("experiment_id")
    rollback.add_argument("--reason", help="Why (required unless --dry-run; recorded in the event log and the commit).")
    rollback.add_argument("--dry-run", action="store_true", help="Print what it would do and the diff; change nothing.")
    rollback.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
    void = add("void", cmd_void, "Withdraw a wrongly recorded trial of a running experiment, or correct it (--metric).")
    void.add_argument("trial_id", type=int)
    void.add_argument("--reason", required=True, help="Why (recorded in the event log).")
    void.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="A corrected value of the same run (repeat for each metric; true/false for a yes/no metric); "
        "recorded in the trial's place. "
        "Metrics not given keep their recorded values.",
    )
    outcome = void.add_mutually_exclusive_group()
    outcome.add_argument(
        "--failed",
        action="store_true",
        help="The corrected run failed: it counts for the success rate, keeps its guardrail values and drops "
        "the primary value it had (its time to the failure is no completion time); --metric values are kept.",
    )
    outcome.add_argument(
        "--succeeded", action="store_true", help="With --metric: the corrected run succeeded (default: as voided)."
    )
    auto = add("auto", cmd_auto, "Analyse every running experiment and promote, roll back or expire as decided.")
    auto.add_argument("--dry-run", action="store_true", help="Report what would be done; change nothing.")
    auto.add_argument("--json", action="store_true", help="Structured output instead of text.")
    dispatch = add(
        "dispatch",
        cmd_dispatch,
        "Put a dispatcher in place of a running experiment's slash command, skill or agent file, so that "
        "each run of it is a trial (--off: put the original back).",
    )
    dispatch.add_argument("experiment_id")
    dispatch.add_argument("--off", action="store_true", help="Put the original back; the experiment goes on.")
    hook = add(
        "hook",
        cmd_hook,
        "Claude Code hook entry point (the plugin runs it): prompt (UserPromptSubmit), stop (Stop), agent-start "
        "(PreToolUse of Agent), agent-end (PostToolUse of Agent), agent-stop (SubagentStop), skill (PostToolUse of "
        "Skill), session-start (SessionStart); JSON on stdin.",
    )
    hook.add_argument("event", choices=list(HOOKS))
    settings = add("settings", cmd_settings, "Show settings, or set some: defaults.sample_size_required=20 ...")
    settings.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # The reports hold emoji and names in any script; a terminal or file in another encoding
    # (PYTHONIOENCODING=latin-1, a Windows console) gets '?' in their place, not a traceback.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ExperimentError as exc:
        print(f"meta-experiment: {exc}", file=sys.stderr)
        if isinstance(exc, Conflict) and exc.diff:
            print(exc.diff, file=sys.stderr, end="" if exc.diff.endswith("\n") else "\n")
        return 2
    except PermissionError as exc:  # a state folder another user made, say: one line, not a traceback
        from .errors import permission_message

        print(f"meta-experiment: {permission_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # a promote or rollback stopped by Ctrl-C was cancelled (or closed) under its lock: say how
        for line in getattr(exc, "said", ()):
            print(f"meta-experiment: {line}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other commands do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not complain
        return 141


if __name__ == "__main__":
    sys.exit(main())
