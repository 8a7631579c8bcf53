"""The release tools (promote, rollback, auto) and the alerts resource, registered by
`mcp_server.build_server`. Like the rest of the MCP surface, each tool is one call into `release`
or `auto` plus a short text.

Confirmation. promote and rollback overwrite production files, so they are annotated destructive
and ask the person first. A resolver parameter (`Annotated[ElicitationResult[Confirmation],
Resolve(...)]`) does the asking: it works in both protocol modes (a mid-call `elicitation/create`
in the legacy initialize mode, an `InputRequiredResult` round in 2026-07-28 mode). The resolver
first runs the operation as a dry run, so the person is only asked about something that would
succeed, and it asks only when the client declared the elicitation capability and the call does
not carry `confirm: true`: the agent passes that once the person agreed in the conversation (a
client without elicitation must; Claude Code in print mode declares it yet cancels every question).
A dry run never asks; a declined or dismissed question changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from . import auto, monitoring, release, report
from .errors import ExperimentError
from .mcp_common import TEXT_DIFF_LINES, ExperimentId, read_static, run_lab, state_of, tool_annotations, tool_result
from .outcomes import Alert, AutoReport, DeployResult

if TYPE_CHECKING:
    from .lifecycle import Lab


class Confirmation(BaseModel):
    """The form shown to the person."""

    confirm: Annotated[bool, Field(description="Yes: change the production files now.")] = False


class NotAsked(BaseModel):
    """What the resolver returns when it does not ask: a dry run, no elicitation capability, or a
    call that would fail anyway (the tool body then reports that failure)."""

    why: str


def _can_elicit(ctx: Context) -> bool:
    """Form elicitation declared (a bare `elicitation: {}` counts as form, as in the SDK)."""
    caps = ctx.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _lab(ctx: Context) -> Lab:
    return state_of(ctx).lab


QUESTION_DIFF_LINES = 40  # the confirmation shows the start of the diff


def _question(preview: DeployResult, what: str) -> str:
    lines = [f"{what} {preview.experiment_id}?"]
    written = [f for f in preview.files if f.before_sha256 != f.after_sha256]
    in_place = [f for f in preview.files if f.before_sha256 == f.after_sha256]
    if written:
        diff = preview.diff.splitlines()
        added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
        lines.append(
            f"These production files will be written (+{added} -{removed} lines in all); each is "
            "backed up first and the change is committed to git:"
        )
        lines += [f"- {f.production}" for f in written]
    if in_place:
        lines.append("These already hold the new content (copied by hand?): not written, only recorded and committed:")
        lines += [f"- {f.production}" for f in in_place]
    if not preview.files:
        lines.append("No file changes: production was never touched; the experiment stops.")
    if preview.forced and preview.against_policy:
        lines.append(f"Forced against the decision policy, which says: {preview.against_policy}")
    if preview.reason:
        lines.append(f"Reason: {preview.reason}")
    if preview.diff:
        diff = preview.diff.rstrip("\n").splitlines()
        shown = diff[:QUESTION_DIFF_LINES]
        hidden = len(diff) - len(shown)
        more = f"\n... {hidden} more diff lines (a dry run, dry_run=true, returns the whole diff)" if hidden else ""
        lines.append("Diff of production:\n" + "\n".join(shown) + more)
    return "\n".join(lines)


def ask_promote(
    ctx: Context, experiment_id: str, reason: str | None, force: bool, dry_run: bool, confirm: bool = False
) -> Elicit[Confirmation] | NotAsked:
    if dry_run:
        return NotAsked(why="dry run")
    if confirm:  # the person agreed in the conversation: not asked twice (nor where no question shows)
        return NotAsked(why="confirmed")
    if not _can_elicit(ctx):
        return NotAsked(why="client cannot elicit")
    try:
        preview = release.promote(_lab(ctx), experiment_id, reason=reason, force=force, dry_run=True)
    except ExperimentError:
        return NotAsked(why="the call would fail")
    if preview.would_refuse is not None:
        return NotAsked(why="the call would fail")
    return Elicit(_question(preview, "Promote to production:"), Confirmation)


def ask_rollback(
    ctx: Context, experiment_id: str, reason: str | None, dry_run: bool, confirm: bool = False
) -> Elicit[Confirmation] | NotAsked:
    if dry_run:
        return NotAsked(why="dry run")
    if confirm:  # the person agreed in the conversation: not asked twice (nor where no question shows)
        return NotAsked(why="confirmed")
    if not _can_elicit(ctx):
        return NotAsked(why="client cannot elicit")
    try:
        release.rollback_reason(reason, dry_run)  # the preview below is a dry run, which needs no reason
        preview = release.rollback(_lab(ctx), experiment_id, reason=reason, dry_run=True)
    except ExperimentError:
        return NotAsked(why="the call would fail")
    return Elicit(_question(preview, "Roll back"), Confirmation)


def _approval(outcome: Any, confirm: bool) -> bool | None:
    """True: go ahead. False: the person said no. None: nobody answered and confirm is false.

    confirm=true (the person agreed in the conversation) is not asked again (ask_promote,
    ask_rollback): Claude Code in print mode (`claude -p`, the Agent SDK) declares elicitation yet
    cancels every question it cannot show. Otherwise the question is asked, and a person who
    declines or dismisses it (cancel, as Esc does) has not agreed: nothing changes."""
    if isinstance(outcome, AcceptedElicitation):
        if isinstance(outcome.data, Confirmation):
            return outcome.data.confirm
        return True if confirm else None
    return False  # declined or cancelled


Confirm = Annotated[
    bool,
    Field(
        description="True only once the person has agreed (show them the dry run first): the server then does "
        "not ask them again. Without it the server asks the person, where the client can."
    ),
]
DryRun = Annotated[bool, Field(description="Only say what the call would do, with the unified diff; change nothing.")]

NEEDS_CONFIRMATION = (
    "{what} {does}, so it needs the person's confirmation, and this client cannot ask "
    "them (no elicitation support). Show the person the dry run (dry_run=true), ask them, and call again with "
    "confirm=true only if they agree."
)


def deploy_text(result: DeployResult) -> str:
    """The result as text, its diff cut at TEXT_DIFF_LINES (a 5,000-line diff made a 108 KB
    answer), saying where the whole diff is: the structured `diff`, the CLI, or git."""
    diff = result.diff.rstrip("\n").splitlines()
    if len(diff) <= TEXT_DIFF_LINES:
        return report.render_deploy(result)
    shown = result.model_copy(update={"diff": "\n".join(diff[:TEXT_DIFF_LINES]) + "\n"})
    where = ["the structured content's `diff` field"]
    if result.git is not None and result.git.commit:
        where.append(f"git show {result.git.commit[:12]}")
    elif result.outcome == "dry_run":
        where.append(f"`meta-experiment {result.operation} {result.experiment_id} --dry-run` prints it all")
    hidden = len(diff) - TEXT_DIFF_LINES
    return report.render_deploy(shown) + f"... {hidden} more diff lines (the full diff: {'; '.join(where)})\n"


def register_release_tools(server: MCPServer, current_lab: Callable[[], Lab]) -> None:

    async def _guarded(ctx: Context, outcome: Any, confirm: bool, dry_run: bool, what: str, call: Any) -> Any:
        approval = None if dry_run else _approval(outcome, confirm)
        if approval is True:
            result = await run_lab(ctx, lambda lab: call(lab, False))
            return tool_result(result, deploy_text(result))
        preview: DeployResult = await run_lab(ctx, lambda lab: call(lab, True))  # domain errors first
        if dry_run:
            return tool_result(preview, deploy_text(preview))
        if preview.would_refuse is not None:
            raise ToolError(preview.would_refuse)
        if approval is False:
            declined = preview.model_copy(
                update={
                    "outcome": "declined",
                    "summary": preview.summary.replace(
                        "Dry run, nothing changed:", "Declined by the person, nothing changed:"
                    ),
                }
            )
            return tool_result(declined, declined.summary)
        does = "overwrites production files" if preview.diff else "ends the experiment (production is untouched)"
        raise ToolError(NEEDS_CONFIRMATION.format(what=what, does=does))

    @server.tool(annotations=tool_annotations("Promote to production", destructive=True))
    async def promote(
        experiment_id: ExperimentId,
        ctx: Context,
        confirmation: Annotated[ElicitationResult[Confirmation], Resolve(ask_promote)],
        reason: Annotated[
            str | None, Field(max_length=2000, description="Why; required with force, recorded in the event log.")
        ] = None,
        force: Annotated[
            bool, Field(description="Promote whatever the decision policy's criteria say (needs a reason).")
        ] = False,
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> Annotated[CallToolResult, DeployResult]:
        """Write the tested variant over each production file: verifies the experiment may be
        promoted, that production still holds the content it had when the experiment started
        (else a conflict with the diff, nothing overwritten; a file that already holds the variant is
        left as it is), backs it up in the state folder, replaces it atomically and commits exactly
        those paths to git. Asks the person to confirm."""
        return await _guarded(
            ctx,
            confirmation,
            confirm,
            dry_run,
            "Promote",
            lambda lab, dry: release.promote(lab, experiment_id, reason=reason, force=force, dry_run=dry),
        )

    @server.tool(annotations=tool_annotations("Roll back", destructive=True))
    async def rollback(
        experiment_id: ExperimentId,
        ctx: Context,
        confirmation: Annotated[ElicitationResult[Confirmation], Resolve(ask_rollback)],
        reason: Annotated[
            str | None,
            Field(
                max_length=2000, description="Why; required unless dry_run (recorded in the event log and committed)."
            ),
        ] = None,
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> Annotated[CallToolResult, DeployResult]:
        """Stop a running experiment or discard a draft (production was never touched), or restore the backup of a
        promoted one atomically, after checking production still holds the promoted content (else
        a conflict with the diff; a file deleted since is restored), and commit it. Asks the person to confirm."""
        # the preview `_guarded` runs first is a dry run: the reason the real call needs is checked here
        return await _guarded(
            ctx,
            confirmation,
            confirm,
            dry_run,
            "Rollback",
            lambda lab, dry: release.rollback(
                lab, experiment_id, reason=release.rollback_reason(reason, dry_run), dry_run=dry
            ),
        )

    @server.tool(name="auto", annotations=tool_annotations("Auto mode", destructive=True))
    async def auto_mode(
        ctx: Context,
        dry_run: Annotated[bool, Field(description="Report what auto mode would do; change nothing.")] = False,
    ) -> Annotated[CallToolResult, AutoReport]:
        """For every running experiment: analyse, decide and act - promote (only experiments
        created with auto_promote), roll back (only experiments created with auto_rollback: on the
        policy's decision or an active monitoring alert), expire past max_duration_days, or keep
        monitoring - each with its rationale. Where the auto flags are off it only recommends (an
        active alert: a rollback). Running it twice does nothing new the second time."""
        result = await run_lab(ctx, lambda lab: auto.run_auto(lab, dry_run=dry_run))
        return tool_result(result, report.render_auto(result))

    @server.resource(
        "experiments://alerts",
        name="alerts",
        mime_type="application/json",
        description="Monitoring alerts of every experiment (active and cleared), oldest first.",
    )
    async def alerts_resource() -> str:
        def run(lab: Lab) -> str:
            items: list[Alert] = monitoring.alerts(lab)
            return json.dumps([a.model_dump(mode="json") for a in items], indent=2)

        return await anyio.to_thread.run_sync(read_static, current_lab, run)
