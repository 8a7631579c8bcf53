"""Databases and experiments written by older versions, and processes of different versions on one
database: stored definitions keep loading, a running older process stops writing once a newer one
migrated, a stored format older code would misread is marked, a retired migration is undone. The
old state is built here with SQL or by writing the old spec_json, as those versions left it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import PROD, VAR
from meta_experiment import cli, release
from meta_experiment.auto import run_auto
from meta_experiment.errors import InvalidInput, StoreError
from meta_experiment.lifecycle import DB_FILE_NAME, Lab
from meta_experiment.models import ExperimentSpec, MetricSpec, Targets
from meta_experiment.outcomes import GitOutcome
from meta_experiment.schema import MIGRATIONS
from meta_experiment.store import Store

# -- stored definitions that checks added later refuse ---------------------------------------------


def _rewrite_spec(lab: Lab, experiment_id: str, change) -> None:  # type: ignore[no-untyped-def]
    """Write the experiment's spec_json as an older version left it (`change` edits the parsed spec)."""
    with lab.store.transaction() as db:
        spec = json.loads(db.execute("SELECT spec_json FROM experiments WHERE id = ?", (experiment_id,)).fetchone()[0])
        change(spec)
        db.execute("UPDATE experiments SET spec_json = ? WHERE id = ?", (json.dumps(spec), experiment_id))


def _old_binary_experiment(project: Path) -> str:
    """An experiment as versions before f02e2c7 (2026-11-26) let create it: a binary primary with a
    time unit, a binary guardrail on the log scale, and a unit with a control character."""
    lab = Lab.open(project)
    try:
        e = lab.create(
            name="ok rate",
            hypothesis="the variant fails less",
            files={PROD: VAR},
            primary_metric={"name": "ok", "direction": "higher_is_better", "kind": "binary"},
            secondary_metrics=[
                {"name": "passed", "direction": "higher_is_better", "kind": "binary"},
                {"name": "tokens", "direction": "lower_is_better", "unit": "tok"},
            ],
        )

        def old(spec: dict) -> None:
            spec["primary_metric"]["unit"] = "s"
            spec["secondary_metrics"][0]["log_scale"] = True
            spec["secondary_metrics"][1]["unit"] = "tok\x07"

        _rewrite_spec(lab, e.id, old)
        return e.id
    finally:
        lab.close()


def test_an_old_binary_metric_with_a_time_unit_or_log_scale_keeps_the_project_working(project: Path, capsys) -> None:
    """From an upgrade review: such an experiment broke status, auto, analyze and rollback of the
    whole project (a pydantic traceback in the CLI, a bare 'Error executing tool' over MCP)."""
    experiment_id = _old_binary_experiment(project)
    lab = Lab.open(project)  # a new process: nothing cached
    try:
        e = lab.get(experiment_id)
        # what a 0/1 metric was never analysed on is dropped; a display unit is kept as stored
        assert e.primary_metric.unit is None and not e.primary_metric.is_duration
        assert not e.secondary_metrics[0].log_scale
        assert e.secondary_metrics[1].unit == "tok\x07"
        assert [x.id for x in lab.experiments()] == [experiment_id]
        assert lab.status().experiments
        for i in range(6):
            trial = lab.assign(experiment_id).trial_id
            # a 0 of the former log-scale metric is a 0/1 value like any other
            lab.record(trial, {"ok": i % 2, "passed": 0, "tokens": 10.0 + i})
        # the seconds since assign are no longer recorded as the 0/1 value of the primary
        with pytest.raises(InvalidInput, match="primary metric 'ok' is missing"):
            lab.record(lab.assign(experiment_id).trial_id, {"passed": 1, "tokens": 3.0})
        analysis = lab.analyze(experiment_id)
        assert analysis.primary.kind == "binary" and analysis.primary.scale == "raw"
        assert run_auto(lab, dry_run=True) is not None
        assert cli.main(["--project", str(project), "status"]) == 0
        assert cli.main(["--project", str(project), "analyze", experiment_id]) == 0
        assert release.rollback(lab, experiment_id, reason="an old experiment ends").outcome == "stopped"
    finally:
        lab.close()
    assert "Traceback" not in capsys.readouterr().err


