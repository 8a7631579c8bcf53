"""Auto mode (the seed's `--auto`): for every running experiment, analyse, decide, and act.

- the decision policy's `promote` is carried out for experiments created with `auto_promote`, its
  `rollback` for those with `auto_rollback`; otherwise it becomes a recommendation (an event,
  written once per change of advice);
- an active monitoring alert rolls an `auto_rollback` experiment back, and makes a rollback the
  recommendation for any other;
- `expire` (max_duration_days reached without a decision) ends the experiment; production keeps
  its original, so this needs no flag;
- `continue` changes nothing.

Idempotent: a second run right after the first finds nothing new to do (acted-on experiments are
no longer running; advice and alerts are deduplicated). Concurrent runs act once: every action
re-checks the status under the deploy lock and the journal admits one open operation per
experiment, so the slower run finds the experiment already promoted and reports it as skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import monitoring, operations, release
from .errors import Conflict, ExperimentError
from .outcomes import AutoAction, AutoItem, AutoReport, CriterionNote

if TYPE_CHECKING:
    from .lifecycle import Lab
    from .models import Experiment


WOULD: dict[str, AutoAction] = {"promote": "would_promote", "rollback": "would_rollback", "expire": "would_expire"}


def run_auto(lab: Lab, *, dry_run: bool = False) -> AutoReport:
    recovered = [] if dry_run else operations.recover(lab)
    items = [_guarded(lab, e, dry_run) for e in lab.experiments(["running"])]
    return AutoReport(dry_run=dry_run, items=items, recovered=recovered)


def _guarded(lab: Lab, e: Experiment, dry_run: bool) -> AutoItem:
    """One experiment's item; an analysis that raises skips it and not the others."""
    try:
        return _dry(lab, e) if dry_run else _one(lab, e, False)
    except ExperimentError:
        raise
    except Exception as exc:  # a defect in the analysis: the checks that need none still act
        from .analysis import analysis_failed

        if not dry_run:
            monitoring.check(lab, e.id)  # the error rate and floors (an alert auto_rollback acts on)
        alerts = [a.message for a in monitoring.alerts(lab, e.id, active_only=True)]
        item = AutoItem(
            experiment_id=e.id,
            name=e.name,
            decision="continue",
            action="skipped",
            rationale=analysis_failed(e.id, exc),
            alerts=alerts,
        )
        if alerts and e.auto_rollback:
            reason = "monitoring alert: " + "; ".join(alerts)
            if dry_run:
                item.action = "would_rollback"
            else:
                item.result = release.stop_on_alert(lab, e.id, reason=reason)
                item.action = "rolled_back"
            item.rationale = f"{reason} ({item.rationale})"
        return item


def _dry(lab: Lab, e: Experiment) -> AutoItem:
    """A dry run of one experiment: the real run's monitoring check too (an alert it would raise or
    clear, after a settings change say, decides as it would), rehearsed: what it writes is undone
    and nobody is notified. The dry run read the stored alerts and said 'recommend rollback' where
    the real run then promoted (from a review)."""
    from .analysis import load_engine

    load_engine()  # (scipy's import held every other writer ~0.9 s inside the rehearsal: from a review)
    _, decision = release.evaluate(lab, e)  # the analysis reads outside the rehearsal's write lock too
    items: list[AutoItem] = []
    lab.rehearse(lambda rehearsed: items.append(_one(rehearsed, e, True, decision)))
    return items[0]


def decide_one(lab: Lab, e: Experiment) -> AutoItem:
    """Auto mode for one running experiment (after a dispatched run: dispatch_ops.after_run)."""
    return _one(lab, e, dry_run=False)


def _one(lab: Lab, e: Experiment, dry_run: bool, decision: Any = None) -> AutoItem:
    if decision is None:
        _, decision = release.evaluate(lab, e)
    monitoring.check(lab, e.id, decision=decision)  # (a dry run's is rolled back: _dry)
    alerts = [a.message for a in monitoring.alerts(lab, e.id, active_only=True)]
    action, rationale = decision.action, decision.rationale
    # without auto_rollback: a recommendation, below; an experiment past its time expires all the same
    if action not in ("rollback", "expire") and alerts:
        action, rationale = "rollback", "monitoring alert: " + "; ".join(alerts)
    item = AutoItem(
        experiment_id=e.id,
        name=e.name,
        decision=decision.action,
        action="continue",
        rationale=rationale,
        driven_by=decision.driven_by,
        target_out_of_reach=decision.target_out_of_reach,
        criteria=[CriterionNote(name=c.name, met=c.met, detail=c.detail) for c in decision.criteria],
        alerts=alerts,
    )
    allowed = {"promote": e.auto_promote, "rollback": e.auto_rollback, "expire": True}.get(action)
    if allowed is None:
        return item
    if not allowed:
        item.action = "recommend_promote" if action == "promote" else "recommend_rollback"
        refusal = _refusal(lab, e, action, rationale)
        if refusal:  # a recommendation the tool would then refuse says so
            item.rationale = rationale = f"{rationale}. The {action} tool would refuse now: {refusal}"
        if not dry_run:
            _recommend(lab, e, action, rationale)
        return item
    if dry_run:
        refusal = _refusal(lab, e, action, rationale)  # the same checks as the real run
        if refusal:
            item.action = "skipped"
            item.rationale = f"{rationale}. Would not be done: {refusal}"
            return item
        item.action = WOULD[action]
        return item
    try:
        if action == "promote":
            # the rationale is the promotion's reason, as a rollback's: status, the event log, the commit
            # and the other sessions told of it say why ("promoted: Promoted (auto)" said nothing, from a review)
            item.result = release.promote(lab, e.id, auto=True, reason=rationale if len(rationale) <= 2000 else None)
            item.action = "promoted"
        elif action == "rollback":
            item.result = release.rollback(lab, e.id, reason=rationale, auto=True)
            item.action = "rolled_back"
        else:
            item.result = release.expire(lab, e.id, reason=rationale)
            item.action = "expired"
    except ExperimentError as exc:  # reported per experiment: another run got there first, a conflict...
        item.action = "skipped"
        now = lab.get(e.id).status
        item.rationale = f"{rationale}. Not done: " + (
            f"already {now.replace('_', ' ')} by a concurrent run." if now != "running" else str(exc)
        )
    return item


def _refusal(lab: Lab, e: Experiment, action: str, rationale: str) -> str | None:
    """Why a promote or rollback of `e` would be refused now (a production file edited since the
    start, say), from a dry run of it; None when it would go through."""
    try:
        if action == "promote":
            release.promote(lab, e.id, auto=True, dry_run=True)
        elif action == "rollback":
            release.rollback(lab, e.id, reason=rationale, auto=True, dry_run=True)
    except ExperimentError as exc:
        message = str(exc)
        if isinstance(exc, Conflict) and exc.diff:  # auto's report has no room for it: say where it is
            message += f" (the diff: {action} with dry_run, or `meta-experiment {action} {e.id} --dry-run`)"
        return message
    return None


def _recommend(lab: Lab, e: Experiment, action: str, rationale: str) -> None:
    """Record the advice once; the same advice again is not news. The check and the write are one
    write transaction, so auto runs at once (hooks, sessions) record it once."""
    with lab.store.transaction():
        previous = lab.events(e.id, kinds=["recommendation"])
        if previous and previous[-1].data.get("action") == action:
            return
        flag = "auto_promote" if action == "promote" else "auto_rollback"
        lab.event(
            e.id,
            "recommendation",
            f"Recommend {action}: {rationale} ({flag} is off, so auto mode does not act; use the {action} tool).",
            action=action,
        )
    lab.notify_changed(e.id)
