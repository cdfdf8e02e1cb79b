"""The assessor's record of a booking, kept by a lab engineer: decisions on the conceptual test
cases and the functional test cases the lab performed by hand, with their evidence files.

TS 103 701's conceptual test cases are judged by an assessor against the ICS and IXIT, never
passed by a machine: the record is the same YAML as `--assessments` on the command line,
validated by the same loader (a bad one is Invalid naming the field), kept with the booking and
handed to every run started for it afterwards (lab.actions.runs copies `ASSESSMENTS_FILE` and
`EVIDENCE_DIR` from `booking_folder`). Evidence files (photos, screenshots, captures) are uploaded
first (size-limited, hashed, never replaced by other bytes) and named in the record as
`evidence/<name>`. Who recorded what and when is kept beside them (`HISTORY_FILE`), outside what a
run copies.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from lab.actions.bookings import as_422, refuse_frozen
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound
from lab.actions.tenancy import booking_for
from lab.actions.uploads import receive
from lab.assessments import AssessmentsError, AssessmentsFile, load_assessments, read_assessments_file
from lab.inputfile import sha256_file
from lab.ixit import IxitError, load_ixit
from lab.ownerfiles import open_private, private_dir, write_private
from lab.store.bookings import frozen_inputs
from lab.store.models import utcnow
from lab.store.unit import reading

ASSESSMENTS_FILE = "assessments.yaml"  # the assessor's decisions for a booking, as `certlab run --assessments` reads
EVIDENCE_DIR = "evidence"  # beside ASSESSMENTS_FILE, so `evidence/<name>` resolves as on the command line
HISTORY_FILE = "assessments.history.json"  # who recorded the record and each evidence file, and when
MAX_RECORD = 2_000_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
READERS = ("engineer", "manufacturer")  # who may read the record (a certifier reads it in the report)


@dataclass(frozen=True)
class Summary:
    """What a recorded record holds, in numbers."""

    booking_id: int
    assessor: str
    date: str
    decisions: int
    performed: int


@dataclass(frozen=True)
class Evidence:
    name: str
    path: str  # how the record names it under performed.<case>.evidence
    sha256: str
    size: int
    by: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class Recorded:
    """Who recorded something and when (UTC, ISO 8601), from the booking's history file."""

    by: str
    at: str


@dataclass(frozen=True)
class DecisionRow:
    case: str
    verdict: str
    reasoning: str
    ixit_refs: tuple[str, ...]


@dataclass(frozen=True)
class PerformedRow:
    case: str
    verdict: str
    reason: str
    assessor: str
    date: str
    samples: tuple[str, ...]
    evidence: tuple[str, ...]


@dataclass
class Record:
    """The assessor's record page: the decisions per test case, the evidence, who recorded it and when."""

    booking_id: int
    exists: bool
    model: str = ""
    firmware_version: str = ""
    status: str = ""
    text: str = ""
    assessor: str = ""
    assessor_role: str = ""
    date: str = ""
    decisions: list[DecisionRow] = field(default_factory=list)
    performed: list[PerformedRow] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    recorded: Recorded | None = None
    can_edit: bool = False  # an engineer, while the booking's inputs may change
    frozen: str | None = None
    unreadable: str | None = None  # the stored record no longer parses (e.g. a catalogue changed): shown as text


@dataclass(frozen=True)
class AssessmentsPanel:
    """The booking page's assessments section (templates/bookings/_assessments.html)."""

    booking_id: int
    visible: bool  # the caller's role may read the record (a certifier reads it in the report)
    summary: Summary | None
    evidence_count: int
    recorded: Recorded | None
    can_edit: bool


def booking_folder(svc: Services, booking_id: int) -> Path:
    """Where a booking's uploads live (its assessor's record and evidence, its launch folders)."""
    return svc.settings.data_dir / "bookings" / str(booking_id)


def assessments_file(svc: Services, booking_id: int) -> Path:
    return booking_folder(svc, booking_id) / ASSESSMENTS_FILE


def _engineer(who: Caller, what: str) -> None:
    if not who.is_engineer:
        raise Forbidden(f"only a lab engineer may {what}")


def _reader(who: Caller) -> None:
    if who.role not in READERS:
        raise Forbidden("the assessor's record is read by the lab's engineers and the booking's manufacturer; "
                        "a certifier reads it in the released report")


# --- who recorded what: a small JSON file, changed under a file lock (several server processes) ------

@contextmanager
def _history(folder: Path) -> Iterator[dict[str, Any]]:
    """The history, for changing: written back atomically when the block ends, one writer at a time."""
    private_dir(folder)
    with open_private(folder / f".{HISTORY_FILE}.lock", "ab") as lock:  # owner-only, like the record
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read_history(folder)
        yield data
        write_private(folder / HISTORY_FILE, json.dumps(data, indent=1, sort_keys=True))


