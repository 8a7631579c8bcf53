"""Touching production files: path confinement at write time, atomic replacement, applying and
undoing a journaled set of file changes, and the project-wide deploy lock. Mechanism only: what to
write, and whether it may be written, is decided in `release.py`.

Guarantees (tested by killing a process at every checkpoint, tests/test_crash.py):
- a production file is only ever replaced by rename(2) of a fully written, fsynced temp file in the
  same folder, so a reader or a crash sees the old bytes or the new bytes, never a mix;
- a file is only replaced when it holds exactly the expected old (or already the new) content: a
  file someone edited is never overwritten;
- every path is confined again right before it is touched, and a path that now goes through a
  symlink (swapped in after the experiment was created) is refused.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import paths
from .errors import Conflict, PathError, StoreError
from .files import EXECUTABLE_MODE, NEW_FILE_MODE, SpecialFile, fsync_dir, read_regular, temp_prefix

LOCK_FILE_NAME = "deploy.lock"
LOCK_WAIT_SECONDS = 120.0
# Touched when a detached `meta-experiment recover` is started: until it holds the deploy lock (a
# Python start, seconds on a loaded machine), its commit counts as being made, not as stopped.
RECOVER_STARTED = "recover-started"
RECOVER_START_SECONDS = 30.0


def recover_starting(state_dir: Path) -> bool:
    """Whether a detached `meta-experiment recover` was started moments ago (RECOVER_STARTED)."""
    try:
        return time.time() - (state_dir / RECOVER_STARTED).stat().st_mtime < RECOVER_START_SECONDS
    except OSError:
        return False


# -- checkpoints: named points where the crash tests kill the process ------------------------------

_checkpoint_hook: Callable[[str], None] | None = None


def set_checkpoint_hook(hook: Callable[[str], None] | None) -> None:
    """Install a function called with the name of every checkpoint passed (tests kill the process
    there with SIGKILL). Production code never installs one."""
    global _checkpoint_hook
    _checkpoint_hook = hook


def checkpoint(name: str) -> None:
    if _checkpoint_hook is not None:
        _checkpoint_hook(name)


# -- paths and contents -------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def writable_path(project_root: Path, rel: str) -> Path:
    """The absolute path of a stored production path, checked right before it is read for a
    comparison or written: still inside the project (`paths.confine`), and with no symlink on the
    way, since a symlink swapped in after create could redirect the write anywhere."""
    confined = paths.confine(project_root, rel, must_exist=False, what="production file")
    root = project_root.resolve()
    current = root
    for part in PurePosixPath(rel).parts:
        current = current / part
        if current.is_symlink():
            raise PathError(
                f"{rel!r} now goes through a symlink ({current.relative_to(root).as_posix()!r}) that was not there "
                "when the experiment started. Nothing was written. Replace the symlink with the real file, "
                "then try again."
            )
    if confined != rel:
        raise PathError(f"{rel!r} now resolves to {confined!r}; nothing was written. Restore the original file.")
    return root / rel


def read_current(project_root: Path, rel: str) -> bytes | None:
    """The production file's bytes now, or None when it no longer exists."""
    path = writable_path(project_root, rel)
    try:
        return read_regular(path)
    except FileNotFoundError:
        return None
    except SpecialFile:
        raise PathError(
            f"{rel!r} is now a special file (a FIFO, socket or device), not a regular file. Nothing was written. "
            "Move it aside and put the file back (git checkout, or the backups in the state folder), then try again."
        ) from None
    except IsADirectoryError:
        raise PathError(
            f"{rel!r} is now a folder, not a file. Nothing was written. Move the folder aside and put the file back "
            "(git checkout, or the backups in the state folder), then try again."
        ) from None
    except NotADirectoryError:
        raise PathError(
            f"A folder on the path of {rel!r} is now a file, so {rel!r} cannot be there. Nothing was written. Move "
            "that file aside and put the folder back, then try again."
        ) from None
    except PermissionError:
        raise PathError(
            f"{rel!r} cannot be read (permission denied). Nothing was written. Give yourself read access to it, "
            "then try again."
        ) from None


