"""Import and export in the seed's `experiments.json` format.

The seed's template fields come first and keep their meaning (`results.control_group` is the list
of primary-metric values of the control arm, and so on). What the template has no place for —
metric definitions, every trial with all its metrics and times, the file snapshots, the event
log — travels in one extra object per experiment, `meta_experiment`, so that
export → import → export gives the same document (plus the `imported` event the import adds to
each experiment's log). A file in the seed's bare format (no `meta_experiment` block) imports too:
its groups become imported trials of the primary metric.

Two confidences travel in `results`: `statistical_confidence` keeps the seed's meaning, 1 - the
fixed-horizon Welch p (`p_value`), which is not valid when looked at after every trial;
`always_valid_confidence` is 1 - the always-valid two-sided p of the sequential test, the
`confidence` that `status` shows and decisions use. An import reads neither (both are recomputed
from the trials)."""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from pydantic import ValidationError

from .errors import Conflict, ExperimentError, InvalidInput, validation_message
from .files import read_regular
from .import_keys import DOCUMENT_KEYS, experiment_keys, ignored_sentence, unknown_keys
from .lifecycle import Lab, check_arm_sizes, check_file_roles, check_text
from .measurements import check_value, derived_values
from .models import ARMS, MAX_ID_LENGTH, ORIGINAL_UNKNOWN, TERMINAL_STATUSES, UNIT_MAX_CHARS, MetricSpec, iso, parse_iso
from .stats.guardrails import SUCCESS_METRIC
from .stats.summary import Summary
from .store import to_json

FORMAT = "meta-experiment/1"
TRIAL_STATUSES = ("assigned", "recorded", "abandoned", "voided")
# What a malformed experiment in a document raises: each becomes one sentence naming the experiment.
IMPORT_ERRORS = (InvalidInput, ValidationError, ValueError, KeyError, TypeError, AttributeError, OverflowError)
# What the lifecycle generates (exp-20261125-101500, exp-20261125-101500-2), the seed's template
# (exp-2025-10-20-001) and other plain names; nothing that reads as a path (/, \, a leading dot).
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_LENGTH - 1}}}")
_LOWER_IS_BETTER_HINT = re.compile(r"time|duration|latency|cost|error|fail|false_pos|regress|token", re.I)


def _results(
    primary: MetricSpec, trials: list[dict[str, Any]], status: str, always_valid: float | None
) -> dict[str, Any]:
    """The seed's `results` block from the trials themselves. fsum-based summaries are independent of
    recording order, so a re-import reproduces them exactly; the p-value is the fixed-horizon Welch
    p the seed reports (decisions use the always-valid test: see analyze), cluster-robust by unit
    when a unit repeats, and on the log scale for a log-scale metric, as the analysis computes it;
    the averages and improvement_pct are the arithmetic means', as in the seed. `always_valid` is
    status's `confidence`."""
    from .stats import continuous
    from .stats.numeric import clamped

    groups: dict[str, list[float]] = {arm: [] for arm in ARMS}
    units: dict[str, list[str | None]] = {arm: [] for arm in ARMS}
    for t in trials:
        if t["status"] == "recorded" and primary.name in t["metrics"]:
            groups[t["arm"]].append(t["metrics"][primary.name])
            units[t["arm"]].append(t.get("unit"))
    control, treatment = (Summary.of_units(groups[arm], units[arm]) for arm in ARMS)
    tested = (control, treatment)
    positive = all(v > 0 for arm in ARMS for v in groups[arm])
    if primary.log_scale and positive:  # the scale the analysis tests on (geometric means)
        logs = {arm: Summary.of_units([math.log(v) for v in groups[arm]], units[arm]) for arm in ARMS}
        tested = (logs["control"], logs["treatment"])
    test = continuous.t_test(*tested, "welch")
    p_value = None if test is None else test[2]
    improvement = None
    if control.n and treatment.n and control.mean != 0:
        change = (treatment.mean - control.mean) / abs(control.mean) * 100
        improvement = clamped((-change if primary.direction == "lower_is_better" else change) + 0.0)  # no -0.0
    return {
        "trials_completed": control.n + treatment.n,
        "control_group": groups["control"],
        "treatment_group": groups["treatment"],
        "control_avg": control.mean if control.n else None,
        "treatment_avg": treatment.mean if treatment.n else None,
        "improvement_pct": improvement,
        "p_value": p_value,
        "statistical_confidence": None if p_value is None else 1.0 - p_value,
        "always_valid_confidence": always_valid,
        "status": "collecting_data" if status == "running" else status,
    }


def _mark_voided(trials: list[dict[str, Any]], rows: list[Any], voided: dict[int, Any]) -> None:
    """A voided trial is exported with status 'voided' and `voided` {at, reason, replaced_by: the
    position of its replacement in the list}; the replacement carries `replaces` (its position)."""
    position = {r["id"]: i for i, r in enumerate(rows)}
    for trial_id, v in voided.items():
        i = position[trial_id]
        replaced_by = position.get(v["replaced_by"]) if v["replaced_by"] is not None else None
        trials[i]["status"] = "voided"
        trials[i]["voided"] = {"at": iso(v["voided_at"]), "reason": v["reason"], "replaced_by": replaced_by}
        if replaced_by is not None:
            trials[replaced_by]["replaces"] = i


