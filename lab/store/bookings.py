"""Products, bookings, slots, sample receipt and chain of custody: keyword-only store functions.

Each function takes a `Store` (its own committed transaction) or a `Session` (the caller's
transaction; a raised error must roll it back). Nothing here knows about HTTP: "not there"
returns None, a refused change raises `BookingConflict` (the API answers 409).

Slots are race-free on SQLite and PostgreSQL without reading before writing: the (model, day) row
is made by `INSERT ... ON CONFLICT DO NOTHING`, then taken by one conditional
`UPDATE slots SET reserved = reserved + 1 WHERE id = :id AND reserved < :capacity`; exactly as
many callers as there are free benches see rowcount 1. Booking status changes are conditional
updates too (`WHERE status = <the status read>`), so two engineers accepting one booking cannot
both reserve a slot for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from lab.errors import CertlabError
from lab.store.models import Booking, CustodyEvent, Product, Sample, Slot, utcnow
from lab.store.repo import register_sample
from lab.store.unit import Target, insert_for, reading, unit

CUSTODY_KINDS = ("received", "on-bench", "tested", "returned", "note")
OPEN_STATES = ("requested", "accepted", "running")  # a sample may arrive for these
# A booking's inputs (firmware, the assessor's record and evidence) change only before its run starts: a run
# copies them at its start, so a later change would be in no run, or beside a result it did not produce.
INPUT_STATES = ("requested", "accepted")
# The lab's calendar: booking, slot and receipt days lie in it, so day arithmetic never leaves Python's dates.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "accept": (("requested",), "accepted"),
    "reject": (("requested", "accepted"), "rejected"),
    "cancel": (("requested", "accepted"), "cancelled"),
}


class BookingConflict(CertlabError):
    """The change does not fit the object's current state (duplicate, wrong status, no room)."""


class SlotFull(BookingConflict):
    """Every bench for that model is already reserved on that day."""


class InputsFrozen(BookingConflict):
    """The booking's run has started (or it is closed): its inputs stay as that run used them."""


def frozen_inputs(booking_id: int, status: str) -> InputsFrozen | None:
    """Why the booking's inputs may not change in this status, or None if they may."""
    if status in INPUT_STATES:
        return None
    return InputsFrozen(f"booking {booking_id} is {status}; its inputs (firmware, assessments, evidence) are frozen "
                        f"once testing starts or the booking is closed: only a {' or '.join(INPUT_STATES)} "
                        f"booking takes them")


