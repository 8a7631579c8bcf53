"""Running a journaled promote or rollback to its end: back up, apply the files one atomic rename
at a time, record the new status, commit to git - and, at every start of the server or CLI, finish
or undo any operation that a killed process left unfinished (`recover`).

Recovery rolls *forward* when every file holds its old or its new content: the operation had
passed every check (and, for a manual one, the person's confirmation) before its journal row was
written, so finishing it is what was asked for. If a file holds anything else (someone edited it
meanwhile), it puts back the old content of the files that hold exactly the new content, overwrites
nothing else, marks the operation `undone` and reports the conflict. Either way an event records
what happened, and the status report shows it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from . import deploy, gitcommit, journal, monitoring
from .errors import Conflict, DeployError, ExperimentError, PathError
from .files import BACKUP_DIR_NAME, backup_bytes
from .outcomes import GitOutcome, RecoveryNote

if TYPE_CHECKING:
    from .lifecycle import Lab


def blob(lab: Lab, digest: str) -> bytes:
    content = lab.store.blob(digest)
    if content is None:
        raise DeployError(f"The snapshot {digest[:12]} is missing from the state database; nothing was written.")
    return content


def backup(lab: Lab, steps: list[deploy.FileStep], *, absent: Collection[str] = ()) -> list[deploy.FileStep]:
    """Back the current (old) content up in the state folder before anything is overwritten; a
    path in `absent` no longer exists, so there is nothing of it to keep."""
    _remove_stale_backup_temps(lab)
    out = []
    for step in steps:
        if step.production in absent:
            out.append(step)
            continue
        path = backup_bytes(lab.state_dir, blob(lab, step.old_sha256))
        out.append(
            deploy.FileStep(
                step.production, step.old_sha256, step.new_sha256, path.relative_to(lab.state_dir).as_posix()
            )
        )
    deploy.checkpoint("backup_written")
    return out


def _remove_stale_backup_temps(lab: Lab, older_than: float = 3600.0) -> None:
    """A process killed while writing a backup leaves a temp file in `<state>/backups/`; remove
    those older than an hour (younger ones may belong to a write in progress, e.g. an export)."""
    folder = lab.state_dir / BACKUP_DIR_NAME
    cutoff = time.time() - older_than
    for stale in folder.glob(".*.tmp") if folder.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):
            if stale.stat().st_mtime < cutoff:
                stale.unlink()


COMMIT_PENDING = (
    "not committed yet: a separate process makes the git commit (a hook may run for 30 s, git's commit hooks "
    "longer); the status report shows it when done"
)


def execute(lab: Lab, operation_id: int, *, recovered: bool = False) -> GitOutcome:
    """Run a journaled operation from its current phase to `done` (or `undone`). A recovery whose
    commit git's index.lock still blocks leaves it for the next one (a git may still be making it)."""
    op = journal.load(lab.store, operation_id)
    if op.phase == "applying":
        try:
            deploy.apply_steps(
                lab.project_root,
                op.steps,
                lambda d: blob(lab, d),
                absent_ok=restores_deleted(op),
                executable=op.data.get("executable", ()),
            )
        except (Conflict, PathError, OSError) as exc:
            _undo(lab, op, exc, recovered=recovered)
        deploy.checkpoint("files_applied")
        _finish(lab, op, recovered=recovered)
        deploy.checkpoint("state_marked")
    if lab.commit_later and gitcommit.inside_repository(lab.project_root):
        # in a hook: the files and the status are done; the commit (and the repository's commit hooks,
        # a test suite say) is left to `meta-experiment recover`, which the hook starts on its own
        # (outside a repository there is nothing to wait for: commit_paths says so at once)
        return GitOutcome(status="pending", detail=COMMIT_PENDING)
    made = None
    if recovered:  # the git commit of the process that was killed may still run (its hooks), or be made
        locked = not gitcommit.wait_for_other_git(lab.project_root, timeout=lab.git_wait)
        made = gitcommit.last_commit(lab.project_root, op.paths, op.commit_message)
        if locked and made is None:
            # no commit now (it would fail on the lock, and git's advice to remove the lock is wrong while
            # a git runs): the operation stays unfinished for the next recovery
            return GitOutcome(status="pending", detail=gitcommit.LOCKED)
    if made is not None:
        git = GitOutcome(status="committed", commit=made, detail=f"committed {made[:12]}")
    else:
        written = {s.production: blob(lab, s.new_sha256) for s in op.steps}
        git = gitcommit.commit_paths(lab.project_root, op.paths, op.commit_message, written)
    deploy.checkpoint("committed")
    _close(lab, op, git, rewritten=_rewritten(lab, op, git._hook_output) if git.status == "failed" else {})
    return git


