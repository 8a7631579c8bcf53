"""The MCP surface: a table of contents of the lifecycle. Tools validate their arguments through
their signatures, run one lifecycle operation in a worker thread, and return structured content
plus a short text; domain errors become tool errors. Resources expose experiment state; a change
sends resource-updated notifications in both protocol modes."""

from __future__ import annotations

import base64
import os
import re
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ImageContent
from pydantic import BaseModel, BeforeValidator, Field

from . import __version__, deploy, paths, report
from .analysis import load_engine
from .dispatch_ops import DispatchResult
from .errors import ExperimentError, StoreError
from .gitcommit import uncommitted
from .lifecycle import Lab
from .mcp_common import (
    AppState,
    ExperimentId,
    QuietBus,
    register_subscriptions,
    run_lab,
    state_of,
    tool_annotations,
    tool_result,
    watching,
)
from .mcp_data import (
    AutoPromote,
    AutoRollback,
    ConfidenceThreshold,
    ImprovementThreshold,
    MaxDuration,
    MaxRegression,
    SampleSize,
    TreatmentShare,
    register_data_tools,
)
from .mcp_protocol import CheckedServer
from .mcp_resources import no_chart_reason, register_completions, register_resources, resource_lab
from .models import (
    AssignedFile,
    Assignment,
    Event,
    Experiment,
    MetricSpec,
    MetricValue,
    NoBool,
    Progress,
    RecordResult,
    VoidResult,
    unit_as_text,
)
from .monitoring import alert_line
from .paths import confine
from .stats.report import plural
from .stats.results import Analysis
from .status import StatusReport

INSTRUCTIONS = """\
meta-experiment runs A/B experiments on changes to files in this project (prompts, command files,
agent files, configs, code). Lifecycle: create_experiment (production file -> variant file, a primary
metric with its direction) -> for each run: assign (get the arm and the text to use) -> do the run
-> record (the measured metrics; void_trial withdraws or corrects a wrong one) -> analyze. status
lists every experiment with its progress. promote / rollback change production files (the person
confirms; dry_run shows the diff); auto decides and acts for every running experiment. Read the
design_experiment prompt before creating one."""


EVENTS_SHOWN = 50  # get_experiment's newest events (hundreds of dispatch cycles made a 200 KB answer)


class ExperimentDetail(BaseModel):
    experiment: Experiment
    progress: Progress
    events: Annotated[
        list[Event],
        Field(
            description=f"The newest {EVENTS_SHOWN} events, oldest first; the whole log is the resource "
            "experiment://{id}/events."
        ),
    ]
    events_total: Annotated[int, Field(description="How many events the experiment's log holds.")] = 0


# Claude Code shows the model only the structured result of a tool that has one (its text answer is
# dropped; anthropics/claude-code#79944), so what the text says beyond the fields is carried too.
REPORT_FIELD = "as the text answer gives it, for clients that show the model only the structured result"


class CreatedExperiment(Experiment):
    next_step: Annotated[str, Field(description="What to call next (the structured answer is what an agent sees).")]
    notes: Annotated[
        list[str],
        Field(
            default_factory=list,
            description="What to know about the new experiment (an identical variant, uncommitted production "
            f"files, a path through a symlink, a command that can be dispatched), {REPORT_FIELD}.",
        ),
    ]


class AnalyzeResult(Analysis):
    report: Annotated[str, Field(description=f"The analysis report in the seed's layout (markdown), {REPORT_FIELD}.")]


class StatusResult(StatusReport):
    report: Annotated[str, Field(description=f"The status report in the seed's layout (markdown), {REPORT_FIELD}.")]


def invisible_changes(lab: Lab, experiment: Experiment) -> dict[str, str]:
    """{production: what differs} for each variant that differs from production only in bytes a
    diff does not show (line endings, a byte-order mark, whitespace: deploy.invisible_difference)."""
    out = {}
    for f in experiment.files:
        control, treatment = lab.store.blob(f.control_sha256), lab.store.blob(f.treatment_sha256)
        said = None if control is None or treatment is None else deploy.invisible_difference(control, treatment)
        if said is not None and said.startswith("only whitespace"):
            # indentation or a blank line shows in a diff and may be the change meant (YAML, Python):
            # only spaces at line ends are invisible
            ends = [line.rstrip(b" \t") for line in control.splitlines()]  # type: ignore[union-attr]
            same = ends == [line.rstrip(b" \t") for line in treatment.splitlines()]  # type: ignore[union-attr]
            said = "only spaces or tabs at the ends of lines differ" if same else None
        if said is not None:
            out[f.production] = said
    return out


