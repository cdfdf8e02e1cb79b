"""Files and folders only their owner can read: the store, customers' documents, run directories.

A lab host has other accounts; a customer's ICS, IXIT, assessor's record, evidence and results
must not be readable by them. Everything certlab creates for a customer is made owner-only at
creation (0600 files, 0700 folders), never chmodded afterwards (a file is never readable by
others, not even briefly), whatever the process's umask. A child process that writes such data
(`certlab run` started by the API: its workers write evidence, Allure results, logs) is started
with `UMASK`, so everything it creates is owner-only too. Folders that exist already are left as
they are: the lab may have made them shared on purpose.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
UMASK = 0o077  # for child processes: what they create is the owner's alone
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def private_dir(path: Path) -> Path:
    """`mkdir -p path`, every folder it creates 0700 (those that exist are left as they are)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: theirs to decide
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask, which may be looser or stricter
    return path


def _open_private(path: Path, flags: int = _WRITE_FLAGS) -> int:
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode under O_CREAT; ours is 0600 from now on
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes | str, *, encoding: str = "utf-8") -> None:
    """Write `data` to `path` (0600) atomically: through `<name>.tmp` beside it, then a rename, so a
    reader (or a crash) never sees half a file."""
    path = Path(path)
    raw = data.encode(encoding) if isinstance(data, str) else data
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(_open_private(tmp), "wb") as fh:
        fh.write(raw)
    os.replace(tmp, path)


def copy_private(source: Path, target: Path) -> None:
    """Copy a file's bytes into a new 0600 file (shutil.copyfile would give it the umask's mode)."""
    with open(source, "rb") as src, os.fdopen(_open_private(Path(target)), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def open_private(path: Path, mode: str = "wb"):  # type: ignore[no-untyped-def]
    """`open(path, mode)` for writing ('wb' truncates, 'ab' appends), the file 0600."""
    if mode not in ("wb", "ab"):
        raise ValueError(f"open_private: mode {mode!r}; use 'wb' or 'ab'")
    flags = _WRITE_FLAGS if mode == "wb" else (_WRITE_FLAGS & ~os.O_TRUNC) | os.O_APPEND
    return os.fdopen(_open_private(Path(path), flags), mode)


def touch_private(path: Path) -> None:
    """Create `path` empty and 0600 if it does not exist (e.g. before SQLite opens it: its -wal and
    -shm files take the database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
