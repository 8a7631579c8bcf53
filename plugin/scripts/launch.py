#!/usr/bin/env python3
"""Start meta-experiment for the Claude Code plugin.

The plugin carries the package's source (`server/`, `pyproject.toml`). On first use, and again
after any change to that source (a plugin update), this installs it with its dependencies into a
virtual environment in the plugin's data folder (`CLAUDE_PLUGIN_DATA`, kept across updates), then
runs `python -m meta_experiment <args>` there: `serve` for the MCP server, or any CLI command.
`install` only installs (the plugin's SessionStart hook runs it).

The install runs in a process of its own, detached from the one that asked for it: Claude Code
gives a starting MCP server 30 s and then kills it with its children, and an install can take about
as long; the install goes on and the next start finds it done. Sessions starting together install
once (they wait on a lock). A running server holds a shared lock on its environment, and an
environment of another version is removed only when nothing holds it.

Standard library only, and no syntax newer than Python 3.8, so that an old `python3` gets a
readable message instead of a SyntaxError.
"""

import json
import os
import re
import stat
import sys
import time
from pathlib import Path

# hashlib, shutil and subprocess are imported where they are used: the hooks run at every prompt,
# and most prompts need none of them (bench/bench_hooks.py).

MINIMUM = (3, 11)
ROOT = Path(__file__).resolve().parent.parent
COMPLETE = ".meta-experiment-complete"
FIRST_RELEASE_KEEP_S = 7 * 86400  # an environment of the first release, used this recently, may be running
# Variables that would send pip's install elsewhere or mix another Python's packages in.
FOREIGN = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT")

try:
    import fcntl
except ImportError:  # Windows: no locks; installs run in this process
    fcntl = None


def say(text):
    # stdout is the MCP channel of `serve`: every word for people goes to stderr
    print("meta-experiment: " + text, file=sys.stderr, flush=True)


def fail(text):
    say(text)
    sys.exit(1)


def data_dir():
    """Claude Code's data folder for this plugin; run by hand, the same folder (where Claude Code
    2.1 keeps it: under CLAUDE_CONFIG_DIR when that is set, as its plugins are), so that an install
    made by hand is the one the plugin uses."""
    chosen = os.environ.get("CLAUDE_PLUGIN_DATA")
    if chosen:
        return Path(chosen)
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    home = Path(config).expanduser() if config else Path.home() / ".claude"
    return home / "plugins" / "data" / "meta-experiment-meta-experiment"


def fingerprint():
    """Of everything that goes into the install: a changed file means a new environment."""
    import hashlib

    digest = hashlib.sha256()
    package = ROOT / "server" / "meta_experiment"
    files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in [ROOT / "pyproject.toml", *files]:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def base_python(version=sys.version_info[:2]):
    """A Python of at least 3.11 to build the environment with: this one, else the newest
    python3.N on PATH that runs and has venv (a pyenv shim of a version that is not selected is on
    PATH and fails; a Debian Python may lack python3-venv). Tried once per install only."""
    if version >= MINIMUM:
        return sys.executable
    import subprocess

    check = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
    tried = []
    for minor in range(20, MINIMUM[1] - 1, -1):
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            candidate = os.path.join(folder or ".", f"python3.{minor}")
            if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)) or candidate in tried:
                continue
            tried.append(candidate)
            try:
                works = (
                    subprocess.run(
                        [candidate, "-c", check], stdin=subprocess.DEVNULL, capture_output=True, timeout=30
                    ).returncode
                    == 0
                )
            except (OSError, subprocess.SubprocessError):
                works = False
            if works:
                return candidate
    here = "{}.{}".format(*version)
    unusable = f" ({', '.join(tried)} on PATH could not run, or lack venv)" if tried else ""
    fail(
        f"needs Python 3.11 or newer; python3 here is {here} and no usable python3.11 or newer is on PATH{unusable}. "
        "Install Python 3.11+ with venv (python.org, or your package manager), then restart Claude Code."
    )


def venv_python(env):
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed(env):
    """Complete, and its Python still the one it was made with: a pyenv or Homebrew upgrade can
    remove it (bin/python a dangling link), and a release upgrade can repoint an unversioned
    python3 to another version, whose site-packages are empty (bin/python then runs, but without
    the package). The marker names the interpreter bin/python resolved to at the install."""
    try:
        marker = (env / COMPLETE).read_text()
    except OSError:
        return False
    python = venv_python(env)
    if not python.exists():
        return False
    made_with = next((line[len("python: ") :] for line in marker.splitlines() if line.startswith("python: ")), None)
    return made_with is None or made_with == os.path.realpath(python)


