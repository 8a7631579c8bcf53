"""Small file primitives shared by settings, export and deployment: atomic replacement (temp file
in the same folder, fsync, rename, folder fsync, mode kept) and content-addressed backups in the
state folder."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from .paths import private_folder

BACKUP_DIR_NAME = "backups"


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class SpecialFile(OSError):
    """A path that is neither a regular file nor a folder: a FIFO, a socket, a device."""


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file at `path` (after symlinks). Reading a FIFO blocks until some
    writer opens it, and a device may never end, so a path under test that became one hung status
    and promote, with the deploy lock held: the file is opened without blocking and checked before
    it is read. A folder raises IsADirectoryError, anything else but a file SpecialFile."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(mode):
            raise SpecialFile(errno.EINVAL, "not a regular file (a FIFO, socket or device)", str(path))
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            return fh.read()
    finally:
        if fd >= 0:
            os.close(fd)


TEMP_MARK = "meta-experiment-"  # in every temp file name we write beside a user's file


def temp_prefix(path: Path) -> str:
    """Prefix of our temp files beside `path`: `.{name}.meta-experiment-`, distinct from any temp
    file of the user's or another tool's, so that only ours are ever cleaned up."""
    return f".{path.name}.{TEMP_MARK}"


def _umask() -> int:
    """The process's umask, read once at import (setting it to read it is not thread-safe later)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file: an export or settings.toml is not private
EXECUTABLE_MODE = 0o777 & ~_umask()  # a script recreated with the executable bit git records for it


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data` so that a reader (or a crash) sees either the old or the new
    content, never a mix. Keeps the existing file's permission bits unless `mode` is given; a new
    file gets what the umask gives (mkstemp's temp file alone would be 0600)."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def backup_bytes(state_dir: Path, content: bytes) -> Path:
    """Store `content` under `<state>/backups/<sha256>` (written once; identical content shares
    one file) and return that path. Readable by its owner only when the state folder is (the
    content may be private)."""
    digest = hashlib.sha256(content).hexdigest()
    folder = state_dir / BACKUP_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / digest
    if not target.exists() or hashlib.sha256(target.read_bytes()).hexdigest() != digest:
        # its owner's alone in a private state folder; in one a group shares, as the umask gives
        atomic_write(target, content, mode=0o600 if private_folder(state_dir) else NEW_FILE_MODE)
    return target
