"""Rows of the deploy journal (tables from migration 0002_deploy_journal): one operation per
promote/rollback with the old and new sha256 of each file, and its phase.

    applying  written and committed before any production file is touched
    applied   files hold the new content and the experiment has its new status (one transaction)
    done      git handled (its outcome stored); nothing left to do
    undone    a file was edited by someone meanwhile: the operation's own writes were put back
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .deploy import FileStep
from .errors import InvalidState
from .outcomes import GitOutcome
from .store import Store

OPEN_PHASES = ("applying", "applied")


@dataclass(frozen=True)
class Operation:
    id: int
    experiment_id: str
    operation: str
    phase: str
    from_status: str
    to_status: str
    actor: str
    reason: str | None
    commit_message: str
    data: dict[str, Any]
    git: GitOutcome | None
    created_at: float
    finished_at: float | None
    steps: tuple[FileStep, ...]

    @property
    def paths(self) -> list[str]:
        return [s.production for s in self.steps]


def begin(
    store: Store,
    *,
    experiment_id: str,
    operation: str,
    from_status: str,
    to_status: str,
    actor: str,
    reason: str | None,
    commit_message: str,
    data: dict[str, Any],
    steps: list[FileStep],
) -> int:
    """Write the operation and its files (call inside the transaction that checked the status).
    A second unfinished operation on the same experiment is refused: that is the claim that makes
    two concurrent promotes, or two auto runs, act once."""
    with store.transaction() as db:
        if db.execute(
            "SELECT 1 FROM deploy_operations WHERE experiment_id = ? AND phase IN ('applying', 'applied')",
            (experiment_id,),
        ).fetchone():
            raise InvalidState(
                f"Another promote or rollback of {experiment_id} is unfinished. It is finished or undone by the next "
                "promote or rollback, or at the next start of the server or CLI; then check status."
            )
        cur = db.execute(
            "INSERT INTO deploy_operations (experiment_id, operation, phase, from_status, to_status, actor, reason,"
            " commit_message, data_json, created_at) VALUES (?, ?, 'applying', ?, ?, ?, ?, ?, ?, ?)",
            (
                experiment_id,
                operation,
                from_status,
                to_status,
                actor,
                reason,
                commit_message,
                json.dumps(data, sort_keys=True, default=str),
                time.time(),
            ),
        )
        assert cur.lastrowid is not None
        db.executemany(
            "INSERT INTO deploy_files (operation_id, production, old_sha256, new_sha256, backup)"
            " VALUES (?, ?, ?, ?, ?)",
            [(cur.lastrowid, s.production, s.old_sha256, s.new_sha256, s.backup) for s in steps],
        )
        return int(cur.lastrowid)


def exists(store: Store, operation_id: int) -> bool:
    with store.reading() as db:
        return db.execute("SELECT 1 FROM deploy_operations WHERE id = ?", (operation_id,)).fetchone() is not None


def load(store: Store, operation_id: int) -> Operation:
    with store.reading() as db:
        row = db.execute("SELECT * FROM deploy_operations WHERE id = ?", (operation_id,)).fetchone()
        files = db.execute(
            "SELECT production, old_sha256, new_sha256, backup FROM deploy_files WHERE operation_id = ?"
            " ORDER BY production",
            (operation_id,),
        ).fetchall()
    git = json.loads(row["git_json"]) if row["git_json"] else None
    return Operation(
        id=row["id"],
        experiment_id=row["experiment_id"],
        operation=row["operation"],
        phase=row["phase"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        actor=row["actor"],
        reason=row["reason"],
        commit_message=row["commit_message"],
        data=json.loads(row["data_json"]),
        git=None if git is None else GitOutcome.model_validate(git),
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        steps=tuple(FileStep(*f) for f in files),
    )


def unfinished_ids(store: Store) -> list[int]:
    """Ids of operations not yet done or undone (cheap: checked at every start)."""
    with store.reading() as db:
        rows = db.execute("SELECT id FROM deploy_operations WHERE phase IN ('applying', 'applied') ORDER BY id")
        return [r[0] for r in rows]


def latest(store: Store, experiment_id: str, operation: str | None = None) -> Operation | None:
    """The experiment's latest journaled operation (of that kind: promote or rollback)."""
    with store.reading() as db:
        row = db.execute(
            "SELECT id FROM deploy_operations WHERE experiment_id = ? AND operation = COALESCE(?, operation)"
            " ORDER BY id DESC LIMIT 1",
            (experiment_id, operation),
        ).fetchone()
    return None if row is None else load(store, row[0])


def set_phase(store: Store, operation_id: int, phase: str, *, git: GitOutcome | None = None) -> None:
    finished = time.time() if phase in ("done", "undone") else None
    with store.transaction() as db:
        db.execute(
            "UPDATE deploy_operations SET phase = ?, finished_at = COALESCE(?, finished_at),"
            " git_json = COALESCE(?, git_json) WHERE id = ?",
            (phase, finished, None if git is None else git.model_dump_json(), operation_id),
        )
