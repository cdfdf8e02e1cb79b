"""Who sees what: a manufacturer its own organisation's objects, an engineer everything, a
certifier the bookings whose report was released to its organisation.

Anything else answers 404, never 403: another tenant's ids must not even be confirmed to exist.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

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


def booking_for(session: Session, who: Caller, booking_id: int) -> Booking:
    """The booking if `who` may see it, else 404."""
    booking = session.scalars(visible_bookings(who).where(Booking.id == booking_id)).first()
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
