"""SQLite store: schema and named migrations, transactions, and the running sufficient statistics.

One database per project, WAL mode, `synchronous=FULL` (a recorded trial is on disk when the call
returns), a generous busy timeout (several Claude Code sessions may write at once). One long-lived
connection per process, shared by the server's worker threads under a lock. Every write path runs
inside `transaction()` (BEGIN IMMEDIATE ... COMMIT): nothing commits halfway.

This module knows rows, not statistics or files: the lifecycle decides what to write.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StoreError
from .paths import private_folder
from .schema import MIGRATIONS, RETIRED_MIGRATIONS

BUSY_TIMEOUT_MS = 30_000


def finite(value: Any) -> Any:
    """`value` with every NaN and infinity (at any depth of dicts, lists and tuples) as None: JSON has
    no place for them (an alert's z of inf once made an export that this tool's import refused and
    JSON.parse rejects, from a review), and a stored document must read back as it was written."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def to_json(value: Any, **options: Any) -> str:
    """`value` as JSON for a stored or exported document: NaN and infinity as null (`finite`), so
    what is written always reads back, here and in any JSON parser."""
    return json.dumps(finite(value), allow_nan=False, **options)


MAX_ID = 2**63 - 1  # the largest id SQLite stores: "no upper bound" in an id range
SUCCESS = ""  # cluster_sums' key for the trials' success flag (metric names are never empty)


@dataclass(frozen=True)
class RunningStats:
    """Sufficient statistics of one (experiment, arm, metric): count, mean, sum of squared
    deviations (M2), min and max.

    Updated with Welford's algorithm (Welford 1962; Knuth TAOCP vol. 2, 4.2.2) on values shifted by
    the first one seen (`shift`): x - shift is exact for nearby values (Sterbenz lemma), so the
    variance stays exact to ~1e-15 even at mean 1.7e9 / sd 3 (epoch timestamps), where plain Welford
    loses 1e-8 and the naive sum-of-squares formula loses everything."""

    n: int
    shift: float
    shifted_mean: float
    m2: float
    min: float
    max: float

    @property
    def mean(self) -> float:
        return self.shift + self.shifted_mean

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 denominator); 0.0 below two observations."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    def add(self, x: float) -> RunningStats:
        if self.n == 0:
            return RunningStats(1, x, 0.0, 0.0, x, x)
        n = self.n + 1
        y = x - self.shift
        delta = y - self.shifted_mean
        shifted_mean = self.shifted_mean + delta / n
        m2 = self.m2 + delta * (y - shifted_mean)
        return RunningStats(n, self.shift, shifted_mean, max(m2, 0.0), min(self.min, x), max(self.max, x))


EMPTY_STATS = RunningStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class UnitCounts:
    """The trials of one arm that were assigned with a unit (sticky assignment): how many trials
    (`trials`, any status; `recorded_trials`), how many distinct units (`units`; `recorded_units`,
    those with at least one recorded trial), and the most recorded trials of any one unit."""

    trials: int
    recorded_trials: int
    units: int
    recorded_units: int
    max_recorded_per_unit: int


@dataclass(frozen=True)
class ClusterSums:
    """What the running statistics of one (experiment, arm, metric) lack for the cluster-robust
    variance of the mean when units repeat: with c over the units, n_c a unit's count and s_c the
    sum of its values y' = y - shift (the RunningStats shift),

        repeats = sum (n_c - 1),  a = sum (s_c^2 - sum y'^2),  b = sum s_c (n_c - 1),  d = sum n_c (n_c - 1),

    the cross terms that the unit sums add to the per-value sums (each is 0 for a unit of one
    value, so they stay 0 without repeated units). Then, with m2 and the shifted mean m of the
    running statistics,

        sum_c (s_c - m n_c)^2 = m2 + a - 2 m b + m^2 d

    (expand sum s_c^2 = sum y'^2 + a, sum s_c n_c = n m + b, sum n_c^2 = n + d), the residual sum
    of squares of the units that the sandwich (cluster-robust) variance is built from."""

    repeats: int = 0
    a: float = 0.0
    b: float = 0.0
    d: float = 0.0

    @staticmethod
    def increment(prior_n: int, prior_sum: float, y: float) -> tuple[int, float, float, float]:
        """The change in (repeats, a, b, d) when a unit that had prior_n values summing to prior_sum
        gets the value y (all shifted): (s + y)^2 - y^2 - s^2 = 2 s y, (s + y) n - s (n - 1) = s + y n,
        (n + 1) n - n (n - 1) = 2 n."""
        return int(prior_n > 0), 2 * prior_sum * y, prior_sum + y * prior_n, 2.0 * prior_n

    def unit_ss(self, m2: float, shifted_mean: float) -> float:
        """sum_c (s_c - mean n_c)^2 (never below 0)."""
        m = shifted_mean
        return max(0.0, m2 + self.a - 2 * m * self.b + m * m * self.d)

    def clustering(self, n: int, m2: float, shifted_mean: float) -> tuple[float, float, float]:
        """(unit_ss, cross, n2) for Summary.clustered: with sum_c s_c n_c = n m + b and
        sum_c n_c^2 = n + d, cross = sum_c (s_c - m n_c) n_c = b - m d."""
        return self.unit_ss(m2, shifted_mean), self.b - shifted_mean * self.d, float(n + self.d)


NO_REPEATS = ClusterSums()


def success_clusters(counts: dict[str, int], sums: ClusterSums | None) -> tuple[int, float, float, float] | None:
    """The arguments of Summary.clustered for an arm's success flags, from its arm_counts and its
    success ClusterSums; None when no unit repeats. 0/1 values, unshifted: m2 = n p (1 - p)."""
    n, x = counts["recorded"], counts["successes"]
    if sums is None or not n:
        return None
    p = x / n
    return (n - sums.repeats, *sums.clustering(n, n * p * (1 - p), p))


def _versions(db: sqlite3.Connection) -> tuple[int, int]:
    """The database's schema cookie (SQLite changes it with every change of the tables) and its
    user_version (which Store._migrate bumps with every migration): two header reads."""
    return int(db.execute("PRAGMA schema_version").fetchone()[0]), int(db.execute("PRAGMA user_version").fetchone()[0])


