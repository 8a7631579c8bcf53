#!/usr/bin/env python3
"""Start meta-experiment for the Claude Code plugin.

The plugin carries the package's source (`server/`, `pyproject.toml`). On first use, and again
after the plugin is updated, this installs it with its dependencies into a virtual environment in
the plugin's data folder (`CLAUDE_PLUGIN_DATA`, kept across updates), then runs
`python -m meta_experiment <args>` there: `serve` for the MCP server, or any CLI command.

`install` only installs (the plugin's SessionStart hook runs it, so the first server start does
not wait for pip). Runs of several sessions at once install once: the others wait on a lock.
Standard library only, and no syntax newer than Python 3.8, so that an old `python3` gets a
readable message instead of a SyntaxError.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MINIMUM = (3, 11)
ROOT = Path(__file__).resolve().parent.parent
KEEP_UNUSED_DAYS = 7  # an environment of another plugin version, unused this long, is removed
COMPLETE = ".meta-experiment-complete"


def say(text):
    # stdout is the MCP channel of `serve`: every word for people goes to stderr
    print("meta-experiment: " + text, file=sys.stderr, flush=True)


def fail(text):
    say(text)
    sys.exit(1)


def data_dir():
    chosen = os.environ.get("CLAUDE_PLUGIN_DATA")
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "meta-experiment-plugin"


def fingerprint():
    """Of everything that goes into the install: a changed file means a new environment."""
    digest = hashlib.sha256()
    package = ROOT / "server" / "meta_experiment"
    files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    sources = [ROOT / "pyproject.toml", *files]
    for path in sources:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def base_python(version=sys.version_info[:2]):
    """A Python of at least 3.11 to build the environment with: this one, else the newest
    python3.N on PATH."""
    if version >= MINIMUM:
        return sys.executable
    for minor in range(20, MINIMUM[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    here = "{}.{}".format(*version)
    fail(
        f"needs Python 3.11 or newer; python3 here is {here} and no python3.11 or newer is on PATH. "
        "Install Python 3.11+ (python.org, or your package manager), then restart Claude Code."
    )


def venv_python(env):
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


class Lock:
    """An exclusive lock on a file, held across the install (POSIX flock; none on Windows)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.handle = open(self.path, "a+")
        try:
            import fcntl
        except ImportError:
            return self
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


def clean_env():
    """The environment without the variables that would mix another Python's packages in."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


def install(env):
    python = base_python()
    if env.exists():
        shutil.rmtree(env)  # an install that was interrupted: start again
    say(
        f"installing the server and its dependencies (mcp, pydantic, numpy, scipy, matplotlib) into {env}; "
        "this happens once per plugin version and takes about a minute."
    )
    started = time.monotonic()
    steps = (
        [python, "-m", "venv", str(env)],
        [str(venv_python(env)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "."],
    )
    for step in steps:
        done = subprocess.run(
            step, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_env()
        )
        if done.returncode != 0:
            shutil.rmtree(env, ignore_errors=True)
            output = done.stdout.decode("utf-8", "replace").strip()
            fail(
                f"could not install ({' '.join(step[:4])} exited with {done.returncode}); nothing was kept, "
                f"the next start tries again. pip needs to reach PyPI. Its output:\n{output[-4000:]}"
            )
    (env / COMPLETE).write_text(f"installed from {ROOT}\n")
    say(f"installed in {time.monotonic() - started:.0f} s.")


def remove_stale(data, current):
    cutoff = time.time() - KEEP_UNUSED_DAYS * 86400
    for env in data.glob("venv-*"):
        marker = env / COMPLETE
        if env != current and (not marker.exists() or marker.stat().st_mtime < cutoff):
            shutil.rmtree(env, ignore_errors=True)


def ensure_installed():
    data = data_dir()
    env = data / ("venv-" + fingerprint())
    marker = env / COMPLETE
    if not marker.exists():
        data.mkdir(parents=True, exist_ok=True)
        with Lock(data / "install.lock"):
            if not marker.exists():  # another session may have installed it while this one waited
                install(env)
                remove_stale(data, env)
    os.utime(marker)  # in use: not stale
    return venv_python(env)


def main(argv):
    if not argv:
        fail("usage: launch.py serve | install | <any meta-experiment command>")
    python = ensure_installed()
    if argv == ["install"]:
        return
    # -I: the environment's own packages only (no PYTHONPATH, user site or current folder)
    command = [str(python), "-I", "-m", "meta_experiment", *argv]
    if os.name == "nt":
        sys.exit(subprocess.call(command))
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
