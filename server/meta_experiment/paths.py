"""Where the project and its state live, and the one helper that keeps every file path inside the
project root (resolve, then relative_to; symlinks that lead outside are refused)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from .errors import PathError, StoreError

HOME = "META_EXPERIMENT_HOME"  # the environment variable that moves the state folder

STATE_DIR_NAME = ".meta-experiment"
DB_FILE_NAME = "experiments.db"  # the store's file in the state folder
STATE_GITIGNORE = "# meta-experiment state: database, backups, settings. Not for version control.\n*\n"


def find_session_folder(cwd: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """The folder a session works in: `CLAUDE_PROJECT_DIR` (what Claude Code gives its hooks and MCP
    servers: the folder the session started in), else the git top level of the working directory,
    else the working directory itself."""
    env = dict(os.environ) if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    explicit = env.get("CLAUDE_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return Path(out.stdout.strip()).resolve()
    return cwd.resolve()


def owning_project(session: Path, env: dict[str, str] | None = None) -> Path:
    """The project whose experiments a session in `session` works with: that folder, or, when a
    session starts in a subfolder of a repository (a monorepo package) and the subfolder has no
    state of its own, the nearest folder above it, up to the repository's top, that has. Claude Code
    runs the commands of those folders too, dispatchers included, so the hooks and the session's MCP
    server must both know their experiments (DESIGN.md, "State")."""
    state = _state_of_a_folder(env)
    if state is None:
        return session  # one state folder for every project: no folder above can be told to own it
    try:
        if not session.is_dir() or (session / state / DB_FILE_NAME).exists() or (session / ".git").exists():
            return session  # (a repository's top: a project above it is another one)
        found = None
        for folder in session.parents:
            if found is None and (folder / state / DB_FILE_NAME).exists():
                found = folder
            if (folder / ".git").exists():  # the repository's top: a project above it is not this one
                return session if found is None else found
    except OSError:  # a folder above that cannot be searched: the session's own folder, as before
        pass
    # outside a repository nothing above is adopted: a state folder in the home folder, say, belongs
    # to another project, not to every folder below it
    return session


def _state_of_a_folder(env: dict[str, str] | None) -> Path | None:
    """Where a folder's state is, relative to it (`.meta-experiment`, or a relative
    META_EXPERIMENT_HOME); None when an absolute META_EXPERIMENT_HOME names one for every project."""
    env = dict(os.environ) if env is None else env
    home = env.get(HOME)
    if home and Path(home).expanduser().is_absolute():
        return None
    return Path(home).expanduser() if home else Path(STATE_DIR_NAME)


def find_project_root(cwd: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """The project of the session's folder (`find_session_folder`, `owning_project`). Without
    CLAUDE_PROJECT_DIR, a working folder below the repository's top that has state of its own, or
    is below a folder that has (a session started in that subfolder made it), is in that project:
    a terminal there sees what that session sees."""
    session = find_session_folder(cwd, env)
    state = _state_of_a_folder(env)
    if state is not None and not (os.environ if env is None else env).get("CLAUDE_PROJECT_DIR"):
        here = (Path.cwd() if cwd is None else cwd).resolve()
        if here != session and here.is_relative_to(session):
            try:
                for folder in (here, *here.parents):
                    if folder == session:
                        break
                    if (folder / state / DB_FILE_NAME).exists():
                        return folder
            except OSError:
                pass
    return owning_project(session, env)


def find_state_dir(project_root: Path, env: dict[str, str] | None = None) -> Path:
    """`META_EXPERIMENT_HOME` if set (a relative path is of the project folder, so every process of
    the project finds the same state from any working folder), else `<project>/.meta-experiment`."""
    env = dict(os.environ) if env is None else env
    override = env.get(HOME)
    if override:
        return (project_root / Path(override).expanduser()).resolve()
    return project_root / STATE_DIR_NAME


def ensure_state_dir(state_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """Create the state folder on first write, with its own `.gitignore` so that nothing in it is
    ever committed by accident. It is made its owner's alone (0700): it holds snapshots and backups
    of the files under test, which may be private (a token in .mcp.json, say). Every maker of the
    folder goes through here (a lock file's first use too: a bare mkdir made it 0755). A path that
    cannot be a folder is a StoreError that says what to do."""
    try:
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(mode=0o700, exist_ok=True)  # one that exists keeps its permissions (shared on purpose, say)
        ignore = state_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text(STATE_GITIGNORE, encoding="utf-8")
    except OSError as exc:
        if state_dir.exists() and not state_dir.is_dir():
            raise StoreError(
                f"The state folder {str(state_dir)!r} is a file, not a folder"
                + (" (META_EXPERIMENT_HOME names it)" if (os.environ if env is None else env).get(HOME) else "")
                + ". Point META_EXPERIMENT_HOME at a folder (made if missing), or move the file aside."
            ) from exc
        raise StoreError(
            f"Cannot create the state folder {str(state_dir)!r}: {exc.strerror or exc}. Make the project "
            "folder writable, or set META_EXPERIMENT_HOME to a writable folder."
        ) from exc
    return state_dir


def private_folder(folder: Path) -> bool:
    """Whether only its owner may enter `folder` (what ensure_state_dir makes): the files made in
    it are then made owner-only too; in a folder a group shares, they are made as the umask gives."""
    try:
        return folder.stat().st_mode & 0o077 == 0
    except OSError:
        return False


def confine(project_root: Path, user_path: str, *, must_exist: bool = True, what: str = "path") -> str:
    """Check that `user_path` names a regular file inside `project_root` and return it as a
    normalised POSIX path relative to the root.

    Refused: empty paths, absolute paths that are not under the root, `..` escapes, and any path
    whose resolved target (following every symlink) lies outside the root. With `must_exist`, the
    file must exist and be a regular file.
    """
    if not isinstance(user_path, str) or not user_path.strip():
        raise PathError(f"The {what} is empty. Give a file path relative to the project root.")
    if "\x00" in user_path:
        raise PathError(f"The {what} {user_path!r} contains a NUL byte; give a plain file path.")
    try:
        return _confine(project_root, user_path, must_exist, what)
    except OSError as exc:  # a name longer than the file system allows, a loop of symlinks, ...
        raise path_os_error(what, user_path, exc) from None


def path_os_error(what: str, user_path: str, exc: OSError) -> PathError:
    """A PathError for an OSError the file system raised on a path a user gave."""
    shown = user_path if len(user_path) <= 80 else user_path[:60] + "..." + user_path[-12:]
    if exc.errno == errno.ENAMETOOLONG:
        return PathError(
            f"The {what} {shown!r} is too long for the file system ({len(user_path):,} characters; a name between "
            "slashes may have up to 255 bytes, a whole path about 4,096). Give a shorter path."
        )
    if exc.errno == errno.ELOOP:
        return PathError(f"The {what} {shown!r} goes through a loop of symlinks; point at the real file.")
    reason = (exc.strerror or type(exc).__name__).lower()
    return PathError(f"The {what} {shown!r} cannot be used ({reason}). Give a readable file path in the project.")


def _confine(project_root: Path, user_path: str, must_exist: bool, what: str) -> str:
    root = project_root.resolve()
    raw = Path(user_path)
    candidate = raw if raw.is_absolute() else root / raw
    # Lexical check first: refuse `..` escapes even when the target does not exist yet.
    lexical = Path(os.path.normpath(candidate))
    try:
        lexical.relative_to(root)
    except ValueError:
        raise PathError(
            f"The {what} {user_path!r} is outside the project root {str(root)!r}. "
            "Give a path relative to the project root, without '..' segments that leave it."
        ) from None
    resolved = candidate.resolve()
    try:
        relative = resolved.relative_to(root)
    except ValueError:
        raise PathError(
            f"The {what} {user_path!r} resolves (through a symlink) to a place outside the project "
            "root. Experiments may only touch files inside the project; point at the real file."
        ) from None
    if not relative.parts:
        raise PathError(f"The {what} {user_path!r} is the project root itself; name a file.")
    _refuse_protected(root, resolved, relative, user_path, what)
    if must_exist:
        if not resolved.exists():
            raise PathError(
                f"The {what} {user_path!r} does not exist. Create the file first, or check the "
                f"spelling (paths are relative to the project root, {str(root)!r})."
            )
        if not resolved.is_file():
            kind = "a folder: name a file inside it" if resolved.is_dir() else "a special file: name a text file"
            raise PathError(f"The {what} {user_path!r} is not a regular file ({kind}).")
    return PurePosixPath(*relative.parts).as_posix()


def _refuse_protected(root: Path, resolved: Path, relative: Path, user_path: str, what: str) -> None:
    """Git's own files and this server's state are never experiment files nor export targets:
    writing them would break the repository or the store."""
    if ".git" in relative.parts:
        raise PathError(
            f"The {what} {user_path!r} is inside git's own folder (.git); experiments and exports may "
            "only touch the project's files. Choose a path outside .git."
        )
    for depth in range(1, len(relative.parts)):
        folder = root.joinpath(*relative.parts[:depth])
        if (folder / ".git").exists():
            raise PathError(
                f"The {what} {user_path!r} is inside {PurePosixPath(*relative.parts[:depth]).as_posix()!r}, a "
                "nested git repository or submodule: its commits belong to that repository. Run the "
                "experiment from there, or choose a file of this project."
            )
    state = find_state_dir(root).resolve()
    if STATE_DIR_NAME in relative.parts or resolved == state or state in resolved.parents:
        raise PathError(
            f"The {what} {user_path!r} is inside meta-experiment's state folder; it holds the database "
            "and backups and is managed by the server. Choose a path outside it."
        )


def project_file(project_root: Path, rel_path: str) -> Path:
    """The absolute path of a stored (already confined) relative path, confined again: a symlink
    swapped in since the path was accepted is caught here."""
    confine(project_root, rel_path, must_exist=False)
    return project_root.resolve() / rel_path
