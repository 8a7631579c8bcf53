"""promote, rollback and auto through a real MCP client (in memory), in the legacy initialize mode
and the 2026-07-28 mode: confirmation by elicitation (accept, decline), `confirm: true` for clients
that cannot elicit, dry runs, refusals, conflicts, and the alerts resource; and once over stdio."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from conftest import COMMAND, PROD, VARIANT, server_env, spec
from meta_experiment.lifecycle import Lab
from meta_experiment.mcp_server import build_server
from release_helpers import LOSER_MEAN, head, record_trials, winner

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ready(project: Path) -> str:
    """A winner, prepared through the lifecycle before the server opens the same state."""
    lab = Lab.open(project)
    try:
        return winner(lab).id
    finally:
        lab.close()


class Person:
    """An elicitation callback that answers like a person would, and remembers the questions."""

    def __init__(self, answer: str, confirm: bool = True) -> None:
        self.answer, self.confirm, self.asked = answer, confirm, []

    async def __call__(self, ctx, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params.message)
        if self.answer == "accept":
            return types.ElicitResult(action="accept", content={"confirm": self.confirm})
        return types.ElicitResult(action=self.answer)


def client(project: Path, mode: str, person: Person | None = None) -> Client:
    server = build_server(project, project / ".meta-experiment")
    return Client(server, mode=mode, **({"elicitation_callback": person} if person else {}))


async def test_the_person_confirms_a_promote_and_a_rollback(project: Path, ready: str, mode: str) -> None:
    person = Person("accept")
    async with client(project, mode, person) as c:
        result = await c.call_tool("promote", {"experiment_id": ready})
        assert not result.is_error, result.content[0].text
        assert result.structured_content["outcome"] == "promoted"
        assert result.structured_content["git"]["status"] == "committed"
        assert (project / PROD).read_text() == VARIANT
        result = await c.call_tool("rollback", {"experiment_id": ready, "reason": "reviews got worse"})
        assert result.structured_content["outcome"] == "rolled_back", result.content[0].text
    assert (project / PROD).read_text() == COMMAND
    assert len(person.asked) == 2
    assert person.asked[0].startswith(f"Promote to production: {ready}?") and PROD in person.asked[0]
    assert person.asked[1].startswith(f"Roll back {ready}?") and "Reason: reviews got worse" in person.asked[1]


async def test_confirm_true_is_not_asked_again(project: Path, ready: str, mode: str) -> None:
    """From a review: Claude Code in print mode (claude -p, the Agent SDK) declares elicitation and
    cancels every question, so promote and rollback were 'declined by the person' whom nobody asked,
    even with confirm=true (and an interactive person was asked twice: in the chat, then the dialog).
    confirm=true, passed once the person agreed, is not asked again."""
    person = Person("cancel")
    async with client(project, mode, person) as c:
        done = await c.call_tool("promote", {"experiment_id": ready, "confirm": True})
        assert done.structured_content["outcome"] == "promoted", done.content[0].text
    assert (project / PROD).read_text() == VARIANT and person.asked == []


@pytest.mark.parametrize("answer", ["decline", "cancel", "accept-but-no"])
async def test_a_person_who_says_no_changes_nothing(project: Path, ready: str, mode: str, answer: str) -> None:
    """A dismissed question (cancel: Esc, the dialog closed) is no yes either (a review found one
    that went ahead)."""
    person = Person("accept", confirm=False) if answer == "accept-but-no" else Person(answer)
    before = head(project)
    async with client(project, mode, person) as c:
        result = await c.call_tool("promote", {"experiment_id": ready})
        assert not result.is_error and result.structured_content["outcome"] == "declined"
        assert result.content[0].text.startswith("Declined by the person, nothing changed")
    assert person.asked and (project / PROD).read_text() == COMMAND and head(project) == before


async def test_without_elicitation_confirm_true_is_required(project: Path, ready: str, mode: str) -> None:
    async with client(project, mode) as c:
        refused = await c.call_tool("promote", {"experiment_id": ready})
        assert refused.is_error and "confirm=true only if they agree" in refused.content[0].text
        assert "overwrites production files" in refused.content[0].text
        stop = await c.call_tool("rollback", {"experiment_id": ready, "reason": "not now"})
        # a running experiment's rollback changes no file: it is not said to overwrite any
        assert stop.is_error and "ends the experiment (production is untouched)" in stop.content[0].text
        assert (project / PROD).read_text() == COMMAND
        done = await c.call_tool("promote", {"experiment_id": ready, "confirm": True})
        assert done.structured_content["outcome"] == "promoted"
    assert (project / PROD).read_text() == VARIANT


async def test_a_dry_run_never_asks_and_returns_the_diff(project: Path, ready: str, mode: str) -> None:
    person = Person("accept")
    async with client(project, mode, person) as c:
        result = await c.call_tool("promote", {"experiment_id": ready, "dry_run": True})
    assert result.structured_content["outcome"] == "dry_run" and person.asked == []
    assert f"--- a/{PROD} (production)" in result.structured_content["diff"]
    assert "```diff" in result.content[0].text
    assert (project / PROD).read_text() == COMMAND


def _young(project: Path) -> str:
    """A running experiment without any trial: the policy does not recommend promoting it."""
    lab = Lab.open(project)
    try:
        return lab.create(**spec(sample_size_required=20)).id
    finally:
        lab.close()


async def test_a_dry_run_shows_the_diff_of_a_refused_promotion_and_a_forced_one_says_so(
    project: Path, mode: str
) -> None:
    young = _young(project)
    person = Person("accept")
    async with client(project, mode, person) as c:
        dry = await c.call_tool("promote", {"experiment_id": young, "dry_run": True})
        assert not dry.is_error and dry.structured_content["would_refuse"].startswith(f"{young} is not ready")
        assert "+Review the pull request. Run the security analyst and the cleanup agent" in dry.content[0].text
        assert person.asked == [] and (project / PROD).read_text() == COMMAND
        forced = await c.call_tool("promote", {"experiment_id": young, "force": True, "reason": "ship"})
        assert not forced.is_error, forced.content[0].text
    question = person.asked[-1]
    assert "Forced against the decision policy, which says: " in question and "Reason: ship" in question
    assert "Diff of production:" in question and "+Review the pull request. Run the security analyst and" in question


async def test_refusals_are_tool_errors_and_nobody_is_asked(project: Path, mode: str) -> None:
    young = _young(project)
    person = Person("accept")
    async with client(project, mode, person) as c:
        not_ready = await c.call_tool("promote", {"experiment_id": young})
        assert not_ready.is_error and "not ready to promote" in not_ready.content[0].text
        missing = await c.call_tool("rollback", {"experiment_id": "exp-nope", "reason": "x"})
        assert missing.is_error and "No experiment with id 'exp-nope'" in missing.content[0].text
        no_reason = await c.call_tool("rollback", {"experiment_id": young})
        assert no_reason.is_error
        (project / PROD).write_text("edited\n")
        forced = await c.call_tool("promote", {"experiment_id": young, "force": True, "reason": "ship"})
        assert forced.is_error and "was edited since the experiment started" in forced.content[0].text
        assert "+edited" in forced.content[0].text  # the diff travels with the error
    assert person.asked == [] and (project / PROD).read_text() == "edited\n"
    assert all("Traceback" not in r.content[0].text for r in (not_ready, missing, no_reason, forced))


async def test_auto_tool_and_alerts_resource(project: Path, mode: str) -> None:
    lab = Lab.open(project)
    try:
        e = lab.create(**spec(sample_size_required=20, auto_rollback=False))
        record_trials(lab, e.id, treatment=LOSER_MEAN)
    finally:
        lab.close()
    async with client(project, mode) as c:
        result = await c.call_tool("auto", {})
        [item] = result.structured_content["items"]
        assert (item["decision"], item["action"]) == ("rollback", "recommend_rollback")
        assert "Recommend rolling back" in result.content[0].text
        alerts = json.loads((await c.read_resource("experiments://alerts")).contents[0].text)
        assert [a["kind"] for a in alerts] == ["performance_regression"]
        detail = json.loads((await c.read_resource(f"experiment://{e.id}")).contents[0].text)
        assert detail["alerts"][0]["message"].startswith("Performance regression")
        status = await c.call_tool("status", {})
        assert status.structured_content["release"]["alerts"][0]["kind"] == "performance_regression"


async def test_a_rollback_dry_run_needs_no_reason_and_a_real_one_says_so_first(
    project: Path, ready: str, mode: str
) -> None:
    person = Person("accept")
    async with client(project, mode, person) as c:
        dry = await c.call_tool("rollback", {"experiment_id": ready, "dry_run": True})
        assert not dry.is_error, dry.content[0].text
        assert dry.structured_content["outcome"] == "dry_run" and dry.structured_content["reason"] is None
        assert "Rolling back would stop the experiment after 40 recorded trial(s)" in dry.content[0].text
        real = await c.call_tool("rollback", {"experiment_id": ready})
        assert real.is_error and "A rollback needs a reason" in real.content[0].text
        forced = await c.call_tool("rollback", {"experiment_id": ready, "confirm": True})
        assert forced.is_error and "A rollback needs a reason" in forced.content[0].text
    assert person.asked == []  # nobody is asked about a call that would fail
    lab = Lab.open(project)
    try:
        assert lab.get(ready).status == "running"
    finally:
        lab.close()


async def test_a_long_diff_is_cut_in_the_text_and_whole_in_the_structured_content(project: Path, mode: str) -> None:
    from test_cli_release import big_diff_experiment

    experiment_id = big_diff_experiment(project)
    async with client(project, mode) as c:
        dry = await c.call_tool("promote", {"experiment_id": experiment_id, "dry_run": True})
        text = dry.content[0].text
        assert len(text) < 12_000 and "-line 396\n" in text and "-line 397\n" not in text
        assert (
            "... 9603 more diff lines (the full diff: the structured content's `diff` field; "
            f"`meta-experiment promote {experiment_id} --dry-run` prints it all)"
        ) in text
        assert "+line 4999 rewritten" in dry.structured_content["diff"]  # the structured result is complete
        done = await c.call_tool("promote", {"experiment_id": experiment_id, "confirm": True})
        commit = done.structured_content["git"]["commit"]
        assert f"more diff lines (the full diff: the structured content's `diff` field; git show {commit[:12]})" in (
            done.content[0].text
        )


async def test_the_question_says_which_files_already_hold_the_variant(project: Path, ready: str, mode: str) -> None:
    (project / PROD).write_text(VARIANT)
    person = Person("accept")
    async with client(project, mode, person) as c:
        result = await c.call_tool("promote", {"experiment_id": ready})
    assert result.structured_content["outcome"] == "promoted", result.content[0].text
    assert f"{PROD} already held the tested variant" in result.content[0].text
    [question] = person.asked
    assert (
        f"These already hold the new content (copied by hand?): not written, only recorded and committed:\n- {PROD}"
        in (question)
    )
    assert "will be written" not in question


async def test_confirmed_promote_over_a_stdio_subprocess(project: Path, ready: str) -> None:
    """The way Claude Code runs it: `meta-experiment serve` as a subprocess, initialize handshake,
    the person's confirmation as a mid-call elicitation request."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "meta_experiment", "serve"], env=server_env(project), cwd=str(project)
    )
    person = Person("accept")
    async with Client(params, mode="legacy", read_timeout_seconds=60, elicitation_callback=person) as c:
        result = await c.call_tool("promote", {"experiment_id": ready})
    assert not result.is_error, result.content[0].text
    assert result.structured_content["outcome"] == "promoted" and len(person.asked) == 1
    assert (project / PROD).read_text() == VARIANT
