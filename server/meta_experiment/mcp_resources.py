"""The MCP resources: experiment state for people and agents to read (and subscribe to), the
project's settings, and completion of their arguments (experiment ids; the prompt's file)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from . import monitoring, report
from .analysis import CHART_LIMIT, chart_counts
from .errors import ExperimentError, NotFound
from .lifecycle import Lab
from .mcp_common import LIST_FILTERS, SETTINGS_URI, AppState, read_lab, read_static
from .models import TERMINAL_STATUSES, UNIT_MAX_CHARS, Experiment
from .prompts import project_files
from .settings import settings_sources

COMPLETION_LIMIT = 100  # values per completion answer (the protocol's maximum)
# A read of experiment://ID/trials holds at most this many trials and bytes of JSON: clients drop a
# message over 10 MB (the TypeScript SDK's stdio buffer, Claude Code's), and with it the server; a
# trial with many metrics takes more than the ~200 bytes of one with two.
TRIALS_PER_PAGE = 10_000
PAGE_BYTES = 5_000_000


# The longest a unit can print: UNIT_MAX_CHARS characters, each at most 6 bytes (a control
# character escaped as \u0001; any other prints as its UTF-8, at most 4 bytes), and its quotes.
LONGEST_UNIT = "\u0001" * UNIT_MAX_CHARS


def trials_per_page(lab: Lab, experiment_id: str) -> int:
    """How many trials a numbered page holds: TRIALS_PER_PAGE, fewer when that many of the largest
    trial the experiment's definition allows would pass PAGE_BYTES (every declared metric recorded
    with a longest float, the longest unit, id and times). From the definition alone, never the
    data: a page is found from its number (reading page N reads N's trials, not every trial before
    it, which took 16 s for page 1 of 400,000 trials), and a new trial, however long its unit, goes
    on the last page without moving any other (a size from the longest unit so far moved them,
    from a review)."""
    definition = lab.definition(experiment_id)
    largest = _size(
        {
            **_trial_json(None),
            "experiment_id": experiment_id,
            "unit": LONGEST_UNIT,
            "metrics": {m.name: -1.2345678901234567e-300 for m in definition.metrics},
        }
    )
    return max(1, min(TRIALS_PER_PAGE, PAGE_BYTES // (largest + 1)))


def _trial_json(trial: Any) -> dict[str, Any]:
    """A trial as the page shows it; None: the longest values of its fixed fields (for the bound)."""
    if trial is not None:
        return trial.model_dump(mode="json")
    longest_time = "2026-01-01T00:00:00.000000Z"
    return {
        "trial_id": 2**63 - 1,
        "experiment_id": "",
        "arm": "treatment",
        "unit": None,
        "status": "abandoned",
        "source": "import",
        "assigned_at": longest_time,
        "recorded_at": longest_time,
        "success": False,
        "metrics": {},
    }


def trials_page(lab: Lab, experiment_id: str, page: int | None) -> str:
    """One page of the trials as compact JSON; `page` None: the newest trials, as many as a page
    holds (up to TRIALS_PER_PAGE and PAGE_BYTES, read without the others); a number: that page of
    `trials_per_page` trials."""
    if page is None:
        chunks = [_compact(t) for t in lab.trials(experiment_id, TRIALS_PER_PAGE)]
        start = len(chunks)
        size = 0
        while start > 0 and len(chunks) - start < TRIALS_PER_PAGE:
            added = len(chunks[start - 1].encode()) + 1  # bytes: a unit may be any UTF-8
            if size + added > PAGE_BYTES:
                break
            start -= 1
            size += added
        return "[" + ",".join(chunks[start:]) + "]"
    with lab.store.reading():  # one snapshot: the count and the page
        per_page = trials_per_page(lab, experiment_id)
        total = lab.store.trial_count(experiment_id)
        pages = max(1, math.ceil(total / per_page))
        if page > pages:
            raise NotFound(
                f"{experiment_id} has {total:,} trials in {pages} page(s) of up to {per_page:,} trials; "
                f"there is no page {page}."
            )
        trials = lab.trials(experiment_id, skip=(page - 1) * per_page, limit=per_page)
    return "[" + ",".join(_compact(t) for t in trials) + "]"


def _compact(trial: Any) -> str:
    """A trial as a page prints it: compact JSON, UTF-8 text."""
    return json.dumps(_trial_json(trial), separators=(",", ":"), ensure_ascii=False)


def _size(document: dict[str, Any]) -> int:
    """Its bytes as a page prints it."""
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())


def no_chart_reason(lab: Lab, e: Experiment) -> str:
    """Why `Lab.chart` drew nothing for `e`, in one sentence (analysis.chart's conditions)."""
    control, treatment = chart_counts(lab, e)
    counts = f"control {control}, treatment {treatment}"
    most = max(control, treatment)
    if most > CHART_LIMIT:
        return f"No chart for {e.id}: it is drawn up to {CHART_LIMIT:,} recorded trials per arm, and it has {most:,}."
    if e.status in TERMINAL_STATUSES:
        return (
            f"No chart for {e.id}: it ended ({e.status}) with fewer than 2 recorded trials with a value of "
            f"{e.primary_metric.name} in an arm ({counts}), "
            "and takes no more; a chart needs at least 2 in each."
        )
    if e.status == "draft":
        return (
            f"No chart for {e.id} yet: it is a draft, which takes no trials until it starts (start_experiment, "
            "or `meta-experiment start`); a chart needs at least 2 recorded trials in each arm."
        )
    return (
        f"No chart for {e.id} yet: each arm needs at least 2 recorded trials with a value of "
        f"{e.primary_metric.name} ({counts} so far)."
    )


def settings_document(lab: Lab) -> dict[str, Any]:
    """The effective settings as `meta-experiment settings` prints them, plus where each comes from."""
    return {**lab.settings().model_dump(mode="json"), "sources": settings_sources(lab.state_dir, lab.project_root)}


def resource_lab(box: dict[str, AppState]) -> Lab:
    """The lifespan's Lab; a store that could not be opened is a resource error with its reason."""
    try:
        return box["state"].lab
    except ExperimentError as exc:
        raise ResourceError(str(exc)) from exc


def register_resources(server: MCPServer, box: dict[str, AppState]) -> None:
    """`box["state"]` is the lifespan state: static resources get no Context, so they read it there."""

    # -- resources -------------------------------------------------------------------------------

    @server.resource(
        "experiments://list",
        name="experiments",
        mime_type="application/json",
        description="Every experiment: id, name, status and progress.",
    )
    async def list_resource() -> str:
        return await anyio.to_thread.run_sync(read_static, lambda: resource_lab(box), experiment_list)

    @server.resource(
        "experiments://list/{status}",
        name="experiments-by-status",
        mime_type="application/json",
        description="The experiments of one status, as experiments://list shows them: active (draft and running), "
        "ended (promoted, rolled back or expired), draft, running, promoted, rolled_back or expired.",
    )
    async def list_by_status_resource(status: str, ctx: Context) -> str:
        statuses = LIST_FILTERS.get(status)
        if statuses is None:  # not found, not an internal error (-32603), as an unknown experiment id
            raise ResourceNotFoundError(
                f"experiments://list/{status} lists nothing: {status!r} is not a status this list filters by. Use "
                f"one of {', '.join(LIST_FILTERS)}, or experiments://list for every experiment."
            )
        return await read_lab(ctx, lambda lab: experiment_list(lab, statuses))

    @server.resource(
        "experiments://status",
        name="status-report",
        mime_type="text/markdown",
        description="The status report of every experiment, in the seed's layout.",
    )
    async def status_resource() -> str:
        return await anyio.to_thread.run_sync(
            read_static, lambda: resource_lab(box), lambda lab: report.render_status(lab.status())
        )

    @server.resource(
        "experiment://{experiment_id}",
        name="experiment",
        mime_type="application/json",
        description="One experiment's state: definition, status, counts per arm and progress.",
    )
    async def experiment_resource(experiment_id: str, ctx: Context) -> str:
        def run(lab: Lab) -> str:
            e = lab.get(experiment_id)
            return json.dumps(
                {
                    "experiment": e.model_dump(mode="json"),
                    "progress": lab.progress(e).model_dump(mode="json"),
                    "alerts": [a.model_dump(mode="json") for a in monitoring.alerts(lab, experiment_id)],
                },
                indent=2,
            )

        return await read_lab(ctx, run)

    @server.resource(
        "experiment://{experiment_id}/analysis",
        name="experiment-analysis",
        mime_type="application/json",
        description="The experiment's current analysis as JSON.",
    )
    async def analysis_resource(experiment_id: str, ctx: Context) -> str:
        # with the rank tests, as the analyze tool gives them (they read the raw values: a person's read)
        return await read_lab(ctx, lambda lab: lab.analyze(experiment_id, rank_tests=True).model_dump_json(indent=2))

    @server.resource(
        SETTINGS_URI,
        name="settings",
        mime_type="application/json",
        description="The project's effective settings (defaults for new experiments, monitoring thresholds), "
        "as `meta-experiment settings` shows them, and under `sources` where each comes from: settings.toml "
        "in the state folder, pyproject.toml [tool.meta-experiment], or the default. update_settings changes them.",
    )
    async def settings_resource() -> str:
        return await anyio.to_thread.run_sync(
            read_static, lambda: resource_lab(box), lambda lab: json.dumps(settings_document(lab), indent=2)
        )

    @server.resource(
        "experiment://{experiment_id}/events",
        name="experiment-events",
        mime_type="application/json",
        description="The experiment's event log (audit trail), oldest first: every change of state with what, "
        "when, who and why - created, alerts, voided trials, promote, rollback.",
    )
    async def events_resource(experiment_id: str, ctx: Context) -> str:
        def run(lab: Lab) -> str:
            lab.get(experiment_id)  # an unknown id is an error, not an empty log
            return json.dumps([e.model_dump(mode="json") for e in lab.events(experiment_id)], indent=2)

        return await read_lab(ctx, run)

    @server.resource(
        "experiment://{experiment_id}/trials",
        name="experiment-trials",
        mime_type="application/json",
        description=f"The experiment's trials in assignment order: trial_id (what void_trial takes), arm, unit, "
        "status (assigned, recorded, abandoned, voided), source, times, success and metric values: the newest "
        f"{TRIALS_PER_PAGE:,} (fewer when they would pass {PAGE_BYTES // 1_000_000} MB); every trial, page by page: "
        "experiment://{experiment_id}/trials/{page}.",
    )
    async def trials_resource(experiment_id: str, ctx: Context) -> str:
        return await read_lab(ctx, lambda lab: trials_page(lab, experiment_id, None))

    @server.resource(
        "experiment://{experiment_id}/trials/{page}",
        name="experiment-trials-page",
        mime_type="application/json",
        description="Page 1, 2, ... of the experiment's trials in assignment order: as many a page as keep it under "
        f"{PAGE_BYTES // 1_000_000} MB at the largest trial the experiment's definition allows (every metric, a "
        f"{UNIT_MAX_CHARS}-character unit), up to {TRIALS_PER_PAGE:,} (MCP clients drop a message over 10 MB, and "
        "an experiment's every trial can be more). A new trial goes on the last page; earlier pages keep theirs.",
    )
    async def trials_page_resource(experiment_id: str, page: str, ctx: Context) -> str:
        number = page.lstrip("0")  # ('01' is page 1; '²' is a digit to isdigit, not to int)
        if not (page.isascii() and page.isdigit() and 0 < len(number) <= 18):  # ('²' is a digit)
            raise ResourceNotFoundError(
                f"experiment://{experiment_id}/trials/{page[:40]}: the page is a number from 1 (the first "
                "trials in assignment order)."
            )
        return await read_lab(ctx, lambda lab: trials_page(lab, experiment_id, int(number)))

    @server.resource(
        "experiment://{experiment_id}/chart.png",
        name="experiment-chart",
        mime_type="image/png",
        description="The analysis chart: improvement over the trials with its intervals, and both arms.",
    )
    async def chart_resource(experiment_id: str, ctx: Context) -> bytes:
        def run(lab: Lab) -> bytes:
            png = lab.chart(experiment_id)
            if png is None:
                raise ResourceNotFoundError(no_chart_reason(lab, lab.get(experiment_id)))  # not there yet
            return png

        return await read_lab(ctx, run)

    @server.resource(
        "experiment://{experiment_id}/report",
        name="experiment-report",
        mime_type="text/markdown",
        description="The experiment's analysis report in the seed's markdown layout.",
    )
    async def report_resource(experiment_id: str, ctx: Context) -> str:
        def run(lab: Lab) -> str:
            analysis = lab.analyze(experiment_id, rank_tests=True)  # as the analyze tool reports it
            return report.render_analysis(lab.get(experiment_id), analysis, lab.project_root)

        return await read_lab(ctx, run)


def experiment_list(lab: Lab, statuses: list[str] | None = None) -> str:
    """experiments://list (with `statuses`, only the experiments of those) as JSON."""
    return json.dumps(
        [
            {"id": e.id, "name": e.name, "status": e.status, "progress": lab.progress(e).model_dump()}
            for e in lab.experiments(statuses)
        ],
        indent=2,
    )


def register_completions(server: MCPServer, box: dict[str, AppState]) -> None:
    """completion/complete: the experiment ids for every experiment://{experiment_id} template, and
    the project's files for the design_experiment prompt's `target` (a resource browser such as the
    MCP Inspector offers them as the person types)."""

    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if isinstance(ref, ResourceTemplateReference) and argument.name == "experiment_id":
            candidates = await anyio.to_thread.run_sync(_experiment_ids, box)
        elif isinstance(ref, ResourceTemplateReference) and argument.name == "status":
            candidates = list(LIST_FILTERS)
        elif isinstance(ref, PromptReference) and ref.name == "design_experiment" and argument.name == "target":
            candidates = await anyio.to_thread.run_sync(_files, box)
        else:
            return None
        return matching(candidates, argument.value)


def matching(candidates: list[str], typed: str) -> Completion:
    """The candidates that start with `typed`, then those that contain it (case-insensitive)."""
    typed = typed.strip().lower()
    starts = [c for c in candidates if c.lower().startswith(typed)]
    inside = [c for c in candidates if typed in c.lower() and not c.lower().startswith(typed)]
    found = starts + inside
    return Completion(values=found[:COMPLETION_LIMIT], total=len(found), has_more=len(found) > COMPLETION_LIMIT)


def _experiment_ids(box: dict[str, AppState]) -> list[str]:
    """Newest first. Nothing to offer from a store that cannot be read: reading the resource says why."""
    try:
        return [row["id"] for row in reversed(resource_lab(box).store.experiment_rows())]
    except (ResourceError, ExperimentError):
        return []


FILES_FRESH_S = 5.0  # completion asks at every keystroke: the project's file list is listed once per pause
_listed: dict[Path, tuple[float, list[str]]] = {}


def _files(box: dict[str, AppState]) -> list[str]:
    try:
        lab = resource_lab(box)
    except ResourceError:
        return []
    now = time.monotonic()
    at, files = _listed.get(lab.project_root, (-math.inf, []))
    if now - at > FILES_FRESH_S:
        files = project_files(lab.project_root, lab.state_dir)
        _listed[lab.project_root] = (now, files)
    return files
