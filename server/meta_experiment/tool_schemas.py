"""The tools' JSON schemas, generated once and shipped, so that starting the server does not
regenerate them.

Registering a tool makes the SDK derive two JSON schemas with pydantic: its arguments and its
structured output. For thirteen tools whose outputs nest the experiment and analysis models that
is most of the time between importing the package and answering the first `tools/list` (about
0.1 s of a cold start here). The schemas depend only on this package's source and the pydantic and
MCP SDK versions, so `tool_schemas.json` holds them with a fingerprint of those three; a tool is
registered from it only when the fingerprint matches what is running, and the SDK's own path runs
otherwise (an edited source, another pydantic), so the file can be stale but never wrong. The
tests check that the file is current and that a tool registered from it equals the SDK's.

Regenerate after changing a tool, a model or its descriptions:

    python -m meta_experiment.tool_schemas
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pydantic

PACKAGE = Path(__file__).resolve().parent
SCHEMAS_FILE = PACKAGE / "tool_schemas.json"


def fingerprint() -> str:
    """sha256 of every .py file of the package (by relative path) and the pydantic and MCP SDK
    versions: what the generated schemas depend on."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"pydantic {pydantic.VERSION}; mcp {metadata.version('mcp')}".encode())
    return digest.hexdigest()


@cache
def shipped() -> dict[str, dict[str, Any]]:
    """{tool name: {"parameters", "output_schema", "output_model"}} from the shipped file when it
    was generated from this very source and these versions, else {} (every tool then takes the
    SDK's path)."""
    try:
        document = json.loads(SCHEMAS_FILE.read_text(encoding="utf-8"))
        current = fingerprint()
    except (OSError, ValueError, metadata.PackageNotFoundError):  # no file, not JSON, an SDK without metadata
        return {}
    if not isinstance(document, dict) or document.get("fingerprint") != current:
        return {}
    tools = document.get("tools")
    return tools if isinstance(tools, dict) else {}


def structured_model(fn: Callable[..., Any]) -> type[pydantic.BaseModel] | None:
    """`M` for a tool annotated `-> Annotated[CallToolResult, M]` with M a pydantic model (how every
    tool here returns a text plus structured content), else None. Such a return has no
    InputRequiredResult arm, so the SDK's check that a resolver and that arm are not combined
    holds."""
    from mcp_types import CallToolResult

    returns = fn.__annotations__.get("return")
    if isinstance(returns, str):  # `from __future__ import annotations`: evaluate the return type alone
        try:
            returns = eval(returns, fn.__globals__)
        except Exception:
            return None
    if typing.get_origin(returns) is not typing.Annotated:
        return None
    base, *extra = typing.get_args(returns)
    if base is not CallToolResult or len(extra) != 1:
        return None
    model = extra[0]
    return model if isinstance(model, type) and issubclass(model, pydantic.BaseModel) else None


def tool_from_cache(fn: Callable[..., Any], name: str, entry: dict[str, Any], **fields: Any) -> Any:
    """The SDK's `Tool.from_function(fn, name=name, **fields)` with the two schemas taken from
    `entry` instead of derived; None when `fn` is not of the shape the entry was made for (the
    caller then takes the SDK's path)."""
    from mcp.server.mcpserver.resolve import build_resolver_plans, find_resolved_parameters
    from mcp.server.mcpserver.tools.base import Tool
    from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
    from mcp.server.mcpserver.utilities.func_metadata import func_metadata

    model = structured_model(fn)
    parameters, output_schema = entry.get("parameters"), entry.get("output_schema")
    if (
        model is None
        or entry.get("output_model") != f"{model.__module__}.{model.__qualname__}"
        or not isinstance(parameters, dict)
        or not isinstance(output_schema, dict)
    ):
        return None
    context_kwarg = find_context_parameter(fn)
    resolved = find_resolved_parameters(fn)
    skip = [context_kwarg] if context_kwarg is not None else []
    skip.extend(resolved)
    # structured_output=False: the argument model only. The output fields are then set as the SDK
    # sets them for `Annotated[CallToolResult, M]` (FuncMetadata reads them live).
    fn_metadata = func_metadata(fn, skip_names=skip, structured_output=False)
    fn_metadata.output_model = model
    fn_metadata.output_schema = output_schema
    fn_metadata.wrap_output = False
    arg_names = {field.alias or key for key, field in fn_metadata.arg_model.model_fields.items()}
    description = fields.pop("description", None)
    return Tool(
        fn=fn,
        name=name,
        description=description or fn.__doc__ or "",
        parameters=parameters,
        fn_metadata=fn_metadata,
        is_async=inspect.iscoroutinefunction(fn),
        context_kwarg=context_kwarg,
        resolved_params=dict(resolved),
        resolver_plans=build_resolver_plans(resolved, arg_names),
        **fields,
    )


def generate() -> dict[str, Any]:
    """The document `tool_schemas.json` holds, from a server built the SDK's way."""
    from .mcp_server import build_server

    server = build_server(Path.cwd(), Path.cwd() / ".unused-state", cached_schemas=False)  # the state is never opened
    tools: dict[str, Any] = {}
    for tool in server._tool_manager.list_tools():
        model = tool.fn_metadata.output_model
        tools[tool.name] = {
            "output_model": f"{model.__module__}.{model.__qualname__}" if isinstance(model, type) else None,
            "parameters": tool.parameters,
            "output_schema": tool.output_schema,
        }
    return {"fingerprint": fingerprint(), "tools": tools}


def render(document: dict[str, Any]) -> str:
    # Keys keep their order: it is the order in which a client lists a tool's arguments.
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    text = render(generate())
    temporary = SCHEMAS_FILE.with_suffix(".json.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, SCHEMAS_FILE)
    print(f"wrote {SCHEMAS_FILE.name}: {len(json.loads(text)['tools'])} tools")
    return 0


if __name__ == "__main__":
    sys.exit(main())
