"""A run's lab report: made, approved and released by the lab, read by its manufacturer and the
certification bodies it was released to; one set of rules for the API and the web pages.

Making and approving run the ordinary `certlab report` commands (signed with the lab key, PDF by
Chromium), so a report made over the API or a page is byte for byte one made by hand. Two report
commands on one run directory would collide: a file lock beside the run directory (not process
memory) refuses the second at once, from any worker of `certlab serve --workers N`. A manufacturer
or certifier gets the files only once the report is approved: a draft may still change.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import mimetypes
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from lab.actions.context import Caller, Services
from lab.actions.errors import ActionError, Conflict, Forbidden, Invalid, NotFound, TimedOut, Unavailable
from lab.actions.runs import child_env, run_booking
from lab.actions.tenancy import booking_for, not_found
from lab.errors import CertlabError
from lab.inventory import load_inventory
from lab.ownerfiles import UMASK
from lab.reports.archive import ArchiveBusy
from lab.reports.profile import load_profile
from lab.reports.conformance import APPROVAL_FILE, HTML_FILE, JSON_FILE, PDF_FILE
from lab.reports.verify import Verification
from lab.store import service
from lab.store.models import Booking, Organisation, Product, ReportRelease, User
from lab.store.unit import reading

REPORT_TIMEOUT = 900.0  # Allure + Chromium on a large run; a stuck step must not hold a worker forever
FILES = {"conformance.pdf": (PDF_FILE, "application/pdf"), "conformance.html": (HTML_FILE, "text/html"),
         "conformance.json": (JSON_FILE, "application/json")}
ARCHIVES_DIR = "archives"  # under the service's data dir: built run archives
LOCK_SUFFIX = ".report-lock"  # `.<run id>.report-lock` beside the run directory (inside, it would be signed)
LIST_LIMIT = 50  # rows per list on the reports pages: every page stays bounded


class Gone(ActionError):
    """The run's directory is no longer in the reports folder."""

    status = 410


class ArchiveNotReady(Unavailable):
    """The archive is being built and too many already wait: retry in `retry_after` seconds."""

    retry_after = 60


# --- where a run's report lives -------------------------------------------------------------------


def run_dir_of(svc: Services, run_id: str) -> Path:
    return svc.settings.reports_dir / run_id


def is_approved(run_dir: Path) -> bool:
    return (run_dir / APPROVAL_FILE).is_file()


def visible_run(svc: Services, who: Caller, run_id: str) -> Booking:
    """The run's booking if `who` may see the run (a certifier: only a run released to it), else NotFound."""
    with reading(svc.store) as s:
        booking = run_booking(s, svc, who, run_id)
    if who.role == "certifier" and not service.released_to(svc.store, run_id=run_id, org_id=who.org_id):
        raise not_found("run", run_id)
    return booking


def readable_run_dir(svc: Services, who: Caller, run_id: str) -> Path:
    """The run directory, if `who` may read its files now: engineers always, others once approved."""
    visible_run(svc, who, run_id)
    run_dir = run_dir_of(svc, run_id)
    if not who.is_engineer and not is_approved(run_dir):
        raise Conflict(f"run {run_id}: the report is not approved yet")
    if not run_dir.is_dir():
        raise Gone(f"run {run_id}: its directory is no longer in the reports folder")
    return run_dir


def _engineer(who: Caller, what: str) -> None:
    if not who.is_engineer:
        raise Forbidden(f"only lab engineers {what}")


# --- the report's state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportState:
    """What the API's ReportOut shows: a draft or approved report, its verdict and counts."""

    run_id: str
    status: str  # "draft" | "approved"
    report_id: str | None
    overall: str | None
    complete: bool | None
    not_assessed: list[str]
    counts: dict[str, int]
    approved_by: str | None
    approved_role: str | None
    approved_at: str | None
    files: list[str]


