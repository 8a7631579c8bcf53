"""The database schema as named migrations, applied in order by `Store` (each one together with
its record in schema_migrations, in one transaction). Add a migration; never edit a shipped one.

The names in schema_migrations are how a version knows a database it cannot read: a name it does
not know makes it refuse the database ("written by a newer meta-experiment") rather than misread
it. So whenever a stored format gains something older code cannot read (a key of spec_json, of a
deploy operation's data_json or git_json, a value of a column), add a migration, a no-op marker if
the tables stay as they are: an older version with the same migration list would read the new
format its own way (one that ignored spec_json's treatment_percent assigned 50/50 silently). Store
also refuses writes of a process that is running when a migration it does not know is applied.

A migration that was replaced before release goes to RETIRED_MIGRATIONS with what undoes it, so a
database that has it is brought to the current list instead of being called newer."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable

_INITIAL_SCHEMA = [
    """
    CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            hypothesis TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            change_type TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('draft', 'running', 'promoted', 'rolled_back', 'expired')),
            status_reason TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            ended_at REAL,
            spec_json TEXT NOT NULL,
            next_slot INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL DEFAULT 0
        )
    """,
    """
    CREATE TABLE experiment_files (
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            production TEXT NOT NULL,
            variant TEXT NOT NULL,
            control_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
            treatment_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
            backup TEXT,
            PRIMARY KEY (experiment_id, production)
        ) WITHOUT ROWID
    """,
    """
    CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            content BLOB NOT NULL
        ) WITHOUT ROWID
    """,
    """
    CREATE TABLE trials (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            arm TEXT NOT NULL CHECK (arm IN ('control', 'treatment')),
            unit TEXT,
            status TEXT NOT NULL CHECK (status IN ('assigned', 'recorded', 'abandoned')),
            source TEXT NOT NULL CHECK (source IN ('assign', 'import')),
            assigned_at REAL NOT NULL,
            recorded_at REAL,
            success INTEGER
        )
    """,
    """
    CREATE INDEX trials_by_experiment ON trials (experiment_id, arm, status)
    """,
    """
    CREATE TABLE metric_values (
            trial_id INTEGER NOT NULL REFERENCES trials(id),
            metric TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (trial_id, metric)
        ) WITHOUT ROWID
    """,
    """
    CREATE TABLE arm_stats (
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            arm TEXT NOT NULL,
            metric TEXT NOT NULL,
            n INTEGER NOT NULL,
            shift REAL NOT NULL,
            shifted_mean REAL NOT NULL,
            m2 REAL NOT NULL,
            min REAL NOT NULL,
            max REAL NOT NULL,
            PRIMARY KEY (experiment_id, arm, metric)
        ) WITHOUT ROWID
    """,
    """
    CREATE TABLE arm_counts (
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            arm TEXT NOT NULL,
            assigned INTEGER NOT NULL DEFAULT 0,
            recorded INTEGER NOT NULL DEFAULT 0,
            abandoned INTEGER NOT NULL DEFAULT 0,
            successes INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, arm)
        ) WITHOUT ROWID
    """,
    """
    CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            experiment_id TEXT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            data_json TEXT NOT NULL DEFAULT '{}'
        )
    """,
    """
    CREATE INDEX events_by_experiment ON events (experiment_id, id)
    """,
    """
    CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END
    """,
    """
    CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END
    """,
]


def _migration_initial(db: sqlite3.Connection) -> None:
    # One statement at a time: executescript() would COMMIT the surrounding transaction first.
    for statement in _INITIAL_SCHEMA:
        db.execute(statement)


_DEPLOY_SCHEMA = [
    # One row per promote/rollback, written (committed) before any production file is touched;
    # `applying` -> `applied` (files and experiment status agree) -> `done` (git handled), or
    # `undone` (a file was edited meanwhile; the operation's own files were put back).
    """
    CREATE TABLE deploy_operations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            operation TEXT NOT NULL CHECK (operation IN ('promote', 'rollback')),
            phase TEXT NOT NULL CHECK (phase IN ('applying', 'applied', 'done', 'undone')),
            from_status TEXT NOT NULL,
            to_status TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT,
            commit_message TEXT NOT NULL,
            data_json TEXT NOT NULL DEFAULT '{}',
            git_json TEXT,
            created_at REAL NOT NULL,
            finished_at REAL
        )
    """,
    # At most one unfinished operation per experiment: the claim that makes concurrent runs act once.
    """
    CREATE UNIQUE INDEX deploy_one_open_operation ON deploy_operations (experiment_id)
            WHERE phase IN ('applying', 'applied')
    """,
    """
    CREATE TABLE deploy_files (
            operation_id INTEGER NOT NULL REFERENCES deploy_operations(id),
            production TEXT NOT NULL,
            old_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
            new_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
            backup TEXT,
            PRIMARY KEY (operation_id, production)
        ) WITHOUT ROWID
    """,
    # The current state of each (experiment, alert kind); the history is in the event log.
    """
    CREATE TABLE alerts (
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            data_json TEXT NOT NULL DEFAULT '{}',
            raised_at REAL NOT NULL,
            cleared_at REAL,
            PRIMARY KEY (experiment_id, kind)
        ) WITHOUT ROWID
    """,
]


def _migration_deploy_journal(db: sqlite3.Connection) -> None:
    for statement in _DEPLOY_SCHEMA:
        db.execute(statement)


def _migration_unit_counts(db: sqlite3.Connection) -> None:
    # Per-unit counts for the sample-ratio check (Store.unit_counts), kept up to date by
    # insert_trial and record_trial so that reading them costs one row per arm however many trials
    # there are: unit_trials has a row per (experiment, unit, arm), unit_totals the per-arm sums.
    db.execute(
        """
        CREATE TABLE unit_trials (
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            unit TEXT NOT NULL,
            arm TEXT NOT NULL,
            trials INTEGER NOT NULL DEFAULT 0,
            recorded INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, unit, arm)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        """
        CREATE TABLE unit_totals (
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            arm TEXT NOT NULL,
            trials INTEGER NOT NULL DEFAULT 0,
            recorded_trials INTEGER NOT NULL DEFAULT 0,
            units INTEGER NOT NULL DEFAULT 0,
            recorded_units INTEGER NOT NULL DEFAULT 0,
            max_recorded_per_unit INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, arm)
        ) WITHOUT ROWID
        """
    )
    # trials written before this migration
    db.execute(
        "INSERT INTO unit_trials (experiment_id, unit, arm, trials, recorded)"
        " SELECT experiment_id, unit, arm, COUNT(*), SUM(status = 'recorded') FROM trials"
        " WHERE unit IS NOT NULL GROUP BY experiment_id, unit, arm"
    )
    db.execute(
        "INSERT INTO unit_totals (experiment_id, arm, trials, recorded_trials, units, recorded_units,"
        " max_recorded_per_unit)"
        " SELECT experiment_id, arm, SUM(trials), SUM(recorded), COUNT(*), SUM(recorded > 0), MAX(recorded)"
        " FROM unit_trials GROUP BY experiment_id, arm"
    )


