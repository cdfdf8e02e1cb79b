"""Who sees what: a manufacturer its own organisation's objects, an engineer everything, a
certifier the bookings whose report was released to its organisation.

Anything else answers 404, never 403: another tenant's ids must not even be confirmed to exist,
not even by the time the answer takes. So every lookup here is one query already narrowed to
what the caller sees, which finds nothing for another tenant's id just as for a missing one;
never "fetch the row, then compare its owner" (one query more when the row exists).
"""

from __future__ import annotations

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session, defer

from lab.actions.context import Caller
from lab.actions.errors import NotFound
from lab.store.models import Booking, Firmware, Product, ReportRelease, Sample


def not_found(what: str, ident: object) -> NotFound:
    return NotFound(what, ident)


def visible_bookings(who: Caller) -> Select:
    """SELECT of the bookings `who` may see."""
    query = select(Booking)
    if who.role == "manufacturer":
        return query.where(Booking.org_id == who.org_id)
    if who.role == "certifier":
        released = exists().where(ReportRelease.booking_id == Booking.id, ReportRelease.org_id == who.org_id)
        return query.where(released)
    return query


def visible_booking_ids(who: Caller) -> Select:
    """SELECT of the ids of the bookings `who` may see (for `X.booking_id IN (...)`)."""
    return visible_bookings(who).with_only_columns(Booking.id)


WITHOUT_DOCUMENTS = (defer(Booking.ics), defer(Booking.ixit))
"""Query options for a booking read that never touches its ICS and IXIT (tens of kB each)."""


def booking_for(session: Session, who: Caller, booking_id: int, *, documents: bool = True) -> Booking:
    """The booking if `who` may see it, else 404; without `documents`, its ICS and IXIT stay unloaded."""
    query = visible_bookings(who).where(Booking.id == booking_id)
    booking = session.scalars(query if documents else query.options(*WITHOUT_DOCUMENTS)).first()
    if booking is None:
        raise not_found("booking", booking_id)
    return booking


def product_for(session: Session, who: Caller, product_id: int) -> Product:
    """A product of the caller's organisation (any, for an engineer), else 404."""
    query = select(Product).where(Product.id == product_id)
    if who.role != "engineer":
        query = query.where(Product.org_id == who.org_id)
    product = session.scalars(query).first()
    if product is None:
        raise not_found("product", product_id)
    return product


def firmware_for(session: Session, who: Caller, firmware_id: int) -> Firmware:
    """A firmware record of a booking `who` may see, else 404: one query whether it is missing or another's."""
    query = select(Firmware).where(Firmware.id == firmware_id, Firmware.booking_id.in_(visible_booking_ids(who)))
    row = session.scalars(query).first()
    if row is None:
        raise not_found("firmware", firmware_id)
    return row


def sample_for(session: Session, who: Caller, sample_id: int) -> Sample:
    """A sample of a booking `who` may see (one without a booking: engineers only), else 404; one query."""
    query = select(Sample).where(Sample.id == sample_id)
    if not who.is_engineer:  # an engineer sees every booking, and samples without one
        query = query.where(Sample.booking_id.in_(visible_booking_ids(who)))
    row = session.scalars(query).first()
    if row is None:
        raise not_found("sample", sample_id)
    return row


def run_booking_for(session: Session, who: Caller, run_id: str, booking_id: int | None) -> Booking:
    """The booking a run tested, if `who` may see it, else 404: the booking whose current run it is, which
    released its report, or (an earlier run, known only from its run directory) `booking_id`. One query."""
    released = select(ReportRelease.booking_id).where(ReportRelease.run_id == run_id)
    which = or_(Booking.run_id == run_id, Booking.id.in_(released))
    if booking_id is not None:
        which = or_(which, Booking.id == booking_id)
    booking = session.scalars(visible_bookings(who).where(which).options(*WITHOUT_DOCUMENTS)
                              .order_by((Booking.run_id == run_id).desc(), Booking.id.desc())).first()
    if booking is None:
        raise not_found("run", run_id)
    return booking