def elsewhere_note(session: Path, root: Path, productions: list[str]) -> str:
    """create's note for a session started in a subfolder whose project is a folder above (it
    holds the experiments): paths were read from that folder; one the subfolder has as well is
    not the file that runs in this session."""
    where = session.relative_to(root).as_posix() if session.is_relative_to(root) else str(session)
    shadowed = [p for p in productions if (session / p).exists()]
    said = (
        f"this session started in {where}, and the project whose experiments it works with is {root} (it "
        f"holds them), so the file paths were read from there: {', '.join(productions)}."
    )
    if shadowed:
        said += (
            f" {where} has its own {', '.join(shadowed)}, which is what runs in this session, not the file under "
            "test: if that one was meant, roll this experiment back and create it with its path from the project "
            f"({where}/{shadowed[0]})."
        )
    return said


def create_notes(
    experiment: Experiment,
    dirty: list[str],
    given: dict[str, str] | None = None,
    root: Path | None = None,
    unseen: dict[str, str] | None = None,
) -> list[str]:
    """What create_experiment's reply adds: production paths given through a symlink (`given`: the
    files argument, relative to `root`), variants identical to production (the treatment changes
    nothing there) or different in invisible bytes only (`unseen`, from `invisible_changes`), and
    production files with uncommitted changes (`dirty`)."""
    notes = []
    if given is not None and root is not None:
        for path in given:  # matched by path: the experiment lists its files sorted, not as given
            try:
                production = confine(root, path)  # as create stored it: relative to the resolved root
            except ExperimentError:
                continue
            if Path(os.path.normpath(root / path)) != root / production:
                notes.append(
                    f"{path} leads to {production} (a symlink): the experiment tests that file, and a "
                    "promote or rollback writes it."
                )
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
    for production, what in (unseen or {}).items():
        notes.append(
            f"the variant of {production} differs from production in bytes a diff does not show: {what}. If that "
            "is not the change meant (an editor's line-ending setting, say), roll this experiment back, fix the "
            "variant and create it again."
        )
    if dirty:
        notes.append(
            f"{', '.join(dirty)} {'has' if len(dirty) == 1 else 'have'} uncommitted changes; the experiment tests "
            "the file as it is now. A promote overwrites it with the variant and commits that (this text, changes "
            "included, is kept in the backup); rolling back a promotion restores this text and commits it, changes "
            "included. A rollback while the experiment runs leaves the file alone."
        )
    return notes


# The statistics engine imports scipy (about 1 s here), which start-up leaves out. Without a warm-up
# the first call that analyses pays it: status, analyze, auto, a promote dry run, or the record that
# reaches the sample size (its regression check). Once the first requests are answered, a background
# thread imports it; a call that needs it meanwhile waits for that import instead of starting one.
WARM_UP_AFTER_S = 2.0


def warm_up() -> None:
    """Import what analysing an experiment needs (in a background thread of the server)."""
    try:
        load_engine()
    except Exception:  # the call that needs it reports the problem itself
        return


def _open_serving(project_root: Path | None, state_dir: Path | None, create: bool) -> Lab:
    """The project's state for the server. An operation a killed process left unfinished is finished
    (its files and status) before anything is served, but its git commit is left to a detached
    `meta-experiment recover`, as a hook leaves it: the repository's commit hooks (a test suite) can
    outlast the 30 s Claude Code gives a starting server, which it then kills, and its next start
    would run them again."""
    from .dispatch_ops import commit_in_background
    from .operations import recover

    lab = Lab.open(project_root, state_dir, create=create, recover=False)
    lab.commit_later = True
    try:
        lab.recovered = recover(lab)
    finally:
        lab.commit_later = False
    commit_in_background(lab)
    return lab


def _reopen(project_root: Path | None, state_dir: Path | None, create: bool) -> Lab:
    """The project's own state, for a server that started without one (AppState.current)."""
    return _open_serving(project_root, state_dir, create)


