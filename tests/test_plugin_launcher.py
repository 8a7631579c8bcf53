"""The plugin's launcher (plugin/scripts/launch.py) on a small stand-in package, so that each install
takes seconds: an install outlives a launcher killed with its process group (Claude Code kills a
server that does not start within 30 s), an environment in use is kept and one no longer used is
removed, and a half-made environment or one whose Python is gone is installed again. (The real
package's install is tests/test_plugin.py's.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name == "nt", reason="POSIX process groups and flock")]

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "meta-experiment"
version = "0.0.0"

[tool.hatch.build.targets.wheel]
packages = ["server/meta_experiment"]
"""
MAIN = """\
import sys, time
print("ran " + " ".join(sys.argv[1:]) + " {mark}", flush=True)
if sys.argv[1:] == ["serve"]:
    time.sleep(120)
"""


def stand_in(tmp_path: Path, mark: str) -> Path:
    """A plugin folder with the real launcher and a package that only says which version it is."""
    plugin = tmp_path / f"plugin-{mark}"
    (plugin / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "plugin" / "scripts" / "launch.py", plugin / "scripts" / "launch.py")
    package = plugin / "server" / "meta_experiment"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(MAIN.format(mark=mark))
    (plugin / "pyproject.toml").write_text(PYPROJECT)
    return plugin