def _rewritten(lab: Lab, op: journal.Operation, output: str) -> dict[str, str]:
    """After a refused commit whose hook says it rewrote files (pre-commit's fixers rewrite the
    file and fail the commit): {path: digest} of those files as they are now, read at once under the
    deploy lock: the version of the operation's content the person then commits as advised
    (release_status.hook_version). A hook that says nothing of the kind (a test suite) rewrote
    nothing, and a file changed meanwhile is someone's edit. Their content is kept as a snapshot."""
    if not gitcommit.says_it_rewrote(output):  # the hooks' whole output, not the first lines of it
        return {}
    out = {}
    for step in op.steps:
        try:
            current = deploy.read_current(lab.project_root, step.production)
        except (PathError, OSError):
            continue
        if current is not None and deploy.sha256_hex(current) not in (step.new_sha256, step.old_sha256):
            out[step.production] = lab.store.put_blob(current)
    return out


def _close(lab: Lab, op: journal.Operation, git: GitOutcome, *, rewritten: dict[str, str] | None = None) -> None:
    """The operation is done: its git outcome in the journal and the event log (with the files a
    refusing commit hook rewrote, if any: `_rewritten`)."""
    with lab.store.transaction():
        journal.set_phase(lab.store, op.id, "done", git=git)
        lab.event(
            op.experiment_id,
            "git",
            f"{op.operation.capitalize()}: {git.detail}",
            operation_id=op.id,
            **git.model_dump(exclude={"detail"}),
            **({"rewritten_by_hook": rewritten} if rewritten else {}),
        )
    lab.notify_changed(op.experiment_id)


def restores_deleted(op: journal.Operation) -> list[str]:
    """Paths a rollback recreates because they were deleted after promotion (journal data)."""
    return list(op.data.get("restores_deleted", ()))


def _undo(lab: Lab, op: journal.Operation, cause: Exception, *, recovered: bool) -> None:
    """A file changed under the operation (or could not be written): put back what the operation
    wrote, overwrite nothing else, close the journal row, and raise a domain error."""
    try:
        restored = deploy.undo_steps(
            lab.project_root,
            op.steps,
            lambda d: blob(lab, d),
            absent_ok=restores_deleted(op),
            in_place=op.data.get("unchanged", ()),
        )
    except (PathError, OSError) as exc:
        raise DeployError(
            f"The {op.operation} of {op.experiment_id} stopped ({cause}) and its own changes could not be put "
            f"back yet ({exc}). Production files each hold either their old or new content; the operation will "
            "be finished or undone at the next start. Nothing was lost: backups are in the state folder."
        ) from exc
    message = (
        f"{'Interrupted ' if recovered else ''}{op.operation} of {op.experiment_id} undone: {cause} "
        f"Files put back to their previous content: {', '.join(restored) or 'none needed'}; "
        f"the experiment stays {op.from_status}."
    )
    with lab.store.transaction():
        journal.set_phase(lab.store, op.id, "undone")
        lab.event(
            op.experiment_id, "deploy_undone", message, operation_id=op.id, restored=restored, recovered=recovered
        )
    lab.notify_changed(op.experiment_id)
    if isinstance(cause, Conflict):
        raise Conflict(message, diff=cause.diff) from cause
    if isinstance(cause, PathError):
        raise PathError(message) from cause
    raise DeployError(message) from cause


