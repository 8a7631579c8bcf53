"""The analysis of one metric: summaries, fixed-horizon tests, intervals, effect sizes, the
optional rank test, and the always-valid sequential result, oriented by the metric's direction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..models import MetricSpec
from . import binary, continuous, rank, sequential
from .numeric import clamped, clip_p, finite, norm_sf, t_isf, t_quantile, t_to_z
from .plan import MIN_PER_ARM
from .results import ArmSummary, Interval, MetricAnalysis, ProportionTest, RankTest, SequentialResult, TTest
from .summary import Summary, mean_difference, rate_design_effects

LEVEL = 0.95  # coverage of fixed-horizon intervals, as in the seed's report


# exp(700) ~ 1e304: the largest ratio of a log-scale metric that stays a finite float (the report and
# the chart cap at it alike)
LOG_RATIO_CAP = 700.0


@dataclass(frozen=True)
class Design:
    """What the sequential test needs to know about the experiment's plan."""

    n_required: int
    alpha_per_direction: float
    control_share: float = 0.5


Role = Literal["primary", "guardrail"]


@dataclass(frozen=True)
class MetricData:
    spec: MetricSpec
    role: Role
    control: Summary
    treatment: Summary
    control_log: Summary | None = None
    treatment_log: Summary | None = None
    raw_control: Sequence[float] | None = None
    raw_treatment: Sequence[float] | None = None


def arm_summary(arm: str, s: Summary) -> ArmSummary:
    ok = s.n > 0
    return ArmSummary(
        arm=arm,  # type: ignore[arg-type]
        n=s.n,
        mean=finite(s.mean) if ok else None,
        sd=finite(s.sd) if s.n > 1 else None,
        min=finite(s.min) if ok else None,
        max=finite(s.max) if ok else None,
        units=s.clusters or None,
        design_effect=finite(s.design_effect) if s.clusters else None,
    )


def _interval(pair: tuple[float, float] | None, level: float = LEVEL, scale: float = 1.0) -> Interval | None:
    if pair is None:
        return None
    lo, hi = sorted((pair[0] * scale, pair[1] * scale))
    if finite(lo) is None or finite(hi) is None:
        return None
    return Interval(lower=lo, upper=hi, level=level)


def _log_summaries(d: MetricData, messages: list[str]) -> tuple[Summary, Summary] | None:
    """Summaries of log(values) for a log-scale metric: given, or computed from raw values."""
    if d.control_log is not None and d.treatment_log is not None:
        return d.control_log, d.treatment_log
    if d.raw_control is not None and d.raw_treatment is not None:
        if min(d.raw_control, default=1.0) > 0 and min(d.raw_treatment, default=1.0) > 0:
            return Summary.of(math.log(x) for x in d.raw_control), Summary.of(math.log(x) for x in d.raw_treatment)
        messages.append("log scale requested but some values are <= 0: analysed on the raw scale")
        return None
    messages.append("log scale requested but no log-scale statistics were given: analysed on the raw scale")
    return None