def _read_history(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / HISTORY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded(entry: Any) -> Recorded | None:
    if isinstance(entry, dict) and isinstance(entry.get("by"), str) and isinstance(entry.get("at"), str):
        return Recorded(entry["by"], entry["at"])
    return None


def _now() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


# --- actions -------------------------------------------------------------------------------------

def record_assessments(svc: Services, who: Caller, booking_id: int, text: str) -> Summary:
    """Validate and keep the assessor's decisions for a booking (lab engineers), as `--assessments` would read them."""
    _engineer(who, "record the assessor's decisions")
    if not text.strip():
        raise Invalid(["body", "assessments"], "assessments: the record is empty; paste or upload the assessor's "
                                               "YAML (assessor, date, decisions)")
    if len(text) > MAX_RECORD:
        raise Invalid(["body", "assessments"], f"assessments: at most {MAX_RECORD} characters; split the evidence "
                                               f"out into files")
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
        refuse_frozen(booking)
        edition, model, ixit_text = booking.edition, booking.product.model, booking.ixit
    uploads = booking_folder(svc, booking_id)
    with tempfile.TemporaryDirectory(prefix="certlab-upload-") as folder:
        path, ixit_path = Path(folder) / ASSESSMENTS_FILE, Path(folder) / "ixit.yaml"
        path.write_text(text, encoding="utf-8")
        ixit_path.write_text(ixit_text, encoding="utf-8")
        try:
            try:  # evidence names resolve against the booking's uploads, as the run will see them
                decisions = load_assessments(path, edition, model=model, catalogs=svc.catalogs, base_dir=uploads)
            except AssessmentsError as exc:
                raise AssessmentsError(str(exc).replace(
                    f"{uploads}/", "").replace(str(uploads), "the booking's uploads").replace(
                    "put the file there", f"upload it first with POST /bookings/{booking_id}/assessments/evidence "
                    f"(or on the booking's assessor record page)")) from None
            decisions.check_refs(load_ixit(ixit_path))
        except (AssessmentsError, IxitError) as exc:
            raise as_422("assessments", exc, path, text) from None
    target = assessments_file(svc, booking_id)
    private_dir(target.parent)
    write_private(target, text)  # a customer's document: the owner's alone
    summary = Summary(booking_id=booking_id, assessor=decisions.assessor.name, date=str(decisions.data.date),
                      decisions=len(decisions.data.decisions), performed=len(decisions.data.performed))
    with _history(uploads) as history:  # the booking page shows the summary without reading the record again
        history["record"] = {"by": who.name, "at": _now(), "assessor": summary.assessor, "date": summary.date,
                             "decisions": summary.decisions, "performed": summary.performed}
    return summary


def upload_evidence(svc: Services, who: Caller, booking_id: int, stream: BinaryIO, filename: str | None) -> Evidence:
    """Keep an evidence file for the record (lab engineers); never replaced by other bytes under its name."""
    _engineer(who, "upload evidence for the assessor's record")
    with reading(svc.store) as s:
        refuse_frozen(booking_for(s, who, booking_id, documents=False))
    name = filename or ""
    if not _NAME.fullmatch(name) or ".." in name:
        raise Invalid(["body", "file"], f"file name {name[:80]!r}: give a plain file name (letters, digits, '.', "
                                        f"'_', '-'; up to 128 characters), e.g. 5.2-1-2-policy.png")
    folder = private_dir(booking_folder(svc, booking_id) / EVIDENCE_DIR)
    tmp, sha256, size = receive(stream, folder, svc.settings.max_upload_bytes)
    try:
        if size == 0:
            raise Invalid(["body", "file"], "the uploaded file is empty; fix: upload the evidence file")
        target = folder / name
        if target.exists() and sha256_file(target) != sha256:
            raise Conflict(f"evidence {name!r} exists with other content; evidence is never replaced: upload the "
                           "new file under another name")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    at = _now()
    with _history(folder.parent) as history:
        files = history.setdefault("evidence", {})
        if isinstance(files, dict) and name not in files:  # the first upload of these bytes is the one kept
            files[name] = {"by": who.name, "at": at, "sha256": sha256}
    return Evidence(name=name, path=f"{EVIDENCE_DIR}/{name}", sha256=sha256, size=size, by=who.name, at=at)


def _evidence(folder: Path) -> list[Evidence]:
    uploads = folder / EVIDENCE_DIR
    files = sorted(p for p in uploads.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if uploads.is_dir() else []
    seen = _read_history(folder).get("evidence")
    seen = seen if isinstance(seen, dict) else {}
    out = []
    for p in files:
        entry = seen.get(p.name)
        rec = _recorded(entry)
        known = entry.get("sha256") if isinstance(entry, dict) else None  # kept at upload: a file is never replaced
        out.append(Evidence(name=p.name, path=f"{EVIDENCE_DIR}/{p.name}",
                            sha256=known if isinstance(known, str) and len(known) == 64 else sha256_file(p),
                            size=p.stat().st_size, by=rec.by if rec else None, at=rec.at if rec else None))
    return out


def list_evidence(svc: Services, who: Caller, booking_id: int) -> list[Evidence]:
    """The evidence files uploaded for a booking's record (lab engineers)."""
    _engineer(who, "list the evidence of the assessor's record")
    with reading(svc.store) as s:
        booking_for(s, who, booking_id, documents=False)
    return _evidence(booking_folder(svc, booking_id))


def evidence_file(svc: Services, who: Caller, booking_id: int, name: str) -> Path:
    """One evidence file to download (lab engineers); NotFound for any name that is not a file kept there."""
    _engineer(who, "download the evidence of the assessor's record")
    with reading(svc.store) as s:
        booking_for(s, who, booking_id, documents=False)
    if not _NAME.fullmatch(name) or ".." in name:
        raise NotFound("evidence file", name[:80])
    path = booking_folder(svc, booking_id) / EVIDENCE_DIR / name
    if not path.is_file():
        raise NotFound("evidence file", name)
    return path


def assessments_text(svc: Services, who: Caller, booking_id: int) -> str:
    """The record as recorded (YAML); NotFound until there is one."""
    _reader(who)
    with reading(svc.store) as s:
        booking_for(s, who, booking_id, documents=False)
    path = assessments_file(svc, booking_id)
    if not path.is_file():
        raise NotFound("assessments for booking", booking_id)
    return path.read_text(encoding="utf-8")


def case_order(case: str) -> list[tuple[int, str]]:
    """A test case id's sort key in the catalogue's order: 5.2-1-1 before 5.10-1-1."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", case) if part]


def _rows(data: AssessmentsFile) -> tuple[list[DecisionRow], list[PerformedRow]]:
    decisions = [DecisionRow(case, d.verdict, d.reasoning, d.ixit_refs)
                 for case, d in sorted(data.decisions.items(), key=lambda item: case_order(item[0]))]
    performed = [PerformedRow(case, str(getattr(p.verdict, "value", p.verdict)), p.reason,
                              (p.assessor or data.assessor).name, str(p.date), p.samples, p.evidence)
                 for case, p in sorted(data.performed.items(), key=lambda item: case_order(item[0]))]
    return decisions, performed


def assessment_record(svc: Services, who: Caller, booking_id: int) -> Record:
    """The record page: decisions per test case, evidence (engineers), who recorded it and when."""
    _reader(who)
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        model, status, firmware_version = booking.product.model, booking.status, booking.firmware_version
    folder = booking_folder(svc, booking_id)
    path = folder / ASSESSMENTS_FILE
    frozen = frozen_inputs(booking_id, status)
    record = Record(booking_id=booking_id, exists=path.is_file(), model=model, firmware_version=firmware_version,
                    status=status, can_edit=who.is_engineer and frozen is None,
                    frozen=str(frozen) if frozen is not None and who.is_engineer else None)
    record.recorded = _recorded(_read_history(folder).get("record"))
    if who.is_engineer:
        record.evidence = _evidence(folder)
    if not record.exists:
        return record
    record.text = path.read_text(encoding="utf-8")
    try:  # validated in full when recorded; read in its shape only (the catalogue's checks cost a second)
        data = read_assessments_file(path)
    except AssessmentsError as exc:
        record.unreadable = str(exc).replace(f"{path}: ", "")
        return record
    record.assessor, record.assessor_role = data.assessor.name, data.assessor.role
    record.date = str(data.date)
    record.decisions, record.performed = _rows(data)
    return record


def booking_assessments(svc: Services, who: Caller, booking_id: int) -> AssessmentsPanel:
    """The booking page's assessments section: a summary and a link to the record page."""
    with reading(svc.store) as s:
        status = booking_for(s, who, booking_id, documents=False).status
    if who.role not in READERS:
        return AssessmentsPanel(booking_id, visible=False, summary=None, evidence_count=0, recorded=None,
                                can_edit=False)
    folder = booking_folder(svc, booking_id)
    path = folder / ASSESSMENTS_FILE
    entry = _read_history(folder).get("record")
    summary = _summary(booking_id, entry, path) if path.is_file() else None
    uploads = folder / EVIDENCE_DIR
    count = sum(1 for p in uploads.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if who.is_engineer and uploads.is_dir() else 0
    return AssessmentsPanel(booking_id, visible=True, summary=summary, evidence_count=count,
                            recorded=_recorded(entry), can_edit=who.is_engineer and frozen_inputs(booking_id, status) is None)


def _summary(booking_id: int, entry: Any, path: Path) -> Summary:
    """The record's summary as kept when it was recorded, else read from the record itself."""
    if isinstance(entry, dict) and isinstance(entry.get("decisions"), int) and isinstance(entry.get("performed"), int):
        return Summary(booking_id, str(entry.get("assessor", "")), str(entry.get("date", "")), entry["decisions"],
                       entry["performed"])
    try:
        data = read_assessments_file(path)
    except AssessmentsError:
        return Summary(booking_id, "(unreadable: see the record)", "", 0, 0)
    return Summary(booking_id, data.assessor.name, str(data.date), len(data.decisions), len(data.performed))

