"""Continuous monitoring of running experiments (the seed's "Continuous Monitoring"), after every
recorded trial and in auto mode. Three checks, each guarded against tiny samples:

- error rate: the treatment's failure rate (trials recorded with success=false) against the
  control's. Alert only when each arm has at least `min_trials_per_arm` recorded trials, the
  treatment has at least `min_failures` failures, its rate is at least `error_rate_ratio` times the
  control's, AND the evidence that the treatment fails more often is strong by an always-valid
  measure (`alert_e_value` >= 1 / ALERT_ALPHA). A rate ratio alone on small counts is noise: 1
  failure in 5 trials against 0 in 5 is "infinitely" worse and means nothing.
- floor (alert kind "satisfaction"): only a higher_is_better metric has a floor, the minimum
  acceptable mean on its own scale - its `floor`, or else the project's `satisfaction_floor` when
  its name marks a satisfaction score (`is_satisfaction_score`; for a yes/no metric only a floor
  between 0 and 1). A lower_is_better metric has none: a low value is good, and its floor had
  stopped a treatment 6x better than the control. The alert blames the change, so it needs the
  treatment's mean below the floor AND below the control's, each with always-valid evidence, and
  `min_trials_per_arm` values of the metric in each arm: with both arms equally low the change is
  not to blame, and a treatment that improves the metric is never stopped.
- performance regression: the decision policy says `rollback` (the statistics issue's always-valid
  test of the primary metric and guardrails beyond `max_regression`), evaluated once the required
  sample size is reached - never the seed's "last three trials". A full analysis costs ~2 ms, so on
  the per-trial path it runs after every trial up to 100 recorded trials and then after every
  (n // 50)-th (`regression_due`): the always-valid test holds under any schedule of looks, and a
  regression is seen at most 2% of the trials later. Auto mode always evaluates it.

Alerts are deduplicated: one row per (experiment, kind) that is raised once (an `alert` event),
stays quiet while the condition holds, and is cleared (an `alert_cleared` event) when its effect is
gone - the rate ratio below the threshold, the mean back at the floor or at the control's, the
policy no longer saying rollback - not merely when a p-value wobbles back over 0.05 (that would
raise it again and again). A newly raised alert on an experiment created with `auto_rollback`
stops it at once (production was never touched while it ran).
"""

from __future__ import annotations

import json
import math
import re
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .models import iso
from .outcomes import Alert
from .settings import SETTINGS_FILE_NAME, MonitoringSettings
from .store import EMPTY_STATS, success_clusters

if TYPE_CHECKING:
    from .lifecycle import Lab
    from .models import MetricSpec

# The error-rate and floor checks run after every trial, and a raised alert stops an auto_rollback
# experiment: a fixed-horizon test at 0.05 re-run like that (it was Fisher's exact test) raised
# the error-rate alert on 8-13% of A/A experiments with 5-20% failures. The evidence is instead a
# one-sided normal-mixture e-value (Robbins 1970; Howard et al. 2021, sec. 3; the e-process of
# stats/sequential.py), a nonnegative martingale with no effect: by Ville's inequality it ever
# reaches 1 / ALERT_ALPHA with probability at most ALERT_ALPHA, however often it is looked at
# (in the normal approximation; bench/validate_alerts.py measures it).
ALERT_ALPHA = 0.005
ALERT_TRIALS = 10  # trials per arm (or in the arm, for a floor) at which the mixture's r is 1
Finding = tuple[str, dict[str, Any]] | None  # (message, data) when the condition holds

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
        from .errors import ExperimentError

        try:
            settings = lab.settings().monitoring
        except ExperimentError:
            # A typo in a settings file must not refuse a measurement (it refused only failed runs,
            # whose error-rate check reads these settings): monitoring keeps its defaults until the
            # file is fixed, and the commands that read the file say what is wrong with it.
            settings = MonitoringSettings()
    _settings_cache[lab.state_dir] = (now, key, settings)
    return settings


