"""Continuous monitoring of running experiments (the seed's "Continuous Monitoring"), after every
recorded trial and in auto mode. Three checks, each guarded against tiny samples:

- error rate: the treatment's failure rate (trials recorded with success=false) against the
  control's. Alert only when each arm has at least `min_trials_per_arm` recorded trials, the
  treatment has at least `min_failures` failures, its rate is at least `error_rate_ratio` times the
  control's, AND a one-sided Fisher exact test (treatment fails more often) gives p <= 0.05. A rate
  ratio alone on small counts is noise: 1 failure in 5 trials against 0 in 5 is "infinitely" worse
  and means nothing (Fisher p = 0.5).
- satisfaction: a metric with a `floor` (or named like *satisfaction*, floor `satisfaction_floor`)
  whose treatment mean is below the floor, with at least `min_trials_per_arm` treatment trials and
  a one-sided test of "mean < floor" at p <= 0.05 (exact binomial for binary metrics, t-test
  otherwise).
- performance regression: the decision policy says `rollback` (the statistics issue's always-valid
  test of the primary metric and guardrails beyond `max_regression`), evaluated once the required
  sample size is reached - never the seed's "last three trials". A full analysis costs ~6 ms, so on
  the per-trial path it runs after every trial up to 100 recorded trials and then after every
  (n // 50)-th (`regression_due`): the always-valid test holds under any schedule of looks, and a
  regression is seen at most 2% of the trials later. Auto mode always evaluates it.

Alerts are deduplicated: one row per (experiment, kind) that is raised once (an `alert` event),
stays quiet while the condition holds, and is cleared (an `alert_cleared` event) when its effect is
gone - the rate ratio below the threshold, the mean back at the floor, the policy no longer saying
rollback - not merely when a p-value wobbles back over 0.05 (that would raise it again and again).
A newly raised alert on an experiment created with `auto_rollback` stops it at once (production
was never touched while it ran).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .models import iso
from .outcomes import Alert
from .settings import SETTINGS_FILE_NAME, MonitoringSettings

if TYPE_CHECKING:
    from .lifecycle import Lab

ALERT_ALPHA = 0.05  # one-sided significance of the error-rate and floor checks
Finding = tuple[str, dict[str, Any]] | None  # (message, data) when the condition holds

_settings_cache: dict[Path, tuple[tuple[int, int], MonitoringSettings]] = {}


def monitoring_settings(lab: Lab) -> MonitoringSettings:
    """The [monitoring] settings, re-read only when a settings file changed (this runs per trial)."""

    def mtime(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return 0

    key = (mtime(lab.state_dir / SETTINGS_FILE_NAME), mtime(lab.project_root / "pyproject.toml"))
    cached = _settings_cache.get(lab.state_dir)
    if cached is None or cached[0] != key:
        cached = (key, lab.settings().monitoring)
        _settings_cache[lab.state_dir] = cached
    return cached[1]


# -- the checks -------------------------------------------------------------------------------------


def error_rate_finding(counts: dict[str, dict[str, int]], s: MonitoringSettings, *, active: bool = False) -> Finding:
    """`active`: the alert is up; it stays up until the rate ratio itself falls below the threshold
    (hysteresis: a p-value hovering around 0.05 must not raise and clear it on alternate trials)."""
    c, t = counts.get("control", {}), counts.get("treatment", {})
    c_n, t_n = c.get("recorded", 0), t.get("recorded", 0)
    c_f, t_f = c_n - c.get("successes", 0), t_n - t.get("successes", 0)
    c_rate, t_rate = (c_f / c_n if c_n else 0.0), (t_f / t_n if t_n else 0.0)
    if active:
        return None if t_rate < s.error_rate_ratio * c_rate else ("", {})
    if c_n < s.min_trials_per_arm or t_n < s.min_trials_per_arm or t_f < s.min_failures:
        return None
    if t_rate < s.error_rate_ratio * c_rate:
        return None
    from scipy import stats

    # One-sided Fisher exact test on [[treatment failures, successes], [control failures, successes]];
    # must agree with scipy.stats.fisher_exact(alternative="greater").
    p = float(stats.fisher_exact([[t_f, t_n - t_f], [c_f, c_n - c_f]], alternative="greater").pvalue)
    if p > ALERT_ALPHA:
        return None
    ratio = "no failures in the control" if c_f == 0 else f"{t_rate / c_rate:.1f}x the control's"
    return (
        f"Error rate spike: treatment {t_rate:.0%} ({t_f}/{t_n} failed) vs control {c_rate:.0%} ({c_f}/{c_n}), "
        f"{ratio} (alert at {s.error_rate_ratio:g}x; one-sided Fisher exact p = {p:.2g})",
        {"treatment": [t_f, t_n], "control": [c_f, c_n], "p_value": p},
    )


def floor_finding(
    name: str, binary: bool, stats_: Any, floor: float, s: MonitoringSettings, *, active: bool = False
) -> Finding:
    """`stats_` is the treatment's RunningStats of the metric (n, mean, variance). An active alert
    stays up while the mean is below the floor."""
    if active and stats_ is not None:
        return None if stats_.mean >= floor else ("", {})
    if stats_ is None or stats_.n < s.min_trials_per_arm or stats_.mean >= floor:
        return None
    from scipy import stats

    n, mean = stats_.n, stats_.mean
    if binary:
        # Exact binomial test of P(1) < floor; must agree with scipy.stats.binomtest(alternative="less").
        p = float(stats.binomtest(round(mean * n), n, floor, alternative="less").pvalue)
    elif stats_.variance <= 0:
        p = 0.0  # every value is the same and below the floor
    else:
        # One-sample t-test of mean < floor (Student 1908); agrees with scipy.stats.ttest_1samp(alternative="less").
        t = (mean - floor) / math.sqrt(stats_.variance / n)
        p = float(stats.t.cdf(t, n - 1))
    if p > ALERT_ALPHA:
        return None
    return (
        f"{name} below its floor: treatment mean {mean:.3g} < {floor:g} over {n} trials (one-sided p = {p:.2g})",
        {"metric": name, "mean": mean, "n": n, "floor": floor, "p_value": p},
    )


def regression_finding(decision: Any) -> Finding:
    if decision is None or decision.action != "rollback":
        return None
    return (f"Performance regression: {decision.rationale}", {"driven_by": decision.driven_by})


def check(lab: Lab, experiment_id: str, *, decision: Any = None, regression: bool = False) -> list[Alert]:
    """Run the checks on a running experiment and return the alerts newly raised by this call.
    `regression`: also evaluate the decision policy (when `decision` is not given)."""
    definition = lab.definition(experiment_id)
    if definition.status != "running":
        return []
    s = monitoring_settings(lab)
    with lab.store.reading() as db:
        active = _active_kinds(db, experiment_id)
    findings: dict[str, Finding] = {
        "error_rate": error_rate_finding(lab.store.arm_counts(experiment_id), s, active="error_rate" in active)
    }
    floors = {
        m.name: (m.kind == "binary", m.floor if m.floor is not None else s.satisfaction_floor)
        for m in definition.metrics
        if m.floor is not None or "satisfaction" in m.name.lower()
    }
    if floors:
        running = lab.store.running_stats(experiment_id)
        up = "satisfaction" in active
        found = [
            floor_finding(name, binary, running.get(("treatment", name)), floor, s, active=up)
            for name, (binary, floor) in floors.items()
        ]
        findings["satisfaction"] = next((f for f in found if f is not None), None)
    if decision is None and regression:
        from .release import evaluate

        decision = evaluate(lab, lab.get(experiment_id))[1]
    if decision is not None:
        findings["performance_regression"] = regression_finding(decision)
    return _sync(lab, experiment_id, findings, active)


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
        active = _active_kinds(db, experiment_id)
        for kind, finding in findings.items():
            if finding is not None and finding[0] and kind not in active:
                message, data = finding
                db.execute(
                    "INSERT INTO alerts (experiment_id, kind, message, data_json, raised_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (experiment_id, kind) DO UPDATE SET message = excluded.message,"
                    " data_json = excluded.data_json, raised_at = excluded.raised_at, cleared_at = NULL",
                    (experiment_id, kind, message, json.dumps(data, default=str), now),
                )
                lab.event(experiment_id, "alert", message, alert=kind, **data)
                raised.append(
                    Alert(experiment_id=experiment_id, kind=kind, message=message, raised_at=iso(now) or "", data=data)  # type: ignore[arg-type]
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


def after_record(lab: Lab, experiment_id: str, *, recorded: int, required: int) -> list[str]:
    """The per-trial hook: check, and stop an `auto_rollback` experiment on a new alert. Returns
    the messages to show with the recorded trial."""
    new = check(lab, experiment_id, regression=regression_due(recorded, required))
    messages = [a.message for a in new]
    if new and lab.get(experiment_id).auto_rollback:
        from .release import rollback

        result = rollback(lab, experiment_id, reason="auto-rollback on alert: " + "; ".join(messages), auto=True)
        messages.append(result.summary)
    return messages