def _sequential(
    z: float | None,
    se: float | None,
    df: float | None,
    d: float | None,
    n_c: int,
    n_t: int,
    design: Design,
    improve_sign: float,
) -> SequentialResult:
    """The always-valid result at this look; `z` is oriented so that positive means better."""
    t = sequential.fraction(n_c, n_t, design.n_required, design.control_share)
    alpha = design.alpha_per_direction
    # no decision before the required size, nor before each arm has MIN_PER_ARM values (policy.py)
    active = n_c + n_t >= design.n_required and min(n_c, n_t) >= MIN_PER_ARM and z is not None and t > 0
    zb = sequential.z_boundary(t, alpha) if t > 0 else None
    base: dict[str, Any] = dict(
        z=finite(z),
        information_fraction=t,
        phase="window" if sequential.in_window(t) else "after_window",
        window_end_trials=sequential.plan_end(design.n_required),
        alpha_per_direction=alpha,
        z_boundary=zb,
        method=sequential.METHOD,
    )
    if not active or z is None or zb is None:
        return SequentialResult(
            active=False,
            p_value_improvement=None,
            p_value_regression=None,
            p_value=None,
            confidence_sequence=None,
            improvement_confidence_sequence=None,
            **base,
        )
    p_up, p_down = sequential.p_value(z, t), sequential.p_value(-z, t)
    cs = None
    if se is not None and d is not None and se > 0:
        # same tail probability as zb, on the t scale of the test (Jennison & Turnbull 2000, sec. 3.4)
        crit = zb if df is None else t_isf(norm_sf(zb), df)
        cs = (d - crit * se, d + crit * se)
    return SequentialResult(
        active=True,
        p_value_improvement=p_up,
        p_value_regression=p_down,
        p_value=clip_p(2 * min(p_up, p_down)),
        confidence_sequence=_interval(cs, 1 - 2 * alpha),
        improvement_confidence_sequence=None,
        **base,
    )


def scaled_summaries(d: MetricData, messages: list[str]) -> tuple[Summary, Summary, str]:
    """(control, treatment, scale) on the scale the metric is analysed on: log for a log-scale
    continuous metric whose log statistics are available, else raw."""
    if d.spec.kind == "continuous" and d.spec.log_scale:
        logs = _log_summaries(d, messages)
        if logs is not None:
            return logs[0], logs[1], "log"
    return d.control, d.treatment, "raw"


def analyze_metric(d: MetricData, design: Design) -> MetricAnalysis:
    spec = d.spec
    messages: list[str] = []
    sign = 1.0 if spec.direction == "higher_is_better" else -1.0
    c, t, scale = scaled_summaries(d, messages)
    fields: dict = dict(
        welch=None,
        student=None,
        cohens_d=None,
        hedges_g=None,
        proportions=None,
        difference=None,
        difference_ci=None,
        relative_lift=None,
        relative_lift_ci=None,
        improvement_pct=None,
        improvement_ci=None,
        p_value=None,
        p_value_regression=None,
    )
    if spec.kind == "binary":
        seq = _binary(c, t, fields, messages, design, sign)
    else:
        seq = _continuous(c, t, scale, fields, messages, design, sign)
    mw = None
    if d.raw_control is not None and d.raw_treatment is not None and spec.kind == "continuous":
        mw = _rank(d.raw_control, d.raw_treatment)
    if spec.kind == "continuous":
        notes = dominated(("control", d.control), ("treatment", d.treatment), unit=spec.unit)
        if scale == "log" and not notes:  # 1e-300 s among seconds: unremarkable raw, extreme in log
            notes = dominated(("control", c), ("treatment", t), unit=spec.unit, log=True)
        messages += notes
    if c.n > 0 and t.n > 0 and c.mean == 0 and scale == "raw":
        messages.append("the control mean is 0: relative changes (improvement %) are undefined")
    return MetricAnalysis(
        name=spec.name,
        role=d.role,
        direction=spec.direction,
        kind=spec.kind,
        unit=spec.unit,  # type: ignore[arg-type]
        scale=scale,  # type: ignore[arg-type]
        control=arm_summary("control", d.control),
        treatment=arm_summary("treatment", d.treatment),
        mann_whitney=mw,
        sequential=seq,
        messages=messages,
        **fields,
    )


DOMINANCE = 0.95  # share of Samuelson's bound at which one value carries nearly all of an arm's variance
OUTLYING_SD = 20.0  # ... and lies this many of the other values' sds away from them
MIN_N = 10