# -- which metrics have a floor ---------------------------------------------------------------------

# The words of a metric name that mark a satisfaction score; whole words only, so that
# "dissatisfaction_rate" or "unsatisfied" (a problem count, lower is better) never match.
SATISFACTION_WORDS = frozenset({"satisfaction", "csat"})
_WORD_BREAK = re.compile(r"[_.\-]+|(?<=[a-z0-9])(?=[A-Z])")


@cache
def is_satisfaction_score(name: str) -> bool:
    """Whether the name, split into words at _ . - and at a lower-to-upper case change
    (userSatisfaction), has the word "satisfaction" or "csat" in any case: user_satisfaction,
    csat-score, Satisfaction, userCSAT; not dissatisfaction_rate, unsatisfied, satisfactionrate."""
    return any(word.lower() in SATISFACTION_WORDS for word in _WORD_BREAK.split(name))


def metric_floor(metric: MetricSpec, s: MonitoringSettings) -> float | None:
    """The floor the monitoring checks the metric against, or None: its own `floor`, else the
    project's `satisfaction_floor` for a satisfaction score (a yes/no one only when that floor is a
    share between 0 and 1: a floor of 3 on a 1-5 scale means nothing for 0/1 values). Only a
    higher_is_better metric has a floor; on a lower_is_better one a low value is good."""
    if metric.direction != "higher_is_better":
        return None
    if metric.floor is not None:
        return metric.floor
    if not is_satisfaction_score(metric.name):
        return None
    if metric.kind == "binary" and not 0 < s.satisfaction_floor < 1:
        return None
    return s.satisfaction_floor


def floor_problem(metric: MetricSpec) -> str | None:
    """Why a metric's `floor` cannot be checked, for the creation of an experiment to refuse it
    (an experiment stored before keeps it, unchecked), or None."""
    if metric.floor is None or metric.direction == "higher_is_better":
        return None
    return (
        f"Metric {metric.name!r} is lower_is_better and has floor={metric.floor:g}: a floor is the minimum "
        "acceptable mean of a higher_is_better metric (satisfaction, issues caught), and a low value of this "
        "metric is good, so there is nothing to alert on. Remove the floor; a regression of this metric is "
        "caught by its max_regression (the guardrail)."
    )


# -- the checks -------------------------------------------------------------------------------------


def alert_e_value(z: float, trials_per_arm: float) -> float:
    """E+(z, r) of stats/sequential.py with r = trials_per_arm / ALERT_TRIALS: the evidence for a
    positive effect, z the standardized statistic (positive = the problem the alert looks for)."""
    from .stats.numeric import Z_CAP
    from .stats.sequential import log_e_value

    if trials_per_arm <= 0 or math.isnan(z):
        return 0.0
    log_e = log_e_value(max(-Z_CAP, min(Z_CAP, z)), trials_per_arm / ALERT_TRIALS)
    return math.exp(min(log_e, 700.0))


def _shown(e: float) -> str:
    return f"{e:.3g}" if e < 1e6 else "over 1e6"


def _evidence(e: float) -> str:
    return f"always-valid e-value {_shown(e)} >= {1 / ALERT_ALPHA:g}, p <= {ALERT_ALPHA:g} however often checked"


