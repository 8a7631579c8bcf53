"""The server class under the MCP surface: `CheckedServer` is the SDK's MCPServer with the
arguments checked before anything runs - an argument a tool or prompt does not have is refused in
one sentence (with a "did you mean" for a near miss), and argument errors read one sentence per
field - and with each tool's JSON schemas read from tool_schemas.json when that file is current."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, GetPromptResult, Icon, InputRequiredResult, ToolAnnotations
from pydantic import ValidationError

from . import tool_schemas
from .errors import validation_message


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


def unknown_name_message(kind: str, name: str, names: list[str]) -> str:
    """One sentence for a tool, prompt or resource that does not exist: the nearest names (letter
    case ignored) and every name there is."""
    by_lower = {n.lower(): n for n in names}
    shown = repr(name if len(name) <= 200 else name[:200] + "...")
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=2, cutoff=0.6)]
    if not close and len(name) >= 3:  # a name cut short: 'design' for design_experiment
        close = [n for lowered, n in by_lower.items() if lowered.startswith(name.lower())][:2]
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return f"There is no {kind} {shown}.{hint} The {kind}s are: {', '.join(names)}."


class CheckedServer(MCPServer):
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
        if schema is None:  # (the SDK answers a bare "Unknown tool: analyse")
            raise ToolError(unknown_name_message("tool", name, list(self._schemas)))
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

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        """The SDK's, with a URI that names no resource answered with the resources there are (the
        SDK answers a bare "Unknown resource: experiments://lists")."""
        try:
            return await super().read_resource(uri, context)
        except ResourceNotFoundError as exc:
            if not str(exc).startswith("Unknown resource"):
                raise
            raise ResourceNotFoundError(self.unknown_resource(str(uri))) from exc

    def unknown_resource(self, uri: str) -> str:
        """What a read of, or a subscription to, a URI that names no resource is told: the nearest of
        the resources and templates this server has, and all of them."""
        shapes = [str(r.uri) for r in self._resource_manager.list_resources()]
        shapes += [t.uri_template for t in self._resource_manager.list_templates()]
        return unknown_name_message("resource", uri, shapes)

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> GetPromptResult | InputRequiredResult:
        """The SDK's, with an unknown prompt or an argument the prompt does not have refused in one
        sentence, as tools refuse them (the SDK answers "Error rendering prompt" and logs pydantic's
        traceback)."""
        prompt = self._prompt_manager.get_prompt(name)
        if prompt is None:
            names = [p.name for p in self._prompt_manager.list_prompts()]
            raise MCPError(INVALID_PARAMS, unknown_name_message("prompt", name, names))
        known = prompt.arguments or []
        message = unknown_arguments_message(name, arguments or {}, {"properties": {a.name: {} for a in known}})
        missing = [a.name for a in known if a.required and a.name not in (arguments or {})]
        if message is None and missing:
            message = f"{name} needs the argument(s) {', '.join(missing)}."
        if message is not None:
            raise MCPError(INVALID_PARAMS, message)
        return await super().get_prompt(name, arguments, context)
