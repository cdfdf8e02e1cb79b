"""Samples: the physical units a manufacturer sends with a booking, and their chain of custody.

An engineer records the receipt (serial, day, condition: ISO/IEC 17025 7.4) and then every
hand-over (on a bench, tested, returned); custody events are append-only. A manufacturer sees
the samples of its own bookings, a certifier those of bookings released to it. The API and the
booking page both call these actions, so the rules are one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, Unavailable
from lab.actions.slots import lab_benches
from lab.actions.tenancy import booking_for, sample_for
from lab.store import bookings as store
from lab.store.bookings import CUSTODY_KINDS, FIRST_DAY, LAST_DAY, OPEN_STATES, BookingConflict
from lab.store.models import CustodyEvent, Sample, User, utcnow
from lab.store.unit import reading, unit

# the API's pydantic schemas (lab/api/schemas/bookings.py) say the same; a page's form is checked here
SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$")
MAX_CONDITION = 500
MAX_NOTE = 2000
CUSTODY_HELP = {
    "received": "received from the manufacturer",
    "on-bench": "put on a test bench",
    "tested": "testing finished",
    "returned": "returned to the manufacturer",
    "note": "a note (stored, sealed, damaged...)",
}


@dataclass(frozen=True)
class Custody:
    """One custody event with the name of the engineer who recorded it."""

    id: int
    kind: str
    note: str
    by: str | None
    at: datetime


@dataclass(frozen=True)
class SampleView:
    """A sample, the inventory bench holding it (if the lab lists it) and its chain of custody, oldest first."""

    sample: Sample
    bench: str | None
    custody: list[Custody]

    @property
    def received_on(self) -> date | None:
        return self.sample.received_at.date() if self.sample.received_at else None


@dataclass(frozen=True)
class SamplesPanel:
    """What the booking page's samples section shows: the samples, and whether this caller may add to them."""

    booking_id: int
    model: str
    firmware_version: str
    samples: list[SampleView]
    can_receive: bool  # an engineer, and the booking is open for samples
    can_record: bool  # an engineer: may append custody events
    closed: str | None  # why no sample can be received now (booking closed), for the engineer
    kind_options: list[tuple[str, str]]  # the custody form's choices ("received" is the receipt form's)


def custody_options() -> list[tuple[str, str]]:
    """(kind, what it means) for a custody form: every kind but "received", which the receipt records."""
    return [(kind, f"{kind}: {CUSTODY_HELP[kind]}") for kind in CUSTODY_KINDS if kind != "received"]


def _engineer(who: Caller, what: str) -> None:
    if not who.is_engineer:
        raise Forbidden(f"only a lab engineer may {what}")


def parse_day(text: str, field: str) -> date | None:
    """A form's day (YYYY-MM-DD) or None when empty; Invalid naming the field otherwise."""
    text = text.strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Invalid(["body", field], f"{field} {text[:40]!r}: give a day as YYYY-MM-DD, e.g. 2026-05-04") from None
    return day


def _check_receipt(serial: str, received_on: date | None, condition: str, firmware: str | None) -> None:
    if not SERIAL.fullmatch(serial):
        raise Invalid(["body", "serial"], f"serial {serial[:80]!r}: give the serial as on the sample's label "
                                          f"(letters, digits, '_', '.', ':', '/', '-'; up to 128 characters)")
    if received_on is not None and not FIRST_DAY <= received_on <= LAST_DAY:
        raise Invalid(["body", "received_on"], f"received_on {received_on}: give a day from {FIRST_DAY} to {LAST_DAY}")
    if not condition:
        raise Invalid(["body", "condition"], "condition: describe the sample as it arrived "
                                             "(e.g. new, sealed retail box; label intact)")
    if len(condition) > MAX_CONDITION:
        raise Invalid(["body", "condition"], f"condition: at most {MAX_CONDITION} characters; shorten it")
    if firmware is not None and not VERSION.fullmatch(firmware):
        raise Invalid(["body", "firmware"], f"firmware {firmware[:80]!r}: give the version on the sample "
                                            f"(letters, digits, '.', '_', '+', '~', '-'), or leave it empty for "
                                            f"the booking's")


def _bench_of(svc: Services, *, model: str, serial: str) -> str | None:
    """The inventory bench holding this sample; Invalid if the inventory knows the serial as another model."""
    for name, bench in lab_benches(svc.settings, svc.inventories).items():
        if bench.dut.serial == serial:
            if bench.dut.model != model:
                raise Invalid(["body", "serial"], f"serial {serial!r} is a {bench.dut.model} on bench {name} in the "
                                                  f"lab inventory, but the booking is for {model}; check the label")
            return name
    return None


def _benches_by_serial(svc: Services) -> dict[tuple[str, str], str]:
    return {(b.dut.model, b.dut.serial): name for name, b in lab_benches(svc.settings, svc.inventories).items()}


