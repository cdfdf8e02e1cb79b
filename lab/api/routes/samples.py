"""Samples: the physical units a manufacturer sends with a booking, and their chain of custody.

An engineer records the receipt (serial, day, condition: ISO/IEC 17025 7.4) and then every
hand-over (on a bench, tested, returned); custody events are append-only. A manufacturer sees
the samples of its own bookings, a certifier those of bookings released to it. The rules are
`lab.actions.samples`; this module parses the request and shapes the answer.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from lab.actions import samples as actions
from lab.actions.samples import Custody, SampleView
from lab.api.deps import AnyRole, Engineer, ServicesDep
from lab.api.schemas.bookings import CustodyCreate, CustodyOut, IdPath, SampleOut, SampleReceipt
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors

router = APIRouter(tags=["samples"], responses=errors(*AUTHENTICATED))


def _custody(event: Custody) -> CustodyOut:
    return CustodyOut(id=event.id, kind=event.kind, note=event.note, by=event.by, at=event.at)


def _out(view: SampleView) -> SampleOut:
    return SampleOut.of(view.sample, bench=view.bench, custody=[_custody(e) for e in view.custody])


@router.post("/bookings/{booking_id}/samples", response_model=SampleOut, status_code=status.HTTP_201_CREATED,
             summary="Record the receipt of a sample for a booking (lab engineers)",
             responses=errors(403, 404, *BODY, why={
                 409: "The booking is closed, or the sample is with another open booking",
                 422: "Invalid body, or a serial the lab's inventory lists as another model"}))
def receive(booking_id: IdPath, body: SampleReceipt, who: Engineer, svc: ServicesDep) -> SampleOut:
    return _out(actions.receive_sample(svc, who, booking_id, serial=body.serial, condition=body.condition,
                                       received_on=body.received_on, firmware=body.firmware))


@router.get("/bookings/{booking_id}/samples", response_model=list[SampleOut], responses=errors(404, 422),
            summary="A booking's samples with their chain of custody")
def booking_samples(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> list[SampleOut]:
    return [_out(view) for view in actions.list_samples(svc, who, booking_id)]


@router.get("/samples/{sample_id}", response_model=SampleOut, responses=errors(404, 422), summary="One sample with its chain of custody")
def get_sample(sample_id: IdPath, who: AnyRole, svc: ServicesDep) -> SampleOut:
    return _out(actions.get_sample(svc, who, sample_id))


@router.post("/samples/{sample_id}/custody", response_model=CustodyOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, 422),
             summary="Append a chain-of-custody event: on-bench, tested, returned, note (lab engineers)")
def add_custody(sample_id: IdPath, body: CustodyCreate, who: Engineer, svc: ServicesDep) -> CustodyOut:
    return _custody(actions.add_custody(svc, who, sample_id, kind=body.kind, note=body.note))
