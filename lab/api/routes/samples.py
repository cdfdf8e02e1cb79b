"""Samples: the physical units a manufacturer sends with a booking, and their chain of custody.

An engineer records the receipt (serial, day, condition: ISO/IEC 17025 7.4) and then every
hand-over (on a bench, tested, returned); custody events are append-only. A manufacturer sees
the samples of its own bookings, a certifier those of bookings released to it.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.api.deps import AnyRole, Caller, Engineer, ServicesDep
from lab.actions.slots import lab_benches
from lab.api.schemas.bookings import CustodyCreate, CustodyOut, IdPath, SampleOut, SampleReceipt, today
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors, invalid
from lab.api.settings import ApiSettings
from lab.actions.tenancy import booking_for, sample_for
from lab.store import bookings as store
from lab.store.bookings import BookingConflict
from lab.store.models import Sample, User
from lab.store.unit import reading, unit

router = APIRouter(tags=["samples"], responses=errors(*AUTHENTICATED))


def _bench_of(settings: ApiSettings, *, model: str, serial: str) -> str | None:
    """The inventory bench holding this sample; 422 if the inventory knows the serial as another model."""
    for name, bench in lab_benches(settings).items():
        if bench.dut.serial == serial:
            if bench.dut.model != model:
                raise invalid(["body", "serial"], f"serial {serial!r} is a {bench.dut.model} on bench {name} in the lab "
                                                  f"inventory, but the booking is for {model}; check the label")
            return name
    return None


def _out(s: Session, sample: Sample, bench: str | None) -> SampleOut:
    events = store.custody(s, sample_id=sample.id)
    ids = {e.by_user for e in events if e.by_user}
    names = dict(s.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    return SampleOut.of(sample, bench=bench, custody=[CustodyOut.of(e, names) for e in events])


def _visible_sample(s: Session, who: Caller, sample_id: int) -> Sample:
    """The sample if `who` may see its booking (one without a booking: engineers only), else 404."""
    return sample_for(s, who, sample_id)


def _benches_by_serial(settings: ApiSettings) -> dict[tuple[str, str], str]:
    return {(b.dut.model, b.dut.serial): name for name, b in lab_benches(settings).items()}


@router.post("/bookings/{booking_id}/samples", response_model=SampleOut, status_code=status.HTTP_201_CREATED,
             summary="Record the receipt of a sample for a booking (lab engineers)",
             responses=errors(403, 404, *BODY, why={
                 409: "The booking is closed, or the sample is with another open booking",
                 422: "Invalid body, or a serial the lab's inventory lists as another model"}))
def receive(booking_id: IdPath, body: SampleReceipt, who: Engineer, svc: ServicesDep) -> SampleOut:
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
        model = booking.product.model
        firmware = body.firmware or booking.firmware_version
    bench = _bench_of(svc.settings, model=model, serial=body.serial)
    try:
        with unit(svc.store) as s:
            sample = store.receive_sample(s, booking_id=booking_id, model=model, serial=body.serial,
                                          received_on=body.received_on or today(), condition=body.condition,
                                          firmware=firmware, by_user=who.id)
            return _out(s, sample, bench)
    except BookingConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.get("/bookings/{booking_id}/samples", response_model=list[SampleOut], responses=errors(404, 422),
            summary="A booking's samples with their chain of custody")
def booking_samples(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> list[SampleOut]:
    benches = _benches_by_serial(svc.settings)
    with reading(svc.store) as s:
        booking_for(s, who, booking_id)
        return [_out(s, sample, benches.get((sample.model, sample.serial)))
                for sample in store.booking_samples(s, booking_id=booking_id)]


@router.get("/samples/{sample_id}", response_model=SampleOut, responses=errors(404, 422), summary="One sample with its chain of custody")
def get_sample(sample_id: IdPath, who: AnyRole, svc: ServicesDep) -> SampleOut:
    benches = _benches_by_serial(svc.settings)
    with reading(svc.store) as s:
        sample = _visible_sample(s, who, sample_id)
        return _out(s, sample, benches.get((sample.model, sample.serial)))


@router.post("/samples/{sample_id}/custody", response_model=CustodyOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, 422),
             summary="Append a chain-of-custody event: on-bench, tested, returned, note (lab engineers)")
def add_custody(sample_id: IdPath, body: CustodyCreate, who: Engineer, svc: ServicesDep) -> CustodyOut:
    with unit(svc.store) as s:
        _visible_sample(s, who, sample_id)
        event = store.add_custody(s, sample_id=sample_id, kind=body.kind, note=body.note, by_user=who.id)
        return CustodyOut.of(event, {who.id: who.name})
