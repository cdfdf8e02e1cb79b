"""Bookings: a manufacturer asks for a test of one product's firmware; the lab accepts it onto a day.

The ICS and IXIT are validated on arrival by the command line's preflight of a product
(`lab.preflight.check_product`: schemas, catalogue rules, the ICS's N/A answers against the
IXIT's facts), so a booking the lab accepts can run; a bad one answers 422 with the field path
inside the document (`loc: ["body", "ics", "provisions", "5.1-1", "support"]`).

Status: requested -> accepted (engineer, onto a slot) | rejected (engineer) | cancelled (its
manufacturer); an accepted booking can still be rejected or cancelled, which frees its slot.
"""

from __future__ import annotations

import re
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import PlainTextResponse, Response

from lab.api.deps import AnyRole, Engineer, Manufacturer, ServicesDep
from lab.api.routes.slots import capacities, no_bench
from lab.api.schemas.bookings import (
    IdPath,
    AcceptBody,
    BookingCreate,
    BookingOut,
    BookingStatus,
    CancelBody,
    RejectBody,
    today,
)
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors, invalid
from lab.actions.tenancy import WITHOUT_DOCUMENTS, booking_for, product_for, visible_bookings
from lab.catalog import Catalogs
from lab.errors import CertlabError
from lab.ics import IcsError
from lab.ixit import IxitError
from lab.preflight import check_product
from lab.store import bookings as store
from lab.store.bookings import LAST_DAY, BookingConflict, frozen_inputs, later
from lab.store.models import Booking
from lab.store.unit import reading
from lab.yamlfile import parse_yaml

router = APIRouter(prefix="/bookings", tags=["bookings"], responses=errors(*AUTHENTICATED))
CHANGES = errors(403, 404, 409, *BODY, 422, why={409: "The booking's status does not allow this (or no slot is left)"})
MAX_WINDOW_DAYS = 92  # how far an accept without a day looks for room


# --- ICS and IXIT: the command line's validation, on uploaded text ----------------------------

def _invalid(field: str, parts: list[Any], msg: str) -> HTTPException:
    return invalid(["body", field, *parts], msg)


def _field_parts(path: str, raw: Any) -> list[str | int]:
    """'provisions.5.1-1.support' -> ['provisions', '5.1-1', 'support'], keys matched against the document
    (ids contain dots); '15-Intf[2].port' -> ['15-Intf', 2, 'port']."""
    parts: list[str | int] = []
    node, rest = raw, path
    while rest:
        index = re.match(r"\[(\d+)\]", rest)
        if index:
            i = int(index.group(1))
            parts.append(i)
            node = node[i] if isinstance(node, list) and i < len(node) else None
            rest = rest[index.end():].removeprefix(".")
            continue
        keys = sorted((str(k) for k in node), key=len, reverse=True) if isinstance(node, dict) else []
        key = next((k for k in keys if rest == k or rest.startswith((k + ".", k + "["))), None)
        if key is None:
            key = re.match(r"[^.\[]+", rest).group(0) if re.match(r"[^.\[]+", rest) else rest
        parts.append(key)
        node = {str(k): v for k, v in node.items()}.get(key) if isinstance(node, dict) else None
        rest = rest[len(key):].removeprefix(".")
    return parts


FROZEN = "The booking's run has started or it is closed: its inputs are frozen"


def refuse_frozen(booking: Booking) -> None:
    """409 naming the state once the booking's run has started or it is closed: a run copies its inputs
    (firmware, the assessor's record and evidence) at its start, so a later change would stand beside
    results it did not produce. The store checks again where the write is a row (firmware)."""
    frozen = frozen_inputs(booking.id, booking.status)
    if frozen is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, str(frozen))