def report_state(run_dir: Path, run_id: str) -> ReportState:
    """The report of `run_dir` as its conformance.json says; NotFound before one is made."""
    path = run_dir / JSON_FILE
    if not path.is_file():
        raise NotFound("report of run", run_id, f"run {run_id} has no report yet")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise Conflict(f"run {run_id}: its report is being written") from None
    approval = doc.get("approval") or {}
    summary = doc.get("summary") or {}
    return ReportState(run_id=run_id, status="approved" if is_approved(run_dir) else "draft",
                       report_id=(doc.get("report") or {}).get("id"), overall=summary.get("overall"),
                       complete=summary.get("complete"),
                       not_assessed=[str(n.get("provision")) for n in summary.get("not_assessed") or []],
                       counts=summary.get("counts") or {}, approved_by=approval.get("by"),
                       approved_role=approval.get("role"), approved_at=approval.get("at"),
                       files=[name for name, (file, _) in FILES.items() if (run_dir / file).is_file()] + ["archive"])


def get_report(svc: Services, who: Caller, run_id: str) -> ReportState:
    visible_run(svc, who, run_id)
    return report_state(run_dir_of(svc, run_id), run_id)


def stage(run_dir: Path) -> str:
    """Where a run's report stands, from its files: "running", "to make", "draft", "approved"."""
    if is_approved(run_dir):
        return "approved"
    if (run_dir / JSON_FILE).is_file():
        return "draft"
    if (run_dir / "verdicts.json").is_file():
        return "to make"
    return "running"


# --- making and approving -----------------------------------------------------------------------------


@contextlib.contextmanager
def report_lock(run_dir: Path) -> Iterator[None]:
    """One report command per run directory at a time, across processes: a non-blocking flock on
    `.<run id>.report-lock` beside it; a second caller gets Conflict at once, never waits."""
    path = run_dir.with_name(f".{run_dir.name}{LOCK_SUFFIX}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise Unavailable(f"run {run_dir.name}: cannot open its report lock {path} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"run {run_dir.name}: its report is being made or approved right now") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays (unlinking it would race a waiter)


def profile_args(svc: Services) -> list[str]:
    """`--lab-profile PATH` of the lab's inventory for `certlab report`, or none if it names no profile."""
    try:
        inv = load_inventory(svc.settings.inventory)
    except CertlabError:
        return []  # the run's own copy of the inventory may still name one
    return ["--lab-profile", str(inv.resolve_path(inv.lab_profile))] if inv.lab_profile else []


def _field_of(error: str) -> list[str]:
    """Which field a `certlab report approve` refusal concerns: the signatory's name or role, else the run."""
    if "is not an authorised signatory" in error:
        return ["body", "by"]
    if "is authorised as" in error:
        return ["body", "role"]
    return ["path", "run_id"]