def _bump_user_version(db: sqlite3.Connection) -> None:
    """Mark a migration in the header (inside its transaction), for the running processes' check:
    a marker migration changes no table, so the schema cookie alone would not show it."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    db.execute(f"PRAGMA user_version = {version + 1}")


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def unusable_database(path: Path, exc: sqlite3.Error, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> str:
    """What to say when the database file cannot be used as this server's store: locked too long,
    not writable, a full disk, an I/O error (a sound file: nothing was written, the transaction was
    rolled back), or a damaged file."""
    trouble = _circumstance(path, exc)
    if trouble == "locked":
        return (
            f"The experiment database {path.name!r} stayed locked by another process for "
            f"{busy_timeout_ms / 1000:g} s ({exc}). Nothing was changed. Try again when the other meta-experiment "
            "process is done."
        )
    if trouble == "readonly":
        return (
            f"The experiment database {path.name!r} cannot be written ({exc}): this user may not write to "
            f"the state folder {str(path.parent)!r} or to the database's files in it ({path.name}, "
            f"{path.name}-wal, {path.name}-shm). Nothing was changed. Give write access to the folder and "
            "those files (or run as their owner), then try again; or set META_EXPERIMENT_HOME to another folder."
        )
    if trouble == "full":
        return (
            f"The disk that holds the experiment database {path.name!r} is full ({exc}). Nothing was changed. "
            "Free some space, then try again."
        )
    if trouble == "io":
        return (
            f"The experiment database {path.name!r} could not be read or written ({exc}). Nothing was changed. "
            f"Check the disk and the state folder {str(path.parent)!r} (its permissions, a removed or "
            "unmounted folder), then try again."
        )
    return (
        f"The experiment database {str(path)!r} cannot be used ({exc}): it is damaged "
        "or is not a meta-experiment database. Move it aside (your files' backups in the state folder's "
        "backups/ stay where they are) and a new, empty database is created on the next start; or set "
        "META_EXPERIMENT_HOME to another folder."
    )


def _circumstance(path: Path, exc: sqlite3.Error) -> str | None:
    """Which of the database's circumstances the error comes from (not from the statement, nor a
    damaged file): "locked", "readonly", "full" or "io"; None otherwise."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return "locked"
    if "readonly" in text or "read-only" in text or not _writable(path):
        return "readonly"
    if "full" in text:
        return "full"
    if "disk i/o error" in text or "unable to open" in text:
        return "io"
    return None


def _writable(path: Path) -> bool:
    """Whether this user may write the database and its folder (the -wal and -shm files go there)."""
    files = [path.parent, *(p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())]
    return all(os.access(p, os.W_OK) for p in files)


@dataclass(frozen=True)
class Refold:
    """What _refold writes: the running statistics and counts rebuilt from the recorded trials."""

    stats: dict[tuple[str, str], RunningStats]  # (arm, metric)
    cross: dict[tuple[str, str], list[float]]  # (arm, metric) -> [repeats, a, b, d]
    unit_sums: dict[tuple[str, str, str], list[float]]  # (unit, arm, metric) -> [n, shifted sum]
    unit_rec: dict[tuple[str, str], list[int]]  # (unit, arm) -> [recorded, successes]
    totals: dict[str, list[float]]  # arm -> [recorded_trials, units, max per unit, sa, sb, sd]
    counts: dict[str, list[int]]  # arm -> [recorded, successes]


