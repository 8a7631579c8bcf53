"""Result models of the statistics engine and the decision policy: what `stats.analyze` returns and
what `policy.decide` adds. Frozen pydantic models, snake_case fields, no NaN or inf anywhere: a
quantity that cannot be computed is None and a message in `messages` says why."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import Arm, Direction, MetricKind

Action = Literal["promote", "rollback", "continue", "expire"]
Scale = Literal["raw", "log"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Interval(Frozen):
    lower: float
    upper: float
    level: Annotated[float, Field(description="Coverage, e.g. 0.95.")]


class ArmSummary(Frozen):
    arm: Arm
    n: int
    mean: float | None
    sd: float | None
    min: float | None
    max: float | None
    units: Annotated[
        int | None,
        Field(description="How many units (sticky assignment) the values come from, when a unit repeats; else null."),
    ] = None
    design_effect: Annotated[
        float | None,
        Field(
            description="Cluster-robust variance of the mean over variance / n (at least 1), when a unit repeats: "
            "the tests count the arm's trials as n / design_effect independent ones."
        ),
    ] = None


class TTest(Frozen):
    """A two-sample t-test of treatment minus control (two-sided p)."""

    method: Literal["welch", "student"]
    t: float
    df: float
    p_value: float


class RankTest(Frozen):
    """Mann-Whitney U (treatment vs control) with the Hodges-Lehmann shift (treatment minus control)."""

    u: float
    p_value: float
    hodges_lehmann: float
    hodges_lehmann_ci: Interval | None
    method: str


class ProportionTest(Frozen):
    """Two-proportion comparison of treatment minus control."""

    control_successes: int
    treatment_successes: int
    z: float | None
    p_value: float
    method: Annotated[
        Literal["z_pooled", "fisher_exact", "z_pooled_clustered"],
        Field(
            description="z_pooled_clustered: units repeat, so each arm's variance under no difference is "
            "p (1 - p) x its design effect / n at the pooled rate p (a robust score test)."
        ),
    ]
    fisher_p_value: float | None


class SequentialResult(Frozen):
    """The sequential test of the primary metric (and of guardrails, for rollback), valid at any
    number of looks: an O'Brien-Fleming-type boundary over the planned window, then a normal-mixture
    e-process (see stats/sequential.py)."""

    active: Annotated[bool, Field(description="False before sample_size_required: no sequential decision yet.")]
    z: float | None
    information_fraction: Annotated[
        float, Field(description="n_eff now / n_eff at the end of the planned window (1 = the window's end).")
    ]
    phase: Annotated[
        Literal["window", "after_window"],
        Field(description="Inside the planned window (both boundaries) or after it (the e-process alone)."),
    ]
    window_end_trials: Annotated[
        int, Field(description="Recorded trials at which the planned window ends (with the intended split).")
    ]
    alpha_per_direction: float
    z_boundary: Annotated[float | None, Field(description="z needed at this look to decide one direction.")]
    p_value_improvement: Annotated[float | None, Field(description="Always-valid one-sided p for improvement.")]
    p_value_regression: Annotated[float | None, Field(description="Always-valid one-sided p for regression.")]
    p_value: Annotated[float | None, Field(description="Always-valid two-sided p (2 x the smaller one-sided).")]
    confidence_sequence: Annotated[
        Interval | None, Field(description="Always-valid interval of the difference (analysis scale).")
    ]
    improvement_confidence_sequence: Annotated[
        Interval | None,
        Field(
            description="The always-valid interval as improvement %: on the log scale exp(bounds) - 1; "
            "otherwise the difference's bounds divided by the control's observed mean or rate (the "
            "uncertainty of that mean is not included)."
        ),
    ]
    method: str


class MetricAnalysis(Frozen):
    name: str
    role: Literal["primary", "guardrail"]
    direction: Direction
    kind: MetricKind
    unit: str | None
    scale: Scale
    control: ArmSummary
    treatment: ArmSummary
    improvement_pct: Annotated[float | None, Field(description="Positive when the treatment is better.")]
    improvement_ci: Interval | None
    difference: Annotated[float | None, Field(description="Treatment minus control, on the analysis scale.")]
    difference_ci: Interval | None
    relative_lift: Annotated[
        float | None,
        Field(
            description="(treatment - control) / |control| of the means (of geometric means on the log "
            "scale: their ratio - 1)."
        ),
    ]
    relative_lift_ci: Interval | None
    welch: TTest | None
    student: TTest | None
    cohens_d: float | None
    hedges_g: float | None
    cohens_h: Annotated[
        float | None, Field(description="Yes/no metrics: 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c)) (Cohen 1988).")
    ] = None
    proportions: ProportionTest | None
    mann_whitney: RankTest | None
    p_value: Annotated[float | None, Field(description="Fixed-horizon two-sided p (Welch, or proportions).")]
    p_value_regression: Annotated[float | None, Field(description="Fixed-horizon one-sided p for regression.")]
    sequential: SequentialResult | None
    messages: list[str] = []
    relative_unstable: Annotated[
        bool,
        Field(
            description="The control mean is not clearly away from 0 (Fieller's interval of the ratio is "
            "unbounded): the % change is shown but unstable; the test of the difference decides."
        ),
    ] = False


class SrmCheck(Frozen):
    """Sample-ratio mismatch: the counts against the intended split, by the exact binomial test up to
    2,000 trials and Pearson's chi-square beyond."""

    counts: Literal["assigned", "recorded"]
    control: int
    treatment: int
    expected_control_share: float
    chi2: float | None
    p_value: float | None
    mismatch: bool
    alpha: float
    test: Literal["chi-square", "exact binomial"] = "chi-square"


