"""The export and import tools through a real MCP client: refusals of interchange's checks arrive
as tool errors in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from meta_experiment.mcp_server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _error(project: Path, tool: str, args: dict) -> str:
    async with Client(build_server(project, project / ".meta-experiment"), mode="auto") as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = result.content[0].text
    assert "Traceback" not in text and "Value error" not in text and "char 0" not in text
    return text


async def test_an_empty_list_of_ids_is_an_error_not_all(project: Path) -> None:
    text = await _error(project, "export_experiments", {"experiment_ids": []})
    assert "list of experiment ids is empty" in text and "leave the ids out to export all" in text


async def test_a_file_that_is_not_json_says_so(project: Path) -> None:
    (project / "b.md").write_text("# notes\n")
    text = await _error(project, "import_experiments", {"path": "b.md"})
    assert "'b.md' is not valid JSON (expecting value at line 1, column 1)" in text


def test_a_rehearsal_keeps_nothing_and_tells_nobody(tmp_path: Path) -> None:
    """Lab.rehearse (the check before a project's state folder is made): the import runs, is undone,
    and no listener hears of experiments that were never kept."""
    from meta_experiment.interchange import export_experiments, import_experiments
    from meta_experiment.lifecycle import Lab

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.md").write_text("x\n")
    (tmp_path / "a" / "y.md").write_text("y\n")
    source = Lab.open(tmp_path / "a", create=True)
    try:
        primary = {"name": "t", "direction": "lower_is_better"}
        source.create(name="n", hypothesis="h", files={"x.md": "y.md"}, primary_metric=primary)
        document = export_experiments(source)
    finally:
        source.close()
    (tmp_path / "b").mkdir()
    empty = Lab.open(tmp_path / "b", create=False)
    heard: list[str | None] = []
    empty.listeners.append(lambda i, _scope: heard.append(i))
    try:
        empty.rehearse(lambda lab: import_experiments(lab, document))
        assert heard == [] and empty.experiments() == [] and not empty.has_database()
        import_experiments(empty, document)  # the real one (here into the in-memory store) is heard
        assert len(heard) == 1 and len(empty.experiments()) == 1
    finally:
        empty.close()