class Store:
    """The project's database. Use `transaction()` for every read-modify-write."""

    def __init__(
        self,
        path: Path,
        *,
        migrations: Sequence[tuple[str, Callable[[sqlite3.Connection], None]]] = (),
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ):
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms  # a hook's store waits less: Claude Code gives a hook 30 s
        # Path(":memory:"): a store in memory (a project without state, read as empty): nothing on disk
        self.in_memory = str(path) == ":memory:"
        self._lock = threading.RLock()
        self._depth = 0
        # The migrations this code knows, and the database's (schema_version, user_version) once they
        # are applied: what transaction() compares to notice a migration another process applied
        # (None while migrating: nothing to compare yet).
        self._known: frozenset[str] = frozenset()
        self._versions: tuple[int, int] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.in_memory and not path.exists() and private_folder(path.parent):
                # its owner's alone, as its folder: it holds snapshots of the files under test, which
                # may be private; SQLite gives its -wal and -shm files the database file's permissions
                with suppress(FileExistsError):
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._db = sqlite3.connect(
                str(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"Cannot open the experiment database at {path.name!r} in the state folder: {exc}. "
                "Check that the folder is writable, or set META_EXPERIMENT_HOME to another folder."
            ) from exc
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "schema_migrations" not in tables:  # someone else's database: change nothing
                raise sqlite3.DatabaseError(f"it has tables ({', '.join(sorted(tables)[:5])}) but none of ours")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal" and not self.in_memory:
                raise StoreError(f"The database refused WAL mode (got {mode!r}); is it on a network filesystem?")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._identity = self._file_identity()
            self._migrate([*MIGRATIONS, *migrations])
        except StoreError:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(unusable_database(path, exc, busy_timeout_ms)) from exc

    # -- connection and transactions -------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception. Re-entrant: an inner
        `transaction()` joins the outer one. Holds the process-wide lock for its duration."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._check_file()
            with self._damage_reported():
                self._db.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    self._check_migrations()
                    yield self._db
                except BaseException:
                    self._depth = 0
                    with suppress(sqlite3.Error):  # a damaged file may refuse the rollback too
                        self._db.execute("ROLLBACK")
                    raise
                else:
                    self._depth = 0
                    self._db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read: a deferred transaction, so several SELECTs see one snapshot."""
        with self._lock:
            if self._depth:
                yield self._db
                return
            self._check_file()
            with self._damage_reported():
                self._db.execute("BEGIN")
                self._depth = 1
                try:
                    yield self._db
                finally:
                    self._depth = 0
                    with suppress(sqlite3.Error):
                        self._db.execute("COMMIT")

    def _file_identity(self) -> tuple[int, int] | None:
        if self.in_memory:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def moved(self) -> bool:
        """Whether the database file was deleted or replaced since this store opened it (one stat)."""
        return not self.in_memory and self._file_identity() != self._identity

    def ids_as_opened(self) -> list[str]:
        """The experiment ids in the file this store opened, also once it was deleted or replaced
        (its open connection still reads that file): what a server tells its subscribers is gone."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM experiments")]

    def _check_file(self) -> None:
        """The database file is still the one this store opened (one stat): a file deleted or replaced
        under a running server would otherwise take writes that no other process, nor the next start,
        ever sees."""
        if self.moved():
            raise StoreError(
                f"The experiment database {self.path.name!r} was deleted or replaced while this process had it "
                "open; nothing more is written to the old one. Call again: a server switches to the file that "
                "is there now (or to none); a command run again uses it."
            )

    @contextmanager
    def _damage_reported(self) -> Iterator[None]:
        """A file that SQLite finds damaged mid-operation becomes a StoreError that says what to do
        (a damaged header is caught when the store opens)."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            # a constraint or a programming error (no such column) is a bug, raised as it is; a
            # damaged file, a lock held too long, a file or disk that cannot be written say what to do
            if type(exc) is not sqlite3.DatabaseError and not (
                isinstance(exc, sqlite3.OperationalError) and _circumstance(self.path, exc) is not None
            ):
                raise
            raise StoreError(unusable_database(self.path, exc, self.busy_timeout_ms)) from exc

    def _migrate(self, migrations: Sequence[tuple[str, Callable[[sqlite3.Connection], None]]]) -> None:
        self._known = frozenset(name for name, _ in migrations)
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            applied = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
            # A retired migration (schema.RETIRED_MIGRATIONS) is undone and forgotten in this one
            # transaction; the current migrations below then bring the database up to date. Not
            # undone, it read as "written by a newer meta-experiment", which it was not.
            retired = sorted((applied & RETIRED_MIGRATIONS.keys()) - self._known)
            for name in retired:
                for statement in RETIRED_MIGRATIONS[name]:
                    db.execute(statement)
                db.execute("DELETE FROM schema_migrations WHERE name = ?", (name,))
            if retired:
                _bump_user_version(db)
            applied -= set(retired)
        self._refuse_newer(applied)
        for name, apply in migrations:
            if name in applied:
                continue
            # Each migration and its record commit together; a concurrent process that got there
            # first is detected inside the same IMMEDIATE transaction.
            with self.transaction() as db:
                if db.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
                    continue
                apply(db)
                db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
                _bump_user_version(db)
        # What the migrations left, read in one snapshot with the names it holds (a newer process
        # may have migrated since the loop above: refused here, not taken for this code's state).
        with self.reading() as db:
            applied = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
            versions = _versions(db)
        self._refuse_newer(applied)
        self._versions = versions

    def _refuse_newer(self, applied: set[str]) -> None:
        unknown = sorted(applied - self._known)
        if unknown:
            raise StoreError(
                f"The experiment database was written by a newer meta-experiment (migrations {unknown}). "
                "Upgrade meta-experiment, or point META_EXPERIMENT_HOME at another folder."
            )

    def _check_migrations(self) -> None:
        """Refuse the write (inside its IMMEDIATE transaction, so before anything is written) when
        another process applied a migration this code does not know since the store opened: a
        server of an older version that keeps running after a newer one migrated the database
        would go on writing the old format (running statistics without the new columns' terms,
        silently wrong). Two header reads per transaction (4 us measured, against the 2 ms of a
        record with its synchronous commit); schema_migrations is read only when they changed.
        _migrate bumps user_version with every migration, so a no-op marker migration (schema.py)
        is seen as well as one that changes the tables. A change for a known reason (a table or
        index made outside the migrations, this code's own migrations from another process) goes
        on."""
        if self._versions is None:
            return
        versions = _versions(self._db)
        if versions == self._versions:
            return
        applied = {r[0] for r in self._db.execute("SELECT name FROM schema_migrations")}
        unknown = sorted(applied - self._known)
        if unknown:
            raise StoreError(
                f"The experiment database was upgraded by a newer meta-experiment while this process ran "
                f"(migrations {unknown}); this process would write it in the old format, so nothing was written. "
                "Restart it so that it runs the newer version (in Claude Code: /mcp, then reconnect "
                "meta-experiment; a command: run it again)."
            )
        self._versions = versions

    def applied_migrations(self) -> list[str]:
        with self.reading() as db:
            return [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]

    # -- experiments -----------------------------------------------------------------------------

    def experiment_exists(self, experiment_id: str) -> bool:
        with self.reading() as db:
            return db.execute("SELECT 1 FROM experiments WHERE id = ?", (experiment_id,)).fetchone() is not None

    def insert_experiment(self, row: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO experiments (id, name, hypothesis, description, change_type, status, status_reason,"
                " created_at, started_at, ended_at, spec_json) VALUES (:id, :name, :hypothesis, :description,"
                " :change_type, :status, :status_reason, :created_at, :started_at, :ended_at, :spec_json)",
                row,
            )
            for arm in ("control", "treatment"):
                db.execute("INSERT INTO arm_counts (experiment_id, arm) VALUES (?, ?)", (row["id"], arm))

    def experiment_row(self, experiment_id: str) -> sqlite3.Row | None:
        with self.reading() as db:
            return db.execute("SELECT * FROM experiments WHERE id = ?", (experiment_id,)).fetchone()

    def experiment_rows(self, statuses: Sequence[str] | None = None) -> list[sqlite3.Row]:
        with self.reading() as db:
            if statuses:
                marks = ",".join("?" * len(statuses))
                return db.execute(
                    f"SELECT * FROM experiments WHERE status IN ({marks}) ORDER BY created_at, id", tuple(statuses)
                ).fetchall()
            return db.execute("SELECT * FROM experiments ORDER BY created_at, id").fetchall()

    def update_experiment(self, experiment_id: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = :{k}" for k in fields)
        with self.transaction() as db:
            db.execute(
                f"UPDATE experiments SET {cols}, version = version + 1 WHERE id = :_id",
                {**fields, "_id": experiment_id},
            )

    def take_slot(self, experiment_id: str) -> int:
        """The next balanced-assignment slot number (0, 1, 2, ...), unique across processes."""
        with self.transaction() as db:
            row = db.execute("SELECT next_slot FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
            db.execute("UPDATE experiments SET next_slot = next_slot + 1 WHERE id = ?", (experiment_id,))
            return int(row[0])

    # -- files and blobs -------------------------------------------------------------------------

    def put_blob(self, content: bytes) -> str:
        digest = sha256_hex(content)
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO blobs (sha256, content) VALUES (?, ?)", (digest, content))
        return digest

    def blob(self, digest: str) -> bytes | None:
        with self.reading() as db:
            row = db.execute("SELECT content FROM blobs WHERE sha256 = ?", (digest,)).fetchone()
            return None if row is None else bytes(row[0])

    def insert_file(self, experiment_id: str, production: str, variant: str, control: str, treatment: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO experiment_files (experiment_id, production, variant, control_sha256, treatment_sha256)"
                " VALUES (?, ?, ?, ?, ?)",
                (experiment_id, production, variant, control, treatment),
            )

    def file_rows(self, experiment_id: str) -> list[sqlite3.Row]:
        with self.reading() as db:
            return db.execute(
                "SELECT * FROM experiment_files WHERE experiment_id = ? ORDER BY production", (experiment_id,)
            ).fetchall()

    def set_file_snapshot(self, experiment_id: str, production: str, control: str, treatment: str) -> None:
        """The control and treatment contents (blob hashes) of a file under test, taken anew."""
        with self.transaction() as db:
            db.execute(
                "UPDATE experiment_files SET control_sha256 = ?, treatment_sha256 = ?"
                " WHERE experiment_id = ? AND production = ?",
                (control, treatment, experiment_id, production),
            )

    def set_file_backup(self, experiment_id: str, production: str, backup: str | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE experiment_files SET backup = ? WHERE experiment_id = ? AND production = ?",
                (backup, experiment_id, production),
            )

    # -- trials ----------------------------------------------------------------------------------

    def insert_trial(
        self,
        experiment_id: str,
        arm: str,
        *,
        unit: str | None,
        source: str,
        assigned_at: float,
        status: str = "assigned",
        new_assignment: bool = True,
    ) -> int:
        """A trial row. `new_assignment=False`: a trial that stands in for an assignment already
        counted (the replacement of a voided trial), so the assignment counts the sample-ratio
        check reads do not change."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO trials (experiment_id, arm, unit, status, source, assigned_at) VALUES (?, ?, ?, ?, ?, ?)",
                (experiment_id, arm, unit, status, source, assigned_at),
            )
            if new_assignment:
                db.execute(
                    "UPDATE arm_counts SET assigned = assigned + 1 WHERE experiment_id = ? AND arm = ?",
                    (experiment_id, arm),
                )
                if unit is not None:
                    self._count_unit_trial(db, experiment_id, unit, arm)
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def insert_imported_trials(
        self, experiment_id: str, rows: list[tuple[str, str | None, str, float, bool]]
    ) -> list[int]:
        """The trial rows of an experiment an import has just created, (arm, unit, source,
        assigned_at, new_assignment) each, as insert_trial writes them one by one; the counts are
        added once per arm and unit. Returns their ids, in order. One transaction."""
        ids: list[int] = []
        assigned: dict[str, int] = {}
        per_unit: dict[tuple[str, str], int] = {}
        with self.transaction() as db:
            for arm, unit, source, assigned_at, new_assignment in rows:
                cur = db.execute(
                    "INSERT INTO trials (experiment_id, arm, unit, status, source, assigned_at)"
                    " VALUES (?, ?, ?, 'assigned', ?, ?)",
                    (experiment_id, arm, unit, source, assigned_at),
                )
                assert cur.lastrowid is not None
                ids.append(int(cur.lastrowid))
                if new_assignment:
                    assigned[arm] = assigned.get(arm, 0) + 1
                    if unit is not None:
                        per_unit[(unit, arm)] = per_unit.get((unit, arm), 0) + 1
            assert not db.execute(
                "SELECT 1 FROM unit_trials WHERE experiment_id = ? LIMIT 1", (experiment_id,)
            ).fetchone(), "an imported experiment is new: its units have no rows yet"
            db.executemany(
                "UPDATE arm_counts SET assigned = assigned + ? WHERE experiment_id = ? AND arm = ?",
                [(n, experiment_id, arm) for arm, n in assigned.items()],
            )
            db.executemany(
                "INSERT INTO unit_trials (experiment_id, unit, arm, trials) VALUES (?, ?, ?, ?)",
                [(experiment_id, unit, arm, n) for (unit, arm), n in per_unit.items()],
            )
            totals: dict[str, list[int]] = {}
            for (_, arm), n in per_unit.items():
                total = totals.setdefault(arm, [0, 0])
                total[0], total[1] = total[0] + n, total[1] + 1
            db.executemany(
                "INSERT INTO unit_totals (experiment_id, arm, trials, units) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (experiment_id, arm) DO UPDATE SET trials = trials + excluded.trials,"
                " units = units + excluded.units",
                [(experiment_id, arm, n, units) for arm, (n, units) in totals.items()],
            )
        return ids

    @staticmethod
    def _count_unit_trial(db: sqlite3.Connection, experiment_id: str, unit: str, arm: str) -> None:
        db.execute(
            "INSERT INTO unit_trials (experiment_id, unit, arm, trials) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (experiment_id, unit, arm) DO UPDATE SET trials = trials + 1",
            (experiment_id, unit, arm),
        )
        (trials,) = db.execute(
            "SELECT trials FROM unit_trials WHERE experiment_id = ? AND unit = ? AND arm = ?",
            (experiment_id, unit, arm),
        ).fetchone()
        db.execute(
            "INSERT INTO unit_totals (experiment_id, arm, trials, units) VALUES (?, ?, 1, 1)"
            " ON CONFLICT (experiment_id, arm) DO UPDATE SET trials = trials + 1, units = units + ?",
            (experiment_id, arm, int(trials == 1)),
        )

    @staticmethod
    def _count_unit_record(db: sqlite3.Connection, experiment_id: str, unit: str, arm: str, success: bool) -> None:
        db.execute(
            "UPDATE unit_trials SET recorded = recorded + 1, successes = successes + ?"
            " WHERE experiment_id = ? AND unit = ? AND arm = ?",
            (int(success), experiment_id, unit, arm),
        )
        recorded, successes = db.execute(
            "SELECT recorded, successes FROM unit_trials WHERE experiment_id = ? AND unit = ? AND arm = ?",
            (experiment_id, unit, arm),
        ).fetchone()
        _, a, b, d = ClusterSums.increment(recorded - 1, successes - int(success), float(success))
        db.execute(
            "UPDATE unit_totals SET recorded_trials = recorded_trials + 1, recorded_units = recorded_units + ?,"
            " max_recorded_per_unit = MAX(max_recorded_per_unit, ?),"
            " success_a = success_a + ?, success_b = success_b + ?, success_d = success_d + ?"
            " WHERE experiment_id = ? AND arm = ?",
            (int(recorded == 1), recorded, a, b, d, experiment_id, arm),
        )

    @staticmethod
    def _fold_unit(db: sqlite3.Connection, experiment_id: str, unit: str, arm: str, shifted: dict[str, float]) -> None:
        """Add one trial's shifted values to its unit's sums and the arm's ClusterSums (inside the
        caller's transaction). A unit's first value changes no cluster sum, so an experiment whose
        units never repeat writes only unit_sums."""
        prior = {
            r[0]: (int(r[1]), float(r[2]))
            for r in db.execute(
                "SELECT metric, n, shifted_sum FROM unit_sums WHERE experiment_id = ? AND unit = ? AND arm = ?",
                (experiment_id, unit, arm),
            )
        }
        sums, crosses = [], []
        for metric, y in shifted.items():
            n, total = prior.get(metric, (0, 0.0))
            sums.append((experiment_id, unit, arm, metric, n + 1, total + y))
            if n:
                crosses.append((*ClusterSums.increment(n, total, y), experiment_id, arm, metric))
        db.executemany(
            "INSERT INTO unit_sums (experiment_id, unit, arm, metric, n, shifted_sum) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (experiment_id, unit, arm, metric) DO UPDATE SET n = excluded.n,"
            " shifted_sum = excluded.shifted_sum",
            sums,
        )
        db.executemany(
            "UPDATE arm_stats SET repeats = repeats + ?, cross_a = cross_a + ?, cross_b = cross_b + ?,"
            " cross_d = cross_d + ? WHERE experiment_id = ? AND arm = ? AND metric = ?",
            crosses,
        )

    def trial_row(self, trial_id: int) -> sqlite3.Row | None:
        with self.reading() as db:
            return db.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()

    def trial_values(self, trial_id: int) -> dict[str, float]:
        with self.reading() as db:
            rows = db.execute("SELECT metric, value FROM metric_values WHERE trial_id = ?", (trial_id,))
            return {r[0]: r[1] for r in rows}

    def record_trial(
        self,
        trial_id: int,
        experiment_id: str,
        arm: str,
        values: dict[str, float],
        success: bool,
        at: float,
        derived: dict[str, float] | None = None,
    ) -> None:
        """Mark a trial recorded, store its values and fold them into the running statistics,
        all in one transaction. `derived` values (e.g. the log of a log-scale metric) are folded
        into running statistics under their own names but not stored as metric values."""
        with self.transaction() as db:
            db.execute(
                "UPDATE trials SET status = 'recorded', recorded_at = ?, success = ? WHERE id = ?",
                (at, int(success), trial_id),
            )
            (unit,) = db.execute("SELECT unit FROM trials WHERE id = ?", (trial_id,)).fetchone()
            if unit is not None:
                self._count_unit_record(db, experiment_id, unit, arm, success)
            db.executemany(
                "INSERT INTO metric_values (trial_id, metric, value) VALUES (?, ?, ?)",
                [(trial_id, name, value) for name, value in values.items()],
            )
            folded = {**values, **(derived or {})}
            shifts = self._fold(db, experiment_id, arm, folded)
            if unit is not None:
                self._fold_unit(db, experiment_id, unit, arm, {k: v - shifts[k] for k, v in folded.items()})
            db.execute(
                "UPDATE arm_counts SET recorded = recorded + 1, successes = successes + ?"
                " WHERE experiment_id = ? AND arm = ?",
                (int(success), experiment_id, arm),
            )

    def record_imported(
        self,
        experiment_id: str,
        trials: list[tuple[int, dict[str, float], bool, float]],
        derive: Callable[[dict[str, float]], dict[str, float]],
    ) -> None:
        """Imported trials (trial id, values, success, recorded at), each assigned already, marked
        recorded with their values, and the running statistics folded from every recorded trial
        (as _refold: in recording order, as record_trial folded them): a few statements for the lot,
        where record_trial takes eight per trial. One transaction."""
        if not trials:
            return
        with self.transaction() as db:
            db.executemany(
                "UPDATE trials SET status = 'recorded', recorded_at = ?, success = ? WHERE id = ?",
                [(at, int(success), trial_id) for trial_id, _, success, at in trials],
            )
            db.executemany(
                "INSERT INTO metric_values (trial_id, metric, value) VALUES (?, ?, ?)",
                [(trial_id, name, value) for trial_id, values, _, _ in trials for name, value in values.items()],
            )
            self._refold(db, experiment_id, derive)

    def void_trial(
        self,
        trial_id: int,
        at: float,
        reason: str,
        derive: Callable[[dict[str, float]], dict[str, float]],
        precomputed: tuple[tuple[Any, ...], Refold] | None = None,
    ) -> None:
        """Withdraw a recorded trial: its row and values stay (status 'abandoned', with the reason in
        voided_trials) and the experiment's running statistics are rebuilt from the recorded
        trials left, in recording order, as record_trial built them (`derive`: the derived values
        record_trial was given for a trial's values). One transaction. `precomputed`: refold_without's
        answer, written as it is when no recorded trial changed since it was read."""
        with self.transaction() as db:
            (experiment_id,) = db.execute(
                "SELECT experiment_id FROM trials WHERE id = ? AND status = 'recorded'", (trial_id,)
            ).fetchone()
            if precomputed is not None and precomputed[0] == self._recorded_stamp(db, experiment_id):
                refold = precomputed[1]  # (the stamp is read before the trial leaves the recorded ones)
            else:  # a trial recorded or voided since: read them all again, under the lock
                refold = None
            db.execute("UPDATE trials SET status = 'abandoned' WHERE id = ?", (trial_id,))
            db.execute(
                "INSERT INTO voided_trials (trial_id, voided_at, reason) VALUES (?, ?, ?)", (trial_id, at, reason)
            )
            if refold is None:
                self._refold(db, experiment_id, derive)
            else:
                self._write_refold(db, experiment_id, refold)

    def insert_voided(
        self, trial_id: int, values: dict[str, float], success: bool, recorded_at: float, voided_at: float, reason: str
    ) -> None:
        """An imported voided trial: its values stored, nothing folded (as void_trial leaves one)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE trials SET status = 'abandoned', recorded_at = ?, success = ? WHERE id = ?",
                (recorded_at, int(success), trial_id),
            )
            db.executemany(
                "INSERT INTO metric_values (trial_id, metric, value) VALUES (?, ?, ?)",
                [(trial_id, name, value) for name, value in values.items()],
            )
            db.execute(
                "INSERT INTO voided_trials (trial_id, voided_at, reason) VALUES (?, ?, ?)",
                (trial_id, voided_at, reason),
            )

    def set_replacement(self, trial_id: int, replaced_by: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE voided_trials SET replaced_by = ? WHERE trial_id = ?", (replaced_by, trial_id))

    def voided(self, trial_id: int) -> sqlite3.Row | None:
        """(voided_at, reason, replaced_by) of a voided trial, else None."""
        with self.reading() as db:
            return db.execute(
                "SELECT voided_at, reason, replaced_by FROM voided_trials WHERE trial_id = ?", (trial_id,)
            ).fetchone()

    def voided_counts(self, experiment_id: str) -> dict[str, int]:
        """{arm: voided trials} (arms without any are absent)."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT t.arm, COUNT(*) FROM voided_trials v JOIN trials t ON t.id = v.trial_id"
                " WHERE t.experiment_id = ? GROUP BY t.arm",
                (experiment_id,),
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def voided_ids(self, experiment_id: str, from_id: int = 0, to_id: int | None = None) -> dict[int, sqlite3.Row]:
        """The experiment's voided trials (those with an id from `from_id` to `to_id`, both included)."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT v.trial_id, v.voided_at, v.reason, v.replaced_by FROM voided_trials v"
                " JOIN trials t ON t.id = v.trial_id WHERE t.experiment_id = ? AND t.id BETWEEN ? AND ?",
                (experiment_id, from_id, MAX_ID if to_id is None else to_id),
            ).fetchall()
        return {r[0]: r for r in rows}

    def _refold(
        self, db: sqlite3.Connection, experiment_id: str, derive: Callable[[dict[str, float]], dict[str, float]]
    ) -> None:
        """Rebuild the experiment's running statistics, per-unit sums and recorded counts from its
        recorded trials (inside the caller's transaction): the same folding as record_trial
        (RunningStats.add, ClusterSums.increment, in recording order), computed in memory and
        written once, so a void costs a few microseconds per trial instead of eight statements."""
        self._write_refold(db, experiment_id, self._compute_refold(db, experiment_id, derive))

    @staticmethod
    def _recorded_stamp(db: sqlite3.Connection, experiment_id: str) -> tuple[Any, ...]:
        """What changes whenever the experiment's recorded trials do (a record, a void, a
        replacement): the ids themselves, since a trial assigned earlier can be recorded later (a
        count, sum and largest id can stay the same while the set changes). A recorded trial's
        values, success and time never change."""
        return tuple(
            r[0]
            for r in db.execute(
                "SELECT id FROM trials WHERE experiment_id = ? AND status = 'recorded' ORDER BY id", (experiment_id,)
            )
        )

    def refold_without(
        self, experiment_id: str, trial_id: int, derive: Callable[[dict[str, float]], dict[str, float]]
    ) -> tuple[tuple[Any, ...], Refold]:
        """The refold of the experiment without one of its recorded trials, computed in a read
        snapshot (no write lock held), with the stamp of the recorded trials it read: void_trial
        writes it if the stamp still holds, so that every other session's record does not wait while
        every trial is read again (1.7 s at 105,000 trials)."""
        with self.reading() as db:
            return self._recorded_stamp(db, experiment_id), self._compute_refold(db, experiment_id, derive, trial_id)

    def _compute_refold(
        self,
        db: sqlite3.Connection,
        experiment_id: str,
        derive: Callable[[dict[str, float]], dict[str, float]],
        without: int | None = None,
    ) -> Refold:
        """The rows _refold writes, from the recorded trials (but `without`), read in `db`."""
        stats: dict[tuple[str, str], RunningStats] = {}  # (arm, metric)
        cross: dict[tuple[str, str], list[float]] = {}  # (arm, metric) -> [repeats, a, b, d]
        unit_sums: dict[tuple[str, str, str], list[float]] = {}  # (unit, arm, metric) -> [n, shifted sum]
        unit_rec: dict[tuple[str, str], list[int]] = {}  # (unit, arm) -> [recorded, successes]
        totals: dict[str, list[float]] = {}  # arm -> [recorded_trials, units, max per unit, sa, sb, sd]
        counts: dict[str, list[int]] = {}  # arm -> [recorded, successes]
        values: dict[int, dict[str, float]] = {}
        for trial_id, metric, value in db.execute(
            "SELECT v.trial_id, v.metric, v.value FROM trials t JOIN metric_values v ON v.trial_id = t.id"
            " WHERE t.experiment_id = ? AND t.status = 'recorded'",
            (experiment_id,),
        ):
            values.setdefault(trial_id, {})[metric] = value
        trials = db.execute(
            "SELECT id, arm, unit, success FROM trials WHERE experiment_id = ? AND status = 'recorded'"
            " ORDER BY recorded_at, id",
            (experiment_id,),
        ).fetchall()
        for trial_id, arm, unit, success in trials:
            if trial_id == without:
                continue
            ok = bool(success)
            count = counts.setdefault(arm, [0, 0])
            count[0], count[1] = count[0] + 1, count[1] + int(ok)
            own = values.get(trial_id, {})
            for metric, x in {**own, **derive(own)}.items():
                new = stats.get((arm, metric), EMPTY_STATS).add(x)
                stats[(arm, metric)] = new
                if unit is None:
                    continue
                acc = unit_sums.setdefault((unit, arm, metric), [0, 0.0])
                y = x - new.shift
                if acc[0]:
                    c = cross.setdefault((arm, metric), [0, 0.0, 0.0, 0.0])
                    for k, delta in enumerate(ClusterSums.increment(int(acc[0]), acc[1], y)):
                        c[k] += delta
                acc[0], acc[1] = acc[0] + 1, acc[1] + y
            if unit is not None:
                rec = unit_rec.setdefault((unit, arm), [0, 0])
                _, sa, sb, sd = ClusterSums.increment(rec[0], rec[1], float(ok))
                rec[0], rec[1] = rec[0] + 1, rec[1] + int(ok)
                total = totals.setdefault(arm, [0, 0, 0, 0.0, 0.0, 0.0])
                total[0] += 1
                total[1] += int(rec[0] == 1)
                total[2] = max(total[2], rec[0])
                total[3], total[4], total[5] = total[3] + sa, total[4] + sb, total[5] + sd
        return Refold(stats, cross, unit_sums, unit_rec, totals, counts)

    @staticmethod
    def _write_refold(db: sqlite3.Connection, experiment_id: str, refold: Refold) -> None:
        stats, cross, unit_sums, unit_rec, totals, counts = (
            refold.stats,
            refold.cross,
            refold.unit_sums,
            refold.unit_rec,
            refold.totals,
            refold.counts,
        )
        db.execute("DELETE FROM arm_stats WHERE experiment_id = ?", (experiment_id,))
        db.executemany(
            "INSERT INTO arm_stats (experiment_id, arm, metric, n, shift, shifted_mean, m2, min, max, repeats,"
            " cross_a, cross_b, cross_d) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    experiment_id,
                    arm,
                    metric,
                    r.n,
                    r.shift,
                    r.shifted_mean,
                    r.m2,
                    r.min,
                    r.max,
                    *cross.get((arm, metric), [0, 0.0, 0.0, 0.0]),
                )
                for (arm, metric), r in stats.items()
            ],
        )
        db.execute("DELETE FROM unit_sums WHERE experiment_id = ?", (experiment_id,))
        db.executemany(
            "INSERT INTO unit_sums (experiment_id, unit, arm, metric, n, shifted_sum) VALUES (?, ?, ?, ?, ?, ?)",
            [(experiment_id, *key, int(n), total) for key, (n, total) in unit_sums.items()],
        )
        db.execute("UPDATE unit_trials SET recorded = 0, successes = 0 WHERE experiment_id = ?", (experiment_id,))
        db.executemany(
            "UPDATE unit_trials SET recorded = ?, successes = ? WHERE experiment_id = ? AND unit = ? AND arm = ?",
            [(rec, ok, experiment_id, unit, arm) for (unit, arm), (rec, ok) in unit_rec.items()],
        )
        db.execute(
            "UPDATE unit_totals SET recorded_trials = 0, recorded_units = 0, max_recorded_per_unit = 0,"
            " success_a = 0, success_b = 0, success_d = 0 WHERE experiment_id = ?",
            (experiment_id,),
        )
        db.executemany(
            "UPDATE unit_totals SET recorded_trials = ?, recorded_units = ?, max_recorded_per_unit = ?,"
            " success_a = ?, success_b = ?, success_d = ? WHERE experiment_id = ? AND arm = ?",
            [(*total, experiment_id, arm) for arm, total in totals.items()],
        )
        db.execute("UPDATE arm_counts SET recorded = 0, successes = 0 WHERE experiment_id = ?", (experiment_id,))
        db.executemany(
            "UPDATE arm_counts SET recorded = ?, successes = ? WHERE experiment_id = ? AND arm = ?",
            [(rec, ok, experiment_id, arm) for arm, (rec, ok) in counts.items()],
        )

    def abandon_trials(self, experiment_id: str, older_than: float | None = None) -> int:
        """Mark still-assigned trials abandoned (all of them, or those assigned before a time)."""
        with self.transaction() as db:
            cond = "experiment_id = ? AND status = 'assigned'"
            args: tuple[Any, ...] = (experiment_id,)
            if older_than is not None:
                cond += " AND assigned_at < ?"
                args += (older_than,)
            per_arm = db.execute(f"SELECT arm, COUNT(*) FROM trials WHERE {cond} GROUP BY arm", args).fetchall()
            db.execute(f"UPDATE trials SET status = 'abandoned' WHERE {cond}", args)
            for arm, count in per_arm:
                db.execute(
                    "UPDATE arm_counts SET abandoned = abandoned + ? WHERE experiment_id = ? AND arm = ?",
                    (count, experiment_id, arm),
                )
            return sum(c for _, c in per_arm)

    def abandon_trial_ids(self, trial_ids: Sequence[int]) -> None:
        """Mark these still-assigned trials abandoned (used when importing)."""
        with self.transaction() as db:
            for trial_id in trial_ids:
                row = db.execute(
                    "SELECT experiment_id, arm FROM trials WHERE id = ? AND status = 'assigned'", (trial_id,)
                ).fetchone()
                if row is None:
                    continue
                db.execute("UPDATE trials SET status = 'abandoned' WHERE id = ?", (trial_id,))
                db.execute(
                    "UPDATE arm_counts SET abandoned = abandoned + 1 WHERE experiment_id = ? AND arm = ?",
                    (row[0], row[1]),
                )

    def _fold(self, db: sqlite3.Connection, experiment_id: str, arm: str, values: dict[str, float]) -> dict[str, float]:
        """Fold one trial's values into the arm's running statistics (inside the caller's
        transaction); returns each metric's shift."""
        current = {
            r[0]: RunningStats(*r[1:])
            for r in db.execute(
                "SELECT metric, n, shift, shifted_mean, m2, min, max FROM arm_stats"
                " WHERE experiment_id = ? AND arm = ?",
                (experiment_id, arm),
            )
        }
        rows = []
        for metric, value in values.items():
            new = current.get(metric, EMPTY_STATS).add(value)
            rows.append((experiment_id, arm, metric, new.n, new.shift, new.shifted_mean, new.m2, new.min, new.max))
        db.executemany(
            "INSERT INTO arm_stats (experiment_id, arm, metric, n, shift, shifted_mean, m2, min, max)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (experiment_id, arm, metric) DO UPDATE SET n = excluded.n,"
            " shifted_mean = excluded.shifted_mean, m2 = excluded.m2, min = excluded.min, max = excluded.max",
            rows,
        )
        return {row[2]: row[4] for row in rows}

    def running_stats(self, experiment_id: str) -> dict[tuple[str, str], RunningStats]:
        """{(arm, metric): RunningStats} for every metric seen in the experiment."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT arm, metric, n, shift, shifted_mean, m2, min, max FROM arm_stats WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()
        return {(r[0], r[1]): RunningStats(*r[2:]) for r in rows}

    def values_per_arm(self, experiment_id: str, metric: str) -> dict[str, int]:
        """{arm: values of `metric` recorded} (a failed run may leave a metric out)."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT arm, n FROM arm_stats WHERE experiment_id = ? AND metric = ?", (experiment_id, metric)
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def arm_counts(self, experiment_id: str) -> dict[str, dict[str, int]]:
        with self.reading() as db:
            rows = db.execute(
                "SELECT arm, assigned, recorded, abandoned, successes FROM arm_counts WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()
        return {r[0]: {"assigned": r[1], "recorded": r[2], "abandoned": r[3], "successes": r[4]} for r in rows}

    def cluster_sums(self, experiment_id: str) -> dict[tuple[str, str], ClusterSums]:
        """{(arm, metric): ClusterSums} for the metrics with repeated units, and (arm, SUCCESS) for
        the trials' success; absent where no unit has more than one recorded value."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT arm, metric, repeats, cross_a, cross_b, cross_d FROM arm_stats"
                " WHERE experiment_id = ? AND repeats > 0",
                (experiment_id,),
            ).fetchall()
            success = self.success_cluster_sums(experiment_id)
        out = {(r[0], r[1]): ClusterSums(int(r[2]), *r[3:]) for r in rows}
        out.update({(arm, SUCCESS): sums for arm, sums in success.items()})
        return out

    def success_cluster_sums(self, experiment_id: str) -> dict[str, ClusterSums]:
        """{arm: ClusterSums} of the trials' success, for the arms where a unit repeats."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT arm, recorded_trials - recorded_units, success_a, success_b, success_d FROM unit_totals"
                " WHERE experiment_id = ? AND recorded_trials > recorded_units",
                (experiment_id,),
            ).fetchall()
        return {r[0]: ClusterSums(int(r[1]), *r[2:]) for r in rows}

    def unit_counts(self, experiment_id: str) -> dict[str, UnitCounts]:
        """{arm: UnitCounts} over the trials assigned with a unit; arms without any are absent.
        One row per arm of unit_totals, which insert_trial and record_trial keep up to date."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT arm, trials, recorded_trials, units, recorded_units, max_recorded_per_unit"
                " FROM unit_totals WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()
        return {r[0]: UnitCounts(*(int(v) for v in r[1:])) for r in rows}

    def unit_sums(self, experiment_id: str) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
        """{(arm, metric): (each unit's count, each unit's sum of shifted values)} over the recorded
        values with a unit: a row per unit and metric, for the small-sample cluster-robust tests."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT arm, metric, n, shifted_sum FROM unit_sums WHERE experiment_id = ? AND n > 0"
                " ORDER BY arm, metric",
                (experiment_id,),
            ).fetchall()
        out: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for key, group in itertools.groupby(rows, key=operator.itemgetter(0, 1)):
            _, _, sizes, sums = zip(*group, strict=True)
            out[key] = (list(sizes), list(sums))
        return out

    def raw_values(self, experiment_id: str, arm: str, metric: str) -> list[float]:
        """Recorded values of one metric in one arm, in recording order (for rank-based tests)."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT v.value FROM trials t JOIN metric_values v ON v.trial_id = t.id"
                " WHERE t.experiment_id = ? AND t.arm = ? AND v.metric = ? AND t.status = 'recorded'"
                " ORDER BY t.recorded_at, t.id",
                (experiment_id, arm, metric),
            ).fetchall()
        return [r[0] for r in rows]

    def raw_series(self, experiment_id: str, metric: str) -> list[tuple[str, float, str | None]]:
        """(arm, value, unit) of one metric for every recorded trial, in recording order."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT t.arm, v.value, t.unit FROM trials t JOIN metric_values v ON v.trial_id = t.id"
                " WHERE t.experiment_id = ? AND v.metric = ? AND t.status = 'recorded'"
                " ORDER BY t.recorded_at, t.id",
                (experiment_id, metric),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def trial_rows(
        self, experiment_id: str, newest: int | None = None, *, skip: int = 0, limit: int | None = None
    ) -> list[sqlite3.Row]:
        """The experiment's trials in id order; `newest`: only that many of the last ones; `skip` and
        `limit`: up to `limit` of them after the first `skip` (a page)."""
        with self.reading() as db:
            if newest is None:
                return db.execute(
                    "SELECT * FROM trials WHERE experiment_id = ? ORDER BY id LIMIT ? OFFSET ?",
                    (experiment_id, -1 if limit is None else limit, skip),
                ).fetchall()
            return db.execute(
                "SELECT * FROM (SELECT * FROM trials WHERE experiment_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                (experiment_id, newest),
            ).fetchall()

    def values_by_trial(
        self, experiment_id: str, from_id: int = 0, to_id: int | None = None
    ) -> dict[int, dict[str, float]]:
        """Each trial's metric values (trials with an id from `from_id` to `to_id`, both included)."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT v.trial_id, v.metric, v.value FROM trials t JOIN metric_values v ON v.trial_id = t.id"
                " WHERE t.experiment_id = ? AND t.id BETWEEN ? AND ?",
                (experiment_id, from_id, MAX_ID if to_id is None else to_id),
            ).fetchall()
        out: dict[int, dict[str, float]] = {}
        for trial_id, metric, value in rows:
            out.setdefault(trial_id, {})[metric] = value
        return out

    def trial_count(self, experiment_id: str) -> int:
        """How many trials the experiment has (voided ones and their replacements included)."""
        with self.reading() as db:
            row = db.execute("SELECT COUNT(*) FROM trials WHERE experiment_id = ?", (experiment_id,)).fetchone()
        return int(row[0])

    # -- events ----------------------------------------------------------------------------------

    def put_alert(
        self,
        experiment_id: str,
        kind: str,
        message: str,
        data: dict[str, Any],
        raised_at: float,
        cleared_at: float | None,
    ) -> None:
        """A monitoring alert as an import carries it (one row per experiment and kind)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO alerts (experiment_id, kind, message, data_json, raised_at, cleared_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, kind) DO UPDATE SET"
                " message = excluded.message, data_json = excluded.data_json, raised_at = excluded.raised_at,"
                " cleared_at = excluded.cleared_at",
                (experiment_id, kind, message, to_json(data), raised_at, cleared_at),
            )

    def add_event(
        self,
        experiment_id: str | None,
        kind: str,
        message: str,
        *,
        actor: str = "agent",
        data: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO events (experiment_id, at, actor, kind, message, data_json) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    experiment_id,
                    time.time() if at is None else at,
                    actor,
                    kind,
                    message,
                    to_json(data or {}, sort_keys=True, default=str),
                ),
            )
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def event_rows(
        self, experiment_id: str | None = None, *, kinds: Sequence[str] | None = None, limit: int | None = None
    ) -> list[sqlite3.Row]:
        clauses, args = [], []
        if experiment_id is not None:
            clauses.append("experiment_id = ?")
            args.append(experiment_id)
        if kinds:
            clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        tail = f" LIMIT {int(limit)}" if limit else ""
        with self.reading() as db:
            rows = db.execute(f"SELECT * FROM events {where} ORDER BY id DESC{tail}", args).fetchall()
        return list(reversed(rows))