def certlab_report(svc: Services, run_dir: Path, *args: str) -> None:
    """`certlab report ...` on the run, under its lock, bounded in time; its one-line error becomes Invalid."""
    with report_lock(run_dir):
        proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "report", *args], cwd=svc.settings.reports_dir,
                                env=child_env(svc), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                umask=UMASK)  # the report and Allure history: owner-only
        try:
            output, _ = proc.communicate(timeout=REPORT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TimedOut(f"certlab report took longer than {REPORT_TIMEOUT:g} s and was stopped") from None
    if proc.returncode != 0:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        error = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        raise Invalid(_field_of(error), f"certlab report failed (exit {proc.returncode}): {error.strip()}")


def make_report(svc: Services, who: Caller, run_id: str) -> ReportState:
    """Allure, the conformance report (HTML, JSON, PDF), signed: `certlab report DIR` (lab engineers)."""
    _engineer(who, "make reports")
    visible_run(svc, who, run_id)
    run_dir = run_dir_of(svc, run_id)
    if not (run_dir / "verdicts.json").is_file():
        raise Conflict(f"run {run_id} has not finished; its report comes after")
    if is_approved(run_dir):
        raise Conflict(f"run {run_id}: the report is approved already")
    certlab_report(svc, run_dir, str(run_dir.resolve()), *profile_args(svc))
    return report_state(run_dir, run_id)


def approve_report(svc: Services, who: Caller, run_id: str, *, by: str, role: str) -> ReportState:
    """Approve the draft as an authorised signatory of the lab profile: `certlab report approve` (lab engineers)."""
    _engineer(who, "approve reports")
    for name, value in (("by", by), ("role", role)):
        if not value.strip():
            raise Invalid(["body", name], f"{name}: empty; fix: give the signatory's "
                                          f"{'name' if name == 'by' else 'role'} as the lab profile lists it")
    booking = visible_run(svc, who, run_id)
    run_dir = run_dir_of(svc, run_id)
    if not (run_dir / JSON_FILE).is_file():
        raise Conflict(f"run {run_id} has no report yet; make it first (POST /runs/{run_id}/report)")
    if is_approved(run_dir):
        raise Conflict(f"run {run_id}: the report is approved already")
    certlab_report(svc, run_dir, "approve", str(run_dir.resolve()), "--by", by, "--role", role,
                   *profile_args(svc))
    service.mark_reported(svc.store, booking_id=booking.id, run_id=run_id)
    return report_state(run_dir, run_id)


def signatories(svc: Services, who: Caller) -> list[tuple[str, str]]:
    """(name, role) of the people the lab profile authorises to approve reports, for the approval
    form; empty when the profile names none (anyone may then approve) or cannot be read."""
    _engineer(who, "approve reports")
    args = profile_args(svc)
    if not args:
        return []
    try:
        profile = load_profile(args[1])
    except CertlabError:
        return []  # `certlab report approve` will say what is wrong with it
    return [(person.name, person.role) for person in profile.signatories]


# --- releases -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    run_id: str
    booking_id: int
    organisation: str
    at: datetime


def release_report(svc: Services, who: Caller, run_id: str, organisation: str) -> Release:
    """Make the approved report readable to a certification body (lab engineers)."""
    _engineer(who, "release reports")
    booking = visible_run(svc, who, run_id)
    if not is_approved(run_dir_of(svc, run_id)):
        raise Conflict(f"run {run_id}: only an approved report is released")
    org = service.organisation_named(svc.store, name=organisation)
    if org is None or not service.has_member(svc.store, org_id=org.id, role="certifier"):
        raise Invalid(["body", "organisation"], f"organisation {organisation!r} has no certifier; fix: `certlab "
                                                f"users add NAME --role certifier --org '{organisation}'` first")
    row = service.release_report(svc.store, run_id=run_id, booking_id=booking.id, org_id=org.id, released_by=who.id)
    return Release(run_id=run_id, booking_id=booking.id, organisation=org.name, at=row.at)


def releases(svc: Services, who: Caller, run_id: str) -> list[Release]:
    """Who the report was released to (a certifier sees only its own release); one query."""
    booking = visible_run(svc, who, run_id)
    query = (select(ReportRelease.at, Organisation.name).join(Organisation, Organisation.id == ReportRelease.org_id)
             .where(ReportRelease.run_id == run_id).order_by(ReportRelease.id))
    if who.role == "certifier":
        query = query.where(ReportRelease.org_id == who.org_id)
    with reading(svc.store) as s:
        rows = s.execute(query).all()
    return [Release(run_id=run_id, booking_id=booking.id, organisation=name, at=at) for at, name in rows]


def certifier_organisations(svc: Services, who: Caller) -> list[str]:
    """Organisations a report can be released to (those with a live certifier), for the release form."""
    _engineer(who, "release reports")
    query = (select(Organisation.name).join(User, User.org_id == Organisation.id)
             .where(User.role == "certifier", User.revoked_at.is_(None)).distinct().order_by(Organisation.name)
             .limit(200))
    with reading(svc.store) as s:
        return list(s.scalars(query))


# --- downloads ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    path: Path
    media_type: str
    filename: str


def report_file(svc: Services, who: Caller, run_id: str, name: str) -> Download:
    """conformance.pdf/.html/.json of the run (the manufacturer and certifiers: once approved)."""
    if name not in FILES:
        raise NotFound("report file", name)
    file, media = FILES[name]
    path = readable_run_dir(svc, who, run_id) / file
    if not path.is_file():
        raise NotFound(f"{file} (yet) of run", run_id)
    return Download(path=path, media_type=media, filename=f"{run_id}-{file}")


def report_archive(svc: Services, who: Caller, run_id: str) -> Download:
    """The whole run directory as .tar.gz, built once per report version (lab/reports/archive.py)."""
    run_dir = readable_run_dir(svc, who, run_id)
    try:
        path = svc.archives.ready(run_dir, svc.settings.data_dir / ARCHIVES_DIR)
    except ArchiveBusy as exc:
        raise ArchiveNotReady(f"run {run_id}: its archive is not built yet and {exc}; retry in a minute") from None
    return Download(path=path, media_type="application/gzip", filename=f"{run_id}.tar.gz")


# --- the run directory opened in place (conformance report, Allure report, evidence) -----------------------

ALLURE_PAGES = ("allure-report/index.html", "allure-report.html")  # multi-file and single-file Allure 3
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.S | re.I)
STRICT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; media-src 'self'; "
              "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "
              "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation")
