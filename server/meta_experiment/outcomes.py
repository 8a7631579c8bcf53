"""Pydantic results of the release side: promote, rollback, expire, recovery, auto mode, alerts and
the release part of the status report. No I/O here; snake_case fields throughout."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .models import ExperimentStatus


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


GitStatus = Literal[
    "committed", "nothing_to_commit", "not_a_repository", "git_not_installed", "failed", "not_needed", "pending"
]


class GitOutcome(Strict):
    """What happened in git. The files are consistent whatever this says."""

    status: GitStatus
    commit: Annotated[str | None, Field(description="The new commit's sha when status is committed.")] = None
    detail: Annotated[str, Field(description="One line for people: 'committed 1a2b3c4', 'commit failed: ...'.")]
    not_as_written: Annotated[
        list[str],
        Field(
            description="Files the commit holds in a version other than the one written, which no commit hook made: "
            "changed on disk between the write and the commit (an editor saving). A rollback takes that version "
            "for a person's edit."
        ),
    ] = []
    # a refused commit's whole output (its hooks' words; `detail` keeps the first lines): not shown, not
    # stored, read at once by operations._rewritten (gitcommit.says_it_rewrote)
    _hook_output: str = PrivateAttr(default="")


class FileOutcome(Strict):
    production: Annotated[str, Field(description="Production path, relative to the project root.")]
    before_sha256: str
    after_sha256: str
    backup: Annotated[
        str | None, Field(description="Backup of the content that was replaced, relative to the state folder.")
    ] = None


Operation = Literal["promote", "rollback", "expire"]
DeployOutcome = Literal["promoted", "rolled_back", "stopped", "expired", "dry_run", "declined"]


class DeployResult(Strict):
    """The result of promote, rollback or expire (or of their dry run)."""

    experiment_id: str
    operation: Operation
    outcome: Annotated[
        DeployOutcome,
        Field(
            description="promoted / rolled_back (production restored) / stopped (a running experiment ended; "
            "production was never touched) / expired / dry_run (nothing changed) / declined (the person said no)."
        ),
    ]
    status: Annotated[ExperimentStatus, Field(description="The experiment's status after the call.")]
    reason: str | None = None
    forced: bool = False
    against_policy: Annotated[
        str | None,
        Field(description="Promote: the decision policy's verdict when it does not recommend promoting now."),
    ] = None
    would_refuse: Annotated[
        str | None,
        Field(description="Dry run only: why the call itself would be refused; the diff shows what it would do."),
    ] = None
    actor: str
    files: list[FileOutcome] = []
    diff: Annotated[str, Field(description="Unified diff of production: before -> after.")] = ""
    git: GitOutcome | None = None
    warnings: list[str] = []
    summary: str


class RecoveryNote(Strict):
    """An interrupted promote/rollback found at start-up, and what was done about it."""

    operation_id: int
    experiment_id: str
    operation: Literal["promote", "rollback"]
    outcome: Annotated[
        Literal["finished", "undone", "busy", "failed"],
        Field(
            description="finished: rolled forward to the new content; undone: a file was edited meanwhile, so "
            "the operation's own files were put back and nothing else touched; busy: still running elsewhere; "
            "failed: could not be finished now (see message), retried at the next start."
        ),
    ]
    message: str
    git: GitOutcome | None = None


AlertKind = Literal["error_rate", "satisfaction", "performance_regression"]


class Alert(Strict):
    experiment_id: str
    kind: AlertKind
    message: str
    raised_at: str
    cleared_at: str | None = None
    data: dict[str, object] = {}

    @property
    def active(self) -> bool:
        return self.cleared_at is None


class CriterionNote(Strict):
    name: str
    met: bool | None
    detail: str


AutoAction = Literal[
    "promoted",
    "rolled_back",
    "expired",
    "continue",
    "recommend_promote",
    "recommend_rollback",
    "would_promote",
    "would_rollback",
    "would_expire",
    "skipped",
]


class AutoItem(Strict):
    experiment_id: str
    name: str
    decision: Annotated[str, Field(description="The policy's action: promote, rollback, continue or expire.")]
    action: Annotated[AutoAction, Field(description="What auto mode did (or, in a dry run, would do).")]
    rationale: str
    driven_by: str = ""
    target_out_of_reach: Annotated[
        bool, Field(description="More data cannot promote it: the always-valid interval lies below the target.")
    ] = False
    criteria: list[CriterionNote] = []
    alerts: list[str] = []
    result: DeployResult | None = None


class AutoReport(Strict):
    dry_run: bool
    items: list[AutoItem]
    recovered: list[RecoveryNote] = []


class ReleaseInfo(Strict):
    """Release facts about one experiment, for the status report."""

    experiment_id: str
    deployed_at: str | None = None
    days_in_production: float | None = None
    ended_by: Annotated[str | None, Field(description="Who ended it: auto or manual.")] = None
    time_saved_hours_per_month: float | None = None
    git: str | None = None
    changed_since: Annotated[
        list[str],
        Field(
            description="Promoted files whose content is no longer what the promotion wrote (edited by hand, "
            "by a later experiment, or deleted)."
        ),
    ] = []


class ReleaseStatus(Strict):
    """The release half of the status report: alerts, interrupted operations, time saved."""

    experiments: list[ReleaseInfo] = []
    alerts: list[Alert] = []
    operations: Annotated[
        list[str], Field(description="Recoveries and unfinished promote/rollback operations, newest first.")
    ] = []
    success_rate_pct: float | None = None
    time_saved_hours_per_month: float | None = None
    time_saved_basis: str = ""
    settings_problem: Annotated[
        str | None,
        Field(
            description="Why the settings cannot be read (settings.toml, pyproject.toml): until it is fixed, "
            "monitoring uses its default thresholds and creating an experiment is refused."
        ),
    ] = None