def test_the_checks_that_a_stored_definition_skips_still_refuse_a_new_one() -> None:
    with pytest.raises(ValueError, match="cannot have the time unit"):
        MetricSpec.model_validate({"name": "ok", "direction": "higher_is_better", "kind": "binary", "unit": "s"})
    # from a review: a spelled-out time unit was let through (and dropped later without a word)
    with pytest.raises(ValueError, match="cannot have the time unit 'Seconds'"):
        MetricSpec.model_validate({"name": "ok", "direction": "higher_is_better", "kind": "binary", "unit": "Seconds"})
    assert (
        MetricSpec.from_export({"name": "ok", "direction": "higher_is_better", "kind": "binary", "unit": "MS"}).unit
        is None
    )
    with pytest.raises(ValueError, match="log_scale is for positive continuous metrics"):
        MetricSpec.model_validate({"name": "ok", "direction": "higher_is_better", "kind": "binary", "log_scale": True})
    with pytest.raises(ValueError, match="plain text"):
        MetricSpec.model_validate({"name": "t", "direction": "lower_is_better", "unit": "s\x00"})
    # a continuous metric's scale and time unit are its own, stored or not
    timed = {"name": "t", "direction": "lower_is_better", "unit": "s", "log_scale": True}
    assert MetricSpec.from_stored(timed) == MetricSpec.model_validate(timed)


# -- a running process of an older version, a newer one migrating under it -------------------------