def as_422(field: str, exc: CertlabError, path: Path, text: str) -> HTTPException:
    """The loader's one line ("FILE: ics: FIELD.PATH: problem; fix") as a 422 naming the field."""
    line = str(exc)
    line = line.removeprefix(f"{path}: ").replace(str(path), f"the uploaded {field}")
    line = line.replace("use --edition", "book edition")
    if not line.startswith(f"{field}: "):
        return _invalid(field, [], f"{field}: {line}")
    where, _, _problem = line.removeprefix(f"{field}: ").partition(": ")
    where = re.sub(r" \(entry .*\)$", "", where)
    try:
        raw = parse_yaml(text, field, type(exc))
    except CertlabError:
        raw = None
    return _invalid(field, _field_parts(where, raw), line)


def _validated(body: BookingCreate, model: str, catalogs: Catalogs) -> tuple[Any, Any]:
    """The parsed ICS (for the booked edition) and IXIT, checked by the command line's preflight of a
    product (lab.preflight.check_product: each file, the model, the ICS's N/A answers against the IXIT)."""
    with tempfile.TemporaryDirectory(prefix="certlab-upload-") as folder:
        paths = {"ics": Path(folder) / "ics.yaml", "ixit": Path(folder) / "ixit.yaml"}
        texts = {"ics": body.ics, "ixit": body.ixit}
        for field, path in paths.items():
            path.write_text(texts[field], encoding="utf-8")
        try:
            return check_product(model, body.edition, ics_path=paths["ics"], ixit_path=paths["ixit"], catalogs=catalogs,
                                 ixit_name="the uploaded IXIT")
        except (IcsError, IxitError) as exc:
            # a contradiction between the two is reported on the ICS row it is about
            field = "ics" if isinstance(exc, IcsError) else "ixit"
            raise as_422(field, exc, paths[field], texts[field]) from None


def _check_product(field: str, doc: Any, model: str, firmware: str) -> None:
    """The ICS/IXIT must describe the booked product and firmware."""
    if doc.product.model != model:
        raise _invalid(field, ["product", "model"],
                       f"{field}: product.model: {doc.product.model!r}, but the booked product is model {model!r}; "
                       f"upload the {field.upper()} of {model}")
    if doc.product.firmware and str(doc.product.firmware) != firmware:
        raise _invalid(field, ["product", "firmware"],
                       f"{field}: product.firmware: {doc.product.firmware!r}, but the booking is for firmware "
                       f"{firmware!r}; book that firmware or upload the {field.upper()} of {firmware}")


# --- routes ---------------------------------------------------------------------------------

@router.post("", response_model=BookingOut, status_code=status.HTTP_201_CREATED,
             summary="Ask for a test of a product's firmware (manufacturers)",
             responses=errors(403, *BODY, why={404: "No such product in your organisation",
                                             422: "Invalid body, ICS or IXIT: `loc` names the field inside it"}))
def create_booking(body: BookingCreate, who: Manufacturer, svc: ServicesDep) -> BookingOut:
    with reading(svc.store) as s:
        product = product_for(s, who, body.product_id)
        model = product.model
    ics, ixit = _validated(body, model, svc.catalogs)
    _check_product("ics", ics, model, body.firmware_version)
    _check_product("ixit", ixit, model, body.firmware_version)
    row = store.create_booking(svc.store, org_id=who.org_id, product_id=body.product_id, created_by=who.id,
                               firmware_version=body.firmware_version, edition=body.edition, suites=body.suites,
                               ics=body.ics, ixit=body.ixit, preferred_from=body.preferred_from,
                               preferred_to=body.preferred_to)
    return BookingOut.of(row)


@router.get("", response_model=list[BookingOut], responses=errors(422),
            summary="The bookings you may see, oldest first (no ICS/IXIT)")
def list_bookings(who: AnyRole, svc: ServicesDep,
                  status_: Annotated[BookingStatus | None, Query(alias="status")] = None) -> list[BookingOut]:
    seen = visible_bookings(who).options(*WITHOUT_DOCUMENTS)
    return [BookingOut.of(b) for b in store.bookings(svc.store, within=seen, status=status_)]


