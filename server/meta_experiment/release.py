"""Promote, rollback and expire: whether production may change, and in which order it changes.

Promote (running -> promoted) and rollback of a promoted experiment (promoted -> rolled_back) run
the same sequence, under the project's deploy lock:

  1. check the status and that every production file holds exactly the expected content (the
     snapshot at start for promote, the promoted content for rollback) - else Conflict with a diff;
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
from typing import TYPE_CHECKING, Any

from . import deploy, gitcommit, journal, monitoring, operations, policy
from .errors import Conflict, InvalidInput, InvalidState
from .models import control_characters
from .outcomes import DeployResult, FileOutcome, GitOutcome
from .release_text import promote_message, rollback_message
from .stats.results import Analysis, Decision

if TYPE_CHECKING:
    from .lifecycle import Lab
    from .models import Experiment

NOT_NEEDED = GitOutcome(status="not_needed", detail="nothing to commit: production was never changed")


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


def _require(experiment: Experiment, statuses: tuple[str, ...], doing: str) -> None:
    if experiment.status not in statuses:
        why = f" ({experiment.status_reason})" if experiment.status_reason else ""
        raise InvalidState(
            f"Experiment {experiment.id} is {experiment.status}{why}; it cannot be {doing}. "
            "Check the status tool (or `meta-experiment status`) for what happened to it."
        )


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
    reason = _reason(reason)
    if force and not reason:
        raise InvalidInput(
            "Forcing a promotion needs a reason (reason in the tool, --reason in the CLI); it is recorded in "
            "the event log and the commit. "
            "Say why the experiment should be promoted although the policy does not recommend it."
        )
    experiment = lab.get(experiment_id)
    _require(experiment, ("running",), "promoted")
    analysis, decision = evaluate(lab, experiment)
    against = None
    if decision.action != "promote":
        unmet = [c.name for c in decision.criteria if c.met is False]
        named = "not met:" in decision.rationale  # the policy's rationale names them already
        against = decision.rationale + (f" (unmet: {', '.join(unmet)})" if unmet and not named else "")
    refusal = None
    if against is not None and not force:
        refusal = (
            f"{experiment_id} is not ready to promote: {against}. Keep recording trials (auto mode promotes "
            "when the policy says so), or force it with a reason (force=true; CLI: --force --reason) to promote anyway."
        )
        if not dry_run:
            raise InvalidState(refusal)
    how = "auto" if auto else "manual"
    message = promote_message(experiment, analysis, how, reason if force else None)
    if dry_run:  # the diff even when the call itself would be refused: the person can see what is at stake
        steps, diff, warnings = _plan(lab, experiment, "promote")
        return _result(
            lab,
            experiment,
            "promote",
            "dry_run",
            steps,
            diff,
            warnings,
            reason=reason,
            forced=force,
            against_policy=against,
            would_refuse=refusal,
        )
    # Under the lock, first the status: a concurrent run may have promoted it while we analysed
    # (then the files hold the new content, and a conflict would be the wrong message).
    steps, diff, warnings, git = _journaled(
        lab,
        experiment,
        "promote",
        ("running", "promoted"),
        reason=reason,
        message=message,
        data={"how": how, "forced": force, "decision": decision.action, "rationale": decision.rationale},
    )
    return _result(
        lab,
        lab.get(experiment_id),
        "promote",
        "promoted",
        steps,
        diff,
        warnings,
        reason=reason,
        forced=force,
        git=git,
        against_policy=against,
    )


def _journaled(
    lab: Lab,
    experiment: Experiment,
    operation: str,
    transition: tuple[str, str],
    *,
    reason: str | None,
    message: str,
    data: dict[str, Any],
) -> tuple[list[deploy.FileStep], str, list[str], GitOutcome]:
    """Run one promote or rollback under the deploy lock: check the status again, plan the file
    steps, back the old contents up, write the journal row (in the transaction that re-checks the
    status), then apply, mark and commit (operations.execute)."""
    from_status, to_status = transition
    verb = "promoted" if operation == "promote" else "rolled back"
    with deploy.deploy_lock(lab.state_dir):
        _require(lab.get(experiment.id), (from_status,), verb)
        steps, diff, warnings = _plan(lab, experiment, operation)
        steps = operations.backup(lab, steps)
        with lab.store.transaction():
            _require(lab.get(experiment.id), (from_status,), verb)
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
    return steps, diff, warnings, git


# -- rollback and expiry ------------------------------------------------------------------------------


def rollback(
    lab: Lab, experiment_id: str, *, reason: str | None, dry_run: bool = False, auto: bool = False
) -> DeployResult:
    """Stop a running experiment or discard a draft (production untouched), or restore the
    pre-experiment content of a promoted one. The reason is required and recorded."""
    reason = _reason(reason)
    if not reason:
        raise InvalidInput("A rollback needs a reason (recorded in the event log and the commit message).")
    experiment = lab.get(experiment_id)
    _require(experiment, ("draft", "running", "promoted"), "rolled back")
    if experiment.status in ("draft", "running"):
        if dry_run:
            return _result(lab, experiment, "rollback", "dry_run", [], "", [], reason=reason)
        return _stop(lab, experiment_id, "rolled_back", reason, auto=auto)
    how = "auto" if auto else "manual"
    steps, diff, warnings = _plan(lab, experiment, "rollback")
    if dry_run:
        return _result(lab, experiment, "rollback", "dry_run", steps, diff, warnings, reason=reason)
    analysis = lab.analyze(experiment_id)
    message = rollback_message(experiment, analysis, reason, how)
    steps, diff, warnings, git = _journaled(
        lab, experiment, "rollback", ("promoted", "rolled_back"), reason=reason, message=message, data={"how": how}
    )
    return _result(
        lab, lab.get(experiment_id), "rollback", "rolled_back", steps, diff, warnings, reason=reason, git=git
    )


def expire(lab: Lab, experiment_id: str, *, reason: str) -> DeployResult:
    """End a running experiment that reached max_duration_days; production keeps its original."""
    return _stop(lab, experiment_id, "expired", reason, auto=True)


def _stop(lab: Lab, experiment_id: str, to_status: str, reason: str, *, auto: bool) -> DeployResult:
    how = "auto" if auto else "manual"
    with deploy.deploy_lock(lab.state_dir), lab.store.transaction():
        experiment = lab.get(experiment_id)
        _require(experiment, ("draft", "running") if to_status == "rolled_back" else ("running",), "stopped")
        label = "Expired" if to_status == "expired" else f"Rolled back ({how})"
        lab.store.update_experiment(
            experiment_id, status=to_status, status_reason=f"{label}: {reason}", ended_at=lab.clock()
        )
        abandoned = lab.store.abandon_trials(experiment_id)
        monitoring.close_alerts(lab, experiment_id, to_status.replace("_", " "))
        lab.event(
            experiment_id,
            to_status,
            f"{label} after {experiment.trials_recorded} trials: {reason}. Production was never changed.",
            reason=reason,
            how=how,
            trials=experiment.trials_recorded,
            abandoned_trials=abandoned,
        )
    lab.notify_changed(experiment_id)
    outcome = "expired" if to_status == "expired" else "stopped"
    return _result(
        lab,
        lab.get(experiment_id),
        "expire" if outcome == "expired" else "rollback",
        outcome,
        [],
        "",
        [],
        reason=reason,
        git=NOT_NEEDED,
    )


# -- the shared sequence -----------------------------------------------------------------------------


def _plan(lab: Lab, experiment: Experiment, operation: str) -> tuple[list[deploy.FileStep], str, list[str]]:
    """Steps, the unified diff of production and warnings; Conflict (with a diff, nothing
    written) when a production file no longer holds the expected content."""
    steps, diffs, conflicts, warnings = [], [], [], []
    for f in experiment.files:
        if operation == "promote":
            old, new, expected, target = f.control_sha256, f.treatment_sha256, "at experiment start", "variant"
        else:
            old, new, expected, target = f.treatment_sha256, f.control_sha256, "as promoted", "pre-experiment"
        current = deploy.read_current(lab.project_root, f.production)
        old_content, new_content = operations.blob(lab, old), operations.blob(lab, new)
        if current is None or deploy.sha256_hex(current) != old:
            state = "was deleted" if current is None else "was edited"
            conflicts.append(
                (
                    f.production,
                    state,
                    deploy.unified_diff(
                        f.production, old_content, current, before_label=expected, after_label="now on disk"
                    ),
                )
            )
            continue
        steps.append(deploy.FileStep(f.production, old, new))
        diffs.append(
            deploy.unified_diff(f.production, current, new_content, before_label="production", after_label=target)
        )
        if operation == "promote":
            warnings += _variant_drift(lab, f.variant, new)
    if conflicts:
        what = "; ".join(
            f"{path} {state} {'since the experiment started' if operation == 'promote' else 'after promotion'}"
            for path, state, _ in conflicts
        )
        advice = (
            "Nothing was overwritten. The experiment tested the old text, so its result does not cover the edit: "
            "restore the file to the snapshot (see the diff), or roll this experiment back and start a new one "
            "that tests the edited version."
            if operation == "promote"
            else "Nothing was overwritten. Restore the promoted content (see the diff), or revert the file by hand."
        )
        raise Conflict(
            f"Refusing to {operation} {experiment.id}: {what}. {advice}", diff="".join(d for *_, d in conflicts)
        )
    blocked = gitcommit.blockers(lab.project_root, [s.production for s in steps])
    if blocked:
        raise InvalidState(f"Refusing to {operation} {experiment.id}: {blocked}. Nothing was changed.")
    return steps, "".join(diffs), warnings


def _variant_drift(lab: Lab, variant: str, tested: str) -> list[str]:
    try:
        on_disk = (lab.project_root / variant).read_bytes()
    except OSError:
        return [f"The variant file {variant} is gone; the tested snapshot of it was promoted."]
    if deploy.sha256_hex(on_disk) != tested:
        return [f"{variant} was edited after the experiment started; the tested snapshot was promoted, not the edit."]
    return []


def _result(
    lab: Lab,
    experiment: Experiment,
    operation: str,
    outcome: str,
    steps: list[deploy.FileStep],
    diff: str,
    warnings: list[str],
    *,
    reason: str | None,
    forced: bool = False,
    git: GitOutcome | None = None,
    against_policy: str | None = None,
    would_refuse: str | None = None,
) -> DeployResult:
    files = [
        FileOutcome(production=s.production, before_sha256=s.old_sha256, after_sha256=s.new_sha256, backup=s.backup)
        for s in steps
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
        if git.status == "failed" and files:
            paths = " ".join(shlex.quote(f.production) for f in files)
            summary += (
                f". The files are changed on disk but not committed; once git's problem is fixed, run: "
                f"git commit -m {shlex.quote(f'experiment: {verb.lower()} {experiment.id}')} -- {paths}"
            )
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
        diff=diff,
        git=git,
        warnings=warnings,
        summary=summary + ".",
    )
