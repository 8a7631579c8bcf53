"""What every part of the MCP surface shares: the lifespan state, running a lifecycle call off
the event loop with domain errors mapped to tool errors, tool annotations and results, and
resource-updated notifications in both protocol modes (subscriptions/listen for 2026-07-28,
resources/subscribe for handshake-era clients such as Claude Code and the MCP Inspector), including
changes that other processes (another server on the project, the CLI) commit to the database."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    TextContent,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field, StringConstraints

from . import paths
from .errors import Conflict, ExperimentError, NotFound, StoreError, permission_message
from .lifecycle import Lab
from .mcp_protocol import CheckedServer
from .models import MAX_ID_LENGTH
from .settings import SETTINGS_FILE_NAME

T = TypeVar("T")
logger = logging.getLogger(__name__)

SETTINGS_URI = "experiments://settings"
WATCH_INTERVAL_S = 1.0  # how soon a change committed by another process reaches subscribers


class QuietBus(InMemorySubscriptionBus):
    """The SDK's in-process bus, minus the event-loop checkpoint per event when no
    subscriptions/listen stream is open (the common case: every record would pay it)."""

    on_listen: Callable[[], None] | None = None  # called when a listen stream opens (wakes the watcher)

    async def publish(self, event: ServerEvent) -> None:
        if self._listeners:
            await super().publish(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        if self.on_listen is not None:
            self.on_listen()
        return unsubscribe

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    # The resource URIs the open listen streams asked for, with how many streams ask for each: the
    # SDK's handler keeps them to itself, and a trials page is notified only to those who want it.
    wanted: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        self.wanted = Counter()


class ListenTracker(ListenHandler):
    """The SDK's subscriptions/listen handler, keeping the bus told which URIs the open streams want."""

    def __init__(self, bus: QuietBus) -> None:
        super().__init__(bus)
        self._wanted = bus.wanted

    async def __call__(self, ctx: Any, params: SubscriptionsListenRequestParams) -> Any:
        uris = list(params.notifications.resource_subscriptions or ())
        self._wanted.update(uris)
        try:
            return await super().__call__(ctx, params)
        finally:
            self._wanted.subtract(uris)
            for uri in uris:
                if self._wanted[uri] <= 0:
                    del self._wanted[uri]


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
    # stores something (a server added for every project would otherwise leave one in each).
    reopen: Callable[[bool], Lab] | None = None
    # The folder the session started in, when the project was found from it (not given): a folder
    # above it may gain experiments after the start (a session at the repository's top creates
    # one), and the project is then that folder (paths.owning_project), as for the hooks.
    session: Path | None = None
    _swap: threading.Lock = field(default_factory=threading.Lock)
    # The settings files as this process's update_settings last wrote them (settings_signature):
    # the watcher takes that for no hand edit (it had notified the settings a second time).
    settings_written: tuple[tuple[int, int] | None, ...] | None = None
    # Why the server switched databases (_switch_from), until a tool call has been told: the switch may
    # be found by the change watcher or a resource read, and the model is told with its next call.
    switch_notice: str | None = None
    # Set when the first subscription opens: the watcher of other processes' changes waits on it.
    _wake: anyio.Event | None = None

    @property
    def listening(self) -> bool:
        """Whether any client subscribes to anything (a listen stream, or a legacy subscription)."""
        return self.bus.active or any(uris for _, uris in self.subscribers)

    def wake_watcher(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def wait_for_subscriber(self) -> None:
        self._wake = anyio.Event()
        await self._wake.wait()

    @property
    def lab(self) -> Lab:
        return self.current()

    def current(self, create: bool = False) -> Lab:
        """The Lab. One read as empty switches to the project's database once it exists (another
        process made it), or when this call stores something (`create`: it is made now)."""
        if isinstance(self.opened, StoreError):
            raise StoreError(str(self.opened))
        lab = self.opened
        if lab.store.moved() and self.reopen is not None:
            self._switch_from(lab)
            return self.current(create)
        if not lab.empty_project or self.reopen is None or not (create or lab.has_database() or self._adopted(lab)):
            return lab
        with self._swap:
            if isinstance(self.opened, Lab) and self.opened.empty_project:
                # the empty Lab is left to the garbage collector, not closed: a read in another
                # worker thread may still be using it
                self.opened = self.reopen(create)
            return self.lab

    def _adopted(self, lab: Lab) -> bool:
        """Whether a folder above the session's has experiments now, which makes it the project
        (a few stat calls, while the project is empty)."""
        return self.session is not None and paths.owning_project(self.session) != lab.project_root

    def _switch_from(self, lab: Lab) -> None:
        """The database was deleted (a `git clean -x`, a reset by hand) or replaced (a backup put back)
        under the running server: switch to what is there now, an empty project or that file, and
        tell the call that found it, which did nothing; the calls after it use the new state. No
        restart needed. The old Lab is left to the garbage collector, as in `current`."""
        with self._swap:
            if self.opened is not lab:
                return  # another call switched already
            assert self.reopen is not None
            try:
                self.opened = self.reopen(False)
            except StoreError as exc:  # a damaged file put back: every call says so, as at start
                self.opened = exc
                raise
            path = lab.store.path
            now = (
                "the file there now, from this call on"
                if self.opened.has_database()
                else "an empty project: the next call that stores something makes a new database"
            )
            self.switch_notice = (
                f"The experiment database {str(path)!r} was {'replaced' if path.exists() else 'deleted'} while "
                f"the server had it open, so this call did nothing. The server now uses {now}. Experiments "
                "that were only in the old file are gone from it unless you have a copy of the file or an "
                "export (import_experiments restores one)."
            )
            raise StoreError(self.switch_notice)

    def take_switch_notice(self) -> str | None:
        """The switch's explanation, once, for a tool call (see switch_notice)."""
        notice, self.switch_notice = self.switch_notice, None
        return notice


# experiments://list/{status}: which statuses each filter lists
LIST_FILTERS: dict[str, list[str]] = {
    "active": ["draft", "running"],
    "ended": ["promoted", "rolled_back", "expired"],
    "draft": ["draft"],
    "running": ["running"],
    "promoted": ["promoted"],
    "rolled_back": ["rolled_back"],
    "expired": ["expired"],
}


TRIALS_PAGE = re.compile(r"experiment://([^/]+)/trials/(0*[1-9][0-9]{0,17})")  # a numbered page, as read


def experiment_uris(experiment_id: str | None, scope: str = "all") -> list[str]:
    """The resources a change can have changed (Lab._changed's scopes): every list, the status and
    the alerts, and the experiment's own; for a trial assigned only the status and the experiment's
    own but its events and chart; for a trial recorded, not the alerts, and only the lists that
    show a running experiment (its progress moved). A review counted 3 spurious notifications an
    assign."""
    if scope == "assigned" and experiment_id:
        return [
            "experiments://status",
            *(f"experiment://{experiment_id}{part}" for part in ("", "/analysis", "/report", "/trials")),
        ]
    uris = ["experiments://list", "experiments://status"]
    if scope == "recorded":
        uris += [f"experiments://list/{name}" for name, statuses in LIST_FILTERS.items() if "running" in statuses]
    else:
        uris += ["experiments://alerts", *(f"experiments://list/{name}" for name in LIST_FILTERS)]
    if experiment_id:
        uris += [
            f"experiment://{experiment_id}",
            f"experiment://{experiment_id}/analysis",
            f"experiment://{experiment_id}/report",
            f"experiment://{experiment_id}/chart.png",
            f"experiment://{experiment_id}/events",
            f"experiment://{experiment_id}/trials",
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


TEXT_DIFF_LINES = 400  # a result's text shows this much of a diff (a 5,000-line diff made a 108 KB answer)


def _tool_error(exc: ExperimentError) -> ToolError:
    message = str(exc)
    if isinstance(exc, Conflict) and exc.diff:
        lines = exc.diff.rstrip("\n").splitlines()
        message += "\n\n" + "\n".join(lines[:TEXT_DIFF_LINES]) + "\n"
        if len(lines) > TEXT_DIFF_LINES:
            message += (
                f"... {len(lines) - TEXT_DIFF_LINES} more diff lines (the full diff: the CLI's promote or rollback "
                "with --dry-run prints it all)\n"
            )
    return ToolError(message)


async def notify_uris(state: AppState, uris: Iterable[str]) -> None:
    """Send resource-updated notifications for `uris` to whoever subscribed to them."""
    if not state.bus.active and not state.subscribers:
        return  # nobody listens (the usual case): skip building the events
    uris = set(uris)
    # A numbered trials page changes with the experiment's trials (which page a trial is on depends
    # on every trial before it): those of the changed experiments that someone asked for.
    pages = {*state.bus.wanted, *(u for _, wanted in state.subscribers for u in wanted)}
    uris |= {u for u in pages if (m := TRIALS_PAGE.fullmatch(u)) and f"experiment://{m[1]}/trials" in uris}
    uris = sorted(uris)
    if state.bus.active:
        for uri in uris:
            await state.bus.publish(ResourceUpdated(uri=uri))  # 2026-07-28: subscriptions/listen streams
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
    if (notice := state.take_switch_notice()) is not None:  # found by the watcher or a resource read
        raise ToolError(notice)
    changed: list[tuple[str | None, str]] = []

    def heard(experiment_id: str | None, scope: str) -> None:
        changed.append((experiment_id, scope))

    def call() -> T:
        lab = state.current(create)  # in the worker thread: opening the project's state does I/O
        lab.listeners.append(heard)
        try:
            return fn(lab)
        finally:
            lab.listeners.remove(heard)

    try:
        return await anyio.to_thread.run_sync(call)
    except ExperimentError as exc:
        if isinstance(exc, StoreError) and str(exc) == state.switch_notice:
            state.take_switch_notice()  # this call found the switch and is told: once
        raise _tool_error(exc) from exc
    except PermissionError as exc:  # (a bare "Error executing tool" otherwise)
        raise ToolError(permission_message(exc)) from exc
    finally:
        if changed:
            await notify_uris(state, (u for change in changed for u in experiment_uris(*change)))


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
    Field(min_length=1, max_length=MAX_ID_LENGTH, description="Experiment id, e.g. exp-20261125-101500."),
]


def register_subscriptions(server: CheckedServer) -> None:
    """resources/subscribe for handshake-era clients (Claude Code, the MCP Inspector). MCPServer
    serves subscriptions/listen for 2026-07-28 clients itself; the legacy methods are registered on
    the low-level server, which then advertises `resources.subscribe`."""
    low = server._lowlevel_server

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        state: AppState = ctx.lifespan_context
        uri = str(params.uri)
        await _refuse_unknown_experiment(state, uri, server.unknown_resource)
        for session, uris in state.subscribers:
            if _connection(session) is _connection(ctx.session):
                uris.add(uri)
                break
        else:
            state.subscribers.append((ctx.session, {uri}))
        state.wake_watcher()
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        state: AppState = ctx.lifespan_context
        for session, uris in state.subscribers:
            if _connection(session) is _connection(ctx.session):
                uris.discard(str(params.uri))
        return EmptyResult()

    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    if isinstance(server._subscriptions, QuietBus):  # listen streams: told which URIs they want
        low.add_request_handler(
            "subscriptions/listen", SubscriptionsListenRequestParams, ListenTracker(server._subscriptions)
        )
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


async def _refuse_unknown_experiment(state: AppState, uri: str, unknown: Callable[[str], str]) -> None:
    """A subscription to a URI that names no resource (a typo: experiments://lists), or to
    experiment://<id>... of an id the store does not know, is refused with the message a read would
    give: it would otherwise wait, without a word, for changes that never come."""
    experiment_id = uri.removeprefix("experiment://").split("/", 1)[0] if uri.startswith("experiment://") else None
    known = [*experiment_uris(experiment_id), SETTINGS_URI]
    if uri not in known and not TRIALS_PAGE.fullmatch(uri):
        raise MCPError(INVALID_PARAMS, unknown(uri))  # as a read is told
    if experiment_id is None:
        return
    try:
        await anyio.to_thread.run_sync(lambda: state.lab.get(experiment_id))
    except NotFound as exc:
        raise MCPError(INVALID_PARAMS, str(exc)) from exc
    except ExperimentError as exc:
        raise MCPError(INTERNAL_ERROR, str(exc)) from exc


def _connection(session: Any) -> Any:
    """Sessions are per request; the connection they share identifies the subscriber."""
    return getattr(session, "_connection", session)


class ChangeWatcher:
    """What other processes (a second server on the project, a CLI command) committed to the
    database since the last look, as the resource URIs that changed.

    It reads `PRAGMA data_version` on the Lab's own connection: SQLite changes it when another
    connection commits, never for this connection's own writes, which `run_lab` notifies at once.
    Read inside one read transaction, the version and the rows below belong to one snapshot. The
    changed experiments are those with new events or trials, or other per-arm counts (a record, a
    void); new events without an experiment (settings) change the lists and the settings. The
    settings files are stat-ed too: a hand edit of settings.toml or of pyproject.toml's section
    changes the settings resource."""

    def __init__(self) -> None:
        self._lab: Lab | None = None
        self._files: tuple[tuple[int, int] | None, ...] = ()
        self._version = -1
        self._event_id = 0
        self._trial_id = 0
        self._counts: dict[tuple[str, str], tuple[int, ...]] = {}
        self._gone: Lab | None = None

    def gone(self, lab: Lab) -> list[str]:
        """The URIs of what `lab`'s database held, once, when that file was deleted or replaced
        under the server (its open connection still reads the old file)."""
        if lab is self._gone:
            return []
        self._gone = lab
        try:
            ids = lab.store.ids_as_opened()
        except sqlite3.Error:
            ids = []
        uris = {u for experiment_id in [None, *ids] for u in experiment_uris(experiment_id)}
        return sorted(uris | {SETTINGS_URI})

    def poll(self, lab: Lab, own_settings: tuple[tuple[int, int] | None, ...] | None = None) -> list[str]:
        """The URIs changed by other processes since the last poll; none on the first poll (it
        takes the baseline). A Lab other than the last one (AppState.current switched from an empty
        project to its database, which another process made) has changed everything it holds.
        This process's own writes since the last poll join the baseline when no other process
        wrote meanwhile; otherwise they are notified again (harmless: a client reads once more)."""
        first, switched = self._lab is None, lab is not self._lab
        changed: set[str | None] = set()
        files = settings_signature(lab)
        settings = not first and files != self._files and files != own_settings
        self._files = files
        with lab.store.reading() as db:
            version = int(db.execute("PRAGMA data_version").fetchone()[0])
            counts = {
                (r[0], r[1]): tuple(r[2:])
                for r in db.execute(
                    "SELECT experiment_id, arm, assigned, recorded, abandoned, successes FROM arm_counts"
                )
            }
            if switched or version == self._version:
                if not first and switched:
                    changed = {None, *(r[0] for r in db.execute("SELECT id FROM experiments"))}
                    settings = True
                self._event_id = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
                self._trial_id = db.execute("SELECT COALESCE(MAX(id), 0) FROM trials").fetchone()[0]
            else:
                for event_id, experiment_id, kind in db.execute(
                    "SELECT id, experiment_id, kind FROM events WHERE id > ?", (self._event_id,)
                ):
                    self._event_id = max(self._event_id, event_id)
                    changed.add(experiment_id)
                    settings = settings or kind == "settings_updated"
                for trial_id, experiment_id in db.execute(
                    "SELECT MAX(id), experiment_id FROM trials WHERE id > ? GROUP BY experiment_id", (self._trial_id,)
                ):
                    self._trial_id = max(self._trial_id, trial_id)
                    changed.add(experiment_id)
                moved = counts.keys() | self._counts.keys()
                changed.update(key[0] for key in moved if counts.get(key) != self._counts.get(key))
        self._lab, self._version, self._counts = lab, version, counts
        uris = {u for experiment_id in changed for u in experiment_uris(experiment_id)}
        return sorted(uris | ({SETTINGS_URI} if settings else set()))


def settings_signature(lab: Lab) -> tuple[tuple[int, int] | None, ...]:
    """The settings files' signatures: settings.toml and pyproject.toml (its section)."""
    return tuple(_signature(path) for path in (lab.state_dir / SETTINGS_FILE_NAME, lab.project_root / "pyproject.toml"))


def _signature(path: Path) -> tuple[int, int] | None:
    """A file's modification time and size (None: no such file), to tell that it was edited."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _poll(watcher: ChangeWatcher, state: AppState) -> list[str]:
    """In a worker thread: current() may open the project's database. A database deleted or replaced
    under the server is left for the next call to find (it switches, and tells the person why: the
    watcher that switched first had swallowed that, from a review); the watcher notifies what the
    old file held."""
    opened = state.opened
    if isinstance(opened, Lab) and state.reopen is not None and opened.store.moved():
        gone = watcher.gone(opened)
        with suppress(StoreError):  # switch now, to watch what is there now; the next tool call is told
            state.current()
        return gone
    return watcher.poll(state.current(), state.settings_written)


async def watch_other_processes(state: AppState) -> None:
    """While any client subscribes, look every WATCH_INTERVAL_S seconds for changes that other
    processes committed, and notify them. Idle (waiting on an event, no polling) while nobody
    subscribes."""
    watcher = ChangeWatcher()
    state.bus.on_listen = state.wake_watcher
    while True:
        if not state.listening:
            watcher = ChangeWatcher()  # a baseline is taken again when someone subscribes
            await state.wait_for_subscriber()
            continue
        try:
            uris = await anyio.to_thread.run_sync(_poll, watcher, state)
        except (ExperimentError, sqlite3.Error) as exc:  # a damaged or closed store: the calls say why
            logger.debug("change watcher: %s", exc)
            uris = []
        if uris:
            await notify_uris(state, uris)
        await anyio.sleep(WATCH_INTERVAL_S)


@asynccontextmanager
async def watching(state: AppState) -> AsyncIterator[None]:
    """Run `watch_other_processes` beside the body (the server's lifespan). The body's own
    exception comes out as it was raised, not wrapped in the task group's exception group; a bug in
    the watcher is logged with its traceback and ends the watching, not the server."""

    async def watch() -> None:
        try:
            await watch_other_processes(state)
        except Exception:  # boundary: notifications of other processes' changes are a convenience
            logger.exception("meta-experiment: watching for other processes' changes stopped")

    failure: BaseException | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            yield
        except BaseException as exc:  # re-raised below, once the watcher has stopped
            failure = exc
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure
