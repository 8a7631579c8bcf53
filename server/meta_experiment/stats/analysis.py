"""The single entry point of the statistics engine: `analyze(AnalysisInputs) -> Analysis`.

Mean/variance tests and the sequential decision use only the sufficient statistics the store keeps
(n, mean, variance per arm and metric; counts for binary metrics). Raw values, when given, feed the
rank-based tests only."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..allocation import block_lag
from ..models import Arm, MetricSpec, Targets
from . import binary, continuous, power, sequential
from .guardrails import SUCCESS_METRIC, all_worst, arithmetic_regression, change_from_zero, has_data, holm
from .metric import Design, MetricData, Role, analyze_metric, scaled_summaries
from .plan import MIN_PER_ARM
from .report import change_words
from .results import Analysis, Guardrail, MetricAnalysis, Power
from .srm import srm_check
from .summary import Summary

Basis = Literal["observed", "guess", "none"]
EMPTY = Summary(0, 0.0, 0.0)
SECONDS_PER_DAY = 86400.0
CAUTION_P = 0.05  # a guardrail regression suspected at the seed's level holds promotion back


@dataclass(frozen=True)
class AnalysisInputs:
    """Everything the lifecycle hands over. `summaries[(arm, metric)]` are the store's running
    statistics of the recorded values; `log_summaries` the same of log(value) for log-scale metrics;
    `successes` the per-arm count of trials recorded with success=True (analysed as the implicit
    guardrail `success_rate`); `raw_values` (optional, in recording order) feed only the rank tests
    and the chart. Times are epoch seconds."""

    primary: MetricSpec
    targets: Targets
    summaries: Mapping[tuple[Arm, str], Summary]
    assigned: Mapping[Arm, int]
    recorded: Mapping[Arm, int]
    sample_size_required: int
    now: float
    max_duration_days: float
    started_at: float | None = None
    secondary: Sequence[MetricSpec] = ()
    successes: Mapping[Arm, int] | None = None
    log_summaries: Mapping[tuple[Arm, str], Summary] | None = None
    raw_values: Mapping[tuple[Arm, str], Sequence[float]] | None = None
    control_share: float = 0.5
    # Counts for the sample-ratio check when they differ from the trial counts: with sticky
    # assignment each unit is one coin flip, so units are counted, not their trials.
    srm_assigned: Mapping[Arm, int] | None = None
    srm_recorded: Mapping[Arm, int] | None = None
    # With repeated units, per arm the Summary.clustered arguments of the trials' success;
    # the summaries of the metrics carry theirs.
    success_clusters: Mapping[Arm, tuple[int, float, float, float]] | None = None
    power_guess: Summary | None = field(default=None)
    # Set when the experiment no longer runs ('promoted: ...'; a draft's 'draft'): the decision then
    # says what the data show, with no advice to act on an experiment that cannot take it.
    experiment_status: str | None = None
    power: float = 0.8


def analyze(inputs: AnalysisInputs) -> Analysis:
    from .. import policy  # policy consumes Analysis; imported here to keep stats/ free of cycles

    alpha = policy.decision_alpha(inputs.targets)
    design = Design(inputs.sample_size_required, alpha / 2, inputs.control_share)
    primary = analyze_metric(_data(inputs, inputs.primary, "primary"), design)
    secondary = [analyze_metric(_data(inputs, m, "guardrail"), design) for m in inputs.secondary]
    specs = list(inputs.secondary)
    if inputs.successes is not None and all(m.name != SUCCESS_METRIC for m in [inputs.primary, *specs]):
        spec = MetricSpec(
            name=SUCCESS_METRIC,
            direction="higher_is_better",
            kind="binary",
            description="share of trials recorded with success=true",
        )
        clusters = inputs.success_clusters or {}
        counts = {
            arm: rate_summary(inputs.successes.get(arm, 0), inputs.recorded.get(arm, 0), clusters.get(arm))
            for arm in ("control", "treatment")
        }
        secondary.append(analyze_metric(MetricData(spec, "guardrail", counts["control"], counts["treatment"]), design))
        specs.append(spec)
    messages = list(_input_messages(inputs))
    elapsed = None if inputs.started_at is None else max(0.0, inputs.now - inputs.started_at)
    recorded = sum(inputs.recorded.values())
    analysis = Analysis(
        primary=primary,
        guardrails=_guardrails(secondary, specs, inputs.targets, alpha),
        secondary=secondary,
        srm=[
            srm_check(kind, counts.get("control", 0), counts.get("treatment", 0), inputs.control_share)
            for kind, counts in (
                ("assigned", inputs.srm_assigned or inputs.assigned),
                ("recorded", inputs.srm_recorded or inputs.recorded),
            )
        ],
        power=_power(inputs, primary, alpha),
        trials_recorded=recorded,
        sample_size_required=inputs.sample_size_required,
        alpha=alpha,
        started_at=inputs.started_at,
        analyzed_at=inputs.now,
        max_duration_days=inputs.max_duration_days,
        # Runs recorded per day while the experiment ran, counting at least one day (a burst of runs
        # in the first minutes is not extrapolated to thousands a day); the status report's
        # time-saved estimate (release_status.TIME_SAVED_BASIS) uses the same rate.
        runs_per_day=recorded / max(1.0, elapsed / SECONDS_PER_DAY) if elapsed is not None and recorded else None,
        messages=messages,
        experiment_status=inputs.experiment_status,
    )
    return analysis.model_copy(update={"decision": policy.decide(analysis, inputs.targets, inputs.now)})


def rate_summary(successes: int, n: int, clusters: tuple[int, float, float, float] | None = None) -> Summary:
    if n == 0:
        return EMPTY
    p = successes / n
    variance = p * (1 - p) * n / (n - 1) if n > 1 else 0.0  # sample variance of 0/1 values
    rate = Summary(n, p, variance, 0.0 if successes < n else 1.0, 1.0 if successes > 0 else 0.0)
    return rate if clusters is None else rate.clustered(*clusters)


def _data(inputs: AnalysisInputs, spec: MetricSpec, role: Role) -> MetricData:
    get = inputs.summaries.get
    logs = inputs.log_summaries or {}
    raw = inputs.raw_values or {}
    return MetricData(
        spec=spec,
        role=role,
        control=get(("control", spec.name), EMPTY),
        treatment=get(("treatment", spec.name), EMPTY),
        control_log=logs.get(("control", spec.name)),
        treatment_log=logs.get(("treatment", spec.name)),
        raw_control=raw.get(("control", spec.name)),
        raw_treatment=raw.get(("treatment", spec.name)),
    )


def _input_messages(inputs: AnalysisInputs) -> list[str]:
    out = []
    n = sum(inputs.recorded.values())
    if n < inputs.sample_size_required:
        out.append(
            f"{n} of {inputs.sample_size_required} required trials recorded: "
            f"no automatic decision before {inputs.sample_size_required}"
        )
    return out


def _guardrails(
    metrics: list[MetricAnalysis], specs: list[MetricSpec], targets: Targets, alpha: float
) -> list[Guardrail]:
    """One-sided regression tests of each guardrail, Holm-adjusted across them (Holm 1979). A
    guardrail blocks promotion when its regression beyond the tolerance is significant (Holm, at
    alpha), when it is suspected (fixed-horizon one-sided p <= CAUTION_P, the seed's level), or when
    it has no data yet; only a significant always-valid regression rolls back (policy). Blocking on
    the point estimate alone cost up to 26 points of power with a rare-event guardrail (a 0.5% crash
    rate: 0 against 1 crash reads as 'worse than zero'); the evidence gate costs about 1 (simulated
    in the commit that introduced it)."""
    adjusted = holm([m.p_value_regression for m in metrics])
    out = []
    for m, spec, p_holm in zip(metrics, specs, adjusted, strict=True):
        limit = spec.max_regression if spec.max_regression is not None else targets.max_regression
        regression = None if m.improvement_pct is None else -m.improvement_pct + 0.0  # never -0.0
        from_zero = change_from_zero(m) < 0
        beyond = from_zero or (regression is not None and regression > limit)
        detected = bool(p_holm is not None and p_holm <= alpha and beyond)
        p_one = m.p_value_regression
        checked = has_data(m)
        # untestable (both arms constant, or a variance too large) yet beyond the tolerance: the
        # data cannot clear it, so promotion waits as for a suspected regression
        suspected = bool(beyond and not detected and checked and (p_one is None or p_one <= CAUTION_P))
        seq = m.sequential
        p_text = "n/a" if p_holm is None else f"{p_holm:.4g}"
        worst = all_worst(m)
        if not checked:
            record = (
                "record more trials in both arms (each trial's success flag gives it)"
                if m.name == SUCCESS_METRIC
                else f"record {m.name} in both arms"
            )
            detail = (
                f"unchecked: {m.control.n} control and {m.treatment.n} treatment values recorded, each arm "
                f"needs {MIN_PER_ARM}; {record} before a promotion can be safe"
            )
        elif worst:
            both = m.control.mean == m.treatment.mean
            detail = (
                f"every treatment run failed ({m.treatment.n} of {m.treatment.n})"
                + (", as did every control one" if both else "")
                + ": there is nothing that works to promote. Check that runs report success correctly "
                "(record success=true for a run that worked); to promote anyway, use force with a reason"
            )
        elif from_zero:
            detail = (
                f"worse than a zero baseline (control mean 0, treatment {m.treatment.mean:.4g}): any such "
                f"change exceeds the tolerance; one-sided Holm p = {p_text}"
            )
        elif regression is None:
            detail = "regression unknown: " + ("; ".join(m.messages) or "no data")
        else:
            detail = f"{change_words(m, regression, limit)} (tolerance {limit:g}%), one-sided Holm p = {p_text}"
            if suspected and p_one is None:
                detail += ", untestable (constant arms): promotion waits"
            elif suspected:
                detail += f" and fixed-horizon p = {p_one:.3g}: a suspected regression, so promotion waits"
            if m.scale == "log":
                detail = "geometric means " + detail
        # on the log scale the tests compare geometric means: the arithmetic ones (the total cost,
        # the total time) must not regress beyond the tolerance either, as for a log-scale primary
        mean_regression = arithmetic_regression(m) if checked else None
        # with evidence, as a suspected regression needs it: the arithmetic mean of a heavy-tailed
        # metric is its noisiest figure, and an unchanged guardrail read beyond 10% in 16-39% of
        # analyses by its point estimate alone (simulated by a review, 20-50 per arm)
        mean_p = _raw_regression_p(m) if mean_regression is not None else None
        mean_regressed = (
            bool(mean_regression is not None and mean_regression > limit and mean_p is not None and mean_p <= CAUTION_P)
            and not worst
        )
        if mean_regressed and mean_regression is not None and mean_p is not None:
            detail += (
                f"; but the arithmetic means went {m.control.mean:.4g} -> {m.treatment.mean:.4g}, "
                f"{change_words(None, mean_regression, limit)} (a heavier tail), one-sided Welch p = {mean_p:.3g} "
                "on the original scale: beyond the tolerance, so promotion waits"
            )
        out.append(
            Guardrail(
                name=m.name,
                direction=m.direction,
                max_regression_pct=limit,
                regression_pct=regression,
                p_value=m.p_value_regression,
                p_value_holm=p_holm,
                always_valid_p=seq.p_value_regression if seq is not None else None,
                regression_detected=detected,
                checked=checked,
                regression_suspected=suspected,
                worse_from_zero=from_zero,
                treatment_all_worst=worst,
                mean_regression_pct=mean_regression,
                mean_regression_p=mean_p,
                mean_regressed=mean_regressed,
                detail=detail,
            )
        )
    return out


def _raw_regression_p(m: MetricAnalysis) -> float | None:
    """One-sided Welch p for "the treatment's arithmetic mean is worse" (scipy.stats.ttest_ind with
    equal_var=False and the alternative toward worse), from the arms' raw-scale summaries: for a
    log-scale metric, whose own tests compare geometric means."""
    arms = []
    for a in (m.control, m.treatment):
        if a.mean is None or a.sd is None:
            return None
        low, high = (math.nan if v is None else v for v in (a.min, a.max))
        arms.append(Summary(a.n, a.mean, a.sd * a.sd, low, high))
    return continuous.one_sided_p(arms[0], arms[1], worse_is_higher=m.direction == "lower_is_better")


def _power(inputs: AnalysisInputs, primary: MetricAnalysis, alpha: float) -> Power:
    """Trials needed to detect `improvement_threshold` on the primary metric (Cohen 1988 effect
    sizes d or h), from the observed control mean and pooled variance, else the stated guess, at the
    intended split: control share 1 - s, treatment share s."""
    thr = inputs.targets.improvement_threshold
    spec = inputs.primary
    s = round(1 - inputs.control_share, 12)  # the intended treatment share (0.2, not 0.19999999999999996)
    share = 1 - s
    even = abs(s - 0.5) < 1e-12
    c, t, _ = scaled_summaries(_data(inputs, spec, "primary"), [])
    base: dict[str, Any] = dict(target_improvement_pct=thr, alpha=alpha, power=inputs.power, treatment_share=s)
    effect, basis, why = _effect(spec, primary, c, t, inputs.power_guess, thr)
    short = [arm for arm, summary in (("control", c), ("treatment", t)) if 0 < summary.clusters < 2]
    if short:  # units repeat and an arm has one unit: more of its runs add no independent evidence
        effect, why = (
            None,
            (
                f"the {' and '.join(short)} arm has trials from one unit only, and trials of one unit are correlated: "
                "no number of further trials from the same units can decide. It needs trials from at least one more "
                f"unit (another session, PR or user) in the {' and '.join(short)} arm"
            ),
        )
    if effect is None:
        return Power(
            effect_size=None,
            basis=basis,
            n_per_arm_fixed=None,
            n_per_arm_sequential=None,
            trials_needed_per_arm=None,
            trials_needed_total=None,
            message=why,
            **base,
        )
    # With repeated units a trial carries 1 / design effect of an independent trial's information:
    # sizing with effect / sqrt(deff) multiplies every sample size by deff (Donner & Klar 2000, sec. 5.2).
    deff = _design_effect(c, t) if basis == "observed" else 1.0
    sizing = effect / math.sqrt(deff)
    t_test = spec.kind == "continuous"  # (a rate's test is a pooled z: no t to map)
    # fixed horizon: n of the control arm with ratio * n treatment trials (statsmodels' nobs1, ratio)
    fixed = power.n_fixed(sizing, alpha, inputs.power, t_test=t_test, ratio=s / share)
    fixed_arms = None if fixed is None else power.arms_at_split(fixed / share, share)
    # sequential: the n_eff it needs, reached at the split by N = n_eff / (s (1 - s)) trials; at
    # least the required total (no decision before it) and MIN_PER_ARM in each arm (nor before that)
    e_seq = power.n_eff_sequential(sizing, alpha / 2, inputs.sample_size_required, inputs.power, share, t_test)
    seq_total = None if e_seq is None else e_seq / (s * share)
    seq_arms = (
        None
        if seq_total is None
        else power.arms_at_split(
            max(seq_total, inputs.sample_size_required, MIN_PER_ARM / s, MIN_PER_ARM / share), share
        )
    )
    per_arm = total = suggested = None
    window_end = sequential.plan_end(inputs.sample_size_required)
    if seq_total is None or seq_total > window_end:
        suggested = power.required_for_window(sizing, alpha / 2, inputs.power, share, t_test)
    n_fixed = None if fixed_arms is None else fixed_arms[0]
    if seq_arms is not None:
        nc, nt = inputs.recorded.get("control", 0), inputs.recorded.get("treatment", 0)
        target = seq_arms[0] * seq_arms[1] / (seq_arms[0] + seq_arms[1])  # n_eff of the recommended arms
        if even:
            n_seq = seq_arms[0]
            # and at least until the short arm has MIN_PER_ARM (policy.decide decides nothing before)
            per_arm = max(_more_per_arm(nc, nt, n_seq), MIN_PER_ARM - min(nc, nt))
            total = 2 * per_arm
            message = (
                f"about {n_seq:,} trials per arm give {inputs.power:.0%} power to detect a {thr:g}% "
                "improvement with the always-valid test ("
                + ("over 1,000,000,000" if n_fixed is None else f"{n_fixed:,}")
                + " per arm for a single fixed-horizon test)"
                + (f"; needs {total:,} more trials" if total else "; enough trials")
                + (
                    f" ({per_arm:,} more in each arm: the arms are uneven, {nc} control and {nt} treatment, "
                    "and the shorter one limits the information)"
                    if total and abs(nc - nt) > 1
                    else ""
                )
            )
        else:
            total = max(
                _more_total(nc, nt, target, s),  # and until each arm has MIN_PER_ARM, added at the split
                math.ceil((MIN_PER_ARM - nc) / share - 1e-9),
                math.ceil((MIN_PER_ARM - nt) / s - 1e-9),
            )
            split = f"{round(s * 100, 1):g}% treatment split"
            fixed_text = (
                "n/a"
                if fixed_arms is None
                else f"{sum(fixed_arms):,} trials, {fixed_arms[0]:,} control and {fixed_arms[1]:,} treatment,"
            )
            more_t = math.ceil(s * total - 1e-9)
            message = (
                f"about {sum(seq_arms):,} trials ({seq_arms[0]:,} control, {seq_arms[1]:,} treatment at the {split}) "
                f"give {inputs.power:.0%} power to detect a {thr:g}% improvement with the always-valid test "
                f"({fixed_text} for a single fixed-horizon test)"
                + (
                    f"; needs {total:,} more trials (about {total - more_t:,} control and {more_t:,} treatment)"
                    if total
                    else "; enough trials"
                )
                + (
                    f": the {nc} control and {nt} treatment recorded are off the split, and the information "
                    "depends on both arms, so recorded plus more need not add up to the totals above"
                    if total and abs(nt - s * (nc + nt)) > _block_lag(s)
                    else ""
                )
            )
    else:
        message = "the target improvement is too small to detect with any practical sample size"
    if deff > 1:
        message += (
            f" (trials of one unit are correlated: with a design effect of {deff:.3g}, a trial counts as "
            f"{1 / deff:.2g} of an independent one; assigning new units is the faster way to information)"
        )
    if suggested is not None and suggested > inputs.sample_size_required:
        message += (
            f". The planned window (to {window_end:,} trials) is short for this effect, and the test gains "
            "power fastest inside its window, so a longer plan needs fewer trials in all: "
            f"sample_size_required = {suggested:,} would plan up to {sequential.plan_end(suggested):,} trials "
            f"and reach {inputs.power:.0%} power by then"
        )
    return Power(
        effect_size=effect,
        basis=basis,
        n_per_arm_fixed=n_fixed if even else None,
        n_per_arm_sequential=seq_arms[0] if even and seq_arms is not None else None,
        trials_needed_per_arm=per_arm,
        trials_needed_total=total,
        n_total_fixed=None if fixed_arms is None else sum(fixed_arms),
        n_total_sequential=None if seq_arms is None else sum(seq_arms),
        suggested_sample_size_required=suggested if suggested and suggested > inputs.sample_size_required else None,
        message=message,
        **base,
    )


def _design_effect(c: Summary, t: Summary) -> float:
    """The design effect of the difference of means: its variance over what independent trials
    would give (1 when neither arm is clustered)."""
    if c.n < 2 or t.n < 2:
        return 1.0
    independent = c.variance / c.n + t.variance / t.n
    if not (0 < independent < math.inf):
        return 1.0
    return max(1.0, (c.mean_variance + t.mean_variance) / independent)


def _block_lag(s: float) -> float:
    """How far the treatment count can stray from its share s inside one permuted block of the
    assignment (allocation.block_lag), at least 1."""
    return max(1.0, block_lag(round(s * 100)))


def _more_root(a: int, b: int, target: float, s: float) -> float:
    """More trials X in all (not rounded), assigned at the split (control (1 - s) X, treatment s X),
    until the arms carry the effective sample size `target`: the smallest X >= 0 with
    n_eff = (a + (1-s) X)(b + s X) / (a + b + X) >= target. Multiplying out, the positive root of

        s (1-s) X^2 + (a s + b (1-s) - target) X + a b - target (a + b) = 0,

    whose constant term is negative exactly when the recorded arms fall short (one positive root)."""
    if target <= 0 or (a + b > 0 and a * b / (a + b) >= target):
        return 0.0
    qa, qb, qc = s * (1 - s), a * s + b * (1 - s) - target, a * b - target * (a + b)
    return max(0.0, (-qb + math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))) / (2 * qa))


def _more_total(a: int, b: int, target: float, s: float) -> int:
    """_more_root rounded up to whole trials."""
    return max(0, math.ceil(_more_root(a, b, target, s) - 1e-9))


def _more_per_arm(a: int, b: int, n: int) -> int:
    """More trials per arm, added equally to both (balanced assignment), until the arms carry the
    information of n per arm: the smallest x >= 0 with n_eff = (a+x)(b+x)/(a+b+2x) >= n/2. This is
    _more_root at s = 1/2 and target n/2 with X = 2x, where the quadratic becomes
    x^2 + (a+b-n) x + ab - n(a+b)/2 = 0. With 30 and 5 recorded and n = 29 that is 17 per arm: the
    short arm is what limits the information, not the total."""
    if n <= 0:
        return 0
    return max(0, math.ceil(_more_root(a, b, n / 2, 0.5) / 2 - 1e-9))


def _effect(
    spec: MetricSpec, primary: MetricAnalysis, c: Summary, t: Summary, guess: Summary | None, thr: float
) -> tuple[float | None, Basis, str]:
    """(standardized effect of a `thr`% improvement, basis, message when None)."""
    if thr <= 0:
        return None, "none", "improvement_threshold is 0: no target effect to size the experiment for"
    up = spec.direction == "higher_is_better"
    observed = c.n >= 2 and t.n >= 2
    src = (c, t) if observed else (guess, guess) if guess is not None else None
    if src is None:
        if c.n or t.n:
            return (
                None,
                "none",
                (
                    f"the variance needs 2 values in each arm ({c.n} control, {t.n} treatment so far), or a guess "
                    "of the mean and variance: sample size unknown"
                ),
            )
        return None, "none", "no data yet and no guess of the mean and variance: sample size unknown"
    basis: Basis = "observed" if observed else "guess"
    ctrl = src[0]
    if spec.kind == "binary":
        p_c = ctrl.mean
        wanted = p_c * (1 + thr / 100 if up else 1 - thr / 100)
        if (p_c >= 1) if up else (p_c <= 0):  # (it read as 'not measurable', from a review)
            return (
                None,
                basis,
                f"the observed control rate is already {p_c:.0%}, the best a rate can be: no {thr:g}% improvement "
                "is possible, and no trials can reach the target; choose a metric with room to improve",
            )
        if 0 < p_c < 1 and not 0 <= wanted <= 1:  # a rate stays within 0% and 100%
            best = (1 / p_c - 1) * 100 if up else 100.0
            return (
                None,
                basis,
                f"a {thr:g}% improvement over the observed control rate of {p_c:.1%} is impossible (a rate "
                f"{'reaches at most 100%' if up else 'falls at most to 0%'}: at most {best:.3g}% better): no trials "
                "can reach the target; lower improvement_threshold, or choose a metric with room to improve",
            )
        p_t = min(max(wanted, 0.0), 1.0)
        if p_t == p_c:  # a control rate of 0 and higher is better: a % of 0 is 0
            return None, basis, f"control rate {p_c:.3g}: a relative change of {thr:g}% is not measurable"
        return binary.cohens_h(p_c, p_t), basis, ""
    pooled = ((c.n - 1) * c.variance + (t.n - 1) * t.variance) / (c.n + t.n - 2) if observed else 0.0
    if not observed and guess is not None:
        pooled = guess.variance
    if primary.scale == "log":
        ratio = 1 + thr / 100 if up else 1 - thr / 100
        if ratio <= 0:
            return None, basis, f"a {thr:g}% reduction is impossible on the log scale"
        delta = abs(math.log(ratio))
        if not observed:  # a guess is on the raw scale: lognormal sd of log = sqrt(log(1 + CV^2))
            cv2 = pooled / (ctrl.mean * ctrl.mean) if ctrl.mean else 0.0
            pooled = math.log1p(cv2)
    else:
        delta = thr / 100 * abs(ctrl.mean)
    sd = math.sqrt(pooled) if pooled > 0 else 0.0
    if sd <= 0 or delta == 0:
        return None, basis, "zero variance or zero control mean: sample size undefined"
    return delta / sd, basis, ""