def error_rate_finding(
    counts: dict[str, dict[str, int]],
    s: MonitoringSettings,
    *,
    active: bool = False,
    design_effects: tuple[float, float] = (1.0, 1.0),
) -> Finding:
    """`active`: the alert is up; it stays up until the rate ratio itself falls below the threshold
    (hysteresis: evidence hovering around the threshold must not raise and clear it on alternate
    trials), or no spike is left (fewer failures than min_failures, or a rate no higher than the
    control's: voided failures). `design_effects` (control, treatment): with repeated units, each arm's variance is
    multiplied by its design effect at the pooled rate, as the analysis does (binary.clustered_z)."""
    c, t = counts.get("control", {}), counts.get("treatment", {})
    c_n, t_n = c.get("recorded", 0), t.get("recorded", 0)
    c_f, t_f = c_n - c.get("successes", 0), t_n - t.get("successes", 0)
    c_rate, t_rate = (c_f / c_n if c_n else 0.0), (t_f / t_n if t_n else 0.0)
    if active:  # cleared once the rate ratio is under the threshold, or no longer a spike at all
        cleared = t_rate < s.error_rate_ratio * c_rate or t_f < s.min_failures or t_rate <= c_rate
        return None if cleared else ("", {})
    if c_n < s.min_trials_per_arm or t_n < s.min_trials_per_arm or t_f < s.min_failures:
        return None
    if t_rate < s.error_rate_ratio * c_rate:
        return None
    from .stats.binary import clustered_z

    k_c, k_t = design_effects
    # z of the failure rates, treatment minus control, pooled (statsmodels proportions_ztest; with
    # repeated units each arm's variance is inflated by its design effect, as the analysis does)
    z = clustered_z(c_f, c_n, k_c, t_f, t_n, k_t)
    if z is None:
        return None
    m_c, m_t = c_n / k_c, t_n / k_t
    e = alert_e_value(z, 2 * m_c * m_t / (m_c + m_t))  # the per-arm count of a balanced design
    if e < 1 / ALERT_ALPHA:
        return None
    ratio = "no failures in the control" if c_f == 0 else f"{t_rate / c_rate:.1f}x the control's"
    return (
        f"Error rate spike: treatment {t_rate:.0%} ({t_f}/{t_n} failed) vs control {c_rate:.0%} ({c_f}/{c_n}), "
        f"{ratio} (alert at {s.error_rate_ratio:g}x; {_evidence(e)})",
        {"treatment": [t_f, t_n], "control": [c_f, c_n], "z": z, "e_value": e, "p_value": min(1.0, 1 / e)},
    )


