"""The rules of the experiment lifecycle: create, assign, record, analyse, status.

Every operation that changes state is one store transaction: it either happens completely (rows,
running statistics and its event) or not at all. This module does not format text or speak MCP."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import analysis, floors, monitoring, paths
from .allocation import block_arm, block_lag, sticky_arm
from .deploy import LOCK_WAIT_SECONDS, file_lock
from .dispatch import dispatcher_experiment
from .errors import Conflict, InvalidInput, InvalidState, NotFound, StoreError, validation_message
from .files import SpecialFile, atomic_write, read_regular
from .gitcommit import GIT_TIMEOUT_SECONDS as GIT_WAIT_SECONDS
from .measurements import Definition, clean_metrics, derived_values, flag, missing_guardrails
from .models import (
    ARMS,
    MAX_ID_LENGTH,
    TERMINAL_STATUSES,
    UNIT_MAX_CHARS,
    ArmCounts,
    AssignedFile,
    Assignment,
    Event,
    Experiment,
    ExperimentSpec,
    FileChange,
    MetricSpec,
    Progress,
    RecordResult,
    Targets,
    Trial,
    VoidResult,
    iso,
)
from .outcomes import RecoveryNote
from .paths import DB_FILE_NAME
from .settings import Settings, load_settings, settings_path, update_settings
from .stats.guardrails import SUCCESS_METRIC
from .stats.plan import MIN_PER_ARM
from .stats.results import Analysis
from .status import StatusReport
from .store import BUSY_TIMEOUT_MS, Store

MAX_FILE_BYTES = 2 * 1024 * 1024
# assign hands a run every file of its arm whole, in its structured result: JSON-escaped, an arm's
# files stay under this, so that the answer stays under the 10 MB a TypeScript client (Claude Code,
# the Inspector) reads before it drops the connection
MAX_ARM_BYTES = 6_000_000
SETTINGS_LOCK_NAME = "settings.lock"


def check_file_roles(pairs: list[tuple[str, str]]) -> None:
    """Each (production, variant) pair of project-relative paths: a variant is its own file, and no
    file plays two roles (create's rule, and import's)."""
    seen: set[str] = set()
    for production, variant in pairs:
        if production == variant:
            raise InvalidInput(
                f"The variant of {production!r} is the same file. Put the changed version in its own "
                f"file (e.g. {production}.experiment) and pass that as the variant."
            )
        for path in (production, variant):
            if path in seen:
                raise InvalidInput(f"{path!r} appears twice in files; each file may play one role.")
            seen.add(path)


def check_text(path: str, data: bytes) -> bytes:
    """The content of a file under test, if it is one: UTF-8 text of at most MAX_FILE_BYTES."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"{path!r} is {len(data):,} bytes; files under test are limited to "
            f"{MAX_FILE_BYTES:,} bytes (prompts, commands, configs, source files)."
        )
    wide = (
        f"{path!r} is {{0}} text ({{1}}). Save it as UTF-8 (the editor's encoding setting, or iconv -f {{0}} -t "
        "utf-8) and try again: experiments compare and write files as UTF-8 text."
    )
    if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        raise InvalidInput(wide.format("UTF-32", "it starts with a UTF-32 byte-order mark"))
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InvalidInput(wide.format("UTF-16", "it starts with a UTF-16 byte-order mark"))
    # checked whether or not it decodes: UTF-16 of ASCII text is valid UTF-8, NULs and all (from a review)
    encoding = _wide_encoding(data) if b"\0" in data else None
    if encoding is not None:
        every = "every other byte" if encoding == "UTF-16" else "three bytes in every four"
        raise InvalidInput(wide.format(encoding, f"without a byte-order mark: {every} is NUL"))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if b"\0" in data:
            raise InvalidInput(
                f"{path!r} is a binary file (it holds NUL bytes); experiments test text files (prompts, commands, "
                "configs, code)."
            ) from None
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"{path!r} is not UTF-8 text: byte {exc.start + 1} (line {line}) is {data[exc.start]:#04x}, which UTF-8 "
            "cannot read, as an editor saving in another encoding (Latin-1, Windows-1252) writes it. Save it as UTF-8 "
            "(the editor's encoding setting, or iconv -f latin1 -t utf-8) and try again: experiments compare and "
            "write files as UTF-8 text."
        ) from None
    return data


def _wide_encoding(data: bytes) -> str | None:
    """ "UTF-16" or "UTF-32" for mostly-ASCII text written so (no byte-order mark): in the first 4 KB,
    the bytes at the character's high places nearly all NUL and those at its low place nearly none
    (a file of NULs alone is neither). None otherwise."""
    head = data[: 4096 - 4096 % 4]
    if len(head) < 8:
        return None
    zero = [head[i::4].count(0) / len(head[i::4]) for i in range(4)]
    high, low = (lambda lanes: all(zero[i] >= 0.8 for i in lanes)), (lambda lanes: all(zero[i] <= 0.2 for i in lanes))
    if (high((1, 2, 3)) and low((0,))) or (high((0, 1, 2)) and low((3,))):
        return "UTF-32"
    if (high((1, 3)) and low((0, 2))) or (high((0, 2)) and low((1, 3))):
        return "UTF-16"
    return None


def _to_record(experiment: Definition) -> str:
    """'time_to_complete in min (omit it to use ...) and issues_caught': what a trial's record call
    carries, with units; a guardrail left out holds promotion back until it has values in both arms."""

    def one(m: MetricSpec) -> str:
        kind = " (0 or 1)" if m.kind == "binary" else f" in {m.unit}" if m.unit else ""
        return m.name + kind

    primary = one(experiment.primary_metric) + (
        " (omit it to use the time since this assignment)" if experiment.primary_metric.is_duration else ""
    )
    guards = [one(m) for m in experiment.metrics[1:]]
    if not guards:
        return primary
    return primary + " and the guardrail" + ("s " if len(guards) > 1 else " ") + ", ".join(guards)