"""Anything from a run directory but the Allure page: no script runs (a DUT's web page saved as
evidence is the manufacturer's HTML), nothing is fetched from outside."""


@dataclass(frozen=True)
class RunFile:
    """A file of the run directory to send, with the Content-Security-Policy it is sent under."""

    path: Path
    media_type: str
    csp: str


def allure_csp(html: bytes) -> str:
    """The Allure page's policy: its own inline scripts by hash (never 'unsafe-inline'), its
    script file and data from this server, nothing from outside."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
                      for body in _INLINE_SCRIPT.findall(html))
    return (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "frame-ancestors 'self'; base-uri 'self'; form-action 'none'")


def safe_relative(run_dir: Path, rel: str) -> Path:
    """`rel` inside `run_dir`, no part hidden, `..` or a symlink; NotFound otherwise (never a hint)."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        raise NotFound("file", rel)
    path = run_dir
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise NotFound("file", rel) from None
        if stat.S_ISLNK(mode):
            raise NotFound("file", rel)
    if not stat.S_ISREG(mode):
        raise NotFound("file", rel)
    return path


def run_file(svc: Services, who: Caller, run_id: str, rel: str) -> RunFile:
    """A file of the run directory, read-only, for who may read the run (as the archive): the
    conformance report links its evidence and Allure pages relatively, so they open in place."""
    run_dir = readable_run_dir(svc, who, run_id)
    path = safe_relative(run_dir, rel)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media.startswith("text/") or media in ("application/json", "image/svg+xml", "application/javascript"):
        media += "; charset=utf-8" if "charset" not in media and media != "image/svg+xml" else ""
    rel_posix = "/".join(p for p in rel.split("/") if p)
    csp = STRICT_CSP
    if rel_posix in ALLURE_PAGES:
        csp = allure_csp(path.read_bytes())
    return RunFile(path=path, media_type=media, csp=csp)


def allure_page(run_dir: Path) -> str | None:
    """The Allure report's page in the run directory (multi-file or single-file), if made."""
    return next((page for page in ALLURE_PAGES if (run_dir / page).is_file()), None)


# --- verification: the same check as `certlab verify` ------------------------------------------------------


def verification(svc: Services, who: Caller, run_id: str, *, fresh: bool = True) -> Verification:
    """The report's verification state, checked server-side with `certlab verify`'s code."""
    run_dir = readable_run_dir(svc, who, run_id)
    return svc.verifications.check(run_dir, fresh=fresh)


# --- lists for the pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One line of a reports list: the run, its booking and product, where its report stands."""

    run_id: str
    booking_id: int
    product: str
    model: str
    firmware_version: str
    stage: str  # "running" | "to make" | "draft" | "approved" | "gone"
    released_to: list[str] = field(default_factory=list)
    released_at: datetime | None = None
    verification: Verification | None = None


def _stage_of(svc: Services, run_id: str) -> str:
    run_dir = run_dir_of(svc, run_id)
    return stage(run_dir) if run_dir.is_dir() else "gone"


def _released_to(svc: Services, run_ids: list[str], org_id: int | None = None) -> dict[str, list[str]]:
    """Run id -> organisations it was released to: one query for the whole list (no N+1)."""
    if not run_ids:
        return {}
    query = (select(ReportRelease.run_id, Organisation.name).join(Organisation, Organisation.id == ReportRelease.org_id)
             .where(ReportRelease.run_id.in_(run_ids)).order_by(ReportRelease.id))
    if org_id is not None:
        query = query.where(ReportRelease.org_id == org_id)
    out: dict[str, list[str]] = {}
    with reading(svc.store) as s:
        for run_id, name in s.execute(query):
            out.setdefault(run_id, []).append(name)
    return out