@router.get("/{booking_id}", response_model=BookingOut, responses=errors(404, 422),
            summary="One booking: status, slot, run (the ICS and IXIT at /ics and /ixit)")
async def get_booking(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> BookingOut:
    # the booking is what clients poll; its documents (tens of kB) are fetched once, on their own
    with reading(svc.store) as s:
        return BookingOut.of(booking_for(s, who, booking_id, documents=False))


def _document(svc: ServicesDep, who: AnyRole, booking_id: int, document: str) -> PlainTextResponse:
    with reading(svc.store) as s:
        return PlainTextResponse(getattr(booking_for(s, who, booking_id), document), media_type="application/yaml")


@router.get("/{booking_id}/ics", response_class=Response,
            responses={**download("application/yaml", "The ICS as uploaded", yaml=True), **errors(404, 422)},
            summary="The ICS the booking was made with, as uploaded (YAML)")
def get_ics(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> PlainTextResponse:
    return _document(svc, who, booking_id, "ics")


@router.get("/{booking_id}/ixit", response_class=Response,
            responses={**download("application/yaml", "The IXIT as uploaded", yaml=True), **errors(404, 422)},
            summary="The IXIT the booking was made with, as uploaded (YAML)")
def get_ixit(booking_id: IdPath, who: AnyRole, svc: ServicesDep) -> PlainTextResponse:
    return _document(svc, who, booking_id, "ixit")


@router.post("/{booking_id}/accept", response_model=BookingOut, responses={**CHANGES, **errors(503)},
             summary="Accept a requested booking onto a day with a free bench (lab engineers)")
def accept(booking_id: IdPath, who: Engineer, svc: ServicesDep, body: AcceptBody | None = None) -> BookingOut:
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
        model = booking.product.model
        window = (booking.preferred_from, booking.preferred_to)
    caps = capacities(svc.settings)
    if not caps.get(model):
        raise no_bench(model, caps, ["path", "booking_id"])
    days = [body.day] if body and body.day else _window(window)
    try:
        row = store.accept_booking(svc.store, booking_id=booking_id, days=days, capacity=caps[model])
    except BookingConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return BookingOut.of(row)


def _window(window: tuple[str | None, str | None]) -> list[date]:
    """The days an accept without a day tries: the preferred window from today on."""
    start, end = (date.fromisoformat(d) if d else None for d in window)
    if start is None and end is None:
        raise _invalid("day", [], "day: the booking has no preferred window; give the test day")
    first = max(start or today(), today())
    if first > LAST_DAY:  # a day stored before days were bounded
        raise HTTPException(status.HTTP_409_CONFLICT, f"the booking's preferred window starts after {LAST_DAY}, "
                            f"the end of the lab's calendar; give the test day")
    last = min(end or LAST_DAY, later(first, MAX_WINDOW_DAYS - 1), LAST_DAY)
    if last < first:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"the booking's preferred window ended on {last}; give the test day")
    return [later(first, i) for i in range((last - first).days + 1)]


@router.post("/{booking_id}/reject", response_model=BookingOut, responses=CHANGES,
             summary="Refuse a booking, saying why (lab engineers); frees its slot")
def reject(booking_id: IdPath, body: RejectBody, who: Engineer, svc: ServicesDep) -> BookingOut:
    with reading(svc.store) as s:
        booking_for(s, who, booking_id)
    try:
        return BookingOut.of(store.reject_booking(svc.store, booking_id=booking_id, reason=body.reason))
    except BookingConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post("/{booking_id}/cancel", response_model=BookingOut, responses=CHANGES,
             summary="Withdraw your booking (manufacturers); frees its slot")
def cancel(booking_id: IdPath, who: Manufacturer, svc: ServicesDep, body: CancelBody | None = None) -> BookingOut:
    with reading(svc.store) as s:
        booking_for(s, who, booking_id)
    try:
        return BookingOut.of(store.cancel_booking(svc.store, booking_id=booking_id,
                                                  reason=body.reason if body else None))
    except BookingConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
