"""Who sees what: a manufacturer its own organisation's objects, an engineer everything, a
certifier the bookings whose report was released to its organisation.

Anything else answers 404, never 403: another tenant's ids must not even be confirmed to exist.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, defer

from lab.api.deps import Caller
from lab.store.models import Booking, Product, ReportRelease


def not_found(what: str, ident: object) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {ident}")


def visible_bookings(who: Caller) -> Select:
    """SELECT of the bookings `who` may see."""
    query = select(Booking)
    if who.role == "manufacturer":
        return query.where(Booking.org_id == who.org_id)
    if who.role == "certifier":
        released = exists().where(ReportRelease.booking_id == Booking.id, ReportRelease.org_id == who.org_id)
        return query.where(released)
    return query


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
