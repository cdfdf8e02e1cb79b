"""Signed manifests: what lets a certifier trust that a run directory is the one the lab produced.

`manifest.json` lists the SHA-256 and size of every regular file in the run directory, as
canonical JSON (sorted keys, no insignificant whitespace, ASCII), and `manifest.sig` holds the
lab key's raw 64-byte Ed25519 signature of exactly those bytes, base64-encoded. `verify_run`
checks the signature over the bytes as they are on disk, then re-hashes the directory and names
every changed, missing and added file.

What is covered: every regular file under the run directory, at any depth, except the top-level
`manifest.json` and `manifest.sig` themselves. No other name is exempt: `verify` reports any file
the manifest does not list as "added" (exit 1), whatever its name, so a forged
`conformance.pdf.tmp` cannot pass as a leftover. `sign` refuses a run that still holds a file
ending in `.tmp` (the half-written file of an atomic write that never finished is a bug to name,
not evidence to sign); its own leftovers (`manifest.json.tmp`, `manifest.sig.tmp`) it removes.
Empty folders carry nothing and are not listed.

Names are printed through `shown()`: control characters, escape sequences, newlines and bytes
that are not UTF-8 appear as visible escapes, so a file name cannot draw a line of its own on
the terminal (a fake "intact").

Symlinks (and fifos, sockets, devices) are refused, never followed: a signed run directory holds
only regular files and folders. `sign` stops with a CertlabError naming the first such entries
(a link could point outside the run directory, and its target could change after signing without
the manifest noticing). `verify` does not open them either: a listed file that became a symlink is
"changed", a new symlink is "added". Files are opened with O_NOFOLLOW, so a file swapped for a
link between the scan and the read is not followed either.

Hashing streams each file through one 1 MiB buffer, in one thread, while a window of the next 64
files is open with POSIX_FADV_WILLNEED so the kernel reads them ahead. Measured on 10,000 files
(bench/verify.py): a thread pool was slower than one thread with a warm page cache (most evidence
files are small, so threads mostly trade the GIL back and forth) and slower than the read-ahead
window with a cold one.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import os
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lab.errors import CertlabError
from lab.reports.keys import PUBLIC_KEY_FILE, default_key_dir, fingerprint, load_public_key

FORMAT = "certlab-manifest/1"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
TMP_SUFFIX = ".tmp"
CHUNK = 1 << 20
READAHEAD_FILES = 64  # files opened ahead of the one being hashed
READAHEAD_BYTES = 8 << 20  # per file; the kernel's own read-ahead takes over for longer files
_FADVISE = hasattr(os, "posix_fadvise")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass
class VerifyResult:
    """What `verify_run` found. `intact` only if the signature is good and no file differs."""

    run_dir: Path
    key_source: str  # the public key file used (or "given key")
    key_fingerprint: str
    signature_ok: bool
    signature_problem: str | None = None
    signed_fingerprint: str | None = None  # the key the manifest names (trust it only if the signature is good)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # path -> why (e.g. "now a symlink, not followed")
    files_checked: int = 0
    bytes_checked: int = 0

    @property
    def intact(self) -> bool:
        return self.signature_ok and not (self.changed or self.missing or self.added)

    def problems(self) -> list[str]:
        """One line per problem, signature first, then changed, missing, added files (names escaped by `shown`)."""
        lines = [] if self.signature_ok else [f"bad signature: {self.signature_problem}"]
        for kind, paths in (("changed", self.changed), ("missing", self.missing), ("added", self.added)):
            for p in paths:
                note = self.notes.get(p)
                lines.append(f"{kind}: {shown(p)}" + (f" ({shown(note)})" if note else ""))
        return lines


def shown(name: str) -> str:
    """`name` safe to print on one terminal line: every character that is not printable (control
    characters, ESC, newlines, format characters such as bidi overrides) as a Python-style escape,
    a byte that was not UTF-8 (decoded with surrogateescape, as os.scandir does) as `\\xNN` (a
    character from U+0080 up as `\\uNNNN`), and a backslash doubled: no two names print alike."""
    out = []
    for ch in name:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the raw byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


# --- building and signing --------------------------------------------------------------------


def build_manifest(run_dir: Path, public_key: Ed25519PublicKey | None = None, *,
                   readahead: int = READAHEAD_FILES) -> dict[str, Any]:
    """The manifest of `run_dir` as it is now; refuses symlinks and special files."""
    run_dir = _run_dir(run_dir)
    files, others = _scan(run_dir)
    if others:
        listed = ", ".join(f"{shown(p)} ({shown(kind)})" for p, kind in sorted(others.items())[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        raise CertlabError(f"{shown(str(run_dir))}: {listed}{more}: a signed run directory holds only regular files; "
                           f"fix: replace links with copies of the files (links are never followed)")
    leftovers = [rel for rel in files if rel.endswith(TMP_SUFFIX)]
    if leftovers:
        listed = ", ".join(shown(p) for p in leftovers[:3])
        more = f" and {len(leftovers) - 3} more" if len(leftovers) > 3 else ""
        raise CertlabError(f"{shown(str(run_dir))}: {listed}{more}: half-written (an atomic write that never "
                           f"finished); fix: find what was writing it, finish or remove it, then sign again")
    hashed, vanished = _hash_all(run_dir, files, readahead)
    if vanished:
        raise CertlabError(f"{shown(str(run_dir / vanished[0]))}: changed while being hashed; fix: sign the run once "
                           f"nothing writes to it any more")
    return {
        "format": FORMAT,
        "run_id": _run_id(run_dir),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "algorithm": "sha256",
        "files": {rel: {"sha256": digest, "size": size} for rel, (digest, size) in sorted(hashed.items())},
        "public_key_fingerprint": fingerprint(public_key) if public_key is not None else None,
    }


def canonical_json(manifest: dict[str, Any]) -> bytes:
    """The one byte form of a manifest: what is signed is exactly what is on disk."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def sign_run(run_dir: Path, private_key: Ed25519PrivateKey, *, readahead: int = READAHEAD_FILES) -> dict[str, Any]:
    """Write manifest.json and manifest.sig for a finished run (re-signing replaces both)."""
    run_dir = _run_dir(run_dir)
    for name, fix in (("run.json", "give the directory `certlab run` printed (reports/<run-id>)"),
                      ("verdicts.json", f"the run has not finished; finish it with `certlab run --resume {run_dir}`")):
        if not (run_dir / name).is_file():
            raise CertlabError(f"{run_dir}: no {name}; fix: {fix}")
    for own in (MANIFEST_FILE, SIGNATURE_FILE):  # what an interrupted earlier signing left: ours to remove
        leftover = run_dir / (own + TMP_SUFFIX)
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink()
    manifest = build_manifest(run_dir, private_key.public_key(), readahead=readahead)
    data = canonical_json(manifest)
    signature = base64.b64encode(private_key.sign(data)) + b"\n"
    _write_atomic(run_dir / MANIFEST_FILE, data)
    _write_atomic(run_dir / SIGNATURE_FILE, signature)
    return manifest