def _views(s: Session, samples: list[Sample], benches: dict[tuple[str, str], str]) -> list[SampleView]:
    """The samples with their custody: two queries for any number of samples (never one per sample)."""
    if not samples:
        return []
    ids = [sample.id for sample in samples]
    rows = s.execute(select(CustodyEvent, User.name).outerjoin(User, User.id == CustodyEvent.by_user)
                     .where(CustodyEvent.sample_id.in_(ids)).order_by(CustodyEvent.id)).all()
    events: dict[int, list[Custody]] = {i: [] for i in ids}
    for event, name in rows:
        events[event.sample_id].append(Custody(id=event.id, kind=event.kind, note=event.note,
                                               by=name if event.by_user else None, at=event.at))
    return [SampleView(sample, benches.get((sample.model, sample.serial)), events[sample.id]) for sample in samples]


def receive_sample(svc: Services, who: Caller, booking_id: int, *, serial: str, condition: str,
                   received_on: date | None = None, firmware: str | None = None) -> SampleView:
    """Record a sample's receipt for a booking (lab engineers); its first custody event is "received"."""
    _engineer(who, "record a sample's receipt")
    serial, condition = serial.strip(), condition.strip()
    firmware = (firmware or "").strip() or None
    _check_receipt(serial, received_on, condition, firmware)
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        model = booking.product.model
        firmware = firmware or booking.firmware_version
    bench = _bench_of(svc, model=model, serial=serial)
    try:
        with unit(svc.store) as s:
            sample = store.receive_sample(s, booking_id=booking_id, model=model, serial=serial,
                                          received_on=received_on or utcnow().date(), condition=condition,
                                          firmware=firmware, by_user=who.id)
            return _views(s, [sample], {(model, serial): bench} if bench else {})[0]
    except BookingConflict as exc:
        raise Conflict(str(exc)) from None


def list_samples(svc: Services, who: Caller, booking_id: int) -> list[SampleView]:
    """A booking's samples with their chain of custody (anyone who sees the booking)."""
    benches = _benches_by_serial(svc)
    with reading(svc.store) as s:
        booking_for(s, who, booking_id, documents=False)
        samples = list(s.scalars(select(Sample).where(Sample.booking_id == booking_id).order_by(Sample.id)))
        return _views(s, samples, benches)


def booking_samples(svc: Services, who: Caller, booking_id: int) -> SamplesPanel:
    """The booking page's samples section (templates/bookings/_samples.html)."""
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        samples = list(s.scalars(select(Sample).where(Sample.booking_id == booking_id).order_by(Sample.id)))
        benches: dict[tuple[str, str], str] = {}
        if samples:  # the inventory is read only when a sample may be on one of its benches
            try:
                benches = _benches_by_serial(svc)
            except Unavailable:  # the page still shows the samples; only which bench holds one is unknown
                pass
        views = _views(s, samples, benches)
        status, model, firmware_version = booking.status, booking.product.model, booking.firmware_version
    closed = None if status in OPEN_STATES else (f"booking {booking_id} is {status}: samples are received only for "
                                                 f"a {', '.join(OPEN_STATES)} booking")
    return SamplesPanel(booking_id=booking_id, model=model, firmware_version=firmware_version, samples=views,
                        can_receive=who.is_engineer and closed is None, can_record=who.is_engineer,
                        closed=closed if who.is_engineer else None, kind_options=custody_options())


def get_sample(svc: Services, who: Caller, sample_id: int) -> SampleView:
    benches = _benches_by_serial(svc)
    with reading(svc.store) as s:
        sample = sample_for(s, who, sample_id)
        return _views(s, [sample], benches)[0]


def add_custody(svc: Services, who: Caller, sample_id: int, *, kind: str, note: str = "") -> Custody:
    """Append a chain-of-custody event (lab engineers): on-bench, tested, returned, note."""
    _engineer(who, "record a custody event")
    note = note.strip()
    if kind not in CUSTODY_KINDS:
        raise Invalid(["body", "kind"], f"kind {kind[:40]!r}: use one of {', '.join(CUSTODY_KINDS)}")
    if len(note) > MAX_NOTE:
        raise Invalid(["body", "note"], f"note: at most {MAX_NOTE} characters; shorten it")
    with unit(svc.store) as s:
        sample_for(s, who, sample_id)
        event = store.add_custody(s, sample_id=sample_id, kind=kind, note=note, by_user=who.id)
        return Custody(id=event.id, kind=event.kind, note=event.note, by=who.name, at=event.at)


def sample_booking(svc: Services, who: Caller, sample_id: int) -> int | None:
    """The booking a sample came with (for a page to return to), if `who` may see the sample."""
    with reading(svc.store) as s:
        return sample_for(s, who, sample_id).booking_id
