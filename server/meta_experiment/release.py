"""Promote, rollback and expire: whether production may change, and in which order it changes.

Promote (running -> promoted) and rollback of a promoted experiment (promoted -> rolled_back) run
the same sequence, under the project's deploy lock:

  1. check the status and that every production file holds exactly the expected content (the
     snapshot at start for promote, the promoted content for rollback) - else Conflict with a diff.
     Two cases overwrite nobody's work and go ahead: a file that already holds its new content
     (copied there by hand: journaled, backed up and committed as usual, just not written), and,
     for rollback, a promoted file deleted since (restored);
  2. back up the current content in `<state>/backups/` (content-addressed);
  3. write the journal row (old/new sha256 per file) and commit it - before any file is touched;
  4. apply the files one atomic rename at a time (`deploy.apply_steps`);
  5. in one transaction: experiment status + journal phase `applied` + event;
  6. git commit of exactly those paths; the journal row is `done` with the git outcome.

Steps 2-6 and the recovery of an operation a killed process left unfinished are in
`operations.py`; the file mechanics are in `deploy.py`. This module holds the rules.

Rollback of a running experiment, and expiry, change no file (production was never touched while
the experiment ran): the experiment just stops.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import deploy, dispatch_ops, gitcommit, journal, monitoring, operations, policy
from .dispatch import dispatcher_experiment
from .errors import Conflict, InvalidInput, InvalidState, PathError
from .files import read_regular
from .models import ORIGINAL_UNKNOWN, control_characters, parse_iso
from .outcomes import DeployResult, FileOutcome, GitOutcome
from .release_status import hook_version
from .release_text import promote_message, rollback_message
from .stats.report import plural
from .stats.results import Analysis, Decision

if TYPE_CHECKING:
    from .lifecycle import Lab
    from .models import Experiment

NOT_NEEDED = GitOutcome(status="not_needed", detail="nothing to commit: production was never changed")
HEAD_HOLDS_DISPATCHER = GitOutcome(
    status="not_needed",
    detail="nothing committed: production was never changed, but HEAD holds the dispatcher, which the original "
    "replaced on disk: commit that (see the warning)",
)


def evaluate(lab: Lab, experiment: Experiment) -> tuple[Analysis, Decision]:
    """The experiment's analysis and the decision policy's verdict on it now (`Lab.analyze` runs
    `policy.decide(analysis, targets, now)`)."""
    analysis = lab.analyze(experiment.id)
    decision = analysis.decision or policy.decide(analysis, experiment.targets, lab.clock())
    return analysis, decision


def _reason(reason: str | None) -> str | None:
    reason = (reason or "").strip()
    if len(reason) > 2000:
        raise InvalidInput("The reason is longer than 2000 characters; summarise it.")
    if control_characters(reason, allow_newlines=True):
        raise InvalidInput("The reason contains control characters (such as NUL); write it as plain text.")
    return reason or None


def promote_reason(reason: str | None, force: bool) -> str | None:
    """The reason, checked; a forced promotion needs one. Public so that the CLI reports a missing
    reason before it asks for a confirmation."""
    reason = _reason(reason)
    if force and not reason:
        raise InvalidInput(
            "Forcing a promotion needs a reason (reason in the tool, --reason in the CLI); it is recorded in "
            "the event log and the commit. "
            "Say why it should be promoted whatever the policy's criteria say (without force, a promotion goes "
            "ahead when they are met)."
        )
    return reason


def rollback_reason(reason: str | None, dry_run: bool) -> str | None:
    """The reason, checked; a rollback needs one, its dry run (which changes and records nothing)
    does not."""
    reason = _reason(reason)
    if not reason and not dry_run:
        raise InvalidInput(
            "A rollback needs a reason (reason in the tool, --reason in the CLI); it is recorded in the event "
            "log and the commit message. Say why it is rolled back; a dry run (dry_run=true; CLI: --dry-run) "
            "needs none."
        )
    return reason


def require_status(experiment: Experiment, statuses: tuple[str, ...], doing: str) -> None:
    if experiment.status not in statuses:
        why = f" ({experiment.status_reason})" if experiment.status_reason else ""
        next_step = (
            f"Start it first (start_experiment; CLI: `meta-experiment start {experiment.id}`) and run its trials."
            if experiment.status == "draft"
            else "Check the status tool (or `meta-experiment status`) for what happened to it."
        )
        raise InvalidState(f"Experiment {experiment.id} is {experiment.status}{why}; it cannot be {doing}. {next_step}")


# -- promote ------------------------------------------------------------------------------------------


def promote(
    lab: Lab,
    experiment_id: str,
    *,
    reason: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    auto: bool = False,
) -> DeployResult:
    """Write the tested variant over production. Refused unless the decision policy says promote,
    or `force` with a reason (recorded in the event log)."""
    reason = promote_reason(reason, force)
    experiment = lab.get(experiment_id)
    require_status(experiment, ("running",), "promoted")
    analysis, decision = evaluate(lab, experiment)
    against = None
    if decision.action != "promote":
        unmet = [c.name for c in decision.criteria if c.met is False]
        named = "not met:" in decision.rationale  # the policy's rationale names them already
        against = decision.rationale + (f" (unmet: {', '.join(unmet)})" if unmet and not named else "")
    if analysis.alerts:  # what status and auto mode say too: an active alert calls for a rollback
        alerts = "a monitoring alert is active: " + "; ".join(analysis.alerts)
        against = alerts if against is None else f"{alerts}; and {against}"
    refusal = None
    if against is not None and not force:
        wait = (  # what would change the answer: more trials only where they can (from reviews)
            "The data alone say promote: an alert holds it back until its condition is gone (status shows the "
            "alert and when it was raised); roll back if it is real"
            if decision.action == "promote"
            else "The data say roll back, not promote (rollback keeps the original)"
            if decision.action == "rollback"
            else f"It is past its {experiment.max_duration_days:g} days: auto mode expires it (the original stays)"
            if decision.action == "expire"
            else "More trials will not promote it: its target is out of reach"
            if decision.target_out_of_reach
            else "Keep recording trials (auto mode promotes when the policy says so)"
        )
        refusal = (
            f"{experiment_id} is not ready to promote: {against}. {wait}, or force it with a reason (force=true; "
            "CLI: --force --reason) to promote anyway."
        )
        if not dry_run:
            # production edited since the start (or a git state that blocks) is what to know first:
            # forcing, which the refusal offers, would be refused for it too
            also = f" The policy does not say promote yet either: {against}."
            try:
                _plan(lab, experiment, "promote")
            except Conflict as exc:
                raise Conflict(f"{exc}{also}", diff=exc.diff) from None
            except (PathError, InvalidState) as exc:
                raise type(exc)(f"{exc}{also}") from None
            raise InvalidState(refusal)
    how = "auto" if auto else "manual"
    message = promote_message(experiment, analysis, how, reason if force else None)
    if dry_run:  # the diff even when the call itself would be refused: the person can see what is at stake
        return _result(
            lab,
            experiment,
            "promote",
            "dry_run",
            _plan(lab, experiment, "promote"),
            reason=reason,
            forced=force,
            against_policy=against,
            would_refuse=refusal,
        )
    # Under the lock, first the status: a concurrent run may have promoted it while we analysed
    # (then the files hold the new content, and a conflict would be the wrong message).
    plan, git, lifted = _journaled(
        lab,
        experiment,
        "promote",
        ("running", "promoted"),
        reason=reason,
        message=message,
        data={"how": how, "forced": force, "decision": decision.action, "rationale": decision.rationale},
    )
    if lifted is not None:  # said once, as done: not also as the plan's "goes back first"
        plan = replace(plan, warnings=[w for w in plan.warnings if HOLDS_DISPATCHER not in w])
    result = _result(
        lab,
        lab.get(experiment_id),
        "promote",
        "promoted",
        plan,
        reason=reason,
        forced=force,
        git=git,
        against_policy=against,
    )
    return _with_note(result, lifted)


def _with_note(result: DeployResult, note: str | None) -> DeployResult:
    return result if note is None else result.model_copy(update={"warnings": [*result.warnings, note]})


def _journaled(
    lab: Lab,
    experiment: Experiment,
    operation: str,
    transition: tuple[str, str],
    *,
    reason: str | None,
    message: str,
    data: dict[str, Any],
) -> tuple[Plan, GitOutcome, str | None]:
    """Run one promote or rollback under the deploy lock: check the status again, plan the file
    steps, back the old contents up, write the journal row (in the transaction that re-checks the
    status), then apply, mark and commit (operations.execute)."""
    from_status, to_status = transition
    verb = "promoted" if operation == "promote" else "rolled back"
    with deploy.deploy_lock(lab.state_dir, wait=lab.lock_wait):
        recovered = _recover_then_require(lab, experiment.id, (from_status,), verb, operation)
        plan = _plan(lab, experiment, operation)
        operation_id: int | None = None
        lifted: str | None = None
        try:
            # a dispatcher (which _plan took for the original) goes out only now that the rest is known
            # to go ahead, and under this lock: no dispatch comes between
            lifted = dispatch_ops.lift_for_end(lab, experiment.id, "Promoting") if operation == "promote" else None
            steps = operations.backup(lab, plan.steps, absent=plan.restored)
            plan = replace(plan, steps=steps)
            if plan.in_place:
                data = {**data, "unchanged": list(plan.in_place)}
            if plan.restored:
                data = {**data, "restores_deleted": list(plan.restored)}
                scripts = [p for p in plan.restored if gitcommit.executable_in_git(lab.project_root, p)]
                if scripts:  # recreated with the mode git records, or the commit would change it
                    data = {**data, "executable": scripts}
            with lab.store.transaction():
                require_status(lab.get(experiment.id), (from_status,), verb)
                operation_id = journal.begin(
                    lab.store,
                    experiment_id=experiment.id,
                    operation=operation,
                    from_status=from_status,
                    to_status=to_status,
                    actor=lab.actor,
                    reason=reason,
                    commit_message=message,
                    data=data,
                    steps=steps,
                )
            deploy.checkpoint("journal_written")
            git = operations.execute(lab, operation_id)
        except KeyboardInterrupt as exc:  # Ctrl-C: cancelled or closed here, while the lock is held
            if isinstance(exc, operations.Interrupted):
                raise
            again = (
                [f"{lifted} The experiment still runs: to hand its runs trials again, run dispatch {experiment.id}."]
                if lifted and lab.get(experiment.id).status == "running"
                else []
            )
            if operation_id is None:
                said = f"Cancelled before the {operation} of {experiment.id} began: nothing was promoted."
                raise operations.Interrupted([said, *again]) from None
            raise operations.Interrupted([*operations.cancel_held(lab, operation_id), *again]) from None
    return plan, git, " ".join(filter(None, [*recovered, lifted])) or None


def _recover_then_require(lab: Lab, experiment_id: str, statuses: tuple[str, ...], verb: str, doing: str) -> list[str]:
    """Under the deploy lock: finish or undo first what a dead process left unfinished (a promote
    killed after its journal row, say, which would otherwise be finished at the next start, over
    this call's work), then require the experiment's status. Returns what was recovered; a refusal
    says it too, since the status it refuses may be the recovery's."""
    recovered = [note.message + "." for note in operations.recover_held(lab, when=f"before this {doing}")]
    waiting = [
        op
        for op in (journal.load(lab.store, i) for i in journal.unfinished_ids(lab.store))
        if op.experiment_id == experiment_id and op.phase == "applied"
    ]
    lock = gitcommit.index_lock(lab.project_root) if waiting else None
    if lock is not None:  # its commit waits for git's lock: a git may still be making it, so nothing is written
        raise InvalidState(
            f"The {waiting[0].operation} of {experiment_id} is done but for its git commit, which waits for git's "
            f"{lock.name} (a git process at work, such as the commit of the process that was stopped with its hooks "
            f"still running, or one that crashed left it). Nothing was changed. Wait for that git to finish, or, if "
            "no git process runs, remove the lock; then run `meta-experiment recover` (or this call again)."
        )
    try:
        require_status(lab.get(experiment_id), statuses, verb)
    except InvalidState as exc:
        if doing == "stop" and lab.get(experiment_id).status == "promoted":
            # promoted while this call waited for the lock (another process, or the recovery above): the
            # person asked to end it, and a rollback now would write files, which they did not see
            raise InvalidState(
                " ".join(
                    [
                        *recovered,
                        f"{experiment_id} was promoted meanwhile, so nothing was stopped; to undo the "
                        f"promotion, run `meta-experiment rollback {experiment_id} --reason ...` (the rollback "
                        "tool): it shows what it restores before it writes.",
                    ]
                )
            ) from None
        if not recovered:
            raise
        raise InvalidState(" ".join(recovered) + " " + str(exc)) from None
    return recovered


# -- rollback and expiry ------------------------------------------------------------------------------


def rollback(
    lab: Lab, experiment_id: str, *, reason: str | None = None, dry_run: bool = False, auto: bool = False
) -> DeployResult:
    """Stop a running experiment or discard a draft (production untouched), or restore the
    pre-experiment content of a promoted one. The reason is required and recorded (not for a dry
    run, which records nothing)."""
    reason = rollback_reason(reason, dry_run)
    experiment = lab.get(experiment_id)
    require_status(experiment, ("draft", "running", "promoted"), "rolled back")
    if experiment.status in ("draft", "running"):
        if dry_run:
            held = dispatch_ops.dispatched_file(lab, experiment)
            gone = None
            if held is None and len(experiment.files) == 1 and dispatch_ops.dispatcher_in_place(lab, experiment_id):
                production = experiment.files[0].production
                gone = production if not (lab.project_root / production).exists() else None
            plan = Plan(steps=[], dispatcher=held, recreated=gone)
            return _result(lab, experiment, "rollback", "dry_run", plan, reason=reason)
        assert reason is not None  # rollback_reason: required unless dry_run
        return _stop(lab, experiment_id, "rolled_back", reason, auto=auto)
    _refuse_unknown_original(lab, experiment)
    how = "auto" if auto else "manual"
    plan = _plan(lab, experiment, "rollback")
    if dry_run:
        return _result(lab, experiment, "rollback", "dry_run", plan, reason=reason)
    assert reason is not None
    analysis = lab.analyze(experiment_id)
    message = rollback_message(experiment, analysis, reason, how)
    plan, git, recovered = _journaled(
        lab, experiment, "rollback", ("promoted", "rolled_back"), reason=reason, message=message, data={"how": how}
    )
    result = _result(lab, lab.get(experiment_id), "rollback", "rolled_back", plan, reason=reason, git=git)
    return _with_note(result, recovered)  # what was finished first (the promotion's own commit, say)


def _refuse_unknown_original(lab: Lab, experiment: Experiment) -> None:
    """A promotion imported without its original (interchange._original) has nothing to restore:
    the rollback would write the promoted text over itself and say it restored the original."""
    said = lab.events(experiment.id, kinds=[ORIGINAL_UNKNOWN])
    if said:
        named = [ev.data.get("files") for ev in said]
        paths = [str(f) for names in named if isinstance(names, list) for f in names] or [
            f.production for f in experiment.files
        ]
        raise InvalidState(
            f"Experiment {experiment.id} cannot be rolled back: the original of {', '.join(paths)} is not known (it "
            "was imported as promoted without a snapshot or a backup of it). Restore it by hand from git history "
            f"(`git log -p -- {' '.join(shlex.quote(p) for p in paths)}`); the experiment stays promoted."
        )


def stop_on_alert(lab: Lab, experiment_id: str, *, reason: str, wait: float | None = None) -> DeployResult:
    """Roll back a running experiment on an alert (production untouched). Never a promoted one: a
    promotion that landed between the trial that raised the alert and this call is refused here,
    not undone (rollback would restore the original over it, from a review). `wait`: how long to
    wait for another promote's deploy lock (default: the Lab's lock_wait)."""
    return _stop(lab, experiment_id, "rolled_back", reason, auto=True, wait=wait)


def expire(lab: Lab, experiment_id: str, *, reason: str) -> DeployResult:
    """End a running experiment that reached max_duration_days; production keeps its original."""
    return _stop(lab, experiment_id, "expired", reason, auto=True)


def _stop(
    lab: Lab, experiment_id: str, to_status: str, reason: str, *, auto: bool, wait: float | None = None
) -> DeployResult:
    how = "auto" if auto else "manual"
    allowed = ("draft", "running") if to_status == "rolled_back" else ("running",)
    with deploy.deploy_lock(lab.state_dir, wait=lab.lock_wait if wait is None else wait):
        recovered = _recover_then_require(lab, experiment_id, allowed, "stopped", "stop")
        lifted = dispatch_ops.lift_for_end(lab, experiment_id, "Expiring" if to_status == "expired" else "Rolling back")
        lifted = " ".join(filter(None, [*recovered, lifted])) or None
        with lab.store.transaction():
            experiment = lab.get(experiment_id)
            require_status(experiment, allowed, "stopped")
            label = "Expired" if to_status == "expired" else f"Rolled back ({how})"
            lab.store.update_experiment(
                experiment_id, status=to_status, status_reason=f"{label}: {reason}", ended_at=lab.clock()
            )
            abandoned = lab.store.abandon_trials(experiment_id)
            monitoring.close_alerts(lab, experiment_id, to_status.replace("_", " "))
            lab.event(
                experiment_id,
                to_status,
                f"{label} after {plural(experiment.trials_recorded, 'trial')}: {reason}. Production was never changed.",
                reason=reason,
                how=how,
                trials=experiment.trials_recorded,
                abandoned_trials=abandoned,
            )
    lab.notify_changed(experiment_id)
    outcome = "expired" if to_status == "expired" else "stopped"
    result = _result(
        lab,
        lab.get(experiment_id),
        "expire" if outcome == "expired" else "rollback",
        outcome,
        NO_FILES,
        reason=reason,
        git=HEAD_HOLDS_DISPATCHER if lifted and dispatch_ops.HEAD_HOLDS in lifted else NOT_NEEDED,
    )
    if experiment.status == "draft":  # never started: discarded, not stopped
        result = result.model_copy(update={"summary": "Discarded the draft" + result.summary.removeprefix("Stopped")})
    return _with_note(result, lifted)


# -- the shared sequence -----------------------------------------------------------------------------


HOLDS_DISPATCHER = "holds this experiment's dispatcher"


@dataclass(frozen=True)
class Plan:
    """What a promote or rollback would do to production: the file steps (journaled), the unified
    diff, warnings, the paths that already hold their new content (nothing to write: the person
    copied it there by hand) and, for a rollback, the paths deleted after promotion that it
    restores."""

    steps: list[deploy.FileStep]
    diff: str = ""
    warnings: list[str] = field(default_factory=list)
    in_place: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()
    dispatcher: str | None = None  # a stop's dry run: the command file that holds this experiment's dispatcher
    recreated: str | None = None  # a stop's dry run: a command file deleted while it held the dispatcher


NO_FILES = Plan(steps=[])


def _plan(lab: Lab, experiment: Experiment, operation: str) -> Plan:
    """The steps, diff and warnings; Conflict (with a diff, nothing written) when a production file
    holds neither the expected content nor already the new one. A rollback may restore a file
    deleted after promotion: that overwrites nobody's work."""
    steps, diffs, conflicts, warnings, in_place, restored = [], [], [], [], [], []
    new_contents: dict[str, bytes] = {}
    dispatchers = dispatch_ops.dispatcher_shas(lab, experiment.id) if operation == "promote" else set()
    changes_some = _changes_some(experiment)
    for f in experiment.files:
        if f.control_sha256 == f.treatment_sha256 and changes_some:
            # the same in both arms: the experiment never changes it, so an edit made since is the
            # person's own, and neither blocks nor is undone (an A/A test's files keep their steps)
            warnings.append(f"{f.production} is the same in both arms: left as it is.")
            continue
        if operation == "promote":
            old, new, expected, target = f.control_sha256, f.treatment_sha256, "at experiment start", "variant"
        else:
            old, new, expected, target = f.treatment_sha256, f.control_sha256, "as promoted", "pre-experiment"
        current = deploy.read_current(lab.project_root, f.production)
        digest = None if current is None else deploy.sha256_hex(current)
        old_content, new_content = operations.blob(lab, old), operations.blob(lab, new)
        edited = (
            digest is not None
            and digest not in dispatchers
            and operation == "promote"
            and dispatcher_experiment(current.decode("utf-8", "replace")) == experiment.id  # type: ignore[union-attr]
        )
        if digest in dispatchers or edited:  # taken out (the original put back) just before the promotion
            current, digest = old_content, old
            kept = " (someone edited it: that copy is kept in the state folder's backups/)" if edited else ""
            warnings.append(f"{f.production} {HOLDS_DISPATCHER}{kept}: the original goes back first.")
        if digest == new and new != old:
            in_place.append(f.production)  # journaled all the same: status, backup and commit as usual
        elif current is None and operation == "rollback":
            restored.append(f.production)
            diffs.append(
                deploy.unified_diff(f.production, None, new_content, before_label="deleted", after_label=target)
            )
        elif (
            operation == "rollback"
            and current is not None
            and digest != old
            and hook_version(lab, experiment, f.production, current)
        ):
            # what the promotion's commit hook made of the variant (a formatter): rolled back from that
            old, old_content = lab.store.put_blob(current), current
            warnings.append(
                f"{f.production} holds the version a commit hook made of the promoted file as it was committed: "
                "rolling back replaces that version (backed up first)."
            )
            diffs.append(
                deploy.unified_diff(f.production, current, new_content, before_label="production", after_label=target)
            )
        elif digest != old:
            later = _promoted_since(lab, experiment, f.production, digest) if operation == "rollback" else None
            if later is not None:
                raise Conflict(
                    f"Refusing to roll back {experiment.id}: {f.production} now holds what {later} promoted after "
                    f"it. Nothing was overwritten. Roll {later} back first (that puts back what {experiment.id} "
                    f"promoted), then roll {experiment.id} back; undoing it by hand would leave {later} marked "
                    "promoted with its change gone."
                )
            holder = (
                dispatcher_experiment(current.decode("utf-8", "replace"))
                if operation == "rollback" and current is not None
                else None
            )
            if holder is not None and holder != experiment.id:
                raise Conflict(
                    f"Refusing to roll back {experiment.id}: {f.production} holds the dispatcher of experiment "
                    f"{holder}, which tests a change of the file {experiment.id} promoted (nobody edited it). "
                    f"Nothing was overwritten. End {holder} first (promote or roll it back), or take its "
                    f"dispatcher out (dispatch with on: false, or `meta-experiment dispatch {holder} --off`) and "
                    f"know that rolling {experiment.id} back then changes the file {holder} started from, so "
                    f"{holder} could no longer be promoted."
                )
            conflicts.append(
                (
                    f.production,
                    *_what_changed(old_content, current),
                    deploy.unified_diff(
                        f.production, old_content, current, before_label=expected, after_label="now on disk"
                    ),
                )
            )
            continue
        else:
            # the file holds what this experiment promoted: also when a later promotion wrote that again
            # (after one that changed it back), which the rollback would undo with it
            later = (
                _promoted_since(lab, experiment, f.production, digest, whatever_it_holds=True)
                if operation == "rollback"
                else None
            )
            if later is not None:
                raise Conflict(
                    f"Refusing to roll back {experiment.id}: {later} was promoted on {f.production} after it and "
                    f"is still promoted (the file holds {experiment.id}'s variant again). Nothing was overwritten. "
                    f"Roll {later} back first, then {experiment.id}; rolling {experiment.id} back now would leave "
                    f"{later} marked promoted with its change gone."
                )
            diffs.append(
                deploy.unified_diff(f.production, current, new_content, before_label="production", after_label=target)
            )
        steps.append(deploy.FileStep(f.production, old, new))
        new_contents[f.production] = new_content
        if operation == "promote":
            warnings += _variant_drift(lab, f.variant, new)
    if conflicts:
        dispatched = operation == "promote" and dispatch_ops.dispatcher_in_place(lab, experiment.id)
        raise _conflict(experiment, operation, conflicts, dispatched=dispatched)
    others = lab._files_in_running_experiments()
    for step in steps:
        other = others.get(step.production)
        if other is not None and other != experiment.id and step.production not in in_place:
            warnings.append(
                f"{step.production} is under test in {other}, which has not ended: this {operation} changes the file "
                f"that {other} started from, so {other}'s promote will refuse until the file holds its snapshot again "
                f"(end {other} first, or roll it back and create it again afterwards)."
            )
    blocked = gitcommit.blockers(lab.project_root, [s.production for s in steps], new_contents)
    if blocked:
        raise InvalidState(f"Refusing to {operation} {experiment.id}: {blocked}. Nothing was changed.")
    return Plan(steps, "".join(diffs), warnings, tuple(in_place), tuple(restored))


def _what_changed(expected: bytes, current: bytes | None) -> tuple[str, str | None]:
    """(kind, detail): deleted, invisible (line endings, whitespace, a final newline, a BOM: the
    diff's lines look identical, so the detail says what differs) or edited."""
    if current is None:
        return "deleted", None
    invisible = deploy.invisible_difference(expected, current)
    return ("edited", None) if invisible is None else ("invisible", invisible)


def _promoted_since(
    lab: Lab, experiment: Experiment, production: str, digest: str | None, *, whatever_it_holds: bool = False
) -> str | None:
    """The id of another experiment promoted on `production` after `experiment` was, and still
    promoted, whose variant is what the file holds now (`digest`), or with `whatever_it_holds` the
    latest such one: promoted on top of `experiment`'s promotion, so that one's rollback waits. (One
    promoted before it was overwritten by its promotion and does not count.)"""
    if digest is None and not whatever_it_holds:
        return None
    since = _promotion_order(lab, experiment)
    later = [
        (_promotion_order(lab, other), other.id)
        for other in lab.experiments(["promoted"])
        if other.id != experiment.id
        and any(
            g.production == production
            # (a file the same in both arms was left as it was, when the experiment changed another: _plan)
            and (g.control_sha256 != g.treatment_sha256 or not _changes_some(other))
            and (whatever_it_holds or g.treatment_sha256 == digest)
            for g in other.files
        )
    ]
    return max((item for item in later if item[0] > since), default=(None, None))[1]


def _changes_some(experiment: Experiment) -> bool:
    """Whether any file of the experiment differs between its arms (then those the same in both are
    left as they are by promote and rollback)."""
    return any(f.control_sha256 != f.treatment_sha256 for f in experiment.files)


def _promotion_order(lab: Lab, experiment: Experiment) -> tuple[float, int]:
    """When `experiment` was promoted, as a sortable key: its end time, then its promote operation's
    id (two promotions within one clock tick: a test's clock, say)."""
    op = journal.latest(lab.store, experiment.id, "promote")  # (a rollback undone since may be the latest)
    ended = parse_iso(experiment.ended_at) if experiment.ended_at else float("-inf")
    return ended, op.id if op is not None else 0


def _conflict(
    experiment: Experiment,
    operation: str,
    conflicts: list[tuple[str, str, str | None, str]],
    *,
    dispatched: bool = False,
) -> Conflict:
    """The refusal: what happened to which file, and what to do about each kind of change."""
    when = "since the experiment started" if operation == "promote" else "after promotion"
    what = "; ".join(
        f"{path} was {'deleted' if kind == 'deleted' else 'edited'} {when}" + (f": {detail}" if detail else "")
        for path, kind, detail, _ in conflicts
    )
    kinds = {kind for _, kind, _, _ in conflicts}
    advice = ["Nothing was overwritten."]
    if operation == "promote" and "edited" in kinds:
        advice.append(
            "The experiment tested the old text, so its result does not cover the edit: restore the file to "
            "the snapshot (see the diff), or roll this experiment back and start a new one that tests the "
            "edited version."
        )
    if operation == "promote" and "deleted" in kinds and dispatched:
        advice.append(
            "The file held this experiment's dispatcher when it was deleted: dispatch off (or a rollback) puts "
            "the original back, and promote can then go ahead; if the command is meant to be gone, roll this "
            "experiment back and delete the file again afterwards."
        )
    elif operation == "promote" and "deleted" in kinds:
        deleted = " ".join(shlex.quote(path) for path, kind, _, _ in conflicts if kind == "deleted")
        advice.append(
            "Promoting would recreate a file someone deleted: if that was a mistake, restore it as it was at the "
            f"start (the diff shows its content; git restore -- {deleted}, if git has it) and promote again; if "
            "the file is meant to be gone, roll this experiment back."
        )
    if operation == "rollback" and "edited" in kinds:
        advice.append("Restore the promoted content (see the diff), or revert the file by hand.")
    if "invisible" in kinds:
        doing, state = ("promoting", "at the start") if operation == "promote" else ("rolling back", "as promoted")
        advice.append(
            f"The bytes differ although the lines read the same, and {doing} would silently undo that change: "
            f"save the file as it was {state} (line endings: the editor's line-ending setting, or git's "
            "core.autocrlf / .gitattributes if git converted them), then try again."
        )
    return Conflict(
        f"Refusing to {operation} {experiment.id}: {what}. {' '.join(advice)}",
        diff="".join(diff for *_, diff in conflicts),
    )


def _variant_drift(lab: Lab, variant: str, tested: str) -> list[str]:
    try:
        on_disk = read_regular(lab.project_root / variant)
    except OSError:
        return [f"The variant file {variant} is gone; the tested snapshot of it is what is promoted."]
    if deploy.sha256_hex(on_disk) != tested:
        return [
            f"{variant} was edited after the experiment started; the tested snapshot is what is promoted, not the edit."
        ]
    return []


def _result(
    lab: Lab,
    experiment: Experiment,
    operation: str,
    outcome: str,
    plan: Plan,
    *,
    reason: str | None,
    forced: bool = False,
    git: GitOutcome | None = None,
    against_policy: str | None = None,
    would_refuse: str | None = None,
) -> DeployResult:
    files = [
        FileOutcome(
            production=s.production,
            # a file that already held the new content held it before this call, too
            before_sha256=s.new_sha256 if s.production in plan.in_place else s.old_sha256,
            after_sha256=s.new_sha256,
            backup=s.backup,
        )
        for s in plan.steps
    ]
    verb = {
        "promoted": "Promoted",
        "rolled_back": "Rolled back",
        "stopped": "Stopped",
        "expired": "Expired",
        "dry_run": "Dry run, nothing changed:",
        "declined": "Declined, nothing changed:",
    }[outcome]
    summary = f"{verb} {experiment.id} ({experiment.name})"
    if files:
        summary += f"; {len(files)} file(s): {', '.join(f.production for f in files)}"
    if git is not None:
        summary += f"; git: {git.detail.rstrip('.')}"

    for note in _notes(experiment, operation, outcome, plan):
        summary += f". {note}"
    if would_refuse is not None:
        summary += f". The call itself would be refused: {would_refuse.rstrip('.')}"
    elif forced and against_policy is not None:
        summary += f"; forced against the policy, which says: {against_policy}"
    return DeployResult(
        experiment_id=experiment.id,
        operation=operation,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        status=experiment.status,
        reason=reason,
        forced=forced,
        against_policy=against_policy,
        would_refuse=would_refuse,
        actor=lab.actor,
        files=files,
        diff=plan.diff,
        git=git,
        warnings=plan.warnings,
        summary=summary + ".",
    )


def _notes(experiment: Experiment, operation: str, outcome: str, plan: Plan) -> list[str]:
    """Sentences for the summary: files that needed no write or were restored after a deletion,
    and, for a dry run, what the real call would do."""
    dry, promote = outcome == "dry_run", operation == "promote"
    if outcome not in ("dry_run", "promoted", "rolled_back"):
        return []
    doing = "promoting" if promote else "rolling back"
    notes = []
    for path in plan.in_place:
        held = "the tested variant" if promote else "the pre-experiment content"
        kept = " and keep the pre-experiment content as the backup a rollback restores" if promote else ""
        if dry:
            notes.append(
                f"{path} already holds {held}, so {doing} would not write it: it would record the "
                f"{'promotion' if promote else 'rollback'}{kept}, and commit the file only if git does not have "
                "it yet"
            )
        else:
            kept = "; the pre-experiment content is kept as the backup a rollback restores" if promote else ""
            notes.append(f"{path} already held {held}, so it was not written{kept}")
    for path in plan.restored:
        notes.append(
            f"{path} was deleted after promotion; rolling back would restore it with its pre-experiment content"
            if dry
            else f"{path} had been deleted after promotion; it is restored with its pre-experiment content"
        )
    if not dry:
        return notes
    written = [s.production for s in plan.steps if s.production not in plan.in_place + plan.restored]
    if written and promote:
        notes.append(f"Promoting would write the tested variant over {', '.join(written)} (backed up first) and commit")
    elif written:
        notes.append(
            f"Rolling back would restore the pre-experiment content of {', '.join(written)} (the promoted content is "
            "backed up first) and commit"
        )
    elif not plan.steps and not promote:
        if experiment.status == "draft":
            what = "discard the draft"
        else:
            what = f"stop the experiment after {experiment.trials_recorded} recorded trial(s), abandoning open ones"
        if plan.dispatcher is not None:
            notes.append(
                f"Rolling back would {what}; production was never changed: the dispatcher in {plan.dispatcher} is "
                "taken out (the original comes back byte for byte), and nothing is committed"
            )
        elif plan.recreated is not None:
            notes.append(
                f"Rolling back would {what}; production was never changed: {plan.recreated}, deleted while it held "
                "this experiment's dispatcher, is written back with its original content, and nothing is committed"
            )
        else:
            notes.append(f"Rolling back would {what}; production was never changed, so no file is touched or committed")
    return notes
