"""The floor rules of the monitoring (alert kind "satisfaction"): which metrics have a floor and the
check that raises the alert.

Only a higher_is_better metric has a floor, the minimum acceptable mean on its own scale - its
`floor`, or else the project's `satisfaction_floor` when its name marks a satisfaction score
(`is_satisfaction_score`; for a yes/no metric only a floor between 0 and 1). A lower_is_better
metric has none: a low value is good, and its floor had stopped a treatment 6x better than the
control. The alert blames the change, so it needs the treatment's mean below the floor AND below
the control's, each with always-valid evidence, and `min_trials_per_arm` values of the metric in
each arm: with both arms equally low the change is not to blame, and a treatment that improves the
metric is never stopped. `monitoring.check` runs it with the other checks and raises the alert."""

from __future__ import annotations

import math
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from .alert_evidence import ALERT_ALPHA, Finding, alert_e_value, evidence_text, shown_e
from .stats.report import fmt_num
from .store import EMPTY_STATS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .lifecycle import Lab
    from .models import MetricSpec
    from .settings import MonitoringSettings


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


def may_have_floor(metric: MetricSpec) -> bool:
    """Whether `metric_floor` can give the metric a floor under some settings (the per-trial
    path's test, made without reading them)."""
    return metric.direction == "higher_is_better" and (metric.floor is not None or is_satisfaction_score(metric.name))


def metric_floors(metrics: Iterable[MetricSpec], s: MonitoringSettings) -> dict[str, tuple[bool, float]]:
    """{name: (yes/no metric, floor)} of the metrics that have a floor."""
    return {m.name: (m.kind == "binary", floor) for m in metrics if (floor := metric_floor(m, s)) is not None}


# -- the checks -------------------------------------------------------------------------------------


def floors_finding(
    lab: Lab,
    experiment_id: str,
    floors: dict[str, tuple[bool, float]],
    running: dict[tuple[str, str], Any],
    s: MonitoringSettings,
    *,
    active: bool,
    active_metric: str | None = None,
) -> Finding:
    """The first floor alert among `floors` (metric_floors), from the arms' `running` stats; with
    repeated units, checked again with them before it is raised. `active`: the alert is up, about
    `active_metric` (None: not known, an alert stored before it was kept): that metric alone keeps it
    up, while below its floor and the control's (another metric with a single low value did, from a
    review); once it has recovered the alert clears, and another metric below its floor raises one
    of its own at the next check."""
    if active and active_metric is not None:
        if active_metric not in floors:
            return None  # its floor is gone (a setting changed): nothing holds it up
        binary, floor = floors[active_metric]
        stats_, control = running.get(("treatment", active_metric)), _control(running, active_metric)
        return floor_finding(active_metric, binary, stats_, floor, s, active=True, control=control)
    found = [
        floor_finding(
            name, binary, running.get(("treatment", name)), floor, s, active=active, control=_control(running, name)
        )
        for name, (binary, floor) in floors.items()
    ]
    if not active and any(f is not None for f in found):
        found = _clustered_floors(lab, experiment_id, floors, s)  # only weaker with repeated units
    return next((f for f in found if f is not None), None)


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
        message = (
            f"{name} below its floor: treatment mean {fmt_num(mean)} < {floor:g} over {n} trials ({evidence_text(e)})"
        )
        return message, data
    below = _below_control(binary, control, stats_, control_clustered, clustered)
    if below is None or below[1] < 1 / ALERT_ALPHA:
        return None
    z_c, e_c = below
    weaker = min(e, e_c)
    return (
        f"{name} below its floor and below the control: treatment mean {fmt_num(mean)} over {n} trials < floor "
        f"{floor:g}, control mean {fmt_num(control.mean)} over {c_n} trials (always-valid e-values {shown_e(e)} below "
        f"the floor and {shown_e(e_c)} below the control, each >= {1 / ALERT_ALPHA:g}, p <= {ALERT_ALPHA:g} however "
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
