"""Domain errors. Each message is written for the agent (or person) who reads it: what is wrong and
what to do about it. The MCP layer turns every one of them into a tool error; the CLI prints it and
exits non-zero. Nothing else should escape to a user."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def _non_finite(value: object) -> bool:
    """NaN or infinity, as a float or as the text a client sent ("NaN", "Infinity")."""
    if isinstance(value, bool) or not isinstance(value, float | str):
        return False
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return False


def validation_message(exc: ValidationError, what: str) -> str:
    """A pydantic error as one sentence per field, without the input values echoed back."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or what
        if _non_finite(err.get("input")):
            parts.append(f"{loc}: must be a finite number")  # pydantic would name a bound instead
        else:
            parts.append(f"{loc}: {err['msg']}")
    return f"Invalid {what}: " + "; ".join(parts) + "."


class ExperimentError(Exception):
    """Base class: a request the lifecycle refused, with a message fit to show as it is."""


class InvalidInput(ExperimentError):
    """A value is malformed or out of range (NaN metric, negative sample size, unknown metric...)."""


class NotFound(ExperimentError):
    """An experiment or trial id that the store does not know."""


class InvalidState(ExperimentError):
    """The operation does not apply to the experiment in its current status."""


class PathError(InvalidInput):
    """A path that escapes the project root, does not exist or is not a regular file."""


class Conflict(ExperimentError):
    """Something changed under us: a file edited since the experiment started, a trial recorded
    twice with different values, an id that already exists."""

    def __init__(self, message: str, *, diff: str | None = None) -> None:
        super().__init__(message)
        self.diff = diff


class StoreError(ExperimentError):
    """The state folder or database cannot be used (permissions, a newer schema, corruption)."""


class DeployError(ExperimentError):
    """A production file could not be written or restored (disk full, permissions). The message
    says what state the files were left in."""
