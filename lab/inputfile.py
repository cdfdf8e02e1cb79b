"""Reading a file the user names: only a regular file, and at most a bound of bytes.

`certlab inventory check -i /dev/zero` used to read until it was killed, and a fifo blocks its
reader until a writer comes. Every input file (inventory, ICS, IXIT, assessments, lab profile,
secret files, keys) is read here: a device, fifo, socket or directory is refused before it is
opened, and a file larger than its kind's bound after reading one byte past it. The bounds are
generous (the largest real inventory or ICS is a few tens of KiB).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from lab.errors import CertlabError

MIB = 1 << 20
#: Bounds per kind of input, in bytes: the one place they are set.
MAX_YAML_BYTES = 8 * MIB  # inventory, ICS, IXIT, assessments, lab profile
MAX_SECRET_BYTES = 64 << 10  # a password or token file
MAX_KEY_BYTES = 64 << 10  # a PEM key or public key file

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a fifo (named pipe)",
    stat.S_IFSOCK: "a socket",
}
_CHUNK = 1 << 16


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _size_text(limit: int) -> str:
    if limit >= MIB and limit % MIB == 0:
        return f"{limit // MIB} MiB"
    return f"{limit // 1024} KiB" if limit >= 1024 and limit % 1024 == 0 else f"{limit} bytes"


def _not_regular(path: Path, mode: int, what: str) -> str:
    return f"{path}: is {_kind(mode)}, not a regular file; pass the {what} file itself"


def _too_large(path: Path, limit: int, what: str, size: int | None = None) -> str:
    got = f"{size} bytes" if size is not None else "larger"
    return f"{path}: {got}, over the {_size_text(limit)} certlab reads for the {what}; pass the right file"


def read_bounded(path: Path, *, what: str, limit: int, error: type[CertlabError] = CertlabError) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; `error` (one line naming the
    file and the fix) when it is missing, not a regular file, unreadable or larger.

    The type is checked with stat before opening (opening a fifo blocks, a tty may change state),
    and again on the open descriptor (opened non-blocking) in case the path changed in between.
    """
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: file not found; pass an existing {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror}); check the path") from None
    if not stat.S_ISREG(before.st_mode):
        raise error(_not_regular(path, before.st_mode, what))
    if before.st_size > limit:
        raise error(_too_large(path, limit, what, before.st_size))
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror}); check the file and its permissions") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(_not_regular(path, mode, what))
        chunks: list[bytes] = []
        total = 0
        while total <= limit:  # bounded: at most limit // _CHUNK + 2 reads
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror}); check the file") from None
    finally:
        os.close(fd)
    if total > limit:
        raise error(_too_large(path, limit, what))
    return b"".join(chunks)


def read_bounded_text(path: Path, *, what: str, limit: int, error: type[CertlabError] = CertlabError) -> str:
    """`read_bounded` decoded as UTF-8; bytes that are not UTF-8 are `error` naming the offset."""
    data = read_bounded(path, what=what, limit=limit, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: the {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def sha256_file(path: Path) -> str:
    """The SHA-256 (hex) of a file the lab holds (run inputs, evidence, an archive), read a MiB at a time:
    the one copy of this loop for every module that hashes a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()
