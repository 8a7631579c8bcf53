"""Domain errors. Each message is written for the agent (or person) who reads it: what is wrong and
what to do about it. The MCP layer turns every one of them into a tool error; the CLI prints it and
exits non-zero. Nothing else should escape to a user."""

from __future__ import annotations

import math
import re
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
    """A pydantic error as one sentence per field, without the input values echoed back. A
    misspelled key (`directon`) is named with the required key it most likely meant, whose own
    "Field required" error is then dropped; a wrong type for a nested object says so without the
    model's class name."""
    import difflib

    errors = exc.errors()
    missing = [(tuple(e["loc"][:-1]), str(e["loc"][-1])) for e in errors if e["type"] == "missing" and e["loc"]]
    guesses: dict[tuple, str] = {}  # loc of a misspelled key -> the missing key it most likely meant
    for err in errors:
        if err["type"] == "extra_forbidden" and err["loc"]:
            parent, key = tuple(err["loc"][:-1]), str(err["loc"][-1])
            close = difflib.get_close_matches(key, [name for p, name in missing if p == parent], n=1, cutoff=0.6)
            if close:
                guesses[tuple(err["loc"])] = close[0]
    meant = {(tuple(loc[:-1]), name) for loc, name in guesses.items()}
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"]) or what
        if err["type"] == "extra_forbidden" and err["loc"]:
            guess = guesses.get(tuple(err["loc"]))
            parts.append(f"{loc}: unknown key" + (f" (did you mean {guess!r}?)" if guess else ""))
        elif _non_finite(err.get("input")):
            parts.append(f"{loc}: must be a finite number")  # pydantic would name a bound instead
        elif err["type"] in ("model_type", "model_attributes_type", "dataclass_type"):
            parts.append(f"{loc}: must be an object of named fields")
        elif err["type"] == "missing" and (tuple(err["loc"][:-1]), str(err["loc"][-1])) in meant:
            continue  # reported above as the key the misspelling meant
        else:
            message = err["msg"].removeprefix("Value error, ")  # a validator's own sentence, as written
            given = err.get("input")
            allowed = (err.get("ctx") or {}).get("expected", "")
            digits = given.strip() if isinstance(given, str) else ""
            numbers = re.findall(r"\d+", str(allowed))  # the allowed values that are numbers
            if err["type"] == "literal_error" and digits.isascii() and digits.isdecimal() and digits in numbers:
                # '"20"' was told 'Input should be 10, 20, ...' (from a review): say what is wrong with it
                message += f" - as a number: {digits}, not the text {given!r}"
            parts.append(f"{loc}: {message}" if err["loc"] else message)
    return f"Invalid {what}: " + "; ".join(parts) + "."


def permission_message(exc: PermissionError) -> str:
    """A PermissionError said plainly: which file, and what to do (a state folder another user
    made, or one a group shares without group write on what its members made)."""
    where = f" {exc.filename!r}" if exc.filename else ""
    return (
        f"Permission denied on{where}: this user may not read or write it. If the project's state folder is "
        "another user's, its owner can share it (chmod -R g+rwX and g+s on the folder; its members then need "
        "umask 002), or set META_EXPERIMENT_HOME to a folder of your own."
    )


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