def _finish(lab: Lab, op: journal.Operation, *, recovered: bool) -> None:
    how = op.data.get("how", "manual")
    if op.operation == "promote":
        label = f"Promoted ({how}{', forced' if op.data.get('forced') else ''})"
    else:
        label = f"Rolled back ({how}) after promotion"
    reason = f"{label}: {op.reason}" if op.reason else label
    notes = ""
    if op.data.get("unchanged"):
        notes += f" ({', '.join(op.data['unchanged'])} already held the new content and was not written)"
    if restores_deleted(op):
        notes += f" ({', '.join(restores_deleted(op))} had been deleted and was restored)"
    with lab.store.transaction():
        lab.store.update_experiment(op.experiment_id, status=op.to_status, status_reason=reason, ended_at=lab.clock())
        if op.operation == "promote":
            for step in op.steps:
                lab.store.set_file_backup(op.experiment_id, step.production, step.backup)
            lab.store.abandon_trials(op.experiment_id)
            monitoring.close_alerts(lab, op.experiment_id, "promoted")
        journal.set_phase(lab.store, op.id, "applied")
        lab.event(
            op.experiment_id,
            "promoted" if op.operation == "promote" else "rolled_back",
            f"{reason}. Files: {', '.join(op.paths)}{notes}"
            + (" (finished on restart after an interruption)" if recovered else ""),
            operation_id=op.id,
            how=how,
            forced=bool(op.data.get("forced")),
            decision=op.data.get("decision"),  # the policy's verdict then: an export keeps it (release_status)
            reason=op.reason,
            recovered=recovered,
            files={s.production: {"before": s.old_sha256, "after": s.new_sha256, "backup": s.backup} for s in op.steps},
        )


# -- recovery -----------------------------------------------------------------------------------------


def recover(lab: Lab) -> list[RecoveryNote]:
    """Finish or undo every operation that a killed process left unfinished (see the module doc).
    Cheap when there is none: one indexed SELECT."""
    if not journal.unfinished_ids(lab.store):
        return []
    with deploy.deploy_lock(lab.state_dir, wait=None) as locked:
        if not locked:  # (a hook's operation whose commit alone is left is no news: its Git line says so)
            ops = [journal.load(lab.store, i) for i in journal.unfinished_ids(lab.store)]
            return [_in_progress(op) for op in ops if not (op.phase == "applied" and op.actor == "hook")]
        return recover_held(lab)