# --- verifying -------------------------------------------------------------------------------


def verify_run(run_dir: Path, public_key: Ed25519PublicKey | Path | None = None, *,
               readahead: int = READAHEAD_FILES) -> VerifyResult:
    """Check manifest.sig against `public_key` (default: the lab key folder's public key), then every file."""
    run_dir = _run_dir(run_dir)
    if isinstance(public_key, Ed25519PublicKey):
        key, source = public_key, "given key"
    else:
        path = Path(public_key) if public_key is not None else default_key_dir() / PUBLIC_KEY_FILE
        key, source = load_public_key(path), str(path)
    data = _read_manifest(run_dir)
    result = VerifyResult(run_dir, source, fingerprint(key), signature_ok=False)
    result.signature_problem = _check_signature(run_dir, data, key)
    result.signature_ok = result.signature_problem is None
    try:
        listed = _parse_manifest(data)
    except ValueError as exc:
        if result.signature_ok:  # the lab signed it, yet it is no manifest we read: not tampering
            raise CertlabError(f"{run_dir / MANIFEST_FILE}: {exc}; fix: verify with the certlab version "
                               f"that signed the run") from None
        result.signature_problem += f"; and manifest.json is unreadable ({exc}), so no file could be compared"
        return result
    result.signed_fingerprint = listed.get("public_key_fingerprint")
    if not result.signature_ok and result.signed_fingerprint and result.signed_fingerprint != result.key_fingerprint:
        result.signature_problem += (f" (the manifest names key {result.signed_fingerprint}, "
                                     f"verified with key {result.key_fingerprint})")
    _compare(run_dir, listed["files"], result, readahead)
    return result


def _check_signature(run_dir: Path, data: bytes, key: Ed25519PublicKey) -> str | None:
    """None if good, else why not."""
    path = run_dir / SIGNATURE_FILE
    if path.is_symlink() or not path.is_file():
        return f"{SIGNATURE_FILE} is missing"
    try:
        sig = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (binascii.Error, ValueError):
        return f"{SIGNATURE_FILE} is not a base64 signature"
    except OSError as exc:
        raise CertlabError(f"{path}: cannot read ({exc.strerror})") from None
    if len(sig) != 64:
        return f"{SIGNATURE_FILE} is not an Ed25519 signature ({len(sig)} bytes, not 64)"
    try:
        key.verify(sig, data)
    except InvalidSignature:
        return f"{MANIFEST_FILE} does not match {SIGNATURE_FILE} under key {fingerprint(key)}"
    return None


def _compare(run_dir: Path, listed: dict[str, dict[str, Any]], result: VerifyResult, readahead: int) -> None:
    files, others = _scan(run_dir)
    hashed, _ = _hash_all(run_dir, files, readahead)
    for rel, kind in others.items():
        (result.changed if rel in listed else result.added).append(rel)
        result.notes[rel] = f"now a {kind}, not followed" if rel in listed else f"a {kind}, not followed"
    for rel, (digest, size) in hashed.items():
        want = listed.get(rel)
        if want is None:
            result.added.append(rel)
        elif want["sha256"] != digest or want["size"] != size:
            result.changed.append(rel)
    # files deleted (or swapped for a link) between the scan and the read count as missing too
    result.missing.extend(rel for rel in listed if rel not in hashed and rel not in others)
    for paths in (result.changed, result.missing, result.added):
        paths.sort()
    result.files_checked = len(hashed)
    result.bytes_checked = sum(size for _, size in hashed.values())