def hold_inputs(s: Session, *, booking_id: int) -> None:
    """Inside the caller's transaction: InputsFrozen unless the booking still takes inputs, and hold it there.

    One conditional UPDATE (not read-then-write), so a run claimed at the same moment either
    comes after this change is committed or makes it fail; never a change beside a started run.
    """
    done = s.execute(update(Booking).where(Booking.id == booking_id, Booking.status.in_(INPUT_STATES))
                     .values(updated_at=utcnow()).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        status = s.scalars(select(Booking.status).where(Booking.id == booking_id)).first()
        raise frozen_inputs(booking_id, status or "gone") or InputsFrozen(f"booking {booking_id} changed; retry")


def later(day: date, days: int) -> date:
    """`day` plus `days`, stopping at the last date Python has (a stored far-future day must not overflow)."""
    return date.fromordinal(min(day.toordinal() + days, date.max.toordinal()))


# --- products -------------------------------------------------------------------------------

def create_product(target: Target, *, org_id: int, model: str, name: str, vendor: str) -> Product:
    """A new product of an organisation; BookingConflict if it already has that model."""
    with unit(target) as s:
        # RETURNING names the row made (none on a conflict): an ORM-enabled INSERT's rowcount is -1 on psycopg
        made = s.execute(insert_for(s, Product).values(
            org_id=org_id, model=model, name=name, vendor=vendor, created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["org_id", "model"]).returning(Product.id)).first()
        product = s.scalars(select(Product).where(Product.org_id == org_id, Product.model == model)
                            .execution_options(populate_existing=True)).one()
        if made is None:
            raise BookingConflict(f"your organisation already has product model {model!r} (product "
                                  f"{product.id}); use it, or give the new product another model")
        return product


def products(target: Target, *, org_id: int | None = None, ids: Select | None = None,
             product_id: int | None = None) -> list[Product]:
    """Products, oldest first: of one organisation, and/or whose id is in the `ids` subquery."""
    query = select(Product).order_by(Product.id)
    if product_id is not None:
        query = query.where(Product.id == product_id)
    if org_id is not None:
        query = query.where(Product.org_id == org_id)
    if ids is not None:
        query = query.where(Product.id.in_(ids))
    with reading(target) as s:
        return list(s.scalars(query))


def get_product(target: Target, *, product_id: int) -> Product | None:
    with reading(target) as s:
        return s.get(Product, product_id)


# --- bookings -------------------------------------------------------------------------------

def create_booking(target: Target, *, org_id: int, product_id: int, created_by: int, firmware_version: str,
                   edition: str, suites: Iterable[str], ics: str, ixit: str,
                   preferred_from: date | None = None, preferred_to: date | None = None) -> Booking:
    """A booking in status "requested" (the ICS and IXIT are validated by the caller)."""
    with unit(target) as s:
        now = utcnow()
        booking = Booking(org_id=org_id, product_id=product_id, created_by=created_by,
                          firmware_version=firmware_version, edition=edition, suites=list(suites), ics=ics,
                          ixit=ixit, preferred_from=_iso(preferred_from), preferred_to=_iso(preferred_to),
                          status="requested", created_at=now, updated_at=now)
        s.add(booking)
        s.flush()
        s.refresh(booking)
        return booking


def booking_of_lab_run(target: Target, *, run_id: str, org_id: int, product_id: int, created_by: int,
                       firmware_version: str, edition: str, suites: Iterable[str], ics: str, ixit: str,
                       note: str) -> tuple[Booking, bool]:
    """(the booking, whether it was made now) of a run the lab made on a manufacturer's behalf (a
    product record's re-test): made "tested" without a slot the first time, found by its run id
    after, so a caller that stopped half-way and comes again makes no second one."""
    with unit(target) as s:
        found = s.scalars(select(Booking).where(Booking.run_id == run_id).order_by(Booking.id)).first()
        if found is not None:
            return found, False
        now = utcnow()
        booking = Booking(org_id=org_id, product_id=product_id, created_by=created_by,
                          firmware_version=firmware_version[:64], edition=edition[:8], suites=list(suites), ics=ics,
                          ixit=ixit, status="tested", run_id=run_id, note=note, created_at=now, updated_at=now)
        s.add(booking)
        s.flush()
        s.refresh(booking)
        return booking, True


def bookings(target: Target, *, within: Select | None = None, status: str | None = None) -> list[Booking]:
    """Bookings, oldest first; `within` is a SELECT of Booking narrowing them (the caller's view)."""
    query = select(Booking) if within is None else within
    if status is not None:
        query = query.where(Booking.status == status)
    with reading(target) as s:
        return list(s.scalars(query.order_by(Booking.id)).unique())


def get_booking(target: Target, *, booking_id: int) -> Booking | None:
    with reading(target) as s:
        return s.get(Booking, booking_id, populate_existing=True)


def accept_booking(target: Target, *, booking_id: int, days: Iterable[date], capacity: int) -> Booking:
    """Accept a requested booking onto the first of `days` with a free bench for its model.

    SlotFull (and nothing changed) if every day is full; BookingConflict if the booking is no
    longer "requested".
    """
    with unit(target) as s:
        booking = _transition(s, booking_id=booking_id, action="accept")
        tried: list[str] = []
        for day in days:
            tried.append(day.isoformat())
            try:
                slot = reserve_slot(s, model=booking.product.model, day=day, capacity=capacity)
            except SlotFull:
                continue
            s.execute(update(Booking).where(Booking.id == booking_id).values(slot_id=slot.id)
                      .execution_options(synchronize_session=False))
            return _reread(s, booking_id)
        when = tried[0] if len(tried) == 1 else f"any day from {tried[0]} to {tried[-1]}" if tried else "no day"
        raise SlotFull(f"no slot left on {when} for {booking.product.model} ({capacity} bench(es)); "
                       "pick another day (GET /slots shows the free ones)")


def reject_booking(target: Target, *, booking_id: int, reason: str) -> Booking:
    """Refuse a booking (releasing its slot if it had one), saying why."""
    return _close(target, booking_id=booking_id, action="reject", note=reason)


def cancel_booking(target: Target, *, booking_id: int, reason: str | None = None) -> Booking:
    """Withdraw a booking (releasing its slot if it had one)."""
    return _close(target, booking_id=booking_id, action="cancel", note=reason)


def _close(target: Target, *, booking_id: int, action: str, note: str | None) -> Booking:
    with unit(target) as s:
        before = _transition(s, booking_id=booking_id, action=action, note=note)
        if before.slot_id is not None:
            release_slot(s, slot_id=before.slot_id)
        return _reread(s, booking_id)


def _transition(s: Session, *, booking_id: int, action: str, note: str | None = None) -> Booking:
    """Move the booking on by one conditional UPDATE; returns it as it was before."""
    allowed, to = TRANSITIONS[action]
    booking = _reread(s, booking_id)
    if booking is None:
        raise BookingConflict(f"no booking {booking_id}")
    if booking.status not in allowed:
        raise BookingConflict(f"booking {booking_id} is {booking.status}; only a "
                              f"{' or '.join(allowed)} booking can be {to}")
    values: dict[str, Any] = {"status": to, "updated_at": utcnow()}
    if note is not None:
        values["note"] = note
    done = s.execute(update(Booking).where(Booking.id == booking_id, Booking.status == booking.status)
                     .values(**values).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # someone else moved it since we read it
        raise BookingConflict(f"booking {booking_id} changed while it was being {to}; reload it and retry")
    return booking


def _reread(s: Session, booking_id: int) -> Booking:
    return s.execute(select(Booking).where(Booking.id == booking_id)
                     .execution_options(populate_existing=True)).unique().scalar_one_or_none()


# --- slots ----------------------------------------------------------------------------------

def reserve_slot(target: Target, *, model: str, day: date | str, capacity: int) -> Slot:
    """Take one bench for `model` on `day` out of `capacity` (the lab's benches for it); SlotFull if none is left.

    Race-free: get-or-create the row, then one conditional increment checked by its rowcount.
    The stored capacity follows the inventory's at each reservation.
    """
    key = _iso(day)
    with unit(target) as s:
        s.execute(insert_for(s, Slot).values(model=model, day=key, capacity=capacity, reserved=0)
                  .on_conflict_do_nothing(index_elements=["model", "day"]))
        slot_id = s.scalars(select(Slot.id).where(Slot.model == model, Slot.day == key)).one()
        done = s.execute(update(Slot).where(Slot.id == slot_id, Slot.reserved < capacity)
                         .values(reserved=Slot.reserved + 1, capacity=capacity)
                         .execution_options(synchronize_session=False))
        if done.rowcount != 1:
            raise SlotFull(f"no slot left on {key} for {model} ({capacity} bench(es), all reserved)")
        return s.execute(select(Slot).where(Slot.id == slot_id)
                         .execution_options(populate_existing=True)).scalar_one()


def release_slot(target: Target, *, slot_id: int) -> bool:
    """Give one reserved bench back; False if nothing was reserved."""
    with unit(target) as s:
        done = s.execute(update(Slot).where(Slot.id == slot_id, Slot.reserved > 0)
                         .values(reserved=Slot.reserved - 1).execution_options(synchronize_session=False))
        return done.rowcount == 1


def slots(target: Target, *, models: Iterable[str], first: date, last: date) -> list[Slot]:
    """The stored slot rows of these models between two days (inclusive); days never booked have none."""
    with reading(target) as s:
        return list(s.scalars(select(Slot).where(Slot.model.in_(list(models)), Slot.day >= first.isoformat(),
                                                 Slot.day <= last.isoformat()).order_by(Slot.day, Slot.model)))


# --- samples and chain of custody -------------------------------------------------------------

def receive_sample(target: Target, *, booking_id: int, model: str, serial: str, received_on: date,
                   condition: str, firmware: str | None, by_user: int | None, note: str = "") -> Sample:
    """Record a sample's receipt for a booking and its first custody event ("received").

    BookingConflict if the booking is closed, or the sample came with another open booking.
    """
    with unit(target) as s:
        booking = _reread(s, booking_id)
        if booking is None:
            raise BookingConflict(f"no booking {booking_id}")
        if booking.status not in OPEN_STATES:
            raise BookingConflict(f"booking {booking_id} is {booking.status}; samples are received only for a "
                                  f"{', '.join(OPEN_STATES)} booking")
        known = s.scalars(select(Sample).where(Sample.model == model, Sample.serial == serial)).first()
        if known is not None and known.booking_id not in (None, booking_id):
            other = s.get(Booking, known.booking_id)
            if other is not None and other.status in OPEN_STATES:
                raise BookingConflict(f"sample {model} {serial} is with booking {other.id} ({other.status}); "
                                      "record it there, or close that booking first")
        received_at = datetime(received_on.year, received_on.month, received_on.day, tzinfo=timezone.utc)
        sample = register_sample(s, serial=serial, model=model, firmware=firmware, received_at=received_at,
                                 condition=condition)
        sample.booking_id = booking_id
        s.add(CustodyEvent(sample_id=sample.id, booking_id=booking_id, kind="received",
                           note=note or f"received {received_on.isoformat()}: {condition}", by_user=by_user,
                           at=utcnow()))
        s.flush()
        return sample


def add_custody(target: Target, *, sample_id: int, kind: str, note: str = "",
                by_user: int | None = None) -> CustodyEvent:
    """Append one custody event (the table refuses updates and deletes)."""
    if kind not in CUSTODY_KINDS:
        raise CertlabError(f"custody kind {kind!r}: use one of {', '.join(CUSTODY_KINDS)}")
    with unit(target) as s:
        sample = s.get(Sample, sample_id)
        if sample is None:
            raise BookingConflict(f"no sample {sample_id}")
        event = CustodyEvent(sample_id=sample_id, booking_id=sample.booking_id, kind=kind, note=note,
                             by_user=by_user, at=utcnow())
        s.add(event)
        s.flush()
        return event


def custody(target: Target, *, sample_id: int) -> list[CustodyEvent]:
    """A sample's chain of custody, oldest first."""
    with reading(target) as s:
        return list(s.scalars(select(CustodyEvent).where(CustodyEvent.sample_id == sample_id)
                              .order_by(CustodyEvent.id)))


def booking_samples(target: Target, *, booking_id: int) -> list[Sample]:
    with reading(target) as s:
        return list(s.scalars(select(Sample).where(Sample.booking_id == booking_id).order_by(Sample.id)))


def get_sample(target: Target, *, sample_id: int) -> Sample | None:
    with reading(target) as s:
        return s.get(Sample, sample_id)


def _iso(day: date | str | None) -> str | None:
    return day.isoformat() if isinstance(day, date) else day