def recover_held(lab: Lab, when: str = "on restart") -> list[RecoveryNote]:
    """`recover` for a caller that holds the deploy lock already (a promote, rollback or stop about
    to act): every unfinished operation is then one whose process died, or gave up on it, and is
    finished or undone before the caller reads the experiment's status."""
    notes = []
    for operation_id in journal.unfinished_ids(lab.store):
        op = journal.load(lab.store, operation_id)
        if lab.commit_later and op.phase == "applied":
            continue  # only its git commit is left, which a hook has no time for: `recover` makes it
        try:
            git = execute(lab, operation_id, recovered=True)
        except (ExperimentError, OSError) as exc:
            undone = journal.load(lab.store, operation_id).phase == "undone"
            notes.append(_note(op, "undone" if undone else "failed", str(exc)))
            continue
        if op.phase == "applied" and op.actor == "hook":  # a hook's promote or rollback left its commit
            # (not an interruption: the "git" event _close wrote is its record, as for any commit)
            made = {"committed": "was committed", "failed": "could not be committed"}.get(git.status, "was finished")
            notes.append(
                RecoveryNote(
                    operation_id=op.id,
                    experiment_id=op.experiment_id,
                    operation=op.operation,  # type: ignore[arg-type]
                    outcome="finished",
                    message=f"The {op.operation} of {op.experiment_id} that a hook made {made} {when}; "
                    f"git: {git.detail}",
                    git=git,
                )
            )
            continue
        earlier = [e for e in lab.events(op.experiment_id, kinds=["recovered"]) if e.data.get("operation_id") == op.id]
        if earlier and git.status == "pending":  # still waiting for git's lock: nothing new to log
            note = _note(op, "finished", f"its git commit still waits ({when}); git: {git.detail}", git)
        elif earlier:  # finished by an earlier recovery, which left the commit; made now (or given up)
            note = _note(op, "finished", f"the git commit an earlier recovery left, {when}: {git.detail}", git)
            lab.event(op.experiment_id, "recovered", note.message, operation_id=op.id, phase=op.phase, commit=True)
        else:
            note = _note(op, "finished", f"finished {when} ({op.phase} when interrupted); git: {git.detail}", git)
            lab.event(op.experiment_id, "recovered", note.message, operation_id=op.id, phase=op.phase)
        notes.append(note)
    return notes


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that stopped a promote or rollback, with what was then done about it (for the CLI
    to say)."""

    def __init__(self, said: list[str]) -> None:
        super().__init__()
        self.said = said


class Cancelled(Exception):
    """What stopped an operation a person interrupted."""


def cancel_held(lab: Lab, operation_id: int) -> list[str]:
    """After a Ctrl-C, with the deploy lock still held (a process waiting for it would otherwise
    take the operation for a dead one's and finish it): undo the operation if the experiment's
    status had not changed yet (files put back, as for a conflict); if it had, close it without
    running the commit again (its hook may be what was interrupted), saying what to run. Returns
    what happened; a second Ctrl-C leaves the operation to recovery, and says so."""
    if operation_id not in journal.unfinished_ids(lab.store):
        if not journal.exists(lab.store, operation_id):
            return []  # the row never committed: nothing began
        done = journal.load(lab.store, operation_id)  # it had just finished: say so
        said = f"; git: {done.git.detail}" if done.git is not None else ""
        return [f"The {done.operation} of {done.experiment_id} was complete when interrupted{said}"]
    op = journal.load(lab.store, operation_id)
    try:
        if op.phase == "applying":
            try:
                _undo(lab, op, Cancelled("Interrupted (Ctrl-C) before it was done."), recovered=False)
            except ExperimentError as exc:
                return [f"Cancelled: {exc}"]
            return []  # _undo always raises
        made = gitcommit.last_commit(lab.project_root, op.paths, op.commit_message)
        if made is not None:  # the commit went through before the Ctrl-C
            git = GitOutcome(status="committed", commit=made, detail=f"committed {made[:12]}")
        elif not gitcommit.uncommitted(lab.project_root, op.paths):  # nothing to commit, or no repository
            git = gitcommit.commit_paths(lab.project_root, op.paths, op.commit_message)  # no hook runs then
        else:
            git = gitcommit.not_committed(
                "the commit was interrupted (Ctrl-C)", op.paths, op.commit_message, lab.project_root
            )
        _close(lab, op, git)
        return [
            f"The {op.operation} of {op.experiment_id} was done when interrupted (its status was recorded); "
            f"git: {git.detail}"
        ]
    except KeyboardInterrupt:
        return [
            f"Interrupted again: the {op.operation} of {op.experiment_id} is left unfinished; the next promote or "
            "rollback in this project, or the next start of the server or CLI, finishes or undoes it."
        ]


def _in_progress(op: journal.Operation) -> RecoveryNote:
    return RecoveryNote(
        operation_id=op.id,
        experiment_id=op.experiment_id,
        operation=op.operation,  # type: ignore[arg-type]
        outcome="busy",
        message=f"The {op.operation} of {op.experiment_id} is in progress in another process (it holds the deploy "
        "lock); if that process is killed, the next start of the server or CLI finishes or undoes it",
    )


def _note(op: journal.Operation, outcome: str, detail: str, git: GitOutcome | None = None) -> RecoveryNote:
    return RecoveryNote(
        operation_id=op.id,
        experiment_id=op.experiment_id,
        operation=op.operation,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        message=detail
        if detail.startswith("Interrupted ")
        else f"Interrupted {op.operation} of {op.experiment_id}: {detail}",
        git=git,
    )