def no_access(state: Path) -> str:
    """Why the state folder cannot be read by this user, and what to do."""
    try:
        st = state.stat()
        how = f" (mode {st.st_mode & 0o777:o}, owner uid {st.st_uid}, this user uid {os.getuid()})"
    except (OSError, AttributeError):
        how = ""
    return (
        f"The state folder {str(state)!r} cannot be read by this user{how}: it is another user's, made for its "
        "owner alone. To share a project's experiments, its owner gives the group access (chmod -R g+rwX, and "
        "g+s on the folder); otherwise set META_EXPERIMENT_HOME to a folder of your own."
    )


def check_arm_sizes(files: list[tuple[str, bytes, bytes]]) -> None:
    """(production, control content, treatment content) of each file of an experiment: each arm's
    files, as assign's answer holds them (JSON strings), fit in MAX_ARM_BYTES."""
    for arm, contents in (("control", [c for _, c, _ in files]), ("treatment", [t for _, _, t in files])):
        size = sum(len(json.dumps(data.decode("utf-8"), ensure_ascii=False).encode()) for data in contents)
        if size > MAX_ARM_BYTES:
            raise InvalidInput(
                f"The {arm} arm's files come to {size:,} bytes as assign hands them to a run (JSON-escaped); "
                f"the limit is {MAX_ARM_BYTES:,}, since an MCP client drops an answer over 10 MB. Test fewer or "
                "smaller files in one experiment (one experiment per change)."
            )


