"""The keys a seed-format document may carry, for `interchange.import_experiments`: a key that
misspells one of them is refused with the key it most likely meant (it would otherwise be dropped
and leave a default the user never chose); any other unknown key is ignored and named."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from .errors import InvalidInput
from .models import MetricSpec, Targets

# The keys each object of an experiment may carry: the seed's template, what this server's export
# adds (export_experiments writes exactly these), and `created_at`, read where `created` is missing.
# A block is named by its path in the experiment: `name[]` is every item of a list, `*` every value
# of an object.
DOCUMENT_KEYS = frozenset({"format", "experiments"})
# fmt: off
_FORMAT_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({
        "id", "name", "created", "created_at", "status", "hypothesis", "changes", "metrics", "targets",
        "sample_size_required", "treatment_percent", "max_duration_days", "auto_rollback", "auto_promote",
        "results", "meta_experiment",
    }),
    "changes": frozenset({"type", "files", "description"}),
    "changes.files.*": frozenset({"backup", "variant"}),
    "metrics": frozenset({"primary", "secondary"}),
    "targets": frozenset(Targets.model_fields),
    "results": frozenset({
        "trials_completed", "control_group", "treatment_group", "control_avg", "treatment_avg", "improvement_pct",
        "p_value", "statistical_confidence", "always_valid_confidence", "status",
    }),
    "meta_experiment": frozenset({
        "status_reason", "started_at", "ended_at", "next_slot", "metric_definitions", "files", "trials", "events",
        "alerts",
    }),
    "meta_experiment.metric_definitions[]": frozenset(MetricSpec.model_fields),
    "meta_experiment.files[]": frozenset({"production", "variant", "backup", "control_content", "treatment_content"}),
    "meta_experiment.trials[]": frozenset({
        "arm", "unit", "status", "source", "assigned_at", "recorded_at", "success", "metrics", "voided", "replaces",
    }),
    "meta_experiment.trials[].voided": frozenset({"at", "reason", "replaced_by"}),
    "meta_experiment.events[]": frozenset({"at", "actor", "kind", "message", "data"}),
    "meta_experiment.alerts[]": frozenset({"kind", "message", "data", "raised_at", "cleared_at"}),
}
# fmt: on
# Read through a model that refuses any unknown key (as before): only a misspelling is caught here,
# to name the key it meant.
_STRICT_BLOCKS = frozenset({"targets", "meta_experiment.metric_definitions[]"})
# High enough that keys other tools plausibly add beside the format's own (created_by, control_n,
# treatment_mean, improvement) are not taken for misspellings of created, control_avg, ...
_MISSPELLING_CUTOFF = 0.85


def _blocks(node: Any, steps: list[str], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, object) of each object at the block path `steps` under `node`. A value of the
    wrong type is passed over: the import itself says what is wrong with it."""
    if not isinstance(node, dict):
        return
    if not steps:
        yield where, node
        return
    step, rest = steps[0], steps[1:]
    if step == "*":
        for key, value in node.items():
            yield from _blocks(value, rest, f"{where}[{key!r}]")
    elif step.endswith("[]"):
        items = node.get(step[:-2])
        for i, value in enumerate(items if isinstance(items, list) else []):
            yield from _blocks(value, rest, f"{where}.{step[:-2]}[{i}]".lstrip("."))
    else:
        yield from _blocks(node.get(step), rest, f"{where}.{step}".lstrip("."))


def _meant(key: str, known: frozenset[str]) -> str | None:
    """The known key that `key` most likely misspells: a close spelling, or the same words in
    another case or separator (sampleSizeRequired, Auto-Promote)."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=_MISSPELLING_CUTOFF)
    if close:
        return close[0]

    def words(k: str) -> str:
        return re.sub(r"[\s_-]", "", k).lower()

    return next((k for k in sorted(known) if words(k) == words(key)), None)


def unknown_keys(
    block: dict[str, Any], known: frozenset[str], where: str, *, strict: bool = False
) -> tuple[list[str], list[str]]:
    """The keys of `block` the format does not define: a phrase for each misspelled one, and the
    paths of the others, which the import ignores (a strict block's model refuses them instead)."""
    misspelled, ignored = [], []
    for key in map(str, block):
        if key in known:
            continue
        meant = _meant(key, known)
        if meant is not None:
            misspelled.append(f"unknown key {key!r}{f' in {where}' if where else ''} (did you mean {meant!r}?)")
        elif not strict:
            ignored.append(f"{where}.{key}" if where else key)
    return misspelled, ignored


def experiment_keys(index: int, item: dict[str, Any]) -> list[str]:
    """Refuse an experiment with a misspelled key, which would otherwise be dropped and leave a
    default the user never chose; return the paths of its other unknown keys, which are ignored
    (other tools, or a later version of the format, may carry them)."""
    misspelled: list[str] = []
    ignored: list[str] = []
    for path, known in _FORMAT_KEYS.items():
        for where, block in _blocks(item, path.split(".") if path else []):
            wrong, unread = unknown_keys(block, known, where, strict=path in _STRICT_BLOCKS)
            misspelled += wrong
            ignored += unread
    if misspelled:
        raise InvalidInput(f"experiments[{index}] ({item['id']}): {'; '.join(misspelled)}. Nothing was imported.")
    return ignored


def ignored_sentence(owner: str, paths: list[str]) -> str:
    return (
        f"{owner}: ignored the unknown key(s) {', '.join(map(repr, paths))}, which this version does not read "
        "(check the spelling if one was meant to set something)."
    )
