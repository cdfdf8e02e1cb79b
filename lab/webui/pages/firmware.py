"""Firmware on the booking page: the manufacturer uploads an image and sees at once whether its
signature verifies under the update key the booking's IXIT declares (valid / invalid with why /
unchecked with why) and its SHA-256; the manufacturer and the lab download it again.

An upload in error comes back on the booking's firmware page with the message at the file field.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response

from lab.actions import firmware as actions
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Invalid, TooLarge
from lab.webui.deps import SvcDep, Viewer
from lab.webui.render import page, see_other

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]  # ids are 32-bit on PostgreSQL


def _firmware_page(request: Request, svc: Services, who: Caller, booking_id: int, *, status: int = 200,
                   errors: dict[str, str] | None = None) -> HTMLResponse:
    return page(request, "firmware/booking.html", status=status, panel=actions.booking_firmware(svc, who, booking_id),
                errors=errors or {})


@router.get("/bookings/{booking_id}/firmware")
def firmware_page(request: Request, svc: SvcDep, who: Viewer, booking_id: Id) -> HTMLResponse:
    return _firmware_page(request, svc, who, booking_id)


@router.post("/bookings/{booking_id}/firmware")
def upload(request: Request, svc: SvcDep, who: Viewer, booking_id: Id,
           file: Annotated[UploadFile | None, File()] = None) -> Response:
    if file is None or not file.filename:
        return _firmware_page(request, svc, who, booking_id, status=422,
                              errors={"file": "choose the image file to upload (e.g. TH-100-1.4.0.clfw)"})
    try:
        done = actions.upload_firmware(svc, who, booking_id, file.file, file.filename)
    except Invalid as exc:
        return _firmware_page(request, svc, who, booking_id, status=422, errors={"file": exc.msg})
    except (Conflict, TooLarge) as exc:
        return _firmware_page(request, svc, who, booking_id, status=exc.status, errors={"file": str(exc)})
    row = done.firmware
    said = f"signature {row.signature}: {row.signature_detail}" if row.signature_detail else f"signature {row.signature}"
    first = "uploaded" if done.created else "was uploaded before; the earlier record is kept"
    return see_other(request, f"/bookings/{booking_id}#firmware-{row.id}",
                     f"{row.filename} {first} ({said}). SHA-256 {row.sha256}.")


@router.get("/firmware/{firmware_id}/download")
def download(svc: SvcDep, who: Viewer, firmware_id: Id) -> FileResponse:
    path, row = actions.firmware_file(svc, who, firmware_id)
    return FileResponse(path, media_type="application/octet-stream", filename=row.filename,
                        headers={"X-Content-Type-Options": "nosniff"})