ASSIGN_TEXT_LIMIT = 20_000  # characters of a file shown in assign's text; the structured result has it whole


def assigned_file_text(f: AssignedFile) -> str:
    """A file of an assignment in the text answer, for a client that shows the model only the text:
    its path and content in a fence longer than any backtick run in it, or where to find a long one."""
    where = f.production if f.path == f.production else f"{f.production} (this arm: {f.path})"
    if len(f.content) > ASSIGN_TEXT_LIMIT:
        return (
            f"\n\n{where}: {len(f.content):,} characters, too long to show here: read {f.path} in the project "
            "(the text under test is its snapshot from the start, in files[].content of the structured result)."
        )
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", f.content)), default=0) + 1)
    end = "" if f.content.endswith("\n") else "\n"
    return f"\n\n{where}:\n{fence}\n{f.content}{end}{fence}"


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
            opened = await anyio.to_thread.run_sync(partial(_open_serving, project_root, state_dir, False))
        except StoreError as exc:  # serve anyway: every call answers with this reason
            print(f"meta-experiment: {exc}", file=sys.stderr)
            opened = exc
        reopen = partial(_reopen, project_root, state_dir)
        found = project_root is None and state_dir is None  # from the environment: may be a folder above
        session = await anyio.to_thread.run_sync(paths.find_session_folder) if found else None
        box["state"] = AppState(opened=opened, bus=bus, reopen=reopen, session=session)
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

    server = CheckedServer(
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
    ) -> Annotated[CallToolResult, CreatedExperiment]:
        """Create an A/B experiment on one or more files and start it (status `running`).

        The production and variant files are snapshotted now: every trial uses these exact texts,
        and promotion later checks that production was not edited in between. Defaults for the
        targets, sample size, split, duration and auto flags come from the project's settings."""
        fields: dict[str, Any] = dict(
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
        )
        # a project's first experiment: what create refuses is refused before its state folder is made
        await run_lab(ctx, lambda lab: lab.check_create(**fields) if lab.empty_project else None)
        experiment = await run_lab(ctx, lambda lab: lab.create(**fields), create=True)
        split = (
            f"; {experiment.treatment_percent}% of trials go to the treatment"
            if experiment.treatment_percent != 50
            else ""
        )
        productions = [f.production for f in experiment.files]
        from .dispatch_ops import dispatch_hint

        dirty, root, hint, unseen = await run_lab(
            ctx,
            lambda lab: (
                uncommitted(lab.project_root, productions),
                lab.project_root,
                dispatch_hint(lab, experiment),
                invisible_changes(lab, experiment),
            ),
        )
        notes = create_notes(experiment, dirty, files, root, unseen) + ([hint] if hint else [])
        session = state_of(ctx).session  # the folder the session started in (None: the project was given)
        if session is not None and root is not None and session != root:
            notes.insert(0, elsewhere_note(session, root, productions))
        note = "".join(f" Note: {line}" for line in notes)
        next_step = f"Call assign with experiment_id {experiment.id} for each run, then record with its trial_id."
        return tool_result(
            CreatedExperiment(**dict(experiment), next_step=next_step, notes=notes),
            f"Created {experiment.id} ({experiment.name}), running; {experiment.sample_size_required} trials "
            f"required{split}. Next: {next_step[0].lower()}{next_step[1:]}{note}",
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
                description="Optional unit id (session, PR, user; spaces around it are ignored, case is not: "
                "PR-1 and pr-1 are two units; a whole number is read as its text). The same unit always gets the "
                "same arm; without one, arms are balanced in permuted blocks.",
            ),
            BeforeValidator(unit_as_text),
        ] = None,
    ) -> Annotated[CallToolResult, Assignment]:
        """Start one trial: returns a trial id, its arm (control or treatment) and, for each file
        under test, the path and text to use for this run. Record the outcome with `record`."""
        a = await run_lab(ctx, lambda lab: lab.assign(experiment_id, unit))
        text = f"Trial {a.trial_id}: {a.arm}. " + a.next_step + "".join(f"\nWarning: {w}" for w in a.warnings)
        return tool_result(a, text + "".join(assigned_file_text(f) for f in a.files))

    # not idempotent: a retry by trial_id is harmless, but a past measurement (experiment_id and arm)
    # sent twice is two measurements, and a client may retry a call marked idempotent on its own
    @server.tool(annotations=tool_annotations("Record a result"))
    async def record(
        ctx: Context,
        metrics: Annotated[
            dict[str, MetricValue],
            Field(
                description="Measured values: {metric name: number}. Binary metrics take 0 or 1 (or false/true). "
                "May be left out for a failed run (success false) or a duration measured from assign."
            ),
        ] = {},  # noqa: B006 - pydantic copies a default; nothing mutates it
        trial_id: Annotated[
            int | None, Field(ge=1, le=2**63 - 1, description="The trial id that assign returned."), NoBool
        ] = None,
        success: Annotated[bool, Field(description="False when the run failed (counts toward the error rate).")] = True,
        experiment_id: Annotated[
            ExperimentId | None, Field(description="Without trial_id: record a past measurement into this experiment.")
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
            f"{'Already recorded (identical retry)' if r.duplicate else 'Recorded'} trial {r.trial_id} ({r.arm})."
            + (
                f" {r.experiment_id} has ended ({r.ended}) with {plural(r.trials_recorded, 'trial')}; it takes no more."
                if r.ended
                else f" Progress {r.trials_recorded}/{r.sample_size_required}"
                + (
                    f", {r.trials_needed} more needed" + (f" ({r.per_arm_floor})." if r.per_arm_floor else ".")
                    if r.trials_needed
                    else "; ready to analyze."
                )
            )
        )
        if r.missing_guardrails and not r.ended:  # (no advice for an experiment that takes no more trials)
            text += (
                f" Guardrail(s) not recorded for this trial: {', '.join(r.missing_guardrails)} - a guardrail "
                "needs values in both arms before a promotion can happen."
            )
        if r.alerts:  # alerts raised by this trial, and any auto-rollback they triggered
            text += "\n" + "\n".join(alert_line(a) for a in r.alerts)
        return tool_result(r, text)

    @server.tool(annotations=tool_annotations("Void a recorded trial"))
    async def void_trial(
        trial_id: Annotated[int, Field(ge=1, le=2**63 - 1, description="The recorded trial to withdraw."), NoBool],
        reason: Annotated[
            str, Field(min_length=1, max_length=1000, description="Why, e.g. 'typo: 12.5 s recorded as 125'.")
        ],
        ctx: Context,
        metrics: Annotated[
            dict[str, MetricValue] | None,
            Field(
                description="The corrected values of the same run, if it was measured: recorded in its place "
                "(same arm and unit); metrics not given keep their recorded values. Leave out to drop the run."
            ),
        ] = None,
        success: Annotated[
            bool | None,
            Field(
                description="The corrected success flag (default: the voided one's); false (alone, or with "
                "metrics): the run failed, keeps its guardrail values and drops the primary value it had (metrics "
                "given are kept)."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, VoidResult]:
        """Withdraw a wrongly recorded result of a running experiment (a typo, a unit mix-up, a broken
        run): it stops counting, the statistics are rebuilt without it, and the event log keeps its
        values and the reason. With `metrics`, the corrected values are recorded in its place.
        The resource experiment://{id}/trials lists the newest trials with their ids and values; every
        trial, page by page, is at experiment://{id}/trials/{page}."""
        r = await run_lab(ctx, lambda lab: lab.void_trial(trial_id, reason, metrics, success))
        text = f"Voided trial {r.trial_id} ({r.arm}): {r.reason}."
        if r.replacement_trial_id is not None:
            failed = " (a failed run)" if r.replacement_success is False else ""
            text += f" Corrected values recorded as trial {r.replacement_trial_id}{failed}."
        text += (
            f" {r.experiment_id} has ended ({r.ended}): it takes no more trials."
            if r.ended
            else f" Progress {r.trials_recorded}/{r.sample_size_required}."
        )
        if r.alerts:
            text += "\n" + "\n".join(alert_line(a) for a in r.alerts)
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
    ) -> Annotated[CallToolResult, AnalyzeResult]:
        """Full statistical analysis and the policy's decision. Per metric and arm: n, mean, sd, min,
        max; Welch's (and Student's) t-test, 95% CI of the difference and of the relative lift
        (delta method), Cohen's d and Hedges' g, Mann-Whitney with the Hodges-Lehmann shift,
        proportions tests for binary metrics; the always-valid sequential test that drives
        decisions; guardrails (Holm), sample-ratio mismatch and power ("needs K more trials").
        Returns the seed's analysis report as text and, with `chart`, a PNG."""

        def run(lab: Lab) -> tuple[Analysis, str, bytes | None]:
            result = lab.analyze(experiment_id, rank_tests=rank_tests)
            experiment = lab.get(experiment_id)
            text = report.render_analysis(experiment, result, lab.project_root)
            png = lab.chart(experiment_id) if chart else None
            if chart and png is None:  # say why the image the caller asked for is missing
                text += f"\n\n({no_chart_reason(lab, experiment)})"
            return result, text, png

        result, text, png = await run_lab(ctx, run)
        out = tool_result(AnalyzeResult(**dict(result), report=text), text)
        if png is not None:
            out.content.append(ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png"))
        return out

    @server.tool(annotations=tool_annotations("Status", read_only=True, idempotent=True))
    async def status(
        ctx: Context,
        active_only: Annotated[
            bool,
            Field(
                description="List only draft and running experiments; the ended ones are counted in the summary, "
                "not listed (a project's history grows with every experiment)."
            ),
        ] = False,
    ) -> Annotated[CallToolResult, StatusResult]:
        """Every experiment with its status, progress toward its sample size and current results,
        in the seed's status-report layout: the 10 that ended last in full, older ones a line each."""
        result = await run_lab(ctx, lambda lab: lab.status(active_only))
        text = report.render_status(result, active_only)
        result = result.listed(active_only)  # the structured list as the text lists it in full
        return tool_result(StatusResult(**dict(result), report=text), text)

    @server.tool(annotations=tool_annotations("Get experiment", read_only=True, idempotent=True))
    async def get_experiment(experiment_id: ExperimentId, ctx: Context) -> Annotated[CallToolResult, ExperimentDetail]:
        """One experiment: its definition, files and snapshot hashes, counts per arm, progress and
        its newest events (every state change: what, when, who, why; the whole log is the resource
        experiment://{id}/events)."""

        def run(lab: Lab) -> ExperimentDetail:
            e = lab.get(experiment_id)
            events = lab.events(experiment_id)
            return ExperimentDetail(
                experiment=e, progress=lab.progress(e), events=events[-EVENTS_SHOWN:], events_total=len(events)
            )

        d = await run_lab(ctx, run)
        return tool_result(
            d,
            f"{d.experiment.id} ({d.experiment.name}): {d.experiment.status}, "
            f"{d.progress.trials_recorded}/{d.progress.sample_size_required} trials"
            + (f", {d.experiment.treatment_percent}% to the treatment" if d.experiment.treatment_percent != 50 else "")
            + "."
            + (
                f" The newest {len(d.events)} of its {d.events_total} events; all of them: experiment://{d.experiment.id}"
                "/events."
                if d.events_total > len(d.events)
                else ""
            ),
        )

    @server.tool(annotations=tool_annotations("Dispatch a command, skill or agent", destructive=True, idempotent=True))
    async def dispatch(
        experiment_id: ExperimentId,
        ctx: Context,
        on: Annotated[
            bool, Field(description="True: put the dispatcher in place. False: put the original file back.")
        ] = True,
    ) -> Annotated[CallToolResult, DispatchResult]:
        """For a running experiment on one project slash command (.claude/commands/NAME.md), skill
        (.claude/skills/NAME/SKILL.md) or agent (.claude/agents/NAME.md): put a dispatcher in place
        of its file, so that each /NAME a person types or the model runs, or each launch of the
        agent, runs one trial (the plugin's hooks assign it and
        hand over that arm's text; the run's time is recorded when it ends). The original comes
        back byte for byte when the experiment ends, or with on=false. Both arms must share their
        front matter."""
        from .dispatch_ops import set_dispatch

        result = await run_lab(ctx, lambda lab: set_dispatch(lab, experiment_id, on))
        return tool_result(result, result.summary)

    register_data_tools(server)  # update_settings, export_experiments, import_experiments
    register_resources(server, box)
    register_completions(server, box)

    # -- prompts ---------------------------------------------------------------------------------

    from .mcp_release import register_release_tools
    from .prompts import register_prompts

    register_release_tools(server, lambda: resource_lab(box))
    register_prompts(server)
    return server