# The running statistics of log(value) of a log-scale metric are kept under this prefix (':' is not
# in metric names); measurements.derived_values writes them.
LOG_PREFIX = "log:"


def _migration_unit_clusters(db: sqlite3.Connection) -> None:
    # Sums over the units of each arm from which the cluster-robust variance of a mean follows
    # (store.ClusterSums), kept up to date by record_trial: per (experiment, unit, arm, metric) the
    # count and shifted sum of the unit's values (unit_sums), per arm and metric the sums of their
    # cross terms (new arm_stats columns), and the same for success (unit_trials.successes and new
    # unit_totals columns). Without repeated units every sum stays 0.
    db.execute(
        """
        CREATE TABLE unit_sums (
            experiment_id TEXT NOT NULL REFERENCES experiments(id),
            unit TEXT NOT NULL,
            arm TEXT NOT NULL,
            metric TEXT NOT NULL,
            n INTEGER NOT NULL,
            shifted_sum REAL NOT NULL,
            PRIMARY KEY (experiment_id, unit, arm, metric)
        ) WITHOUT ROWID
        """
    )
    for column in ("repeats INTEGER", "cross_a REAL", "cross_b REAL", "cross_d REAL"):
        db.execute(f"ALTER TABLE arm_stats ADD COLUMN {column} NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE unit_trials ADD COLUMN successes INTEGER NOT NULL DEFAULT 0")
    for column in ("success_a REAL", "success_b REAL", "success_d REAL"):
        db.execute(f"ALTER TABLE unit_totals ADD COLUMN {column} NOT NULL DEFAULT 0")
    _backfill_unit_clusters(db)


