"""The assessor's decisions on a booking's conceptual test cases, recorded by a lab engineer.

TS 103 701's conceptual test cases are judged by an assessor against the ICS and IXIT, never
passed by a machine: the decisions are the same YAML as `--assessments` on the command line,
validated by the same loader (a bad one answers 422 naming the field), kept with the booking and
handed to every run started for it afterwards.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Body, Depends
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from lab.api.deps import Allow, Caller, Engineer, Services, ServicesDep
from lab.api.routes.bookings import as_422
from lab.api.routes.runs import ASSESSMENTS_FILE, booking_folder
from lab.api.schemas.bookings import IdPath
from lab.api.tenancy import booking_for, not_found
from lab.assessments import AssessmentsError, load_assessments
from lab.ixit import IxitError, load_ixit
from lab.store.unit import reading

router = APIRouter(tags=["assessments"])
ReadsAssessments = Depends(Allow("engineer", "manufacturer"))


class AssessmentsIn(BaseModel):
    assessments: str = Field(min_length=1, max_length=2_000_000,
                             description="The assessor's decisions, YAML as for `certlab run --assessments`")


class AssessmentsOut(BaseModel):
    booking_id: int
    assessor: str
    date: str
    decisions: int


def assessments_file(svc: Services, booking_id: int) -> Path:
    return booking_folder(svc, booking_id) / ASSESSMENTS_FILE


@router.put("/bookings/{booking_id}/assessments", response_model=AssessmentsOut,
            summary="Record the assessor's decisions on the conceptual test cases (lab engineers)",
            responses={422: {"description": "Invalid decisions: `loc` names the field inside them"}})
def put_assessments(booking_id: IdPath, who: Engineer, svc: ServicesDep,
                    body: AssessmentsIn = Body(...)) -> AssessmentsOut:
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
        edition, model, ixit_text = booking.edition, booking.product.model, booking.ixit
    with tempfile.TemporaryDirectory(prefix="certlab-upload-") as folder:
        path, ixit_path = Path(folder) / ASSESSMENTS_FILE, Path(folder) / "ixit.yaml"
        path.write_text(body.assessments, encoding="utf-8")
        ixit_path.write_text(ixit_text, encoding="utf-8")
        try:
            decisions = load_assessments(path, edition, model=model, catalogs=svc.catalogs)
            decisions.check_refs(load_ixit(ixit_path))
        except (AssessmentsError, IxitError) as exc:
            raise as_422("assessments", exc, path, body.assessments) from None
    target = assessments_file(svc, booking_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(body.assessments, encoding="utf-8")
    os.replace(tmp, target)
    return AssessmentsOut(booking_id=booking_id, assessor=decisions.assessor.name, date=str(decisions.data.date),
                          decisions=len(decisions.data.decisions))


@router.get("/bookings/{booking_id}/assessments", response_class=PlainTextResponse,
            responses={200: {"content": {"application/yaml": {}}}},
            summary="The assessor's recorded decisions (YAML), once there are any")
def get_assessments(booking_id: IdPath, svc: ServicesDep, who: Caller = ReadsAssessments) -> PlainTextResponse:
    with reading(svc.store) as s:
        booking_for(s, who, booking_id)
    path = assessments_file(svc, booking_id)
    if not path.is_file():
        raise not_found("assessments for booking", booking_id)
    return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="application/yaml")
