"""The MCP surface: a table of contents of the lifecycle. Tools validate their arguments through
their signatures, run one lifecycle operation in a worker thread, and return structured content
plus a short text; domain errors become tool errors. Resources expose experiment state; a change
sends resource-updated notifications in both protocol modes."""

from __future__ import annotations

import base64
import difflib
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    GetPromptResult,
    Icon,
    ImageContent,
    InputRequiredResult,
    ToolAnnotations,
)
from pydantic import BaseModel, Field, ValidationError

from . import __version__, interchange, report, tool_schemas
from .errors import StoreError, validation_message
from .gitcommit import uncommitted
from .lifecycle import Lab
from .mcp_common import (
    SETTINGS_URI,
    AppState,
    ExperimentId,
    QuietBus,
    notify_uris,
    register_subscriptions,
    run_lab,
    state_of,
    tool_annotations,
    tool_result,
    watching,
)
from .mcp_resources import no_chart_reason, register_completions, register_resources, resource_lab, setting_sources
from .models import Assignment, Event, Experiment, MetricSpec, Progress, RecordResult, VoidResult
from .settings import SETTINGS_FILE_NAME, DefaultSettings, MonitoringSettings, Settings, update_settings
from .stats.results import Analysis
from .status import StatusReport

T = TypeVar("T")

INSTRUCTIONS = """\
meta-experiment runs A/B experiments on changes to files in this project (prompts, command files,
agent files, configs, code). Lifecycle: create_experiment (production file -> variant file, a primary
metric with its direction) -> for each run: assign (get the arm and the text to use) -> do the run
-> record (the measured metrics; void_trial withdraws or corrects a wrong one) -> analyze. status
lists every experiment with its progress. promote / rollback change production files (the person
confirms; dry_run shows the diff); auto decides and acts for every running experiment. Read the
design_experiment prompt before creating one."""


class ExperimentDetail(BaseModel):
    experiment: Experiment
    progress: Progress
    events: list[Event]


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


class ExportResult(BaseModel):
    experiments: int
    path: str | None = None
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


# The experiment defaults: arguments of create_experiment (this experiment) and of update_settings
# (the project's default); when left out, the settings file decides.
ImprovementThreshold = Annotated[
    float | None,
    Field(ge=0, le=1000, description="Minimum improvement of the primary metric to promote, in percent (15 = 15%)."),
]
MaxRegression = Annotated[
    float | None, Field(ge=0, le=1000, description="Largest tolerated regression before rolling back, in percent.")
]
ConfidenceThreshold = Annotated[
    float | None,
    Field(
        gt=0.5,
        lt=1,
        description="Required confidence of the always-valid test. Decisions use alpha = min(0.05, 1 - this), so "
        "every value up to 0.95 (the default 0.80 included) acts as 0.95; only a higher one, e.g. 0.99, is stricter.",
    ),
]
SampleSize = Annotated[
    int | None,
    Field(
        ge=2,
        le=10_000_000,
        description="Recorded trials (both arms) before any decision; the test plans to decide by 7x this.",
    ),
]
MaxDuration = Annotated[float | None, Field(gt=0, le=3650, description="Days before the experiment expires.")]
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


def create_notes(experiment: Experiment, dirty: list[str]) -> list[str]:
    """What create_experiment's reply adds: variants identical to production (the treatment changes
    nothing there) and production files with uncommitted changes (`dirty`)."""
    notes = []
    same = [f.production for f in experiment.files if f.control_sha256 == f.treatment_sha256]
    if same and len(same) == len(experiment.files):
        notes.append(
            f"the variant of {', '.join(same)} is identical to production: this runs an A/A test (both arms get "
            "the same text). If a change was meant, roll this experiment back, edit the variant and create it again."
        )
    elif same:
        notes.append(
            f"the variant of {', '.join(same)} is identical to production: the treatment changes only the other files."
        )
    if dirty:
        notes.append(
            f"{', '.join(dirty)} {'has' if len(dirty) == 1 else 'have'} uncommitted changes; the experiment tests "
            "the file as it is now. A promote overwrites it with the variant and commits that (this text, changes "
            "included, is kept in the backup); rolling back a promotion restores this text and commits it, changes "
            "included. A rollback while the experiment runs leaves the file alone."
        )
    return notes


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