@dataclass
class Lab:
    """One project's experiments: the project root (files under test live there), the state folder
    and its store. Create with `Lab.open(...)`; `close()` when done."""

    project_root: Path
    state_dir: Path
    store: Store
    clock: Callable[[], float] = time.time
    actor: str = "agent"
    # Told of each change: the experiment id (None: settings) and its scope (mcp_common.experiment_uris).
    listeners: list[Callable[[str | None, str], None]] = field(default_factory=list)
    # Interrupted promote/rollback operations finished or undone when this Lab was opened.
    recovered: list[RecoveryNote] = field(default_factory=list)
    # Opened with create=False in a project that has no database yet: reads see an empty store.
    empty_project: bool = False
    # How long a promote, rollback or dispatch waits for another one's deploy lock.
    lock_wait: float = LOCK_WAIT_SECONDS
    # How long a recovery waits for another git's index.lock (a killed promote's commit, its hooks still
    # running) before it leaves the commit for later: commands that only read do not wait (a crashed
    # git's lock held `status` for two minutes, from a review).
    git_wait: float = GIT_WAIT_SECONDS
    # A hook's Lab (Claude Code kills a hook after 30 s): a promote or rollback it makes leaves its
    # git commit, which runs the repository's own commit hooks, to a separate process (operations.execute)
    commit_later: bool = False
    # A hook's Lab for a session started in a subfolder of this project (dispatch_ops.hook_lab)
    session_root: Path | None = None
    # spec_json text -> parsed metrics; the spec never changes after create, so parse it once.
    _specs: dict[str, tuple[MetricSpec, tuple[MetricSpec, ...], int, int, float, bool]] = field(
        default_factory=dict, repr=False
    )
    # Set in the thread that runs a rehearsal: what it does is undone, so nobody is told of it.
    _quiet: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @classmethod
    def open(
        cls,
        project_root: Path | None = None,
        state_dir: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        actor: str = "agent",
        recover: bool = True,
        create: bool = True,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        git_wait: float = GIT_WAIT_SECONDS,
    ) -> Lab:
        """Open the project's state and, unless `recover` is False, finish or undo any promote or
        rollback that a killed process left unfinished (`operations.recover`; `git_wait`: see the
        field).

        With `create=False` a project without a database is read as an empty one and nothing is
        created in it (a `status` run in the wrong folder leaves no state folder behind): the store is
        an empty one in memory (nothing on disk to clean up, however the process ends), and
        `empty_project` is True."""
        environ = None if env is None else dict(env)
        root = (project_root or paths.find_project_root(env=environ)).resolve()
        if not root.is_dir():
            raise StoreError(
                f"The project folder {str(root)!r} does not exist or is not a folder. Check the path "
                "(--project, or CLAUDE_PROJECT_DIR)."
            )
        state = state_dir or paths.find_state_dir(root, env=environ)
        try:
            exists = (state / DB_FILE_NAME).exists()
        except PermissionError:
            raise StoreError(no_access(state)) from None
        if not create and not exists:
            lab = cls(project_root=root, state_dir=state, store=Store(Path(":memory:")), actor=actor)
            lab.empty_project = True
            return lab
        paths.ensure_state_dir(state, environ)
        lab = cls(
            project_root=root,
            state_dir=state,
            store=Store(state / DB_FILE_NAME, busy_timeout_ms=busy_timeout_ms),
            actor=actor,
            git_wait=git_wait,
        )
        if recover:
            from .operations import recover as recover_operations

            lab.recovered = recover_operations(lab)
        return lab

    def close(self) -> None:
        self.store.close()

    def has_database(self) -> bool:
        """Whether the project's database file exists (for a Lab opened empty: whether another
        process has made it since)."""
        return (self.state_dir / DB_FILE_NAME).exists()

    def settings(self) -> Settings:
        """Read on every use, so a hand edit of settings.toml takes effect without a restart."""
        return load_settings(self.state_dir, self.project_root)

    def update_settings(self, wanted: dict[str, dict[str, Any]], message: str, **data: Any) -> Settings:
        """Change settings.toml as `wanted` says (settings.update_settings) and log the change, all or
        nothing. Under a file lock of the state folder (`settings.lock`), so that two updates at once
        both land, one after the other, and inside a database write transaction. The event is written
        first, so a database that cannot be written (read-only, locked, full) refuses before the file
        changes; if anything fails after the file was written, the file is put back as it was."""
        path = settings_path(self.state_dir)
        busy = "Another settings update in this project has taken over 30 s. Try again when it is done."
        # the lock holds through the restore below too: a failed COMMIT has already let go of the
        # database's lock, and another update must not read (and keep) this one's file meanwhile
        with file_lock(self.state_dir / SETTINGS_LOCK_NAME, wait=30.0, busy=busy):
            before = path.read_bytes() if path.is_file() else None
            try:
                with self.store.transaction():
                    self.event(None, "settings_updated", message, **data)
                    return update_settings(self.state_dir, wanted, self.project_root)
            except BaseException:
                now = path.read_bytes() if path.is_file() else None
                if now != before:
                    if before is None:
                        path.unlink(missing_ok=True)
                    else:
                        atomic_write(path, before)
                raise
            finally:
                # monitoring trusts its copy for a second (monitoring_settings): this process's next
                # check reads the change, not the old thresholds (two auto runs in a row acted apart)
                from .monitoring import forget_settings

                forget_settings(self.state_dir)

    def _changed(self, experiment_id: str | None, scope: str = "all") -> None:
        """Tell the listeners; `scope`: "all", "assigned" (a trial assigned: the experiment's counts
        and trials, no list or alert) or "recorded" (a running experiment's trial recorded: no alert;
        an alert raised or cleared tells "all" of its own)."""
        if getattr(self._quiet, "on", False):
            return
        for listener in self.listeners:
            listener(experiment_id, scope)

    notify_changed = _changed  # for release/monitoring: tell listeners (resource notifications)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, experiment_id: str) -> Experiment:
        return self._experiment(self._row(experiment_id))

    def _row(self, experiment_id: str) -> Any:
        row = self.store.experiment_row(experiment_id)
        if row is None and len(experiment_id) > MAX_ID_LENGTH:  # (not echoed whole: a review sent 1 MB)
            raise NotFound(
                f"No experiment with id {experiment_id[:40] + '...'!r}: that is {len(experiment_id):,} characters, and "
                f"an experiment id has at most {MAX_ID_LENGTH}. The status tool (or `meta-experiment status`) lists "
                "them."
            )
        if row is None:
            rows = self.store.experiment_rows()
            every = [r["id"] for r in rows]
            # a mistyped id: the closest ones first (the latest five missed an older one meant)
            # (0.9: ids share their shape, exp-YYYYMMDD-HHMMSS, so a looser match names unrelated ones;
            # a short imported id, with fewer letters to share, 0.8; letter case ignored)
            lowered = {i.lower(): i for i in every}
            cutoff = 0.9 if len(experiment_id) > 10 else 0.8
            typed = experiment_id.lower()
            close = [lowered[c] for c in difflib.get_close_matches(typed, list(lowered), n=3, cutoff=cutoff)]
            if not close and len(typed) >= 4:  # a part of an id (without its exp- prefix, a date), or a name
                close = [i for i in every if typed in i.lower()][-3:]
                close = close or [r["id"] for r in rows if (r["name"] or "").strip().lower() == typed.strip()][-3:]
            known = every[-5:]
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            hint += f" Known ids (latest): {', '.join(known)}." if known else " There are no experiments yet."
            raise NotFound(
                f"No experiment with id {experiment_id!r}.{hint} The status tool (or `meta-experiment status`) "
                "lists them."
            )
        return row

    def definition(self, experiment_id: str) -> Definition:
        row = self._row(experiment_id)
        parsed = self._specs.get(row["spec_json"])
        if parsed is None:
            spec = json.loads(row["spec_json"])
            primary = MetricSpec.from_stored(spec["primary_metric"])  # a definition of any version
            metrics = (primary, *(MetricSpec.from_stored(m) for m in spec["secondary_metrics"]))
            parsed = self._specs[row["spec_json"]] = (
                primary,
                metrics,
                int(spec["sample_size_required"]),
                int(spec.get("treatment_percent", 50)),
                float(spec.get("max_duration_days", 14.0)),  # the default of every version
                bool(spec.get("auto_rollback", True)),
            )
        primary, metrics, required, percent, days, auto_rollback = parsed
        return Definition(
            row["id"],
            row["status"],
            row["status_reason"],
            primary,
            metrics,
            required,
            percent,
            row["started_at"],
            days,
            auto_rollback,
        )

    def experiments(self, statuses: list[str] | None = None) -> list[Experiment]:
        return [self._experiment(r) for r in self.store.experiment_rows(statuses)]

    def _experiment(self, row: Any) -> Experiment:
        spec = json.loads(row["spec_json"])
        counts = self.store.arm_counts(row["id"])
        files = [
            FileChange(
                production=f["production"],
                variant=f["variant"],
                control_sha256=f["control_sha256"],
                treatment_sha256=f["treatment_sha256"],
                backup=f["backup"],
            )
            for f in self.store.file_rows(row["id"])
        ]
        # from_stored: checks added since a stored experiment was created do not refuse it
        return Experiment.from_stored(
            dict(
                id=row["id"],
                name=row["name"],
                hypothesis=row["hypothesis"],
                description=row["description"],
                change_type=row["change_type"],
                status=row["status"],
                status_reason=row["status_reason"],
                created_at=iso(row["created_at"]) or "",
                started_at=iso(row["started_at"]),
                ended_at=iso(row["ended_at"]),
                files=files,
                control=ArmCounts(**counts.get("control", {})),
                treatment=ArmCounts(**counts.get("treatment", {})),
                **spec,
            )
        )

    def trial(self, trial_id: int) -> Trial:
        row = self.store.trial_row(trial_id)
        if row is None:
            raise self._no_trial(trial_id)
        trial = self._trial(row, self.store.trial_values(trial_id))
        return trial.model_copy(update={"status": "voided"}) if self.store.voided(trial_id) else trial

    def trials(
        self, experiment_id: str, newest: int | None = None, *, skip: int = 0, limit: int | None = None
    ) -> list[Trial]:
        """The experiment's trials in assignment order, with their ids (what void_trial takes), values
        and status; a voided one is 'voided'. One snapshot. `newest`: only that many of the last
        ones; `skip` and `limit`: up to `limit` after the first `skip` (each read without reading the
        others)."""
        with self.store.reading():
            self.get(experiment_id)  # an unknown id is an error, not an empty list
            rows = self.store.trial_rows(experiment_id, newest, skip=skip, limit=limit)
            if not rows:
                return []
            first, last = rows[0]["id"], rows[-1]["id"]
            values = self.store.values_by_trial(experiment_id, first, last)
            voided = self.store.voided_ids(experiment_id, first, last)
        out = []
        for row in rows:
            trial = self._trial(row, values.get(row["id"], {}))
            out.append(trial.model_copy(update={"status": "voided"}) if row["id"] in voided else trial)
        return out

    @staticmethod
    def _no_trial(trial_id: int) -> NotFound:
        return NotFound(
            f"No trial with id {trial_id}. Trial ids come from assign; an experiment's trials and their ids are "
            "listed by the experiment://ID/trials resource (CLI: `meta-experiment trials ID`). To import a past "
            "measurement without a trial, call record with experiment_id and arm."
        )

    @staticmethod
    def _trial(row: Any, values: dict[str, float]) -> Trial:
        return Trial(
            trial_id=row["id"],
            experiment_id=row["experiment_id"],
            arm=row["arm"],
            unit=row["unit"],
            status=row["status"],
            source=row["source"],
            assigned_at=iso(row["assigned_at"]) or "",
            recorded_at=iso(row["recorded_at"]),
            success=None if row["success"] is None else bool(row["success"]),
            metrics=values,
        )

    def progress(
        self, experiment: Experiment | Definition, counts: dict[str, dict[str, int]] | None = None
    ) -> Progress:
        by_arm: dict[str, dict[str, int]]
        if isinstance(experiment, Experiment):
            by_arm = {arm: getattr(experiment, arm).model_dump() for arm in ARMS}
        else:
            by_arm = self.store.arm_counts(experiment.id) if counts is None else counts
        recorded = [by_arm.get(arm, {}).get("recorded", 0) for arm in ARMS]
        done, need = sum(recorded), experiment.sample_size_required
        if experiment.status in TERMINAL_STATUSES:  # it takes no more trials: none are needed
            return Progress(
                trials_recorded=done,
                sample_size_required=need,
                percent=round(min(100.0, 100.0 * done / need), 1),
                trials_needed=0,
            )
        arms = recorded  # the primary's values per arm: one per trial, unless a failed run left it out
        successes = [by_arm.get(arm, {}).get("successes", 0) for arm in ARMS]
        # only failed runs can lack the value, and values >= successes: once every arm has MIN_PER_ARM
        # successes the count cannot matter, and record's hot path skips the query
        if recorded != successes and min(successes) < MIN_PER_ARM:
            values = self.store.values_per_arm(experiment.id, experiment.primary_metric.name)
            arms = [values.get(arm, 0) for arm in ARMS]
        # No decision before each arm has MIN_PER_ARM results (policy.decide). Assignment keeps the
        # arms at the split, so an arm reaches it at about MIN_PER_ARM / its share trials in all. An arm
        # further behind its share than a block can leave it (abandoned trials, sticky units, imports)
        # is not made up for: it needs (MIN_PER_ARM - its count) / its share more.
        percent = experiment.treatment_percent
        shares = (1 - percent / 100, percent / 100)
        slack = block_lag(percent) + 1e-9
        floor = max(
            0,
            *(
                0
                if n >= MIN_PER_ARM
                else math.ceil((MIN_PER_ARM - n) / p - 1e-9)
                if p * done - n > slack
                else math.ceil(MIN_PER_ARM / p - 1e-9) - done
                for n, p in zip(arms, shares, strict=True)
            ),
        )
        more = max(0, need - done, floor)
        return Progress(
            trials_recorded=done,
            sample_size_required=need,
            percent=round(100.0 * done / (done + more), 1) if more else 100.0,
            trials_needed=more,
            per_arm_floor=(
                f"each arm needs {MIN_PER_ARM} "
                + (
                    "results"
                    if arms == recorded
                    else f"values of {experiment.primary_metric.name} (failed runs without one "
                    "count for the success rate only)"
                )
                + f" before a decision ({arms[0]} control, {arms[1]} treatment so far)"
                if floor > max(0, need - done)
                else None
            ),
        )

    # -- create ----------------------------------------------------------------------------------

    def create(self, **fields: Any) -> Experiment:
        """Validate, snapshot the files under test and start the experiment (status `running`).

        Fields left out (targets, sample size, duration, auto flags, split) come from the settings file.
        """
        spec, snapshots = self._prepare(dict(fields))
        now = self.clock()
        with self.store.transaction():
            busy = self._files_in_running_experiments()
            for production, variant, *_ in snapshots:
                for path in (production, variant):
                    if path in busy:
                        raise Conflict(
                            f"{path!r} is already under test in running experiment {busy[path]!r}. "
                            "Finish or roll back that experiment first: two experiments on one file "
                            "would confound each other."
                        )
            experiment_id = self._new_id(now)
            self.store.insert_experiment(spec.row(experiment_id, status="running", created_at=now, started_at=now))
            for production, variant, control, treatment in snapshots:
                self.store.insert_file(
                    experiment_id,
                    production,
                    variant,
                    self.store.put_blob(control),
                    self.store.put_blob(treatment),
                )
            same = [p for p, _, c, t in snapshots if c == t]
            self.store.add_event(
                experiment_id,
                "created",
                f"Created and started: {spec.hypothesis}",
                actor=self.actor,
                data={
                    "files": {p: v for p, v, *_ in snapshots},
                    "identical_files": same,
                    "targets": spec.targets.model_dump(),
                    "sample_size_required": spec.sample_size_required,
                    "treatment_percent": spec.treatment_percent,
                },
            )
        self._changed(experiment_id)
        return self.get(experiment_id)

    def rehearse(self, fn: Callable[[Lab], Any]) -> None:
        """Run `fn` (which stores only in the database) and undo all it stored: what it would refuse
        is refused, and nothing is kept. For a project without state, before its folder is made."""

        class Undo(Exception):
            pass

        quiet, self._quiet.on = getattr(self._quiet, "on", False), True
        try:
            with self.store.transaction():
                fn(self)
                raise Undo
        except Undo:
            pass
        finally:
            self._quiet.on = quiet  # (a rehearsal inside another stays quiet to its end)

    def check_create(self, **fields: Any) -> None:
        """What `create` refuses, refused without writing anything (before a project's first
        experiment makes its state folder: a refused one leaves none behind)."""
        self._prepare(dict(fields))

    def _prepare(self, fields: dict[str, Any]) -> tuple[ExperimentSpec, list[tuple[str, str, bytes, bytes]]]:
        """`create`'s fields validated and its files snapshotted (read only)."""
        defaults = self.settings().defaults
        targets_in = dict(fields.pop("targets", None) or {})
        for key in ("improvement_threshold", "max_regression", "confidence_threshold"):
            if fields.get(key) is not None:
                targets_in[key] = fields.pop(key)
            fields.pop(key, None)
        for key in Targets.model_fields:
            targets_in.setdefault(key, getattr(defaults, key))
        for key in ("sample_size_required", "max_duration_days", "auto_promote", "auto_rollback", "treatment_percent"):
            if fields.get(key) is None:
                fields[key] = getattr(defaults, key)
        try:
            spec = ExperimentSpec.model_validate({**fields, "targets": targets_in})
        except ValidationError as exc:
            raise InvalidInput(validation_message(exc, "experiment")) from exc
        if any(m.name == SUCCESS_METRIC for m in spec.metrics):
            # (an import keeps such a metric: experiments made before the name was reserved export it)
            raise InvalidInput(
                f"The metric name {SUCCESS_METRIC!r} is reserved: every experiment has that guardrail, computed "
                "from each trial's success flag (record's success). Record failures with success=false, or give "
                "your metric another name (e.g. tests_passed)."
            )
        for metric in spec.metrics:  # (an import keeps such a floor: monitoring ignores it)
            problem = floors.floor_problem(metric)
            if problem is not None:
                raise InvalidInput(problem)
        return spec, self._snapshot_files(spec.files)

    def start(self, experiment_id: str) -> Experiment:
        """Start a draft (an experiment imported with status `draft`): snapshot its files as they are
        now, as `create` does, and open it for trials. Its definition stays as imported."""
        experiment = self.get(experiment_id)
        if experiment.status != "draft":
            raise InvalidState(
                f"Experiment {experiment_id} is {experiment.status}; only a draft can be started "
                + ("(it already runs: assign trials to it)." if experiment.status == "running" else "(it has ended).")
            )
        snapshots = self._snapshot_files({f.production: f.variant for f in experiment.files})
        now = self.clock()
        with self.store.transaction():
            row = self.store.experiment_row(experiment_id)
            if row is None or row["status"] != "draft":  # another process started it
                raise InvalidState(f"Experiment {experiment_id} was started meanwhile; assign trials to it.")
            for production, _, control, treatment in snapshots:
                self.store.set_file_snapshot(
                    experiment_id, production, self.store.put_blob(control), self.store.put_blob(treatment)
                )
            self.store.update_experiment(experiment_id, status="running", started_at=now)
            self.store.add_event(
                experiment_id,
                "started",
                "Started: the files under test were snapshotted as they are now",
                actor=self.actor,
                data={"identical_files": [p for p, _, c, t in snapshots if c == t]},
            )
        self._changed(experiment_id)
        return self.get(experiment_id)

    def _snapshot_files(self, files: dict[str, str]) -> list[tuple[str, str, bytes, bytes]]:
        pairs = [
            (
                paths.confine(self.project_root, production_in, what="production file"),
                paths.confine(self.project_root, variant_in, what="variant file"),
            )
            for production_in, variant_in in files.items()
        ]
        check_file_roles(pairs)
        out = []
        for production, variant in pairs:
            control, treatment = (
                check_text(path, read_regular(self.project_root / path)) for path in (production, variant)
            )
            out.append((production, variant, control, treatment))
        check_arm_sizes([(production, control, treatment) for production, _, control, treatment in out])
        return out

    def _files_in_running_experiments(self) -> dict[str, str]:
        busy: dict[str, str] = {}
        for row in self.store.experiment_rows(["draft", "running"]):
            for f in self.store.file_rows(row["id"]):
                busy[f["production"]] = row["id"]
                busy[f["variant"]] = row["id"]
        return busy

    def _new_id(self, now: float) -> str:
        base = "exp-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        candidate, n = base, 1
        while self.store.experiment_exists(candidate):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    # -- assign ----------------------------------------------------------------------------------

    def _running(self, experiment: str | Definition, doing: str) -> Definition:
        if isinstance(experiment, str):
            experiment = self.definition(experiment)
        experiment_id = experiment.id
        if experiment.status != "running":
            reason = f" ({experiment.status_reason})" if experiment.status_reason else ""
            raise InvalidState(
                f"Experiment {experiment_id} is {experiment.status}{reason}; it cannot {doing}. "
                + (
                    "Create a new experiment to test another change."
                    if experiment.status in TERMINAL_STATUSES
                    else "Start it first (start_experiment), or discard it with rollback."
                )
            )
        return experiment

    def assign(self, experiment_id: str, unit: str | None = None) -> Assignment:
        """Open a trial and say which arm it runs in, with the text of every file for that arm."""
        if unit is not None:
            unit = unit.strip()  # " pr-1" and "pr-1" are one unit: one arm, counted once
            if not unit or len(unit) > UNIT_MAX_CHARS:
                raise InvalidInput(
                    f"unit must be a non-empty id of at most {UNIT_MAX_CHARS} characters (e.g. a session or PR id)."
                )
        now = self.clock()
        with self.store.transaction():
            experiment = self._running(experiment_id, "assign trials")
            if unit is not None:
                arm = sticky_arm(experiment_id, unit, experiment.treatment_percent)
            else:
                arm = block_arm(experiment_id, self.store.take_slot(experiment_id), experiment.treatment_percent)
            snapshots = []  # read before the trial is stored: a snapshot that is not text refuses the call whole
            for f in self.store.file_rows(experiment_id):
                digest = f["control_sha256"] if arm == "control" else f["treatment_sha256"]
                path = f["production"] if arm == "control" else f["variant"]
                content = self.store.blob(digest)
                assert content is not None, "snapshot blobs are written with their experiment"
                try:
                    text = content.decode()
                except UnicodeDecodeError:
                    raise InvalidState(
                        f"The snapshot of {path} in {experiment_id} is not UTF-8 text (imported by an older "
                        "version, which did not check), so no run can be handed it. Roll the experiment back and "
                        "create it again from the files."
                    ) from None
                snapshots.append((f["production"], path, digest, text))
            trial_id = self.store.insert_trial(experiment_id, arm, unit=unit, source="assign", assigned_at=now)
        files, warnings = [], []
        for production, path, digest, text in snapshots:
            files.append(AssignedFile(production=production, path=path, sha256=digest, content=text))
            on_disk = self.project_root / path
            what = "has changed on disk since the experiment started"
            try:
                current: str | None = hashlib.sha256(read_regular(on_disk)).hexdigest()
            except IsADirectoryError:
                current, what = None, "is now a folder, not a file"
            except SpecialFile:
                current, what = None, "is now a special file (a FIFO, socket or device), not a file"
            except OSError:
                current, what = None, "is missing"
            if current != digest and not (arm == "control" and self._dispatching(on_disk, experiment_id)):
                warnings.append(
                    f"{path} {what}; use the content returned here (the snapshot under test), not the file."
                )
        if experiment.started_at is not None and now - experiment.started_at >= experiment.max_duration_days * 86400:
            warnings.append(
                f"{experiment_id} is past its {experiment.max_duration_days:g}-day limit: the next auto run expires it "
                "(this trial still counts if recorded before then). Run auto, or roll it back, to end it now."
            )
        self._changed(experiment_id, "assigned")
        return Assignment(
            trial_id=trial_id,
            experiment_id=experiment_id,
            arm=arm,
            unit=unit,
            assigned_at=iso(now) or "",
            files=files,
            next_step=(
                f"Run the task with the {arm} text of each file (below, and in files[].content), then call "
                f"record with trial_id {trial_id} and the measured {_to_record(experiment)}, or success false if "
                "the run failed."
            ),
            warnings=warnings,
        )

    @staticmethod
    def _dispatching(path: Path, experiment_id: str) -> bool:
        """Whether `path` holds this experiment's dispatcher (then production is untouched: its
        original is the control snapshot, and it comes back when the experiment ends)."""
        try:
            return dispatcher_experiment(read_regular(path).decode("utf-8", "replace")) == experiment_id
        except OSError:
            return False

    # -- record ----------------------------------------------------------------------------------

    def record(self, trial_id: int, metrics: Mapping[str, Any], success: bool = True) -> RecordResult:
        """Store a trial's metric values. Recording the same values twice is a harmless retry;
        different values for an already recorded trial are refused."""
        success = flag(success)
        now = self.clock()
        with self.store.transaction():
            row, experiment = self._trial_row(trial_id)
            if row["status"] == "recorded":
                return self._retry(experiment, self.trial(trial_id), metrics, success)
            if row["status"] == "abandoned":
                raise self._not_recordable(trial_id, experiment)
            self._running(experiment, "record results")
            clean = clean_metrics(experiment, metrics, elapsed=now - row["assigned_at"], success=bool(success))
            self.store.record_trial(
                trial_id,
                experiment.id,
                row["arm"],
                clean,
                bool(success),
                now,
                derived_values(experiment.metrics, clean),
            )
            counts = self.store.arm_counts(experiment.id)
            progress = self.progress(experiment, counts)
            raised = monitoring.on_trial(self, experiment.id, experiment.metrics, counts)  # commits with the trial
            pending = monitoring.rollback_pending(self, experiment, raised)
        self._changed(experiment.id, "recorded")
        alerts = monitoring.after_trial(self, experiment.id, raised, progress, pending=pending)
        ended = self._ended_by(experiment, alerts)
        if ended is not None:  # an alert stopped it (auto_rollback): it needs no more trials
            progress = self.progress(ended)
        return RecordResult(
            trial_id=trial_id,
            experiment_id=experiment.id,
            arm=row["arm"],
            metrics=clean,
            success=bool(success),
            duplicate=False,
            alerts=alerts,
            missing_guardrails=missing_guardrails(experiment, clean, bool(success)),
            ended=None if ended is None else ended.status,
            **progress.model_dump(),
        )

    def _ended_by(self, experiment: Definition, alerts: list[str]) -> Definition | None:
        """The experiment as it is now, when the alerts a trial raised ended it (an auto-rollback)."""
        if not alerts:
            return None
        now = self.definition(experiment.id)
        return None if now.status == "running" else now

    def _trial_row(self, trial_id: int) -> tuple[Any, Definition]:
        """The trial's row and its experiment's definition (inside the caller's transaction)."""
        row = self.store.trial_row(trial_id)
        if row is None:
            raise self._no_trial(trial_id)
        return row, self.definition(row["experiment_id"])

    def _not_recordable(self, trial_id: int, experiment: Definition, *, voiding: bool = False) -> InvalidState:
        """Why an abandoned or voided trial takes no result (`voiding`: cannot be voided), and what
        to do instead."""
        voided = self.store.voided(trial_id)
        next_step = (
            "Assign a new trial for a new run."
            if experiment.status == "running"
            else f"Experiment {experiment.id} is {experiment.status}: it takes no more results."
        )
        if voided is not None:
            replaced = f"; trial {voided['replaced_by']} holds the corrected values" if voided["replaced_by"] else ""
            if voiding:
                next_step = (
                    f"To change the corrected values, void trial {voided['replaced_by']}."
                    if voided["replaced_by"]
                    else "It already does not count."
                )
            return InvalidState(f"Trial {trial_id} was voided ({voided['reason']}){replaced}. {next_step}")
        return InvalidState(
            f"Trial {trial_id} was abandoned (never recorded before the experiment moved on); its result cannot "
            f"be added now. {next_step}"
        )

    # -- void ------------------------------------------------------------------------------------

    def void_trial(
        self,
        trial_id: int,
        reason: str,
        metrics: Mapping[str, Any] | None = None,
        success: bool | None = None,
    ) -> VoidResult:
        """Withdraw a recorded result of a running experiment (a typo, a unit mix-up, a broken run):
        its values stop counting, stay stored for the record, and the event log keeps them with the
        reason. With `metrics`, the corrected values of the same run are recorded in its place: a
        trial in the same arm and unit (the run used that arm's files), which is not a new
        assignment; metrics left out keep the voided trial's values. The statistics are rebuilt
        from the recorded trials left."""
        success = None if success is None else flag(success)
        reason = " ".join(str(reason).split())
        if not reason:
            raise InvalidInput("Give a reason for voiding the trial (e.g. 'typo: 125 s recorded as 1e15').")
        if success is True and metrics is None:
            raise InvalidInput(
                "success describes the corrected run: give its values in metrics too (the voided trial's "
                "values if only the success flag was wrong). Without metrics the run is dropped."
            )
        if success is False and metrics is None:
            metrics = {}  # the run failed: its guardrail values stand, its primary does not (below)
        # the regression check below needs the statistics engine: imported now, not while holding the
        # write lock that every other session's record waits for (a first void held it ~1 s)
        analysis.load_engine()
        # the statistics without this trial, read before the write lock (every trial is read again:
        # 1.7 s at 105,000 trials, which every other session's record would wait out); written under
        # the lock if no recorded trial changed meanwhile, else computed again there
        precomputed = None
        first = self.store.trial_row(trial_id)
        if first is not None and first["status"] == "recorded":
            metrics_of = self.definition(first["experiment_id"]).metrics
            precomputed = self.store.refold_without(
                first["experiment_id"], trial_id, lambda values: derived_values(metrics_of, values)
            )
        now = self.clock()
        with self.store.transaction():
            row, experiment = self._trial_row(trial_id)
            voided = self.store.voided(trial_id)
            if voided is not None or row["status"] != "recorded":
                if voided is None and row["status"] == "assigned":
                    raise InvalidState(f"Trial {trial_id} has no result yet; there is nothing to void. Record it.")
                raise self._not_recordable(trial_id, experiment, voiding=True)
            self._running(experiment, "have its results changed (an ended experiment's data is its record)")
            old = self.store.trial_values(trial_id)
            clean = None
            old_success = bool(row["success"])
            new_success = old_success if success is None else bool(success)
            if metrics is not None:  # the corrected run: metrics left out keep the values it had ...
                names = {m.name for m in experiment.metrics}
                if not new_success:  # ... but a run that failed keeps no primary: its time to the
                    names.discard(experiment.primary_metric.name)  # failure is no completion time
                kept = {k: v for k, v in old.items() if k in names and k not in metrics}
                clean = clean_metrics(experiment, {**kept, **metrics}, elapsed=None, success=new_success)

            def derive(values: dict[str, float]) -> dict[str, float]:
                return derived_values(experiment.metrics, values)

            self.store.void_trial(trial_id, now, reason, derive, precomputed)
            replacement = None
            if clean is not None:
                replacement = self.store.insert_trial(
                    experiment.id,
                    row["arm"],
                    unit=row["unit"],
                    source=row["source"],
                    assigned_at=row["assigned_at"],
                    new_assignment=False,
                )
                self.store.record_trial(replacement, experiment.id, row["arm"], clean, new_success, now, derive(clean))
                self.store.set_replacement(trial_id, replacement)
            message = f"Trial {trial_id} ({row['arm']}) voided: {reason}" + (
                f"; corrected values recorded as trial {replacement}" + (" (a failed run)" if not new_success else "")
                if replacement is not None
                else ""
            )
            facts: dict[str, Any] = {  # what the event log keeps and the result says
                "trial_id": trial_id,
                "arm": row["arm"],
                "reason": reason,
                "voided_metrics": old,
                "voided_success": old_success,
                "replacement_trial_id": replacement,
                "replacement_metrics": clean,
            }
            self.event(experiment.id, "trial_voided", message, unit=row["unit"], **facts)
            counts = self.store.arm_counts(experiment.id)
            progress = self.progress(experiment, counts)
            # every alert again, the regression too: the withdrawn values may have raised one (an
            # analysis that raises must not undo the void that may remove what set it off)
            raised, failed = monitoring.guarded_check(
                self, experiment.id, metrics=experiment.metrics, stored="the void is stored"
            )
        self._changed(experiment.id)
        alerts = monitoring.act_on(self, experiment.id, raised) + failed  # (the regression was just checked)
        ended = self._ended_by(experiment, alerts)
        if ended is not None:
            progress = self.progress(ended)
        return VoidResult(
            **facts,
            experiment_id=experiment.id,
            replacement_success=new_success if replacement is not None else None,
            alerts=alerts,
            ended=None if ended is None else ended.status,
            **progress.model_dump(),
        )

    def _retry(self, experiment: Definition, trial: Trial, metrics: Mapping[str, Any], success: bool) -> RecordResult:
        clean = clean_metrics(experiment, metrics, elapsed=0.0, success=bool(success))
        given = set(metrics)
        if experiment.primary_metric.name not in given:
            clean.pop(experiment.primary_metric.name, None)
        differs = {k: (trial.metrics.get(k), v) for k, v in clean.items() if trial.metrics.get(k) != v}
        extra = sorted(set(trial.metrics) - set(clean) - {experiment.primary_metric.name})
        if differs or extra or trial.success != bool(success):
            detail = ", ".join(
                f"{k}: {'not recorded' if old is None else f'recorded {old!r}'}, now {new!r}"
                for k, (old, new) in differs.items()
            )
            if extra:
                detail += (", " if detail else "") + f"recorded metrics missing now: {extra}"
            if trial.success != bool(success):
                detail += (", " if detail else "") + f"success: recorded {trial.success}, now {bool(success)}"
            if experiment.status != "running":  # void_trial refuses too: an ended experiment's data is its record
                raise InvalidState(
                    f"Trial {trial.trial_id} was already recorded with different values ({detail}), and "
                    f"{experiment.id} has ended ({experiment.status}): its recorded results are its record and "
                    "cannot be changed."
                )
            raise Conflict(
                f"Trial {trial.trial_id} was already recorded with different values ({detail}). "
                "A trial is recorded once. To correct it, void it with the right values: void_trial with "
                f"trial_id={trial.trial_id}, a reason and metrics (CLI: meta-experiment void {trial.trial_id} "
                "--reason ... --metric NAME=VALUE); for a new run, assign a new trial."
            )
        return RecordResult(
            trial_id=trial.trial_id,
            experiment_id=experiment.id,
            arm=trial.arm,
            metrics=trial.metrics,
            success=bool(trial.success),
            duplicate=True,
            # the answer the retry stands in for (its first may have been lost) names them too
            missing_guardrails=missing_guardrails(experiment, trial.metrics, bool(trial.success)),
            ended=None if experiment.status == "running" else experiment.status,
            **self.progress(experiment).model_dump(),
        )

    def record_measurement(
        self,
        experiment_id: str,
        arm: str,
        metrics: Mapping[str, Any],
        success: bool = True,
        at: float | None = None,
    ) -> RecordResult:
        """Add a past measurement without a prior assign (importing data collected elsewhere)."""
        success = flag(success)
        if arm not in ARMS:
            raise InvalidInput(f"arm must be 'control' or 'treatment', not {arm!r}.")
        now = self.clock() if at is None else at
        with self.store.transaction():
            experiment = self._running(experiment_id, "take measurements")
            clean = clean_metrics(experiment, metrics, elapsed=None, success=bool(success))
            trial_id = self.store.insert_trial(experiment_id, arm, unit=None, source="import", assigned_at=now)
            self.store.record_trial(
                trial_id, experiment_id, arm, clean, bool(success), now, derived_values(experiment.metrics, clean)
            )
            counts = self.store.arm_counts(experiment_id)
            progress = self.progress(experiment, counts)
            raised = monitoring.on_trial(self, experiment_id, experiment.metrics, counts)
            pending = monitoring.rollback_pending(self, experiment, raised)
        self._changed(experiment_id, "recorded")
        alerts = monitoring.after_trial(self, experiment_id, raised, progress, pending=pending)
        ended = self._ended_by(experiment, alerts)
        if ended is not None:  # an alert stopped it (auto_rollback), as record says
            progress = self.progress(ended)
        return RecordResult(
            trial_id=trial_id,
            experiment_id=experiment_id,
            arm=arm,  # type: ignore[arg-type]
            metrics=clean,
            success=bool(success),
            duplicate=False,
            alerts=alerts,
            missing_guardrails=missing_guardrails(experiment, clean, bool(success)),
            **progress.model_dump(),
            ended=None if ended is None else ended.status,
        )

    # -- analysis ----------------------------------------------------------------------------------

    def analyze(self, experiment_id: str, *, rank_tests: bool = False) -> Analysis:
        """The statistics engine's analysis and the policy's decision (see analysis.py)."""
        return analysis.analyze(self, experiment_id, rank_tests=rank_tests)

    def status(self, active_only: bool = False) -> StatusReport:
        """Every experiment with its progress and what the policy says now (`active_only`: the
        ended ones counted, not analysed; see analysis.status)."""
        return analysis.status(self, active_only)

    def chart(self, experiment_id: str) -> bytes | None:
        """PNG of the improvement over the trials and both arms (None without enough data)."""
        return analysis.chart(self, experiment_id)

    # -- events ----------------------------------------------------------------------------------

    def event(self, experiment_id: str | None, kind: str, message: str, **data: Any) -> None:
        self.store.add_event(experiment_id, kind, message, actor=self.actor, data=data)

    def events(self, experiment_id: str | None = None, kinds: list[str] | None = None) -> list[Event]:
        return [
            Event(
                id=r["id"],
                experiment_id=r["experiment_id"],
                at=iso(r["at"]) or "",
                actor=r["actor"],
                kind=r["kind"],
                message=r["message"],
                data=json.loads(r["data_json"]),
            )
            for r in self.store.event_rows(experiment_id, kinds=kinds)
        ]
