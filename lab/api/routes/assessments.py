"""The assessor's record of a booking, kept by a lab engineer: decisions on the conceptual test
cases and the functional test cases the lab performed by hand, with their evidence files.

The record is the same YAML as `--assessments` on the command line, validated by the same loader
(a bad one answers 422 naming the field); evidence files are uploaded first
(`POST .../assessments/evidence`) and named in the record as `evidence/<name>`. The rules are
`lab.actions.assessments`; this module parses the request and shapes the answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, File, UploadFile, status
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from lab.actions import assessments as actions
from lab.actions.assessments import Evidence
from lab.actions.bookings import FROZEN
from lab.api.deps import Allow, Caller, Engineer, ServicesDep
from lab.api.schemas.bookings import IdPath
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors

router = APIRouter(tags=["assessments"], responses=errors(*AUTHENTICATED))
ReadsAssessments = Depends(Allow(*actions.READERS))


class AssessmentsIn(BaseModel):
    assessments: str = Field(min_length=1, max_length=actions.MAX_RECORD,
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


def _evidence(item: Evidence) -> EvidenceOut:
    return EvidenceOut(name=item.name, path=item.path, sha256=item.sha256, size=item.size)


@router.put("/bookings/{booking_id}/assessments", response_model=AssessmentsOut,
            summary="Record the assessor's decisions on the conceptual test cases (lab engineers)",
            responses=errors(403, 404, *BODY, why={
                409: FROZEN, 422: "Invalid decisions: `loc` names the field inside them"}))
def put_assessments(booking_id: IdPath, who: Engineer, svc: ServicesDep,
                    body: AssessmentsIn = Body(...)) -> AssessmentsOut:
    summary = actions.record_assessments(svc, who, booking_id, body.assessments)
    return AssessmentsOut(booking_id=summary.booking_id, assessor=summary.assessor, date=summary.date,
                          decisions=summary.decisions, performed=summary.performed)


@router.post("/bookings/{booking_id}/assessments/evidence", response_model=EvidenceOut,
             status_code=status.HTTP_201_CREATED,
             summary="Upload an evidence file of a test case the lab performed by hand (lab engineers; multipart `file`)",
             responses=errors(403, 404, *BODY, why={409: f"Another file of that name exists, or: {FROZEN}",
                                                  422: "Empty, or a name that is not a plain file name"}))
def upload_evidence(booking_id: IdPath, who: Engineer, svc: ServicesDep,
                    file: Annotated[UploadFile, File(description="e.g. 5.2-1-2-policy.png")]) -> EvidenceOut:
    return _evidence(actions.upload_evidence(svc, who, booking_id, file.file, file.filename))


@router.get("/bookings/{booking_id}/assessments/evidence", response_model=list[EvidenceOut],
            responses=errors(403, 404, 422),
            summary="The evidence files uploaded for a booking's assessor record (lab engineers)")
def list_evidence(booking_id: IdPath, who: Engineer, svc: ServicesDep) -> list[EvidenceOut]:
    return [_evidence(item) for item in actions.list_evidence(svc, who, booking_id)]


@router.get("/bookings/{booking_id}/assessments", response_class=Response,
            responses={**download("application/yaml", "The record as recorded", yaml=True), **errors(403, 404, 422)},
            summary="The assessor's recorded decisions (YAML), once there are any")
def get_assessments(booking_id: IdPath, svc: ServicesDep, who: Caller = ReadsAssessments) -> PlainTextResponse:
    return PlainTextResponse(actions.assessments_text(svc, who, booking_id), media_type="application/yaml")
