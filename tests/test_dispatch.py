"""Dispatchers: the text functions, putting one in place and taking it out (by hand and at every
end of an experiment, byte for byte), and the two hooks, on a real project (git, SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VAR, VARIANT, git, package_env, spec
from meta_experiment import dispatch, dispatch_ops, release
from meta_experiment.dispatch_ops import (
    on_agent_end,
    on_agent_start,
    on_agent_stop,
    on_prompt,
    on_session_start,
    on_skill,
    on_stop,
    set_dispatch,
)
from meta_experiment.errors import Conflict, InvalidInput, InvalidState
from meta_experiment.lifecycle import Lab
from release_helpers import record_trials

FRONT = '---\ndescription: Review a PR\nargument-hint: "[pr]"\nallowed-tools: Bash(gh pr view:*)\n---\n'


@pytest.fixture(autouse=True)
def no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks here run right after the dispatcher goes in: as if every session had noticed it
    (the wait itself is tested in test_runs_right_after_the_dispatcher_goes_in_are_not_trials)."""
    monkeypatch.setattr(dispatch_ops, "SETTLE_SECONDS", 0.0)


# ---- the text ----------------------------------------------------------------------------------------


# Worked examples: (command body, arguments, what Claude Code 2.1.332 sent the model), each seen in a
# real run; tests/test_dispatch_cli.py runs them through the CLI again.
W = "[$0]|[$1]|[$2]|[$3]|[$4]|[$5]\n"
RENDER_CASES = [
    ("Say hello to $ARGUMENTS politely.\n", "Bob", "Say hello to Bob politely.\n"),
    (
        "A=[$ARGUMENTS] 1=[$1] 2=[$2] 0=[$0] AI=[$ARGUMENTS[1]] ESC=[\\$ARGUMENTS]\n",
        'one "two three" four',
        'A=[one "two three" four] 1=[two three] 2=[four] 0=[one] AI=[two three] ESC=[$ARGUMENTS]\n',
    ),
    ("\n\nNo placeholder here.\n\n", "a b", "No placeholder here.\n\n\n\nARGUMENTS: a b"),
    ("\n\nNo placeholder here.\n\n", "", "No placeholder here.\n\n"),
    (
        "A=[$ARGUMENTS] 5=[$5] E=[\\$1] 10=[$10] AX=[$ARGUMENTSX] N=[$name] $1$0\n",
        "",
        "A=[] 5=[$5] E=[$1] 10=[$10] AX=[X] N=[$name] $1$0\n",
    ),
    (
        "A=[$ARGUMENTS] 5=[$5] E=[\\$1] 10=[$10] AX=[$ARGUMENTSX] N=[$name] $1$0\n",
        "'a b' c\\ d \"e\"f",
        "A=['a b' c\\ d \"e\"f] 5=[$5] E=[$1] 10=[$10] AX=['a b' c\\ d \"e\"fX] N=[$name] c da b\n",
    ),
    ("no front $ARGUMENTS\n", "  spaced   args ", "no front spaced   args\n"),
    ("Only $0 here.\n", "a b", "Only a here.\n"),
    ("Only $ARGUMENTS[1] here.\n", "a b", "Only b here.\n"),
    ("Only $ARGUMENTS[1] here.\n", "a", "Only $ARGUMENTS[1] here.\n\n\nARGUMENTS: a"),
    ("Out $7 here.\n", "a b", "Out $7 here.\n\n\nARGUMENTS: a b"),
    ("Only $0 here.\n", "'unclosed x", "Only 'unclosed x here.\n"),
    ("Only $0 here.\n", '"a b', 'Only "a b here.\n'),
    ("Only $0 here.\n", "a'b c", "Only a'b c here.\n"),
    ("Only $1 here.\n", "'a b' 'c", "Only 'c here.\n"),
    ("[$0]|[$1]|[$2]|[$3]\n", 'x\\ y "q\\"z" \'it\'\'s\' "a\\\\b"', '[x y]|[q\\"z]|[its]|[a\\\\b]\n'),
    ("[$0]|[$1]|[$2]\n", "'a\\b' a\\\\b a\"b c\"d", "[a\\b]|[a\\b]|[ab cd]\n"),
    ("[$0]|[$1]|[$2]\n", "$x ${x}y ~/*.py", "[$x]|[${x}y]|[~/*.py]\n"),
    ("[$0]|[$1]\n", "a;b c", "[a]|[$1]\n"),
    ("[$0]|[$1]\n", "a > b c", "[a]|[$1]\n"),
    ("[$0]|[$1]\n", "a #c d", "[a]|[$1]\n"),
    ("[$0]|[$1]\n", "a\\ ", "[a]|[$1]\n"),
    # from a review, each seen in the CLI: a comment alone falls back to blank-separated words (#42 is
    # likely: a PR number); a leading ! is escaped; assignments, a lone $, parentheses, line breaks
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "#42 fast", "A=[#42 fast]|[#42]|[fast]|[$2]\n"),
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "!x y", "A=[\\!x y]|[\\!x]|[y]|[$2]\n"),
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "a!b c", "A=[a!b c]|[a!b]|[c]|[$2]\n"),
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "a=b c", "A=[a=b c]|[c]|[$1]|[$2]\n"),
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "x a=b", "A=[x a=b]|[x]|[a=b]|[$2]\n"),
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "x $", "A=[x $]|[x]|[$1]|[$2]\n"),
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "(a) b", "A=[(a) b]|[a]|[$1]|[$2]\n"),
    ("A=[$ARGUMENTS]|[$0]|[$1]|[$2]\n", "42\nbe quick", "A=[42\nbe quick]|[42]|[$1]|[$2]\n"),
    ("A=[\\\\$0]|[$1x]|[$0_]|[\\\\\\$0]|[$ARGUMENTS_]\n", "12 34", "A=[\\\\12]|[$1x]|[$0_]|[\\\\\\12]|[12 34_]\n"),
    # how tree-sitter-bash reads them (Claude Code's parser), each seen in the CLI: an expansion alone is
    # not a word, joined to text it is; a substitution ends the words (in the first word it stays); a
    # declaration keyword is the only word; parenthesised groups and a lone = are left out; a ! that
    # starts a word is escaped in each word and in the whole; above 10,000 characters, blanks split
    (W, "costs $5 total, $5.00 or a$x ${x}${y} $@", "[costs]|[total,]|[$5.00]|[or]|[a$x]|[${x}${y}]\n"),
    (W, "export the data now", "[export]|[$1]|[$2]|[$3]|[$4]|[$5]\n"),
    (W, "x=1 export a", "[export]|[a]|[$2]|[$3]|[$4]|[$5]\n"),
    (W, "a = b (c d) e(f) g", "[a]|[b]|[g]|[$3]|[$4]|[$5]\n"),
    (W, "a b `c` d", "[a]|[b]|[$2]|[$3]|[$4]|[$5]\n"),
    (W, "$(x) a b$(c) d", "[$(x)]|[a]|[$2]|[$3]|[$4]|[$5]\n"),
    (W, "a $((1+2)) $# b ${x $'y", "[a]|[b]|[$2]|[$3]|[$4]|[$5]\n"),
    ("A=[$ARGUMENTS] " + W, '! a "!b" c !d', 'A=[\\! a "!b" c \\!d] [a]|[\\!b]|[c]|[\\!d]|[$4]|[$5]\n'),
    ("[$0]|[$1]\n", '"p q" r ' + "x" * 9_993, '["p]|[q"]\n'),
    # the shell's keywords before the first word (common English: "if possible", "do it now")
    (W, "if possible be quick", "[possible]|[be]|[quick]|[$3]|[$4]|[$5]\n"),
    (W, "for the release in 2024", "[release]|[in]|[2024]|[$3]|[$4]|[$5]\n"),
    (W, "for x in y z", "[for]|[x]|[in]|[y]|[z]|[$5]\n"),
    (W, "else do it", "[it]|[$1]|[$2]|[$3]|[$4]|[$5]\n"),
    (W, "{ if ! a b }", "[a]|[b]|[}]|[$3]|[$4]|[$5]\n"),
    (W, "function f x y", "[x]|[y]|[$2]|[$3]|[$4]|[$5]\n"),
    (W, "while", "[while]|[$1]|[$2]|[$3]|[$4]|[$5]\n"),
    (W, "a \\\nb $((1+(2))) ${x:-${y}} c", "[a]|[b]|[c]|[$3]|[$4]|[$5]\n"),
    # U+FFFE and U+FFFF (Claude Code's own markers while it fills placeholders) become U+FFFD
    ("Mark \ufffe $0 \uffff\n", "a\ufffeb c", "Mark \ufffd a\ufffdb \ufffd\n"),
    ("Mark \ufffe\n", "", "Mark \ufffd\n"),
]


@pytest.mark.parametrize(("body", "arguments", "expected"), RENDER_CASES)
def test_render_fills_in_the_arguments_as_claude_code_does(body: str, arguments: str, expected: str) -> None:
    assert dispatch.render("---\ndescription: x\n---\n" + body, arguments) == expected
    assert dispatch.render(body, arguments) == expected  # without front matter, the same


def test_arguments_with_a_lone_surrogate_still_split() -> None:
    """A broken emoji in a prompt's JSON reads as a lone surrogate: it is counted, not an error."""
    assert dispatch.split_words("a \ud800 b") == ["a", "\ud800", "b"]


