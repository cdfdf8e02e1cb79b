"""A work item's files travel from the lab host to the run directory, hashed end to end.

The lab host runs the item in a spool directory of its own. While pytest runs, what changed is
sent every few seconds (`FileStream`), so the evidence of finished tests is already in the run
directory if the host dies; when pytest ends, everything the item wrote there (evidence/,
transcripts, allure-results/, the worker log) is packed once more, whole. Each pack carries a
SHA-256 manifest; the orchestrator writes a pack into the run directory only after every file's
hash matches, refusing paths that would leave it, so `certlab report` and `verify` see exactly
what the bench produced.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lab.errors import CertlabError

MAX_BYTES = 512 * 1024 * 1024  # an item's packed files; a bigger pack is refused, loudly


class EvidenceTransferError(CertlabError):
    """The files of an item did not arrive intact."""


@dataclass(frozen=True)
class Pack:
    archive: bytes  # tar.gz
    manifest: dict[str, str]  # relative path -> sha256

    def to_wire(self) -> dict:
        return {"archive": base64.b64encode(self.archive).decode("ascii"), "manifest": self.manifest}

    @classmethod
    def from_wire(cls, data: dict) -> Pack:
        return cls(base64.b64decode(data.get("archive") or b""), dict(data.get("manifest") or {}))


def files_of(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Regular files under `root` (but the `skip` top-level names): relative path -> (size, mtime)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/", 1)[0] in skip or path.is_symlink() or not path.is_file():
            continue
        st = path.stat()
        found[rel] = (st.st_size, st.st_mtime_ns)
    return found


def pack(root: Path, *, skip: tuple[str, ...] = (), only: set[str] | None = None) -> Pack:
    """Every regular file under `root` (or `only` these), with its hash."""
    manifest: dict[str, str] = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for rel in files_of(root, skip=skip):
            if only is not None and rel not in only:
                continue
            try:
                body = (root / rel).read_bytes()  # read once: a log still growing is packed as it was read
            except FileNotFoundError:
                continue
            manifest[rel] = hashlib.sha256(body).hexdigest()
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(body))
            if buf.tell() > MAX_BYTES:
                raise EvidenceTransferError(f"the files of {root} exceed {MAX_BYTES >> 20} MiB packed; "
                                            f"fix: keep captures smaller or raise lab.labhost.evidence.MAX_BYTES")
    return Pack(buf.getvalue(), manifest)


def unpack(data: Pack, dest: Path) -> list[str]:
    """Check every file against the manifest, then write them under `dest`; returns the paths."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data.archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            rel = PurePosixPath(member.name)
            if not member.isfile() or rel.is_absolute() or ".." in rel.parts:
                raise EvidenceTransferError(f"refused {member.name!r}: not a plain file inside the run directory")
            fh = tar.extractfile(member)
            files[rel.as_posix()] = fh.read() if fh else b""
    if set(files) != set(data.manifest):
        missing = sorted(set(data.manifest) - set(files))[:3]
        extra = sorted(set(files) - set(data.manifest))[:3]
        raise EvidenceTransferError(f"the files do not match their manifest (missing {missing}, unlisted {extra})")
    for rel, body in files.items():
        if hashlib.sha256(body).hexdigest() != data.manifest[rel]:
            raise EvidenceTransferError(f"{rel}: SHA-256 differs from the lab host's manifest")
    for rel, body in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(body)
        tmp.replace(target)
    return sorted(files)


class FileStream:
    """Sends what changed under a spool directory since the last push (size or mtime differ)."""

    def __init__(self, root: Path, *, skip: tuple[str, ...] = ()) -> None:
        self.root = root
        self.skip = skip
        self.sent: dict[str, tuple[int, int]] = {}

    def changes(self) -> tuple[Pack, dict[str, tuple[int, int]]] | None:
        now = files_of(self.root, skip=self.skip)
        changed = {rel for rel, stamp in now.items() if self.sent.get(rel) != stamp}
        if not changed:
            return None
        return pack(self.root, skip=self.skip, only=changed), {rel: now[rel] for rel in changed}

    def mark_sent(self, stamps: dict[str, tuple[int, int]]) -> None:
        self.sent.update(stamps)