def unified_diff(rel: str, before: bytes | None, after: bytes | None, *, before_label: str, after_label: str) -> str:
    """A unified diff of two versions of one file (text; a missing file is empty)."""
    a = (before or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    b = (after or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, f"a/{rel} ({before_label})", f"b/{rel} ({after_label})")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


UTF8_BOM = b"\xef\xbb\xbf"


def invisible_difference(expected: bytes, current: bytes) -> str | None:
    """What differs when two versions differ only in bytes a diff does not show (line endings, a
    final newline, whitespace, a byte-order mark), said plainly; None when they are equal or differ
    in visible text. A diff of CRLF against LF lines shows pairs of identical-looking lines."""
    if expected == current:
        return None
    if expected.removeprefix(UTF8_BOM) == current.removeprefix(UTF8_BOM):
        return "only a byte-order mark (BOM) at the start " + (
            "was added" if current.startswith(UTF8_BOM) else "was removed"
        )
    a, b = _lf(expected), _lf(current)
    if a == b:
        return f"only line endings differ ({_endings(expected)} → {_endings(current)})"
    if a.rstrip(b"\n") == b.rstrip(b"\n"):
        grew = len(b) > len(a)
        return "only the final newline differs (" + ("added" if grew else "removed") + " at the end of the file)"
    if re.sub(rb"\s+", b"", a) == re.sub(rb"\s+", b"", b):
        return "only whitespace differs (spaces, tabs or blank lines)"
    return None


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _endings(data: bytes) -> str:
    crlf = data.count(b"\r\n")
    kinds = [
        name for name, n in (("CRLF", crlf), ("LF", data.count(b"\n") - crlf), ("CR", data.count(b"\r") - crlf)) if n
    ]
    return "/".join(kinds) if len(kinds) == 1 else "mixed " + "/".join(kinds)


# -- atomic replacement -------------------------------------------------------------------------------


def replace_file(path: Path, data: bytes, *, executable: bool = False) -> None:
    """Replace `path` with `data` atomically, keeping its permission bits: write a temp file in the
    same folder, fsync it, rename it over the file, fsync the folder (rename(2) is atomic on POSIX
    and os.replace on Windows uses MoveFileEx with MOVEFILE_REPLACE_EXISTING). A missing file is
    created as the umask gives, executable if `executable` (a script git records as one)."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = EXECUTABLE_MODE if executable else NEW_FILE_MODE  # not mkstemp's 0600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            half = len(data) // 2
            fh.write(data[:half])
            fh.flush()
            checkpoint("temp_partial")
            fh.write(data[half:])
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        checkpoint("temp_synced")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    checkpoint("file_replaced")
    fsync_dir(path.parent)


def remove_stale_temps(path: Path) -> int:
    """Delete temp files that a killed `replace_file` left beside `path`: only names we write
    (`temp_prefix`), never the file itself nor anyone else's temp files. No glob: a file name may
    hold glob characters."""
    removed = 0
    prefix = temp_prefix(path)
    stale_files = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    for stale in stale_files:
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


# -- a journaled set of file changes ------------------------------------------------------------------


@dataclass(frozen=True)
class FileStep:
    """One production file going from `old` to `new` content (both kept in the blob table)."""

    production: str
    old_sha256: str
    new_sha256: str
    backup: str | None = None


def states(project_root: Path, steps: Sequence[FileStep]) -> dict[str, tuple[str, bytes | None]]:
    """{production: ('old' | 'new' | 'other', current bytes)} for every step, read now."""
    out: dict[str, tuple[str, bytes | None]] = {}
    for step in steps:
        current = read_current(project_root, step.production)
        digest = None if current is None else sha256_hex(current)
        state = "new" if digest == step.new_sha256 else "old" if digest == step.old_sha256 else "other"
        out[step.production] = (state, current)
    return out


def apply_steps(
    project_root: Path,
    steps: Sequence[FileStep],
    blob: Callable[[str], bytes],
    *,
    absent_ok: Collection[str] = (),
    executable: Collection[str] = (),
) -> None:
    """Bring every file to its new content, one atomic rename at a time. A file that already has
    the new content is left alone (so a re-run after a crash finishes the job); a file with any
    other content than old or new raises Conflict before it is touched. A path in `absent_ok` may
    also be missing (a rollback restores a promoted file someone deleted: nobody's work is lost);
    one of them in `executable` comes back executable."""
    for step in steps:
        path = writable_path(project_root, step.production)
        current = read_current(project_root, step.production)
        digest = None if current is None else sha256_hex(current)
        if digest == step.new_sha256:
            remove_stale_temps(path)  # a killed earlier run may have left one
            continue
        if current is None and step.production in absent_ok:
            path.parent.mkdir(parents=True, exist_ok=True)  # its folder may be gone too (checked above)
        elif digest != step.old_sha256:
            raise Conflict(
                f"{step.production} changed while it was being deployed; it was not overwritten.",
                diff=unified_diff(
                    step.production, blob(step.old_sha256), current, before_label="expected", after_label="now on disk"
                ),
            )
        replace_file(path, blob(step.new_sha256), executable=step.production in executable)
        remove_stale_temps(path)


def undo_steps(
    project_root: Path,
    steps: Sequence[FileStep],
    blob: Callable[[str], bytes],
    *,
    absent_ok: Collection[str] = (),
    in_place: Collection[str] = (),
) -> list[str]:
    """Put back the old content of every file that holds exactly the new content (the operation's
    own write); files with other content are not touched, nor those in `in_place`, which held the
    new content before the operation (a person's copy: not this operation's write). A path in
    `absent_ok` was missing before the operation (see `apply_steps`), so putting it back removes
    it. Returns the paths restored."""
    restored = []
    for step in steps:
        if step.production in in_place:
            continue
        current = read_current(project_root, step.production)
        if current is not None and sha256_hex(current) == step.new_sha256:
            path = writable_path(project_root, step.production)
            if step.production in absent_ok:
                path.unlink()
                fsync_dir(path.parent)
            else:
                replace_file(path, blob(step.old_sha256))
            restored.append(step.production)
        remove_stale_temps(writable_path(project_root, step.production))
    return restored


# -- the deploy lock ------------------------------------------------------------------------------------


@contextmanager
def deploy_lock(state_dir: Path, *, wait: float | None = LOCK_WAIT_SECONDS) -> Iterator[bool]:
    """Hold the project's deploy lock (an OS file lock on `<state>/deploy.lock`) for the body.

    Every promote/rollback holds it from before its journal row is written until the row is
    finished, so a recovery that gets the lock knows that any unfinished row it sees belongs to a
    process that died (the OS releases the lock of a killed process). Yields False, without the
    lock, when `wait` is 0/None and another process holds it; raises StoreError after `wait`."""
    busy = (
        f"Another promote or rollback in this project has held the deploy lock for {wait or 0:g} s "
        "(a slow git hook?). Wait for it to finish, then try again."
    )
    with file_lock(state_dir / LOCK_FILE_NAME, wait=wait, busy=busy) as held:
        yield held


@contextmanager
def file_lock(path: Path, *, wait: float | None, busy: str) -> Iterator[bool]:
    """Hold an OS file lock on `path` (made with its folder if missing) for the body; released by
    the OS if the process dies. Yields False, without the lock, when `wait` is 0/None and another
    process holds it; raises StoreError(`busy`) after `wait` seconds."""
    paths.ensure_state_dir(path.parent)  # (locks live in the state folder: made as every maker makes it)
    try:  # 0o666: the umask decides, so a group sharing the state folder (umask 002) shares its locks
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another member's lock file, not writable here: a lock needs no write
        fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + (wait or 0.0)
        while not _try_lock(fd):
            if not wait:
                yield False
                return
            if time.monotonic() >= deadline:
                raise StoreError(busy)
            time.sleep(0.02)
        try:
            yield True
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
