"""Firmware images a manufacturer uploads for a booking: stored once by content hash, read as a
CLFW image when they are one, and their signature checked against the key the booking's IXIT
declares for its update mechanism (7-UpdMech), so a wrongly signed release shows before testing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Response, UploadFile, status
from fastapi.responses import FileResponse

from lab.actions.bookings import FROZEN, refuse_frozen
from lab.api.schemas.bookings import IdPath
from lab.api.deps import Allow, AnyRole, Caller, Manufacturer, ServicesDep
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors, invalid
from lab.api.schemas.service import FirmwareOut
from lab.actions.tenancy import booking_for, firmware_for
from lab.api.uploads import receive
from lab.errors import CertlabError, FirmwareFormatError
from lab.firmware import parse_image, payload_matches, verify_signature
from lab.ownerfiles import private_dir
from lab.store import service
from lab.store.bookings import InputsFrozen
from lab.store.models import Booking, Firmware
from lab.store.unit import reading
from lab.yamlfile import parse_yaml

router = APIRouter(tags=["firmware"], responses=errors(*AUTHENTICATED))
NOT_AN_IMAGE = "not an image format certlab reads"

ReadsFirmware = Annotated[Caller, Depends(Allow("manufacturer", "engineer"))]


def _out(row: Firmware) -> FirmwareOut:
    return FirmwareOut(id=row.id, booking_id=row.booking_id, filename=row.filename, sha256=row.sha256, size=row.size,
                       version=row.version, signature=row.signature,  # type: ignore[arg-type]
                       signature_detail=row.signature_detail, created_at=row.created_at)


def stored_path(firmware_dir: Path, sha256: str) -> Path:
    return firmware_dir / sha256[:2] / sha256


def update_keys(ixit_text: str) -> list[tuple[str, str]]:
    """(7-UpdMech id, public key hex) of every update mechanism whose Ed25519 key the IXIT gives.

    Read from the raw YAML: a key is worth checking against even if another IXIT list is incomplete.
    """
    try:
        raw = parse_yaml(ixit_text, "ixit", CertlabError)  # the same refusals as every other YAML read
    except CertlabError:
        return []
    entries = raw.get("7-UpdMech") if isinstance(raw, dict) else None
    keys = []
    for entry in entries if isinstance(entries, list) else []:
        sig = entry.get("signature") if isinstance(entry, dict) else None
        if isinstance(sig, dict) and sig.get("public_key_hex") and sig.get("algorithm", "Ed25519") == "Ed25519":
            keys.append((str(entry.get("id") or "?"), str(sig["public_key_hex"]).lower()))
    return keys


def check_image(data: bytes, booking: Booking) -> tuple[str | None, str, str]:
    """(version, signature state, detail) of an upload; 422 if it is an image for another model."""
    try:
        img = parse_image(data)
    except FirmwareFormatError as exc:
        return None, "unchecked", f"{NOT_AN_IMAGE} ({exc})"
    model = booking.product.model
    if img.model != model:
        raise invalid(["body", "file"], f"the image is for model {img.model!r}, the booking's product is {model!r}; "
                                        f"fix: upload the {model} release")
    keys = update_keys(booking.ixit)
    if not keys:
        return img.version, "unchecked", ("the booking's IXIT gives no update signing key "
                                          "(7-UpdMech signature.public_key_hex)")
    if img.signature is None:
        return img.version, "invalid", "the image is unsigned"
    for ident, key in keys:
        try:
            ok = verify_signature(img, key)
        except ValueError:
            continue
        if ok:
            if not payload_matches(img):
                return img.version, "invalid", (f"signed with the key of 7-UpdMech {ident!r}, but the payload "
                                                f"does not match the signed SHA-256 (tampered)")
            return img.version, "valid", f"Ed25519 signature valid under the key of 7-UpdMech {ident!r}"
    return img.version, "invalid", (f"the signature does not verify under the IXIT's update key(s) "
                                    f"({', '.join(i for i, _ in keys)}): signed with another key")


@router.post("/bookings/{booking_id}/firmware", response_model=FirmwareOut, status_code=status.HTTP_201_CREATED,
             summary="Upload a firmware image for your booking (multipart field `file`)",
             responses={200: {"model": FirmwareOut, "description": "These bytes were uploaded for the booking before"},
                        **errors(403, 404, *BODY, 422, why={
                            409: FROZEN,
                            422: "An empty file, or an image of another model"})})
def upload_firmware(booking_id: IdPath, response: Response, who: Manufacturer, svc: ServicesDep,
                    file: Annotated[UploadFile, File(description="the image, e.g. TH-100-1.4.0.clfw")]) -> FirmwareOut:
    limit = svc.settings.max_upload_bytes
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
    refuse_frozen(booking)  # before the image is kept; add_firmware checks again, atomically
    firmware_dir = svc.settings.firmware_dir
    tmp, sha256, size = receive(file, firmware_dir / "tmp", limit, "image")
    try:
        if size == 0:
            raise invalid(["body", "file"], "the uploaded file is empty; fix: upload the image")
        version, signature, detail = check_image(tmp.read_bytes(), booking)
        final = stored_path(firmware_dir, sha256)
        private_dir(final.parent)
        if final.exists():  # the same bytes are kept once, whoever sent them
            tmp.unlink()
        else:
            os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    earlier = service.firmware_with_hash(svc.store, booking_id=booking_id, sha256=sha256)
    if earlier is not None:
        response.status_code = status.HTTP_200_OK
        return _out(earlier)
    try:
        row = service.add_firmware(svc.store, org_id=booking.org_id, booking_id=booking_id,
                                   filename=Path(file.filename or "firmware.bin").name or "firmware.bin",
                                   sha256=sha256, size=size, version=version, signature=signature,
                                   signature_detail=detail, uploaded_by=who.id)
    except InputsFrozen as exc:  # the run was claimed while the image arrived
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _out(row)


@router.get("/bookings/{booking_id}/firmware", response_model=list[FirmwareOut], responses=errors(404, 422),
            summary="The firmware images uploaded for a booking")
def list_firmware(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> list[FirmwareOut]:
    with reading(svc.store) as s:
        booking_for(s, who, booking_id)
    return [_out(r) for r in service.booking_firmware(svc.store, booking_id=booking_id)]


def _visible(svc: Any, who: Caller, firmware_id: int) -> Firmware:
    with reading(svc.store) as s:
        return firmware_for(s, who, firmware_id)


@router.get("/firmware/{firmware_id}", response_model=FirmwareOut, responses=errors(404, 422),
            summary="One firmware image's record")
def get_firmware(firmware_id: IdPath, who: AnyRole, svc: ServicesDep) -> FirmwareOut:
    return _out(_visible(svc, who, firmware_id))


@router.get("/firmware/{firmware_id}/content", response_class=Response,
            responses={**download("application/octet-stream", "The image as uploaded"), **errors(403, 404, 410, 422)},
            summary="Download the image (its manufacturer, or a lab engineer)")
def firmware_content(firmware_id: IdPath, who: ReadsFirmware, svc: ServicesDep) -> FileResponse:
    row = _visible(svc, who, firmware_id)
    path = stored_path(svc.settings.firmware_dir, row.sha256)
    if not path.is_file():
        raise HTTPException(status.HTTP_410_GONE, f"firmware {firmware_id}: the stored file is missing from "
                            f"{svc.settings.firmware_dir}")
    return FileResponse(path, media_type="application/octet-stream", filename=row.filename)
