"""Bookings: a manufacturer asks for a test of one product's firmware; the lab accepts it onto a day.

The logic (ICS/IXIT validation by the command line's preflight, slots, states) is
`lab.actions.bookings`, shared with the web pages; a bad ICS answers 422 with the field path inside
the document (`loc: ["body", "ics", "provisions", "5.1-1", "support"]`).

Status: requested -> accepted (engineer, onto a slot) | rejected (engineer) | cancelled (its
manufacturer); an accepted booking can still be rejected or cancelled, which frees its slot.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import PlainTextResponse, Response

from lab.actions import bookings as actions
from lab.api.deps import AnyRole, Engineer, Manufacturer, ServicesDep
from lab.api.schemas.bookings import (
    IdPath,
    AcceptBody,
    BookingCreate,
    BookingOut,
    BookingStatus,
    CancelBody,
    RejectBody,
)
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors

router = APIRouter(prefix="/bookings", tags=["bookings"], responses=errors(*AUTHENTICATED))
CHANGES = errors(403, 404, 409, *BODY, 422, why={409: "The booking's status does not allow this (or no slot is left)"})


@router.post("", response_model=BookingOut, status_code=status.HTTP_201_CREATED,
             summary="Ask for a test of a product's firmware (manufacturers)",
             responses=errors(403, *BODY, why={404: "No such product in your organisation",
                                             422: "Invalid body, ICS or IXIT: `loc` names the field inside it"}))
def create_booking(body: BookingCreate, who: Manufacturer, svc: ServicesDep) -> BookingOut:
    request = actions.BookingRequest(product_id=body.product_id, firmware_version=body.firmware_version,
                                     edition=body.edition, suites=tuple(body.suites), ics=body.ics, ixit=body.ixit,
                                     preferred_from=body.preferred_from, preferred_to=body.preferred_to)
    return BookingOut.of(actions.request_booking(svc, who, request))


@router.get("", response_model=list[BookingOut], responses=errors(422),
            summary="The bookings you may see, oldest first (no ICS/IXIT)")
def list_bookings(who: AnyRole, svc: ServicesDep,
                  status_: Annotated[BookingStatus | None, Query(alias="status")] = None) -> list[BookingOut]:
    return [BookingOut.of(b) for b in actions.list_bookings(svc, who, status=status_)]


@router.get("/{booking_id}", response_model=BookingOut, responses=errors(404, 422),
            summary="One booking: status, slot, run (the ICS and IXIT at /ics and /ixit)")
async def get_booking(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> BookingOut:
    # the booking is what clients poll (one primary-key read: cheaper inline than a thread-pool hop);
    # its documents (tens of kB) are fetched once, on their own
    return BookingOut.of(actions.get_booking(svc, who, booking_id))


@router.get("/{booking_id}/ics", response_class=Response,
            responses={**download("application/yaml", "The ICS as uploaded", yaml=True), **errors(404, 422)},
            summary="The ICS the booking was made with, as uploaded (YAML)")
def get_ics(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(actions.booking_document(svc, who, booking_id, "ics"), media_type="application/yaml")


@router.get("/{booking_id}/ixit", response_class=Response,
            responses={**download("application/yaml", "The IXIT as uploaded", yaml=True), **errors(404, 422)},
            summary="The IXIT the booking was made with, as uploaded (YAML)")
def get_ixit(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(actions.booking_document(svc, who, booking_id, "ixit"), media_type="application/yaml")


@router.post("/{booking_id}/accept", response_model=BookingOut, responses={**CHANGES, **errors(503)},
             summary="Accept a requested booking onto a day with a free bench (lab engineers)")
def accept(booking_id: IdPath, who: Engineer, svc: ServicesDep, body: AcceptBody | None = None) -> BookingOut:
    return BookingOut.of(actions.accept_booking(svc, who, booking_id, body.day if body else None))


@router.post("/{booking_id}/reject", response_model=BookingOut, responses=CHANGES,
             summary="Refuse a booking, saying why (lab engineers); frees its slot")
def reject(booking_id: IdPath, body: RejectBody, who: Engineer, svc: ServicesDep) -> BookingOut:
    return BookingOut.of(actions.reject_booking(svc, who, booking_id, body.reason))


@router.post("/{booking_id}/cancel", response_model=BookingOut, responses=CHANGES,
             summary="Withdraw your booking (manufacturers); frees its slot")
def cancel(booking_id: IdPath, who: Manufacturer, svc: ServicesDep, body: CancelBody | None = None) -> BookingOut:
    return BookingOut.of(actions.cancel_booking(svc, who, booking_id, body.reason if body else None))
