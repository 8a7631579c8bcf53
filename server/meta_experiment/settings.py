"""Settings: defaults for new experiments and monitoring thresholds.

Read from `[tool.meta-experiment]` in the project's pyproject.toml (if any), then from
`settings.toml` in the state folder, which wins. Updates go to `settings.toml` only, through tomlkit,
so a person's comments, ordering and formatting survive; the previous file is kept as
`settings.toml.bak` and the new one is written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidInput
from .files import atomic_write, read_regular
from .models import Confidence, MaxDurationDays, NoBool, Percent, SampleSizeRequired, TreatmentPercent

SETTINGS_FILE_NAME = "settings.toml"

_HEADER = """\
meta-experiment settings for this project.
[defaults] apply to experiments created from now on; [monitoring] to alerts.
Comments and ordering here are kept when a tool or the CLI updates a value."""


class DefaultSettings(BaseModel):
    """Defaults for new experiments (the seed's values unless changed)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    improvement_threshold: Percent = 15.0
    max_regression: Percent = 10.0
    confidence_threshold: Confidence = 0.80
    sample_size_required: SampleSizeRequired = 10
    max_duration_days: MaxDurationDays = 14.0
    auto_promote: bool = False
    auto_rollback: bool = True
    treatment_percent: TreatmentPercent = 50


class MonitoringSettings(BaseModel):
    """Alert thresholds (the seed's "Continuous Monitoring"), with guards against tiny samples. The
    checks run after every recorded trial; an alert raised while `record` runs on an experiment
    created with auto_rollback stops it (rolled back; production is untouched)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    error_rate_ratio: Annotated[
        float,
        Field(
            gt=1,
            le=100,
            description="Error-rate alert when the treatment's failure rate (trials recorded with success=false) is "
            "at least this many times the control's, with always-valid evidence. An alert during record stops an "
            "auto_rollback experiment.",
        ),
        NoBool,
    ] = 2.0
    min_trials_per_arm: Annotated[
        int,
        Field(
            ge=1,
            le=100_000,
            description="No error-rate or floor alert before each arm (control and treatment) has this many "
            "recorded trials (for a floor: values of that metric).",
        ),
        NoBool,
    ] = 10
    min_failures: Annotated[
        int, Field(ge=1, le=100_000, description="No error-rate alert from fewer failed treatment trials."), NoBool
    ] = 3
    satisfaction_floor: Annotated[
        float,
        Field(
            ge=0,
            description="Floor for satisfaction scores, in their own scale (0.5 on a 0-1 scale; e.g. 3 on 1-5, 6 on "
            "0-10; 0 turns it off for scores never below 0). It applies to every higher_is_better metric without "
            "its own floor whose name, split into words at _ . - and camelCase, has the word satisfaction or csat "
            "(user_satisfaction, csat_score, userSatisfaction; not dissatisfaction_rate or unsatisfied), and to a "
            "binary one only when it is between 0 and 1. Never to a lower_is_better metric. The alert fires when "
            "the treatment's mean is below the floor and below the control's, with always-valid evidence of both "
            "and min_trials_per_arm values in each arm; during record it stops an auto_rollback experiment.",
        ),
        NoBool,
    ] = 0.5


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    defaults: DefaultSettings = DefaultSettings()
    monitoring: MonitoringSettings = MonitoringSettings()


SECTIONS: dict[str, type[BaseModel]] = {"defaults": DefaultSettings, "monitoring": MonitoringSettings}


def _errors(exc: ValidationError) -> list[str]:
    """Each error as 'key: what is wrong'."""
    return [
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors()
    ]


def _describe(exc: ValidationError, source: str) -> str:
    return f"{source}: " + "; ".join(_errors(exc))


def settings_path(state_dir: Path) -> Path:
    """settings.toml of the state folder; where it is a symbolic link (a file shared by several
    projects), the file it points to, so that an update changes that file and keeps the link."""
    path = state_dir / SETTINGS_FILE_NAME
    if not path.is_symlink():
        return path
    target = path.resolve()
    if not target.parent.is_dir():
        raise InvalidInput(
            f"{SETTINGS_FILE_NAME} is a link to {str(target)!r}, whose folder does not exist. Create that folder, or "
            "remove the link to keep the settings in the state folder. Nothing was written."
        )
    return target


def _read_toml(path: Path) -> tuple[Any, str | None]:
    """The parsed document and its text (None, None when there is no file). A byte order mark, as
    some Windows editors write, is read past."""
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise InvalidInput(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    import tomlkit  # imported on first use: kept out of the server's start-up
    import tomlkit.exceptions

    # pyproject.toml is the project's, read by every tool: fixed, never moved aside for our defaults
    aside = "" if path.name == "pyproject.toml" else ", or move the file aside to use the defaults"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path.name} is not UTF-8 text (byte {exc.start + 1} cannot be read). Save it as UTF-8{aside}."
        ) from exc
    try:
        return tomlkit.parse(text.removeprefix("\ufeff")), text
    except tomlkit.exceptions.KeyAlreadyPresent as exc:  # tomlkit gives no line for this one
        raise InvalidInput(
            f"{path.name} is not valid TOML: {str(exc).rstrip('.')} (a key appears twice in one table). Delete one "
            f"of the two lines{aside}."
        ) from exc
    except tomlkit.exceptions.TOMLKitError as exc:
        raise InvalidInput(f"{path.name} is not valid TOML ({exc}). Fix that line{aside}.") from exc


def _load_toml(path: Path) -> Any:
    return _read_toml(path)[0]


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def load_settings(state_dir: Path, project_root: Path | None = None) -> Settings:
    own = _load_toml(state_dir / SETTINGS_FILE_NAME)
    return _merge(_pyproject_source(project_root), None if own is None else _plain(own))


def _pyproject_source(project_root: Path | None) -> list[tuple[str, dict[str, Any]]]:
    """[tool.meta-experiment] of the project's pyproject.toml as a settings source (none or one)."""
    sources: list[tuple[str, dict[str, Any]]] = []
    if project_root is not None:
        pyproject = _load_toml(project_root / "pyproject.toml")
        if pyproject is not None:
            tool = _plain(pyproject).get("tool", {})
            section = tool.get("meta-experiment") if isinstance(tool, dict) else None
            if section is None and isinstance(tool, dict) and "meta_experiment" in tool:
                raise InvalidInput(
                    "pyproject.toml has [tool.meta_experiment]; the section is [tool.meta-experiment] (with a hyphen, "
                    "as the package is named). Rename it, or its settings are not read."
                )
            if section is not None and not isinstance(section, dict):
                raise InvalidInput(
                    "pyproject.toml: [tool.meta-experiment] must be a table of settings sections "
                    "([tool.meta-experiment.defaults], ...), not a single value."
                )
            if section:
                sources.append(("pyproject.toml [tool.meta-experiment]", section))
    return sources


def settings_sources(state_dir: Path, project_root: Path | None = None) -> dict[str, dict[str, str]]:
    """Where each effective setting comes from, by section and key: settings.toml in the state
    folder, the project's pyproject.toml section, or "default" (load_settings' order: the last one
    wins)."""
    layers = _pyproject_source(project_root)
    own = _load_toml(state_dir / SETTINGS_FILE_NAME)
    if own is not None:
        layers.append((SETTINGS_FILE_NAME, _plain(own)))
    sources: dict[str, dict[str, str]] = {}
    for section, model in SECTIONS.items():
        sources[section] = {}
        for key in model.model_fields:
            given = [name for name, data in layers if isinstance(data.get(section), dict) and key in data[section]]
            sources[section][key] = given[-1] if given else "default"
    return sources


def _merge(sources: list[tuple[str, dict[str, Any]]], own: dict[str, Any] | None) -> Settings:
    """The settings from pyproject.toml's section, then settings.toml's `own` values over them; every
    bad line of every source is named in one InvalidInput."""
    if own is not None:
        sources = [*sources, (SETTINGS_FILE_NAME, own)]
    merged: dict[str, dict[str, Any]] = {}
    problems: list[str] = []  # every bad line of every source, so one round of fixes is enough
    for source, data in sources:
        unknown = sorted(set(data) - set(SECTIONS))
        home = {key: section for section, model in SECTIONS.items() for key in model.model_fields}
        loose = [key for key in unknown if not isinstance(data[key], dict)]  # a line outside any [section]
        prefix = "tool.meta-experiment." if source.startswith("pyproject.toml") else ""
        for key in loose:
            where = home.get(key)
            problems.append(
                f"{source}: '{key} = ...' stands outside any section; "
                + (
                    f"it is a setting of [{where}]: move the line under a [{prefix}{where}] line"
                    if where
                    else f"settings go under one of the sections {sorted(SECTIONS)}, and no section has {key!r}"
                )
            )
        unknown = [key for key in unknown if key not in loose]
        if unknown:
            problems.append(f"{source}: unknown section(s) {unknown}; the known sections are {sorted(SECTIONS)}")
        bad: list[str] = []
        for section, model in SECTIONS.items():
            values = data.get(section, {})
            if not isinstance(values, dict):
                problems.append(f"{source}: [{section}] must be a table of key = value lines")
                continue
            try:
                model.model_validate(values)
            except ValidationError as exc:
                bad.extend(f"{section}.{error}" for error in _errors(exc))
                continue
            merged.setdefault(section, {}).update(values)
        if bad:
            fix = (
                f"Correct that line in {source}, or delete it to use the default"
                if len(bad) == 1
                else f"Correct those lines in {source}, or delete them to use the defaults"
            )
            problems.append(f"{source}: " + "; ".join(bad) + ". " + fix)
    if problems:
        raise InvalidInput(". ".join(problems) + ".")
    return Settings.model_validate(merged)


def update_settings(
    state_dir: Path, changes: dict[str, dict[str, Any]], project_root: Path | None = None, *, dry_run: bool = False
) -> Settings:
    """Apply `{section: {key: value}}` to settings.toml, keeping everything else in the file as it
    was. Validated in full before the file is touched; `dry_run`: validated only, nothing written."""
    for section, values in changes.items():
        if section not in SECTIONS:
            raise InvalidInput(f"Unknown settings section {section!r}; use one of {sorted(SECTIONS)}.")
        unknown = sorted(set(values) - set(SECTIONS[section].model_fields))
        if unknown:
            raise InvalidInput(
                f"Unknown setting(s) {unknown} in [{section}]; known: {sorted(SECTIONS[section].model_fields)}."
            )
    import tomlkit

    path = settings_path(state_dir)
    doc, original = _read_toml(path)
    if doc is None:
        doc = tomlkit.document()
        for line in _HEADER.splitlines():
            doc.add(tomlkit.comment(line))
        doc.add(tomlkit.nl())
    current = _plain(doc)
    for section, values in changes.items():
        if values and section in current and not isinstance(current[section], dict):
            raise InvalidInput(
                f"{SETTINGS_FILE_NAME}: [{section}] is not a table of key = value lines; fix or remove that "
                "line in the file first (a .bak is kept of every file this command writes)."
            )
    candidate = {s: {**current.get(s, {}), **changes.get(s, {})} for s in SECTIONS}
    try:
        parsed = Settings.model_validate(candidate)
    except ValidationError as exc:
        given = {(section, key) for section, values in changes.items() for key in values}
        held = [e for e in exc.errors() if tuple(e["loc"][:2]) not in given]
        if held:  # the file already held a bad value: say so, not that this update is wrong
            where = ", ".join(".".join(str(part) for part in e["loc"]) for e in held)
            raise InvalidInput(
                f"{SETTINGS_FILE_NAME} already holds an invalid value ({where}): "
                f"{_describe(exc, 'the file with this update')}. Fix it in the file, or set it in this update; "
                "nothing was written."
            ) from exc
        raise InvalidInput(_describe(exc, "settings update")) from exc
    for section, values in changes.items():
        if not values:
            continue
        if section not in doc:
            doc.add(section, tomlkit.table())
        table = doc[section]
        for key in values:
            # the parsed value, so "yes" or "20" from a command line lands as true or 20
            table[key] = getattr(getattr(parsed, section), key)  # type: ignore[index]
    try:  # the settings as they would read after the write, pyproject.toml's included: all or nothing
        result = _merge(_pyproject_source(project_root), _plain(doc))
    except InvalidInput as exc:
        raise InvalidInput(f"{exc} Nothing was written.") from exc
    text = tomlkit.dumps(doc)
    if original is not None and "\r\n" in original and "\n" not in original.replace("\r\n", ""):
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")  # a file with Windows line ends keeps them
    if original is not None and original.startswith("\ufeff") and not text.startswith("\ufeff"):
        text = "\ufeff" + text
    if text == original or dry_run:  # nothing changes: write nothing, so the .bak keeps the version before
        return result
    state_dir.mkdir(parents=True, exist_ok=True)
    if original is not None:  # the file as it was, byte for byte
        atomic_write(state_dir / (SETTINGS_FILE_NAME + ".bak"), original.encode())
    atomic_write(path, text.encode())
    return result
