"""The project's data on the MCP surface: the settings (update_settings reads or changes them, and
says where each comes from) and the experiments as a document (export_experiments and
import_experiments, in the seed's experiments.json format). Registered by
`mcp_server.build_server`; each tool is one call into `settings` or `interchange` plus a short text.
Also the arguments that set an experiment default, which create_experiment shares."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from . import interchange
from .errors import InvalidInput
from .mcp_common import (
    SETTINGS_URI,
    ExperimentId,
    notify_uris,
    run_lab,
    settings_signature,
    state_of,
    tool_annotations,
    tool_result,
)
from .models import Confidence, MaxDurationDays, Percent, SampleSizeRequired
from .settings import (
    SETTINGS_FILE_NAME,
    DefaultSettings,
    MonitoringSettings,
    Settings,
    settings_sources,
    update_settings,
)

if TYPE_CHECKING:
    from .lifecycle import Lab


# The experiment defaults: arguments of create_experiment (this experiment) and of update_settings
# (the project's default); when left out, the settings file decides.
ImprovementThreshold = Annotated[
    Percent | None,
    Field(description="Minimum improvement of the primary metric to promote, in percent (15 = 15%)."),
]
MaxRegression = Annotated[
    Percent | None, Field(description="Largest tolerated regression before rolling back, in percent.")
]
ConfidenceThreshold = Annotated[
    Confidence | None,
    Field(
        description="Required confidence of the always-valid test. Decisions use alpha = min(0.05, 1 - this), so "
        "every value up to 0.95 (the default 0.80 included) acts as 0.95; only a higher one, e.g. 0.99, is stricter.",
    ),
]
SampleSize = Annotated[
    SampleSizeRequired | None,
    Field(
        description="Recorded trials (both arms) before any decision; the test plans to decide by 7x this.",
    ),
]
MaxDuration = Annotated[MaxDurationDays | None, Field(description="Days before the experiment expires.")]
AutoPromote = Annotated[bool | None, Field(description="Let auto mode promote a winner.")]
AutoRollback = Annotated[
    bool | None,
    Field(
        description="Let auto mode roll back a loser, and stop the experiment at once when a monitoring alert is "
        "raised during `record` (production is never touched while it runs). Default: the settings', true unless "
        "changed; false leaves both as recommendations and alerts."
    ),
]
TreatmentShare = Annotated[
    Literal[10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90] | None,
    Field(
        description="Share of trials assigned to the treatment, in % (default: the settings', 50 unless changed). "
        "Below 50 "
        "limits exposure to a risky change, at a cost in trials: about 1.6x as many at 20%, 2.8x at 10%.",
    ),
]


class SettingsResult(BaseModel):
    settings: Settings
    file: Annotated[str, Field(description="The settings file the tool writes (inside the state folder).")]
    changed: Annotated[
        list[str], Field(description="The settings this call changed; none when it was called without any, to read.")
    ]
    sources: Annotated[
        dict[str, dict[str, str]],
        Field(
            description="Where each setting comes from, by section and key: settings.toml, "
            "pyproject.toml [tool.meta-experiment], or default."
        ),
    ]


# An answer's largest document: MCP clients drop a message over 10 MB (the TypeScript SDK's stdio
# buffer, Claude Code's), and with it the connection to the server.
MAX_ANSWER_BYTES = 8_000_000


class ExportResult(BaseModel):
    experiments: int
    path: str | None = None
    backup: Annotated[
        str | None, Field(description="Where the file the export replaced (a previous export) is kept.")
    ] = None
    document: dict[str, Any] | None = None


class ImportResult(BaseModel):
    imported: list[str]
    skipped: list[str]
    warnings: list[str]
    ignored_keys: Annotated[
        list[str],
        Field(
            description="Keys the format does not define and the import did not read, e.g. "
            "experiments[0].results.notes (a misspelling of a known key is refused instead)."
        ),
    ]


def settings_text(result: SettingsResult) -> str:
    """The settings and their sources in a few lines, for update_settings called to read them."""
    lines = []
    for section, values in result.settings.model_dump().items():
        lines.append(f"{section}: " + ", ".join(f"{k}={v}" for k, v in values.items()) + ".")
    by_source: dict[str, list[str]] = {}
    for keys in result.sources.values():
        for key, source in keys.items():
            if source != "default":
                by_source.setdefault(source, []).append(key)
    where = "; ".join(f"from {source}: {', '.join(keys)}" for source, keys in by_source.items())
    lines.append(f"{where[0].upper()}{where[1:]}; the rest are defaults." if where else "All are defaults.")
    return "Current settings - " + "\n".join(lines)


def _monitoring_field(name: str) -> Any:
    """update_settings' argument for a monitoring setting: the setting's own range and description,
    so the tool and the settings file never disagree (the tool capped satisfaction_floor at 1)."""
    info = MonitoringSettings.model_fields[name]
    bounds = {key: getattr(m, key) for m in info.metadata for key in ("gt", "ge", "lt", "le") if hasattr(m, key)}
    if info.annotation is float:
        bounds["allow_inf_nan"] = False
    return Field(description=info.description, **bounds)


def register_data_tools(server: MCPServer) -> None:
    """update_settings, export_experiments and import_experiments, in this order (tools/list shows
    the order of registration)."""

    @server.tool(name="update_settings", annotations=tool_annotations("Update settings", idempotent=True))
    async def update_settings_tool(
        ctx: Context,
        improvement_threshold: ImprovementThreshold = None,
        max_regression: MaxRegression = None,
        confidence_threshold: ConfidenceThreshold = None,
        sample_size_required: SampleSize = None,
        max_duration_days: MaxDuration = None,
        auto_promote: AutoPromote = None,
        auto_rollback: AutoRollback = None,
        treatment_percent: TreatmentShare = None,
        error_rate_ratio: Annotated[float | None, _monitoring_field("error_rate_ratio")] = None,
        min_trials_per_arm: Annotated[int | None, _monitoring_field("min_trials_per_arm")] = None,
        min_failures: Annotated[int | None, _monitoring_field("min_failures")] = None,
        satisfaction_floor: Annotated[float | None, _monitoring_field("satisfaction_floor")] = None,
    ) -> Annotated[CallToolResult, SettingsResult]:
        """Change the project's defaults for new experiments and the monitoring thresholds. Only the
        values given change; the settings file keeps its comments and ordering, and the previous
        version is kept as settings.toml.bak. Called with no values it changes nothing and returns
        the current settings and where each comes from (as experiments://settings and
        `meta-experiment settings` show them)."""
        given = {k: v for k, v in locals().items() if k != "ctx" and v is not None}
        defaults = {k: v for k, v in given.items() if k in DefaultSettings.model_fields}
        monitoring = {k: v for k, v in given.items() if k not in defaults}
        changes = {"defaults": defaults, "monitoring": monitoring}

        def run(lab: Lab) -> SettingsResult:
            if given:
                settings = lab.update_settings(changes, f"Settings changed: {sorted(given)}", changes=given)
                state_of(ctx).settings_written = settings_signature(lab)
            else:
                settings = lab.settings()
            return SettingsResult(
                settings=settings,
                file=SETTINGS_FILE_NAME,
                changed=list(given),
                sources=settings_sources(lab.state_dir, lab.project_root),
            )

        if given:  # a project without state: what the update would refuse is refused before its folder is made
            await run_lab(
                ctx,
                lambda lab: (
                    update_settings(lab.state_dir, changes, lab.project_root, dry_run=True)
                    if lab.empty_project
                    else None
                ),
            )
        result = await run_lab(ctx, run, create=bool(given))
        if not given:
            return tool_result(result, "No setting given, nothing changed. " + settings_text(result))
        await notify_uris(state_of(ctx), [SETTINGS_URI])
        return tool_result(
            result, f"Updated {', '.join(f'{k}={v}' for k, v in given.items())} in {SETTINGS_FILE_NAME}."
        )

    @server.tool(annotations=tool_annotations("Export experiments", idempotent=True))
    async def export_experiments(
        ctx: Context,
        experiment_ids: Annotated[
            list[ExperimentId] | None, Field(description="Ids to export; all when omitted.")
        ] = None,
        path: Annotated[
            str | None,
            Field(
                description="Write the JSON to this project-relative file instead of returning it. An existing "
                "file is replaced only when it holds a previous export (backed up in the state folder first); any "
                "other existing file is refused."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, ExportResult]:
        """Export experiments in the seed's experiments.json format (plus a `meta_experiment` block
        per experiment with every trial, snapshot and event, so an import restores them exactly).
        `results.statistical_confidence` is the seed's 1 - fixed-horizon p; `always_valid_confidence`
        is the one status shows and decisions use."""

        def run(lab: Lab) -> ExportResult:
            if path is not None:
                interchange.export_path(lab, path)  # refuse a bad path before analysing every experiment
            document = interchange.export_experiments(lab, experiment_ids)
            count = len(document["experiments"])
            if path is None:
                size = len(json.dumps(document, ensure_ascii=False).encode())
                if size > MAX_ANSWER_BYTES:
                    raise InvalidInput(
                        f"The export is {size / 1e6:.1f} MB, too large to return in one answer (MCP clients drop a "
                        "message over 10 MB, and with it the server). Pass path to write it to a file in the project "
                        "(e.g. experiments.json), or run `meta-experiment export > FILE`."
                    )
                return ExportResult(experiments=count, document=document)
            written, backup = interchange.write_document(lab, path, document)
            return ExportResult(experiments=count, path=written, backup=backup)

        r = await run_lab(ctx, run)
        kept = f" The previous export there is kept as {r.backup}." if r.backup else ""
        return tool_result(r, f"Exported {r.experiments} experiment(s)" + (f" to {r.path}." if r.path else ".") + kept)

    @server.tool(annotations=tool_annotations("Import experiments"))
    async def import_experiments(
        ctx: Context,
        document: Annotated[
            dict[str, Any] | None,
            Field(
                description='A seed-format document: {"experiments": [...]}. Each experiment needs at least "id" '
                'and "changes": {"files": {"<production path>": {"variant": "<variant path>"}}}; usually also '
                '"name", "hypothesis", "status" (draft, running, promoted, rolled_back or expired; default '
                'running) and "metrics": {"primary": "<name>", "secondary": [...]} (directions are guessed from '
                "the names, with a warning, unless given). An export_experiments document is the full example: "
                "metric definitions, targets, trials, snapshots and events."
            ),
        ] = None,
        path: Annotated[str | None, Field(description="Or a project-relative JSON file to read it from.")] = None,
        on_conflict: Annotated[
            Literal["error", "skip"], Field(description="When an id exists: refuse everything, or skip that one.")
        ] = "error",
    ) -> Annotated[CallToolResult, ImportResult]:
        """Import experiments from the seed's experiments.json format (or this server's export).
        All or nothing: an invalid experiment refuses the whole document."""
        if (document is None) == (path is None):
            raise ToolError("Give exactly one of document (the JSON object) or path (a project-relative file).")

        def run(lab: Lab) -> ImportResult:
            doc = document if document is not None else interchange.read_document(lab, path or "")
            return ImportResult(**interchange.import_experiments(lab, doc, on_conflict=on_conflict))

        # a project without state: what the import would refuse is refused before its folder is made
        await run_lab(ctx, lambda lab: lab.rehearse(run) if lab.empty_project else None)
        r = await run_lab(ctx, run, create=True)
        text = f"Imported {len(r.imported)} experiment(s)" + (f", skipped {len(r.skipped)}" if r.skipped else "") + "."
        return tool_result(r, text + "".join(f"\nWarning: {w}" for w in r.warnings))