class Power(Frozen):
    """Sample size to detect the target improvement with `power`, for the fixed-horizon test and for
    the always-valid test that drives decisions, at the intended split between the arms; and how
    many more trials that means."""

    target_improvement_pct: float
    alpha: float
    power: float
    effect_size: float | None
    basis: Literal["observed", "guess", "none"]
    n_per_arm_fixed: Annotated[
        int | None,
        Field(
            description="Trials per arm for a single fixed-horizon test at the even split; None with an uneven "
            "split (see n_total_fixed)."
        ),
    ]
    n_per_arm_sequential: Annotated[
        int | None,
        Field(
            description="Trials per arm for the always-valid test at the even split; None with an uneven split "
            "(see n_total_sequential)."
        ),
    ]
    trials_needed_per_arm: Annotated[
        int | None,
        Field(
            description="More trials in each arm at the even split; None with an uneven split (see "
            "trials_needed_total)."
        ),
    ]
    trials_needed_total: Annotated[
        int | None,
        Field(description="More trials in all, assigned at the intended split, to reach n_total_sequential's power."),
    ]
    n_total_fixed: Annotated[
        int | None,
        Field(description="Trials across both arms, at the intended split, for a single fixed-horizon test."),
    ] = None
    n_total_sequential: Annotated[
        int | None,
        Field(description="Trials across both arms, at the intended split, for the always-valid test."),
    ] = None
    treatment_share: Annotated[
        float, Field(description="The intended share of trials assigned to the treatment (0.5: the even split).")
    ] = 0.5
    suggested_sample_size_required: Annotated[
        int | None,
        Field(
            description="Set when the planned window (to 7x sample_size_required) is short for the target "
            "effect: the sample_size_required whose window gives this power at its end."
        ),
    ] = None
    message: str


class Guardrail(Frozen):
    name: str
    direction: Direction
    max_regression_pct: float
    regression_pct: float | None
    p_value: float | None
    p_value_holm: float | None
    always_valid_p: float | None
    regression_detected: Annotated[
        bool, Field(description="A significant regression (one-sided Holm p <= alpha) beyond the tolerance.")
    ]
    checked: Annotated[bool, Field(description="Both arms have enough values to test this guardrail.")] = True
    regression_suspected: Annotated[
        bool,
        Field(
            description="Beyond the tolerance (or worse than a zero baseline) with a fixed-horizon one-sided "
            "p <= 0.05, the seed's significance level, but not yet enough for a rollback: promotion waits."
        ),
    ] = False
    worse_from_zero: Annotated[
        bool, Field(description="Worse than a control mean or rate of exactly 0 (no % change exists).")
    ] = False
    treatment_all_worst: Annotated[
        bool,
        Field(
            description="Every treatment run failed (the success_rate guardrail): promotion waits, even when "
            "the control did no better."
        ),
    ] = False
    mean_regression_pct: Annotated[
        float | None,
        Field(
            description="A log-scale guardrail only (its tests compare geometric means): the regression of its "
            "arithmetic means in % (positive = worse)."
        ),
    ] = None
    mean_regression_p: Annotated[
        float | None,
        Field(
            description="A log-scale guardrail only: one-sided Welch p that its arithmetic mean is worse "
            "(on the original scale)."
        ),
    ] = None
    mean_regressed: Annotated[
        bool,
        Field(
            description="A log-scale guardrail whose arithmetic mean regressed beyond the tolerance (a heavier "
            "tail can lower the typical value and raise the total): promotion waits."
        ),
    ] = False
    detail: str

    @property
    def blocks_promotion(self) -> bool:
        return (
            self.regression_detected
            or self.regression_suspected
            or not self.checked
            or self.treatment_all_worst
            or self.mean_regressed
        )


class Criterion(Frozen):
    name: str
    met: bool | None
    detail: str


class Decision(Frozen):
    action: Action
    criteria: list[Criterion]
    rationale: str
    driven_by: str
    target_out_of_reach: Annotated[
        bool,
        Field(
            description="Continue only in name: the always-valid interval of the improvement lies below "
            "improvement_threshold, so more data cannot promote; stop the experiment or lower the target."
        ),
    ] = False


class Analysis(Frozen):
    primary: MetricAnalysis
    guardrails: list[Guardrail]
    secondary: list[MetricAnalysis]
    srm: list[SrmCheck]
    power: Power | None
    trials_recorded: int
    sample_size_required: int
    alpha: Annotated[float, Field(description="Two-sided alpha of decisions: min(0.05, 1 - confidence_threshold).")]
    started_at: float | None
    analyzed_at: float
    max_duration_days: float
    runs_per_day: float | None
    messages: list[str] = []
    decision: Decision | None = None
    voided_trials: Annotated[
        int, Field(description="Recorded results withdrawn with void_trial and left out (reasons in the event log).")
    ] = 0
    alerts: Annotated[
        list[str],
        Field(
            description="Active monitoring alerts of a running experiment. Each calls for a rollback (as status "
            "and auto mode say) whatever `decision` says from the data alone, and holds a promotion back."
        ),
    ] = []
    experiment_status: Annotated[
        str | None,
        Field(
            description="Set when the experiment is no longer running (promoted, rolled_back, expired, draft): "
            "the decision then says only what the data show, and nothing acts on it."
        ),
    ] = None

    @property
    def ended(self) -> bool:
        """No longer running and not a draft: it takes no trials and no action."""
        return self.experiment_status is not None and not self.experiment_status.startswith("draft")
