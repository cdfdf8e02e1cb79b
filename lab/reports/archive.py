"""A run directory's archive (`.tar.gz`), built once per report version and kept, not re-made per download.

Gzipping a large run costs tens of CPU seconds; the API used to do it on every download, so four
at once held both cores for a minute. Now an archive is built once per *report version*: the
SHA-256 of the signed manifest's bytes (`manifest.json` + `manifest.sig`; approving re-signs, so an
approved report is a new version). A run not signed yet is versioned by its files' names, sizes
and modification times instead.

Built archives live outside the signed run directory, under the service's data dir:
`<root>/<run id>/<version>.tar.gz` (0600, folders 0700) beside `<version>.sha256`, the archive's
SHA-256 and size as recorded when it was written (atomically: a temporary file, then rename).
Before an archive is handed out its bytes are hashed again and compared with that record: a
partial or altered file is rebuilt, never sent. Building a version removes the run's other
versions.

Concurrent requests for one run wait for the one build (a lock per run), builds run at most
`builds` at a time (one per core by default) and at most `waiting` requests wait for one; past
that `ArchiveBusy` (the API answers 503 with Retry-After) instead of a stalled worker.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lab.errors import CertlabError
from lab.inputfile import sha256_file
from lab.reports.manifest import MANIFEST_FILE, SIGNATURE_FILE

SUFFIX = ".tar.gz"
RECORD = ".sha256"
TMP_PREFIX = ".building-"

Builder = Callable[[Path, str, BinaryIO], None]  # (run dir, name inside the archive, where to write)


class ArchiveBusy(CertlabError):
    """Too many requests already wait for archives to be built: come back later."""


def write_archive(run_dir: Path, arcname: str, out: BinaryIO) -> None:
    """tar.gz of `run_dir`, its top folder named `arcname`, streamed to `out` (memory: one block)."""
    with tarfile.open(fileobj=out, mode="w|gz") as tar:  # type: ignore[call-overload]
        tar.add(run_dir, arcname=arcname)


def report_version(run_dir: Path) -> str:
    """Which report version the run directory holds now (see the module's docstring)."""
    digest = hashlib.sha256()
    manifest = run_dir / MANIFEST_FILE
    if manifest.is_file():
        signature = run_dir / SIGNATURE_FILE
        digest.update(b"signed\0" + manifest.read_bytes() + b"\0")
        digest.update(signature.read_bytes() if signature.is_file() else b"")
        return digest.hexdigest()
    digest.update(b"unsigned\0")
    for folder, dirs, names in os.walk(run_dir):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, run_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(
                "utf-8", "surrogateescape"))
    return digest.hexdigest()


class _Hashing:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.digest, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def intact(archive: Path) -> bool:
    """Whether `archive` is whole and unaltered: its size and SHA-256 are the ones recorded when built."""
    record = archive.with_name(archive.name.removesuffix(SUFFIX) + RECORD)
    try:
        sha256, size = record.read_text(encoding="ascii").split()
        if archive.stat().st_size != int(size):
            return False
        return sha256_file(archive) == sha256
    except (OSError, ValueError):
        return False


@dataclass
class ReportArchives:
    """The built archives, and the locks that keep their builds few; one per service (held by the app)."""

    builds: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    waiting: int = 16
    build: Builder = write_archive
    built: int = 0  # builds done: what a test or a benchmark counts
    _slots: threading.BoundedSemaphore = field(init=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _waiters: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.builds)

    def ready(self, run_dir: Path, root: Path) -> Path:
        """The archive of the run's current report version, verified intact; built first if need be.

        Blocking (a build takes as long as gzipping the run); raises ArchiveBusy past `waiting`.
        """
        run_id = run_dir.name
        version = report_version(run_dir)
        folder = root / run_id
        target = folder / f"{version}{SUFFIX}"
        if intact(target):
            return target
        with self._guard:
            if self._waiters >= self.waiting:
                raise ArchiveBusy(f"{self._waiters} archive requests are waiting for builds")
            self._waiters += 1
            lock = self._locks.setdefault(run_id, threading.Lock())
        try:
            with lock:  # one build per run at a time; the others find it done
                if intact(target):
                    return target
                with self._slots:
                    self._build(run_dir, run_id, folder, target)
                return target
        finally:
            with self._guard:
                self._waiters -= 1

    def _build(self, run_dir: Path, run_id: str, folder: Path, target: Path) -> None:
        """Write the archive beside its record, atomically, and remove the run's other versions."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder.parent, 0o700)
        os.chmod(folder, 0o700)
        for old in folder.iterdir():  # under the run's lock, with `target` not intact: old versions, dead builds
            old.unlink(missing_ok=True)
        record = target.with_name(target.name.removesuffix(SUFFIX) + RECORD)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)  # 0600
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                out = _Hashing(fh)
                self.build(run_dir, run_id, out)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            fd, rec_name = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(f"{out.digest.hexdigest()} {out.size}\n")
            os.replace(rec_name, record)
        finally:
            tmp.unlink(missing_ok=True)
        with self._guard:
            self.built += 1