def _backfill_unit_clusters(db: sqlite3.Connection) -> None:
    """The sums for trials recorded before the migration, from the final per-unit totals: with a
    unit's n values y' (shifted by the arm's first value), sum s and sum of squares q, the cross
    terms are a = s^2 - q, b = s (n - 1), d = n (n - 1) (what ClusterSums.add accumulates)."""
    shifts = {(r[0], r[1], r[2]): r[3] for r in db.execute("SELECT experiment_id, arm, metric, shift FROM arm_stats")}
    units: dict[tuple[str, str, str, str], list[float]] = {}  # (experiment, unit, arm, metric) -> [n, s, q]
    rows = db.execute(
        "SELECT t.experiment_id, t.unit, t.arm, v.metric, v.value FROM trials t JOIN metric_values v"
        " ON v.trial_id = t.id WHERE t.unit IS NOT NULL AND t.status = 'recorded'"
    )
    for experiment_id, unit, arm, metric, value in rows:
        pairs = [(metric, value)]
        if (experiment_id, arm, LOG_PREFIX + metric) in shifts and value > 0:
            pairs.append((LOG_PREFIX + metric, math.log(value)))
        for name, x in pairs:
            shift = shifts.get((experiment_id, arm, name))
            if shift is None:
                continue
            acc = units.setdefault((experiment_id, unit, arm, name), [0, 0.0, 0.0])
            y = x - shift
            acc[0] += 1
            acc[1] += y
            acc[2] += y * y
    db.executemany(
        "INSERT INTO unit_sums (experiment_id, unit, arm, metric, n, shifted_sum) VALUES (?, ?, ?, ?, ?, ?)",
        [(*key, int(n), s) for key, (n, s, _) in units.items()],
    )
    totals: dict[tuple[str, str, str], list[float]] = {}
    for (experiment_id, _, arm, metric), (n, s, q) in units.items():
        acc = totals.setdefault((experiment_id, arm, metric), [0, 0.0, 0.0, 0.0])
        acc[0] += n - 1
        acc[1] += s * s - q
        acc[2] += s * (n - 1)
        acc[3] += n * (n - 1)
    db.executemany(
        "UPDATE arm_stats SET repeats = ?, cross_a = ?, cross_b = ?, cross_d = ?"
        " WHERE experiment_id = ? AND arm = ? AND metric = ?",
        [(int(r), a, b, d, *key) for key, (r, a, b, d) in totals.items()],
    )
    db.execute(
        "UPDATE unit_trials SET successes = (SELECT COALESCE(SUM(t.success), 0) FROM trials t"
        " WHERE t.experiment_id = unit_trials.experiment_id AND t.unit = unit_trials.unit"
        " AND t.arm = unit_trials.arm AND t.status = 'recorded')"
    )
    # 0/1 values, unshifted: q = s
    db.execute(
        "UPDATE unit_totals SET"
        " success_a = (SELECT COALESCE(SUM(u.successes * u.successes - u.successes), 0) FROM unit_trials u"
        "   WHERE u.experiment_id = unit_totals.experiment_id AND u.arm = unit_totals.arm),"
        " success_b = (SELECT COALESCE(SUM(u.successes * (u.recorded - 1)), 0) FROM unit_trials u"
        "   WHERE u.experiment_id = unit_totals.experiment_id AND u.arm = unit_totals.arm AND u.recorded > 0),"
        " success_d = (SELECT COALESCE(SUM(u.recorded * (u.recorded - 1)), 0) FROM unit_trials u"
        "   WHERE u.experiment_id = unit_totals.experiment_id AND u.arm = unit_totals.arm)"
    )


def _migration_voided_trials(db: sqlite3.Connection) -> None:
    # A voided trial (a recorded result withdrawn: a typo, a unit mix-up, a broken run) keeps its
    # row and values for the record but stops counting: its status becomes 'abandoned', so every
    # query of recorded trials leaves it out, and this table says why and what replaced it. Voided
    # trials are not counted in arm_counts.abandoned (trials assigned and never recorded).
    db.execute(
        """
        CREATE TABLE voided_trials (
            trial_id INTEGER PRIMARY KEY REFERENCES trials(id),
            voided_at REAL NOT NULL,
            reason TEXT NOT NULL,
            replaced_by INTEGER REFERENCES trials(id)
        )
        """
    )


def _migration_format_marker(db: sqlite3.Connection) -> None:
    """No change to the tables: the marker of what versions with migrations up to 0005 would read
    wrongly instead of refusing. spec_json's treatment_percent (09ec10d: they ignored it and
    assigned 50/50); a deploy operation's data_json restores_deleted (38b30dd: their recovery of an
    unfinished rollback took the deleted file it recreates for an edit, and undid the rollback) and
    executable (942f9cc: a recreated script lost its executable bit)."""


def _migration_commit_check_marker(db: sqlite3.Connection) -> None:
    """No change to the tables: the marker of a deploy operation's git_json not_as_written (3193190:
    the files a promote's commit holds in a version other than the one it wrote, which a rollback
    takes for a person's edit). Versions with migrations up to 0006 refuse the key (a strict model)
    or, read leniently, would take that edit for a commit hook's version and overwrite it."""


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("0001_initial", _migration_initial),
    ("0002_deploy_journal", _migration_deploy_journal),
    ("0003_unit_counts", _migration_unit_counts),
    ("0004_unit_clusters", _migration_unit_clusters),
    ("0005_voided_trials", _migration_voided_trials),
    ("0006_split_and_restore_formats", _migration_format_marker),
    ("0007_commit_check_format", _migration_commit_check_marker),
]

# Migrations that databases may hold but no version applies any more, with the statements that undo
# them. Store._migrate runs these and deletes the migration's record in one transaction, then
# applies the current migrations: such a database is older, not newer, and is brought up to date.
RETIRED_MIGRATIONS: dict[str, tuple[str, ...]] = {
    # 1d6cb86 and f02399f (2026-11-26): per-unit counts read through a partial index of the trials;
    # 862a82a replaced it the same day with 0003_unit_counts (kept-up-to-date counts, backfilled
    # from the trials, which the index only served).
    "0003_trials_by_unit": ("DROP INDEX IF EXISTS trials_by_unit",),
}
