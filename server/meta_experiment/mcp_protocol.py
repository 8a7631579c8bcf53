"""The server class under the MCP surface: `CheckedServer` is the SDK's MCPServer with the
arguments checked before anything runs - an argument a tool or prompt does not have is refused in
one sentence (with a "did you mean" for a near miss), and argument errors read one sentence per
field - and with each tool's JSON schemas read from tool_schemas.json when that file is current."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
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