def lock(path, shared=False, wait=True):
    """A flock on `path`: the open descriptor while held, None when `wait` is False and another
    process holds it. Without fcntl (Windows), -1: nothing is locked."""
    if fcntl is None:
        return -1
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        try:  # a lock file this user may not write (a folder made by another user): a shared lock reads
            fd = os.open(str(path), os.O_RDONLY)
        except OSError:
            return -1  # no lock: the environment still runs; only its removal by an update is not held off
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def log_of(env):
    return env.parent / (env.name + ".log")


def build(env, held):
    """Make the environment and install the package into it; the output goes to its log. Returns
    whether it worked; a failed build leaves no environment."""
    import shutil
    import subprocess

    if env.exists():
        shutil.rmtree(env)  # an install that was interrupted: start again
    started = time.monotonic()
    clean = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    steps = (
        [base_python(), "-m", "venv", str(env)],
        [str(venv_python(env)), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "."],
    )
    with open(log_of(env), "w") as log:
        for step in steps:
            log.write("$ " + " ".join(step) + "\n")
            log.flush()
            # the lock's descriptor goes along: a pip left running by a killed installer still holds it
            done = subprocess.run(
                step, cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=clean,
                pass_fds=() if held < 0 else (held,),
            )  # fmt: skip
            if done.returncode != 0:
                log.write(f"exited with {done.returncode}\n")
                shutil.rmtree(env, ignore_errors=True)
                return False
        log.write(f"installed in {time.monotonic() - started:.0f} s\n")
    (env / COMPLETE).write_text(f"installed from {ROOT}\npython: {os.path.realpath(venv_python(env))}\n")
    return True


def remove_unused(data, keep):
    """Environments of other versions that no running server or command holds."""
    import contextlib
    import shutil

    if fcntl is None:
        return
    for env in data.glob("venv-*"):
        if env == keep or not env.is_dir():
            continue
        if not (data / (env.name + ".in-use")).exists():
            # every launcher since takes that lock (ensure_installed); the first release's did not,
            # and marked use by touching its completion marker, kept for 7 days: its server may run
            try:
                if time.time() - (env / COMPLETE).stat().st_mtime < FIRST_RELEASE_KEEP_S:
                    continue
            except OSError:
                pass
        fd = lock(data / (env.name + ".in-use"), wait=False)
        if fd is None:
            continue  # a session still runs that version
        try:
            shutil.rmtree(env, ignore_errors=True)
            for leftover in (log_of(env), data / (env.name + ".in-use")):
                with contextlib.suppress(OSError):  # (Path.unlink(missing_ok=...) is 3.8+; old python3s run this)
                    leftover.unlink()
        finally:
            os.close(fd)


def install_worker(env, ready):
    """In the detached process: hold the install lock, tell the waiting launcher, build."""
    held = lock(env.parent / "install.lock")
    os.write(ready, b"1")
    os.close(ready)
    if installed(env):
        return 0  # another session installed it while this one waited
    if not build(env, held):
        return 1
    remove_unused(env.parent, env)
    return 0


