"""The products, bookings and slots actions called directly (no HTTP): role, tenancy, validation naming
the field, state, the inbox's order and pages, and the timeline from the store.

Bookings are made in the store (skipping the ~0.3 s ICS/IXIT preflight) except where the preflight is
what is tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from webui import make_app  # noqa: F401 - tests/webui.py

from lab.actions import bookings as actions
from lab.actions import products as product_actions
from lab.actions import slots as slot_actions
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound
from lab.store import bookings as bk
from lab.store.models import ReportRelease, Run, User
from lab.store.unit import reading, unit

ROOT = Path(__file__).resolve().parent.parent
ICS = (ROOT / "inventory" / "products" / "TH-100" / "ics.yaml").read_text(encoding="utf-8")
IXIT = (ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml").read_text(encoding="utf-8")
TODAY = datetime.now(timezone.utc).date()
DAY = TODAY + timedelta(days=10)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    client = make_app(tmp_path)
    services = client.app.state.services  # type: ignore[attr-defined]
    try:
        yield services
    finally:
        services.store.close()


def who(svc: Services, name: str) -> Caller:
    with reading(svc.store) as s:
        user = s.query(User).filter(User.name == name).one()
        return Caller(id=user.id, name=user.name, role=user.role, org_id=user.org_id, org=user.org.name)


def booking(svc: Services, maker: Caller, product_id: int, **window: date) -> int:
    return bk.create_booking(svc.store, org_id=maker.org_id, product_id=product_id, created_by=maker.id,
                             firmware_version="1.4.0", edition="v2", suites=["en303645"], ics=ICS, ixit=IXIT,
                             **window).id


@pytest.fixture
def people(svc: Services) -> dict[str, Caller]:
    return {name: who(svc, name) for name in ("maker", "lab", "cert", "rival")}


def test_products_are_the_manufacturers_and_checked(svc: Services, people: dict[str, Caller]) -> None:
    maker, rival, lab = people["maker"], people["rival"], people["lab"]
    product = product_actions.add_product(svc, maker, model=" TH-100 ", name="Thermostat", vendor="Acme")
    assert product.model == "TH-100"
    with pytest.raises(Conflict, match="already has product model 'TH-100'"):
        product_actions.add_product(svc, maker, model="TH-100", name="x", vendor="y")
    with pytest.raises(Invalid) as bad:
        product_actions.add_product(svc, maker, model="TH 100!", name="x", vendor="y")
    assert bad.value.loc == ["body", "model"]
    with pytest.raises(Invalid) as empty:
        product_actions.add_product(svc, maker, model="TH-2", name="  ", vendor="y")
    assert empty.value.loc == ["body", "name"] and "name" in empty.value.msg
    with pytest.raises(Forbidden):
        product_actions.add_product(svc, lab, model="TH-9", name="x", vendor="y")
    assert [p.id for p in product_actions.list_products(svc, maker)] == [product.id]
    assert product_actions.list_products(svc, rival) == []
    assert [p.id for p in product_actions.list_products(svc, lab)] == [product.id]
    with pytest.raises(NotFound):
        product_actions.get_product(svc, rival, product.id)
    with pytest.raises(NotFound):
        product_actions.get_product(svc, people["cert"], product.id)  # nothing released to it yet


def test_a_booking_request_is_checked_field_by_field(svc: Services, people: dict[str, Caller]) -> None:
    maker = people["maker"]
    pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
    good = actions.BookingRequest(product_id=pid, firmware_version="1.4.0", ics=ICS, ixit=IXIT,
                                  preferred_from=DAY, preferred_to=DAY + timedelta(days=3), ics_name="acme-ics.yaml")
    cases = [
        ({"firmware_version": "1 4"}, ["body", "firmware_version"]),
        ({"edition": "v9"}, ["body", "edition"]),
        ({"suites": ("en303645", "nope")}, ["body", "suites", 1]),
        ({"suites": ()}, ["body", "suites"]),
        ({"ics": "  "}, ["body", "ics"]),
        ({"preferred_from": TODAY - timedelta(days=1)}, ["body", "preferred_from"]),
        ({"preferred_to": DAY - timedelta(days=1)}, ["body", "preferred_to"]),
        ({"ics": ICS.replace('"5.1-1":  {support: Y', '"5.1-1":  {support: maybe', 1)},
         ["body", "ics", "provisions", "5.1-1", "support"]),
        ({"ixit": IXIT.replace("  firmware: 1.4.0", "  firmware: 1.5.0", 1)}, ["body", "ixit", "product", "firmware"]),
    ]
    for change, loc in cases:
        with pytest.raises(Invalid) as bad:
            actions.request_booking(svc, maker, actions.BookingRequest(**{**good.__dict__, **change}))
        assert bad.value.loc == loc, (change, bad.value.loc, bad.value.msg)
    with pytest.raises(NotFound):
        actions.request_booking(svc, people["rival"], good)  # another organisation's product
    with pytest.raises(Forbidden):
        actions.request_booking(svc, people["lab"], good)
    made = actions.request_booking(svc, maker, good)
    assert made.status == "requested" and made.preferred_from == DAY.isoformat()


def test_an_uploaded_document_must_be_utf8_yaml_text() -> None:
    assert actions.document_text("ics", "a.yaml", b"a: 1\n") == "a: 1\n"
    for data, words in ((b"", "empty"), (b"\xff\xfe\x00", "not UTF-8"), (b"x" * (actions.MAX_DOCUMENT + 1), "1 MiB")):
        with pytest.raises(Invalid) as bad:
            actions.document_text("ics", "a.pdf", data)
        assert bad.value.loc == ["body", "ics"] and words in bad.value.msg


def test_accept_reject_cancel_follow_role_tenancy_and_state(svc: Services, people: dict[str, Caller]) -> None:
    maker, lab, rival = people["maker"], people["lab"], people["rival"]
    pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
    first = booking(svc, maker, pid, preferred_from=DAY, preferred_to=DAY + timedelta(days=2))
    second = booking(svc, maker, pid)
    with pytest.raises(Forbidden):
        actions.accept_booking(svc, maker, first)
    with pytest.raises(NotFound):
        actions.accept_booking(svc, lab, 99999)
    accepted = actions.accept_booking(svc, lab, first)
    assert accepted.status == "accepted" and accepted.slot.day == DAY.isoformat()
    with pytest.raises(Conflict, match="only a requested booking"):
        actions.accept_booking(svc, lab, first, DAY)
    with pytest.raises(Invalid) as no_window:
        actions.accept_booking(svc, lab, second)
    assert no_window.value.loc == ["body", "day"]
    with pytest.raises(Invalid) as past:
        actions.accept_booking(svc, lab, second, TODAY - timedelta(days=1))
    assert past.value.loc == ["body", "day"]
    with pytest.raises(Invalid) as why:
        actions.reject_booking(svc, lab, second, "  ")
    assert why.value.loc == ["body", "reason"]
    with pytest.raises(NotFound):
        actions.cancel_booking(svc, rival, first)
    with pytest.raises(Forbidden):
        actions.cancel_booking(svc, lab, first)
    assert actions.cancel_booking(svc, maker, first, "postponed").status == "cancelled"
    free = slot_actions.free_slots(svc, lab, model="TH-100", first=DAY, last=DAY)
    assert [(d.reserved, d.free) for d in free] == [(0, 4)]  # the slot was given back
    with pytest.raises(Conflict):
        actions.cancel_booking(svc, maker, first)
    assert actions.reject_booking(svc, lab, second, "no samples sent").note == "no samples sent"


def test_slots_for_a_booking_cover_its_window_and_name_a_missing_bench(svc: Services,
                                                                      people: dict[str, Caller]) -> None:
    maker, lab = people["maker"], people["lab"]
    pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
    windowed = booking(svc, maker, pid, preferred_from=DAY, preferred_to=DAY + timedelta(days=2))
    assert [d.day for d in slot_actions.booking_slots(svc, lab, windowed)] == [DAY + timedelta(days=i) for i in range(3)]
    open_ended = booking(svc, maker, pid)
    assert len(slot_actions.booking_slots(svc, lab, open_ended)) == slot_actions.DEFAULT_DAYS
    other = product_actions.add_product(svc, maker, model="XY-1", name="Other", vendor="Acme").id
    with pytest.raises(Invalid, match="no bench for model 'XY-1'") as bad:
        slot_actions.booking_slots(svc, lab, booking(svc, maker, other))
    assert bad.value.loc == ["body", "day"]
    with pytest.raises(Invalid) as long:
        slot_actions.free_slots(svc, lab, first=DAY, last=DAY + timedelta(days=200))
    assert long.value.loc == ["query", "to"]


def test_the_inbox_puts_requests_first_and_pages(svc: Services, people: dict[str, Caller]) -> None:
    maker, lab, rival = people["maker"], people["lab"], people["rival"]
    pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
    ids = [booking(svc, maker, pid, preferred_from=DAY) for _ in range(5)]
    actions.accept_booking(svc, lab, ids[0])
    actions.accept_booking(svc, lab, ids[3])
    inbox = actions.booking_page(svc, lab, size=2)
    assert [b.id for b in inbox.rows] == [ids[1], ids[2]] and (inbox.page, inbox.pages, inbox.total) == (1, 3, 5)
    assert inbox.counts == {"requested": 3, "accepted": 2} and inbox.orgs == {maker.org_id: "Acme"}
    assert [b.id for b in actions.booking_page(svc, lab, size=2, page=2).rows] == [ids[4], ids[3]]
    assert [b.id for b in actions.booking_page(svc, lab, size=2, page=9).rows] == [ids[0]]  # past the end: the last
    accepted = actions.booking_page(svc, lab, status="accepted")
    assert [b.id for b in accepted.rows] == [ids[3], ids[0]] and accepted.total == 2
    mine = actions.booking_page(svc, maker)
    assert [b.id for b in mine.rows] == ids[::-1]  # newest first
    assert actions.booking_page(svc, rival).rows == [] and actions.booking_page(svc, people["cert"]).total == 0
    with pytest.raises(Invalid) as bad:
        actions.booking_page(svc, lab, status="bogus")
    assert bad.value.loc == ["query", "status"]


def test_the_timeline_reads_each_step_from_the_store(svc: Services, people: dict[str, Caller]) -> None:
    maker, lab, cert = people["maker"], people["lab"], people["cert"]
    pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
    bid = booking(svc, maker, pid, preferred_from=DAY)

    def state() -> list[tuple[str, bool]]:
        return [(step.key, step.done) for step in actions.timeline(svc, maker, bid)]

    assert state() == [("requested", True), ("accepted", False), ("sample", False), ("testing", False),
                       ("released", False)]
    actions.accept_booking(svc, lab, bid)
    bk.receive_sample(svc.store, booking_id=bid, model="TH-100", serial="TH100-0001", received_on=DAY,
                      condition="sealed", firmware="1.4.0", by_user=lab.id)
    steps = actions.timeline(svc, maker, bid)
    assert [s.done for s in steps] == [True, True, True, False, False]
    assert steps[1].at == DAY and steps[2].at.date() == DAY and "1 sample received" in steps[2].detail
    with unit(svc.store) as s:
        s.add(Run(id="run-1", edition="v2", status="finished", started_at=datetime.now(timezone.utc),
                  finished_at=datetime.now(timezone.utc)))
    from lab.store import service
    service.claim_for_run(svc.store, booking_id=bid)
    service.attach_run(svc.store, booking_id=bid, run_id="run-1")
    with unit(svc.store) as s:
        s.add(ReportRelease(run_id="run-1", booking_id=bid, org_id=cert.org_id, released_by=lab.id))
    steps = actions.timeline(svc, cert, bid)  # the certifier sees it once released to it
    assert [s.done for s in steps] == [True] * 5
    assert "run-1" in steps[3].detail and "1 certification body" in steps[4].detail
    with pytest.raises(NotFound):
        actions.timeline(svc, people["rival"], bid)


def test_a_cancelled_booking_ends_its_timeline_with_why(svc: Services, people: dict[str, Caller]) -> None:
    maker = people["maker"]
    pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
    bid = booking(svc, maker, pid)
    actions.cancel_booking(svc, maker, bid, "postponed")
    last = actions.timeline(svc, maker, bid)[-1]
    assert (last.key, last.done, last.detail) == ("cancelled", True, "postponed")


def test_inputs_freeze_once_testing_starts(svc: Services, people: dict[str, Caller]) -> None:
    maker, lab = people["maker"], people["lab"]
    pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
    bid = booking(svc, maker, pid, preferred_from=DAY)
    actions.refuse_frozen(actions.get_booking(svc, maker, bid))  # requested: inputs still change
    actions.reject_booking(svc, lab, bid, "wrong model")
    with pytest.raises(Conflict, match="frozen"):
        actions.refuse_frozen(actions.get_booking(svc, maker, bid))


def test_every_role_is_told_the_next_step_in_every_state(people: dict[str, Caller]) -> None:
    from lab.store.models import BOOKING_STATES
    for name in ("maker", "lab", "cert"):
        for state in BOOKING_STATES:
            assert actions.next_step(people[name], state), (name, state)
    assert "Accept" in actions.next_step(people["lab"], "requested")
    assert "firmware" in actions.next_step(people["maker"], "requested")


def test_an_unreadable_inventory_is_the_labs_problem(svc: Services, people: dict[str, Caller], tmp_path: Path) -> None:
    import dataclasses

    from lab.actions.errors import Unavailable
    svc.settings = dataclasses.replace(svc.settings, inventory=tmp_path / "missing.yaml")
    for cache in (None, svc.inventories):
        with pytest.raises(Unavailable, match="the lab inventory cannot be read"):
            slot_actions.capacities(svc.settings, cache)
    with pytest.raises(Unavailable):
        slot_actions.free_slots(svc, people["lab"])


def test_the_inbox_and_the_timeline_on_sqlite_and_postgresql(db_url: str, tmp_path: Path) -> None:
    client = make_app(tmp_path, database_url=db_url)
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    try:
        maker, lab = who(svc, "maker"), who(svc, "lab")
        pid = product_actions.add_product(svc, maker, model="TH-100", name="Thermostat", vendor="Acme").id
        ids = [booking(svc, maker, pid, preferred_from=DAY) for _ in range(3)]
        actions.accept_booking(svc, lab, ids[0])
        inbox = actions.booking_page(svc, lab, size=2)
        assert [b.id for b in inbox.rows] == [ids[1], ids[2]] and inbox.counts == {"requested": 2, "accepted": 1}
        assert [s.done for s in actions.timeline(svc, maker, ids[0])] == [True, True, False, False, False]
    finally:
        svc.store.close()
