"""Firmware images a manufacturer uploads for a booking: stored once by content hash, read as a
CLFW image when they are one, and their signature checked against the key the booking's IXIT
declares for its update mechanism (7-UpdMech), so a wrongly signed release shows before testing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from lab.actions.bookings import refuse_frozen
from lab.actions.context import Caller, Services
from lab.actions.errors import ActionError, Conflict, Forbidden, Invalid
from lab.actions.tenancy import booking_for, firmware_for
from lab.actions.uploads import receive
from lab.errors import CertlabError, FirmwareFormatError
from lab.firmware import parse_image, payload_matches, verify_signature
from lab.ownerfiles import private_dir
from lab.store import service
from lab.store.bookings import InputsFrozen, frozen_inputs
from lab.store.models import Firmware, User
from lab.store.unit import reading
from lab.yamlfile import parse_yaml

NOT_AN_IMAGE = "not an image format certlab reads"
READERS = ("manufacturer", "engineer")  # who may download an image's bytes
SIGNATURE_MEANING = {
    "valid": "the signature verifies under the update key the booking's IXIT declares",
    "invalid": "the signature does not verify: this is not the release the IXIT's key signed",
    "unchecked": "the signature could not be checked",
}


class Gone(ActionError):
    """The record is there but its stored file is not (the lab's storage lost it)."""

    status = 410


@dataclass(frozen=True)
class Upload:
    """An upload's record; `created` False when these bytes were uploaded for the booking before."""

    firmware: Firmware
    created: bool


@dataclass(frozen=True)
class FirmwareItem:
    """A firmware record as the booking page shows it, with the uploader's name."""

    firmware: Firmware
    uploaded_by: str | None


@dataclass(frozen=True)
class FirmwarePanel:
    """The booking page's firmware section (templates/bookings/_firmware.html)."""

    booking_id: int
    items: list[FirmwareItem]
    can_upload: bool  # the booking's manufacturer, while its inputs may change
    can_download: bool
    frozen: str | None  # why no image may be uploaded now, for its manufacturer
    meaning: dict[str, str]


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


def check_image(data: bytes, *, model: str, ixit_text: str) -> tuple[str | None, str, str]:
    """(version, signature state, detail) of an upload; Invalid if it is an image for another model."""
    try:
        img = parse_image(data)
    except FirmwareFormatError as exc:
        return None, "unchecked", f"{NOT_AN_IMAGE} ({exc})"
    if img.model != model:
        raise Invalid(["body", "file"], f"the image is for model {img.model!r}, the booking's product is {model!r}; "
                                        f"fix: upload the {model} release")
    keys = update_keys(ixit_text)
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


def upload_firmware(svc: Services, who: Caller, booking_id: int, stream: BinaryIO, filename: str | None) -> Upload:
    """Keep an image for the booking (its manufacturer), parsed and its signature checked against the IXIT."""
    if who.role != "manufacturer":
        raise Forbidden("only the booking's manufacturer uploads its firmware")
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
        model, ixit_text, org_id = booking.product.model, booking.ixit, booking.org_id
    refuse_frozen(booking)  # before the image is kept; add_firmware checks again, atomically
    firmware_dir = svc.settings.firmware_dir
    tmp, sha256, size = receive(stream, firmware_dir / "tmp", svc.settings.max_upload_bytes, "image")
    try:
        if size == 0:
            raise Invalid(["body", "file"], "the uploaded file is empty; fix: upload the image")
        version, signature, detail = check_image(tmp.read_bytes(), model=model, ixit_text=ixit_text)
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
        return Upload(earlier, created=False)
    try:
        row = service.add_firmware(svc.store, org_id=org_id, booking_id=booking_id,
                                   filename=Path(filename or "firmware.bin").name or "firmware.bin",
                                   sha256=sha256, size=size, version=version, signature=signature,
                                   signature_detail=detail, uploaded_by=who.id)
    except InputsFrozen as exc:  # the run was claimed while the image arrived
        raise Conflict(str(exc)) from None
    return Upload(row, created=True)


def list_firmware(svc: Services, who: Caller, booking_id: int) -> list[Firmware]:
    """The images uploaded for a booking, oldest first (anyone who sees the booking)."""
    with reading(svc.store) as s:
        booking_for(s, who, booking_id, documents=False)
        return list(s.scalars(select(Firmware).where(Firmware.booking_id == booking_id).order_by(Firmware.id)))


def booking_firmware(svc: Services, who: Caller, booking_id: int) -> FirmwarePanel:
    """The booking page's firmware section: the images with who uploaded them, and whether `who` may add one."""
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        rows = s.execute(select(Firmware, User.name).outerjoin(User, User.id == Firmware.uploaded_by)
                         .where(Firmware.booking_id == booking_id).order_by(Firmware.id)).all()
        frozen = frozen_inputs(booking.id, booking.status)
    maker = who.role == "manufacturer"
    return FirmwarePanel(booking_id=booking_id, items=[FirmwareItem(row, name) for row, name in rows],
                         can_upload=maker and frozen is None, can_download=who.role in READERS,
                         frozen=str(frozen) if maker and frozen is not None else None,
                         meaning=dict(SIGNATURE_MEANING))


def get_firmware(svc: Services, who: Caller, firmware_id: int) -> Firmware:
    with reading(svc.store) as s:
        return firmware_for(s, who, firmware_id)


def firmware_file(svc: Services, who: Caller, firmware_id: int) -> tuple[Path, Firmware]:
    """(stored file, record) of an image to download: its manufacturer or a lab engineer; Gone if the file is lost."""
    if who.role not in READERS:
        raise Forbidden("only the booking's manufacturer or a lab engineer may download a firmware image")
    row = get_firmware(svc, who, firmware_id)
    path = stored_path(svc.settings.firmware_dir, row.sha256)
    if not path.is_file():
        raise Gone(f"firmware {firmware_id}: the stored file is missing from {svc.settings.firmware_dir}")
    return path, row
