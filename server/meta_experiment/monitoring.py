"""Continuous monitoring of running experiments (the seed's "Continuous Monitoring"), after every
recorded trial and in auto mode. Three checks, each guarded against tiny samples:

- error rate: the treatment's failure rate (trials recorded with success=false) against the
  control's. Alert only when each arm has at least `min_trials_per_arm` recorded trials, the
  treatment has at least `min_failures` failures, its rate is at least `error_rate_ratio` times the
  control's, AND the evidence that the treatment fails more often is strong by an always-valid
  measure (alert_evidence.py: `alert_e_value` >= 1 / ALERT_ALPHA). A rate ratio alone on small
  counts is noise: 1 failure in 5 trials against 0 in 5 is "infinitely" worse and means nothing.
- floor (alert kind "satisfaction"; the rules are in floors.py): the treatment's mean of a
  higher_is_better metric below its floor (its own, or the project's `satisfaction_floor` for a
  satisfaction score) AND below the control's, each with always-valid evidence, once each arm has
  `min_trials_per_arm` values of the metric.
- performance regression: the decision policy says `rollback` (the statistics issue's always-valid
  test of the primary metric and guardrails beyond `max_regression`), evaluated once the required
  sample size is reached - never the seed's "last three trials". A full analysis costs ~2 ms, so on
  the per-trial path it runs after every trial up to 100 recorded trials and then after every
  (n // 50)-th (`regression_due`): the always-valid test holds under any schedule of looks, and a
  regression is seen at most 2% of the trials later. Auto mode always evaluates it.

Alerts are deduplicated: one row per (experiment, kind) that is raised once (an `alert` event),
stays quiet while the condition holds, and is cleared (an `alert_cleared` event) when its effect is
gone - the rate ratio below 0.9 x the threshold or its evidence down to a tenth of the raising level, the
mean back at the floor or at the control's, the policy no longer saying rollback - not merely when
a p-value wobbles back over 0.05 (that would raise it again and again). A newly raised alert on an
experiment created with `auto_rollback` stops it at once (production was never touched while it ran).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .alert_evidence import ALERT_ALPHA, Finding, alert_e_value, evidence_text
from .errors import ExperimentError
from .floors import floors_finding, may_have_floor, metric_floors
from .models import iso
from .outcomes import Alert
from .settings import SETTINGS_FILE_NAME, MonitoringSettings
from .store import finite, success_clusters, to_json

if TYPE_CHECKING:
    from .lifecycle import Lab

SETTINGS_RECHECK_SECONDS = 1.0
_settings_cache: dict[Path, tuple[float, tuple[int, int], MonitoringSettings]] = {}


def monitoring_settings(lab: Lab) -> MonitoringSettings:
    """The [monitoring] settings; this runs per trial, so the files are looked at (stat) at most
    once a second and parsed again only when one of them changed."""
    now = time.monotonic()
    cached = _settings_cache.get(lab.state_dir)
    if cached is not None and now - cached[0] < SETTINGS_RECHECK_SECONDS:
        return cached[2]

    def mtime(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return 0

    key = (mtime(lab.state_dir / SETTINGS_FILE_NAME), mtime(lab.project_root / "pyproject.toml"))
    if cached is not None and cached[1] == key:
        settings = cached[2]
    else:
        try:
            settings = lab.settings().monitoring
        except ExperimentError:
            # A typo in a settings file must not refuse a measurement (it refused only failed runs,
            # whose error-rate check reads these settings): monitoring keeps its defaults until the
            # file is fixed, and the commands that read the file say what is wrong with it.
            settings = MonitoringSettings()
    _settings_cache[lab.state_dir] = (now, key, settings)
    return settings


def forget_settings(state_dir: Path) -> None:
    """Drop the cached [monitoring] settings (this process just changed them)."""
    _settings_cache.pop(state_dir, None)


# -- the checks -------------------------------------------------------------------------------------


def error_rate_finding(
    counts: dict[str, dict[str, int]],
    s: MonitoringSettings,
    *,
    active: bool = False,
    design_effects: tuple[float, float] = (1.0, 1.0),
) -> Finding:
    """`active`: the alert is up; it stays up until the rate ratio itself falls below 0.9 x the
    threshold or the evidence to a tenth of the raising level (hysteresis: evidence hovering around the
    threshold must not raise and clear it on alternate trials), or no spike is left (fewer failures
    than min_failures, or a rate no higher than the control's: voided failures). `design_effects`
    (control, treatment): with repeated units, each arm's variance is multiplied by its design
    effect at the pooled rate, as the analysis does (binary.clustered_z)."""
    c, t = counts.get("control", {}), counts.get("treatment", {})
    c_n, t_n = c.get("recorded", 0), t.get("recorded", 0)
    c_f, t_f = c_n - c.get("successes", 0), t_n - t.get("successes", 0)
    c_rate, t_rate = (c_f / c_n if c_n else 0.0), (t_f / t_n if t_n else 0.0)
    if active:  # cleared once the rate ratio is clearly under the threshold, or no longer a spike at all
        # (RATIO_BAND: a ratio sitting at the threshold cleared and raised it on alternate trials)
        if t_rate < RATIO_BAND * s.error_rate_ratio * c_rate or t_f < s.min_failures or t_rate <= c_rate:
            return None
        # ... or once the evidence has faded to a tenth of what raises it: with no failure in the
        # control the ratio never falls (10 early failures, then 2,000 clean runs, kept it up for
        # good: from a review); the band keeps evidence wobbling near the level from toggling it
        found = _rate_evidence(c_f, c_n, t_f, t_n, design_effects)
        return None if found is None or found[0] < 1 / ALERT_ALPHA / CLEAR_FACTOR else ("", {})
    if c_n < s.min_trials_per_arm or t_n < s.min_trials_per_arm or t_f < s.min_failures:
        return None
    if t_rate < s.error_rate_ratio * c_rate:
        return None
    found = _rate_evidence(c_f, c_n, t_f, t_n, design_effects)
    if found is None:
        return None
    e, z = found
    if e < 1 / ALERT_ALPHA:
        return None
    ratio = "no failures in the control" if c_f == 0 else f"{t_rate / c_rate:.1f}x the control's"
    return (
        f"Error rate spike: treatment {t_rate:.0%} ({t_f}/{t_n} failed) vs control {c_rate:.0%} ({c_f}/{c_n}), "
        f"{ratio} (alert at {s.error_rate_ratio:g}x; {evidence_text(e)})",
        {"treatment": [t_f, t_n], "control": [c_f, c_n], "z": z, "e_value": e, "p_value": min(1.0, 1 / e)},
    )


CLEAR_FACTOR = 10.0  # an active error-rate alert clears when its evidence falls under 1/10 of the raising level
RATIO_BAND = 0.9  # ... or its rate ratio under 0.9 x error_rate_ratio (1.8x for the default 2x)


def _rate_evidence(
    c_f: int, c_n: int, t_f: int, t_n: int, design_effects: tuple[float, float]
) -> tuple[float, float] | None:
    """(e, z): the always-valid e-value that the treatment fails more often than the control, and
    the z it comes from; None when no z exists (no failures at all, an empty arm)."""
    from .stats.binary import clustered_z

    k_c, k_t = design_effects
    # z of the failure rates, treatment minus control, pooled (statsmodels proportions_ztest; with
    # repeated units each arm's variance is inflated by its design effect, as the analysis does)
    z = clustered_z(c_f, c_n, k_c, t_f, t_n, k_t)
    if z is None:
        return None
    m_c, m_t = c_n / k_c, t_n / k_t
    e = alert_e_value(z, 2 * m_c * m_t / (m_c + m_t))  # the per-arm count of a balanced design
    return e, z


def regression_finding(decision: Any) -> Finding:
    if decision is None or decision.action != "rollback":
        return None
    return (f"Performance regression: {decision.rationale}", {"driven_by": decision.driven_by})


def check(
    lab: Lab, experiment_id: str, *, decision: Any = None, regression: bool = False, metrics: Any = None
) -> list[Alert]:
    """Run the checks on a running experiment and return the alerts newly raised by this call.
    `regression`: also evaluate the decision policy (when `decision` is not given). `metrics`: the
    experiment's metric specs when the caller has them (the per-trial path)."""
    s = monitoring_settings(lab)
    if metrics is None:
        definition = lab.definition(experiment_id)
        if definition.status != "running":
            return []
        metrics = definition.metrics
    floors = metric_floors(metrics, s)
    with lab.store.reading() as db:  # one snapshot for all the reads
        active = _active_kinds(db, experiment_id)
        counts = lab.store.arm_counts(experiment_id)
        running = lab.store.running_stats(experiment_id) if floors else {}
        floored = _alert_metric(db, experiment_id, "satisfaction") if floors and "satisfaction" in active else None
    findings: dict[str, Finding] = {"error_rate": error_rate_finding(counts, s, active="error_rate" in active)}
    if findings["error_rate"] is not None and "error_rate" not in active:
        # With repeated units the evidence is weaker (design effects >= 1), so it is looked at
        # only when the rule fires without them: one query fewer on the usual per-trial path.
        with lab.store.reading():  # the counts and the sums from one snapshot
            counts = lab.store.arm_counts(experiment_id)
            success_sums = lab.store.success_cluster_sums(experiment_id)
        if success_sums:
            from .stats.analysis import rate_summary
            from .stats.summary import rate_design_effects

            c, t = (
                rate_summary(
                    counts[arm]["successes"],
                    counts[arm]["recorded"],
                    success_clusters(counts[arm], success_sums.get(arm)),
                )
                for arm in ("control", "treatment")
            )
            if 0 < c.clusters < 2 or 0 < t.clusters < 2:
                findings["error_rate"] = None  # one unit in an arm: no evidence about the arms (metric._binary)
            else:
                deffs = rate_design_effects(c, t)  # as the analysis of success_rate (metric._binary)
                findings["error_rate"] = error_rate_finding(counts, s, design_effects=deffs)
    up = "satisfaction" in active
    if floors:
        findings["satisfaction"] = floors_finding(
            lab, experiment_id, floors, running, s, active=up, active_metric=floored
        )
    elif up:
        findings["satisfaction"] = None  # raised by a floor no longer checked (one on a lower_is_better metric)
    if decision is None and regression:
        from .release import evaluate

        decision = evaluate(lab, lab.get(experiment_id))[1]
    if decision is not None:
        findings["performance_regression"] = regression_finding(decision)
    return _sync(lab, experiment_id, findings, active)


def _alert_metric(db: Any, experiment_id: str, kind: str) -> str | None:
    """The metric an active alert of `kind` is about (its data's "metric"), if it says."""
    row = db.execute(
        "SELECT data_json FROM alerts WHERE experiment_id = ? AND kind = ? AND cleared_at IS NULL",
        (experiment_id, kind),
    ).fetchone()
    metric = json.loads(row[0]).get("metric") if row is not None else None
    return metric if isinstance(metric, str) else None


def _active_kinds(db: Any, experiment_id: str) -> set[str]:
    rows = db.execute("SELECT kind FROM alerts WHERE experiment_id = ? AND cleared_at IS NULL", (experiment_id,))
    return {r[0] for r in rows}


def _sync(lab: Lab, experiment_id: str, findings: dict[str, Finding], active: set[str]) -> list[Alert]:
    """Raise new alerts, clear resolved ones. Nothing is written when nothing changes (the usual
    case on the per-trial path); the write transaction re-reads, so concurrent recorders raise once."""
    if all((finding is not None) == (kind in active) for kind, finding in findings.items()):
        return []
    now = lab.clock()
    raised = []
    with lab.store.transaction() as db:
        row = db.execute("SELECT status FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        if row is None or row[0] != "running":
            return []  # ended meanwhile (its alerts were closed then): nothing to raise or clear
        active = _active_kinds(db, experiment_id)
        for kind, finding in findings.items():
            if finding is not None and finding[0] and kind not in active:
                message, data = finding
                db.execute(
                    "INSERT INTO alerts (experiment_id, kind, message, data_json, raised_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (experiment_id, kind) DO UPDATE SET message = excluded.message,"
                    " data_json = excluded.data_json, raised_at = excluded.raised_at, cleared_at = NULL",
                    (experiment_id, kind, message, to_json(data, default=str), now),
                )
                lab.event(experiment_id, "alert", message, alert=kind, **data)
                raised.append(
                    Alert(
                        experiment_id=experiment_id,
                        kind=kind,  # type: ignore[arg-type]
                        message=message,
                        raised_at=iso(now) or "",
                        data=finite(data),
                    )
                )
            elif finding is None and kind in active:
                message = db.execute(
                    "SELECT message FROM alerts WHERE experiment_id = ? AND kind = ?", (experiment_id, kind)
                ).fetchone()[0]
                db.execute(
                    "UPDATE alerts SET cleared_at = ? WHERE experiment_id = ? AND kind = ?", (now, experiment_id, kind)
                )
                lab.event(experiment_id, "alert_cleared", f"Cleared: {message}", alert=kind)
    lab.notify_changed(experiment_id)
    return raised


def close_alerts(lab: Lab, experiment_id: str, status: str) -> None:
    """Clear the alerts still up on an experiment that has just ended (inside the caller's
    transaction): nothing acts on them any more, and an alert that stopped the experiment is
    answered. Each is logged as cleared with why."""
    with lab.store.transaction() as db:
        rows = db.execute(
            "SELECT kind, message FROM alerts WHERE experiment_id = ? AND cleared_at IS NULL", (experiment_id,)
        ).fetchall()
        if not rows:
            return
        db.execute(
            "UPDATE alerts SET cleared_at = ? WHERE experiment_id = ? AND cleared_at IS NULL",
            (lab.clock(), experiment_id),
        )
        for kind, message in rows:
            lab.event(experiment_id, "alert_cleared", f"Closed ({status}): {message}", alert=kind)


def alerts(lab: Lab, experiment_id: str | None = None, *, active_only: bool = False) -> list[Alert]:
    where, args = [], []
    if experiment_id is not None:
        where.append("experiment_id = ?")
        args.append(experiment_id)
    if active_only:
        where.append("cleared_at IS NULL")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    with lab.store.reading() as db:
        rows = db.execute(f"SELECT * FROM alerts{clause} ORDER BY raised_at, experiment_id, kind", args).fetchall()
    return [
        Alert(
            experiment_id=r["experiment_id"],
            kind=r["kind"],
            message=r["message"],
            raised_at=iso(r["raised_at"]) or "",
            cleared_at=iso(r["cleared_at"]),
            data=json.loads(r["data_json"]),
        )
        for r in rows
    ]


def regression_due(recorded: int, required: int) -> bool:
    """Whether the per-trial hook evaluates the policy after this trial (see the module doc)."""
    return recorded >= required and (recorded < 100 or recorded % (recorded // 50) == 0)


def on_trial(lab: Lab, experiment_id: str, metrics: Any, counts: dict[str, dict[str, int]]) -> list[Alert]:
    """The cheap checks (error rate, floors), run inside the transaction that records a trial, so
    an alert commits with the trial that raised it and costs no transaction of its own. `counts`
    are the arm counts the caller just read in that transaction."""
    if not any(may_have_floor(m) for m in metrics):
        treatment = counts.get("treatment", {})
        if treatment.get("recorded", 0) == treatment.get("successes", 0):
            # No treatment failure: no error-rate alert can be raised, nor be active (an alert needs
            # min_failures >= 1 failures; void_trial, which can take failures away, runs check).
            return []
    return check(lab, experiment_id, metrics=metrics)


AUTO_ROLLBACK = "Auto-rollback: "  # what begins a message of after_trial's that is not an alert
NOTE = "Note: "  # ... and one that is neither (an analysis that failed)


def alert_line(message: str) -> str:
    """A message of after_trial's as the record and void answers show it: an alert as ALERT, the
    auto-rollback it set off as itself."""
    return message if message.startswith((AUTO_ROLLBACK, NOTE)) else f"ALERT: {message}"


def rollback_pending(lab: Lab, experiment: Any, raised: list[Alert]) -> bool:
    """Whether an `auto_rollback` experiment has an alert up that this trial did not raise: its
    rollback could not be done when it was raised (another promote held the lock), and the next
    trial tries again (inside the trial's transaction: one indexed read)."""
    if not experiment.auto_rollback or raised:
        return False
    with lab.store.reading() as db:
        return bool(_active_kinds(db, experiment.id))


def after_trial(
    lab: Lab, experiment_id: str, raised: list[Alert], progress: Any, *, pending: bool = False
) -> list[str]:
    """After the trial is committed: the regression check when due, and an `auto_rollback`
    experiment stopped on a new alert, or (`pending`, see rollback_pending) on the alert whose
    rollback could not be done before. Returns the messages to show with the recorded trial."""
    failed: list[str] = []
    if regression_due(progress.trials_recorded, progress.sample_size_required):
        more, failed = guarded_check(lab, experiment_id, stored="the trial is stored")  # never "record failed"
        raised = raised + more
    if pending and not raised:
        return [*retry_rollback(lab, experiment_id), *failed]
    return [*act_on(lab, experiment_id, raised), *failed]


def retry_rollback(lab: Lab, experiment_id: str) -> list[str]:
    """Roll back a running `auto_rollback` experiment on the alerts still up whose rollback could not
    be done when they were raised; recording went on handing out the variant (from a review)."""
    up = alerts(lab, experiment_id, active_only=True)
    if not up or lab.get(experiment_id).status != "running":
        return []  # cleared, or ended meanwhile
    return _stop_on(lab, experiment_id, [a.message for a in up], retried=True)


def guarded_check(lab: Lab, experiment_id: str, *, stored: str, metrics: Any = None) -> tuple[list[Alert], list[str]]:
    """`check` with the regression policy, and what to say when the analysis raises (a defect): the
    other checks' alerts stand, and the trial or void that ran it is kept (a void that could remove
    the value setting it off was undone with it, from a review)."""
    try:
        return check(lab, experiment_id, regression=True, metrics=metrics), []
    except ExperimentError:
        raise
    except Exception as exc:  # a defect in the analysis
        from .analysis import analysis_failed

        return check(lab, experiment_id, metrics=metrics), [
            f"{NOTE}{stored}, but {analysis_failed(experiment_id, exc)}"
        ]


def act_on(lab: Lab, experiment_id: str, raised: list[Alert]) -> list[str]:
    """The messages of newly raised alerts, and an `auto_rollback` experiment stopped on them (as
    after a trial; an import whose trials raise an alert too)."""
    messages = [a.message for a in raised]
    if raised and lab.get(experiment_id).auto_rollback:
        return messages + _stop_on(lab, experiment_id, messages, retried=False)
    return messages


def _stop_on(lab: Lab, experiment_id: str, messages: list[str], *, retried: bool) -> list[str]:
    """Stop an `auto_rollback` experiment on its alerts: what to say of it."""
    from .release import stop_on_alert

    label = "auto-rollback on alert" + (" (retried: it could not be done when the alert was raised)" if retried else "")
    try:  # a retry does not wait out another promote's lock: each trial would (up to 120 s, from a review)
        wait = RETRY_LOCK_WAIT_SECONDS if retried else None
        result = stop_on_alert(lab, experiment_id, reason=f"{label}: " + "; ".join(messages), wait=wait)
    except ExperimentError as exc:  # e.g. another process promoted or stopped it meanwhile
        still = lab.get(experiment_id).status == "running"
        return [
            f"{AUTO_ROLLBACK}{'still ' if retried else ''}{NOT_DONE}{exc}"
            + (
                f"{STILL_RUNNING}the next trial recorded tries again, as auto mode does (the auto tool; CLI: "
                f"`meta-experiment auto`), or `meta-experiment rollback {experiment_id} --reason ...` does it now."
                if still
                else ""
            )
        ]
    return [AUTO_ROLLBACK + " ".join([result.summary, *result.warnings])]  # (the dispatcher's notes too)


RETRY_LOCK_WAIT_SECONDS = 0.5
NOT_DONE = "not done: "
STILL_RUNNING = " It is still running with the alert up: "


def rollback_blocked(messages: list[str]) -> str | None:
    """Why the auto-rollback that recording a trial set off (or retried) could not be done, when it
    could not and the experiment still runs (from after_trial's messages)."""
    for message in messages:
        if message.startswith(AUTO_ROLLBACK) and NOT_DONE in message and STILL_RUNNING in message:
            return message.split(NOT_DONE, 1)[1].split(STILL_RUNNING, 1)[0]
    return None