def export_experiments(lab: Lab, ids: list[str] | None = None) -> dict[str, Any]:
    """The experiments (all when `ids` is None, or those named) as a seed-format document. Its
    `results.statistical_confidence` is the seed's 1 - fixed-horizon p; `always_valid_confidence`
    beside it is the always-valid confidence that `status` shows (see the module docstring)."""
    from . import monitoring

    if ids is not None and not ids:
        raise InvalidInput(
            "The list of experiment ids is empty, so there is nothing to export. Name at least one "
            "experiment, or leave the ids out to export all of them."
        )
    with lab.store.reading():
        # an id named twice is exported once: the document must import
        experiments = [lab.get(i) for i in dict.fromkeys(ids)] if ids is not None else lab.experiments()
        out = []
        for e in experiments:
            values = lab.store.values_by_trial(e.id)
            rows = lab.store.trial_rows(e.id)
            trials = [
                {
                    "arm": r["arm"],
                    "unit": r["unit"],
                    "status": r["status"],
                    "source": r["source"],
                    "assigned_at": iso(r["assigned_at"]),
                    "recorded_at": iso(r["recorded_at"]),
                    "success": None if r["success"] is None else bool(r["success"]),
                    "metrics": values.get(r["id"], {}),
                }
                for r in rows
            ]
            _mark_voided(trials, rows, lab.store.voided_ids(e.id))
            row = lab.store.experiment_row(e.id)
            results = _results(e.primary_metric, trials, e.status, _always_valid_confidence(lab, e.id))
            out.append(
                {
                    "id": e.id,
                    "name": e.name,
                    "created": e.created_at,
                    "status": e.status,
                    "hypothesis": e.hypothesis,
                    "changes": {
                        "type": e.change_type,
                        "files": {f.production: {"backup": f.backup, "variant": f.variant} for f in e.files},
                        "description": e.description,
                    },
                    "metrics": {
                        "primary": e.primary_metric.name,
                        "secondary": [m.name for m in e.secondary_metrics],
                    },
                    "targets": e.targets.model_dump(),
                    "sample_size_required": e.sample_size_required,
                    "treatment_percent": e.treatment_percent,
                    "max_duration_days": e.max_duration_days,
                    "auto_rollback": e.auto_rollback,
                    "auto_promote": e.auto_promote,
                    "results": results,
                    "meta_experiment": {
                        "status_reason": e.status_reason,
                        "started_at": e.started_at,
                        "ended_at": e.ended_at,
                        "next_slot": row["next_slot"] if row is not None else 0,
                        "metric_definitions": [m.model_dump() for m in e.metrics],
                        "files": [
                            {
                                "production": f.production,
                                "variant": f.variant,
                                "backup": f.backup,
                                # replace: a snapshot an older version imported without checking it is text
                                "control_content": (lab.store.blob(f.control_sha256) or b"").decode(errors="replace"),
                                "treatment_content": (lab.store.blob(f.treatment_sha256) or b"").decode(
                                    errors="replace"
                                ),
                            }
                            for f in e.files
                        ],
                        "trials": trials,
                        "events": [
                            {
                                "at": iso(ev["at"]),
                                "actor": ev["actor"],
                                "kind": ev["kind"],
                                "message": ev["message"],
                                "data": json.loads(ev["data_json"]),
                            }
                            for ev in lab.store.event_rows(e.id)
                        ],
                        # the monitoring alerts (active and cleared): the status report's alert lines, and an
                        # active one is not raised again, with a new time, by the import
                        "alerts": [
                            {
                                "kind": a.kind,
                                "message": a.message,
                                "data": a.data,
                                "raised_at": a.raised_at,
                                "cleared_at": a.cleared_at,
                            }
                            for a in monitoring.alerts(lab, e.id)
                        ],
                    },
                }
            )
    return {"format": FORMAT, "experiments": out}


def _always_valid_confidence(lab: Lab, experiment_id: str) -> float | None:
    """1 - the always-valid two-sided p of the primary metric, from the analysis `status` shows."""
    try:
        seq = lab.analyze(experiment_id).primary.sequential
    except ExperimentError:
        raise
    except Exception:  # a defect in the analysis: the export still carries every trial (status names it)
        return None
    return None if seq is None or seq.p_value is None else 1 - seq.p_value


def _metric_names(item: dict[str, Any]) -> list[str] | None:
    """[primary, *secondary] as the document's `metrics` names them (None when it names none)."""
    metrics = item.get("metrics")
    if metrics is None:
        return None
    if not isinstance(metrics, dict):
        raise ValueError('metrics must be an object: {"primary": "time_to_complete", "secondary": ["tokens"]}.')
    secondary = metrics.get("secondary") or []
    if not isinstance(secondary, list):
        raise ValueError(
            f"metrics.secondary must be a list of metric names (e.g. [{secondary!r}]), not "
            f"{type(secondary).__name__} {secondary!r}."
        )
    if metrics.get("primary") is None and not secondary:
        return None
    names = [metrics.get("primary") or "time_to_complete", *secondary]
    for name in names:
        if not isinstance(name, str):
            raise ValueError(
                f"metrics.primary and metrics.secondary hold metric names, not {type(name).__name__} {name!r}; "
                "definitions (direction, kind, unit) go in meta_experiment.metric_definitions, as an export shows."
            )
    return names


def _definitions(item: dict[str, Any], warnings: list[str]) -> list[MetricSpec]:
    ext = item.get("meta_experiment") or {}
    names = _metric_names(item)
    if ext.get("metric_definitions"):
        if not isinstance(ext["metric_definitions"], list):
            raise ValueError("meta_experiment.metric_definitions must be a list of metric definitions.")
        # as a stored definition is read (MetricSpec.from_export): an export of a version that let a
        # binary metric have a time unit or log_scale, which its analysis never used, imports as
        # it loads, without them (the create-time checks refused it)
        specs = [MetricSpec.from_export(m) for m in ext["metric_definitions"]]
        for raw, spec in zip(ext["metric_definitions"], specs, strict=True):
            dropped = [
                key
                for key, kept in (("unit", spec.unit), ("log_scale", spec.log_scale or None))
                if isinstance(raw, dict) and raw.get(key) not in (None, False) and kept is None
            ]
            if dropped:
                warnings.append(
                    f"{item.get('id')}: the binary (0/1) metric {spec.name}'s {' and '.join(dropped)} "
                    f"{'was' if len(dropped) == 1 else 'were'} left out: an earlier version accepted "
                    f"{'it' if len(dropped) == 1 else 'them'}, and a 0/1 metric is analysed as a rate without."
                )
        if names is None:
            return specs
        # metrics.primary and .secondary say which definition is which: an edited primary takes effect
        by_name = {m.name: m for m in specs}
        if sorted(names) != sorted(by_name) or len(set(names)) != len(names):
            raise ValueError(
                f"metrics names {names} (primary first), but meta_experiment.metric_definitions defines "
                f"{[m.name for m in specs]}; make the two name the same metrics (to change the primary metric, "
                "change metrics.primary and move the old one into metrics.secondary)."
            )
        return [by_name[name] for name in names]
    specs = []
    for name in names or ["time_to_complete"]:
        direction = "lower_is_better" if _LOWER_IS_BETTER_HINT.search(name) else "higher_is_better"
        warnings.append(f"{item.get('id')}: metric {name!r} has no definition; assumed {direction}.")
        specs.append(MetricSpec(name=name, direction=direction))  # type: ignore[arg-type]
    return specs


def _seed_trials(item: dict[str, Any], primary: str) -> list[dict[str, Any]]:
    results = item.get("results") or {}
    at = item.get("created")
    trials = []
    if not isinstance(results, dict):
        raise ValueError("results must be an object with control_group and treatment_group lists.")
    for arm, key in (("control", "control_group"), ("treatment", "treatment_group")):
        group = results.get(key) or []
        if not isinstance(group, list):
            raise ValueError(
                f"results.{key} must be a list of the {arm} arm's values of the primary metric (e.g. [120.5, 98]), "
                f"not {type(group).__name__} {group!r}."
            )
        for value in group:
            trials.append(
                {
                    "arm": arm,
                    "unit": None,
                    "status": "recorded",
                    "source": "import",
                    "assigned_at": at,
                    "recorded_at": at,
                    "success": True,
                    "metrics": {primary: value},
                }
            )
    return trials


