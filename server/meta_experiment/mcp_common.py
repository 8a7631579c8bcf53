"""What every part of the MCP surface shares: the lifespan state, running a lifecycle call off
the event loop with domain errors mapped to tool errors, tool annotations and results, and
resource-updated notifications in both protocol modes (subscriptions/listen for 2026-07-28,
resources/subscribe for handshake-era clients such as Claude Code and the MCP Inspector)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus, ServerEvent
from mcp_types import (
    CallToolResult,
    EmptyResult,
    SubscribeRequestParams,
    TextContent,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field, StringConstraints

from .errors import Conflict, ExperimentError, NotFound, StoreError
from .lifecycle import Lab

T = TypeVar("T")


class QuietBus(InMemorySubscriptionBus):
    """The SDK's in-process bus, minus the event-loop checkpoint per event when no
    subscriptions/listen stream is open (the common case: every record would pay it)."""

    async def publish(self, event: ServerEvent) -> None:
        if self._listeners:
            await super().publish(event)

    @property
    def active(self) -> bool:
        return bool(self._listeners)


@dataclass
class AppState:
    # The project's state, or why it could not be opened: the server still starts, and every call
    # answers with that reason (a client that cannot connect shows nothing useful to the person).
    opened: Lab | StoreError
    bus: QuietBus = field(default_factory=QuietBus)
    # Legacy (initialize-handshake) sessions that asked for resources/subscribe, with their URIs.
    subscribers: list[tuple[Any, set[str]]] = field(default_factory=list)
    # Opens the project's own state (creating it when asked): set when `opened` reads a project that
    # had no database at start as empty, so that the server creates no state folder until a call
    # stores something (a plugin enabled for every project would otherwise leave one in each).
    reopen: Callable[[bool], Lab] | None = None
    _swap: threading.Lock = field(default_factory=threading.Lock)

    @property
    def lab(self) -> Lab:
        return self.current()

    def current(self, create: bool = False) -> Lab:
        """The Lab. One read as empty switches to the project's database once it exists (another
        process made it), or when this call stores something (`create`: it is made now)."""
        if isinstance(self.opened, StoreError):
            raise StoreError(str(self.opened))
        lab = self.opened
        if not lab.empty_project or self.reopen is None or not (create or lab.has_database()):
            return lab
        with self._swap:
            if isinstance(self.opened, Lab) and self.opened.empty_project:
                # the empty Lab is left to the garbage collector, not closed: a read in another
                # worker thread may still be using it
                self.opened = self.reopen(create)
            return self.lab


def experiment_uris(experiment_id: str | None) -> list[str]:
    uris = ["experiments://list", "experiments://status", "experiments://alerts"]
    if experiment_id:
        uris += [
            f"experiment://{experiment_id}",
            f"experiment://{experiment_id}/analysis",
            f"experiment://{experiment_id}/report",
            f"experiment://{experiment_id}/chart.png",
        ]
    return uris


def state_of(ctx: Context) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState), "the lifespan yields an AppState"
    return state


def tool_annotations(title: str, *, read_only: bool = False, destructive: bool = False, idempotent: bool = False):
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


def tool_result(model: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json")
    )


def _tool_error(exc: ExperimentError) -> ToolError:
    message = str(exc)
    if isinstance(exc, Conflict) and exc.diff:
        message += "\n\n" + exc.diff
    return ToolError(message)


async def _notify(ctx: Context, state: AppState, changed: list[str | None]) -> None:
    if not state.bus.active and not state.subscribers:
        return  # nobody listens (the usual case): skip building the events
    uris = sorted({u for experiment_id in changed for u in experiment_uris(experiment_id)})
    if state.bus.active:
        for uri in uris:
            await ctx.notify_resource_updated(uri)  # 2026-07-28: subscriptions/listen streams
    for session, wanted in list(state.subscribers):  # legacy: sessions that sent resources/subscribe
        for uri in uris:
            if uri in wanted:
                try:
                    await session.send_resource_updated(uri)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                    # the peer went away: forget its subscriptions, the tool call still succeeds
                    state.subscribers[:] = [s for s in state.subscribers if s[0] is not session]
                    break


async def run_lab(ctx: Context, fn: Callable[[Lab], T], *, create: bool = False) -> T:
    """Run one lifecycle call off the event loop; map domain errors; notify what changed. `create`:
    the call stores something, so a project without state gets its state folder now."""
    state = state_of(ctx)
    changed: list[str | None] = []

    def call() -> T:
        lab = state.current(create)  # in the worker thread: opening the project's state does I/O
        lab.listeners.append(changed.append)
        try:
            return fn(lab)
        finally:
            lab.listeners.remove(changed.append)

    try:
        return await anyio.to_thread.run_sync(call)
    except ExperimentError as exc:
        raise _tool_error(exc) from exc
    finally:
        if changed:
            await _notify(ctx, state, changed)


async def read_lab(ctx: Context, fn: Callable[[Lab], T]) -> T:
    """A resource read: domain errors become resource errors (not found, or another failure)."""
    state = state_of(ctx)
    try:
        return await anyio.to_thread.run_sync(lambda: fn(state.lab))
    except NotFound as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    except ExperimentError as exc:
        raise ResourceError(str(exc)) from exc


def read_static(get_lab: Callable[[], Lab], fn: Callable[[Lab], T]) -> T:
    """A read of a static resource (no Context: the lab comes from `get_lab`), with domain errors
    made resource errors as `read_lab` does; a damaged store then says what to do, not 'Error
    reading resource'. Runs in the caller's worker thread."""
    try:
        return fn(get_lab())
    except NotFound as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    except ExperimentError as exc:
        raise ResourceError(str(exc)) from exc


ExperimentId = Annotated[
    str,
    StringConstraints(strip_whitespace=True),  # an id pasted with a space around it is still the id
    Field(min_length=1, max_length=100, description="Experiment id, e.g. exp-20261125-101500."),
]


def register_subscriptions(server: MCPServer) -> None:
    """resources/subscribe for handshake-era clients (Claude Code, the MCP Inspector). MCPServer
    serves subscriptions/listen for 2026-07-28 clients itself; the legacy methods are registered on
    the low-level server, which then advertises `resources.subscribe`."""
    low = server._lowlevel_server

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        state: AppState = ctx.lifespan_context
        for session, uris in state.subscribers:
            if _connection(session) is _connection(ctx.session):
                uris.add(str(params.uri))
                break
        else:
            state.subscribers.append((ctx.session, {str(params.uri)}))
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        state: AppState = ctx.lifespan_context
        for session, uris in state.subscribers:
            if _connection(session) is _connection(ctx.session):
                uris.discard(str(params.uri))
        return EmptyResult()

    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


def _connection(session: Any) -> Any:
    """Sessions are per request; the connection they share identifies the subscriber."""
    return getattr(session, "_connection", session)
