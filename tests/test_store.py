"""The SQLite store on a real file: pragmas, migrations, running statistics, the event log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from meta_experiment.errors import StoreError
from meta_experiment.schema import MIGRATIONS
from meta_experiment.store import EMPTY_STATS, RunningStats, Store


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "state" / "experiments.db")
    yield s
    s.close()


def _experiment(store: Store, experiment_id: str = "exp-1") -> None:
    store.insert_experiment(
        {
            "id": experiment_id,
            "name": "n",
            "hypothesis": "h",
            "description": "",
            "change_type": "command_modification",
            "status": "running",
            "status_reason": None,
            "created_at": 0.0,
            "started_at": 0.0,
            "ended_at": None,
            "spec_json": "{}",
        }
    )


def test_pragmas_wal_full_sync_busy_timeout(store: Store) -> None:
    with store.reading() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_are_recorded_once_and_reopening_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first = Store(path)
    assert first.applied_migrations() == [name for name, _ in MIGRATIONS]
    first.close()
    calls = []
    again = Store(path, migrations=[("9999_probe", lambda db: calls.append(db.execute("SELECT 1").fetchone()))])
    assert calls and again.applied_migrations()[-1] == "9999_probe"
    again.close()
    third = Store(path, migrations=[("9999_probe", lambda db: calls.append("ran again"))])
    assert "ran again" not in calls
    third.close()


def test_a_failing_migration_leaves_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Store(path, migrations=[("0099_broken", broken)])
    s = Store(path)
    with s.reading() as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    assert "0099_broken" not in s.applied_migrations()
    s.close()


def test_database_from_a_newer_version_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    Store(path, migrations=[("9999_future", lambda db: None)]).close()
    with pytest.raises(StoreError, match="newer meta-experiment"):
        Store(path)


def test_event_log_is_append_only(store: Store) -> None:
    event_id = store.add_event(None, "probe", "hello", data={"k": 1})
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), store.transaction() as db:
        db.execute("UPDATE events SET message = 'changed' WHERE id = ?", (event_id,))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), store.transaction() as db:
        db.execute("DELETE FROM events")
    assert [r["message"] for r in store.event_rows()] == ["hello"]


def test_transaction_rolls_back_everything_on_error(store: Store) -> None:
    _experiment(store)
    with pytest.raises(ValueError), store.transaction():
        trial = store.insert_trial("exp-1", "control", unit=None, source="assign", assigned_at=1.0)
        store.record_trial(trial, "exp-1", "control", {"m": 1.0}, True, 2.0)
        raise ValueError("abort")
    assert store.trial_rows("exp-1") == []
    assert store.running_stats("exp-1") == {}
    assert store.arm_counts("exp-1")["control"] == {"assigned": 0, "recorded": 0, "abandoned": 0, "successes": 0}


@pytest.mark.parametrize(("mean", "sd"), [(1e6, 1.0), (1e8, 1.0), (1.7e9, 3.0), (0.0, 1e-3)])
def test_running_variance_is_exact_for_awkward_data(mean: float, sd: float) -> None:
    """Welford's update stays exact where the naive sum-of-squares formula cancels
    catastrophically (epoch timestamps, token totals)."""
    rng = np.random.default_rng(42)
    values = mean + sd * rng.standard_normal(5000)
    stats = EMPTY_STATS
    for v in values:
        stats = stats.add(float(v))
    reference_var = float(np.var(values - values.mean(), ddof=1))  # two-pass on centred data
    assert stats.n == 5000
    assert stats.mean == pytest.approx(float(values.mean()), rel=1e-14, abs=1e-12)
    assert stats.variance == pytest.approx(reference_var, rel=1e-12)
    assert stats.min == values.min() and stats.max == values.max()
    # The naive formula really does go wrong at these scales (what the issue measured).
    if mean >= 1e6:
        n, total, squares = len(values), 0.0, 0.0
        for v in values:
            total += float(v)
            squares += float(v) * float(v)
        naive = (squares - total * total / n) / (n - 1)
        ours = abs(stats.variance - reference_var) / reference_var
        theirs = abs(naive - reference_var) / reference_var
        assert theirs > 1e-5 and theirs > 1000 * max(ours, 1e-16)
        if mean >= 1e8:
            assert theirs > 0.5 or naive < 0


def test_record_folds_values_into_running_stats_in_one_transaction(store: Store) -> None:
    _experiment(store)
    values = [3.0, 5.0, 10.0]
    for v in values:
        t = store.insert_trial("exp-1", "treatment", unit=None, source="assign", assigned_at=0.0)
        store.record_trial(t, "exp-1", "treatment", {"m": v}, v < 10, 1.0)
    s = store.running_stats("exp-1")[("treatment", "m")]
    assert (s.n, s.mean, s.min, s.max) == (3, 6.0, 3.0, 10.0)
    assert s.variance == pytest.approx(np.var(values, ddof=1))
    assert store.raw_values("exp-1", "treatment", "m") == values
    assert store.arm_counts("exp-1")["treatment"] == {"assigned": 3, "recorded": 3, "abandoned": 0, "successes": 2}


def test_running_stats_of_one_value_have_zero_variance() -> None:
    s = RunningStats(0, 0.0, 0.0, 0.0, 0.0, 0.0).add(7.5)
    assert (s.n, s.mean, s.variance, s.min, s.max) == (1, 7.5, 0.0, 7.5, 7.5)


def test_abandon_counts_per_arm(store: Store) -> None:
    _experiment(store)
    for arm, at in (("control", 1.0), ("treatment", 2.0), ("treatment", 5.0)):
        store.insert_trial("exp-1", arm, unit=None, source="assign", assigned_at=at)
    assert store.abandon_trials("exp-1", older_than=3.0) == 2
    counts = store.arm_counts("exp-1")
    assert counts["control"]["abandoned"] == 1 and counts["treatment"]["abandoned"] == 1
    assert [r["status"] for r in store.trial_rows("exp-1")] == ["abandoned", "abandoned", "assigned"]


def test_a_database_damaged_mid_file_is_a_store_error_that_says_what_to_do(tmp_path: Path) -> None:
    """From a user test: 4 KB of garbage inside the file (the header intact) gave raw tracebacks in
    the CLI and an empty 'Error executing tool status' over MCP. Every read and write now raises a
    StoreError that names the file and what to do, and never a bare sqlite3 error."""
    from conftest import damaged_copies, spec
    from meta_experiment.interchange import export_experiments
    from meta_experiment.lifecycle import DB_FILE_NAME, Lab

    project = tmp_path / "p"
    project.mkdir()
    lab = Lab.open(project, tmp_path / "state")
    for k in range(3):
        (project / f"cmd{k}.md").write_text("a\n")
        (project / f"cmd{k}.v.md").write_text("b\n")
        e = lab.create(**spec(name=f"e{k}", files={f"cmd{k}.md": f"cmd{k}.v.md"}, auto_rollback=False))
        for _ in range(60):
            a = lab.assign(e.id)
            lab.record(a.trial_id, {"time_to_complete": 40.0 + a.trial_id % 7, "issues_caught": 2.0})
    lab.close()
    assert (tmp_path / "state" / DB_FILE_NAME).stat().st_size > 40_000
    said = []
    for copy in damaged_copies(tmp_path / "state", tmp_path):
        try:
            damaged = Lab.open(project, copy, recover=False)
            try:
                damaged.status()
                export_experiments(damaged)
                damaged.assign(damaged.experiments()[0].id)
            finally:
                damaged.close()
        except StoreError as exc:
            said.append(str(exc))
        # any other exception (sqlite3.DatabaseError included) fails the test here
    assert said, "no damage was detected: the test did not damage anything that is read"
    assert all(DB_FILE_NAME in text and "Move it aside" in text for text in said)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_file_deleted_or_replaced_under_an_open_store_is_refused(tmp_path: Path, how: str) -> None:
    """From a user test: with experiments.db deleted under a running server, everything it recorded
    went to the unlinked file, seen by no other process and gone at exit; the others started anew."""
    from conftest import spec
    from meta_experiment.lifecycle import Lab

    project = tmp_path / "p"
    project.mkdir()
    for name in ("a.md", "b.md"):
        (project / name).write_text(name)
    lab = Lab.open(project)
    try:
        e = lab.create(**spec(files={"a.md": "b.md"}))
        trial = lab.assign(e.id).trial_id
        db = lab.state_dir / "experiments.db"
        for path in lab.state_dir.glob("experiments.db*"):
            path.unlink()
        if how == "replaced":
            Store(db).close()  # another process (or a person moving the old one aside) made a new one
        with pytest.raises(StoreError, match="was deleted or replaced while this process had it open.*Call again"):
            lab.record(trial, {"time_to_complete": 3.0})
        with pytest.raises(StoreError, match="deleted or replaced"):
            lab.status()
    finally:
        lab.close()


def test_an_in_memory_store_has_the_schema_and_leaves_nothing_on_disk(tmp_path: Path, monkeypatch) -> None:
    """What a project without state is read from: the same tables, no file anywhere."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    store = Store(Path(":memory:"))
    try:
        assert store.in_memory and store.arm_counts("none") == {}
        with store.reading() as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"experiments", "trials", "arm_stats", "events"} <= tables
    finally:
        store.close()
    assert list(here.iterdir()) == []