def _warn_if_count_differs(item: dict[str, Any], trials: list[dict[str, Any]], warnings: list[str]) -> None:
    """A seed document's `results.trials_completed` is a summary of its groups: each value in
    control_group and treatment_group is one trial, and that is what is imported. When the count
    says otherwise (the seed's own example: 7, over 7 values in each group), say which was used
    rather than let the progress change without a word."""
    results = item.get("results")
    if not isinstance(results, dict) or results.get("trials_completed") is None:
        return
    said = results["trials_completed"]
    if isinstance(said, int | float) and not isinstance(said, bool) and said == len(trials):
        return
    control = sum(t["arm"] == "control" for t in trials)
    warnings.append(
        f"{item.get('id')}: results.trials_completed is {said!r}, but its groups hold {len(trials)} values "
        f"({control} control, {len(trials) - control} treatment); {len(trials)} trials were imported, one for each "
        "value (trials_completed is not used)."
    )


def _warn_if_results_edited(
    item: dict[str, Any], trials: list[dict[str, Any]], primary: str, warnings: list[str]
) -> None:
    """The trials of the meta_experiment block are what is imported; `results` is derived from them
    on export. When its groups no longer match (edited by hand), say so instead of ignoring it."""
    results = item.get("results") or {}
    for arm, key in (("control", "control_group"), ("treatment", "treatment_group")):
        given = results.get(key) if isinstance(results, dict) else None
        if not isinstance(given, list):
            continue
        kept = [
            t["metrics"].get(primary)
            for t in trials
            if t.get("arm") == arm and t.get("status") == "recorded" and isinstance(t.get("metrics"), dict)
        ]
        kept = [v for v in kept if v is not None]
        if list(given) != kept:
            warnings.append(
                f"{item.get('id')}: results.{key} differs from the trials in its meta_experiment block; the "
                "trials were imported (results is recomputed from them). To import edited values, edit the "
                "trials, or remove the meta_experiment block to import results alone."
            )


def import_experiments(lab: Lab, document: Any, *, on_conflict: str = "error") -> dict[str, Any]:
    """Load a seed-format document. All or nothing: any invalid experiment refuses the whole file.
    `on_conflict`: "error" refuses the import when an id already exists; "skip" leaves those alone.
    A key the format does not define is refused when it misspells one it does (it would leave a
    default in its place); any other is ignored, and named in `ignored_keys` and the warnings."""
    if on_conflict not in ("error", "skip"):
        raise InvalidInput("on_conflict must be 'error' or 'skip'.")
    misspelled, ignored_keys = unknown_keys(document, DOCUMENT_KEYS, "") if isinstance(document, dict) else ([], [])
    if misspelled:
        raise InvalidInput(f"The document: {'; '.join(misspelled)}. Nothing was imported.")
    if not isinstance(document, dict) or not isinstance(document.get("experiments"), list):
        raise InvalidInput('The document must be an object with an "experiments" list (the seed\'s experiments.json).')
    imported: list[str] = []
    skipped: list[str] = []
    warnings: list[str] = [ignored_sentence("The document", ignored_keys)] if ignored_keys else []
    if document.get("format") not in (None, FORMAT):
        warnings.append(
            f"The document's format is {document.get('format')!r}; this version reads {FORMAT!r} (and the seed's "
            "format, which has none). Fields a later format added are not read."
        )
    first_at: dict[str, int] = {}
    with lab.store.transaction():
        for index, item in enumerate(document["experiments"]):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise InvalidInput(f"experiments[{index}] must be an object with a string id.")
            if item["id"] in first_at:
                first = first_at[item["id"]]
                other = document["experiments"][first]
                if item != other and _same_experiment(item, other):  # two exports of it, taken at other times
                    raise InvalidInput(
                        f"experiments[{first}] and experiments[{index}] are two versions of experiment {item['id']} "
                        f"(the same creation time and files, {_trial_count(other)} and {_trial_count(item)} trials), "
                        "as when exports taken at different times are joined. Keep the one you want (the later "
                        "export has the later trials) and remove the other. Nothing was imported."
                    )
                if item != other:  # two experiments under one id
                    raise InvalidInput(
                        f"experiments[{index}] has the id {item['id']!r} of experiments[{first}], and they are "
                        "different experiments (other files or creation time); an id names one experiment. Rename "
                        "one of them in the document. Nothing was imported."
                    )
                if on_conflict == "skip":  # the same experiment twice (two exports joined): imported once
                    skipped.append(item["id"])
                    continue
                raise Conflict(
                    f"experiments[{index}] repeats experiments[{first}] ({item['id']}), as when two exports are "
                    "joined. Nothing was imported; pass on_conflict='skip' (CLI: --skip-existing) to import it once."
                )
            first_at[item["id"]] = index
            if not _ID.fullmatch(item["id"]):
                shown = item["id"] if len(item["id"]) <= 40 else item["id"][:40] + "..."
                raise InvalidInput(
                    f"experiments[{index}]: the id {shown!r} is not a usable experiment id. An id is 1 to "
                    f"{MAX_ID_LENGTH} letters, digits, '-', '_' or '.', starting with a letter or digit "
                    "(e.g. exp-20261125-101500); rename it in the document. Nothing was imported."
                )
            if lab.store.experiment_exists(item["id"]):
                if on_conflict == "skip":
                    skipped.append(item["id"])
                    continue
                raise Conflict(
                    f"Experiment {item['id']} already exists here. Nothing was imported; pass "
                    "on_conflict='skip' (CLI: --skip-existing) to import the others and leave existing ones "
                    "untouched."
                )
            unread = experiment_keys(index, item)
            if unread:
                ignored_keys += [f"experiments[{index}].{path}" for path in unread]
                warnings.append(ignored_sentence(item["id"], unread))
            try:
                _import_one(lab, item, warnings)
            except IMPORT_ERRORS as exc:
                raise InvalidInput(
                    f"experiments[{index}] ({item['id']}): {_import_detail(exc)} Nothing was imported."
                ) from exc
            imported.append(item["id"])
        lab.store.add_event(
            None,
            "imported",
            f"Imported {len(imported)} experiment(s)",
            actor=lab.actor,
            data={"imported": imported, "skipped": skipped},
        )
    for experiment_id in imported:
        lab._changed(experiment_id)
        warnings += _missing_files(lab, experiment_id) + _overdue(lab, experiment_id) + _alerts(lab, experiment_id)
    return {"imported": imported, "skipped": skipped, "warnings": warnings, "ignored_keys": ignored_keys}