def dominated(*arms: tuple[str, Summary], unit: str | None = None, log: bool = False) -> list[str]:
    """A note for each arm in which one value dominates the mean and variance, found from the
    sufficient statistics alone (the extreme and the arm's n, mean and variance give the other
    values' mean and variance exactly). Two conditions: the value lies within DOMINANCE of
    Samuelson's bound, (n - 1) / sqrt(n) sample sds from the mean, which no value can exceed
    (Samuelson 1968); and it lies OUTLYING_SD of the others' sds from their mean (or, when the others
    are all equal and not 0, over 100 times their value away). Simulated false-note rates: none for
    normal, rounded or Poisson data and for lognormal with sigma 0.8 under 1%; a 1000x typo is found
    every time (n >= 10). `log`: the summaries are of log(x), and the value is shown as x."""
    out = []
    for name, s in arms:
        if s.n < MIN_N or not (0 < s.variance < math.inf):
            continue
        bound = (s.n - 1) / math.sqrt(s.n)
        ss = s.variance * (s.n - 1)
        for extreme in (s.max, s.min):
            if abs(extreme - s.mean) / s.sd < DOMINANCE * bound:
                continue
            rest_mean = (s.n * s.mean - extreme) / (s.n - 1)
            rest_ss = ss - (extreme - s.mean) ** 2 * s.n / (s.n - 1)
            rest_sd = math.sqrt(max(rest_ss, 0.0) / (s.n - 2))
            if rest_ss > 1e-9 * ss:  # below that, rounding: the others are all equal
                far = abs(extreme - rest_mean) / rest_sd >= OUTLYING_SD
            else:
                far = rest_mean != 0 and abs(extreme - rest_mean) > 100 * abs(rest_mean)
            if far:
                shown = math.exp(extreme) if log else extreme  # summaries of log(x) show x
                out.append(
                    f"one {name} value ({shown:.6g}{' ' + unit if unit else ''}) carries nearly all of that arm's "
                    f"variance{' on the log scale' if log else ''}: if it is a typo or a unit mix-up, correct "
                    "it with void_trial (the corrected values take its place); if it is real, the tail is "
                    "heavy, and the rank tests (Mann-Whitney) are robust to it"
                )
                break
    return out


def _continuous(
    c: Summary, t: Summary, scale: str, f: dict, messages: list[str], design: Design, sign: float
) -> SequentialResult:
    why = continuous.why_undefined(c, t)
    if why:
        messages.append(why)
    if c.n and t.n:
        f["difference"] = finite(mean_difference(c, t))
    mv = continuous.mean_variances(c, t)  # once: with repeated units it is the CR2 computation
    if mv is None and not why:
        messages.append(
            "every unit's values average to its arm's mean in both arms: the spread between units, which "
            "the fixed-horizon tests use with repeated units, is 0, so they are undefined"
        )
    for method in ("welch", "student"):
        res = continuous.t_test(c, t, method, variances=mv if method == "welch" else None)
        if res is not None:
            f[method] = TTest(method=method, t=res[0], df=res[1], p_value=res[2])  # type: ignore[arg-type]
    f["p_value"] = f["welch"].p_value if f["welch"] else None
    f["p_value_regression"] = continuous.one_sided_p(c, t, worse_is_higher=sign < 0, variances=mv)
    f["difference_ci"] = _interval(continuous.difference_ci(c, t, LEVEL, variances=mv))
    f["cohens_d"], f["hedges_g"] = finite(continuous.cohens_d(c, t)), finite(continuous.hedges_g(c, t))
    if scale == "log":
        diff = f["difference"]
        f["relative_lift"] = None if diff is None else finite(math.expm1(min(diff, LOG_RATIO_CAP)))
        ci = continuous.difference_ci(c, t, LEVEL, variances=mv)
        rel = None if ci is None else (math.expm1(min(ci[0], LOG_RATIO_CAP)), math.expm1(min(ci[1], LOG_RATIO_CAP)))
    else:
        f["relative_lift"] = clamped(continuous.relative_lift(c, t))
        rel = continuous.relative_lift_ci(c, t, LEVEL, variances=mv)
        if (
            rel is None
            and f["relative_lift"] is not None
            and mv is not None
            and continuous.control_too_uncertain(c, mv[0], t_quantile(LEVEL, mv[2]))
        ):
            f["relative_unstable"] = True
            messages.append(
                "no interval of the relative change: the control mean is not clearly away from 0 "
                "(Fieller's interval is unbounded), so a % change is not estimable yet; the interval of "
                "the difference stands"
            )
    f["relative_lift_ci"] = _interval(rel)
    if f["relative_lift"] is not None:
        f["improvement_pct"] = clamped(sign * f["relative_lift"] * 100 + 0.0)  # never -0.0
        f["improvement_ci"] = _interval(rel, scale=sign * 100)
    # The always-valid test keeps the CR1 variance with repeated units (what its simulations used);
    # without repeats this is the Welch t above.
    se_df = continuous.welch_se_df(c, t, small_sample=False)
    z = None if se_df is None else sign * t_to_z(mean_difference(c, t) / se_df[0], se_df[1]) + 0.0  # not -0.0
    seq = _sequential(
        z, se_df[0] if se_df else None, se_df[1] if se_df else None, f["difference"], c.n, t.n, design, sign
    )
    if seq.confidence_sequence is not None:
        cs = seq.confidence_sequence
        if scale == "log":
            rel_cs = (math.expm1(min(cs.lower, LOG_RATIO_CAP)), math.expm1(min(cs.upper, LOG_RATIO_CAP)))
        elif c.mean != 0 and not (
            # the sequence's quantile, from its half-width over the standard error it was built on
            se_df is not None
            and continuous.control_too_uncertain(c, c.mean_variance, (cs.upper - cs.lower) / (2 * se_df[0]))
        ):
            rel_cs = (cs.lower / abs(c.mean), cs.upper / abs(c.mean))
        else:
            rel_cs = None  # no control mean to divide by, or one not clearly away from 0 (Fieller)
        seq = seq.model_copy(update={"improvement_confidence_sequence": _interval(rel_cs, cs.level, sign * 100)})
    return seq