def launch(plugin: Path, data: Path, *args: str, **kwargs) -> subprocess.Popen[str]:
    """The launcher as Claude Code runs it: with the plugin's data folder, without this checkout
    on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CLAUDE_PLUGIN_DATA"] = str(data)
    return subprocess.Popen(
        [sys.executable, str(plugin / "scripts" / "launch.py"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run(plugin: Path, data: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    process = launch(plugin, data, *args, **kwargs)
    out, err = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def environments(data: Path) -> set[str]:
    return {p.name for p in data.glob("venv-*") if p.is_dir()}


def wait_for(condition, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_an_install_outlives_a_launcher_killed_with_its_process_group(tmp_path: Path) -> None:
    plugin, data = stand_in(tmp_path, "a"), tmp_path / "data"
    server = launch(plugin, data, "serve", start_new_session=True)  # as Claude Code starts it
    wait_for(lambda: any(data.glob("venv-*.log")), 60)  # the installer has started
    os.killpg(server.pid, signal.SIGKILL)  # what Claude Code does after 30 s
    server.communicate(timeout=30)
    assert server.returncode == -signal.SIGKILL
    wait_for(lambda: any(data.glob("venv-*/.meta-experiment-complete")))
    done = run(plugin, data, "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran status a\n" and "installing" not in done.stderr  # nothing left to do


def test_an_environment_in_use_is_kept_and_one_no_longer_used_is_removed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = launch(stand_in(tmp_path, "a"), data, "serve")
    assert first.stdout is not None
    assert first.stdout.readline() == "ran serve a\n"  # a server of version a runs on
    try:
        assert run(stand_in(tmp_path, "b"), data, "install").returncode == 0
        assert len(environments(data)) == 2  # a's is in use: kept
    finally:
        first.kill()
        first.communicate()
    done = run(stand_in(tmp_path, "c"), data, "status")
    assert done.stdout == "ran status c\n", done.stderr
    [left] = environments(data)  # a's and b's: no process holds them
    assert [p.name for p in data.glob("venv-*.log")] == [left + ".log"]
    assert [p.name for p in data.glob("venv-*.in-use")] == [left + ".in-use"]  # (one per update piled up)


def test_an_environment_of_the_first_release_used_this_week_is_kept(tmp_path: Path) -> None:
    """From a review: the first release's server took no lock on its environment (it touched the
    completion marker instead, and kept an environment so marked for 7 days), so the next install
    removed the environment of a server still running."""
    data = tmp_path / "data"
    for name, age_days in (("venv-firstrecent", 1), ("venv-firstold", 8)):
        (data / name / "bin").mkdir(parents=True)
        marker = data / name / ".meta-experiment-complete"
        marker.write_text("installed\n")
        then = time.time() - age_days * 86400
        os.utime(marker, (then, then))
    assert run(stand_in(tmp_path, "b"), data, "install").returncode == 0
    assert "venv-firstrecent" in environments(data) and "venv-firstold" not in environments(data)


def test_a_half_made_environment_or_one_whose_python_is_gone_is_installed_again(tmp_path: Path) -> None:
    plugin, data = stand_in(tmp_path, "a"), tmp_path / "data"
    assert run(plugin, data, "install").returncode == 0
    [env] = data.glob("venv-*/")
    python = env / "bin" / "python"
    python.unlink()
    python.symlink_to(tmp_path / "a-python-removed-by-an-upgrade")
    done = run(plugin, data, "status")
    assert done.returncode == 0 and done.stdout == "ran status a\n", done.stderr
    assert "installing" in done.stderr
    # a release upgrade repoints an unversioned python3: bin/python runs another Python, without the package
    other = tmp_path / "another-python"
    other.write_text("#!/bin/sh\nexit 1\n")
    other.chmod(0o755)
    python.unlink()
    python.symlink_to(other)
    done = run(plugin, data, "status")
    assert done.returncode == 0 and done.stdout == "ran status a\n", done.stderr
    assert "installing" in done.stderr and python.resolve() != other
    (env / ".meta-experiment-complete").unlink()  # an install cut short
    done = run(plugin, data, "status")
    assert done.returncode == 0 and done.stdout == "ran status a\n", done.stderr
    assert "installing" in done.stderr and (env / ".meta-experiment-complete").exists()


def test_a_session_started_as_a_dispatched_agent_waits_for_the_install(tmp_path: Path) -> None:
    """Such a session gets its instructions from the SessionStart hook only, and only at its start:
    in the first session after an install or update the hook waits for the install (the `install`
    hook runs alongside) instead of leaving the session with the dispatcher alone. Other hooks do
    not wait."""
    import json

    plugin, data = stand_in(tmp_path, "a"), tmp_path / "data"
    project = tmp_path / "project"
    (project / ".claude" / "agents").mkdir(parents=True)
    dispatcher = "---\nname: reviewer\n---\n<!-- meta-experiment dispatcher for experiment e1: x -->\n"
    (project / ".claude" / "agents" / "reviewer.md").write_text(dispatcher)
    (project / ".claude" / "commands").mkdir()
    (project / ".claude" / "commands" / "pr.md").write_text(dispatcher)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CLAUDE_PLUGIN_DATA=str(data), CLAUDE_PROJECT_DIR=str(project))

    def hook(event: str, payload: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(plugin / "scripts" / "launch.py"), "hook", event],
            input=json.dumps(payload),
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    early = hook("prompt", {"prompt": "/pr 1", "session_id": "s0"})  # a prompt does not wait
    assert early.returncode == 0 and early.stdout == "" and "still being installed" in early.stderr
    done = hook("session-start", {"agent_type": "reviewer", "session_id": "s1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran hook session-start a\n"  # installed, then the package's hook ran
    assert len(environments(data)) == 1
    plain = hook("session-start", {"session_id": "s2"})  # not a dispatched agent: nothing to do
    assert plain.returncode == 0 and plain.stdout == ""


def test_a_data_folder_that_cannot_be_made_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    done = run(stand_in(tmp_path, "a"), tmp_path / "a-file" / "data", "status")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot make the plugin's data folder" in done.stderr and "make it writable" in done.stderr


def test_an_old_python3_builds_with_a_python_on_path_that_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: the newest python3.N on PATH was taken without running it, and a pyenv shim of
    a version not selected (exit 127) failed every install, blamed on PyPI."""
    from test_plugin import load_launcher

    launch_module = load_launcher(ROOT / "plugin")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python3.19"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.19: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SystemExit):  # only the shim: no usable Python, and it is named
        launch_module.base_python(version=(3, 8))
    (bin_dir / "python3.11").symlink_to(sys.executable)
    assert launch_module.base_python(version=(3, 8)) == str(bin_dir / "python3.11")


def test_the_hooks_quick_look_never_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state folder this user may not read (made by another user) raised PermissionError from the
    quick look, a traceback and exit status 1 at every Stop. Running as root here, the folder cannot
    be made unreadable: the quick look is made to raise what it raised then."""
    import io

    from test_plugin import load_launcher

    launch_module = load_launcher(ROOT / "plugin")

    def unreadable(event: str, data: bytes) -> bool:
        raise PermissionError(13, "Permission denied", "dispatched/abc.json")

    monkeypatch.setattr(launch_module, "hook_concerns_us", unreadable)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"session_id": "abc"}')))
    assert launch_module.run_hook("stop") is None  # quietly not ours
