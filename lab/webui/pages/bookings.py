"""Products and bookings pages: a manufacturer's products and booking requests (ICS and IXIT upload,
errors at the field they concern), an engineer's bookings inbox (accept onto a free day, reject,
with the reason), a booking's page with its timeline and the sections of samples, firmware,
assessments, runs and reports (each from its owner's `booking_*` action, shown by its partial
`bookings/_<section>.html` as `panel`).

Every rule (role, tenancy, validation, state) is in `lab.actions.{products,bookings,slots}`; a form
in error is shown again with the message at its field.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from lab.actions import assessments, firmware, reports, runs, samples
from lab.actions import bookings as actions
from lab.actions import products as product_actions
from lab.actions import slots as slot_actions
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Invalid
from lab.store.models import BOOKING_STATES
from lab.webui.deps import ManufacturerView, SvcDep, Viewer
from lab.webui.render import page, see_other

router = APIRouter(include_in_schema=False)

MAX_PRODUCTS = 500  # a product list longer than this is not a page anyone reads
ACCEPT_YAML = ".yaml,.yml,application/yaml,text/yaml,text/plain"
BookingId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # ids are 32-bit on PostgreSQL


def field_errors(exc: Invalid) -> dict[str, str]:
    """field -> message: the form field is the first name after "body" (`["body", "ics", "provisions", ...]`
    is the ICS file input), so an error inside an uploaded document shows at that document's input."""
    names = [str(p) for p in exc.loc if not isinstance(p, int)]
    if len(names) >= 2 and names[0] in ("body", "query", "path"):
        return {names[1]: exc.msg}
    return {exc.field: exc.msg}


# --- products -------------------------------------------------------------------------------

@router.get("/products")
def products_page(request: Request, svc: SvcDep, who: ManufacturerView) -> HTMLResponse:
    rows = product_actions.list_products(svc, who, limit=MAX_PRODUCTS)
    return page(request, "products/list.html", products=rows)


def _new_product(request: Request, *, status: int = 200, errors: dict[str, str] | None = None,
                 values: dict[str, str] | None = None) -> HTMLResponse:
    return page(request, "products/new.html", status=status, errors=errors or {}, values=values or {})


@router.get("/products/new")
def new_product_form(request: Request, who: ManufacturerView) -> HTMLResponse:
    return _new_product(request)


@router.post("/products/new")
def add_product(request: Request, svc: SvcDep, who: ManufacturerView, model: Annotated[str, Form()] = "",
                name: Annotated[str, Form()] = "", vendor: Annotated[str, Form()] = "") -> Response:
    values = {"model": model, "name": name, "vendor": vendor}
    try:
        product = product_actions.add_product(svc, who, model=model, name=name, vendor=vendor)
    except Invalid as exc:
        return _new_product(request, status=422, errors=field_errors(exc), values=values)
    except Conflict as exc:
        return _new_product(request, status=409, errors={"model": str(exc)}, values=values)
    return see_other(request, "/products",
                     f"Product {product.model} added. Next: book a test of it with its ICS and IXIT.")


# --- bookings list --------------------------------------------------------------------------