def _binary(c: Summary, t: Summary, f: dict, messages: list[str], design: Design, sign: float) -> SequentialResult:
    x_c, x_t = round(c.mean * c.n), round(t.mean * t.n)
    if c.n == 0 or t.n == 0:
        messages.append(f"needs trials in both arms (control n={c.n}, treatment n={t.n})")
        return _sequential(None, None, None, None, c.n, t.n, design, sign)
    p_c, p_t = x_c / c.n, x_t / t.n
    if x_c + x_t in (0, c.n + t.n):
        messages.append("every trial has the same outcome in both arms: no difference can be shown yet")
    # With repeated units the test uses each arm's cluster-robust variance about the pooled rate
    # (binary.clustered_z), and the intervals see each arm's counts divided by its design effect
    # (Rao & Scott 1992, Biometrics 48(2), 577-585): the same rates, with the information that
    # clustered trials carry. Fisher's test has no such version and is not used.
    if 0 < c.clusters < 2 or 0 < t.clusters < 2:  # units repeat, and an arm has one unit
        messages.append(
            "needs trials from at least 2 units per arm: trials of one unit are correlated, so the spread "
            f"between units is what the test uses (control: {c.groups} unit(s), treatment: {t.groups})"
        )
        return _sequential(None, None, None, None, c.n, t.n, design, sign)
    k_c, k_t = rate_design_effects(c, t)
    clustered = k_c > 1 or k_t > 1
    e_c, m_c, e_t, m_t = x_c / k_c, c.n / k_c, x_t / k_t, t.n / k_t
    z = binary.clustered_z(x_c, c.n, k_c, x_t, t.n, k_t)
    exact = not clustered and binary.needs_exact(x_c, c.n, x_t, t.n)
    fisher = binary.fisher_p(x_c, c.n, x_t, t.n) if exact else None
    p_z = binary.z_test_p(z) if z is not None else 1.0
    f["proportions"] = ProportionTest(
        control_successes=x_c,
        treatment_successes=x_t,
        z=finite(z),
        p_value=fisher if fisher is not None else p_z,
        method="fisher_exact" if exact else "z_pooled_clustered" if clustered else "z_pooled",
        fisher_p_value=fisher,
    )
    f["p_value"] = f["proportions"].p_value
    worse = "less" if sign > 0 else "greater"
    if exact:
        f["p_value_regression"] = binary.fisher_p(x_c, c.n, x_t, t.n, alternative=worse)
    elif z is not None:
        f["p_value_regression"] = binary.z_test_p(z, "smaller" if sign > 0 else "larger")
    f["difference"] = p_t - p_c
    f["cohens_h"] = binary.cohens_h(p_c, p_t)
    f["difference_ci"] = _interval(binary.newcombe_ci(e_c, m_c, e_t, m_t, LEVEL))
    if x_c > 0:
        f["relative_lift"] = p_t / p_c - 1
        rel = binary.relative_lift_ci(e_c, m_c, e_t, m_t, LEVEL)
        diff = f["difference_ci"]
        if rel is None and diff is not None:
            # every trial succeeded in both arms: the log risk ratio has no variance there, but the
            # Newcombe interval of the difference has a width; over the observed control rate (whose
            # own uncertainty it leaves out, as the always-valid interval below does) it bounds the lift
            rel = (max(-1.0, diff.lower / p_c), diff.upper / p_c)
        f["relative_lift_ci"] = _interval(rel)
        f["improvement_pct"] = clamped(sign * f["relative_lift"] * 100 + 0.0)  # never -0.0
        f["improvement_ci"] = _interval(rel, scale=sign * 100)
    else:
        messages.append("the control arm has no successes: relative changes are undefined")
    seq = _sequential(
        None if z is None else sign * z + 0.0,
        None,  # the interval is the score test inverted, set below
        None,
        f["difference"],
        c.n,
        t.n,
        design,
        sign,
    )
    if seq.active and seq.z_boundary is not None:  # also when every trial has the same outcome
        # The always-valid interval inverts the score test at the boundary's critical value (Mee 1984;
        # Miettinen & Nurminen 1985): the differences it does not reject. At 0 its statistic is the
        # pooled z that decides, so the interval excludes 0 exactly when the test decides; away from
        # 0 the variance is taken at the restricted estimates, so unequal arms do not narrow it
        # (the pooled SE alone undercovered there), and it stays within [-1, 1].
        score: tuple[float, float] | None
        if clustered:
            # d -/+ boundary x the test's own standard error (binary.clustered_z): it excludes 0
            # exactly when the test decides. The score test has no clustered form here.
            pooled = (x_c + x_t) / (c.n + t.n)
            se = math.sqrt(pooled * (1 - pooled) * (k_c / c.n + k_t / t.n))
            d = p_t - p_c
            score = (max(-1.0, d - seq.z_boundary * se), min(1.0, d + seq.z_boundary * se))
        else:
            score = binary.score_interval(x_c, c.n, x_t, t.n, seq.z_boundary)
        level = 1 - 2 * design.alpha_per_direction
        seq = seq.model_copy(update={"confidence_sequence": _interval(score, level)})
    if seq.confidence_sequence is not None and x_c > 0:
        cs = seq.confidence_sequence  # as % of the control rate; a rate cannot fall by more than 100%
        rel = (max(cs.lower / p_c, -1.0), max(cs.upper / p_c, -1.0))
        seq = seq.model_copy(update={"improvement_confidence_sequence": _interval(rel, cs.level, sign * 100)})
    return seq


def _rank(raw_c: Sequence[float], raw_t: Sequence[float]) -> RankTest | None:
    mw = rank.mann_whitney(raw_c, raw_t)
    if mw is None:
        return None
    shift, ci = rank.hodges_lehmann(raw_c, raw_t, LEVEL)
    return RankTest(u=mw[0], p_value=mw[1], hodges_lehmann=shift, hodges_lehmann_ci=_interval(ci), method=mw[2])