def unknown_arguments_message(tool: str, arguments: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """One sentence naming the arguments `tool` does not have (with a "did you mean" for a near
    miss) and the ones it has, or None when every argument is in the input schema. The SDK's
    argument model ignores extra keys, so a misspelled optional argument would otherwise be
    dropped without a word (`charts: true` -> no chart)."""
    if schema.get("additionalProperties") not in (None, False):
        return None  # a schema that declares extra keys welcome takes anything
    known = list(schema.get("properties") or {})
    unknown = [key for key in arguments if key not in known]
    if not unknown:
        return None
    by_lower = {k.lower(): k for k in known}
    parts = []
    for key in unknown:
        shown = repr(key if len(key) <= 60 else key[:60] + "...")  # repr: quoted, one line
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
        parts.append(f"{shown} (did you mean '{by_lower[close[0]]}'?)" if close else shown)
    noun = "argument" if len(parts) == 1 else "arguments"
    listed = ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    has = f"its arguments are: {', '.join(known)}" if known else "it takes no arguments"
    return f"{tool} has no {noun} {listed}; {has}."


class _Server(MCPServer):
    """MCPServer whose argument errors read as one sentence per field (the SDK passes pydantic's
    multi-line dump, with a link, to the model), and that refuses arguments a tool does not have
    (the SDK drops them silently) before anything runs."""

    _schemas: dict[str, dict[str, Any]] | None = None
    cached_schemas = True  # register tools from tool_schemas.json when it is current

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        """The SDK's add_tool, with the tool's JSON schemas read from tool_schemas.json when that
        file was generated from this source (see that module) instead of derived again."""
        fields: dict[str, Any] = {"title": title, "annotations": annotations, "icons": icons, "meta": meta}
        name = name or fn.__name__
        entry = tool_schemas.shipped().get(name) if self.cached_schemas else None
        tools = self._tool_manager._tools
        tool = None
        if entry is not None and structured_output is None and name not in tools:
            tool = tool_schemas.tool_from_cache(fn, name, entry, description=description, **fields)
        if tool is None:
            super().add_tool(fn, name, description=description, structured_output=structured_output, **fields)
        else:
            tools[name] = tool

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if self._schemas is None or name not in self._schemas:  # built once; again for a tool added later
            self._schemas = {t.name: t.input_schema for t in await self.list_tools()}
        schema = self._schemas.get(name)
        if schema is not None:  # None: an unknown tool, which the SDK reports itself
            message = unknown_arguments_message(name, arguments, schema)
            if message is not None:
                raise ToolError(message)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and not isinstance(exc, UnexpectedToolError):
                raise ToolError(
                    validation_message(cause, f"arguments for {name}") + " The tool's input schema lists them."
                ) from cause
            raise

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> GetPromptResult | InputRequiredResult:
        """The SDK's, with an unknown prompt or an argument the prompt does not have refused in one
        sentence, as tools refuse them (the SDK answers "Error rendering prompt" and logs pydantic's
        traceback)."""
        prompt = self._prompt_manager.get_prompt(name)
        if prompt is None:
            names = ", ".join(p.name for p in self._prompt_manager.list_prompts())
            raise MCPError(INVALID_PARAMS, f"There is no prompt {name!r}; the prompts are: {names}.")
        known = prompt.arguments or []
        message = unknown_arguments_message(name, arguments or {}, {"properties": {a.name: {} for a in known}})
        missing = [a.name for a in known if a.required and a.name not in (arguments or {})]
        if message is None and missing:
            message = f"{name} needs the argument(s) {', '.join(missing)}."
        if message is not None:
            raise MCPError(INVALID_PARAMS, message)
        return await super().get_prompt(name, arguments, context)


# The statistics engine imports scipy (about 1 s here), which start-up leaves out. Without a warm-up
# the first call that analyses pays it: status, analyze, auto, a promote dry run, or the record that
# reaches the sample size (its regression check). Once the first requests are answered, a background
# thread imports it; a call that needs it meanwhile waits for that import instead of starting one.
WARM_UP_AFTER_S = 2.0


def warm_up() -> None:
    """Import what analysing an experiment needs (in a background thread of the server)."""
    import importlib

    for module in ("meta_experiment.stats.analysis", "meta_experiment.policy"):
        try:
            importlib.import_module(module)
        except Exception:  # the call that needs it reports the problem itself
            return


def _monitoring_field(name: str) -> Any:
    """update_settings' argument for a monitoring setting: the setting's own range and description,
    so the tool and the settings file never disagree (the tool capped satisfaction_floor at 1)."""
    info = MonitoringSettings.model_fields[name]
    bounds = {key: getattr(m, key) for m in info.metadata for key in ("gt", "ge", "lt", "le") if hasattr(m, key)}
    if info.annotation is float:
        bounds["allow_inf_nan"] = False
    return Field(description=info.description, **bounds)


def _reopen(project_root: Path | None, state_dir: Path | None, create: bool) -> Lab:
    """The project's own state, for a server that started without one (AppState.current)."""
    return Lab.open(project_root, state_dir, create=create)


def build_server(
    project_root: Path | None = None, state_dir: Path | None = None, *, cached_schemas: bool = True
) -> MCPServer:
    """A server whose lifespan opens the project's state (a fresh one per server: tests use temp
    folders). With no arguments the project is found from the environment (DESIGN.md, "State").
    `cached_schemas=False` derives every tool's JSON schemas instead of reading tool_schemas.json."""

    bus = QuietBus()
    box: dict[str, AppState] = {}  # static resources get no Context: they read the state here

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[AppState]:
        opened: Lab | StoreError
        try:
            # a project without state is read as empty: its folder is made by the first call that stores
            opened = await anyio.to_thread.run_sync(partial(Lab.open, project_root, state_dir, create=False))
        except StoreError as exc:  # serve anyway: every call answers with this reason
            print(f"meta-experiment: {exc}", file=sys.stderr)
            opened = exc
        reopen = partial(_reopen, project_root, state_dir)
        box["state"] = AppState(opened=opened, bus=bus, reopen=reopen)
        warm = threading.Timer(WARM_UP_AFTER_S, warm_up)
        warm.daemon = True
        warm.start()
        try:
            async with watching(box["state"]):  # other processes' changes, while anyone subscribes
                yield box["state"]
        finally:
            warm.cancel()
            state = box.pop("state", None)
            if state is not None and isinstance(state.opened, Lab):
                state.opened.close()

    server = _Server(
        "meta-experiment", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, subscriptions=bus
    )
    server.cached_schemas = cached_schemas
    register_subscriptions(server)

    # -- tools -----------------------------------------------------------------------------------

    @server.tool(annotations=tool_annotations("Create experiment"))
    async def create_experiment(
        name: Annotated[str, Field(min_length=1, max_length=200, description="Short name, e.g. 'Parallel PR review'.")],
        hypothesis: Annotated[
            str, Field(min_length=1, max_length=4000, description="What should change and by how much, and why.")
        ],
        files: Annotated[
            dict[str, str],
            Field(
                min_length=1,
                description="Files under test: {production path: variant path}, relative to the project root. "
                "Both must exist. Control runs use the production file, treatment runs the variant.",
            ),
        ],
        primary_metric: Annotated[MetricSpec, Field(description="The metric that decides the experiment.")],
        ctx: Context,
        secondary_metrics: Annotated[
            list[MetricSpec], Field(description="Guardrail metrics (each with its own direction).")
        ] = [],  # noqa: B006 - pydantic copies defaults
        description: Annotated[str, Field(max_length=8000, description="Description of the change.")] = "",
        change_type: Annotated[
            str, Field(max_length=64, description="Kind of change, e.g. command_modification.")
        ] = "command_modification",
        improvement_threshold: ImprovementThreshold = None,
        max_regression: MaxRegression = None,
        confidence_threshold: ConfidenceThreshold = None,
        sample_size_required: SampleSize = None,
        max_duration_days: MaxDuration = None,
        auto_promote: AutoPromote = None,
        auto_rollback: AutoRollback = None,
        treatment_percent: TreatmentShare = None,
    ) -> Annotated[CallToolResult, Experiment]:
        """Create an A/B experiment on one or more files and start it (status `running`).

        The production and variant files are snapshotted now: every trial uses these exact texts,
        and promotion later checks that production was not edited in between. Defaults for the
        targets, sample size, split, duration and auto flags come from the project's settings."""
        experiment = await run_lab(
            ctx,
            lambda lab: lab.create(
                name=name,
                hypothesis=hypothesis,
                files=files,
                primary_metric=primary_metric.model_dump(),
                secondary_metrics=[m.model_dump() for m in secondary_metrics],
                description=description,
                change_type=change_type,
                improvement_threshold=improvement_threshold,
                max_regression=max_regression,
                confidence_threshold=confidence_threshold,
                sample_size_required=sample_size_required,
                max_duration_days=max_duration_days,
                auto_promote=auto_promote,
                auto_rollback=auto_rollback,
                treatment_percent=treatment_percent,
            ),
            create=True,
        )
        split = (
            f"; {experiment.treatment_percent}% of trials go to the treatment"
            if experiment.treatment_percent != 50
            else ""
        )
        productions = [f.production for f in experiment.files]
        dirty = await run_lab(ctx, lambda lab: uncommitted(lab.project_root, productions))
        note = "".join(f" Note: {line}" for line in create_notes(experiment, dirty))
        return tool_result(
            experiment,
            f"Created {experiment.id} ({experiment.name}), running; {experiment.sample_size_required} trials "
            f"required{split}. Next: call assign with experiment_id {experiment.id} for each run.{note}",
        )

    @server.tool(annotations=tool_annotations("Start a draft"))
    async def start_experiment(experiment_id: ExperimentId, ctx: Context) -> Annotated[CallToolResult, Experiment]:
        """Start a draft (an experiment imported with status draft): snapshot its files as they are
        now and open it for trials. Experiments made with create_experiment start at once."""
        experiment = await run_lab(ctx, lambda lab: lab.start(experiment_id))
        return tool_result(
            experiment,
            f"Started {experiment.id} ({experiment.name}); {experiment.sample_size_required} trials required. "
            f"Next: call assign with experiment_id {experiment.id} for each run.",
        )

    @server.tool(annotations=tool_annotations("Assign a trial"))
    async def assign(
        experiment_id: ExperimentId,
        ctx: Context,
        unit: Annotated[
            str | None,
            Field(
                max_length=200,
                description="Optional unit id (session, PR, user; spaces around it are ignored). The same unit "
                "always gets the same arm; without one, arms are balanced in permuted blocks.",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, Assignment]:
        """Start one trial: returns a trial id, its arm (control or treatment) and, for each file
        under test, the path and text to use for this run. Record the outcome with `record`."""
        a = await run_lab(ctx, lambda lab: lab.assign(experiment_id, unit))
        text = f"Trial {a.trial_id}: {a.arm}. " + a.next_step + "".join(f"\nWarning: {w}" for w in a.warnings)
        return tool_result(a, text)

    @server.tool(annotations=tool_annotations("Record a result", idempotent=True))
    async def record(
        metrics: Annotated[
            dict[str, float],
            Field(description="Measured values: {metric name: number}. Binary metrics take 0 or 1."),
        ],
        ctx: Context,
        trial_id: Annotated[
            int | None, Field(ge=1, le=2**63 - 1, description="The trial id that assign returned.")
        ] = None,
        success: Annotated[bool, Field(description="False when the run failed (counts toward the error rate).")] = True,
        experiment_id: Annotated[
            str | None, Field(description="Without trial_id: record a past measurement into this experiment.")
        ] = None,
        arm: Annotated[
            Literal["control", "treatment"] | None, Field(description="Without trial_id: the measurement's arm.")
        ] = None,
    ) -> Annotated[CallToolResult, RecordResult]:
        """Record the metrics of a finished trial (by `trial_id`), or import a past measurement
        without an assignment (by `experiment_id` and `arm`). A duration primary metric left out
        is measured from the assignment. Re-sending identical values is a harmless retry."""
        if trial_id is not None:
            if experiment_id is not None or arm is not None:
                raise ToolError("Give either trial_id, or experiment_id with arm - not both.")
            r = await run_lab(ctx, lambda lab: lab.record(trial_id, metrics, success))
        elif experiment_id is not None and arm is not None:
            r = await run_lab(ctx, lambda lab: lab.record_measurement(experiment_id, arm, metrics, success))
        else:
            raise ToolError(
                "Say which trial this is: trial_id from assign, or experiment_id and arm to import a past measurement."
            )
        text = (
            f"{'Already recorded (identical retry)' if r.duplicate else 'Recorded'} trial {r.trial_id} "
            f"({r.arm}). Progress {r.trials_recorded}/{r.sample_size_required}"
            + (
                f", {r.trials_needed} more needed" + (f" ({r.per_arm_floor})." if r.per_arm_floor else ".")
                if r.trials_needed
                else "; ready to analyze."
            )
        )
        if r.missing_guardrails:
            text += (
                f" Guardrail(s) not recorded for this trial: {', '.join(r.missing_guardrails)} - a guardrail "
                "needs values in both arms before a promotion can happen."
            )
        if r.alerts:  # alerts raised by this trial, and any auto-rollback they triggered
            text += "\n" + "\n".join(f"ALERT: {a}" for a in r.alerts)
        return tool_result(r, text)

    @server.tool(annotations=tool_annotations("Void a recorded trial"))
    async def void_trial(
        trial_id: Annotated[int, Field(ge=1, le=2**63 - 1, description="The recorded trial to withdraw.")],
        reason: Annotated[
            str, Field(min_length=1, max_length=1000, description="Why, e.g. 'typo: 12.5 s recorded as 125'.")
        ],
        ctx: Context,
        metrics: Annotated[
            dict[str, float] | None,
            Field(
                description="The corrected values of the same run, if it was measured: recorded in its place "
                "(same arm and unit); metrics not given keep their recorded values. Leave out to drop the run."
            ),
        ] = None,
        success: Annotated[
            bool | None, Field(description="With metrics: the corrected success flag (default: the voided one's).")
        ] = None,
    ) -> Annotated[CallToolResult, VoidResult]:
        """Withdraw a wrongly recorded result of a running experiment (a typo, a unit mix-up, a broken
        run): it stops counting, the statistics are rebuilt without it, and the event log keeps its
        values and the reason. With `metrics`, the corrected values are recorded in its place."""
        r = await run_lab(ctx, lambda lab: lab.void_trial(trial_id, reason, metrics, success))
        text = f"Voided trial {r.trial_id} ({r.arm}): {r.reason}."
        if r.replacement_trial_id is not None:
            text += f" Corrected values recorded as trial {r.replacement_trial_id}."
        text += f" Progress {r.trials_recorded}/{r.sample_size_required}."
        if r.alerts:
            text += "\n" + "\n".join(f"ALERT: {a}" for a in r.alerts)
        return tool_result(r, text)

    @server.tool(annotations=tool_annotations("Analyze", read_only=True, idempotent=True))
    async def analyze(
        experiment_id: ExperimentId,
        ctx: Context,
        chart: Annotated[
            bool,
            Field(
                description="Also return a PNG chart (the improvement over the trials, and both arms). Off by "
                "default: an image costs many tokens; people can open experiment://{id}/chart.png instead."
            ),
        ] = False,
        rank_tests: Annotated[
            bool, Field(description="Also run Mann-Whitney / Hodges-Lehmann on the raw values (skewed metrics).")
        ] = True,
    ) -> Annotated[CallToolResult, Analysis]:
        """Full statistical analysis and the policy's decision. Per metric and arm: n, mean, sd, min,
        max; Welch's (and Student's) t-test, 95% CI of the difference and of the relative lift
        (delta method), Cohen's d and Hedges' g, Mann-Whitney with the Hodges-Lehmann shift,
        proportions tests for binary metrics; the always-valid sequential test that drives
        decisions; guardrails (Holm), sample-ratio mismatch and power ("needs K more trials").
        Returns the seed's analysis report as text and, with `chart`, a PNG."""

        def run(lab: Lab) -> tuple[Analysis, str, bytes | None]:
            result = lab.analyze(experiment_id, rank_tests=rank_tests)
            experiment = lab.get(experiment_id)
            text = report.render_analysis(experiment, result)
            png = lab.chart(experiment_id) if chart else None
            if chart and png is None:  # say why the image the caller asked for is missing
                text += f"\n\n({no_chart_reason(experiment)})"
            return result, text, png

        result, text, png = await run_lab(ctx, run)
        out = tool_result(result, text)
        if png is not None:
            out.content.append(ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png"))
        return out

    @server.tool(annotations=tool_annotations("Status", read_only=True, idempotent=True))
    async def status(ctx: Context) -> Annotated[CallToolResult, StatusReport]:
        """Every experiment with its status, progress toward its sample size and current results,
        in the seed's status-report layout."""
        result = await run_lab(ctx, lambda lab: lab.status())
        return tool_result(result, report.render_status(result))

    @server.tool(annotations=tool_annotations("Get experiment", read_only=True, idempotent=True))
    async def get_experiment(experiment_id: ExperimentId, ctx: Context) -> Annotated[CallToolResult, ExperimentDetail]:
        """One experiment: its definition, files and snapshot hashes, counts per arm, progress and
        its event log (every state change: what, when, who, why)."""

        def run(lab: Lab) -> ExperimentDetail:
            e = lab.get(experiment_id)
            return ExperimentDetail(experiment=e, progress=lab.progress(e), events=lab.events(experiment_id))

        d = await run_lab(ctx, run)
        return tool_result(
            d,
            f"{d.experiment.id} ({d.experiment.name}): {d.experiment.status}, "
            f"{d.progress.trials_recorded}/{d.progress.sample_size_required} trials"
            + (f", {d.experiment.treatment_percent}% to the treatment" if d.experiment.treatment_percent != 50 else "")
            + ".",
        )

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

        def run(lab: Lab) -> SettingsResult:
            if given:
                update_settings(lab.state_dir, {"defaults": defaults, "monitoring": monitoring}, lab.project_root)
                lab.event(None, "settings_updated", f"Settings changed: {sorted(given)}", changes=given)
            return SettingsResult(
                settings=lab.settings(), file=SETTINGS_FILE_NAME, changed=list(given), sources=setting_sources(lab)
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
        experiment_ids: Annotated[list[str] | None, Field(description="Ids to export; all when omitted.")] = None,
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
                return ExportResult(experiments=count, document=document)
            written = interchange.write_document(lab, path, document)
            return ExportResult(experiments=count, path=written)

        r = await run_lab(ctx, run)
        return tool_result(r, f"Exported {r.experiments} experiment(s)" + (f" to {r.path}." if r.path else "."))

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

        r = await run_lab(ctx, run, create=True)
        text = f"Imported {len(r.imported)} experiment(s)" + (f", skipped {len(r.skipped)}" if r.skipped else "") + "."
        return tool_result(r, text + "".join(f"\nWarning: {w}" for w in r.warnings))

    register_resources(server, box)
    register_completions(server, box)

    # -- prompts ---------------------------------------------------------------------------------

    from .mcp_release import register_release_tools
    from .prompts import register_prompts

    register_release_tools(server, lambda: resource_lab(box))
    register_prompts(server)
    return server