def _alerts(lab: Lab, experiment_id: str) -> list[str]:
    """The monitoring alerts of an imported running experiment: those it had where it was exported
    (an export carries them), and those its trials raise here (an older export carries none: a
    treatment failing every run came in without its alert, though recording those trials here would
    have raised it); and the auto-rollback they set off, as a trial's would."""
    from . import monitoring

    imported = monitoring.alerts(lab, experiment_id, active_only=True)  # active where it was exported
    carried = {a.message for a in imported}
    said = monitoring.act_on(lab, experiment_id, [*imported, *monitoring.check(lab, experiment_id, regression=True)])
    return [
        f"{experiment_id}, on import: {message}"
        if message.startswith(monitoring.AUTO_ROLLBACK)
        else f"ALERT ({experiment_id}, active where it was exported): {message}"
        if message in carried
        else f"ALERT ({experiment_id}, from its imported trials): {message}"
        for message in said
    ]


def _overdue(lab: Lab, experiment_id: str) -> list[str]:
    """A warning for an imported running experiment already past its max_duration_days: the next
    auto run expires it (unless its data decide first), which an agent continuing it should know."""
    experiment = lab.get(experiment_id)
    if experiment.status != "running" or experiment.started_at is None:
        return []
    age = (lab.clock() - parse_iso(experiment.started_at)) / 86400
    if age < experiment.max_duration_days:
        return []
    return [
        f"{experiment_id} is running but started {age:.0f} days ago, past its max_duration_days "
        f"({experiment.max_duration_days:g}): the next auto run expires it unless its data decide first. To keep "
        "collecting, roll it back and import it again under a new id with a max_duration_days above its age."
    ]


def _missing_files(lab: Lab, experiment_id: str) -> list[str]:
    """A warning for an imported experiment that still runs (or waits to) on files this project
    does not have: its assign, promote and rollback would refuse, so say it now."""
    experiment = lab.get(experiment_id)
    if experiment.status not in ("running", "draft"):
        return []
    missing = [
        path
        for f in experiment.files
        for path in (f.production, f.variant)
        if not os.path.isfile(lab.project_root / path)  # False, not an error, for a name too long
    ]
    if not missing:
        return []
    return [
        f"{experiment_id} is {experiment.status}, and {', '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not in this project: its assign, promote and rollback refuse "
        "until the file is there (was the export made in another project, or on another branch?)."
    ]


def _import_detail(exc: Exception) -> str:
    """One sentence on what is malformed, whatever the document's shape tripped over."""
    if isinstance(exc, ValidationError):
        return validation_message(exc, "experiment")
    if isinstance(exc, InvalidInput):
        return str(exc).rstrip(".") + "."
    if isinstance(exc, KeyError):
        return f"the field {exc.args[0]!r} is missing."
    if isinstance(exc, TypeError | AttributeError):
        return f"a field has the wrong type ({exc}); compare with an export of this version."
    if isinstance(exc, OverflowError):
        return f"a number is out of range ({exc})."
    return str(exc)


def _check_replacements(trials: list[dict[str, Any]]) -> None:
    """A voided trial's voided.replaced_by and its replacement's `replaces` name each other, as an
    export writes them (a replacement is not counted as an assignment: one without its voided
    trial, or a trial replacing itself, would miscount the split)."""

    def position(value: Any) -> int | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(trials)
        return value if ok else None

    for i, t in enumerate(trials):
        marked = t.get("voided") if t.get("status") == "voided" else None
        replaced_by = marked.get("replaced_by") if isinstance(marked, dict) else None
        if replaced_by is not None:
            j = position(replaced_by)
            if j is None or j == i or trials[j].get("replaces") != i:
                raise ValueError(
                    f"trials[{i}].voided.replaced_by {replaced_by!r} must be the position of another trial whose "
                    f"replaces is {i}, as an export writes them (or leave it out: voided without a replacement)."
                )
            unit = lambda u: u.strip() if isinstance(u, str) else u  # noqa: E731  (as _unit reads it)
            if trials[j].get("arm") != t.get("arm") or unit(trials[j].get("unit")) != unit(t.get("unit")):
                raise ValueError(
                    f"trials[{j}] replaces trials[{i}] in another arm or unit: a replacement is a correction of the "
                    "same run (void_trial gives it the voided trial's arm and unit)."
                )
            if trials[j].get("status") not in ("recorded", "voided"):
                raise ValueError(
                    f"trials[{j}] replaces trials[{i}] but has status {trials[j].get('status')}: a replacement holds "
                    "the corrected values (status recorded, or voided when corrected again)."
                )
        if "replaces" in t:
            k = position(t["replaces"])
            other = trials[k] if k is not None and k != i else {}
            back = other.get("voided") if other.get("status") == "voided" else None
            if not isinstance(back, dict) or back.get("replaced_by") != i:
                raise ValueError(
                    f"trials[{i}].replaces {t['replaces']!r} must be the position of a voided trial whose "
                    f"voided.replaced_by is {i}, as an export writes them (or remove replaces: a trial of its own)."
                )
            seen, at = {i}, k  # the chain of corrections leads back to a run that was assigned
            while at is not None and "replaces" in trials[at]:
                if at in seen:
                    raise ValueError(
                        f"trials[{i}]'s replaces lead round in a circle: each correction replaces an "
                        "earlier trial, back to the run that was assigned."
                    )
                seen.add(at)
                at = position(trials[at]["replaces"])  # (one that is not a position: refused at its own turn)


def _snapshots(lab: Lab, files: Any) -> dict[str, dict[str, Any]]:
    """meta_experiment.files by production path (normalised as changes.files' paths are: './a.md'
    is a.md), each checked to hold the snapshot texts."""
    if files is None:
        return {}
    if not isinstance(files, list):
        raise ValueError(
            "meta_experiment.files must be a list of {production, variant, control_content, treatment_content}, "
            "as an export writes it (or leave it out: the files are read as they are)."
        )
    snapshots = {}
    for i, f in enumerate(files):
        where = f"meta_experiment.files[{i}]"
        if not isinstance(f, dict):
            raise ValueError(f"{where} must be an object {{production, variant, control_content, treatment_content}}.")
        for key in ("production", "control_content", "treatment_content"):
            if not isinstance(f.get(key), str):
                raise ValueError(f"{where}.{key} must be text, as an export writes it.")
        _text_or_none(f.get("backup"), f"{where}.backup")
        production = _inside(lab, f["production"], "file")
        if production in snapshots:
            raise ValueError(f"{where} is a second snapshot of {production}; keep one.")
        snapshots[production] = f
    return snapshots


