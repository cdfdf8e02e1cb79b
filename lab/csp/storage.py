"""Secret parameters at rest (5.4-1-2): a known secret found in the device's storage, and file modes.

The lab knows some secrets because it set them (its login password, a Wi-Fi key it set through
the documented configuration command). It reads the documented persistent storage (bounded:
files, bytes, depth) and looks for each secret in clear or trivially encoded (hex, base64). A
secret too short to tell a stored copy from a coincidence is not searched (and said so).
"""

from __future__ import annotations

import base64
import posixpath
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

MIN_SECRET_LENGTH = 8  # shorter values match by coincidence ("admin" in a help text)
MAX_FILES = 5000
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 16

_MODE = re.compile(r"^0?[0-7]{3}$")


@dataclass(frozen=True)
class Secret:
    """A value the lab knows, named for a certifier (never printed)."""

    name: str
    value: str


@dataclass(frozen=True)
class StoredFile:
    path: str
    mode: int  # permission bits (st_mode & 0o7777)
    size: int
    data: bytes | None  # None: not read (see `unread`)
    unread: str = ""


@dataclass(frozen=True)
class Finding:
    path: str
    secret: str  # Secret.name
    form: str  # "in clear", "hex", "base64"
    offset: int
    mode: int


@dataclass
class Listing:
    """What the lab read from the storage roots; `incomplete` says what it could not read."""

    files: list[StoredFile] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # symlinks, devices, sockets: not followed

    def summary(self) -> list[dict]:
        return [{"path": f.path, "mode": f"{f.mode:04o}", "size": f.size, **({"unread": f.unread} if f.unread else {})}
                for f in self.files]


class SftpLike(Protocol):
    """The part of paramiko.SFTPClient the walk uses (a fake in unit tests)."""

    def listdir_attr(self, path: str) -> list[Any]: ...
    def stat(self, path: str) -> Any: ...
    def open(self, path: str, mode: str = "r") -> Any: ...


def parse_mode(text: str) -> int:
    """'0600' or '600' -> 0o600; ValueError otherwise."""
    if not isinstance(text, str) or not _MODE.match(text):
        raise ValueError(f"{text!r} is not an octal file mode such as 0600")
    return int(text, 8)


def forms(value: str) -> dict[str, bytes]:
    """The byte strings that count as the secret stored in clear (trivial encodings included)."""
    raw = value.encode()
    out = {"in clear": raw, "hex": raw.hex().encode(), "base64": base64.b64encode(raw).rstrip(b"=")}
    out["hex (upper case)"] = raw.hex().upper().encode()
    return out


def searchable(secrets: Iterable[Secret]) -> tuple[list[Secret], list[str]]:
    """The secrets long enough to search, and a note for each that is not."""
    keep, notes = [], []
    for s in secrets:
        if len(s.value) >= MIN_SECRET_LENGTH:
            keep.append(s)
        else:
            notes.append(f"{s.name}: shorter than {MIN_SECRET_LENGTH} characters, not searched "
                         "(a match could be a coincidence)")
    return keep, notes


def find_secrets(files: Iterable[StoredFile], secrets: Iterable[Secret]) -> list[Finding]:
    """Every file that holds a secret in clear or trivially encoded (first place per file, secret and form)."""
    found: list[Finding] = []
    secrets = list(secrets)
    for f in files:
        if f.data is None:
            continue
        for s in secrets:
            for form, needle in forms(s.value).items():
                at = f.data.find(needle)
                if at >= 0:
                    found.append(Finding(f.path, s.name, form, at, f.mode))
                    break
    return found


def excess_bits(mode: int, allowed: int) -> int:
    """Permission bits `mode` grants beyond `allowed` (0: as documented or stricter)."""
    return mode & ~allowed & 0o7777


def describe_mode(mode: int) -> str:
    """0644 -> '0644 (readable by group, others)'."""
    who = [w for w, bits in (("group", 0o070), ("others", 0o007)) if mode & bits]
    return f"{mode:04o}" + (f" (accessible to {' and '.join(who)})" if who else "")


def walk(sftp: SftpLike, roots: Iterable[str], *, max_files: int = MAX_FILES, max_file_bytes: int = MAX_FILE_BYTES,
         max_total: int = MAX_TOTAL_BYTES, max_depth: int = MAX_DEPTH) -> Listing:
    """Read every regular file under `roots` over SFTP, bounded; links are not followed.

    A root that does not exist, or anything the bounds cut, goes to `incomplete`: the search did
    not see the whole documented storage.
    """
    out = Listing()
    total = 0
    seen: set[str] = set()
    stack: list[tuple[str, int]] = []
    for root in roots:
        try:
            st = sftp.stat(root)
        except OSError as exc:
            out.incomplete.append(f"{root}: cannot read ({exc.strerror or exc})")
            continue
        if not stat.S_ISDIR(st.st_mode or 0):
            out.incomplete.append(f"{root}: not a folder")
            continue
        stack.append((posixpath.normpath(root), 0))
    while stack:
        folder, depth = stack.pop()
        if folder in seen:
            continue
        seen.add(folder)
        try:
            entries = sorted(sftp.listdir_attr(folder), key=lambda a: a.filename)
        except OSError as exc:
            out.incomplete.append(f"{folder}: cannot list ({exc.strerror or exc})")
            continue
        for attr in entries:
            path = posixpath.join(folder, attr.filename)
            mode = attr.st_mode or 0
            if stat.S_ISDIR(mode):
                if depth + 1 > max_depth:
                    out.incomplete.append(f"{path}: deeper than {max_depth} folders, not searched")
                else:
                    stack.append((path, depth + 1))
                continue
            if not stat.S_ISREG(mode):
                out.skipped.append(path)
                continue
            if len(out.files) >= max_files:
                out.incomplete.append(f"more than {max_files} files: stopped in {folder}, the rest not searched")
                return out
            size = attr.st_size or 0
            perm = stat.S_IMODE(mode)
            if size > max_file_bytes or total + size > max_total:
                why = f"larger than {max_file_bytes} bytes" if size > max_file_bytes else f"past {max_total} bytes read in all"
                out.files.append(StoredFile(path, perm, size, None, why))
                out.incomplete.append(f"{path}: not read ({why})")
                continue
            try:
                with sftp.open(path, "rb") as fh:
                    data = fh.read(max_file_bytes + 1)[:max_file_bytes]
            except OSError as exc:
                out.files.append(StoredFile(path, perm, size, None, f"cannot read ({exc.strerror or exc})"))
                out.incomplete.append(f"{path}: cannot read ({exc.strerror or exc})")
                continue
            total += len(data)
            out.files.append(StoredFile(path, perm, size, data))
    return out
