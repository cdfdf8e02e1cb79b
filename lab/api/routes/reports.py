"""A run's lab report: made, approved and released by the lab, read by its manufacturer and the
certification bodies it was released to.

Making and approving run the ordinary `certlab report` commands (signed with the lab key, PDF by
Chromium), so a report made over the API is byte for byte one made by hand. A manufacturer or
certifier gets the files only once the report is approved: a draft may still change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, Response

from lab.api.deps import AnyRole, Caller, Engineer, Services, ServicesDep
from lab.api.routes.runs import child_env, run_booking
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors, invalid
from lab.api.schemas.service import ApproveIn, ReleaseIn, ReleaseOut, ReportOut, RunIdPath
from lab.actions.tenancy import not_found
from lab.errors import CertlabError
from lab.inventory import load_inventory
from lab.ownerfiles import UMASK
from lab.reports.archive import ArchiveBusy
from lab.reports.conformance import APPROVAL_FILE, HTML_FILE, JSON_FILE, PDF_FILE
from lab.store import service
from lab.store.models import Booking, Organisation
from lab.store.unit import reading

router = APIRouter(tags=["reports"], responses=errors(*AUTHENTICATED))
DOWNLOAD = errors(404, 422, why={409: "The report is not approved yet (the manufacturer and certifiers wait for it)",
                                 410: "The run's directory is no longer in the reports folder"})

REPORT_TIMEOUT = 900.0  # Allure + Chromium on a large run; a stuck step must not hold a worker forever
FILES = {"conformance.pdf": (PDF_FILE, "application/pdf"), "conformance.html": (HTML_FILE, "text/html"),
         "conformance.json": (JSON_FILE, "application/json")}
ARCHIVES_DIR = "archives"  # under the service's data dir: built run archives


def run_dir_of(svc: Services, run_id: str) -> Path:
    return svc.settings.reports_dir / run_id


def is_approved(run_dir: Path) -> bool:
    return (run_dir / APPROVAL_FILE).is_file()


def visible_run(svc: Services, who: Caller, run_id: str) -> Booking:
    """The run's booking if `who` may see the run (a certifier: only a run released to it)."""
    with reading(svc.store) as s:
        booking = run_booking(s, svc, who, run_id)
    if who.role == "certifier" and not service.released_to(svc.store, run_id=run_id, org_id=who.org_id):
        raise not_found("run", run_id)
    return booking


def _readable(svc: Services, who: Caller, run_id: str) -> Path:
    """The run directory, if `who` may download from it now: engineers always, others once approved."""
    visible_run(svc, who, run_id)
    run_dir = run_dir_of(svc, run_id)
    if not who.is_engineer and not is_approved(run_dir):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}: the report is not approved yet")
    if not run_dir.is_dir():
        raise HTTPException(status.HTTP_410_GONE, f"run {run_id}: its directory is no longer in the reports folder")
    return run_dir


def _locks(request: Request) -> dict[str, threading.Lock]:
    """One lock per run (held by the app): two report commands on one run directory would collide."""
    return request.app.state.report_locks


def _profile_args(svc: Services) -> list[str]:
    try:
        inv = load_inventory(svc.settings.inventory)
    except CertlabError:
        return []  # the run's own copy of the inventory may still name one
    return ["--lab-profile", str(inv.resolve_path(inv.lab_profile))] if inv.lab_profile else []


def _certlab_report(request: Request, svc: Services, run_id: str, *args: str) -> None:
    """`certlab report ...` on the run, bounded in time; its one-line error becomes a 422."""
    lock = _locks(request).setdefault(run_id, threading.Lock())
    if not lock.acquire(blocking=False):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}: its report is being made or approved right now")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "report", *args], cwd=svc.settings.reports_dir,
                                env=child_env(svc), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                umask=UMASK)  # the report and Allure history: owner-only
        try:
            output, _ = proc.communicate(timeout=REPORT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT,
                                f"certlab report took longer than {REPORT_TIMEOUT:g} s and was stopped") from None
    finally:
        lock.release()
    if proc.returncode != 0:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        error = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        raise invalid(["path", "run_id"], f"certlab report failed (exit {proc.returncode}): {error.strip()}")


def report_out(run_dir: Path, run_id: str) -> ReportOut:
    path = run_dir / JSON_FILE
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no report yet")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}: its report is being written") from None
    approval = doc.get("approval") or {}
    summary = doc.get("summary") or {}
    return ReportOut(run_id=run_id, status="approved" if is_approved(run_dir) else "draft",
                     report_id=(doc.get("report") or {}).get("id"), overall=summary.get("overall"),
                     complete=summary.get("complete"),
                     not_assessed=[str(n.get("provision")) for n in summary.get("not_assessed") or []],
                     counts=summary.get("counts") or {}, approved_by=approval.get("by"),
                     approved_role=approval.get("role"), approved_at=approval.get("at"),
                     files=[name for name, (file, _) in FILES.items() if (run_dir / file).is_file()] + ["archive"])


@router.post("/runs/{run_id}/report", response_model=ReportOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, 504, why={
                 409: "The run has not finished, its report is approved already or being made",
                 422: "`certlab report` refused the run (its one-line error)"}),
             summary="Make the run's report: Allure, conformance report (HTML, JSON, PDF), signed (lab engineers)")