def _event(ev: Any, where: str) -> tuple[str, str, str, dict[str, Any], float]:
    """(kind, message, actor, data, at) of an imported event, checked as the event log reads them."""
    if not isinstance(ev, dict):
        raise ValueError(f"{where} must be an object (kind, message, actor, at, data).")
    kind, message, actor, data, at = (
        ev.get("kind"),
        ev.get("message"),
        ev.get("actor", "import"),
        ev.get("data"),
        ev.get("at"),
    )
    if not all(isinstance(v, str) for v in (kind, message, actor)):
        raise ValueError(f"{where} needs string kind, message and actor, as an export writes them.")
    try:
        when = parse_iso(at) if isinstance(at, str) else None
    except ValueError:
        when = None
    if when is None:
        raise ValueError(
            f"{where}.at {at!r} must be an ISO 8601 time such as '2025-10-20T10:30:00Z', as an export writes it."
        )
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{where}.data must be an object, not {type(data).__name__}.")
    try:  # the event log is exported as JSON: NaN or Infinity would make an export strict readers refuse
        json.dumps(data, allow_nan=False)
    except ValueError:
        raise ValueError(f"{where}.data (event {kind!r}) holds NaN or Infinity, which JSON has no place for.") from None
    return kind, message, actor, data or {}, when  # type: ignore[return-value]


def _alert(alert: Any, where: str) -> tuple[str, str, dict[str, Any], float, float | None]:
    """(kind, message, data, raised at, cleared at) of an imported monitoring alert."""
    if not isinstance(alert, dict):
        raise ValueError(f"{where} must be an object.")
    kind, message, data = alert.get("kind"), alert.get("message"), alert.get("data") or {}
    if not isinstance(kind, str) or not kind or not isinstance(message, str) or not isinstance(data, dict):
        raise ValueError(f"{where} needs a string kind and message, and data as an object.")
    raised = _time(alert.get("raised_at"), f"{where}.raised_at")
    cleared = _time(alert["cleared_at"], f"{where}.cleared_at") if alert.get("cleared_at") is not None else None
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        raise ValueError(f"the data of {where} holds NaN or Infinity, which JSON has no place for.") from None
    return kind, message, data, raised, cleared


