"""The MCP resources: experiment state for people and agents to read (and subscribe to)."""

from __future__ import annotations

import json

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from . import monitoring, report
from .errors import ExperimentError
from .lifecycle import Lab
from .mcp_common import AppState, read_lab, read_static


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
        def run(lab: Lab) -> str:
            return json.dumps(
                [
                    {"id": e.id, "name": e.name, "status": e.status, "progress": lab.progress(e).model_dump()}
                    for e in lab.experiments()
                ],
                indent=2,
            )

        return await anyio.to_thread.run_sync(read_static, lambda: resource_lab(box), run)

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
        return await read_lab(ctx, lambda lab: lab.analyze(experiment_id).model_dump_json(indent=2))

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
                raise ResourceError(f"No chart for {experiment_id} yet: each arm needs at least 2 recorded trials.")
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
            return report.render_analysis(lab.get(experiment_id), lab.analyze(experiment_id))

        return await read_lab(ctx, run)