@router.get("/bookings")
def bookings_page(request: Request, svc: SvcDep, who: Viewer, status: str | None = None,
                  page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    listing = actions.booking_page(svc, who, status=status or None, page=page_no)
    return page(request, "bookings/list.html", listing=listing, states=BOOKING_STATES)


# --- a new booking --------------------------------------------------------------------------

def _new_booking(request: Request, svc: Services, who: Caller, *, status: int = 200,
                 errors: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> HTMLResponse:
    products = product_actions.list_products(svc, who, limit=MAX_PRODUCTS)
    return page(request, "bookings/new.html", status=status, errors=errors or {}, values=values or {},
                products=products, product_options=[(p.id, f"{p.model} ({p.name})") for p in products],
                suites=actions.SUITES, editions=actions.EDITIONS, accept=ACCEPT_YAML)


@router.get("/bookings/new")
def new_booking_form(request: Request, svc: SvcDep, who: ManufacturerView,
                     product: Annotated[int | None, Query(ge=1)] = None) -> HTMLResponse:
    return _new_booking(request, svc, who, values={"product_id": product, "edition": "v2", "suites": ["en303645"]})


def _day(value: str, name: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(["body", name], f"{name}: {value!r} is not a day; give it as YYYY-MM-DD") from None


def _product_id(value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 2**31 - 1:
        raise Invalid(["body", "product_id"], "product_id: choose one of your products (or add it first)")
    return int(value)


async def _upload(name: str, upload: UploadFile | None) -> tuple[str, str]:
    """(file name, text) of an uploaded ICS/IXIT, read up to one byte past the limit."""
    if upload is None or not upload.filename:
        raise Invalid(["body", name], f"{name}: choose the {name.upper()} YAML file to upload")
    data = await upload.read(actions.MAX_DOCUMENT + 1)
    return upload.filename, actions.document_text(name, upload.filename, data)


def _named(exc: Invalid, names: dict[str, str]) -> Invalid:
    """The error with the uploaded file's name in front, when it is about a document."""
    field = next((str(p) for p in exc.loc[1:2]), "")
    shown = names.get(field)
    if shown and shown not in exc.msg:
        return Invalid(exc.loc, f"{shown}: {exc.msg}", exc.kind)
    return exc


@router.post("/bookings/new")
async def request_booking(request: Request, svc: SvcDep, who: ManufacturerView,
                          product_id: Annotated[str, Form()] = "", firmware_version: Annotated[str, Form()] = "",
                          edition: Annotated[str, Form()] = "v2", suites: Annotated[list[str], Form()] = [],  # noqa: B006
                          preferred_from: Annotated[str, Form()] = "", preferred_to: Annotated[str, Form()] = "",
                          ics: Annotated[UploadFile | None, File()] = None,
                          ixit: Annotated[UploadFile | None, File()] = None) -> Response:
    values = {"product_id": product_id, "firmware_version": firmware_version, "edition": edition,
              "suites": suites, "preferred_from": preferred_from, "preferred_to": preferred_to}
    names: dict[str, str] = {}
    try:
        pid = _product_id(product_id)
        first, last = _day(preferred_from, "preferred_from"), _day(preferred_to, "preferred_to")
        names["ics"], ics_text = await _upload("ics", ics)
        names["ixit"], ixit_text = await _upload("ixit", ixit)
        req = actions.BookingRequest(product_id=pid, firmware_version=firmware_version, edition=edition,
                                     suites=tuple(suites), ics=ics_text, ixit=ixit_text, preferred_from=first,
                                     preferred_to=last, ics_name=names["ics"], ixit_name=names["ixit"])
        booking = await run_in_threadpool(actions.request_booking, svc, who, req)
    except Invalid as exc:
        return _new_booking(request, svc, who, status=422, errors=field_errors(_named(exc, names)), values=values)
    return see_other(request, f"/bookings/{booking.id}",
                     f"Booking {booking.id} requested. The lab will accept it onto a test day; "
                     "upload the firmware image here meanwhile.")


# --- one booking ----------------------------------------------------------------------------

def _sections(svc: Services, who: Caller, booking_id: int) -> dict[str, Any]:
    """Each section's context (`panel` in its partial bookings/_<name>.html) from its owner's action."""
    return {"samples": samples.booking_samples(svc, who, booking_id),
            "firmware": firmware.booking_firmware(svc, who, booking_id),
            "assessments": assessments.booking_assessments(svc, who, booking_id),
            "runs": runs.booking_runs(svc, who, booking_id),
            "reports": reports.booking_reports(svc, who, booking_id)}


def day_options(slots: list[slot_actions.SlotDay], *, window: bool) -> list[tuple[str, str]]:
    """The slot picker's choices: each day with its free benches, after the default (the first day of the
    preferred window with a free bench) when the booking has a window."""
    default = [("", "The first day of the preferred window with a free bench")] if window else []
    return default + [
        (s.day.isoformat(), f"{s.day.isoformat()} ({s.day:%a}): "
                            + (f"{s.free} of {s.capacity} benches free" if s.free else "full")) for s in slots]


def _booking_page(request: Request, svc: Services, who: Caller, booking_id: int, *, status: int = 200,
                  errors: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> HTMLResponse:
    booking = actions.get_booking(svc, who, booking_id)
    slots: list[slot_actions.SlotDay] = []
    errors = dict(errors or {})
    if who.is_engineer and booking.status == "requested":
        try:
            slots = slot_actions.booking_slots(svc, who, booking_id)
        except Invalid as exc:
            errors.setdefault("day", exc.msg)
    return page(request, "bookings/detail.html", status=status, booking=booking,
                steps=actions.timeline(svc, who, booking_id), day_options=day_options(
                    slots, window=bool(booking.preferred_from or booking.preferred_to)), errors=errors, values=values or {},
                sections=_sections(svc, who, booking_id), next_step=actions.next_step(who, booking.status),
                can_decide=who.is_engineer and booking.status in ("requested", "accepted"),
                can_cancel=who.role == "manufacturer" and booking.status in ("requested", "accepted"))


@router.get("/bookings/{booking_id}")
def booking_page(request: Request, svc: SvcDep, who: Viewer, booking_id: BookingId) -> HTMLResponse:
    return _booking_page(request, svc, who, booking_id)


@router.get("/bookings/{booking_id}/{document}.yaml")
def booking_document(svc: SvcDep, who: Viewer, booking_id: BookingId, document: str) -> Response:
    text = actions.booking_document(svc, who, booking_id, document)
    return PlainTextResponse(text, media_type="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="booking-{booking_id}-{document}.yaml"'})


@router.post("/bookings/{booking_id}/accept")
def accept(request: Request, svc: SvcDep, who: Viewer, booking_id: BookingId,
           day: Annotated[str, Form()] = "") -> Response:
    try:
        booking = actions.accept_booking(svc, who, booking_id, _day(day, "day"))
    except Invalid as exc:
        return _booking_page(request, svc, who, booking_id, status=422, errors=field_errors(exc), values={"day": day})
    except Conflict as exc:  # most often: that day filled up meanwhile; pick another where the day is picked
        if actions.get_booking(svc, who, booking_id).status != "requested":
            raise  # no longer to accept at all: the error page says why
        return _booking_page(request, svc, who, booking_id, status=409, errors={"day": str(exc)}, values={"day": day})
    return see_other(request, f"/bookings/{booking_id}",
                     f"Booking {booking_id} accepted for {booking.slot.day if booking.slot else 'its test day'}. "
                     "Next: record the sample when it arrives.")


@router.post("/bookings/{booking_id}/reject")
def reject(request: Request, svc: SvcDep, who: Viewer, booking_id: BookingId,
           reason: Annotated[str, Form()] = "") -> Response:
    try:
        actions.reject_booking(svc, who, booking_id, reason)
    except Invalid as exc:
        return _booking_page(request, svc, who, booking_id, status=422, errors=field_errors(exc),
                             values={"reason": reason})
    return see_other(request, f"/bookings/{booking_id}", f"Booking {booking_id} rejected; the manufacturer sees why.")


@router.post("/bookings/{booking_id}/cancel")
def cancel(request: Request, svc: SvcDep, who: Viewer, booking_id: BookingId,
           reason: Annotated[str, Form()] = "") -> Response:
    try:
        actions.cancel_booking(svc, who, booking_id, reason)
    except Invalid as exc:
        return _booking_page(request, svc, who, booking_id, status=422, errors=field_errors(exc),
                             values={"reason": reason})
    return see_other(request, f"/bookings/{booking_id}", f"Booking {booking_id} cancelled; its test day is freed.")