def report_rows(svc: Services, who: Caller, *, offset: int = 0, limit: int = LIST_LIMIT,
                verify_new: int = 3) -> tuple[list[ReportRow], int]:
    """The reports `who` works with, newest first, and how many there are in all (indexed count):
    an engineer every booking's current run; a manufacturer its bookings' approved reports; a
    certifier the reports released to its organisation, with their verification state (at most
    `verify_new` checked afresh per call; the others from the app's recent checks, or "unchecked")."""
    limit = max(1, min(limit, LIST_LIMIT))
    offset = max(0, offset)
    with reading(svc.store) as s:
        if who.role == "certifier":
            base = (select(ReportRelease.run_id, ReportRelease.booking_id, ReportRelease.at, Product.name,
                           Product.model, Booking.firmware_version)
                    .join(Booking, Booking.id == ReportRelease.booking_id)
                    .join(Product, Product.id == Booking.product_id)
                    .where(ReportRelease.org_id == who.org_id))
            total = s.scalar(select(func.count()).select_from(ReportRelease)
                             .where(ReportRelease.org_id == who.org_id)) or 0
            found = s.execute(base.order_by(ReportRelease.at.desc(), ReportRelease.id.desc())
                              .offset(offset).limit(limit)).all()
        else:
            which = Booking.run_id.is_not(None)
            if who.role == "manufacturer":
                which = which & (Booking.org_id == who.org_id) & (Booking.status == "reported")
            elif not who.is_engineer:
                raise Forbidden(f"role {who.role!r} has no reports")
            base = (select(Booking.run_id, Booking.id, Booking.updated_at, Product.name, Product.model,
                           Booking.firmware_version).join(Product, Product.id == Booking.product_id).where(which))
            total = s.scalar(select(func.count()).select_from(Booking).where(which)) or 0
            found = s.execute(base.order_by(Booking.updated_at.desc(), Booking.id.desc())
                              .offset(offset).limit(limit)).all()
    released = _released_to(svc, [r[0] for r in found], who.org_id if who.role == "certifier" else None)
    cache = svc.verifications
    rows = []
    for run_id, booking_id, at, product, model, fw in found:
        row_stage = _stage_of(svc, run_id)
        check = None
        if who.role == "certifier" and row_stage != "gone":
            run_dir = run_dir_of(svc, run_id)
            check = cache.cached(run_dir)
            if check is None and verify_new > 0:
                verify_new -= 1
                check = cache.check(run_dir)
        rows.append(ReportRow(run_id=run_id, booking_id=booking_id, product=product, model=model,
                              firmware_version=fw, stage=row_stage, released_to=released.get(run_id, []),
                              released_at=at if who.role == "certifier" else None, verification=check))
    return rows, total


def booking_reports(svc: Services, who: Caller, booking_id: int) -> list[ReportRow]:
    """The booking's reports for its page (bookings/_reports.html): its current run's, and each
    run released from it; a manufacturer sees approved reports only, a certifier its releases."""
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        product = s.get(Product, booking.product_id)
        query = select(ReportRelease.run_id).where(ReportRelease.booking_id == booking_id)
        if who.role == "certifier":
            query = query.where(ReportRelease.org_id == who.org_id)
        run_ids = list(dict.fromkeys(([booking.run_id] if booking.run_id and who.role != "certifier" else [])
                                     + list(s.scalars(query.order_by(ReportRelease.id.desc()).limit(LIST_LIMIT)))))
    released = _released_to(svc, run_ids, who.org_id if who.role == "certifier" else None)
    rows = []
    for run_id in run_ids:
        row_stage = _stage_of(svc, run_id)
        if who.role == "manufacturer" and row_stage != "approved":
            continue
        rows.append(ReportRow(run_id=run_id, booking_id=booking_id, product=product.name if product else "",
                              model=product.model if product else "", firmware_version=booking.firmware_version,
                              stage=row_stage, released_to=released.get(run_id, [])))
    return rows
