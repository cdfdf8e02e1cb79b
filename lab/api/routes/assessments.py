"""The assessor's record of a booking, kept by a lab engineer: decisions on the conceptual test
cases and the functional test cases the lab performed by hand, with their evidence files.

TS 103 701's conceptual test cases are judged by an assessor against the ICS and IXIT, never
passed by a machine: the record is the same YAML as `--assessments` on the command line,
validated by the same loader (a bad one answers 422 naming the field), kept with the booking and
handed to every run started for it afterwards. Evidence files (photos, screenshots, captures)
are uploaded first (`POST .../assessments/evidence`, size-limited, hashed, never replaced by other
bytes) and named in the record as `evidence/<name>`; a run copies them and signs them with its
results.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, File, HTTPException, UploadFile, status
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from lab.api.deps import Allow, Caller, Engineer, Services, ServicesDep
from lab.actions.bookings import FROZEN, as_422, refuse_frozen
from lab.api.routes.runs import ASSESSMENTS_FILE, booking_folder
from lab.api.schemas.bookings import IdPath
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors, invalid
from lab.actions.tenancy import booking_for, not_found
from lab.api.uploads import receive
from lab.assessments import AssessmentsError, load_assessments
from lab.inputfile import sha256_file
from lab.ixit import IxitError, load_ixit
from lab.ownerfiles import private_dir, write_private
from lab.store.unit import reading

router = APIRouter(tags=["assessments"], responses=errors(*AUTHENTICATED))
EVIDENCE_DIR = "evidence"  # beside the booking's assessments.yaml, so `evidence/<name>` resolves as on the command line
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ReadsAssessments = Depends(Allow("engineer", "manufacturer"))


class AssessmentsIn(BaseModel):
    assessments: str = Field(min_length=1, max_length=2_000_000,
                             description="The assessor's decisions, YAML as for `certlab run --assessments`")


class AssessmentsOut(BaseModel):
    booking_id: int
    assessor: str
    date: str
    decisions: int
    performed: int = 0


class EvidenceOut(BaseModel):
    name: str
    path: str = Field(description="how the assessor's record names it under performed.<case>.evidence")
    sha256: str
    size: int


def assessments_file(svc: Services, booking_id: int) -> Path:
    return booking_folder(svc, booking_id) / ASSESSMENTS_FILE


@router.put("/bookings/{booking_id}/assessments", response_model=AssessmentsOut,
            summary="Record the assessor's decisions on the conceptual test cases (lab engineers)",
            responses=errors(403, 404, *BODY, why={
                409: FROZEN, 422: "Invalid decisions: `loc` names the field inside them"}))
def put_assessments(booking_id: IdPath, who: Engineer, svc: ServicesDep,
                    body: AssessmentsIn = Body(...)) -> AssessmentsOut:
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
        refuse_frozen(booking)
        edition, model, ixit_text = booking.edition, booking.product.model, booking.ixit
    uploads = booking_folder(svc, booking_id)
    with tempfile.TemporaryDirectory(prefix="certlab-upload-") as folder:
        path, ixit_path = Path(folder) / ASSESSMENTS_FILE, Path(folder) / "ixit.yaml"
        path.write_text(body.assessments, encoding="utf-8")
        ixit_path.write_text(ixit_text, encoding="utf-8")
        try:
            try:  # evidence names resolve against the booking's uploads, as the run will see them
                decisions = load_assessments(path, edition, model=model, catalogs=svc.catalogs, base_dir=uploads)
            except AssessmentsError as exc:
                raise AssessmentsError(str(exc).replace(
                    f"{uploads}/", "").replace(str(uploads), "the booking's uploads").replace(
                    "put the file there", f"upload it with POST /bookings/{booking_id}/assessments/evidence")) from None
            decisions.check_refs(load_ixit(ixit_path))
        except (AssessmentsError, IxitError) as exc:
            raise as_422("assessments", exc, path, body.assessments) from None
    target = assessments_file(svc, booking_id)
    private_dir(target.parent)
    write_private(target, body.assessments)  # a customer's document: the owner's alone
    return AssessmentsOut(booking_id=booking_id, assessor=decisions.assessor.name, date=str(decisions.data.date),
                          decisions=len(decisions.data.decisions), performed=len(decisions.data.performed))


@router.post("/bookings/{booking_id}/assessments/evidence", response_model=EvidenceOut,
             status_code=status.HTTP_201_CREATED,
             summary="Upload an evidence file of a test case the lab performed by hand (lab engineers; multipart `file`)",
             responses=errors(403, 404, *BODY, why={409: f"Another file of that name exists, or: {FROZEN}",
                                                  422: "Empty, or a name that is not a plain file name"}))
def upload_evidence(booking_id: IdPath, who: Engineer, svc: ServicesDep,
                    file: Annotated[UploadFile, File(description="e.g. 5.2-1-2-policy.png")]) -> EvidenceOut:
    limit = svc.settings.max_upload_bytes
    with reading(svc.store) as s:
        refuse_frozen(booking_for(s, who, booking_id))
    name = file.filename or ""
    if not _NAME.fullmatch(name) or ".." in name:
        raise invalid(["body", "file"], f"file name {name[:80]!r}: give a plain file name (letters, digits, '.', "
                                        f"'_', '-'; up to 128 characters), e.g. 5.2-1-2-policy.png")
    folder = private_dir(booking_folder(svc, booking_id) / EVIDENCE_DIR)
    tmp, sha256, size = receive(file, folder, limit)
    try:
        if size == 0:
            raise invalid(["body", "file"], "the uploaded file is empty; fix: upload the evidence file")
        target = folder / name
        if target.exists() and sha256_file(target) != sha256:
            raise HTTPException(status.HTTP_409_CONFLICT, f"evidence {name!r} exists with other content; evidence "
                                "is never replaced: upload the new file under another name")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return EvidenceOut(name=name, path=f"{EVIDENCE_DIR}/{name}", sha256=sha256, size=size)


@router.get("/bookings/{booking_id}/assessments/evidence", response_model=list[EvidenceOut],
            responses=errors(403, 404, 422),
            summary="The evidence files uploaded for a booking's assessor record (lab engineers)")
def list_evidence(booking_id: IdPath, who: Engineer, svc: ServicesDep) -> list[EvidenceOut]:
    with reading(svc.store) as s:
        booking_for(s, who, booking_id)
    folder = booking_folder(svc, booking_id) / EVIDENCE_DIR
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    return [EvidenceOut(name=p.name, path=f"{EVIDENCE_DIR}/{p.name}", sha256=sha256_file(p), size=p.stat().st_size)
            for p in files]


@router.get("/bookings/{booking_id}/assessments", response_class=Response,
            responses={**download("application/yaml", "The record as recorded", yaml=True), **errors(403, 404, 422)},
            summary="The assessor's recorded decisions (YAML), once there are any")
def get_assessments(booking_id: IdPath, svc: ServicesDep, who: Caller = ReadsAssessments) -> PlainTextResponse:
    with reading(svc.store) as s:
        booking_for(s, who, booking_id)
    path = assessments_file(svc, booking_id)
    if not path.is_file():
        raise not_found("assessments for booking", booking_id)
    return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="application/yaml")
