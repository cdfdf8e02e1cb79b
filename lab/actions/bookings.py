"""Bookings: a manufacturer asks for a test of one product's firmware; the lab accepts it onto a day.

The ICS and IXIT are validated on arrival by the command line's preflight of a product
(`lab.preflight.check_product`: schemas, catalogue rules, the ICS's N/A answers against the
IXIT's facts), so a booking the lab accepts can run; a bad one is Invalid with the field path
inside the document (`loc: ["body", "ics", "provisions", "5.1-1", "support"]`).

Status: requested -> accepted (engineer, onto a slot) | rejected (engineer) | cancelled (its
manufacturer); an accepted booking can still be rejected or cancelled, which frees its slot.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select

from lab import resources
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound
from lab.actions.slots import capacities, no_bench, today
from lab.actions.tenancy import WITHOUT_DOCUMENTS, booking_for, product_for, visible_bookings
from lab.catalog import Catalogs
from lab.errors import CertlabError
from lab.ics import IcsError
from lab.ixit import IxitError
from lab.preflight import check_product
from lab.store import bookings as store
from lab.store.bookings import FIRST_DAY, LAST_DAY, BookingConflict, frozen_inputs, later
from lab.store.models import BOOKING_STATES, Booking, Organisation, ReportRelease, Run, Sample
from lab.store.unit import reading
from lab.yamlfile import parse_yaml

MAX_WINDOW_DAYS = 92  # how far an accept without a day looks for room
SUITES = tuple(resources.NAMED_SUITES)  # the suites a booking may ask for
EDITIONS = ("v2", "v3")
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$"
MAX_DOCUMENT = 1 << 20  # an ICS or IXIT is YAML text of at most 1 MiB
MAX_REASON = 2000
PAGE_SIZE = 50
FROZEN = "The booking's run has started or it is closed: its inputs are frozen"


def _only(who: Caller, *roles: str) -> None:
    if who.role not in roles:
        raise Forbidden(f"a {who.role} may not do this; it takes: {', '.join(roles)}")


# --- ICS and IXIT: the command line's validation, on uploaded text ----------------------------

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


def refuse_frozen(booking: Booking) -> None:
    """Conflict naming the state once the booking's run has started or it is closed: a run copies its inputs
    (firmware, the assessor's record and evidence) at its start, so a later change would stand beside
    results it did not produce. The store checks again where the write is a row (firmware)."""
    frozen = frozen_inputs(booking.id, booking.status)
    if frozen is not None:
        raise Conflict(str(frozen))


def as_422(field: str, exc: CertlabError, path: Path, text: str, *, shown: str | None = None) -> Invalid:
    """The loader's one line ("FILE: ics: FIELD.PATH: problem; fix") as an Invalid naming the field inside the
    document; `shown` names the file as the caller knows it (default "the uploaded <field>")."""
    line = str(exc)
    line = line.removeprefix(f"{path}: ").replace(str(path), shown or f"the uploaded {field}")
    line = line.replace("use --edition", "book edition")
    if not line.startswith(f"{field}: "):
        return Invalid(["body", field], f"{field}: {line}")
    where, _, _problem = line.removeprefix(f"{field}: ").partition(": ")
    where = re.sub(r" \(entry .*\)$", "", where)
    try:
        raw = parse_yaml(text, field, type(exc))
    except CertlabError:
        raw = None
    return Invalid(["body", field, *_field_parts(where, raw)], line)


@dataclass(frozen=True)
class BookingRequest:
    """What a manufacturer asks for; `ics_name`/`ixit_name` are the uploaded files' names, for messages."""

    product_id: int
    firmware_version: str
    ics: str
    ixit: str
    edition: str = "v2"
    suites: Sequence[str] = ("en303645",)
    preferred_from: date | None = None
    preferred_to: date | None = None
    ics_name: str | None = None
    ixit_name: str | None = None


def document_text(field_name: str, filename: str, data: bytes) -> str:
    """An uploaded ICS or IXIT file as text; Invalid at its field unless it is UTF-8 YAML of at most 1 MiB."""
    label = field_name.upper()
    if not data.strip():
        raise Invalid(["body", field_name], f"{field_name}: {filename or 'the file'} is empty; upload the "
                                            f"{label} YAML file (as `certlab` reads it)")
    if len(data) > MAX_DOCUMENT:
        raise Invalid(["body", field_name], f"{field_name}: {filename} is {len(data)} bytes, over 1 MiB; upload "
                                            f"the {label} YAML file itself")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(["body", field_name], f"{field_name}: {filename} is not UTF-8 text; upload the {label} "
                                            "YAML file (not a PDF or spreadsheet)") from None


def _check_day(day: date | None, loc_field: str, *, not_before: date | None = None,
               before_what: str = "") -> None:
    if day is None:
        return
    if not FIRST_DAY <= day <= LAST_DAY:
        raise Invalid(["body", loc_field], f"{loc_field}: {day} is outside the lab's calendar; give a day from "
                                           f"{FIRST_DAY} to {LAST_DAY}")
    if day < today():
        raise Invalid(["body", loc_field], f"{day} is in the past; give {today()} or later")
    if not_before is not None and day < not_before:
        raise Invalid(["body", loc_field], f"{day} is before {before_what} {not_before}; give a day on or after it")


def _check_request(req: BookingRequest) -> None:
    """The fields the API's schema checks too, so the web form gets the same answer at the same field."""
    if not re.match(VERSION_PATTERN, req.firmware_version.strip()):
        raise Invalid(["body", "firmware_version"], "firmware_version: give the firmware version the samples run, "
                      "e.g. 1.4.0 (letters, digits and . _ + ~ -, at most 64 characters)")
    if req.edition not in EDITIONS:
        raise Invalid(["body", "edition"], f"edition: {req.edition!r} is not an edition; give v2 (EN 303 645 "
                                           "V2.1.1) or v3 (V3.1.3)")
    if not req.suites:
        raise Invalid(["body", "suites"], f"suites: name at least one of {', '.join(SUITES)}")
    for i, suite in enumerate(req.suites):
        if suite not in SUITES:
            raise Invalid(["body", "suites", i], f"suites: {suite!r} is not a suite; use {', '.join(SUITES)}")
    if len(set(req.suites)) != len(req.suites):
        raise Invalid(["body", "suites"], "a suite is named twice; name each once")
    for name in ("ics", "ixit"):
        text = getattr(req, name)
        if not text.strip():
            raise Invalid(["body", name], f"{name}: the {name.upper()} is empty; upload its YAML file")
        if len(text) > MAX_DOCUMENT:
            raise Invalid(["body", name], f"{name}: over 1 MiB; upload the {name.upper()} YAML file itself")
    _check_day(req.preferred_from, "preferred_from")
    _check_day(req.preferred_to, "preferred_to", not_before=req.preferred_from, before_what="preferred_from")


def _validated(req: BookingRequest, model: str, catalogs: Catalogs) -> tuple[Any, Any]:
    """The parsed ICS (for the booked edition) and IXIT, checked by the command line's preflight of a
    product (lab.preflight.check_product: each file, the model, the ICS's N/A answers against the IXIT)."""
    shown = {"ics": req.ics_name, "ixit": req.ixit_name}
    with tempfile.TemporaryDirectory(prefix="certlab-upload-") as folder:
        paths = {"ics": Path(folder) / "ics.yaml", "ixit": Path(folder) / "ixit.yaml"}
        texts = {"ics": req.ics, "ixit": req.ixit}
        for name, path in paths.items():
            path.write_text(texts[name], encoding="utf-8")
        try:
            return check_product(model, req.edition, ics_path=paths["ics"], ixit_path=paths["ixit"], catalogs=catalogs,
                                 ixit_name=req.ixit_name or "the uploaded IXIT")
        except (IcsError, IxitError) as exc:
            # a contradiction between the two is reported on the ICS row it is about
            name = "ics" if isinstance(exc, IcsError) else "ixit"
            raise as_422(name, exc, paths[name], texts[name], shown=shown[name]) from None


def _check_product(name: str, doc: Any, model: str, firmware: str) -> None:
    """The ICS/IXIT must describe the booked product and firmware."""
    if doc.product.model != model:
        raise Invalid(["body", name, "product", "model"],
                      f"{name}: product.model: {doc.product.model!r}, but the booked product is model {model!r}; "
                      f"upload the {name.upper()} of {model}")
    if doc.product.firmware and str(doc.product.firmware) != firmware:
        raise Invalid(["body", name, "product", "firmware"],
                      f"{name}: product.firmware: {doc.product.firmware!r}, but the booking is for firmware "
                      f"{firmware!r}; book that firmware or upload the {name.upper()} of {firmware}")


# --- actions --------------------------------------------------------------------------------

def request_booking(svc: Services, who: Caller, req: BookingRequest) -> Booking:
    """A new booking of a product of the caller's organisation (manufacturers), its ICS and IXIT checked as
    the command line checks them; Invalid names the field (inside the document for the ICS and IXIT)."""
    _only(who, "manufacturer")
    _check_request(req)
    with reading(svc.store) as s:
        model = product_for(s, who, req.product_id).model
    firmware = req.firmware_version.strip()
    ics, ixit = _validated(req, model, svc.catalogs)
    _check_product("ics", ics, model, firmware)
    _check_product("ixit", ixit, model, firmware)
    return store.create_booking(svc.store, org_id=who.org_id, product_id=req.product_id, created_by=who.id,
                                firmware_version=firmware, edition=req.edition, suites=list(req.suites),
                                ics=req.ics, ixit=req.ixit, preferred_from=req.preferred_from,
                                preferred_to=req.preferred_to)


def _state(status: str | None) -> str | None:
    if status is not None and status not in BOOKING_STATES:
        raise Invalid(["query", "status"], f"status: {status!r} is not a booking state; use one of "
                                           f"{', '.join(BOOKING_STATES)}")
    return status


def list_bookings(svc: Services, who: Caller, *, status: str | None = None) -> list[Booking]:
    """Every booking `who` may see, oldest first, without their ICS and IXIT (the API's list)."""
    seen = visible_bookings(who).options(*WITHOUT_DOCUMENTS)
    return store.bookings(svc.store, within=seen, status=_state(status))


@dataclass(frozen=True)
class BookingPage:
    """One page of a bookings list, and how many bookings there are in each state (for the filters)."""

    rows: list[Booking]
    page: int
    pages: int
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    status: str | None = None
    orgs: dict[int, str] = field(default_factory=dict)  # org id -> name, for the page's bookings


def booking_page(svc: Services, who: Caller, *, status: str | None = None, page: int = 1,
                 size: int = PAGE_SIZE) -> BookingPage:
    """One page of the bookings `who` may see: for an engineer the inbox (requested first, oldest first,
    then the others newest first), for the others newest first. Four queries whatever the page, the
    first two answered from indexes (migration 0007)."""
    status = _state(status)
    if page < 1:
        raise Invalid(["query", "page"], f"page: {page} is not a page; pages count from 1")
    ids = visible_bookings(who).with_only_columns(Booking.id)
    if status is not None:
        ids = ids.where(Booking.status == status)
    if who.is_engineer:
        order = (case((Booking.status == "requested", 0), else_=1),
                 case((Booking.status == "requested", Booking.id), else_=-Booking.id))
    else:
        order = (Booking.id.desc(),)
    by_state = visible_bookings(who).with_only_columns(Booking.status, func.count()).group_by(Booking.status)
    with reading(svc.store) as s:
        counts = {state: n for state, n in s.execute(by_state)}
        total = counts.get(status, 0) if status is not None else sum(counts.values())
        pages = max(1, -(-total // size))
        # the page's ids first, from the indexes alone; then those rows by primary key
        page_ids = list(s.scalars(ids.order_by(*order).limit(size).offset((min(page, pages) - 1) * size)))
        found = {b.id: b for b in s.scalars(select(Booking).options(*WITHOUT_DOCUMENTS)
                                             .where(Booking.id.in_(page_ids))).unique()} if page_ids else {}
        rows = [found[i] for i in page_ids if i in found]
        org_ids = {b.org_id for b in rows}
        names = select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
        orgs = {org_id: name for org_id, name in s.execute(names)} if org_ids else {}
    return BookingPage(rows=rows, page=min(page, pages), pages=pages, total=total, counts=counts, status=status,
                       orgs=orgs)


def get_booking(svc: Services, who: Caller, booking_id: int) -> Booking:
    """One booking `who` may see (without its ICS and IXIT), else NotFound."""
    with reading(svc.store) as s:
        return booking_for(s, who, booking_id, documents=False)


def booking_document(svc: Services, who: Caller, booking_id: int, which: str) -> str:
    """The ICS or IXIT the booking was made with, as uploaded."""
    if which not in ("ics", "ixit"):
        raise NotFound("document", which)
    with reading(svc.store) as s:
        return getattr(booking_for(s, who, booking_id), which)


def _window(window: tuple[str | None, str | None]) -> list[date]:
    """The days an accept without a day tries: the preferred window from today on."""
    start, end = (date.fromisoformat(d) if d else None for d in window)
    if start is None and end is None:
        raise Invalid(["body", "day"], "day: the booking has no preferred window; give the test day")
    first = max(start or today(), today())
    if first > LAST_DAY:  # a day stored before days were bounded
        raise Conflict(f"the booking's preferred window starts after {LAST_DAY}, "
                       f"the end of the lab's calendar; give the test day")
    last = min(end or LAST_DAY, later(first, MAX_WINDOW_DAYS - 1), LAST_DAY)
    if last < first:
        raise Conflict(f"the booking's preferred window ended on {last}; give the test day")
    return [later(first, i) for i in range((last - first).days + 1)]


def accept_booking(svc: Services, who: Caller, booking_id: int, day: date | None = None) -> Booking:
    """Accept a requested booking onto `day` (default: the first day of its preferred window with a free
    bench for its model) (lab engineers); Conflict if it is not requested or no slot is left."""
    _only(who, "engineer")
    if day is not None:
        _check_day(day, "day")
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        model = booking.product.model
        window = (booking.preferred_from, booking.preferred_to)
    caps = capacities(svc.settings, svc.inventories)
    if not caps.get(model):
        raise no_bench(model, caps, ["path", "booking_id"])
    days = [day] if day else _window(window)
    try:
        return store.accept_booking(svc.store, booking_id=booking_id, days=days, capacity=caps[model])
    except BookingConflict as exc:
        raise Conflict(str(exc)) from None


def _reason(reason: str | None, *, required: bool) -> str | None:
    text = (reason or "").strip()
    if required and not text:
        raise Invalid(["body", "reason"], "reason: say why the booking is refused (the manufacturer reads it)")
    if len(text) > MAX_REASON:
        raise Invalid(["body", "reason"], f"reason: at most {MAX_REASON} characters; say it shorter")
    return text or None


def reject_booking(svc: Services, who: Caller, booking_id: int, reason: str) -> Booking:
    """Refuse a booking, saying why (lab engineers); frees its slot."""
    _only(who, "engineer")
    text = _reason(reason, required=True)
    with reading(svc.store) as s:
        booking_for(s, who, booking_id, documents=False)
    try:
        return store.reject_booking(svc.store, booking_id=booking_id, reason=text or "")
    except BookingConflict as exc:
        raise Conflict(str(exc)) from None


def cancel_booking(svc: Services, who: Caller, booking_id: int, reason: str | None = None) -> Booking:
    """Withdraw a booking of the caller's organisation (manufacturers); frees its slot."""
    _only(who, "manufacturer")
    text = _reason(reason, required=False)
    with reading(svc.store) as s:
        booking_for(s, who, booking_id, documents=False)
    try:
        return store.cancel_booking(svc.store, booking_id=booking_id, reason=text)
    except BookingConflict as exc:
        raise Conflict(str(exc)) from None


# --- the timeline ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One step of a booking's life: done or not yet, when, and a line about it."""

    key: str  # requested | accepted | sample | testing | released | rejected | cancelled
    label: str
    done: bool
    at: datetime | date | None = None
    detail: str = ""


TESTING = ("running", "tested", "reported")


def timeline(svc: Services, who: Caller, booking_id: int) -> list[Step]:
    """requested -> accepted -> sample received -> testing -> report released, each with its date or not yet,
    from the store (the booking, its samples' receipt, its run, its report's releases); a rejected or
    cancelled booking ends with that step. Four reads whatever the booking's history."""
    with reading(svc.store) as s:
        b = booking_for(s, who, booking_id, documents=False)
        received, samples = s.execute(select(func.min(Sample.received_at), func.count())
                                      .where(Sample.booking_id == b.id)).one()
        run = s.get(Run, b.run_id) if b.run_id else None
        released, orgs = s.execute(select(func.min(ReportRelease.at), func.count())
                                   .where(ReportRelease.booking_id == b.id)).one()
    accepted = b.slot is not None or b.status in TESTING
    steps = [
        Step("requested", "Requested", True, b.created_at,
             f"{b.product.model} firmware {b.firmware_version}, EN 303 645 {b.edition}"),
        Step("accepted", "Accepted", accepted, date.fromisoformat(b.slot.day) if b.slot else None,
             "test day booked" if b.slot else ""),
        Step("sample", "Sample received", samples > 0, received,
             f"{samples} sample{'s' if samples != 1 else ''} received" if samples else ""),
        Step("testing", "Testing", run is not None or b.status in TESTING,
             (run.started_at or run.created_at) if run else None,
             _run_line(run, b.status) if run else ""),
        Step("released", "Report released", orgs > 0, released,
             f"released to {orgs} certification bod{'ies' if orgs != 1 else 'y'}" if orgs else ""),
    ]
    if b.status in ("rejected", "cancelled"):
        steps.append(Step(b.status, b.status.capitalize(), True, b.updated_at, b.note or ""))
    return steps


def _run_line(run: Run, status: str) -> str:
    if status == "running":
        return f"run {run.id} in progress"
    if run.finished_at is not None:
        return f"run {run.id} finished {run.finished_at:%Y-%m-%d %H:%M} UTC"
    return f"run {run.id}"


NEXT_STEP: dict[str, dict[str, str]] = {
    "manufacturer": {
        "requested": "The lab reviews your request and accepts it onto a test day. Meanwhile, upload the firmware "
                     "image below.",
        "accepted": "Send your samples to the lab for the test day, and upload the firmware image if you have not.",
        "running": "The lab is testing your samples.",
        "tested": "Testing is done; the lab is writing and approving the report.",
        "reported": "The report is approved: download it below or under Reports.",
        "rejected": "The lab refused this booking (the reason is above): correct it and book again.",
        "cancelled": "You withdrew this booking; book again when you are ready.",
    },
    "engineer": {
        "requested": "Accept it onto a test day with a free bench, or reject it with the reason.",
        "accepted": "Record the samples when they arrive, then start testing.",
        "running": "Follow the run below.",
        "tested": "Make the report and approve it as a signatory (Reports).",
        "reported": "Release the report to the certification body (Reports).",
        "rejected": "Closed: nothing left to do.",
        "cancelled": "Closed by the manufacturer: nothing left to do.",
    },
    "certifier": {state: "Read the released report and record your review (Reports)." for state in BOOKING_STATES},
}


def next_step(who: Caller, status: str) -> str:
    """What this caller does next with a booking in `status`, in plain words (shown on its page)."""
    return NEXT_STEP.get(who.role, {}).get(status, "")
