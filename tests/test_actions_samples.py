"""The samples actions (lab.actions.samples) as the API and the booking page call them: only an
engineer records a receipt or a custody event, another tenant's booking or sample is NotFound,
a bad field is Invalid naming it, a closed booking is a Conflict, and a booking's samples come
with their custody in a fixed number of queries whatever their number."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from fastapi import FastAPI
from inputs_lab import add_booking, caller, services, set_status
from sqlalchemy import event
from webui import make_app

from lab.actions import samples
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound

RECEIPT = {"serial": "TH100-0001", "condition": "sealed box, label intact"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    client = make_app(tmp_path_factory.mktemp("samples"))
    yield client.app  # type: ignore[misc]
    services(client.app).store.close()  # type: ignore[arg-type]


def test_an_engineer_records_the_receipt_with_its_bench_and_first_custody_event(app: FastAPI) -> None:
    bid = add_booking(app)
    view = samples.receive_sample(services(app), caller(app, "lab"), bid, **RECEIPT,
                                  received_on=date(2026, 11, 20))
    assert (view.bench, view.sample.firmware, view.received_on) == ("bench1", "1.4.0", date(2026, 11, 20))
    assert [(e.kind, e.by) for e in view.custody] == [("received", "lab")]
    maker = samples.list_samples(services(app), caller(app, "maker"), bid)
    assert [v.sample.serial for v in maker] == ["TH100-0001"]


@pytest.mark.parametrize("name", ["maker", "cert", "rival"])
def test_only_an_engineer_records_a_receipt(app: FastAPI, name: str) -> None:
    bid = add_booking(app)
    with pytest.raises(Forbidden):
        samples.receive_sample(services(app), caller(app, name), bid, **RECEIPT)


@pytest.mark.parametrize(("changes", "field"), [
    ({"serial": "has space"}, "serial"), ({"serial": ""}, "serial"), ({"condition": "  "}, "condition"),
    ({"condition": "x" * 501}, "condition"), ({"firmware": "1.4 beta"}, "firmware"),
    ({"received_on": date(1999, 12, 31)}, "received_on"), ({"serial": "TH100-0002", "model": "XY-1"}, "serial")])
def test_a_bad_receipt_is_invalid_at_its_field(app: FastAPI, changes: dict, field: str) -> None:
    model = changes.pop("model", "TH-100")  # TH100-0002 is a TH-100 in the inventory: not an XY-1's
    bid = add_booking(app, model=model)
    with pytest.raises(Invalid) as exc:
        samples.receive_sample(services(app), caller(app, "lab"), bid, **{**RECEIPT, **changes})
    assert exc.value.field == field and exc.value.msg, exc.value.msg


def test_a_form_day_is_parsed_or_invalid_at_its_field() -> None:
    assert samples.parse_day(" 2026-05-04 ", "received_on") == date(2026, 5, 4)
    assert samples.parse_day("", "received_on") is None
    with pytest.raises(Invalid) as exc:
        samples.parse_day("04/05/2026", "received_on")
    assert exc.value.field == "received_on" and "YYYY-MM-DD" in exc.value.msg


def test_another_tenant_sees_no_sample_and_a_closed_booking_takes_none(app: FastAPI) -> None:
    bid = add_booking(app)
    sid = samples.receive_sample(services(app), caller(app, "lab"), bid, serial="TH100-0003",
                                 condition="ok").sample.id
    for call in (lambda who: samples.list_samples(services(app), who, bid),
                 lambda who: samples.booking_samples(services(app), who, bid),
                 lambda who: samples.get_sample(services(app), who, sid)):
        with pytest.raises(NotFound):
            call(caller(app, "rival"))
        with pytest.raises(NotFound):  # a certifier: only bookings whose report was released to it
            call(caller(app, "cert"))
    set_status(app, bid, "cancelled")
    with pytest.raises(Conflict):
        samples.receive_sample(services(app), caller(app, "lab"), bid, serial="TH100-0004", condition="ok")
    panel = samples.booking_samples(services(app), caller(app, "lab"), bid)
    assert not panel.can_receive and panel.can_record and "cancelled" in (panel.closed or "")


def test_custody_events_are_the_engineers_and_named(app: FastAPI) -> None:
    bid = add_booking(app)
    sid = samples.receive_sample(services(app), caller(app, "lab"), bid, serial="LOOSE-1", condition="ok").sample.id
    with pytest.raises(Forbidden):
        samples.add_custody(services(app), caller(app, "maker"), sid, kind="note")
    with pytest.raises(Invalid) as exc:
        samples.add_custody(services(app), caller(app, "lab"), sid, kind="lost")
    assert exc.value.field == "kind" and "on-bench" in exc.value.msg
    with pytest.raises(Invalid) as exc:
        samples.add_custody(services(app), caller(app, "lab"), sid, kind="note", note="n" * 2001)
    assert exc.value.field == "note"
    event_ = samples.add_custody(services(app), caller(app, "lab"), sid, kind="on-bench", note=" bench1 ")
    assert (event_.kind, event_.note, event_.by) == ("on-bench", "bench1", "lab")
    panel = samples.booking_samples(services(app), caller(app, "maker"), bid)
    assert not panel.can_receive and not panel.can_record and panel.closed is None
    assert [e.kind for e in panel.samples[0].custody] == ["received", "on-bench"]
    assert samples.sample_booking(services(app), caller(app, "maker"), sid) == bid


def _queries(app: FastAPI, call) -> int:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    engine = services(app).store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def test_a_bookings_samples_cost_the_same_queries_whatever_their_number(app: FastAPI) -> None:
    lab = caller(app, "lab")
    one, three = add_booking(app), add_booking(app)
    samples.receive_sample(services(app), lab, one, serial="N1-1", condition="ok")
    for i in range(3):
        sid = samples.receive_sample(services(app), lab, three, serial=f"N3-{i}", condition="ok").sample.id
        samples.add_custody(services(app), lab, sid, kind="on-bench")
    for action in (samples.list_samples, samples.booking_samples):
        assert _queries(app, lambda: action(services(app), lab, one)) == \
            _queries(app, lambda: action(services(app), lab, three))


def test_the_booking_page_shows_samples_even_when_the_inventory_cannot_be_read(app: FastAPI, tmp_path) -> None:
    import dataclasses

    from lab.actions.errors import Unavailable

    bid = add_booking(app)
    samples.receive_sample(services(app), caller(app, "lab"), bid, serial="TH100-0004", condition="ok")
    svc = services(app)
    before = svc.settings
    svc.settings = dataclasses.replace(before, inventory=tmp_path / "gone.yaml")
    try:
        panel = samples.booking_samples(svc, caller(app, "lab"), bid)
        assert [v.sample.serial for v in panel.samples] == ["TH100-0004"] and panel.samples[0].bench is None
        with pytest.raises(Unavailable):  # the API's answer: 503, the lab's problem, not the caller's
            samples.list_samples(svc, caller(app, "lab"), bid)
    finally:
        svc.settings = before
