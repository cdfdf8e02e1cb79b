"""The assessor's record of a booking (`/bookings/{id}/assessments`): the decisions per conceptual
test case and the functional cases performed by hand, who recorded them and when, and the evidence
files. The lab's engineers record and upload; the booking's manufacturer reads the decisions (the
evidence stays the lab's, as in the API).

A record in error comes back with the loader's line (the field path inside the YAML and the fix)
at the record's field, and the text as typed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from lab.actions import assessments as actions
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Invalid, TooLarge
from lab.webui.deps import Roles, SvcDep, Viewer
from lab.webui.render import page, see_other

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]  # ids are 32-bit on PostgreSQL


def _record_page(request: Request, svc: Services, who: Caller, booking_id: int, *, status: int = 200,
                 errors: dict[str, str] | None = None, text: str | None = None) -> HTMLResponse:
    record = actions.assessment_record(svc, who, booking_id)
    return page(request, "assessments/record.html", status=status, record=record, errors=errors or {},
                text=record.text if text is None else text)


@router.get("/bookings/{booking_id}/assessments")
def record_page(request: Request, svc: SvcDep, who: Viewer, booking_id: Id) -> HTMLResponse:
    return _record_page(request, svc, who, booking_id)


@router.post("/bookings/{booking_id}/assessments")
def record(request: Request, svc: SvcDep, who: Viewer, booking_id: Id,
           assessments: Annotated[str, Form()] = "",
           assessments_file: Annotated[UploadFile | None, File()] = None) -> Response:
    text = assessments
    if assessments_file is not None and assessments_file.filename:  # a chosen file replaces the text area
        raw = assessments_file.file.read(actions.MAX_RECORD + 1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _record_page(request, svc, who, booking_id, status=422, text=assessments, errors={
                "assessments_file": f"{assessments_file.filename}: not UTF-8 text; save the YAML as UTF-8"})
    try:
        summary = actions.record_assessments(svc, who, booking_id, text)
    except (Invalid, Conflict) as exc:
        return _record_page(request, svc, who, booking_id, status=exc.status, text=text,
                            errors={"assessments": str(exc)})
    return see_other(request, f"/bookings/{booking_id}/assessments",
                     f"Recorded: {summary.decisions} decisions and {summary.performed} cases performed by hand, "
                     f"assessor {summary.assessor}, {summary.date}. Runs started from now on use this record.")


@router.post("/bookings/{booking_id}/assessments/evidence")
def upload_evidence(request: Request, svc: SvcDep, who: Viewer, booking_id: Id,
                    file: Annotated[UploadFile | None, File()] = None) -> Response:
    if file is None or not file.filename:
        return _record_page(request, svc, who, booking_id, status=422,
                            errors={"file": "choose the evidence file to upload (e.g. 6-1-2-notice.png)"})
    try:
        kept = actions.upload_evidence(svc, who, booking_id, file.file, file.filename)
    except (Invalid, Conflict, TooLarge) as exc:
        return _record_page(request, svc, who, booking_id, status=exc.status, errors={"file": str(exc)})
    return see_other(request, f"/bookings/{booking_id}/assessments#evidence",
                     f"Evidence {kept.name} kept (SHA-256 {kept.sha256}). Name it in the record as {kept.path} "
                     "under the performed test case's evidence.")


@router.get("/bookings/{booking_id}/assessments/evidence/{name}")
def evidence_file(svc: SvcDep, who: Viewer, booking_id: Id, name: str) -> FileResponse:
    path = actions.evidence_file(svc, who, booking_id, name)
    return FileResponse(path, media_type="application/octet-stream", filename=path.name,
                        headers={"X-Content-Type-Options": "nosniff"})


@router.get("/bookings/{booking_id}/assessments/record.yaml")
def record_yaml(svc: SvcDep, who: Viewer, booking_id: Id) -> PlainTextResponse:
    return PlainTextResponse(actions.assessments_text(svc, who, booking_id), media_type="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="booking-{booking_id}-assessments.yaml"'})