def floor_finding(
    name: str,
    binary: bool,
    stats_: Any,
    floor: float,
    s: MonitoringSettings,
    *,
    active: bool = False,
    clustered: Any = None,
    control: Any = None,
    control_clustered: Any = None,
) -> Finding:
    """`stats_` and `control`: the treatment's and the control's RunningStats of the metric (n,
    mean, variance). The alert needs `min_trials_per_arm` values in each arm and always-valid
    evidence that the treatment's mean is below the floor and below the control's (`_below_control`):
    an intersection-union test (Berger 1982), so each part at ALERT_ALPHA bounds the alert's error
    where either does not hold. Without `control` only the floor part is checked (the one-arm tables
    of bench/validate_alerts.py); monitoring always passes it. An active alert stays up while the
    treatment's mean is below the floor and the control's.

    `clustered`, `control_clustered`: an arm's stats.Summary with its units when they repeat; the
    variance is then the cluster-robust one (with the effective number of units - 1 df,
    Summary.effective_groups), or for a yes/no metric the binomial one at the floor (at the pooled
    rate against the control) times the design effect about it."""
    c_n = None if control is None else control.n
    if active and stats_ is not None:
        gone = stats_.mean >= floor or (c_n is not None and c_n > 0 and stats_.mean >= control.mean)
        return None if gone else ("", {})
    if stats_ is None or stats_.n < s.min_trials_per_arm or stats_.mean >= floor:
        return None
    if c_n is not None and (c_n < s.min_trials_per_arm or stats_.mean >= control.mean):
        return None  # the control as low or lower: the change is not to blame
    n, mean = stats_.n, stats_.mean
    deff, df = 1.0, n - 1
    if clustered is not None and clustered.clusters:
        if clustered.effective_groups < 2:
            return None  # one unit, or one that outweighs the rest: nothing to say about the arm
        deff = clustered.rate_design_effect(floor) if binary else clustered.design_effect
        # Units of unequal sizes leave the cluster-robust variance noisier than G clusters would:
        # with G - 1 df the alert fired on 0.65% of A/A runs at ICC 0.3 (bound 0.5%), at looks
        # where a few large units made the design effect come out near 1 (bench/validate_alerts.py).
        df = clustered.effective_groups - 1
    if binary:
        # score z of "P(1) = floor" (Wilson 1927), positive when the rate is below the floor
        z = (floor - mean) / math.sqrt(floor * (1 - floor) * deff / n) if 0 < floor < 1 else math.inf
    elif stats_.variance <= 0:
        z = math.inf  # every value is the same and below the floor
    else:
        from .stats.numeric import t_to_z

        # one-sample t of mean < floor (Student 1908), mapped to z by equal tail probability
        z = t_to_z((floor - mean) / math.sqrt(stats_.variance * deff / n), df)
    e = alert_e_value(z, n / deff)
    if e < 1 / ALERT_ALPHA:
        return None
    data = {"metric": name, "mean": mean, "n": n, "floor": floor, "z": z, "e_value": e, "p_value": min(1.0, 1 / e)}
    if control is None:
        return f"{name} below its floor: treatment mean {mean:.3g} < {floor:g} over {n} trials ({_evidence(e)})", data
    below = _below_control(binary, control, stats_, control_clustered, clustered)
    if below is None or below[1] < 1 / ALERT_ALPHA:
        return None
    z_c, e_c = below
    weaker = min(e, e_c)
    return (
        f"{name} below its floor and below the control: treatment mean {mean:.3g} over {n} trials < floor "
        f"{floor:g}, control mean {control.mean:.3g} over {c_n} trials (always-valid e-values {_shown(e)} below "
        f"the floor and {_shown(e_c)} below the control, each >= {1 / ALERT_ALPHA:g}, p <= {ALERT_ALPHA:g} however "
        "often checked)",
        {
            **data,
            "control_mean": control.mean,
            "control_n": c_n,
            "control_z": z_c,
            "control_e_value": e_c,
            "p_value": min(1.0, 1 / weaker),
        },
    )


def _below_control(
    binary: bool, control: Any, treatment: Any, c_units: Any, t_units: Any
) -> tuple[float, float] | None:
    """(z, e-value) of "the treatment's mean is below the control's" (positive z: below), or None
    when the arms say nothing about it (one unit, or one that outweighs the rest, in an arm; values
    too large for their variance). Yes/no: the pooled two-proportion z with each arm's design effect
    about the pooled rate, as the error-rate alert. Otherwise Welch's z (Welch 1947; the
    Welch-Satterthwaite df with each arm's effective number of units - 1, as the floor's t)."""
    from .stats.summary import Summary

    c = c_units if c_units is not None else Summary(control.n, control.mean, control.variance)
    t = t_units if t_units is not None else Summary(treatment.n, treatment.mean, treatment.variance)
    if c.effective_groups < 2 or t.effective_groups < 2:
        return None
    if binary:
        from .stats.binary import clustered_z
        from .stats.summary import rate_design_effects

        k_c, k_t = rate_design_effects(c, t)
        # z of p_c - p_t (the arms swapped in clustered_z, which gives treatment minus control)
        z = clustered_z(t.sum, t.n, k_t, c.sum, c.n, k_c)
        if z is None:
            return None
    else:
        k_c, k_t = c.design_effect, t.design_effect
        v_c, v_t = c.mean_variance, t.mean_variance
        if not math.isfinite(v_c + v_t):
            return None
        if v_c + v_t <= 0:
            z = math.inf if t.mean < c.mean else 0.0  # both arms constant
        else:
            from .stats.numeric import t_to_z

            share_c, share_t = v_c / (v_c + v_t), v_t / (v_c + v_t)
            df = 1 / (share_c**2 / (c.effective_groups - 1) + share_t**2 / (t.effective_groups - 1))
            z = t_to_z((c.mean - t.mean) / math.sqrt(v_c + v_t), df)
    m_c, m_t = c.n / k_c, t.n / k_t
    return z, alert_e_value(z, 2 * m_c * m_t / (m_c + m_t))  # the per-arm count of a balanced design


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
    floors = {m.name: (m.kind == "binary", floor) for m in metrics if (floor := metric_floor(m, s)) is not None}
    with lab.store.reading() as db:  # one snapshot for all the reads
        active = _active_kinds(db, experiment_id)
        counts = lab.store.arm_counts(experiment_id)
        running = lab.store.running_stats(experiment_id) if floors else {}
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
        found = [
            floor_finding(
                name, binary, running.get(("treatment", name)), floor, s, active=up, control=_control(running, name)
            )
            for name, (binary, floor) in floors.items()
        ]
        if not up and any(f is not None for f in found):
            found = _clustered_floors(lab, experiment_id, floors, s)  # only weaker with repeated units
        findings["satisfaction"] = next((f for f in found if f is not None), None)
    elif up:
        findings["satisfaction"] = None  # raised by a floor no longer checked (one on a lower_is_better metric)
    if decision is None and regression:
        from .release import evaluate

        decision = evaluate(lab, lab.get(experiment_id))[1]
    if decision is not None:
        findings["performance_regression"] = regression_finding(decision)
    return _sync(lab, experiment_id, findings, active)


