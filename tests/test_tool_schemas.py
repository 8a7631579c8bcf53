"""The shipped tool schemas (tool_schemas.json): current, used, equal to what the SDK derives, and
ignored when they do not match the running source."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from meta_experiment import tool_schemas
from meta_experiment.mcp_server import build_server

REGENERATE = "tool_schemas.json is stale: run `python -m meta_experiment.tool_schemas` and commit the file"


@pytest.fixture
def fresh_cache():
    tool_schemas.shipped.cache_clear()
    yield
    tool_schemas.shipped.cache_clear()


def _listed(server) -> list[dict]:
    async def go():
        return await server.list_tools()

    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in anyio.run(go)]


def test_the_shipped_file_is_current(fresh_cache) -> None:
    document = json.loads(tool_schemas.SCHEMAS_FILE.read_text(encoding="utf-8"))
    assert document["fingerprint"] == tool_schemas.fingerprint(), REGENERATE
    assert json.dumps(document) == json.dumps(tool_schemas.generate()), REGENERATE  # key order too
    assert list(tool_schemas.shipped()) == list(document["tools"]) and len(document["tools"]) >= 14


def test_tools_registered_from_the_file_equal_the_sdks(tmp_path: Path, fresh_cache) -> None:
    fast = build_server(tmp_path, tmp_path / ".state")
    slow = build_server(tmp_path, tmp_path / ".state", cached_schemas=False)
    shipped = tool_schemas.shipped()
    fast_tools = {t.name: t for t in fast._tool_manager.list_tools()}
    slow_tools = {t.name: t for t in slow._tool_manager.list_tools()}
    assert list(fast_tools) == list(slow_tools)
    for name, a in fast_tools.items():
        b = slow_tools[name]
        assert a.output_schema is shipped[name]["output_schema"]  # read from the file, not derived
        assert b.output_schema is not shipped[name]["output_schema"]
        # the same schemas, keys in the same order (the order a client lists the arguments in)
        assert json.dumps([a.parameters, a.output_schema]) == json.dumps([b.parameters, b.output_schema]), name
        for field in ("title", "description", "is_async", "context_kwarg", "annotations", "icons", "meta"):
            assert getattr(a, field) == getattr(b, field), (name, field)
        assert a.fn_metadata.output_model is b.fn_metadata.output_model
        assert a.fn_metadata.wrap_output == b.fn_metadata.wrap_output is False
        assert {k: (type(r), r.fn.__qualname__, union) for k, (r, union) in a.resolved_params.items()} == {
            k: (type(r), r.fn.__qualname__, union) for k, (r, union) in b.resolved_params.items()
        }, name
        assert a.resolver_plans.keys() == b.resolver_plans.keys(), name
        assert a.fn_metadata.arg_model.model_json_schema() == b.fn_metadata.arg_model.model_json_schema()
    assert {n for n, t in fast_tools.items() if t.resolved_params} == {"promote", "rollback"}
    assert json.dumps(_listed(fast)) == json.dumps(_listed(slow))  # what a client sees in tools/list


def test_a_stale_or_broken_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cache) -> None:
    reference = _listed(build_server(tmp_path, tmp_path / ".state", cached_schemas=False))
    document = json.loads(tool_schemas.SCHEMAS_FILE.read_text(encoding="utf-8"))
    # A schema that would show if the file were used despite its fingerprint.
    document["tools"]["status"]["parameters"] = {"type": "object", "properties": {"stale": {"type": "string"}}}
    stale = tmp_path / "stale.json"
    for text in (json.dumps({**document, "fingerprint": "0" * 64}), "{not json", json.dumps([1, 2])):
        stale.write_text(text, encoding="utf-8")
        monkeypatch.setattr(tool_schemas, "SCHEMAS_FILE", stale)
        tool_schemas.shipped.cache_clear()
        assert tool_schemas.shipped() == {}
        assert _listed(build_server(tmp_path, tmp_path / ".state")) == reference

    # An SDK installed without its package metadata: the versions are unknown, so the file is not used.
    def no_metadata(name: str) -> str:
        raise tool_schemas.metadata.PackageNotFoundError(name)

    stale.write_text(json.dumps(document), encoding="utf-8")
    with monkeypatch.context() as patched:
        patched.setattr(tool_schemas.metadata, "version", no_metadata)
        tool_schemas.shipped.cache_clear()
        assert tool_schemas.shipped() == {}
    # The same document with the right fingerprint is used: the checks above are the fingerprint's.
    stale.write_text(json.dumps(document), encoding="utf-8")
    tool_schemas.shipped.cache_clear()
    listed = {t["name"]: t for t in _listed(build_server(tmp_path, tmp_path / ".state"))}
    assert listed["status"]["inputSchema"]["properties"] == {"stale": {"type": "string"}}


def test_the_fingerprint_follows_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    (package / "stats").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "stats" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(tool_schemas, "PACKAGE", package)
    before = tool_schemas.fingerprint()
    (package / "stats" / "b.py").write_text("y = 3\n")
    assert tool_schemas.fingerprint() != before
    (package / "stats" / "b.py").write_text("y = 2\n")
    assert tool_schemas.fingerprint() == before
    (package / "notes.txt").write_text("not source\n")
    assert tool_schemas.fingerprint() == before


def test_every_bound_is_a_json_schema_keyword(tmp_path: Path) -> None:
    """From a review: a validator placed before the Field with the bounds made pydantic write them
    as ge/le/gt/lt, which no client reads (confidence_threshold had no bounds a client could see,
    while the refusal said "the tool's input schema lists them")."""

    def keys(node) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for value in node.values() for k in keys(value)}
        if isinstance(node, list):
            return {k for value in node for k in keys(value)}
        return set()

    schemas = _listed(build_server(tmp_path, tmp_path / ".state"))
    found = keys([s["inputSchema"] for s in schemas] + [s.get("outputSchema") for s in schemas])
    assert not found & {"ge", "le", "gt", "lt"}
    create = next(s for s in schemas if s["name"] == "create_experiment")["inputSchema"]
    assert {"exclusiveMinimum": 0.5, "exclusiveMaximum": 1.0, "type": "number"} in create["properties"][
        "confidence_threshold"
    ]["anyOf"]