def _import_one(lab: Lab, item: dict[str, Any], warnings: list[str]) -> None:
    from .models import ExperimentSpec

    ext = item.get("meta_experiment") or {}
    if not isinstance(ext, dict):
        raise ValueError("meta_experiment must be an object, as an export writes it (or leave it out).")
    specs = _definitions(item, warnings)
    defaults = lab.settings().defaults
    changes = item.get("changes") or {}
    pairs = _file_pairs(changes)
    status = item.get("status", "running")
    if status not in ("draft", "running", *TERMINAL_STATUSES):
        valid = ", ".join(("draft", "running", *TERMINAL_STATUSES))
        raise ValueError(f"unknown status {status!r}; a status is one of: {valid}.")
    spec = ExperimentSpec.model_validate(
        {
            "name": item.get("name") or item["id"],
            "hypothesis": item.get("hypothesis") or "(imported)",
            "description": changes.get("description") or "",
            "change_type": changes.get("type") or "command_modification",
            "files": pairs,
            "primary_metric": specs[0],
            "secondary_metrics": specs[1:],
            # what the document leaves out is the project's default, as for create (settings [defaults])
            "targets": _targets(item.get("targets"), defaults),
            **_with_defaults(item, defaults, SPEC_DEFAULT_KEYS),
        }
    )
    if status in ("draft", "running") and any(m.name == SUCCESS_METRIC for m in spec.metrics):
        raise ValueError(
            f"a metric is named {SUCCESS_METRIC!r}, the name of the guardrail computed from each trial's success "
            "flag, which it would replace: rename it (in metrics and meta_experiment.metric_definitions, and in "
            "the trials' metrics). An ended experiment keeps it, as its record."
        )
    now = lab.clock()
    created = _created(item, now)
    lab.store.insert_experiment(
        spec.row(
            item["id"],
            status=status,
            status_reason=_text_or_none(ext.get("status_reason"), "meta_experiment.status_reason"),
            created_at=created,
            started_at=_time(ext["started_at"], "meta_experiment.started_at") if ext.get("started_at") else created,
            ended_at=_time(ext["ended_at"], "meta_experiment.ended_at") if ext.get("ended_at") else None,
        )
    )
    if ext.get("next_slot"):
        slot = ext["next_slot"]
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < 2**62:
            raise ValueError(
                f"meta_experiment.next_slot must be a whole number from 0 (the count of assignments made), not "
                f"{slot!r}; leave it out to start from 0."
            )
        lab.store.update_experiment(item["id"], next_slot=slot)
    snapshots = _snapshots(lab, ext.get("files"))
    # Whatever the status: rolling back a promoted experiment writes its production files.
    files = {
        given: (_inside(lab, given, "file"), _inside(lab, variant, "variant")) for given, variant in spec.files.items()
    }
    check_file_roles(list(files.values()))  # after normalising: "a.md" and "./a.md" are one file
    stray = sorted(set(snapshots) - {production for production, _ in files.values()})
    if stray:  # (from a review: dropped without a word)
        raise ValueError(
            f"meta_experiment.files has a snapshot of {', '.join(stray)}, which changes.files does not name; "
            "name it there, or remove the snapshot."
        )
    if status in ("draft", "running"):
        busy = lab._files_in_running_experiments()
        for path in (p for pair in files.values() for p in pair):
            if path in busy:
                raise ValueError(
                    f"{path!r} is already under test in experiment {busy[path]!r}, which has not ended; two "
                    "experiments on one file would confound each other. Import this one with a terminal status, or "
                    "finish the other first."
                )
    contents: list[tuple[str, bytes, bytes]] = []
    unknown: list[str] = []
    for given, (production, variant) in files.items():
        snap = snapshots.get(production)
        if snap is not None:
            control, treatment = snap["control_content"].encode(), snap["treatment_content"].encode()
        else:
            control, treatment = _read_current(lab, production, variant, status, item["id"], warnings)
            if status == "promoted":  # production holds the promoted text now, not the original
                control = _original(lab, item["id"], given, production, changes, control, unknown, warnings)
        for path, content in ((production, control), (variant, treatment)):
            check_text(path, content)  # as create: runs are handed text
        contents.append((production, control, treatment))
        lab.store.insert_file(
            item["id"], production, variant, lab.store.put_blob(control), lab.store.put_blob(treatment)
        )
        if snap is not None and snap.get("backup"):
            lab.store.set_file_backup(item["id"], production, snap["backup"])
    if status in ("draft", "running"):  # assign will hand these files to runs
        check_arm_sizes(contents)
    trials: list[dict[str, Any]] = ext["trials"] if "trials" in ext else _seed_trials(item, spec.primary_metric.name)
    if "trials" not in ext:
        _warn_if_count_differs(item, trials, warnings)
    if not isinstance(trials, list):
        raise ValueError("meta_experiment.trials must be a list of trials, as an export writes it.")
    trials = list(trials)  # (a trial without a status gets one below; the caller's document is left as it is)
    for i, t in enumerate(trials):
        where = f"trials[{i}]"
        if not isinstance(t, dict):
            raise ValueError(f"{where} must be an object (arm, status, metrics, ...), as an export writes it.")
        trials[i] = t = _with_status(t, where)
        if t.get("arm") not in ARMS:
            raise ValueError(f"{where}.arm {t.get('arm')!r} is not control or treatment.")
        if t.get("status", "assigned") not in TRIAL_STATUSES:
            raise ValueError(
                f"{where}.status {t.get('status')!r} is not one of {', '.join(TRIAL_STATUSES)} (a recorded trial's "
                "values are imported only with status recorded)."
            )
        if t.get("recorded_at") is not None:
            _time(t["recorded_at"], f"{where}.recorded_at")
    _check_replacements(trials)
    defined = ext.get("metric_definitions") or []
    if "trials" in ext and (not defined or defined[0].get("name") == spec.primary_metric.name):
        # (with a new primary metric, results holds the old one's values: nothing to compare)
        _warn_if_results_edited(item, trials, spec.primary_metric.name, warnings)
    known = {m.name: m for m in spec.metrics}
    # Fold in recording order, as the original store did, so the running statistics match exactly.
    order = sorted(range(len(trials)), key=lambda i: (trials[i].get("recorded_at") or "", i))
    recorded: list[tuple[int, dict[str, float], bool, float]] = []
    rows = [
        (
            t["arm"],
            _unit(t.get("unit"), f"trials[{i}].unit"),
            _source(t, f"trials[{i}]"),
            _time(t["assigned_at"], f"trials[{i}].assigned_at") if t.get("assigned_at") else created,
            "replaces" not in t,  # a voided trial's replacement is not an assignment
        )
        for i, t in enumerate(trials)
    ]
    new_ids = dict(enumerate(lab.store.insert_imported_trials(item["id"], rows)))
    for i in order:
        t, where = trials[i], f"trials[{i}]"
        if t.get("status") in ("recorded", "voided"):
            metrics = t.get("metrics") or {}
            if not isinstance(metrics, dict):
                raise ValueError(f"{where}.metrics must be an object {{metric name: value}}.")
            values = {}
            for name, value in metrics.items():
                if name not in known:
                    raise ValueError(f"{where}: metric {name!r} is not one of {sorted(known)}.")
                try:
                    values[name] = check_value(known[name], value)
                except InvalidInput as exc:
                    raise ValueError(f"{where}: {exc}") from None
            success = _success(t, where)
            if spec.primary_metric.name not in values and success:
                raise ValueError(
                    f"{where} is a successful recorded trial without a value for the primary metric "
                    f"{spec.primary_metric.name!r}."
                )
            at = _time(t["recorded_at"], f"{where}.recorded_at") if t.get("recorded_at") else created
            if t["status"] == "voided":
                void: dict[str, Any] = t["voided"] if isinstance(t.get("voided"), dict) else {}
                reason = str(void.get("reason") or "voided (imported)")
                voided_at = _time(void["at"], f"{where}.voided.at") if void.get("at") else at
                lab.store.insert_voided(new_ids[i], values, success, at, voided_at, reason)
                continue
            recorded.append((new_ids[i], values, success, at))
    # written at once and folded once, in recording order (as each record folded them): per trial
    # this held the write lock, which every other session's record waits for, ~3x as long
    lab.store.record_imported(item["id"], recorded, lambda values: derived_values(spec.metrics, values))
    lab.store.abandon_trial_ids([new_ids[i] for i, t in enumerate(trials) if t.get("status") == "abandoned"])
    for i, t in enumerate(trials):
        marked = t.get("voided") if t.get("status") == "voided" else None
        replaced_by = marked.get("replaced_by") if isinstance(marked, dict) else None
        if replaced_by is not None:
            lab.store.set_replacement(new_ids[i], new_ids[replaced_by])
    events = ext.get("events") or []
    if not isinstance(events, list):
        raise ValueError("meta_experiment.events must be a list of events, as an export writes it.")
    for i, ev in enumerate(events):
        kind, message, actor, data, when = _event(ev, f"meta_experiment.events[{i}]")
        lab.store.add_event(item["id"], kind, message, actor=actor, data=data, at=when)
    alerts = ext.get("alerts") or []
    if not isinstance(alerts, list):
        raise ValueError("meta_experiment.alerts must be a list of alerts.")
    for i, alert in enumerate(alerts):
        lab.store.put_alert(item["id"], *_alert(alert, f"meta_experiment.alerts[{i}]"))
    if unknown:
        lab.store.add_event(
            item["id"],
            ORIGINAL_UNKNOWN,
            f"The original of {', '.join(unknown)} is not known: imported as promoted without a snapshot or a backup "
            "of it",
            actor=lab.actor,
            data={"files": unknown},
            at=now,
        )
    lab.store.add_event(
        item["id"],
        "imported",
        f"Imported with status {status} and {len(trials)} trial(s)",
        actor=lab.actor,
        data={"status": status, "trials": len(trials), "created": iso(created)},
        at=now,
    )


def _file_pairs(changes: Any) -> dict[str, str]:
    """changes.files as {production: variant}: the seed's {production: {"variant": ...}}, or the
    {production: variant} that create_experiment takes."""
    if not isinstance(changes, dict):
        raise ValueError('changes must be an object: {"files": {"PRODUCTION": {"variant": "VARIANT"}}}.')
    files = changes.get("files") or {}
    if not isinstance(files, dict):
        raise ValueError('changes.files must be an object: {"PRODUCTION": {"variant": "VARIANT"}, ...}.')
    pairs = {}
    for production, entry in files.items():
        variant = entry.get("variant") if isinstance(entry, dict) else entry
        if not isinstance(variant, str) or not variant:
            raise ValueError(
                f'changes.files[{production!r}] must name its variant: {{"variant": "{production}.experiment"}} '
                "(or the variant's path alone)."
            )
        pairs[production] = variant
    return pairs