def make_report(run_id: RunIdPath, request: Request, who: Engineer, svc: ServicesDep) -> ReportOut:
    visible_run(svc, who, run_id)
    run_dir = run_dir_of(svc, run_id)
    if not (run_dir / "verdicts.json").is_file():
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} has not finished; its report comes after")
    if is_approved(run_dir):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}: the report is approved already")
    _certlab_report(request, svc, run_id, str(run_dir.resolve()), *_profile_args(svc))
    return report_out(run_dir, run_id)


@router.post("/runs/{run_id}/report/approve", response_model=ReportOut, include_in_schema=False)
@router.post("/runs/{run_id}/approve", response_model=ReportOut,
             responses=errors(403, 404, *BODY, 504, why={
                 409: "No report yet, approved already, or being made",
                 422: "Invalid body, or `certlab report approve` refused it (e.g. not a signatory of the profile)"}),
             summary="Approve the report's draft as an authorised signatory of the lab profile (lab engineers)")
def approve(run_id: RunIdPath, body: ApproveIn, request: Request, who: Engineer, svc: ServicesDep) -> ReportOut:
    booking = visible_run(svc, who, run_id)
    run_dir = run_dir_of(svc, run_id)
    if not (run_dir / JSON_FILE).is_file():
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} has no report yet; POST /runs/{run_id}/report")
    if is_approved(run_dir):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}: the report is approved already")
    _certlab_report(request, svc, run_id, "approve", str(run_dir.resolve()), "--by", body.by, "--role", body.role,
                    *_profile_args(svc))
    service.mark_reported(svc.store, booking_id=booking.id, run_id=run_id)
    return report_out(run_dir, run_id)


@router.post("/runs/{run_id}/release", response_model=ReleaseOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, why={409: "Only an approved report is released",
                                                  422: "Invalid body, or an organisation without a certifier"}),
             summary="Release the approved report to a certification body (lab engineers)")
def release(run_id: RunIdPath, body: ReleaseIn, who: Engineer, svc: ServicesDep) -> ReleaseOut:
    booking = visible_run(svc, who, run_id)
    if not is_approved(run_dir_of(svc, run_id)):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}: only an approved report is released")
    org = service.organisation_named(svc.store, name=body.organisation)
    if org is None or not service.has_member(svc.store, org_id=org.id, role="certifier"):
        raise invalid(["body", "organisation"], f"organisation {body.organisation!r} has no certifier; fix: `certlab "
                                                f"users add NAME --role certifier --org '{body.organisation}'` first")
    row = service.release_report(svc.store, run_id=run_id, booking_id=booking.id, org_id=org.id, released_by=who.id)
    return ReleaseOut(run_id=run_id, booking_id=booking.id, organisation=org.name, at=row.at)


@router.get("/runs/{run_id}/releases", response_model=list[ReleaseOut], responses=errors(404, 422),
            summary="Who the report was released to (a certifier sees only its own release)")
def list_releases(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> list[ReleaseOut]:
    booking = visible_run(svc, who, run_id)
    rows = service.releases(svc.store, run_id=run_id)
    if who.role == "certifier":
        rows = [r for r in rows if r.org_id == who.org_id]
    names = {}
    for r in rows:
        names[r.org_id] = names.get(r.org_id) or _org_name(svc, r.org_id)
    return [ReleaseOut(run_id=run_id, booking_id=booking.id, organisation=names[r.org_id], at=r.at) for r in rows]


def _org_name(svc: Services, org_id: int) -> str:
    with reading(svc.store) as s:
        org = s.get(Organisation, org_id)
        return org.name if org else str(org_id)


@router.get("/runs/{run_id}/report", response_model=ReportOut,
            responses=errors(404, 422, why={409: "The report is being written"}),
            summary="The report's status (draft or approved), id, overall verdict and counts")
def get_report(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> ReportOut:
    visible_run(svc, who, run_id)
    return report_out(run_dir_of(svc, run_id), run_id)


def _download(name: str):
    file, media = FILES[name]

    def download(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> FileResponse:
        path = _readable(svc, who, run_id) / file
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no {file} (yet)")
        return FileResponse(path, media_type=media, filename=f"{run_id}-{file}")

    download.__name__ = f"download_{name.replace('.', '_')}"
    return download


for _name in FILES:
    router.add_api_route(f"/runs/{{run_id}}/report/{_name}", _download(_name), methods=["GET"],
                         response_class=Response,
                         responses={**download(FILES[_name][1], f"{_name} of the run"), **DOWNLOAD},
                         summary=f"Download {_name} (the manufacturer and certifiers: once approved)")


@router.get("/runs/{run_id}/report/archive", response_class=Response,
            responses={**download("application/gzip", "The run directory as .tar.gz"), **DOWNLOAD},
            summary="The whole run directory as .tar.gz: evidence, logs, manifest and signature (once approved)")
def archive(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> FileResponse:
    """Built once per report version and kept (lab/reports/archive.py): a download sends stored,
    re-verified bytes, and concurrent downloads of one report wait for one build."""
    run_dir = _readable(svc, who, run_id)
    try:
        path = svc.archives.ready(run_dir, svc.settings.data_dir / ARCHIVES_DIR)
    except ArchiveBusy as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"run {run_id}: its archive is not built yet and "
                            f"{exc}; retry in a minute", headers={"Retry-After": "60"}) from None
    return FileResponse(path, media_type="application/gzip", filename=f"{run_id}.tar.gz")
