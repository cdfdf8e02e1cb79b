"""Firmware images a manufacturer uploads for a booking: stored once by content hash, read as a
CLFW image when they are one, and their signature checked against the key the booking's IXIT
declares for its update mechanism (7-UpdMech). The rules are `lab.actions.firmware`; this module
parses the request and shapes the answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Response, UploadFile, status
from fastapi.responses import FileResponse

from lab.actions import firmware as actions
from lab.actions.bookings import FROZEN
from lab.api.deps import Allow, AnyRole, Caller, Manufacturer, ServicesDep
from lab.api.schemas.bookings import IdPath
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors
from lab.api.schemas.service import FirmwareOut
from lab.store.models import Firmware

router = APIRouter(tags=["firmware"], responses=errors(*AUTHENTICATED))

ReadsFirmware = Annotated[Caller, Depends(Allow(*actions.READERS))]


def _out(row: Firmware) -> FirmwareOut:
    return FirmwareOut(id=row.id, booking_id=row.booking_id, filename=row.filename, sha256=row.sha256, size=row.size,
                       version=row.version, signature=row.signature,  # type: ignore[arg-type]
                       signature_detail=row.signature_detail, created_at=row.created_at)


@router.post("/bookings/{booking_id}/firmware", response_model=FirmwareOut, status_code=status.HTTP_201_CREATED,
             summary="Upload a firmware image for your booking (multipart field `file`)",
             responses={200: {"model": FirmwareOut, "description": "These bytes were uploaded for the booking before"},
                        **errors(403, 404, *BODY, 422, why={
                            409: FROZEN,
                            422: "An empty file, or an image of another model"})})
def upload_firmware(booking_id: IdPath, response: Response, who: Manufacturer, svc: ServicesDep,
                    file: Annotated[UploadFile, File(description="the image, e.g. TH-100-1.4.0.clfw")]) -> FirmwareOut:
    upload = actions.upload_firmware(svc, who, booking_id, file.file, file.filename)
    if not upload.created:
        response.status_code = status.HTTP_200_OK
    return _out(upload.firmware)


@router.get("/bookings/{booking_id}/firmware", response_model=list[FirmwareOut], responses=errors(404, 422),
            summary="The firmware images uploaded for a booking")
def list_firmware(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> list[FirmwareOut]:
    return [_out(r) for r in actions.list_firmware(svc, who, booking_id)]


@router.get("/firmware/{firmware_id}", response_model=FirmwareOut, responses=errors(404, 422),
            summary="One firmware image's record")
def get_firmware(firmware_id: IdPath, who: AnyRole, svc: ServicesDep) -> FirmwareOut:
    return _out(actions.get_firmware(svc, who, firmware_id))


@router.get("/firmware/{firmware_id}/content", response_class=Response,
            responses={**download("application/octet-stream", "The image as uploaded"), **errors(403, 404, 410, 422)},
            summary="Download the image (its manufacturer, or a lab engineer)")
def firmware_content(firmware_id: IdPath, who: ReadsFirmware, svc: ServicesDep) -> FileResponse:
    path, row = actions.firmware_file(svc, who, firmware_id)
    return FileResponse(path, media_type="application/octet-stream", filename=row.filename)