def _same_experiment(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two entries with one id describe one experiment: the same creation time and files."""
    return bool(a.get("created") == b.get("created") and a.get("changes") == b.get("changes"))


def _trial_count(item: dict[str, Any]) -> int:
    ext = item.get("meta_experiment")
    trials = ext.get("trials") if isinstance(ext, dict) else None
    if isinstance(trials, list):
        return len(trials)
    results = item.get("results")
    groups = [results.get(key) for key in ("control_group", "treatment_group")] if isinstance(results, dict) else []
    return sum(len(group) for group in groups if isinstance(group, list))


def _source(t: dict[str, Any], where: str) -> str:
    source = t.get("source") or "import"
    if source not in ("assign", "import"):
        raise ValueError(f"{where}.source {source!r} is not assign or import (leave it out for import).")
    return str(source)


def _unit(value: Any, where: str) -> str | None:
    """A trial's unit: null, or an id of 1 to UNIT_MAX_CHARS characters, as assign takes it."""
    unit = _text_or_none(value, where)
    if unit is None:
        return None
    unit = unit.strip()  # as assign takes it: " pr-1" is unit "pr-1"
    if not 0 < len(unit) <= UNIT_MAX_CHARS:
        raise ValueError(f"{where} must be an id of 1 to {UNIT_MAX_CHARS} characters (as assign takes it), or null.")
    return unit


def _text_or_none(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where} must be text or null, not {type(value).__name__} {value!r}.")
    return value


def _time(value: Any, where: str) -> float:
    """An ISO 8601 time of the document, or one sentence naming the field."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return parse_iso(value)
    except ValueError:
        raise ValueError(
            f"{where} {value!r} is not an ISO 8601 time such as '2025-10-20T10:30:00Z'; correct it, or leave it out."
        ) from None


_TRUTH = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _success(t: dict[str, Any], where: str) -> bool:
    """A trial's success flag: true/false, 1/0, or a string that spells yes or no (as record reads them);
    absent means a success."""
    value = t.get("success", True)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUTH:
        return _TRUTH[value.strip().lower()]
    raise ValueError(f"{where}.success must be true or false, not {value!r}.")


def _created(item: dict[str, Any], now: float) -> float:
    """The document's creation time (the seed's `created`, or `created_at` as other tools name it),
    else the import's."""
    key = "created" if item.get("created") not in (None, "") else "created_at"
    if item.get(key) in (None, ""):
        return now
    try:
        return parse_iso(item[key])
    except ValueError:
        raise ValueError(
            f"{key} {item[key]!r} is not an ISO 8601 time such as '2025-10-20T10:30:00Z'; correct it, or "
            "leave it out to use the time of the import."
        ) from None


def _inside(lab: Lab, path: str, what: str) -> str:
    """The project-relative form of a file the document names, which must lie inside this project."""
    from . import paths

    try:
        return paths.confine(lab.project_root, path, must_exist=False, what=what)
    except InvalidInput as exc:
        raise ValueError(
            f"{exc} An imported experiment may only name files of the project it is imported into; "
            "correct the path in the document (changes.files) before importing."
        ) from None


TARGET_KEYS = ("improvement_threshold", "max_regression", "confidence_threshold")
SPEC_DEFAULT_KEYS = ("sample_size_required", "treatment_percent", "max_duration_days", "auto_promote", "auto_rollback")


def _targets(given: Any, defaults: Any) -> Any:
    """The document's targets, the project's default for each one it leaves out (anything but an
    object is left for the definition's check to refuse)."""
    if given is not None and not isinstance(given, dict):
        return given
    return {**(given or {}), **_with_defaults(given, defaults, TARGET_KEYS)}


def _with_defaults(given: Any, defaults: Any, keys: tuple[str, ...]) -> Any:
    """`given`'s values of `keys`, the project's default (settings [defaults]) for each it leaves
    out or gives as null (from a review: an import used the seed's values whatever the project's
    defaults said)."""
    given = given or {}
    return {key: getattr(defaults, key) if given.get(key) is None else given[key] for key in keys}


def _with_status(trial: dict[str, Any], where: str) -> dict[str, Any]:
    """A hand-written trial without a status is recorded when it has values (metrics or a success
    flag), else assigned; values on a trial that is not recorded are refused, not dropped (from a
    review: a trial with metrics and no status was imported as assigned, its values lost)."""
    measured = bool(trial.get("metrics")) or trial.get("success") is not None
    if "status" not in trial:
        return {**trial, "status": "recorded" if measured else "assigned"}
    if trial["status"] in ("assigned", "abandoned") and measured:
        what = "metrics" if trial.get("metrics") else "success flag"
        article = "" if what == "metrics" else "a "
        raise ValueError(
            f"{where} has status {trial['status']} and {article}{what}: values are imported only with a trial of "
            f"status recorded. Set its status to recorded (or leave the status out), or remove its {what}."
        )
    return trial


def _original(
    lab: Lab,
    experiment_id: str,
    given: str,
    production: str,
    changes: dict[str, Any],
    current: bytes,
    unknown: list[str],
    warnings: list[str],
) -> bytes:
    """The original of a file of an experiment imported as promoted without snapshots (the seed's
    own document): the seed's promotion copied the variant over production and kept the original
    in the backup that changes.files names. Without that backup the original is not known: the
    file goes to `unknown` (an event that makes a rollback refuse; from a review: a rollback said it
    restored the original and left the promoted text in place)."""
    from . import paths

    entry = (changes.get("files") or {}).get(given)
    backup = entry.get("backup") if isinstance(entry, dict) else None
    if isinstance(backup, str) and backup:
        try:
            content = read_regular(paths.project_file(lab.project_root, _inside(lab, backup, "backup")))
        except (InvalidInput, OSError, ValueError):
            pass
        else:
            try:
                check_text(backup, content)  # (named as the backup: the production file is text)
            except InvalidInput as exc:
                raise ValueError(f"the backup of {production}: {exc}") from None
            warnings.append(
                f"{experiment_id}: the original of {production} (what a rollback restores) is taken from its "
                f"backup {backup}, as the document names it."
            )
            return content
    named = f"its backup {backup} is not in this project" if backup else "the document names no backup of it"
    unknown.append(production)
    warnings.append(
        f"{experiment_id}: the original of {production} is not known ({named}, and the file holds the promoted "
        "text now), so a rollback of this experiment is refused; restore the original by hand from git history "
        f"if you need it (`git log -p -- {production}`)."
    )
    return current