def test_command_names_and_paths() -> None:
    assert dispatch.command_name(".claude/commands/review.md") == "review"
    assert dispatch.command_name(".claude/commands/git/pr.md") == "git:pr"
    for other in ("prompts/review.md", ".claude/commands/review.txt", ".claude/agents/x.md", ".claude/commands/.md"):
        assert dispatch.command_name(other) is None
    assert dispatch.command_path("git:pr") == ".claude/commands/git/pr.md"
    assert dispatch.command_path("../etc") is None and dispatch.command_path("a:..:b") is None
    assert dispatch.parse_prompt("/review  12 fast") == ("review", "12 fast")
    assert dispatch.parse_prompt("/git:pr") == ("git:pr", "")
    assert dispatch.parse_prompt("  /git:pr") is None  # Claude Code sends that as text, not as the command
    assert dispatch.parse_prompt("please /review") is None and dispatch.parse_prompt("/") is None


def test_what_a_dispatcher_cannot_test_is_refused_with_the_reason() -> None:
    cmd = ".claude/commands/review.md"
    assert dispatch.dispatch_problem(cmd, FRONT + "a\n", FRONT.replace("Review a PR", "Review (v2)") + "b\n") is None
    assert "not a project slash command" in (dispatch.dispatch_problem("prompts/x.md", "a", "b") or "")
    other_tools = FRONT.replace("gh pr view:*", "gh pr diff:*")
    assert "front matter (allowed-tools)" in (dispatch.dispatch_problem(cmd, FRONT + "a", other_tools + "a") or "")
    model = FRONT.replace("---\ndescription", "---\nmodel: haiku\ndescription")
    assert "(model)" in (dispatch.dispatch_problem(cmd, FRONT + "a", model + "a") or "")
    assert "shell line" in (dispatch.dispatch_problem(cmd, "a", "Diff: !`git diff`\n") or "")
    assert "file reference" in (dispatch.dispatch_problem(cmd, "See @src/app.py first", "b") or "")
    assert dispatch.dispatch_problem(cmd, "mail me@example.com, `a!` and @here", "b") is None


def test_the_dispatcher_keeps_the_front_matter_and_names_its_experiment() -> None:
    text = dispatch.dispatcher_text("exp-1", ".claude/commands/review.md", FRONT + "Review $ARGUMENTS.\n")
    assert text.startswith(FRONT + dispatch.MARKER + " for experiment exp-1:")
    assert dispatch.dispatcher_experiment(text) == "exp-1"
    assert dispatch.dispatcher_experiment(FRONT + "Review $ARGUMENTS.\n") is None
    assert "$ARGUMENTS" in text  # the fallback (no hook) gets the arguments from Claude Code


# ---- in place and out again ----------------------------------------------------------------------------


def test_dispatch_on_and_off_puts_the_original_back_byte_for_byte(lab: Lab, project: Path) -> None:
    original = "Review the PR\r\nwith CRLF endings and no final newline"
    (project / PROD).write_bytes(original.encode())
    e = lab.create(**spec())
    on = set_dispatch(lab, e.id, True)
    assert on.changed and on.dispatching and on.command == "/review_pr"
    held = (project / PROD).read_text()
    assert dispatch.dispatcher_experiment(held) == e.id
    assert set_dispatch(lab, e.id, True).changed is False  # again: nothing to do
    off = set_dispatch(lab, e.id, False)
    assert off.changed and not off.dispatching
    assert (project / PROD).read_bytes() == original.encode()
    assert set_dispatch(lab, e.id, False).changed is False
    kinds = [ev.kind for ev in lab.events(e.id)]
    assert kinds.count("dispatcher_on") == 1 and kinds.count("dispatcher_off") == 1
    assert lab.get(e.id).status == "running"  # the experiment goes on


def test_a_command_that_is_a_symlink_is_named_when_dispatch_refuses(lab: Lab, project: Path) -> None:
    """From a review: with .claude/commands/r.md a symlink to prompts/r.md, dispatch said
    "'prompts/r.md' is not a project slash command", a path the person never gave."""
    (project / "prompts").mkdir()
    (project / "prompts" / "r.md").write_text("Review.\n")
    (project / "prompts" / "r.v.md").write_text("Review well.\n")
    (project / ".claude" / "commands" / "r.md").symlink_to(Path("..", "..", "prompts", "r.md"))
    e = lab.create(**spec(files={".claude/commands/r.md": "prompts/r.v.md"}))
    leads = r"\.claude/commands/r\.md leads to prompts/r\.md through a symlink"
    with pytest.raises(InvalidInput, match=leads) as caught:
        set_dispatch(lab, e.id, True)
    assert "make .claude/commands/r.md a regular file" in str(caught.value)
    assert (project / "prompts" / "r.md").read_text() == "Review.\n"  # nothing written
    # the commands folder a symlink (to a folder shared by several projects)
    release.rollback(lab, e.id, reason="done")
    (project / "shared").mkdir()
    (project / "shared" / "s.md").write_text("Sum up.\n")
    (project / "shared" / "s.v.md").write_text("Sum up briefly.\n")
    (project / ".claude" / "commands" / "shared").symlink_to(Path("..", "..", "shared"))
    linked = lab.create(**spec(files={".claude/commands/shared/s.md": ".claude/commands/shared/s.v.md"}))
    with pytest.raises(InvalidInput, match=r"\.claude/commands/shared/s\.md leads to shared/s\.md through a symlink"):
        set_dispatch(lab, linked.id, True)


