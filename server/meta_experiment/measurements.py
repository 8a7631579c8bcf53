"""What a recorded trial may contain: the checks on metric values (finite, 0/1 for binary, > 0 on
the log scale, the primary metric present or measured from assign) and the derived values the store
keeps running statistics of."""

from __future__ import annotations

import decimal
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput
from .models import DURATION_UNITS, MetricSpec, value_from_text
from .schema import LOG_PREFIX  # one definition: the migrations backfill these statistics too


@dataclass(frozen=True)
class Definition:
    """What the hot paths (assign, record) need to know about an experiment: its status and its
    metric definitions, without building the whole Experiment model."""

    id: str
    status: str
    status_reason: str | None
    primary_metric: MetricSpec
    metrics: tuple[MetricSpec, ...]
    sample_size_required: int
    treatment_percent: int = 50
    started_at: float | None = None
    max_duration_days: float = math.inf
    auto_rollback: bool = True


MAX_ABS_VALUE = 1e15  # keeps sums of squares of millions of values far inside the float range


def check_finite(name: str, value: Any) -> float:
    """A metric value as a finite float. A number written as text ("7", " 2.5") is read as the number,
    as the record tool's argument validation reads it, so an import and a record agree."""
    if isinstance(value, str):
        read = value_from_text(value)
        if read is None:
            raise InvalidInput(
                f"Metric {name!r} must be a number, got the text {value!r}. Write the number alone "
                "(e.g. 12.5, not '12.5s' or '1_000'), in the metric's unit."
            )
        value = read
    if isinstance(value, bool) or _numpy_bool(value):
        return float(value)
    if not isinstance(value, numbers.Real | decimal.Decimal):  # (numpy's numbers and Decimal too)
        raise InvalidInput(
            f"Metric {name!r} must be a number (or true/false for a yes/no metric), got "
            f"{type(value).__name__} {value!r}."
        )
    try:
        number = float(value)
    except ValueError:  # Decimal('sNaN'), which float() refuses rather than reads as nan
        number = math.nan
    except OverflowError:  # an int beyond the float range: named by its length, not echoed
        digits = int(int(value).bit_length() * math.log10(2)) + 1  # type: ignore[call-overload,arg-type]
        raise InvalidInput(
            f"Metric {name!r} is a number of about {digits} digits, "
            f"beyond ±{MAX_ABS_VALUE:g}. "
            "Record it in a larger unit (e.g. seconds instead of nanoseconds)."
        ) from None
    if not math.isfinite(number):
        raise InvalidInput(
            f"Metric {name!r} is {value!r}; only finite numbers can be recorded. "
            "Record the real measurement, or leave the metric out if it was not measured."
        )
    if abs(number) > MAX_ABS_VALUE:
        raise InvalidInput(
            f"Metric {name!r} is {value!r}, beyond ±{MAX_ABS_VALUE:g}: its squares would overflow the "
            "running statistics. Record it in a larger unit (e.g. seconds instead of nanoseconds)."
        )
    return number


def check_value(spec: MetricSpec, value: Any) -> float:
    """One value of a metric, checked against its definition (record and import alike)."""
    name = spec.name
    if isinstance(value, str):  # "true" is true, and as such only a yes/no metric's
        value = value if (read := value_from_text(value)) is None else read
    if (isinstance(value, bool) or _numpy_bool(value)) and spec.kind != "binary":
        raise InvalidInput(
            f"Metric {name!r} is a continuous number, not yes/no; record its measured value, not {str(value).lower()}."
        )
    number = check_finite(name, value)
    if spec.kind == "binary" and number not in (0.0, 1.0):
        raise InvalidInput(f"Metric {name!r} is binary; record 0 or 1 (or true/false), not {value!r}.")
    if spec.is_duration and number < 0:
        raise InvalidInput(f"Metric {name!r} is a duration; it cannot be negative ({value!r}).")
    if spec.log_scale and number <= 0:
        raise InvalidInput(
            f"Metric {name!r} is analysed on the log scale, so its values must be > 0 (got {value!r}). "
            "If the value is right (a run can take no time or have no cost), record it in a finer unit, "
            "or run the experiment without log_scale for this metric (a new experiment: the scale is fixed "
            "at creation)."
        )
    return number


def _numpy_bool(value: Any) -> bool:
    """numpy's bool_ (a yes/no from an array), without importing numpy."""
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")


def flag(value: Any, name: str = "success") -> bool:
    """A yes/no argument: True or False (1 and 0, and the words true and false, as the tools read
    them). bool('false') is True: the Python API stored such a run as a success (from a review)."""
    if isinstance(value, bool) or _numpy_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"{name} must be true or false, not {type(value).__name__} {value!r}.")


def clean_metrics(
    experiment: Definition, metrics: Mapping[str, Any], *, elapsed: float | None, success: bool = True
) -> dict[str, float]:
    """Validate one trial's metric values against the experiment's definitions; a duration primary
    metric left out of a successful run is `elapsed` seconds in its unit. A failed run may leave the
    primary out: it counts for the success rate (and the error-rate alert) only, and no time until
    the failure stands in for a completion time (a change that fails fast would look fast). Raises
    InvalidInput saying what to fix."""
    if not isinstance(metrics, Mapping):
        raise InvalidInput("metrics must be an object of {metric name: number}.")
    known = {m.name: m for m in experiment.metrics}
    unknown = sorted(set(metrics) - set(known))
    if unknown:
        raise InvalidInput(
            f"Unknown metric(s) {unknown} for experiment {experiment.id}; its metrics are "
            f"{sorted(known)}. Record only those (names are case-sensitive)."
        )
    clean = {name: check_value(known[name], value) for name, value in metrics.items()}
    primary = experiment.primary_metric
    if primary.name not in clean and success:
        if primary.is_duration and elapsed is not None:
            # a clock stepped back since assign measures no negative time, and the value is checked
            # as a given one is (a log-scale metric needs > 0: math.log raised, from a review)
            measured = max(0.0, elapsed) / DURATION_UNITS[primary.unit or "s"]
            try:
                clean[primary.name] = check_value(primary, measured)
            except InvalidInput as exc:
                raise InvalidInput(
                    f"{exc} It was measured as the time since assign ({measured:g} {primary.unit}): give "
                    f"{primary.name} in the record call."
                ) from None
        else:
            raise InvalidInput(
                f"The primary metric {primary.name!r} is missing. Every successful run needs it (a failed run "
                "may leave it out: record it with success=false)"
                + (
                    "; a duration unit such as 's' or 'min' at creation has durations measured from assign."
                    if not primary.is_duration
                    else "."
                )
            )
    return clean


def derived_values(metrics: Sequence[MetricSpec], values: Mapping[str, float]) -> dict[str, float]:
    """Extra running statistics to keep: log(value) for every log-scale metric."""
    scaled = {m.name for m in metrics if m.log_scale}
    return {LOG_PREFIX + name: math.log(v) for name, v in values.items() if name in scaled}


def missing_guardrails(experiment: Definition, clean: Mapping[str, float], success: bool = True) -> list[str]:
    """The guardrail (secondary) metrics a successful trial's values leave out (a failed run is not
    asked for them)."""
    if not success:
        return []
    return [m.name for m in experiment.metrics if m.name != experiment.primary_metric.name and m.name not in clean]