def run_detached(env):
    """Fork twice: the installer is a child of no process that Claude Code would kill. Wait until
    it holds the install lock, then until it lets go of it."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the first child: a new session, then the installer, then gone
        try:
            os.setsid()
            if os.fork() == 0:
                os.close(ready_r)
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):  # never a byte on the MCP channel
                    os.dup2(devnull, fd)
                try:
                    code = install_worker(env, ready_w)
                except Exception:  # an installer's own failure: into its log, for the launcher to show
                    import traceback

                    with open(log_of(env), "a") as log:
                        traceback.print_exc(file=log)
                    code = 1
                os._exit(code)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.waitpid(pid, 0)
    os.read(ready_r, 1)  # the installer holds the lock now (or died: end of file)
    os.close(ready_r)
    os.close(lock(env.parent / "install.lock"))  # ... and has let go of it


def ensure_installed():
    """The environment's Python, installing first when needed. Returns it with the descriptor of
    the shared lock that marks the environment in use (-1 without locks)."""
    data = data_dir()
    env = data / ("venv-" + fingerprint())
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(
            f"cannot make the plugin's data folder {data} ({exc.strerror or exc}): make it writable by this user "
            "(was an install run with sudo?), or remove it; the next start installs again."
        )
    in_use = lock(data / (env.name + ".in-use"), shared=True)
    if installed(env):
        return venv_python(env), in_use
    base_python()  # an old python3 with none newer on PATH: say so now, not in the installer's log
    say(
        f"installing the server and its dependencies (mcp, pydantic, numpy, scipy, matplotlib) into {env}: "
        "once for each update that changes the server, about half a minute. If Claude Code gives up on the "
        "server meanwhile, the install goes on: reconnect it (/mcp) in a minute."
    )
    started = time.monotonic()
    if fcntl is None:
        ok = build(env, -1)
    else:
        run_detached(env)
        ok = installed(env)
    if not ok:
        log = log_of(env)
        output = log.read_text(errors="replace").strip() if log.exists() else "(no log)"
        cause = (
            "pip needs to reach PyPI"
            if "-m pip install" in output
            else "the Python it chose could not make a virtual environment (on Debian or Ubuntu: install python3-venv)"
        )
        fail(
            f"could not install; nothing was kept, the next start tries again. {cause}. "
            f"The install's output ({log}):\n{output[-4000:]}"
        )
    say(f"installed in {time.monotonic() - started:.0f} s.")
    return venv_python(env), in_use


DISPATCHER = b"<!-- meta-experiment dispatcher"


HOOK_EVENTS = ("prompt", "stop", "agent-start", "agent-end", "agent-stop", "skill", "session-start")


def holds_dispatcher(path):
    """Whether the regular file at `path` holds a dispatcher. Opened without blocking and checked
    first: reading a FIFO at a command's path would wait for a writer until Claude Code kills the hook."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return DISPATCHER in os.read(fd, 65536)
    except OSError:
        return False
    finally:
        os.close(fd)


def owning_project(session):
    """The project whose experiments the hooks serve (the package's paths.owning_project): the
    session's folder, or, when it has no state and is a subfolder of a repository, the nearest folder
    above it, up to the repository's top, that has."""
    home = os.environ.get("META_EXPERIMENT_HOME")
    if home and Path(home).expanduser().is_absolute():
        return session  # one state folder for every project: no folder above can be told to own it
    state = home or ".meta-experiment"  # relative: of the project's folder
    try:
        if Path(session, state, "experiments.db").exists() or Path(session, ".git").exists():
            return session
        found = None
        for folder in Path(session).resolve().parents:
            if found is None and (folder / state / "experiments.db").exists():
                found = str(folder)
            if (folder / ".git").exists():  # the repository's top; outside one nothing above is adopted
                return session if found is None else found
    except OSError:
        pass
    return session