def test_a_lock_held_too_long_a_read_only_database_or_a_full_disk_say_what_to_do(tmp_path: Path) -> None:
    """From a review: past the busy timeout, or with files it may not write, a running server's
    call ended in a bare sqlite3 error ("Error executing tool assign"). Each now says what is wrong,
    that nothing was changed, and what to do; the store works again once the cause is gone."""
    from meta_experiment.store import unusable_database

    path = tmp_path / "experiments.db"
    store = Store(path, migrations=())
    store._db.execute("PRAGMA busy_timeout = 50")  # not 30 s in a test
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreError, match="stayed locked by another process .* Nothing was changed"):
        store.add_event(None, "x", "held up")
    other.execute("ROLLBACK")
    other.close()
    store.add_event(None, "x", "through")
    store._db.execute("PRAGMA query_only = ON")  # as a file this user may not write
    with pytest.raises(StoreError, match="cannot be written .* Nothing was changed. Give write access"):
        store.add_event(None, "x", "refused")
    store._db.execute("PRAGMA query_only = OFF")
    assert [r["message"] for r in store.event_rows(None)][-1] == "through"
    full = unusable_database(path, sqlite3.OperationalError("database or disk is full"))
    assert "is full" in full and "Free some space" in full
    io = unusable_database(path, sqlite3.OperationalError("disk I/O error"))
    assert "could not be read or written" in io and "damaged" not in io
    store.close()


def test_a_bad_statement_is_not_taken_for_a_damaged_file(store: Store) -> None:
    """A programming error is raised as it is: telling the user to move the database aside for it
    would be wrong advice."""
    with pytest.raises(sqlite3.OperationalError, match="no such column"), store.transaction() as db:
        db.execute("SELECT no_such_column FROM events")
