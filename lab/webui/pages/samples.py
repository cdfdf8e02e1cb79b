"""Samples on the booking page: the engineer records a sample's receipt (serial, condition, day
received) and each hand-over of its chain of custody; everyone who sees the booking reads them.

The forms sit in the booking page's samples section (templates/bookings/_samples.html); a form in
error comes back on a page of its own (the receipt form, or the sample's page) with the message at
its field, so nothing typed is lost.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from lab.actions import bookings as booking_actions
from lab.actions import samples as actions
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Invalid
from lab.webui.deps import EngineerView, SvcDep, Viewer
from lab.webui.render import page, see_other

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]  # ids are 32-bit on PostgreSQL


def _receipt_page(request: Request, svc: Services, who: Caller, booking_id: int, *, status: int = 200,
                  errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> HTMLResponse:
    booking = booking_actions.get_booking(svc, who, booking_id)
    return page(request, "samples/receive.html", status=status, booking=booking, model=booking.product.model,
                errors=errors or {},
                values=values or {})


@router.get("/bookings/{booking_id}/sample")
def receipt_form(request: Request, svc: SvcDep, who: EngineerView, booking_id: Id) -> HTMLResponse:
    return _receipt_page(request, svc, who, booking_id)


@router.post("/bookings/{booking_id}/sample")
def receive(request: Request, svc: SvcDep, who: Viewer, booking_id: Id,
            serial: Annotated[str, Form()] = "", condition: Annotated[str, Form()] = "",
            received_on: Annotated[str, Form()] = "", firmware: Annotated[str, Form()] = "") -> Response:
    values = {"serial": serial, "condition": condition, "received_on": received_on, "firmware": firmware}
    try:
        view = actions.receive_sample(svc, who, booking_id, serial=serial, condition=condition,
                                      received_on=actions.parse_day(received_on, "received_on"), firmware=firmware)
    except Invalid as exc:
        return _receipt_page(request, svc, who, booking_id, status=422, errors={exc.field: exc.msg}, values=values)
    except Conflict as exc:  # the booking is closed, or this unit is with another open booking
        return _receipt_page(request, svc, who, booking_id, status=409, errors={"serial": str(exc)}, values=values)
    where = f"on bench {view.bench}" if view.bench else "not on a bench of the lab's inventory"
    return see_other(request, f"/bookings/{booking_id}#sample-{view.sample.id}",
                     f"Sample {view.sample.serial} received ({where}). Next: record each hand-over "
                     "(on a bench, tested, returned) in its chain of custody.")


def _sample_page(request: Request, svc: Services, who: Caller, sample_id: int, *, status: int = 200,
                 errors: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> HTMLResponse:
    view = actions.get_sample(svc, who, sample_id)
    return page(request, "samples/sample.html", status=status, view=view, can_record=who.is_engineer,
                kind_options=actions.custody_options(), errors=errors or {}, values=values or {})


@router.get("/samples/{sample_id}")
def sample_page(request: Request, svc: SvcDep, who: Viewer, sample_id: Id) -> HTMLResponse:
    return _sample_page(request, svc, who, sample_id)


@router.post("/samples/{sample_id}/custody")
def add_custody(request: Request, svc: SvcDep, who: Viewer, sample_id: Id,
                kind: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
    try:
        event = actions.add_custody(svc, who, sample_id, kind=kind, note=note)
    except Invalid as exc:
        return _sample_page(request, svc, who, sample_id, status=422, errors={exc.field: exc.msg},
                            values={"kind": kind, "note": note})
    booking_id = actions.sample_booking(svc, who, sample_id)
    back = f"/bookings/{booking_id}#sample-{sample_id}" if booking_id else f"/samples/{sample_id}"
    return see_other(request, back, f"Recorded for the sample: {event.kind}"
                     + (f" ({event.note})." if event.note else "."))