def test_dispatch_refuses_an_edited_production_file_and_other_experiments(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    (project / PROD).write_text(COMMAND + "An edit.\n")
    with pytest.raises(Conflict, match="not what it was") as caught:
        set_dispatch(lab, e.id, True)
    assert "+An edit." in (caught.value.diff or "")
    assert (project / PROD).read_text() == COMMAND + "An edit.\n"  # untouched

    (project / "prompt.md").write_text("p")
    (project / "prompt.v2.md").write_text("q")
    other = lab.create(**spec(files={"prompt.md": "prompt.v2.md"}))
    with pytest.raises(InvalidInput, match="not a project slash command"):
        set_dispatch(lab, other.id, True)
    release.rollback(lab, other.id, reason="done")
    with pytest.raises(InvalidState, match="only a running experiment"):
        set_dispatch(lab, other.id, True)


@pytest.mark.parametrize("end", ["rollback", "expire"])
def test_ending_the_experiment_puts_the_original_back(lab: Lab, project: Path, end: str) -> None:
    before = (project / PROD).read_bytes()
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    if end == "rollback":
        result = release.rollback(lab, e.id, reason="stop")
    else:
        result = release.expire(lab, e.id, reason="14-day limit")
    assert (project / PROD).read_bytes() == before
    assert any("dispatcher" in w and "original is back" in w for w in result.warnings), result.warnings
    assert git(project, "status", "--porcelain", "--", PROD) == ""


def test_promote_takes_the_dispatcher_out_and_writes_the_variant(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    preview = release.promote(lab, e.id, force=True, reason="ship it", dry_run=True)
    assert "-Review the pull request. Run the security analyst, then" in preview.diff  # from the original
    assert any("dispatcher" in w for w in preview.warnings)
    assert dispatch.dispatcher_experiment((project / PROD).read_text()) == e.id  # a dry run changes nothing
    done = release.promote(lab, e.id, force=True, reason="ship it")
    assert done.outcome == "promoted"
    assert [w for w in done.warnings if "dispatcher" in w] == [
        f"The dispatcher in {PROD} was taken out (the original put back) before the promotion."
    ]  # (it had said 'the original is back', of a file that holds the variant: from a first-hour review)
    assert (project / PROD).read_text() == VARIANT
    assert git(project, "show", "HEAD:" + PROD) == VARIANT
    back = release.rollback(lab, e.id, reason="undo")  # the promoted one's backup is the original, not the dispatcher
    assert back.outcome == "rolled_back" and (project / PROD).read_text() == COMMAND


@pytest.mark.parametrize("end", ["off", "rollback"])
def test_a_command_deleted_while_dispatched_gets_its_original_back(lab: Lab, project: Path, end: str) -> None:
    """From a review: someone deleted the odd-looking dispatcher; dispatch off then said the command
    was never dispatched and a rollback that nothing had changed, so a command never committed
    existed only as the experiment's snapshot. The original is written where it was, which
    overwrites nothing. A promotion is refused as for any deleted file (changing nothing)."""
    original = "---\ndescription: R\n---\nReview $ARGUMENTS, uncommitted.\n"
    (project / PROD).write_text(original)
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    (project / PROD).unlink()
    with pytest.raises(Conflict, match="was deleted since the experiment started") as refused:
        release.promote(lab, e.id, force=True, reason="ship it")
    # from a review: the advice "if the file is meant to be gone, roll this experiment back" brought it back
    assert "held this experiment's dispatcher when it was deleted: dispatch off (or a rollback) puts" in str(
        refused.value
    ) and "delete the file again afterwards" in str(refused.value)
    assert not (project / PROD).exists() and lab.events(e.id, kinds=["dispatcher_off"]) == []
    if end == "off":
        result = set_dispatch(lab, e.id, False)
        assert result.changed and "had been deleted while dispatched: the original is back" in result.summary
        assert set_dispatch(lab, e.id, False).changed is False  # once: it is no longer in place
    else:
        dry = release.rollback(lab, e.id, dry_run=True)  # from a review: it said no file is touched
        assert f"{PROD}, deleted while it held this experiment's dispatcher, is written back" in dry.summary
        assert not (project / PROD).exists()
        done = release.rollback(lab, e.id, reason="stop")
        assert f"{PROD} had been deleted while dispatched: the original is back in its place." in done.warnings
    assert (project / PROD).read_text() == original
    [off] = lab.events(e.id, kinds=["dispatcher_off"])
    assert off.data["was_missing"] is True
    if end == "off":  # deleted once more, after the dispatcher was out: not this experiment's to put back
        (project / PROD).unlink()
        assert set_dispatch(lab, e.id, False).changed is False and not (project / PROD).exists()


@pytest.mark.parametrize("end", ["off", "rollback"])
def test_a_skill_whose_folder_was_deleted_while_dispatched_gets_it_back(lab: Lab, project: Path, end: str) -> None:
    """From a review: `rm -rf .claude/skills/NAME` took the folder too, and putting the original
    back failed on the missing folder (a traceback from dispatch off, a bare error over MCP)."""
    e = lab.get(skill_experiment(lab, project))
    original = (project / SKILL).read_bytes()
    set_dispatch(lab, e.id, True)
    shutil.rmtree((project / SKILL).parent)
    if end == "off":
        assert "had been deleted while dispatched" in set_dispatch(lab, e.id, False).summary
    else:
        release.rollback(lab, e.id, reason="stop")
    assert (project / SKILL).read_bytes() == original


def test_an_edited_dispatcher_is_kept_before_the_original_goes_back(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    edited = (project / PROD).read_text() + "Someone's note.\n"
    (project / PROD).write_text(edited)
    result = release.rollback(lab, e.id, reason="stop")
    assert (project / PROD).read_text() == COMMAND
    [note] = [w for w in result.warnings if "dispatcher" in w]
    kept = project / note.split("kept at ")[1].rstrip(").")
    assert kept.read_text() == edited


def test_an_edited_dispatcher_is_kept_and_the_promotion_goes_ahead(lab: Lab, project: Path) -> None:
    """From a review: rollback kept an edited dispatcher and put the original back, but promote
    refused, showing the whole dispatcher as an edit of the production file (the README says it is
    kept, then the original goes back)."""
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    edited = (project / PROD).read_text() + "Someone's note.\n"
    (project / PROD).write_text(edited)
    dry = release.promote(lab, e.id, force=True, reason="ship it", dry_run=True)
    assert any("dispatcher (someone edited it" in w for w in dry.warnings)
    assert (project / PROD).read_text() == edited  # a dry run changes nothing
    result = release.promote(lab, e.id, force=True, reason="ship it")
    assert (project / PROD).read_text() == VARIANT
    [note] = [w for w in result.warnings if "kept at" in w]
    assert (project / note.split("kept at ")[1].rstrip(").")).read_text() == edited


# ---- the hooks -------------------------------------------------------------------------------------------


def payload(prompt: str = "/review_pr 42 --fast", session: str = "s-1", **more: object) -> dict[str, object]:
    return {"session_id": session, "prompt": prompt, "hook_event_name": "UserPromptSubmit", **more}


def test_the_prompt_hook_assigns_a_trial_and_hands_over_its_arm(lab: Lab, project: Path) -> None:
    (project / PROD).write_text("Review PR $0 ($ARGUMENTS). Control.\n")
    git(project, "commit", "-qam", "placeholders")
    (project / VAR).write_text("Review PR $0 quickly. Treatment.\n")
    lab.clock = lambda: 1_800_000_000.0  # a fixed experiment id: the sessions' arms (a hash of it) are fixed
    e = lab.create(**spec())
    assert on_prompt(lab, payload()) is None  # not dispatched yet: not ours
    set_dispatch(lab, e.id, True)
    assert on_prompt(lab, payload("/other_command 1")) is None
    assert on_prompt(lab, payload("tell me about /review_pr")) is None
    seen: dict[str, int] = {}
    for i in range(24):
        out = on_prompt(lab, payload(session=f"s-{i // 2}"))  # two runs in each session
        assert out is not None
        context = out["hookSpecificOutput"]["additionalContext"]
        assert out["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
        trial = lab.trials(e.id)[-1]
        assert f"trial {trial.trial_id} of experiment {e.id}" in context
        control, treatment = "Review PR 42 (42 --fast). Control.\n", "Review PR 42 quickly. Treatment.\n"
        expected = control if trial.arm == "control" else treatment
        assert f"<command-text>\n{expected}</command-text>" in context
        assert "treatment" not in context.replace("Treatment.", "").lower()  # the model is not told its arm
        seen[trial.arm] = seen.get(trial.arm, 0) + 1
    assert seen["control"] > 0 and seen["treatment"] > 0
    trials = lab.trials(e.id)
    assert {t.status for t in trials} == {"assigned"}
    # the session is the unit: both runs of a session in one arm (the second sees the first's text)
    for first, second in zip(trials[::2], trials[1::2], strict=True):
        assert first.unit == second.unit and first.unit is not None and first.unit.startswith("session s-")
        assert first.arm == second.arm


def test_the_stop_hook_records_the_replys_time(lab: Lab, project: Path) -> None:
    now = [1000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    on_prompt(lab, payload(session="abc"))
    assert on_stop(lab, {"session_id": "other"}) is None
    now[0] += 90  # a minute and a half; the metric is in minutes
    assert on_stop(lab, {"session_id": "abc", "stop_hook_active": False}) is None
    [trial] = lab.trials(e.id)
    assert trial.status == "recorded" and trial.success is True
    assert trial.metrics["time_to_complete"] == pytest.approx(1.5)
    assert on_stop(lab, {"session_id": "abc"}) is None  # once only
    assert not any((lab.state_dir / "dispatched").iterdir())


def test_the_stop_hook_leaves_a_run_the_model_recorded_as_failed(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    on_prompt(lab, payload(session="abc"))
    [trial] = lab.trials(e.id)
    lab.record(trial.trial_id, {}, success=False)
    assert on_stop(lab, {"session_id": "abc"}) is None
    assert lab.trial(trial.trial_id).success is False


def test_the_stop_hook_asks_once_for_a_metric_it_cannot_measure(lab: Lab, project: Path) -> None:
    primary = {"name": "issues_found", "direction": "higher_is_better"}
    e = lab.create(**spec(primary_metric=primary, secondary_metrics=[]))
    set_dispatch(lab, e.id, True)
    out = on_prompt(lab, payload(session="abc"))
    assert out is not None and "call meta-experiment's record tool" in out["hookSpecificOutput"]["additionalContext"]
    [trial] = lab.trials(e.id)
    asked = on_stop(lab, {"session_id": "abc", "stop_hook_active": False})
    assert asked is not None and asked["decision"] == "block"
    assert f"trial_id {trial.trial_id}" in asked["reason"] and "issues_found" in asked["reason"]
    assert on_stop(lab, {"session_id": "abc", "stop_hook_active": True}) is None  # asked already: let it stop
    assert lab.trial(trial.trial_id).status == "assigned"
    assert on_stop(lab, {"session_id": "abc", "stop_hook_active": False}) is None  # forgotten: never asks again


def test_a_hook_never_blocks_the_prompt_on_its_own_trouble(project: Path) -> None:
    env = {**package_env(), "CLAUDE_PROJECT_DIR": str(project)}
    for event, stdin in (("prompt", "not json"), ("prompt", "[1]"), ("stop", '{"session_id": "../../x"}')):
        done = subprocess.run(
            [sys.executable, "-m", "meta_experiment", "hook", event],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
    assert not (project / ".meta-experiment").exists()  # a prompt that is not ours creates nothing


def test_the_hook_command_hands_over_the_arm_as_claude_code_reads_it(project: Path) -> None:
    lab = Lab.open(project, create=True)
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    lab.close()
    env = {**package_env(), "CLAUDE_PROJECT_DIR": str(project)}
    done = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "hook", "prompt"],
        input=json.dumps(payload()),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "<command-text>\nReview the pull request." in out["hookSpecificOutput"]["additionalContext"]


def test_status_and_assign_know_a_dispatcher_from_an_edit(lab: Lab, project: Path) -> None:
    from meta_experiment.report import render_status

    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    [item] = lab.status().experiments
    assert item.dispatching == ["/review_pr"] and item.changed_since_start == []
    text = render_status(lab.status())
    assert "**Dispatching**: /review_pr" in text and "no longer holds" not in text
    assert lab.assign(e.id).warnings == []  # the agent's own runs are not told production changed
    (project / PROD).write_text("An edit over the dispatcher\n")
    [item] = lab.status().experiments
    assert item.dispatching == [] and item.changed_since_start == [PROD]


def test_a_dispatcher_left_by_an_ended_experiment_is_taken_out_at_the_next_prompt(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    left = (project / PROD).read_bytes()
    release.rollback(lab, e.id, reason="stop")
    (project / PROD).write_bytes(left)  # as a crash or an older version would have left it
    out = on_prompt(lab, payload("/review_pr 3"))
    assert out is not None
    context = out["hookSpecificOutput"]["additionalContext"]
    assert (
        "has ended (rolled_back)" in context
        and f"<command-text>\n{COMMAND}\n\nARGUMENTS: 3\n</command-text>" in context
    )
    assert (project / PROD).read_text() == COMMAND
    assert len(lab.trials(e.id)) == 0


# ---- from a review ---------------------------------------------------------------------------------------


def test_more_that_a_dispatcher_cannot_hand_over_is_refused() -> None:
    cmd = ".claude/commands/review.md"
    assert "shell line" in (dispatch.dispatch_problem(cmd, "a", "Run:\n```!\ngit diff\n```\n") or "")
    named = "---\narguments: [pr, mode]\n---\nReview $pr in $mode\n"
    assert "named arguments" in (dispatch.dispatch_problem(cmd, named, named) or "")
    assert "byte order mark" in (dispatch.dispatch_problem(cmd, "\ufeff---\nmodel: x\n---\na", "b") or "")
    long = "step\n" * 2_000  # 10,000 characters: Claude Code would show the model a preview only
    assert "characters" in (dispatch.dispatch_problem(cmd, "short", long) or "")
    assert "in its name" in (dispatch.dispatch_problem(".claude/commands/fix+it.md", "a", "b") or "")
    assert dispatch.render("Session ${CLAUDE_SESSION_ID}.\n", "", "s-9") == "Session s-9.\n"


def test_a_command_without_a_description_keeps_its_menu_entry() -> None:
    plain = dispatch.dispatcher_text("e1", ".claude/commands/review.md", '\n  Review the PR: "carefully"\n')
    assert plain.startswith('---\ndescription: "Review the PR: \\"carefully\\""\n---\n<!-- meta-experiment')
    front = dispatch.dispatcher_text("e1", ".claude/commands/review.md", "---\nmodel: haiku\n---\nReview it\n")
    assert front.startswith('---\ndescription: "Review it"\nmodel: haiku\n---\n')
    assert dispatch.dispatcher_experiment(front) == "e1"


def test_a_dispatcher_edited_above_its_marker_is_still_taken_out(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    edited = "\ufeffA note someone put on top.\n" + (project / PROD).read_text()
    (project / PROD).write_text(edited)
    result = release.rollback(lab, e.id, reason="stop")
    assert (project / PROD).read_text() == COMMAND
    [note] = [w for w in result.warnings if "dispatcher" in w]
    assert (project / note.split("kept at ")[1].rstrip(").")).read_text() == edited


def test_a_stop_after_an_interrupted_run_records_nothing(lab: Lab, project: Path) -> None:
    """Claude Code sends no Stop when the person interrupts the reply: the next prompt's Stop must
    not record the whole gap as the dispatched run's time."""
    now = [1000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    on_prompt(lab, payload(session="abc", prompt_id="p-1"))
    now[0] += 3 * 3600
    assert on_stop(lab, {"session_id": "abc", "prompt_id": "p-2"}) is None
    [trial] = lab.trials(e.id)
    assert trial.status == "assigned" and trial.metrics == {}
    assert not any((lab.state_dir / "dispatched").iterdir())
    on_prompt(lab, payload(session="abc", prompt_id="p-3"))
    assert on_stop(lab, {"session_id": "abc", "prompt_id": "p-3"}) is None  # its own Stop records it
    assert lab.trials(e.id)[-1].status == "recorded"


def test_arguments_too_long_to_hand_over_assign_nothing(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    out = on_prompt(lab, payload("/review_pr " + "x" * 9_800))
    assert out is not None and "too long" in out["hookSpecificOutput"]["additionalContext"]
    assert lab.trials(e.id) == []


def test_a_rollback_ends_the_experiment_even_where_the_file_cannot_be_read(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    set_dispatch(lab, e.id, False)
    outside = project.parent / "elsewhere"
    outside.mkdir()
    claude_dir = project / ".claude"
    claude_dir.rename(project.parent / "claude-moved")
    claude_dir.symlink_to(outside, target_is_directory=True)  # a folder replaced by a link out of the project
    result = release.rollback(lab, e.id, reason="stop")
    assert result.outcome == "stopped" and lab.get(e.id).status == "rolled_back"
    assert any("could not be checked" in w for w in result.warnings), result.warnings


def test_a_hook_swallows_any_error_in_one_line(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import sqlite3

    from meta_experiment import cli

    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Lab, "assign", locked)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(payload())))
    assert cli.main(["--project", str(project), "hook", "prompt"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "meta-experiment (prompt hook): database is locked"


@pytest.mark.parametrize(("treatment_seconds", "ending"), [(120.0, "rolled_back"), (30.0, "promoted")])
def test_dispatched_runs_end_the_experiment_when_the_policy_says_so(
    lab: Lab, project: Path, treatment_seconds: float, ending: str
) -> None:
    """People keep typing the command; the Stop hook records each run and, once the sample is
    there, carries out auto mode's decision as the experiment's flags allow."""
    now = [1_000_000.0]
    lab.clock = lambda: now[0]
    primary = {"name": "seconds", "direction": "lower_is_better", "unit": "s"}
    e = lab.create(**spec(primary_metric=primary, secondary_metrics=[], auto_promote=True, auto_rollback=True))
    set_dispatch(lab, e.id, True)
    messages = []
    for i in range(200):
        on_prompt(lab, payload(session=f"s{i}", prompt_id=f"p{i}"))
        arm = lab.trials(e.id)[-1].arm
        now[0] += (60.0 if arm == "control" else treatment_seconds) + (i % 7)  # a little spread
        out = on_stop(lab, {"session_id": f"s{i}", "prompt_id": f"p{i}"})
        if out is not None:
            messages.append(out["systemMessage"])
        if lab.get(e.id).status != "running":
            break
    ended = lab.get(e.id)
    assert ended.status == ending, (ended.status, ended.status_reason)
    assert len(lab.trials(e.id)) < 200
    assert messages and messages[-1].startswith(
        f"meta-experiment: {e.id} (Parallel PR review) {ending.replace('_', ' ')}"
    )
    assert (project / PROD).read_text() == (VARIANT if ending == "promoted" else COMMAND)  # the dispatcher is gone


# ---- agents --------------------------------------------------------------------------------------------

AGENT = ".claude/agents/reviewer.md"
AGENT_VAR = ".claude/agents/reviewer.md.experiment"
AGENT_FRONT = "---\nname: reviewer\ndescription: Reviews a change\ntools: Read, Grep\n---\n"


def agent_experiment(lab: Lab, project: Path, **overrides: object) -> str:
    (project / AGENT).parent.mkdir(parents=True, exist_ok=True)
    (project / AGENT).write_text(AGENT_FRONT + "You review code. Be thorough.\n")
    (project / AGENT_VAR).write_text(AGENT_FRONT + "You review code. Report only real bugs.\n")
    primary = {"name": "seconds", "direction": "lower_is_better", "unit": "s"}
    e = lab.create(
        **spec(**{"files": {AGENT: AGENT_VAR}, "primary_metric": primary, "secondary_metrics": [], **overrides})
    )
    return e.id


def launch(tool_use_id: str = "toolu_1", agent: str = "reviewer", session: str = "s1") -> dict[str, object]:
    return {
        "session_id": session,
        "tool_name": "Agent",
        "tool_use_id": tool_use_id,
        "tool_input": {"description": "review", "prompt": "Review x.py", "subagent_type": agent},
    }


def test_what_an_agent_dispatcher_cannot_test_is_refused() -> None:
    good = AGENT_FRONT + "a\n"
    assert dispatch.dispatch_problem(AGENT, good, AGENT_FRONT.replace("Reviews a", "Checks a") + "b\n") is None
    assert "name" in (dispatch.dispatch_problem(AGENT, good.replace("name: reviewer", "name: critic"), good) or "")
    tools = AGENT_FRONT.replace("Read, Grep", "Read")
    assert "front matter (tools)" in (dispatch.dispatch_problem(AGENT, good, tools + "b") or "")
    assert "duration" in (dispatch.dispatch_problem(AGENT, good, good, duration=False) or "")
    assert dispatch.label(AGENT) == "agent reviewer" and dispatch.label(PROD) == "/review_pr"
    assert dispatch.agent_path("reviewer") == AGENT and dispatch.agent_name(AGENT) == "reviewer"
    assert dispatch.agent_path("../commands/x") is None and dispatch.agent_path(".hidden") is None


def test_an_agent_launch_gets_its_arms_instructions_and_its_time_recorded(lab: Lab, project: Path) -> None:
    now = [5000.0]
    lab.clock = lambda: now[0]
    e = agent_experiment(lab, project)
    original = (project / AGENT).read_bytes()
    assert on_agent_start(lab, launch()) is None  # not dispatched yet
    set_dispatch(lab, e, True)
    held = (project / AGENT).read_text()
    assert held.startswith(AGENT_FRONT) and "<agent-instructions>" in held  # the agent keeps its name and tools
    assert on_agent_start(lab, launch(agent="other")) is None

    # an agent that runs inside the call: its PostToolUse ends the run
    out = on_agent_start(lab, launch("toolu_1"))
    assert out is not None
    updated = out["hookSpecificOutput"]["updatedInput"]
    [trial] = lab.trials(e)
    text = "Be thorough." if trial.arm == "control" else "Report only real bugs."
    assert updated["prompt"] == f"<agent-instructions>\nYou review code. {text}\n</agent-instructions>\n\nReview x.py"
    assert updated["subagent_type"] == "reviewer" and updated["description"] == "review"
    now[0] += 42
    assert on_agent_end(lab, {**launch("toolu_1"), "tool_response": {"status": "completed"}}) is None
    assert lab.trial(trial.trial_id).metrics == {"seconds": 42.0}

    # in the background, PostToolUse (the launch) then SubagentStop (the end)
    on_agent_start(lab, launch("toolu_2"))
    assert (
        on_agent_end(lab, {**launch("toolu_2"), "tool_response": {"status": "async_launched", "agentId": "a2"}}) is None
    )
    now[0] += 7
    on_agent_stop(lab, {"session_id": "s1", "agent_id": "a2", "agent_type": "reviewer"})
    assert lab.trials(e)[-1].metrics == {"seconds": 7.0}

    # in the background, SubagentStop first (Claude Code sends them in either order)
    on_agent_start(lab, launch("toolu_3"))
    now[0] += 3
    on_agent_stop(lab, {"session_id": "s1", "agent_id": "a3", "agent_type": "reviewer"})
    now[0] += 100  # the PostToolUse comes late; the run ended at the stop
    on_agent_end(lab, {**launch("toolu_3"), "tool_response": {"status": "async_launched", "agentId": "a3"}})
    assert lab.trials(e)[-1].metrics == {"seconds": 3.0}

    assert {t.unit for t in lab.trials(e)} == {"session s1"}  # one session, one arm
    assert not any((lab.state_dir / "dispatched").iterdir())
    release.rollback(lab, e, reason="done")
    assert (project / AGENT).read_bytes() == original


def test_a_session_started_as_a_dispatched_agent_gets_its_production_instructions(lab: Lab, project: Path) -> None:
    """`claude --agent reviewer`: the session's system prompt is the dispatcher and no launch brings
    an arm. It is not a trial; SessionStart hands it the agent's production instructions."""
    e = agent_experiment(lab, project)
    started = {"session_id": "s9", "hook_event_name": "SessionStart", "source": "startup", "agent_type": "reviewer"}
    assert on_session_start(lab, started) is None  # not dispatched yet
    set_dispatch(lab, e, True)
    assert on_session_start(lab, {**started, "agent_type": "other"}) is None
    assert on_session_start(lab, {key: v for key, v in started.items() if key != "agent_type"}) is None
    out = on_session_start(lab, started)
    assert out is not None and out["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    context = out["hookSpecificOutput"]["additionalContext"]
    assert context.endswith("<agent-instructions>\nYou review code. Be thorough.\n</agent-instructions>")
    assert "not one of the experiment's trials" in context and lab.trials(e) == []
    release.promote(lab, e, force=True, reason="ship the variant")
    note = lab.state_dir / "dispatched" / "as-s9.json"
    weeks = time.time() - 20 * 86400  # resumed three weeks on, within Claude Code's 30 days
    os.utime(note, (weeks, weeks))
    # resumed (or compacted), the session keeps the system prompt it started with (the dispatcher: seen
    # in Claude Code), with or without --agent again: it gets what production holds now, the variant
    for again in ({**started, "source": "resume"}, {"session_id": "s9", "source": "compact"}):
        resumed = on_session_start(lab, again)
        assert resumed is not None
        context = resumed["hookSpecificOutput"]["additionalContext"]
        assert "no longer holds that experiment's dispatcher (the experiment is promoted)" in context
        assert context.endswith("You review code. Report only real bugs.\n</agent-instructions>")
        assert note.stat().st_mtime > time.time() - 60  # renewed: kept while the session is in use
    assert on_session_start(lab, {**started, "session_id": "s10"}) is None  # a new session: the file is the agent
    # taken out by hand while the experiment runs: production's instructions again (the original)
    other = agent_experiment(lab, project)
    set_dispatch(lab, other, True)
    assert on_session_start(lab, {**started, "session_id": "s11"}) is not None
    set_dispatch(lab, other, False)
    resumed = on_session_start(lab, {**started, "session_id": "s11", "source": "resume"})
    assert resumed is not None and "(the experiment is running)" in resumed["hookSpecificOutput"]["additionalContext"]
    assert resumed["hookSpecificOutput"]["additionalContext"].endswith("Be thorough.\n</agent-instructions>")


def test_notes_of_runs_that_never_ended_are_cleared(lab: Lab, project: Path) -> None:
    import os
    import time

    e = agent_experiment(lab, project)
    set_dispatch(lab, e, True)
    on_agent_start(lab, launch("toolu_old"))  # denied or cancelled: no end ever comes
    folder = lab.state_dir / "dispatched"
    old = time.time() - 7 * 3600
    os.utime(folder / "call-toolu_old.json", (old, old))
    (folder / "recent-session.json").write_text("{}")
    os.utime(folder / "recent-session.json", (old, old))  # a session's file is kept for a week
    (folder / "old-session.json").write_text("{}")
    weeks = time.time() - 8 * 86400
    os.utime(folder / "old-session.json", (weeks, weeks))
    # a session started as the agent: kept while Claude Code keeps an idle session (30 days)
    for name, age in (("as-s-weeks.json", 8), ("as-s-gone.json", 32)):
        (folder / name).write_text("{}")
        os.utime(folder / name, (time.time() - age * 86400,) * 2)
    on_agent_start(lab, launch("toolu_new"))
    assert sorted(p.name for p in folder.iterdir()) == [
        "as-s-weeks.json",
        "call-toolu_new.json",
        "recent-session.json",
    ]


def test_a_command_the_model_runs_itself_is_a_trial_too(lab: Lab, project: Path) -> None:
    """Claude Code lists commands as skills: the model may run one with the Skill tool, and then no
    prompt hook fires. The Skill tool's PostToolUse hands the text over instead."""
    now = [1000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec())
    skill = {"session_id": "m1", "prompt_id": "p1", "tool_name": "Skill", "tool_input": {"skill": "review_pr"}}
    assert on_skill(lab, {**skill, "tool_input": {"skill": "review_pr", "args": "7"}}) is None  # not dispatched
    set_dispatch(lab, e.id, True)
    assert on_skill(lab, {**skill, "tool_input": {"skill": "other", "args": "7"}}) is None
    out = on_skill(lab, {**skill, "tool_input": {"skill": "/review_pr", "args": "7"}})
    assert out is not None and out["hookSpecificOutput"]["hookEventName"] == "PostToolUse"
    [trial] = lab.trials(e.id)
    text = COMMAND if trial.arm == "control" else VARIANT
    assert f"<command-text>\n{text}\n\nARGUMENTS: 7\n</command-text>" in out["hookSpecificOutput"]["additionalContext"]
    now[0] += 30
    on_stop(lab, {"session_id": "m1", "prompt_id": "p1"})
    assert lab.trial(trial.trial_id).metrics["time_to_complete"] == pytest.approx(0.5)  # minutes


def test_every_hook_the_plugin_runs_has_its_function() -> None:
    from meta_experiment import cli, dispatch_ops

    root = Path(__file__).resolve().parent.parent
    plugin = json.loads((root / "plugin" / "hooks" / "hooks.json").read_text())
    named = {
        hook["command"].rsplit(" hook ", 1)[1]
        for entries in plugin["hooks"].values()
        for entry in entries
        for hook in entry["hooks"]
        if " hook " in hook["command"]
    }
    assert named == set(cli.HOOKS)
    assert all(callable(getattr(dispatch_ops, name)) for name in cli.HOOKS.values())


# ---- dispatched skills: typed as /name or run by the model, like a command ----------------------------

SKILL = ".claude/skills/greet/SKILL.md"
SKILL_VAR = ".claude/skills/greet/variant.md"
SKILL_FRONT = "---\nname: greet\ndescription: Greets someone\nwhen_to_use: When asked to greet\n---\n"


def test_skill_names_and_what_a_skill_dispatcher_cannot_test() -> None:
    assert dispatch.skill_name(SKILL) == "greet" and dispatch.skill_path("greet") == SKILL
    for other in (".claude/skills/SKILL.md", ".claude/skills/a/b/SKILL.md", ".claude/skills/.x/SKILL.md", PROD):
        assert dispatch.skill_name(other) is None, other
    assert dispatch.skill_path("git:pr") is None and dispatch.skill_path("..") is None
    assert dispatch.label(SKILL) == "/greet" and dispatch.slash_name(PROD) == "review_pr"
    good = SKILL_FRONT + "Say hi to $ARGUMENTS.\n"
    wording = SKILL_FRONT.replace("When asked", "Whenever asked").replace("Greets", "Says hello to")
    assert dispatch.dispatch_problem(SKILL, good, wording + "Greet $0 warmly.\n") is None
    assert dispatch.dispatch_problem(SKILL, "Say hi.\n", "Say hello.\n") is None  # no front matter: its folder names it
    for line, named in [("name: hello", "hello"), ('name: "greet x"', "greet x"), ("name : hi  # old", "hi")]:
        renamed = good.replace("name: greet", line)
        assert f"names itself {named!r}" in (dispatch.dispatch_problem(SKILL, renamed, renamed) or ""), line
    for line in ("name:", "name: 'greet'", "name: greet  # the folder's"):
        same = good.replace("name: greet", line)
        assert dispatch.dispatch_problem(SKILL, same, same) is None, line
    for line in ("context: fork", "context : 'fork'"):
        forked = good.replace("---\nname", f"---\n{line}\nname")
        assert "context: fork" in (dispatch.dispatch_problem(SKILL, forked, forked) or ""), line
    tools = SKILL_FRONT.replace("---\nname", "---\nallowed-tools: Read\nname")
    assert "front matter (allowed-tools)" in (dispatch.dispatch_problem(SKILL, good, tools + "x") or "")
    assert "shell line" in (dispatch.dispatch_problem(SKILL, good, SKILL_FRONT + "Run !`date`\n") or "")
    # ${CLAUDE_SKILL_DIR} is the skill's folder, as Claude Code fills it in
    assert dispatch.render(good + "Run ${CLAUDE_SKILL_DIR}/x.sh\n", "Bob", "", "/p/.claude/skills/greet") == (
        "Say hi to Bob.\nRun /p/.claude/skills/greet/x.sh\n"
    )


def skill_experiment(lab: Lab, project: Path) -> str:
    (project / SKILL).parent.mkdir(parents=True, exist_ok=True)
    (project / SKILL).write_text(SKILL_FRONT + "Say hi to $ARGUMENTS. Files: ${CLAUDE_SKILL_DIR}\n")
    (project / SKILL_VAR).write_text(SKILL_FRONT + "Greet $0 warmly.\n")
    git(project, "add", SKILL)
    git(project, "commit", "-qm", "a skill")
    lab.clock = lambda: 1_800_000_000.0
    return lab.create(**spec(files={SKILL: SKILL_VAR}, secondary_metrics=[])).id


def test_a_skill_typed_or_run_by_the_model_is_a_trial(lab: Lab, project: Path) -> None:
    e = skill_experiment(lab, project)
    original = (project / SKILL).read_bytes()
    assert on_prompt(lab, payload("/greet Bob")) is None  # not dispatched yet
    done = set_dispatch(lab, e, True)
    assert done.command == "/greet" and "Skill tool" in done.summary
    held = (project / SKILL).read_text()
    assert held.startswith(SKILL_FRONT) and dispatch.dispatcher_experiment(held) == e
    folder = str(project.resolve() / ".claude" / "skills" / "greet")
    arms = {"control": f"Say hi to Bob Lee. Files: {folder}\n", "treatment": "Greet Bob warmly.\n"}
    out = on_prompt(lab, payload("/greet Bob Lee", session="s-typed"))
    assert out is not None
    [trial] = lab.trials(e)
    assert f"<command-text>\n{arms[trial.arm]}</command-text>" in out["hookSpecificOutput"]["additionalContext"]
    used = {"session_id": "s-model", "tool_name": "Skill", "tool_input": {"skill": "greet", "args": "Bob Lee"}}
    out = on_skill(lab, used)
    assert out is not None
    trial = lab.trials(e)[-1]
    assert f"<command-text>\n{arms[trial.arm]}</command-text>" in out["hookSpecificOutput"]["additionalContext"]
    assert on_stop(lab, {"session_id": "s-model"}) is None and lab.trial(trial.trial_id).status == "recorded"
    release.rollback(lab, e, reason="done")
    assert (project / SKILL).read_bytes() == original


def test_a_skill_and_a_command_of_one_name_the_skill_runs(lab: Lab, project: Path) -> None:
    """Claude Code runs the skill when a command has its name too: the hook must not hand over a
    dispatched command's text for a skill's run, and must hand over a dispatched skill's."""
    e = lab.create(**spec())
    (project / ".claude" / "skills" / "review_pr").mkdir(parents=True)
    (project / ".claude" / "skills" / "review_pr" / "SKILL.md").write_text("A skill of the same name.\n")
    with pytest.raises(InvalidInput, match="Claude Code runs the skill when /review_pr is typed"):
        set_dispatch(lab, e.id, True)  # the dispatcher would never run
    assert (project / PROD).read_text() == COMMAND
    (project / ".claude" / "skills" / "review_pr" / "SKILL.md").unlink()
    set_dispatch(lab, e.id, True)
    (project / ".claude" / "skills" / "review_pr" / "SKILL.md").write_text("A skill made since.\n")
    assert on_prompt(lab, payload("/review_pr 1")) is None and lab.trials(e.id) == []
    (project / ".claude" / "skills" / "review_pr" / "SKILL.md").unlink()
    assert on_prompt(lab, payload("/review_pr 1")) is not None and len(lab.trials(e.id)) == 1


def test_the_users_own_skill_or_command_of_the_name_runs_instead(
    lab: Lab, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Code runs a personal skill (in CLAUDE_CONFIG_DIR, or ~/.claude) before the project's
    skill or command of that name, and a personal command before the project's command; a project
    skill before a personal command (all seen in its CLI). A dispatcher that would never run is
    refused, and the hook does not hand over an arm for a run of the user's own file."""
    personal = tmp_path / "config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(personal))
    e = lab.create(**spec())
    own_skill = personal / "skills" / "review_pr" / "SKILL.md"
    own_command = personal / "commands" / "review_pr.md"
    for own, kind in ((own_skill, "skill"), (own_command, "command")):
        own.parent.mkdir(parents=True, exist_ok=True)
        own.write_text("My own way.\n")
        with pytest.raises(InvalidInput, match=f"personal {kind} named /review_pr") as refused:
            set_dispatch(lab, e.id, True)
        assert str(own) in str(refused.value) and "project's command" in str(refused.value)
        assert (project / PROD).read_text() == COMMAND
        assert dispatch_ops.dispatch_hint(lab, e) is None  # create's note does not offer it
        own.unlink()
    assert "can be dispatched" in (dispatch_ops.dispatch_hint(lab, e) or "")
    set_dispatch(lab, e.id, True)
    own_command.write_text("Made since.\n")  # the user's own command now runs for them
    assert on_prompt(lab, payload("/review_pr 1")) is None and lab.trials(e.id) == []
    own_command.unlink()
    assert on_prompt(lab, payload("/review_pr 1")) is not None and len(lab.trials(e.id)) == 1
    # a project in the home folder: its .claude is the personal folder too, and its command is its own
    set_dispatch(lab, e.id, False)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(project / ".claude"))
    set_dispatch(lab, e.id, True)
    assert on_prompt(lab, payload("/review_pr 1")) is not None and len(lab.trials(e.id)) == 2
    set_dispatch(lab, e.id, False)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(personal))
    set_dispatch(lab, e.id, True)
    # HOME's .claude when CLAUDE_CONFIG_DIR is not set
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dispatch_ops.personal_dir() == tmp_path / "home" / ".claude"
    (tmp_path / "home" / ".claude" / "commands").mkdir(parents=True)
    (tmp_path / "home" / ".claude" / "commands" / "review_pr.md").write_text("Mine.\n")
    assert on_prompt(lab, payload("/review_pr 2")) is None and len(lab.trials(e.id)) == 2


def test_a_personal_skill_outranks_a_dispatched_skill_a_personal_command_does_not(
    lab: Lab, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    personal = tmp_path / "config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(personal))
    e = skill_experiment(lab, project)
    (personal / "commands").mkdir(parents=True)
    (personal / "commands" / "greet.md").write_text("My own greeting.\n")  # the project's skill still wins
    set_dispatch(lab, e, True)
    assert on_prompt(lab, payload("/greet Bob")) is not None and len(lab.trials(e)) == 1
    set_dispatch(lab, e, False)
    (personal / "skills" / "greet").mkdir(parents=True)
    (personal / "skills" / "greet" / "SKILL.md").write_text("My own skill.\n")
    with pytest.raises(InvalidInput, match="personal skill named /greet .* instead of the project's skill"):
        set_dispatch(lab, e, True)
    used = {"session_id": "s-model", "tool_name": "Skill", "tool_input": {"skill": "greet", "args": "Bob"}}
    assert on_skill(lab, used) is None and len(lab.trials(e)) == 1
    # the project's skill file gone: that is what is said, not a shadowing command that does not exist
    (personal / "skills" / "greet" / "SKILL.md").unlink()
    (project / SKILL).unlink()
    with pytest.raises(Conflict, match="is not what it was when"):
        set_dispatch(lab, e, True)


def test_runs_right_after_the_dispatcher_goes_in_are_not_trials(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open Claude Code session notices a changed file a few seconds late (2-5 s, measured), so
    it may still run the original command or agent: right after the dispatcher goes in, a run gets
    production's text and is not a trial, whichever file the session runs."""
    monkeypatch.setattr(dispatch_ops, "SETTLE_SECONDS", 10.0)
    now = [1_800_000_000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    now[0] += 9
    out = on_prompt(lab, payload("/review_pr 7"))
    assert out is not None and lab.trials(e.id) == []
    context = out["hookSpecificOutput"]["additionalContext"]
    assert "this run is not a trial" in context
    assert f"<command-text>\n{COMMAND}\n\nARGUMENTS: 7\n</command-text>" in context
    now[0] += 2  # every open session has noticed the dispatcher by now
    out = on_prompt(lab, payload("/review_pr 7"))
    assert out is not None and "trial 1 of experiment" in out["hookSpecificOutput"]["additionalContext"]

    a = agent_experiment(lab, project)
    set_dispatch(lab, a, True)
    out = on_agent_start(lab, launch("toolu_early"))
    assert out is not None and lab.trials(a) == []
    assert out["hookSpecificOutput"]["updatedInput"]["prompt"].startswith(
        "<agent-instructions>\nYou review code. Be thorough.\n</agent-instructions>"
    )
    assert not (lab.state_dir / "dispatched" / "call-toolu_early.json").exists()  # nothing to time
    now[0] += 11
    assert on_agent_start(lab, launch("toolu_later")) is not None and len(lab.trials(a)) == 1
    # the window runs from the dispatch, not from the file's time (an editor or git may touch it)
    os.utime(project / AGENT)
    assert on_agent_start(lab, launch("toolu_touched")) is not None and len(lab.trials(a)) == 2


def test_text_too_long_to_hand_over_is_never_handed_over_in_part(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the dispatch (production's text, not a trial) as at any time: a context Claude
    Code would cut to a 2 KB preview is replaced by a pointer to the file's own instructions."""
    monkeypatch.setattr(dispatch_ops, "SETTLE_SECONDS", 10.0)
    (project / PROD).write_text("Review $ARGUMENTS " + "with care " * 790 + "\n")
    git(project, "commit", "-qam", "long")
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    out = on_prompt(lab, payload("/review_pr " + "x" * 2_500))
    assert out is not None and lab.trials(e.id) == []
    context = out["hookSpecificOutput"]["additionalContext"]
    assert len(context) < 1000 and "too long for a hook to hand over" in context and PROD in context


def test_a_dispatcher_back_after_a_promotion_gives_way_to_the_promoted_text(lab: Lab, project: Path) -> None:
    """A dispatcher that comes back after its experiment ended (a branch checked out, a stash
    popped) is taken out at the next run, and production is what the experiment left: the variant
    after a promotion, not the original."""
    e = lab.create(**spec(sample_size_required=20))
    set_dispatch(lab, e.id, True)
    held = (project / PROD).read_bytes()
    record_trials(lab, e.id)
    assert release.promote(lab, e.id).outcome == "promoted" and (project / PROD).read_text() == VARIANT
    (project / PROD).write_bytes(held)  # the dispatcher is back
    out = on_prompt(lab, payload("/review_pr 5"))
    assert (project / PROD).read_text() == VARIANT and lab.get(e.id).status == "promoted"
    assert out is not None and "has ended (promoted)" in out["hookSpecificOutput"]["additionalContext"]
    assert f"<command-text>\n{VARIANT}" in out["hookSpecificOutput"]["additionalContext"]

    a = agent_experiment(lab, project, sample_size_required=20)
    set_dispatch(lab, a, True)
    held = (project / AGENT).read_bytes()
    release.rollback(lab, a, reason="not now")
    (project / AGENT).write_bytes(held)
    started = {"session_id": "s1", "source": "resume", "agent_type": "reviewer"}
    out = on_session_start(lab, started)
    assert out is not None and "has ended (rolled_back)" in out["hookSpecificOutput"]["additionalContext"]
    context = out["hookSpecificOutput"]["additionalContext"]
    assert context.endswith("You review code. Be thorough.\n</agent-instructions>")
    assert dispatch.dispatcher_experiment((project / AGENT).read_text()) is None


def test_a_new_experiment_on_a_command_says_it_can_be_dispatched(lab: Lab, project: Path) -> None:
    """create_experiment's notes name dispatch where a dispatcher could stand in, and only there."""
    e = lab.create(**spec())
    hint = dispatch_ops.dispatch_hint(lab, e) or ""
    assert hint.startswith("/review_pr can be dispatched: the dispatch tool (or /meta-experiment:meta_experiment")
    # from a review: it said runs were "recorded by the plugin's hooks, without assign or record calls",
    # yet a hook measures time only, and the model is asked for the guardrails
    assert hint.endswith(
        "its time is recorded when the reply ends, and the model is asked to record issues_caught with the record "
        "tool (a hook cannot measure them)."
    )
    on = set_dispatch(lab, e.id, True).summary
    assert "assigned; its time is recorded when the reply ends, and the model is asked to record issues_caught" in on
    set_dispatch(lab, e.id, False)
    count = {"name": "issues_caught", "direction": "higher_is_better"}
    (project / ".claude" / "commands" / "count.md").write_text("Count the issues.\n")
    (project / ".claude" / "commands" / "count.v.md").write_text("Count the issues twice.\n")
    files = {".claude/commands/count.md": ".claude/commands/count.v.md"}
    counted = lab.create(**spec(name="counted", primary_metric=count, secondary_metrics=[], files=files))
    assert (dispatch_ops.dispatch_hint(lab, counted) or "").endswith(
        "the model is asked to record issues_caught with the record tool (a hook measures time only)."
    )
    a = lab.get(agent_experiment(lab, project))
    assert "each launch of agent reviewer in Claude Code is a trial" in (dispatch_ops.dispatch_hint(lab, a) or "")
    assert (dispatch_ops.dispatch_hint(lab, a) or "").endswith("its time is recorded at its end.")
    (project / "notes.md").write_text("a\n")
    (project / "notes.v.md").write_text("b\n")
    other = lab.create(**spec(files={"notes.md": "notes.v.md"}))
    assert dispatch_ops.dispatch_hint(lab, other) is None  # not a command, skill or agent
    (project / ".claude" / "commands" / "diff.md").write_text("Diff: !`git diff`\n")
    (project / ".claude" / "commands" / "diff.v.md").write_text("Diff briefly: !`git diff`\n")
    shell = lab.create(**spec(files={".claude/commands/diff.md": ".claude/commands/diff.v.md"}))
    assert dispatch_ops.dispatch_hint(lab, shell) is None  # a shell line: dispatch would refuse it
    (project / ".claude" / "skills" / "review_pr").mkdir(parents=True)
    (project / ".claude" / "skills" / "review_pr" / "SKILL.md").write_text("A skill of the command's name.\n")
    assert dispatch_ops.dispatch_hint(lab, e) is None  # the skill runs instead: dispatch would refuse it


def test_a_dispatcher_of_an_experiment_the_project_does_not_have_is_explained(
    lab: Lab, tmp_path: Path, project: Path
) -> None:
    """A dispatcher committed by mistake reaches a clone with no such experiment: there is no text
    to hand over, and the model is told so and where the original is, instead of nothing."""
    e = lab.create(**spec())
    set_dispatch(lab, e.id, True)
    clone = tmp_path / "clone"
    (clone / ".claude" / "commands").mkdir(parents=True)
    (clone / ".claude" / "agents").mkdir(parents=True)
    (clone / PROD).write_text((project / PROD).read_text())
    (clone / AGENT).write_text(dispatch.dispatcher_text(e.id, AGENT, AGENT_FRONT + "You review code.\n"))
    other = Lab.open(clone, create=False)  # a clone without an experiment database
    try:
        out = on_prompt(other, payload("/review_pr 3"))
        assert out is not None
        context = out["hookSpecificOutput"]["additionalContext"]
        assert f"holds a dispatcher of experiment {e.id}" in context and f"git log -p -- {PROD}" in context
        launched = on_agent_start(other, launch())
        assert launched is not None
        task = launched["hookSpecificOutput"]["updatedInput"]["prompt"]
        assert f"git log -p -- {AGENT}" in task and task.endswith("\n\nReview x.py")
        started = on_session_start(other, {"session_id": "s", "agent_type": "reviewer"})
        assert started is not None and "committed by mistake" in started["hookSpecificOutput"]["additionalContext"]
        assert not other.has_database()  # nothing was made
    finally:
        other.close()
    assert on_prompt(lab, payload("/other 1")) is None  # a command with no dispatcher: nothing to say
    # a copy of a dispatcher in another command's file: said so, not "committed by mistake"
    (project / ".claude" / "commands" / "review_pr2.md").write_text((project / PROD).read_text())
    out = on_prompt(lab, payload("/review_pr2 1"))
    assert out is not None and lab.trials(e.id) == []
    copied = out["hookSpecificOutput"]["additionalContext"]
    assert f"a copy of the dispatcher of experiment {e.id} (running), which tests {PROD}: it was copied" in copied
    assert "This run is not a trial" in copied and "Review the pull request." in copied  # the text to go on with


def test_a_dispatched_command_renamed_is_told_how_to_fix_and_named_when_the_experiment_ends(
    lab: Lab, project: Path
) -> None:
    """From a review: `mv review.md code-review.md` while dispatched left /code-review with 'a copy of
    a dispatcher, needs its own text' and no way out, and the rollback restored review.md without a
    word about code-review.md, which kept the dead dispatcher for good."""
    e = lab.create(**spec(secondary_metrics=[]))
    set_dispatch(lab, e.id, True)
    renamed = ".claude/commands/code_review.md"
    (project / PROD).rename(project / renamed)
    out = on_prompt(lab, payload("/code_review 42"))
    assert out is not None and lab.trials(e.id) == []
    told = out["hookSpecificOutput"]["additionalContext"]
    assert f"it looks moved from {PROD}, which is missing now" in told
    assert (
        f"move it back to {PROD} while the experiment runs, or end the dispatch "
        f"(`meta-experiment dispatch {e.id} --off`" in told
    )
    assert "<command-text>\nReview the pull request." in told  # production's text, to go on with
    from meta_experiment.report import render_status

    assert f"{PROD} (deleted; its dispatcher is in {renamed}: moved back, it goes on)" in render_status(lab.status())
    done = release.rollback(lab, e.id, reason="renamed")
    assert dispatch.dispatcher_experiment((project / PROD).read_text()) is None  # the original, back
    assert f"{renamed} still holds a copy of this experiment's dispatcher (moved or copied from {PROD}" in " ".join(
        done.warnings
    )
    after = on_prompt(lab, payload("/code_review 42"))
    assert after is not None
    told = after["hookSpecificOutput"]["additionalContext"]
    assert f"(rolled_back), which tests {PROD}: it was copied from {PROD}" in told
    assert f"put this command's own text in it ({PROD} holds the original now) or delete it" in told


def test_an_agent_launched_after_its_experiment_ended_gets_what_production_holds(lab: Lab, project: Path) -> None:
    a = agent_experiment(lab, project, sample_size_required=20)
    set_dispatch(lab, a, True)
    held = (project / AGENT).read_bytes()
    release.rollback(lab, a, reason="not now")
    (project / AGENT).write_bytes(held)  # the dispatcher is back (a stash popped)
    out = on_agent_start(lab, launch("toolu_after"))
    assert out is not None and lab.trials(a) == []
    assert out["hookSpecificOutput"]["updatedInput"]["prompt"].startswith(
        "<agent-instructions>\nYou review code. Be thorough.\n</agent-instructions>"
    )
    assert dispatch.dispatcher_experiment((project / AGENT).read_text()) is None  # taken out


def test_a_dispatched_run_is_asked_to_record_the_guardrails_no_hook_can_measure(lab: Lab, project: Path) -> None:
    """From a review: with a guardrail, a dispatched command's runs recorded only their time, so the
    guardrail never had values and the experiment could never be promoted. The handed text now asks
    for the guardrails with the trial id; the run's time is filled in from the run, and the Stop hook
    leaves the recorded trial as it is. An agent's run (its time only) is refused with guardrails."""
    now = [1_800_000_000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec())  # a duration primary and the guardrail issues_caught
    set_dispatch(lab, e.id, True)
    now[0] += 60
    out = on_prompt(lab, payload("/review_pr 3", session="g1", prompt_id="p1"))
    assert out is not None
    context = out["hookSpecificOutput"]["additionalContext"]
    [trial] = lab.trials(e.id)
    assert (
        f"Just before you finish, call meta-experiment's record tool with trial_id {trial.trial_id} and the "
        "measured issues_caught (its time is filled in from the run" in context
    )
    assert "the command's file holds a dispatcher" in context
    now[0] += 90
    lab.record(trial.trial_id, {"issues_caught": 4.0})  # as the model does, its time left out
    now[0] += 5
    on_stop(lab, {"session_id": "g1", "prompt_id": "p1"})
    recorded = lab.trial(trial.trial_id)
    assert recorded.metrics == {"issues_caught": 4.0, "time_to_complete": 1.5}  # 90 s, in minutes

    # a skill's run says it is a skill's file
    s = skill_experiment(lab, project)
    set_dispatch(lab, s, True)
    now[0] += 60
    out = on_prompt(lab, payload("/greet Bob", session="g2"))
    assert out is not None and "the skill's file holds a dispatcher" in out["hookSpecificOutput"]["additionalContext"]

    # an agent's run is measured by its time only: with a guardrail it could never be promoted
    a = agent_experiment(lab, project, secondary_metrics=[{"name": "issues_caught", "direction": "higher_is_better"}])
    with pytest.raises(InvalidInput, match=r"guardrails \(issues_caught\) would never get a value"):
        set_dispatch(lab, a, True)
    assert dispatch_ops.dispatch_hint(lab, lab.get(a)) is None


def test_a_temp_file_a_killed_dispatch_left_is_removed(lab: Lab, project: Path) -> None:
    """From a review: a dispatch killed while writing left .review_pr.md.meta-experiment-*.tmp in the
    commands folder for good (a `git add .` would commit it); promote and rollback remove theirs."""
    from meta_experiment.files import temp_prefix

    e = lab.create(**spec())
    stale = (project / PROD).parent / f"{temp_prefix(project / PROD)}killed.tmp"
    stale.write_text("half a dispatcher")
    assert set_dispatch(lab, e.id, False).changed is False  # not dispatched: still cleaned up
    assert not stale.exists()
    stale.write_text("half a dispatcher")
    set_dispatch(lab, e.id, True)
    assert not stale.exists()
    stale.write_text("half the original")
    set_dispatch(lab, e.id, False)
    assert not stale.exists() and (project / PROD).read_text() == COMMAND
    others = (project / PROD).parent / ".review_pr.md.someone-else.tmp"  # not ours: left alone
    others.write_text("x")
    set_dispatch(lab, e.id, True)
    assert others.exists()


def test_a_dispatched_command_and_a_dispatched_skill_in_one_reply_are_both_recorded(lab: Lab, project: Path) -> None:
    """From a review: a session kept one note of its dispatched run, so a dispatched command whose
    reply ran a dispatched skill lost the command's trial: the skill's note replaced it, and the
    Stop recorded the skill alone (the command's trial stayed assigned, then was abandoned)."""
    now = [1000.0]
    skill = skill_experiment(lab, project)  # (its clock: a fixed id)
    lab.clock = lambda: now[0]
    command = lab.create(**spec()).id
    set_dispatch(lab, command, True)
    set_dispatch(lab, skill, True)
    assert on_prompt(lab, payload("/review_pr 1", session="s", prompt_id="q1")) is not None
    used = {"session_id": "s", "prompt_id": "q1", "tool_name": "Skill", "tool_input": {"skill": "greet", "args": "Bo"}}
    now[0] += 30
    assert on_skill(lab, used) is not None
    assert on_skill(lab, used) is not None  # the skill run again in the same reply: the same trial
    now[0] += 60
    assert on_stop(lab, {"session_id": "s", "prompt_id": "q1"}) is None
    [a], [b] = lab.trials(command), lab.trials(skill)
    assert a.status == b.status == "recorded"
    assert a.metrics["time_to_complete"] == pytest.approx(1.5)  # 90 s, in minutes: from the prompt
    assert b.metrics["time_to_complete"] == pytest.approx(1.0)  # 60 s: from the skill's first run
    assert not (lab.state_dir / "dispatched" / "s.json").exists()
    # a run of an earlier prompt that never reached its Stop (interrupted) is not kept with the next one
    on_prompt(lab, payload("/review_pr 2", session="s", prompt_id="q2"))
    on_skill(lab, {**used, "prompt_id": "q3"})
    on_stop(lab, {"session_id": "s", "prompt_id": "q3"})
    assert [t.status for t in lab.trials(command)] == ["recorded", "assigned"]
    assert [t.status for t in lab.trials(skill)] == ["recorded", "recorded"]


def test_a_rollback_after_the_dispatcher_was_committed_says_the_original_is_still_to_commit(
    lab: Lab, project: Path
) -> None:
    """From a review: `git commit -am wip` while dispatched put the dispatcher in HEAD; the rollback
    then said 'git: nothing to commit' while the branch about to be pushed held the dispatcher."""
    e = lab.create(**spec(secondary_metrics=[]))
    set_dispatch(lab, e.id, True)
    git(project, "commit", "-qam", "wip")
    done = release.rollback(lab, e.id, reason="not now")
    said = " ".join(done.warnings)
    assert f"The dispatcher had been committed (HEAD holds it in {PROD}), so the original is not committed yet" in said
    line = said.split("every clone runs the dispatcher: ", 1)[1]
    subprocess.run(line, shell=True, check=True, capture_output=True)  # the line given, as given
    assert git(project, "status", "--porcelain", "--", PROD) == ""
    assert dispatch.dispatcher_experiment(git(project, "show", f"HEAD:{PROD}")) is None
    assert done.git.detail.startswith("nothing committed: production was never changed, but HEAD holds the dispatcher")
    # dispatch off says it too; a dispatcher never committed gets no such note
    other = lab.create(**spec(secondary_metrics=[]))
    set_dispatch(lab, other.id, True)
    git(project, "commit", "-qam", "wip again")
    assert "HEAD holds it" in set_dispatch(lab, other.id, False).summary
    git(project, "reset", "-q", "--hard", "HEAD~1")  # (HEAD back to the original; the dispatcher only on disk)
    set_dispatch(lab, other.id, True)
    assert "HEAD holds it" not in set_dispatch(lab, other.id, False).summary


def test_an_automatic_end_says_the_dispatcher_was_committed_too(lab: Lab, project: Path) -> None:
    """From a review: the note that HEAD holds the dispatcher reached only a manual rollback; an
    alert's auto-rollback said 'git: nothing to commit', auto mode's report left the result's
    warnings out, and the Stop hook's message said nothing of it."""
    from meta_experiment.auto import run_auto
    from meta_experiment.report import render_auto

    e = lab.create(**spec(secondary_metrics=[], max_duration_days=0.0001))  # 8.64 s
    set_dispatch(lab, e.id, True)
    git(project, "commit", "-qam", "wip")
    lab.clock = lambda: time.time() + 60  # past its time: auto mode expires it
    report = run_auto(lab)
    [item] = report.items
    assert item.action == "expired"
    assert "HEAD holds it in" in render_auto(report)
    assert "but HEAD holds the dispatcher" in render_auto(report)
    git(project, "commit", "-qam", "the original back")
    # the Stop hook's message after a run whose alert rolled the experiment back
    other = lab.create(**spec(secondary_metrics=[]))
    set_dispatch(lab, other.id, True)
    git(project, "commit", "-qam", "wip again")
    for _ in range(10):
        lab.record_measurement(other.id, "control", {"time_to_complete": 1.0})
    said = None
    for i in range(30):
        on_prompt(lab, payload(session=f"f{i}", prompt_id=f"p{i}"))
        [trial] = [t for t in lab.trials(other.id) if t.status == "assigned"]
        lab.record(trial.trial_id, {}, success=trial.arm == "control")  # the treatment's runs fail
        out = on_stop(lab, {"session_id": f"f{i}", "prompt_id": f"p{i}"})
        if lab.get(other.id).status != "running":
            said = out
            break
    assert lab.get(other.id).status == "rolled_back"
    assert said is not None and "HEAD holds it in" in said["systemMessage"]


def test_a_skill_run_three_times_in_one_reply_is_one_trial_after_its_first_was_recorded(
    lab: Lab, project: Path
) -> None:
    """From a review of the note of several runs: the skill run three times in one reply, the first
    recorded by the model as failed: the third run found the first (recorded) note, gave up, and
    took a new trial; the second's time then covered the third run."""
    skill = skill_experiment(lab, project)
    set_dispatch(lab, skill, True)
    used = {"session_id": "s", "prompt_id": "q1", "tool_name": "Skill", "tool_input": {"skill": "greet", "args": "Bo"}}
    on_skill(lab, used)
    [first] = lab.trials(skill)
    lab.record(first.trial_id, {}, success=False)  # the run failed, as the model says
    on_skill(lab, used)
    on_skill(lab, used)
    assert [t.status for t in lab.trials(skill)] == ["recorded", "assigned"]
    on_stop(lab, {"session_id": "s", "prompt_id": "q1"})
    assert [t.status for t in lab.trials(skill)] == ["recorded", "recorded"]