def hook_concerns_us(event, data):
    """Whether a hook event concerns a dispatched slash command, skill or agent: a quick look with the
    standard library, because every prompt of every session runs it (about 35-40 ms); the package
    decides the rest. Where the project is unknown, the package looks."""
    session_dir = os.environ.get("CLAUDE_PROJECT_DIR")
    if not session_dir:
        return True
    project = owning_project(session_dir)  # a session in a subfolder runs the commands above it too
    roots = [session_dir] if project == session_dir else [session_dir, project]
    try:
        payload = json.loads(data or b"{}")
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    home = os.environ.get("META_EXPERIMENT_HOME")  # the state folder, as the package finds it (paths.py)
    state = (Path(project) / Path(home).expanduser()).resolve() if home else Path(project, ".meta-experiment")
    runs = state / "dispatched"

    def key(name):
        value = str(payload.get(name) or "")
        return value if re.fullmatch(r"[\w-]{1,128}", value) else None

    def first(*parts):
        """The file at `parts` under the session's folder, else under the project's (the nearer wins)."""
        for root in roots:
            path = Path(root, *parts)
            try:
                if path.exists():
                    return path
            except OSError:  # a name too long for a file, a folder that cannot be searched
                return None
        return None

    def runs_dispatcher(name):
        """`/name` runs a dispatcher: the skill of that name, else the command (as in Claude Code)."""
        if not re.fullmatch(r"[\w.-]+(?::[\w.-]+)*", name):
            return False
        *folders, last = name.split(":")
        if not folders and not last.startswith("."):
            skill = first(".claude", "skills", last, "SKILL.md")
            if skill is not None:
                return holds_dispatcher(skill)
        command = first(".claude", "commands", *folders, last + ".md")
        return command is not None and holds_dispatcher(command)

    if event in ("prompt", "session-start") and (runs / "commit-failed.json").is_file():
        return True  # a commit a hook left to the background failed: the person is told (the package's)
    if event == "prompt":
        typed = re.match(r"/([\w.-]+(?::[\w.-]+)*)(?:\s|$)", str(payload.get("prompt") or ""))
        return bool(typed) and runs_dispatcher(typed.group(1))
    if event == "skill":  # the model ran a command or skill itself (the Skill tool)
        tool_input = payload.get("tool_input")
        skill = str(tool_input.get("skill") or "") if isinstance(tool_input, dict) else ""
        return runs_dispatcher(skill[1:] if skill.startswith("/") else skill)

    def agent_dispatched(agent):
        if not (re.fullmatch(r"[\w.-]+", agent) and not agent.startswith(".")):
            return False
        found = first(".claude", "agents", agent + ".md")
        return found is not None and holds_dispatcher(found)

    if event == "agent-start":
        tool_input = payload.get("tool_input")
        return agent_dispatched(str(tool_input.get("subagent_type") or "") if isinstance(tool_input, dict) else "")
    if event == "session-start":  # a session started as an agent (claude --agent NAME)
        session = key("session_id")
        if session is not None and (runs / ("as-" + session + ".json")).is_file():  # handed some at an earlier start
            return True
        return agent_dispatched(str(payload.get("agent_type") or ""))
    if event == "agent-end":
        call = key("tool_use_id")
        return call is not None and (runs / ("call-" + call + ".json")).is_file()
    if event == "agent-stop":  # a background agent named at its launch, or one that ended before that
        return key("agent_id") is not None and runs.is_dir() and any(runs.glob("call-*.json"))
    session = key("session_id")
    return session is not None and (runs / (session + ".json")).is_file()


def run_hook(event):
    """A Claude Code hook of the plugin (hooks.json): `prompt` (UserPromptSubmit), `stop` (Stop),
    `agent-start`, `agent-end` (PreToolUse and PostToolUse of the Agent tool), `agent-stop`
    (SubagentStop), `skill` (PostToolUse of the Skill tool), `session-start` (SessionStart). Installs
    only for a session started as a dispatched agent (the `install` SessionStart hook installs; until
    it has, a dispatcher's text tells the model what to do) and never fails: exit status 0 whatever
    happens."""
    import subprocess

    data = sys.stdin.buffer.read()
    try:
        concerns = event in HOOK_EVENTS and hook_concerns_us(event, data)
    except OSError:  # a state folder this user may not read: nothing the hook could do there
        concerns = False
    if not concerns:
        return
    env = data_dir() / ("venv-" + fingerprint())
    if not installed(env) and event == "session-start":
        # A session started as a dispatched agent gets its instructions from this hook only, and only
        # now: wait for the install (the `install` hook runs alongside; hooks.json gives this one the
        # time) rather than leave the session with the dispatcher and nothing else.
        try:
            if fcntl is None:  # no install lock to share: wait for the `install` hook's install instead
                deadline = time.monotonic() + 540
                while not installed(env) and time.monotonic() < deadline:
                    time.sleep(0.5)
            else:
                ensure_installed()
        except SystemExit:
            pass
        if not installed(env):
            say("this session, started as a dispatched agent, gets no instructions from the hook: start it again.")
            return
    if not installed(env):
        say("the server is still being installed; this run of a dispatched command is not assigned by the hook.")
        return
    subprocess.run([str(venv_python(env)), "-I", "-m", "meta_experiment", "hook", event], input=data, check=False)


def main(argv):
    import subprocess

    if not argv:
        fail("usage: launch.py serve | install | hook EVENT | <any meta-experiment command>")
    if argv[0] == "hook":
        run_hook(argv[1] if len(argv) > 1 else "")
        return
    python, in_use = ensure_installed()
    if argv == ["install"]:
        return
    # -I: the environment's own packages only (no PYTHONPATH, user site or current folder)
    command = [str(python), "-I", "-m", "meta_experiment", *argv]
    if os.name == "nt":
        sys.exit(subprocess.call(command))
    if in_use >= 0:
        os.set_inheritable(in_use, True)  # the server holds its environment for as long as it runs
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