def _clustered_floors(
    lab: Lab, experiment_id: str, floors: dict[str, tuple[bool, float]], s: MonitoringSettings
) -> list[Finding]:
    """The floor checks again, with each arm's units where they repeat."""
    from .analysis import summary_of

    with lab.store.reading():
        running = lab.store.running_stats(experiment_id)
        sums = lab.store.cluster_sums(experiment_id)
    out = []
    for name, (binary, floor) in floors.items():
        arms = {}
        for arm in ("control", "treatment"):
            stats_, repeats = running.get((arm, name)), sums.get((arm, name))
            arms[arm] = summary_of(stats_, repeats) if stats_ is not None and repeats is not None else None
        out.append(
            floor_finding(
                name,
                binary,
                running.get(("treatment", name)),
                floor,
                s,
                clustered=arms["treatment"],
                control=_control(running, name),
                control_clustered=arms["control"],
            )
        )
    return out


def _control(running: dict[tuple[str, str], Any], name: str) -> Any:
    """The control's RunningStats of the metric: with no values yet, empty ones (None would make
    floor_finding a one-arm check)."""
    return running.get(("control", name), EMPTY_STATS)


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
    if not any(
        m.direction == "higher_is_better" and (m.floor is not None or is_satisfaction_score(m.name)) for m in metrics
    ):
        treatment = counts.get("treatment", {})
        if treatment.get("recorded", 0) == treatment.get("successes", 0):
            # No treatment failure: no error-rate alert can be raised, nor be active (an alert needs
            # min_failures >= 1 failures; void_trial, which can take failures away, runs check).
            return []
    return check(lab, experiment_id, metrics=metrics)


def after_trial(lab: Lab, experiment_id: str, raised: list[Alert], progress: Any) -> list[str]:
    """After the trial is committed: the regression check when due, and an `auto_rollback`
    experiment stopped on a new alert. Returns the messages to show with the recorded trial."""
    if regression_due(progress.trials_recorded, progress.sample_size_required):
        raised = raised + check(lab, experiment_id, regression=True)
    messages = [a.message for a in raised]
    if raised and lab.get(experiment_id).auto_rollback:
        from .errors import ExperimentError
        from .release import rollback

        try:
            result = rollback(lab, experiment_id, reason="auto-rollback on alert: " + "; ".join(messages), auto=True)
        except ExperimentError as exc:  # e.g. another process promoted or stopped it meanwhile
            messages.append(f"Auto-rollback not done: {exc}")
        else:
            messages.append(result.summary)
    return messages
