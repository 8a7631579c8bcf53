"""Pydantic models: what an experiment is, what each tool returns. No I/O here.

Field names are snake_case everywhere (tool arguments, structured content, export files)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

Direction = Literal["lower_is_better", "higher_is_better"]


def not_a_truth_value(value: object) -> object:
    """A number field refuses true/false: pydantic would read them as 1 and 0 (a sample size of 1,
    a threshold of 1%), which nobody means."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    return value


def unit_as_text(value: object) -> object:
    """A unit sent as a whole number (a PR number; the MCP Inspector sends `unit=123` as one) is
    that number's text: 123 and "123" are one unit. Not true/false, nor a fraction."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# After the Field with the bounds (Annotated[float, Field(ge=0), NoBool]): placed before it, the
# bounds reach the JSON schema as ge/le, which no client reads, instead of minimum/maximum.
NoBool = BeforeValidator(not_a_truth_value)

# The ranges of the experiment's targets and limits, written once: an experiment (ExperimentSpec,
# Targets), the project's defaults (settings.DefaultSettings) and the tools' arguments share them.
Percent = Annotated[float, Field(ge=0, le=1000), NoBool]  # improvement_threshold, max_regression
Confidence = Annotated[float, Field(gt=0.5, lt=1.0), NoBool]
SampleSizeRequired = Annotated[int, Field(ge=2, le=10_000_000), NoBool]
MaxDurationDays = Annotated[float, Field(gt=0, le=3650), NoBool]

MetricKind = Literal["continuous", "binary"]
Arm = Literal["control", "treatment"]
ARMS: tuple[Arm, Arm] = ("control", "treatment")
ExperimentStatus = Literal["draft", "running", "promoted", "rolled_back", "expired"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"promoted", "rolled_back", "expired"})
# the event kind of an experiment imported as promoted whose original is not known (data: files);
# a rollback of it is refused (interchange._original, release.rollback)
ORIGINAL_UNKNOWN = "original_unknown"
TrialStatus = Literal["assigned", "recorded", "abandoned", "voided"]

UNIT_MAX_CHARS = 200  # a unit (session, PR, user) id: at most this many characters
MAX_ID_LENGTH = 100  # an experiment id: at most this many characters (the tools' experiment_id, an import)
METRIC_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"
# Units that make a metric a duration: when such a primary metric is missing from `record`, the
# time since `assign` is used, converted to this unit.
DURATION_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "days": 86400.0,
}
# Other spellings of those units, read as the unit they name (in any case: "MS", "Seconds"), so that
# a duration is known as one when the experiment is created, not at its first record.
DURATION_SPELLINGS: dict[str, str] = {
    "µs": "us",
    "μs": "us",  # the Greek mu, which keyboards also give
    "usec": "us",
    "microsecond": "us",
    "microseconds": "us",
    "millis": "ms",
    "msec": "ms",
    "msecs": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "secs": "sec",
    "second": "seconds",
    "mins": "min",
    "minute": "minutes",
    "hr": "h",
    "hrs": "h",
    "hour": "hours",
    "day": "days",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The validation context of a definition read back from the database (lifecycle loads every stored
# spec with it, through MetricSpec.from_stored and Experiment.from_stored). A check added after
# experiments were created with what it now refuses must not lock those experiments out: one of an
# older version with a binary metric that had a time unit broke status, auto, analyze and rollback
# of the whole project with a validation error. Such checks run at create and import only; what
# they guard against is normalised on load where it would make results wrong (MetricSpec). The
# checks older than the oldest stored spec (name pattern, lengths, ranges, a finite floor) and those
# of create's arguments only (ExperimentSpec, treatment_percent) need no such care.
STORED: dict[str, object] = {"stored": True, "binary_scale": True}
# An export's definition (interchange): as a stored one for a binary metric's unit and log_scale,
# which earlier versions' exports may hold; every other check as at create (an export may come
# from anywhere: a unit with terminal escapes is refused).
EXPORTED: dict[str, object] = {"binary_scale": True}


def _stored(info: ValidationInfo, what: str = "stored") -> bool:
    """Whether this validation reads a definition back from the database (context STORED), or,
    with `what`, whether its context relaxes that check."""
    return isinstance(info.context, dict) and bool(info.context.get(what))


def control_characters(text: str, *, allow_newlines: bool = False) -> bool:
    """Whether `text` holds control characters (NUL and the like; newlines and tabs when
    `allow_newlines`): they break git commit messages and terminals."""
    allowed = "\n\t\r" if allow_newlines else ""
    return any((ord(ch) < 32 or ord(ch) == 127) and ch not in allowed for ch in text)


class MetricSpec(Strict):
    """One metric: its name, which way is better, and whether it is continuous or binary."""

    name: Annotated[str, Field(pattern=METRIC_NAME_PATTERN, description="Metric name, e.g. time_to_complete.")]
    direction: Annotated[
        Direction,
        Field(description="lower_is_better (time, errors) or higher_is_better (issues caught, satisfaction)."),
    ]
    kind: Annotated[
        MetricKind,
        Field(description="continuous (a number per trial) or binary (0/1 per trial, e.g. success)."),
    ] = "continuous"
    unit: Annotated[
        str | None,
        Field(
            max_length=32,
            description=f"Unit shown in reports. A duration unit ({', '.join(DURATION_UNITS)}, in any case but "
            "'us', or spelled out: microsecond, millisecond, second, minute, hour, hr, day) makes a primary metric "
            "default to the time since assign when record omits it.",
        ),
    ] = None
    description: Annotated[str, Field(max_length=2000)] = ""
    max_regression: Annotated[
        Percent | None, Field(description="Guardrail override: largest tolerated regression in % (else targets).")
    ] = None
    floor: Annotated[
        float | None,
        Field(
            description="Monitoring, for a higher_is_better metric only: the minimum acceptable mean, in the "
            "metric's own scale (e.g. 0.5 for satisfaction 0-1, 3 on 1-5). An alert fires when the treatment's mean "
            "is below it and below the control's, with always-valid evidence of both and min_trials_per_arm values "
            "in each arm; during record it stops an auto_rollback experiment. A lower_is_better metric has no "
            "floor (a low value is good): leave it out. Without one, a higher_is_better metric named as a "
            "satisfaction score (the word satisfaction or csat) gets the project's satisfaction_floor setting."
        ),
    ] = None
    log_scale: Annotated[
        bool, Field(description="Analyse on the log scale (for heavy-tailed positive metrics such as durations).")
    ] = False

    @property
    def is_duration(self) -> bool:
        return self.unit is not None and self.unit in DURATION_UNITS

    @classmethod
    def from_stored(cls, data: object) -> MetricSpec:
        """A metric definition read back from an experiment's spec_json (see STORED)."""
        return cls.model_validate(data, context=STORED)

    @classmethod
    def from_export(cls, data: object) -> MetricSpec:
        """A metric definition of an export, of this version or an earlier one (see EXPORTED)."""
        return cls.model_validate(data, context=EXPORTED)

    @field_validator("floor")
    @classmethod
    def _finite_floor(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("floor must be a finite number")
        return v

    @field_validator("unit")
    @classmethod
    def _plain_unit(cls, v: str | None, info: ValidationInfo) -> str | None:
        # Added in f02e2c7 (2026-11-26); a stored unit keeps what it was created with: it is only
        # shown in reports, and never goes into a commit message.
        if v is not None and control_characters(v) and not _stored(info):
            raise ValueError("the unit must be plain text (no control characters)")
        return v

    def with_duration_unit(self) -> MetricSpec:
        """This metric with its unit read as the duration unit another spelling or case names ("MS",
        "Seconds", "hrs"). Applied when an experiment is created or imported, never to one already
        stored, which keeps the meaning it was created with."""
        if self.unit is None or self.unit in DURATION_UNITS:
            return self
        spelled = self.unit.strip().lower()
        if spelled == "us" and self.unit.strip() != "us":  # "US" is more likely dollars than microseconds
            return self
        if spelled not in (*DURATION_UNITS, *DURATION_SPELLINGS):
            return self
        return self.model_copy(update={"unit": DURATION_SPELLINGS.get(spelled, spelled)})

    @model_validator(mode="after")
    def _binary_has_no_scale(self, info: ValidationInfo) -> MetricSpec:
        if self.kind == "binary" and _stored(info, "binary_scale"):
            # Versions before f02e2c7 (2026-11-26) accepted both. The analysis of a 0/1 metric never
            # used them (a rate is tested as a rate, stats.metric), but they reached other paths:
            # log_scale refused every 0 at record and showed the rate as 'log' scale, and a time unit
            # on a binary primary recorded the seconds since assign as its 0/1 value (and made a
            # dispatched run and the hours-saved estimate treat it as a duration). Dropped on load,
            # the experiment reads as it was analysed.
            if self.log_scale:
                self.log_scale = False
            if self.with_duration_unit().is_duration:  # any spelling ("Seconds"), as at create
                self.unit = None
            return self
        if self.kind == "binary" and self.log_scale:
            raise ValueError(f"{self.name}: log_scale is for positive continuous metrics; a binary metric is 0/1")
        if self.kind == "binary" and self.with_duration_unit().is_duration:  # "Seconds" too, not only "s"
            raise ValueError(f"{self.name}: a binary metric (0/1) cannot have the time unit {self.unit!r}")
        return self


# Treatment shares, in %, whose permuted blocks (100 / gcd(percent, 100) trials) hold at most 10:
# within a block the counts stray from the split by less than a block, and the sample-ratio check
# (exact binomial test at small counts, alpha 0.001) cannot fire on that; blocks of 20 (5%, 15%,
# 35%, ...) could put 9 treatment trials of 9 first at 45%, p = 0.0008.
TREATMENT_PERCENTS = (10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90)


def _check_treatment_percent(value: int) -> int:
    if value not in TREATMENT_PERCENTS:
        choices = ", ".join(map(str, TREATMENT_PERCENTS[:-1])) + f" or {TREATMENT_PERCENTS[-1]}"
        raise ValueError(
            f"treatment_percent must be one of {choices}, got {value}: assignment keeps the split exact "
            "in small permuted blocks (of 10 trials at most)"
        )
    return value


TreatmentPercent = Annotated[
    int,
    Field(
        description="Share of trials assigned to the treatment, in %: 50 (an even split, the default), or "
        "10, 20, 25, 30, 40, 60, 70, 75, 80, 90 (20 = one trial in five tries the change)."
    ),
    NoBool,
    AfterValidator(_check_treatment_percent),
]


class Targets(Strict):
    """Decision thresholds, in the seed's terms."""

    improvement_threshold: Annotated[
        Percent, Field(description="Minimum improvement of the primary metric to promote, in % (15 = 15%).")
    ] = 15.0
    max_regression: Annotated[
        Percent, Field(description="Largest tolerated regression before rolling back, in percent.")
    ] = 10.0
    confidence_threshold: Annotated[
        Confidence,
        Field(
            description="Required confidence of the always-valid test. Decisions use alpha = min(0.05, 1 - this), "
            "so every value up to 0.95 (the default 0.80 included) acts as 0.95; only a higher one, e.g. 0.99, is "
            "stricter.",
        ),
    ] = 0.80


class Defaults(Strict):
    """Defaults for new experiments, from the seed, overridable in the settings file."""

    targets: Targets = Targets()
    sample_size_required: SampleSizeRequired = 10
    max_duration_days: MaxDurationDays = 14.0
    auto_promote: bool = False
    auto_rollback: bool = True
    treatment_percent: TreatmentPercent = 50


class FileChange(Strict):
    """One file under test: production path and the variant that replaces it in the treatment arm.
    Hashes are of the contents snapshotted when the experiment started."""

    production: str
    variant: str
    control_sha256: str
    treatment_sha256: str
    backup: str | None = None


class ExperimentSpec(Strict):
    """Everything needed to create an experiment (validated before anything is written)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    hypothesis: Annotated[str, Field(min_length=1, max_length=4000)]
    description: Annotated[str, Field(max_length=8000)] = ""
    change_type: Annotated[str, Field(max_length=64)] = "command_modification"
    files: dict[str, str]
    primary_metric: MetricSpec
    secondary_metrics: list[MetricSpec] = []
    targets: Targets = Targets()
    sample_size_required: SampleSizeRequired = 10
    max_duration_days: MaxDurationDays = 14.0
    auto_promote: bool = False
    auto_rollback: bool = True
    treatment_percent: TreatmentPercent = 50

    @model_validator(mode="after")
    def _plain_text(self) -> ExperimentSpec:
        if control_characters(self.name):
            raise ValueError("the name must be one line of plain text (no control characters)")
        for field_name in ("name", "hypothesis"):
            if not getattr(self, field_name).strip():
                raise ValueError(f"the {field_name} is blank; say in a few words what is tested")
        for field_name in ("hypothesis", "description", "change_type"):
            if control_characters(getattr(self, field_name), allow_newlines=field_name != "change_type"):
                raise ValueError(f"the {field_name} must be plain text (no control characters such as NUL)")
        return self

    @model_validator(mode="after")
    def _duration_units(self) -> ExperimentSpec:
        self.primary_metric = self.primary_metric.with_duration_unit()
        self.secondary_metrics = [m.with_duration_unit() for m in self.secondary_metrics]
        return self

    @model_validator(mode="after")
    def _distinct_metrics(self) -> ExperimentSpec:
        names = [self.primary_metric.name, *(m.name for m in self.secondary_metrics)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names must be distinct; repeated: {', '.join(dupes)}")
        if not self.files:
            raise ValueError("files must name at least one production path and its variant")
        return self

    @property
    def metrics(self) -> list[MetricSpec]:
        return [self.primary_metric, *self.secondary_metrics]

    def row(
        self,
        experiment_id: str,
        *,
        status: str,
        created_at: float,
        started_at: float | None,
        ended_at: float | None = None,
        status_reason: str | None = None,
    ) -> dict[str, object]:
        """The experiments-table row of this spec (what never changes goes to spec_json)."""
        import json

        spec_json = self.model_dump(
            mode="json",
            include={
                "primary_metric",
                "secondary_metrics",
                "targets",
                "sample_size_required",
                "max_duration_days",
                "auto_promote",
                "auto_rollback",
            },
        )
        if self.treatment_percent != 50:  # absent means the even split (every experiment before the option)
            spec_json["treatment_percent"] = self.treatment_percent
        return {
            "id": experiment_id,
            "name": self.name,
            "hypothesis": self.hypothesis,
            "description": self.description,
            "change_type": self.change_type,
            "status": status,
            "status_reason": status_reason,
            "created_at": created_at,
            "started_at": started_at,
            "ended_at": ended_at,
            "spec_json": json.dumps(spec_json, sort_keys=True),
        }


class ArmCounts(Strict):
    assigned: int = 0
    recorded: int = 0
    abandoned: int = 0
    successes: int = 0


class Experiment(Strict):
    """An experiment as stored: its spec, its status and its counters."""

    id: str
    name: str
    hypothesis: str
    description: str
    change_type: str
    status: ExperimentStatus
    status_reason: str | None = None
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None
    files: list[FileChange]
    primary_metric: MetricSpec
    secondary_metrics: list[MetricSpec]
    targets: Targets
    sample_size_required: int
    max_duration_days: float
    auto_promote: bool
    auto_rollback: bool
    treatment_percent: int = 50
    control: ArmCounts = ArmCounts()
    treatment: ArmCounts = ArmCounts()

    @classmethod
    def from_stored(cls, data: dict[str, object]) -> Experiment:
        """An experiment from its row and spec_json, as any version stored it (see STORED)."""
        return cls.model_validate(data, context=STORED)

    @property
    def metrics(self) -> list[MetricSpec]:
        return [self.primary_metric, *self.secondary_metrics]

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def trials_recorded(self) -> int:
        return self.control.recorded + self.treatment.recorded

    @property
    def control_share(self) -> float:
        """The intended share of trials in the control arm."""
        return 1 - self.treatment_percent / 100


class Trial(Strict):
    trial_id: int
    experiment_id: str
    arm: Arm
    unit: str | None = None
    status: TrialStatus
    source: Literal["assign", "import"] = "assign"
    assigned_at: str
    recorded_at: str | None = None
    success: bool | None = None
    metrics: dict[str, float] = {}


class Event(Strict):
    id: int
    experiment_id: str | None
    at: str
    actor: str
    kind: str
    message: str
    data: dict[str, object] = {}


# -- results of lifecycle operations (the tools' structured content) ---------------------------------


class AssignedFile(Strict):
    production: Annotated[str, Field(description="The production path (relative to the project root).")]
    path: Annotated[str, Field(description="The file this arm uses: production for control, variant for treatment.")]
    sha256: str
    content: Annotated[
        str, Field(description="The text to use for this run (snapshotted when the experiment started).")
    ]


class Assignment(Strict):
    trial_id: int
    experiment_id: str
    arm: Arm
    unit: str | None = None
    assigned_at: str
    files: list[AssignedFile]
    next_step: str
    warnings: list[str] = []


class Progress(Strict):
    trials_recorded: int
    sample_size_required: int
    percent: Annotated[float, Field(description="Recorded trials as a share of those needed before a decision.")]
    trials_needed: Annotated[
        int,
        Field(
            description="More trials before a decision can come: to sample_size_required, and until each arm "
            "has 5 results (at an uneven split the short arm may need more); 0 once the experiment has ended."
        ),
    ]
    per_arm_floor: Annotated[
        str | None, Field(description="Set when the per-arm minimum, not the sample size, is what is missing.")
    ] = None


def value_from_text(text: str) -> float | bool | None:
    """A metric value written as text: a number ("12.5", " 7 ") or true/false in any case; None for
    anything else, "1_000" included (Python's float reads it; JSON and a person would not)."""
    word = text.strip()
    flag = {"true": True, "false": False}.get(word.lower())
    if flag is not None:
        return flag
    if "_" in word:
        return None
    try:
        return float(word)
    except ValueError:
        return None


def _metric_value(value: object) -> float | bool:
    """A measured value as the record and void tools receive it: a number, true/false (a yes/no
    metric's; record refuses it on a continuous one), or either written as text. Whether it is
    finite and fits its metric is checked by measurements.check_value, for imports alike."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and (read := value_from_text(value)) is not None:
        return read
    raise ValueError("must be a number, or true/false for a yes/no metric")


# One error per bad value (a plain union names each member's failure); the schema says what it takes.
MetricValue = Annotated[float | bool, PlainValidator(_metric_value), WithJsonSchema({"type": ["number", "boolean"]})]


# A text or null, as one JSON-schema type list rather than pydantic's anyOf: a client that checks
# every record's result against the schema (the Python SDK's does) spends ~50 us less per call.
OptionalText = Annotated[str | None, WithJsonSchema({"type": ["string", "null"]})]


class RecordResult(Strict):
    trial_id: int
    experiment_id: str
    arm: Arm
    metrics: dict[str, float]
    success: bool
    duplicate: Annotated[bool, Field(description="True when this exact result was already recorded (a retry).")]
    alerts: Annotated[
        list[str], Field(description="Monitoring alerts newly raised by this trial (and any auto-rollback).")
    ] = []
    missing_guardrails: Annotated[
        list[str],
        Field(
            description="Guardrail metrics this trial left out. A guardrail needs values in both arms before "
            "a promotion can happen, so record them on every run you can."
        ),
    ] = []
    # Progress, flat: a nested model would cost clients a $ref resolution on every record.
    trials_recorded: int
    sample_size_required: int
    percent: float
    trials_needed: int
    per_arm_floor: OptionalText = None
    ended: Annotated[
        OptionalText,
        Field(
            description="The experiment's status when it no longer runs: a retry after it ended, or a monitoring "
            "alert this trial raised stopped it (auto_rollback). Assign no more trials to it then."
        ),
    ] = None


class VoidResult(Strict):
    trial_id: int
    experiment_id: str
    arm: Arm
    reason: str
    voided_metrics: Annotated[
        dict[str, float], Field(description="The withdrawn values (kept for the record; no longer counted).")
    ]
    voided_success: bool
    replacement_trial_id: Annotated[
        int | None, Field(description="The trial recorded in its place with the corrected values, if any.")
    ] = None
    replacement_metrics: dict[str, float] | None = None
    replacement_success: bool | None = None
    alerts: Annotated[list[str], Field(description="Monitoring alerts newly raised once the data changed.")] = []
    ended: Annotated[
        OptionalText,
        Field(description="The experiment's status when an alert this void raised stopped it (auto_rollback)."),
    ] = None
    trials_recorded: int
    sample_size_required: int
    percent: float
    trials_needed: int
    per_arm_floor: str | None = None


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string with microseconds (lossless for export)."""
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    from datetime import UTC, datetime

    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an ISO 8601 time text such as '2026-11-25T10:00:00Z'.")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