def _parse_manifest(data: bytes) -> dict[str, Any]:
    """The manifest as data; ValueError if it is not a certlab manifest we can read."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"not a {FORMAT} manifest (format {found!r})")
    if doc.get("algorithm") != "sha256":
        raise ValueError(f"unknown algorithm {doc.get('algorithm')!r}")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise ValueError("no 'files' table")
    for rel, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
                and isinstance(entry.get("size"), int)):
            raise ValueError(f"bad entry for {rel!r}")
    return doc


def _read_manifest(run_dir: Path) -> bytes:
    path = run_dir / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        raise CertlabError(f"{path}: no manifest; fix: the lab signs a finished run with `certlab sign {run_dir}`")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertlabError(f"{path}: cannot read ({exc.strerror})") from None


# --- scanning and hashing --------------------------------------------------------------------


def _scan(run_dir: Path) -> tuple[list[str], dict[str, str]]:
    """Regular files (relative POSIX paths, sorted) and every other non-folder entry with its kind.

    Never follows a link: entries are classified with lstat semantics.
    """
    files: list[str] = []
    others: dict[str, str] = {}
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            with os.scandir(run_dir / prefix if prefix else run_dir) as it:
                entries = list(it)
        except OSError as exc:
            raise CertlabError(f"{run_dir / prefix}: cannot list ({exc.strerror}); fix: run as a user who can "
                               f"read the whole run directory") from None
        for entry in entries:
            rel = prefix + entry.name
            if not prefix and entry.name in (MANIFEST_FILE, SIGNATURE_FILE):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(rel + "/")
            elif entry.is_file(follow_symlinks=False):
                files.append(rel)
            else:
                others[rel] = _kind(entry)
    files.sort()
    return files, others


def _kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        try:
            return f"symlink to {os.readlink(entry.path)}"
        except OSError:
            return "symlink"
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return "special file"
    return {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "device",
            stat.S_IFBLK: "device"}.get(stat.S_IFMT(mode), "special file")


def _hash_all(run_dir: Path, files: list[str], readahead: int) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """{rel: (sha256 hex, size)} and the files that vanished or stopped being regular files.

    One thread walks a window of `readahead` open files, each with POSIX_FADV_WILLNEED, so the
    kernel reads the next files while this one is hashed.
    """
    root = os.fspath(run_dir)
    view = memoryview(bytearray(CHUNK))
    hashed: dict[str, tuple[str, int]] = {}
    vanished: list[str] = []
    window: deque[tuple[str, int]] = deque()
    try:
        for rel in files:
            fd = _open_regular(root, rel)
            if fd is None:
                vanished.append(rel)
                continue
            window.append((rel, fd))
            if len(window) > readahead:
                _hash_fd(root, *window.popleft(), view, hashed)
        while window:
            _hash_fd(root, *window.popleft(), view, hashed)
    finally:
        for _, fd in window:
            os.close(fd)
    return hashed, sorted(vanished)


def _open_regular(root: str, rel: str) -> int | None:
    """An fd of the regular file `rel` with read-ahead requested, or None if it is gone or not a regular file."""
    path = os.path.join(root, rel)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a symlink since the scan; never followed
            return None
        raise CertlabError(f"{path}: cannot read ({exc.strerror}); fix: run as a user who can read "
                           f"the whole run directory") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        if _FADVISE:
            os.posix_fadvise(fd, 0, READAHEAD_BYTES, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass  # read-ahead is only a hint; the read reports real errors
    return fd


def _hash_fd(root: str, rel: str, fd: int, view: memoryview, hashed: dict[str, tuple[str, int]]) -> None:
    try:
        h = hashlib.sha256()
        size = 0
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while n := f.readinto(view):
                h.update(view[:n])
                size += n
        hashed[rel] = (h.hexdigest(), size)
    except OSError as exc:
        raise CertlabError(f"{os.path.join(root, rel)}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)


# --- small helpers ---------------------------------------------------------------------------


def _run_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CertlabError(f"{run_dir}: no such run directory; fix: give the directory `certlab run` printed "
                           f"(reports/<run-id>)")
    return run_dir


def _run_id(run_dir: Path) -> str:
    """run.json's run id, or the folder's name for a directory without one."""
    spec = run_dir / "run.json"
    if not spec.is_file():
        return run_dir.resolve().name
    try:
        run_id = json.loads(spec.read_text(encoding="utf-8"))["run_id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CertlabError(f"{spec}: not a certlab run spec ({type(exc).__name__}); fix: sign a directory "
                           f"made by `certlab run`") from None
    return str(run_id)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CertlabError(f"{path}: cannot write ({exc.strerror}); fix: make the run directory writable") from None
