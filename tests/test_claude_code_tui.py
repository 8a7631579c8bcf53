"""Claude Code's interactive terminal UI, as a person uses it: the real CLI in a pseudo-terminal,
the model a stand-in on loopback (tests/fake_model.py). A person types a dispatched command; the
hooks assign and hand over the arm's text, the Stop hook records the run and carries out auto
mode's decision, and the line it sends for the person (`systemMessage`) is on the screen. `claude
-p` prints nothing of that line, so only the interactive UI can show it reaches the person."""

from __future__ import annotations

import json
import os
import re
import select
import time
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VARIANT, spec
from fake_model import fake_model
from meta_experiment.dispatch_ops import set_dispatch
from meta_experiment.lifecycle import Lab
from test_dispatch_cli import hooks_settings, offline_env
from test_plugin import claude_cli

pty = pytest.importorskip("pty", reason="the interactive UI needs a POSIX pseudo-terminal")

API_KEY = "sk-ant-api03-" + "t" * 80  # a stand-in: the model is on loopback
FORWARD = re.compile(rb"\x1b\[(\d*)C")  # cursor forward: the UI's way of drawing blanks it has drawn before
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()=>][0-9A-Za-z]?")


def squash(text: str) -> str:
    return "".join(text.split())


class Terminal:
    """The CLI in a pseudo-terminal: what it has drawn so far (escape sequences taken out), and keys."""

    def __init__(self, cli: str, cwd: Path, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the CLI, nothing else
            os.chdir(cwd)
            os.execve(cli, [cli], env)
        self.raw = b""

    def screen(self) -> str:
        blanks = FORWARD.sub(lambda m: b" " * int(m.group(1) or 1), self.raw)
        return ANSI.sub(b"", blanks).decode("utf-8", "replace")

    def shows(self, text: str) -> bool:
        """Whether the text is on the screen, blanks aside: a redraw may move the cursor over a blank
        or wrap a line where the text has one."""
        return squash(text) in squash(self.screen())

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.raw += os.read(self.fd, 65536)
                except OSError:  # the CLI has exited
                    return

    def wait_for(self, text: str, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.shows(text):
                return True
            self.read(0.5)
        return self.shows(text)

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())
        self.read(1.0)

    def submit(self, prompt: str) -> None:
        self.type(prompt)
        self.type("\r")

    @classmethod
    def ready(cls, cli: str, cwd: Path, env: dict[str, str]) -> Terminal:
        """The CLI started and waiting at its prompt."""
        terminal = cls(cli, cwd, env)
        if not terminal.wait_for("❯", 60):
            terminal.close()
            raise AssertionError(f"no prompt: {terminal.screen()[-2000:]}")
        terminal.read(2.0)
        return terminal

    def close(self) -> None:
        import signal

        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def returning_user(tmp_path: Path, project: Path) -> dict[str, str]:
    """The environment of a returning user of this folder (onboarding done, the folder trusted, the
    API key approved) with the plugin's hooks as project settings; ANTHROPIC_BASE_URL to add."""
    home = tmp_path / "home"
    home.mkdir()
    seen = {"hasCompletedOnboarding": True, "theme": "dark"}
    seen["customApiKeyResponses"] = {"approved": [API_KEY[-20:]], "rejected": []}
    seen["projects"] = {str(project): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}}
    (home / ".claude.json").write_text(json.dumps(seen))
    hooks_settings(project)
    return offline_env(home, ANTHROPIC_API_KEY=API_KEY, TERM="xterm-256color")


def test_a_person_types_a_dispatched_command_and_sees_the_decision(tmp_path: Path, project: Path) -> None:
    cli = claude_cli()
    env = returning_user(tmp_path, project)
    lab = Lab.open(project, create=True)
    try:
        primary = {"name": "seconds", "direction": "lower_is_better", "unit": "s"}
        e = lab.create(**spec(primary_metric=primary, secondary_metrics=[], sample_size_required=10, auto_promote=True))
        for i in range(30):  # runs measured before: the treatment is clearly faster
            lab.record_measurement(e.id, "control", {"seconds": 60.0 + i % 5})
            lab.record_measurement(e.id, "treatment", {"seconds": 30.0 + i % 5})
        lab.clock = lambda: time.time() - 60  # dispatched a minute ago: the session notices it at start anyway
        set_dispatch(lab, e.id, True)
    finally:
        lab.close()

    with fake_model() as model:
        env["ANTHROPIC_BASE_URL"] = model.url
        terminal = Terminal.ready(cli, project, env)
        try:
            terminal.submit("/review_pr 42")
            shown = f"meta-experiment: {e.id} ("
            assert terminal.wait_for(shown, 90), terminal.screen()[-3000:]
            terminal.read(1.0)
            screen = terminal.screen()
        finally:
            terminal.close()
        texts = "\n".join(text for request in model.requests for text in model.texts(request))

    # the hook handed the model the arm's text in the interactive UI too
    lab = Lab.open(project)
    try:
        trials = [t for t in lab.trials(e.id) if t.source == "assign"]
        ended = lab.get(e.id)
    finally:
        lab.close()
    [trial] = trials
    assert trial.status == "recorded" and trial.unit is not None and trial.unit.startswith("session ")
    arm_text = (COMMAND if trial.arm == "control" else VARIANT).rstrip("\n")
    assert f"<command-text>\n{arm_text}" in texts
    # the Stop hook recorded it and promoted; the person is told on the screen
    assert ended.status == "promoted", ended.status_reason
    assert squash(f"Stop says: meta-experiment: {e.id} (Parallel PR review) promoted") in squash(screen)
    assert (project / PROD).read_text() == VARIANT


def test_a_session_open_before_the_dispatcher_runs_production_until_it_has_noticed(
    tmp_path: Path, project: Path
) -> None:
    """A session that was open when the dispatcher went in still expands the command's old file for
    a few seconds (measured: 2-5 s). A run typed then is not a trial and gets production's text;
    once SETTLE_SECONDS have passed, the session runs the dispatcher and the run is a trial."""
    from meta_experiment.dispatch_ops import SETTLE_SECONDS

    cli = claude_cli()
    env = returning_user(tmp_path, project)
    lab = Lab.open(project, create=True)
    try:
        e = lab.create(**spec())
    finally:
        lab.close()
    with fake_model() as model:
        env["ANTHROPIC_BASE_URL"] = model.url
        terminal = Terminal.ready(cli, project, env)
        try:
            lab = Lab.open(project)
            try:
                set_dispatch(lab, e.id, True)
            finally:
                lab.close()
            dispatched_at = time.monotonic()
            terminal.submit("/review_pr 1")
            assert terminal.wait_for("Done.", 60), terminal.screen()[-2000:]
            early = "\n".join(model.texts(model.requests[-1]))
            terminal.read(max(0.0, SETTLE_SECONDS + 1 - (time.monotonic() - dispatched_at)))
            since = len(model.requests)
            terminal.submit("/review_pr 2")
            end = time.monotonic() + 60
            while len(model.requests) == since and time.monotonic() < end:
                terminal.read(0.5)
            terminal.read(2.0)
            later = "\n".join(model.texts(model.requests[-1]))
        finally:
            terminal.close()
    assert "this run is not a trial" in early and f"<command-text>\n{COMMAND}" in early
    assert "/review_pr is under an A/B test" in later  # the session runs the dispatcher now
    assert f"trial 1 of experiment {e.id}" in later
    lab = Lab.open(project)
    try:
        assert len(lab.trials(e.id)) == 1
    finally:
        lab.close()