def _count(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("how", ["tables", "marker"])
def test_a_write_after_a_newer_version_migrated_under_this_process_is_refused(tmp_path: Path, how: str) -> None:
    """From an upgrade review: a server of an older version kept running after a newer one migrated
    the database, and went on writing the old format (running statistics without the new columns'
    terms, silently wrong). A migration that changes tables, or a marker that changes none."""
    path = tmp_path / "experiments.db"
    store = Store(path)
    try:
        store.add_event(None, "probe", "before")
        if how == "tables":  # what a newer version's migration leaves, from another connection
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            other.execute("CREATE TABLE from_the_future (x)")
            other.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_future', ?)", (time.time(),))
            other.execute("COMMIT")
            other.close()
        else:  # a newer version's marker migration, applied by its own Store
            Store(path, migrations=[("9999_marker", lambda db: None)]).close()
        events = _count(path, "events")
        with pytest.raises(StoreError, match=r"upgraded by a newer meta-experiment while this process ran") as info:
            store.add_event(None, "probe", "after")
        assert "9999_" in str(info.value) and "nothing was written" in str(info.value)
        assert "/mcp" in str(info.value) and "Restart" in str(info.value)
        assert _count(path, "events") == events
        with pytest.raises(StoreError, match="upgraded by a newer"):  # and every later write
            store.add_event(None, "probe", "again")
        assert _count(path, "events") == events
        assert [r["message"] for r in store.event_rows(None)] == ["before"]  # reads go on
    finally:
        store.close()


def test_a_schema_change_this_code_knows_does_not_stop_writes(tmp_path: Path) -> None:
    """An index made outside the migrations, or this same code opening the database from another
    process, changes nothing this process cannot write."""
    path = tmp_path / "experiments.db"
    store = Store(path)
    try:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("CREATE INDEX a_helpers_index ON events (kind)")
        other.close()
        Store(path).close()
        store.add_event(None, "probe", "through")
        assert [r["message"] for r in store.event_rows(None)] == ["through"]
    finally:
        store.close()


# -- stored formats older code would misread ------------------------------------------------------


def test_a_database_with_an_uneven_split_is_refused_by_the_versions_that_ignore_it(project: Path, monkeypatch) -> None:
    """From an upgrade review: a version with the same migrations (up to 0005) ignored
    treatment_percent and assigned 50/50 silently. The marker migration makes it refuse."""
    lab = Lab.open(project)
    try:
        lab.create(
            name="split",
            hypothesis="one run in five tries it",
            files={PROD: VAR},
            primary_metric={"name": "d", "direction": "lower_is_better"},
            treatment_percent=20,
        )
        path = lab.state_dir / DB_FILE_NAME
    finally:
        lab.close()
    import meta_experiment.store as store_module

    older = [m for m in MIGRATIONS if m[0] <= "0005_voided_trials"]
    monkeypatch.setattr(store_module, "MIGRATIONS", older)
    with pytest.raises(StoreError, match=r"written by a newer meta-experiment \(migrations \['0006_"):
        Store(path)


def test_a_database_of_this_version_is_refused_by_the_versions_without_the_commit_check(
    project: Path, monkeypatch
) -> None:
    """From CI: GitOutcome gained not_as_written (stored in a deploy operation's git_json) without a
    marker; a version with migrations up to 0006 would have read a database holding it."""
    lab = Lab.open(project)
    path = lab.state_dir / DB_FILE_NAME
    lab.close()
    import meta_experiment.store as store_module

    older = [m for m in MIGRATIONS if m[0] <= "0006_split_and_restore_formats"]
    monkeypatch.setattr(store_module, "MIGRATIONS", older)
    with pytest.raises(StoreError, match=r"newer meta-experiment \(migrations \['0007_commit_check_format'\]"):
        Store(path)


def test_the_stored_formats_are_the_ones_the_latest_migration_marks() -> None:
    """Tripwire for schema.py's rule: the keys the stored formats can hold. A key added here needs a
    marker migration (older code would read it its own way instead of refusing the database); then
    update the expected migration name and keys."""
    spec = ExperimentSpec(
        name="n",
        hypothesis="h",
        files={"a": "b"},
        primary_metric=MetricSpec(name="m", direction="lower_is_better"),
        treatment_percent=20,
    )
    spec_keys = set(json.loads(str(spec.row("exp-1", status="running", created_at=0.0, started_at=0.0)["spec_json"])))
    assert MIGRATIONS[-1][0] == "0007_commit_check_format"
    assert spec_keys == {
        "primary_metric",
        "secondary_metrics",
        "targets",
        "sample_size_required",
        "max_duration_days",
        "auto_promote",
        "auto_rollback",
        "treatment_percent",
    }
    assert set(MetricSpec.model_fields) == {
        "name",
        "direction",
        "kind",
        "unit",
        "description",
        "max_regression",
        "floor",
        "log_scale",
    }
    assert set(Targets.model_fields) == {"improvement_threshold", "max_regression", "confidence_threshold"}
    assert set(GitOutcome.model_fields) == {"status", "commit", "detail", "not_as_written"}


# -- a migration replaced before release ------------------------------------------------------------


def test_a_database_with_a_retired_migration_is_brought_up_to_date(tmp_path: Path) -> None:
    """From an upgrade review: a database of 1d6cb86/f02399f holds 0003_trials_by_unit (an index,
    replaced by 0003_unit_counts in 862a82a); it was refused as 'written by a newer meta-experiment',
    which it was not, and neither way out offered worked."""
    path = tmp_path / "experiments.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    db.execute("BEGIN")
    for name, apply in MIGRATIONS[:2]:
        apply(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    # as 1d6cb86's migration 0003 left it
    db.execute("CREATE INDEX trials_by_unit ON trials (experiment_id, unit, arm, status) WHERE unit IS NOT NULL")
    db.execute("INSERT INTO schema_migrations VALUES ('0003_trials_by_unit', 0)")
    db.execute(
        "INSERT INTO experiments (id, name, hypothesis, change_type, status, created_at, spec_json)"
        " VALUES ('exp-1', 'n', 'h', 'command_modification', 'running', 0, '{}')"
    )
    for unit, arm, status in [
        ("u1", "control", "recorded"),
        ("u1", "control", "assigned"),
        ("u2", "treatment", "recorded"),
    ]:
        db.execute(
            "INSERT INTO trials (experiment_id, arm, unit, status, source, assigned_at)"
            " VALUES ('exp-1', ?, ?, ?, 'assign', 0)",
            (arm, unit, status),
        )
    db.execute("COMMIT")
    db.close()
    store = Store(path)
    try:
        assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
        with store.reading() as read:
            assert read.execute("SELECT 1 FROM sqlite_master WHERE name = 'trials_by_unit'").fetchone() is None
        # the current 0003 counted the trials the old one indexed
        assert store.unit_counts("exp-1")["control"].trials == 2
        assert store.unit_counts("exp-1")["treatment"].recorded_units == 1
    finally:
        store.close()
    Store(path).close()  # and opens again as any current database
    from meta_experiment.schema import RETIRED_MIGRATIONS

    assert "0003_trials_by_unit" in RETIRED_MIGRATIONS