def _read_current(
    lab: Lab, production: str, variant: str, status: str, experiment_id: str, warnings: list[str]
) -> tuple[bytes, bytes]:
    from . import paths

    contents = []
    for path in (production, variant):
        try:
            contents.append(read_regular(paths.project_file(lab.project_root, path)))
        except (InvalidInput, OSError):
            if status in ("draft", "running"):
                raise ValueError(
                    f"{path!r} does not exist in this project, and a {status} experiment needs its files. "
                    "Create the file, or import the experiment with a terminal status."
                ) from None
            warnings.append(f"{experiment_id}: {path} does not exist in this project; its snapshot is empty.")
            contents.append(b"")
    if status == "running":  # a draft is snapshotted again when it is started
        warnings.append(
            f"{experiment_id}: the document has no snapshot of {production} and {variant}, so the files as they "
            "are now (uncommitted edits included) are what the control and treatment runs use."
        )
    return contents[0], contents[1]


def export_path(lab: Lab, path: str) -> str:
    """The project-relative file an export may be written to, or a clear refusal. Cheap: callers
    check it before building the export, which runs every experiment's analysis."""
    from . import paths

    rel = paths.confine(lab.project_root, path, must_exist=False, what="export path")
    for exp in lab.experiments(["running"]):
        if any(rel in (f.production, f.variant) for f in exp.files):
            raise InvalidInput(
                f"{rel!r} is a file under test in running experiment {exp.id}; an export must not "
                "overwrite it. Choose another path, e.g. experiments.json."
            )
    target = lab.project_root / rel
    if not target.parent.is_dir():
        raise InvalidInput(f"The folder for {rel!r} does not exist; create it or choose another path.")
    try:
        exists = target.exists()
    except OSError as exc:  # a name too long for the file system
        raise paths.path_os_error("export path", path, exc) from None
    if exists and not target.is_file():
        raise InvalidInput(f"{rel!r} exists and is not a regular file; choose another path.")
    if exists and not _is_export(target):
        raise Conflict(
            f"{rel} already exists and is not an export of this tool (a seed-format experiments.json is imported, "
            f"not replaced): nothing was written. Choose another file name (e.g. {_free_name(lab, target)}), or "
            "move that file away first."
        )
    return rel


def _free_name(lab: Lab, taken: Any) -> str:
    """A file name next to `taken` that an export may be written to: none there yet, or an export
    (from a review: the name suggested was a file that was refused too)."""
    folder = taken.parent
    for n in range(1, 1000):
        for name in ("experiments.json", "meta-experiment-export.json", f"meta-experiment-export-{n}.json"):
            candidate = folder / name
            if candidate != taken and (not candidate.exists() or (candidate.is_file() and _is_export(candidate))):
                return candidate.relative_to(lab.project_root).as_posix()
    return "a name not used yet"


def write_document(lab: Lab, path: str, document: dict[str, Any]) -> tuple[str, str | None]:
    """Write an export into the project (atomically); an existing file is first backed up into
    the state folder. Returns the project-relative path written and the backup's path (relative
    to the project when the state folder is inside it), if a file was replaced."""
    from .deploy import file_lock

    data = (to_json(document, indent=2, ensure_ascii=False) + "\n").encode()
    if lab.empty_project:  # no state folder to hold a lock (nor one to make for it)
        return _write_document(lab, path, data)
    # one writer at a time: the check of the file there, its write and its event go together (two
    # exports at once each took the other's file for someone's change and backed it up, from a review)
    busy = "Another export is writing to the project; try again in a moment."
    with file_lock(lab.state_dir / EXPORT_LOCK_NAME, wait=EXPORT_LOCK_WAIT_SECONDS, busy=busy):
        return _write_document(lab, path, data)


EXPORT_LOCK_NAME = "export.lock"
EXPORT_LOCK_WAIT_SECONDS = 60.0


def _write_document(lab: Lab, path: str, data: bytes) -> tuple[str, str | None]:
    from .deploy import sha256_hex
    from .files import atomic_write, backup_bytes

    rel = export_path(lab, path)  # refuses to replace a file that is not a previous export
    target = lab.project_root / rel
    shown = None
    if target.exists():
        current = target.read_bytes()
        # an export this tool wrote there, unchanged since, is no one's work: replaced without a copy
        # (a weekly refreshed export otherwise left a whole copy in backups/ each time, for good)
        written = [e for e in lab.events(kinds=["export_written"]) if e.data.get("path") == rel]
        if not written or written[-1].data.get("sha256") != sha256_hex(current):
            backup = backup_bytes(lab.state_dir, current)
            lab.event(None, "export_backup", f"Backed up {rel} before overwriting it", path=rel, backup=backup.name)
            try:
                shown = backup.relative_to(lab.project_root).as_posix()
            except ValueError:
                shown = str(backup)
    atomic_write(target, data)
    lab.event(None, "export_written", f"Exported to {rel}", path=rel, sha256=sha256_hex(data))
    return rel, shown


def _is_export(path: Any) -> bool:
    """Whether an existing file holds a previous export (a JSON object of this format with an
    `experiments` list), which an export may replace after backing it up; any other file is the
    user's, the seed's own experiments.json included."""
    try:
        document = json.loads(read_regular(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (
        isinstance(document, dict)
        and document.get("format") == FORMAT
        and isinstance(document.get("experiments"), list)
    )


def read_document(lab: Lab, path: str) -> Any:
    """The document in a project file (the import tool's `path`)."""
    from . import paths

    rel = paths.confine(lab.project_root, path, what="import file")
    return parse_document(read_regular(lab.project_root / rel), rel)


def read_document_file(path: str) -> Any:
    """The document in a file anywhere (the CLI's argument, relative to the current folder), named
    as given in any error."""
    from pathlib import Path

    try:
        data = read_regular(Path(path))
    except FileNotFoundError:
        raise InvalidInput(
            f"The import file {path!r} does not exist. Check the spelling (a relative path starts at the "
            "current folder). Nothing was imported."
        ) from None
    except IsADirectoryError:
        raise InvalidInput(f"{path!r} is a folder; give the JSON file to import. Nothing was imported.") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise InvalidInput(f"Cannot read the import file {path!r} ({reason}). Nothing was imported.") from None
    return parse_document(data, path)


def parse_document(data: bytes, name: str) -> Any:
    """The JSON in the bytes of file `name`, or one sentence on why it is not a document."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{name!r} is not valid JSON (it is not UTF-8 text). Give the experiments.json file an export "
            "wrote, or one in the seed's format. Nothing was imported."
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{name!r} is not valid JSON ({exc.msg[0].lower()}{exc.msg[1:]} at line {exc.lineno}, column "
            f"{exc.colno}). Give the experiments.json file an export wrote, or one in the seed's format. "
            "Nothing was imported."
        ) from None
    except RecursionError:
        raise InvalidInput(
            f"{name!r} is nested too deeply to be an experiments document. Nothing was imported."
        ) from None
