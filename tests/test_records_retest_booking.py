"""A product record's re-test gets a booking of its own (lab.actions.records' keeper), made by the lab
on the manufacturer's behalf when the re-test run left verdicts, so its report is read by the rules of
every report: the lab always, the product's manufacturer once approved, a certifier once released to
it, another manufacturer never (404). One booking per run, even when the keeper stopped half-way. The
re-test runs are written on disk the way tests/test_records_keeper.py writes them (no lab)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from records_lab import BASELINE, CERT_RUN, MODEL, World, certified_world, finished_retest, register, retest_of
from sqlalchemy import func, select
from webui import login

from lab.actions import records, retests
from lab.actions import reports as report_actions
from lab.store.models import AuditEntry, Booking, Product, QueuedRun
from lab.store.scheduling import finish_queued_run
from lab.store.unit import reading, unit

RETEST_RUN = "20261205-100000-retest"
PRODUCT_DIR = Path(__file__).resolve().parent.parent / "inventory" / "products" / MODEL


class Killed(Exception):
    """The keeper's process ending half-way (not an error the keeper handles)."""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    made = certified_world(tmp_path, monkeypatch)
    yield made
    made.svc.store.close()




def bookings_of(world: World, run_id: str) -> list[Booking]:
    with reading(world.svc.store) as s:
        return list(s.scalars(select(Booking).where(Booking.run_id == run_id).order_by(Booking.id)))


def unapproved_retest(world: World, run_id: str = RETEST_RUN) -> Path:
    """A re-test run that left verdicts and nothing else (its report is the keeper's to make)."""
    run_dir = world.reports / run_id
    run_dir.mkdir()
    (run_dir / "verdicts.json").write_text("{}")
    return run_dir


def test_a_finished_retest_gets_the_records_booking_reported_once_its_report_is_approved(world: World) -> None:
    queued_id = register(world)
    finished_retest(world.reports, RETEST_RUN, {**BASELINE, "5.6-1": "FAIL"}, firmware="1.5.0")
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    with reading(world.svc.store) as s:
        assert s.get(QueuedRun, queued_id).payload["requested_by_user_id"] == world.who("maker").id
    retests.settle_retests(world.svc)
    [booking] = bookings_of(world, RETEST_RUN)
    maker = world.who("maker")
    with reading(world.svc.store) as s:
        product = s.scalars(select(Product).where(Product.org_id == maker.org_id, Product.model == MODEL)).one()
    kept = Path(world.svc.settings.data_dir) / records.RECORDS_DIR / MODEL / CERT_RUN  # the record's input copies
    assert (booking.org_id, booking.product_id, booking.created_by) == (maker.org_id, product.id, maker.id)
    assert (booking.firmware_version, booking.edition, booking.suites) == ("1.5.0", "v2", ["en303645"])
    assert booking.ics == (kept / "ics.yaml").read_text(encoding="utf-8") == (PRODUCT_DIR / "ics.yaml").read_text()
    assert booking.ixit == (kept / "ixit.yaml").read_text(encoding="utf-8")
    assert (booking.status, booking.slot_id, booking.run_id) == ("reported", None, RETEST_RUN)
    assert booking.note == (f"Re-test of release 1.5.0 for the product record (queued run {queued_id}), "
                            f"booked by the lab")
    assert retest_of(world)["state"] == "done" and retest_of(world)["flagged"]
    with reading(world.svc.store) as s:
        made = s.scalars(select(AuditEntry).where(AuditEntry.path == f"/bookings/{booking.id}")).one()
    assert made.user_name == records.KEEPER and made.status == 201 and RETEST_RUN in made.detail


def test_a_keeper_that_stopped_half_way_finds_the_booking_it_made(world: World,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The booking is made before the report; a keeper killed while making the report leaves it
    "tested", and the next round makes no second one, only the report and the booking's "reported"."""
    queued_id = register(world)
    run_dir = unapproved_retest(world)
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)

    def killed(svc: object, run_dir: Path, *args: str) -> None:
        raise Killed  # the process ends in the middle of `certlab report`

    monkeypatch.setattr(report_actions, "certlab_report", killed)
    with pytest.raises(Killed):
        retests.settle_retests(world.svc)
    [booking] = bookings_of(world, RETEST_RUN)
    assert booking.status == "tested" and retest_of(world)["state"] == "queued"

    def certlab_report(svc: object, run_dir: Path, *args: str) -> None:
        if args[0] != "approve":
            (run_dir / "conformance.json").write_text(json.dumps({"summary": {"overall": "PASS"},
                                                                  "provisions": [{"id": "5.1-1", "verdict": "PASS"}]}))
        else:
            (run_dir / "approval.json").write_text("{}")

    monkeypatch.setattr(report_actions, "certlab_report", certlab_report)
    retests.settle_retests(world.svc)
    assert [(b.id, b.status) for b in bookings_of(world, RETEST_RUN)] == [(booking.id, "reported")]
    assert retest_of(world)["state"] == "done" and report_actions.is_approved(run_dir)
    with reading(world.svc.store) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)
                        .where(AuditEntry.path == f"/bookings/{booking.id}")) == 1


def test_an_unapproved_retest_report_is_the_labs_until_an_engineer_approves_it(world: World,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """No re-test signatory: the booking stays "tested", its manufacturer sees no report yet (409 on the
    page, none in its lists), and approving it as for any booking makes the booking "reported"."""
    def certlab_report(svc: object, run_dir: Path, *args: str) -> None:
        if args[0] != "approve":
            (run_dir / "conformance.json").write_text(json.dumps({"summary": {"overall": "PASS"},
                                                                  "provisions": [{"id": "5.1-1", "verdict": "PASS"}]}))
        else:
            (run_dir / "approval.json").write_text("{}")

    monkeypatch.setattr(report_actions, "certlab_report", certlab_report)
    monkeypatch.setattr(retests, "retest_signatory", lambda svc: None)
    queued_id = register(world)
    unapproved_retest(world)
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    assert "no signatory for re-tests" in retest_of(world)["reason"]
    [booking] = bookings_of(world, RETEST_RUN)
    assert booking.status == "tested"
    maker = login(world.client, "maker")
    assert maker.get(f"/reports/{RETEST_RUN}").status_code == 409
    assert RETEST_RUN not in maker.get("/reports").text
    report_actions.approve_report(world.svc, world.who("lab"), RETEST_RUN, by="Alex Example",
                                  role="Technical Manager")
    assert bookings_of(world, RETEST_RUN)[0].status == "reported"
    assert RETEST_RUN in maker.get("/reports").text


def test_the_retest_booking_and_report_read_as_any_others_and_not_by_another_manufacturer(world: World) -> None:
    queued_id = register(world)
    finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    [booking] = bookings_of(world, RETEST_RUN)
    api, client = "/api/v1", world.client

    for name in ("maker", "lab"):  # the product's manufacturer and the lab
        page = login(client, name)
        listed = page.get("/bookings")
        assert listed.status_code == 200 and f"/bookings/{booking.id}" in listed.text, name
        detail = page.get(f"/bookings/{booking.id}")
        assert detail.status_code == 200 and "Re-test of release 1.5.0" in detail.text, name
        report = page.get(f"/reports/{RETEST_RUN}")
        assert report.status_code == 200 and RETEST_RUN in report.text, name
        assert RETEST_RUN in page.get("/reports").text, name
        assert page.get("/runs").status_code == 200, name
        assert page.get(f"/runs/{RETEST_RUN}").status_code == 200, name
        headers = client.bearer(name)
        got = client.get(f"{api}/runs/{RETEST_RUN}/report", headers=headers)
        assert got.status_code == 200 and got.json()["status"] == "approved", name
        assert booking.id in [b["id"] for b in client.get(f"{api}/bookings", headers=headers).json()], name
        one = client.get(f"{api}/bookings/{booking.id}", headers=headers).json()
        assert (one["status"], one["slot_day"], one["run_id"], one["firmware_version"]) == \
               ("reported", None, RETEST_RUN, "1.5.0"), name
        assert client.get(f"{api}/bookings/{booking.id}/ixit", headers=headers).text == booking.ixit, name
        assert client.get(f"{api}/runs/{RETEST_RUN}", headers=headers).status_code == 200, name
        assert client.get(f"{api}/bookings/{booking.id}/runs", headers=headers).status_code == 200, name
        assert client.get(f"{api}/runs/{RETEST_RUN}/report/conformance.json", headers=headers).status_code == 200

    rival, headers = login(client, "rival"), client.bearer("rival")
    assert rival.get(f"/reports/{RETEST_RUN}").status_code == 404
    assert rival.get(f"/bookings/{booking.id}").status_code == 404
    assert f"/bookings/{booking.id}" not in rival.get("/bookings").text
    assert client.get(f"{api}/runs/{RETEST_RUN}/report", headers=headers).status_code == 404
    assert client.get(f"{api}/bookings/{booking.id}", headers=headers).status_code == 404
    assert booking.id not in [b["id"] for b in client.get(f"{api}/bookings", headers=headers).json()]

    cert = client.bearer("cert")
    assert client.get(f"{api}/runs/{RETEST_RUN}/report", headers=cert).status_code == 404  # not released
    report_actions.release_report(world.svc, world.who("lab"), RETEST_RUN, "CertBody")
    assert client.get(f"{api}/runs/{RETEST_RUN}/report", headers=cert).status_code == 200
    assert login(client, "cert").get(f"/reports/{RETEST_RUN}").status_code == 200


def test_a_retest_queued_again_is_booked_in_the_engineers_name_and_a_runless_one_not_at_all(world: World) -> None:
    first = register(world)
    finish_queued_run(world.svc.store, queued_id=first, state="failed", error="bench1: no bench answered")
    retests.settle_retests(world.svc)
    assert retest_of(world)["state"] == "failed" and not bookings_of(world, RETEST_RUN)
    with reading(world.svc.store) as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 1  # the certifying run's only

    lab = world.who("lab")
    again = records.requeue_retest(world.svc, lab, MODEL, "1.5.0")["retest"]["queued_id"]
    finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    finish_queued_run(world.svc.store, queued_id=again, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    [booking] = bookings_of(world, RETEST_RUN)
    assert booking.created_by == lab.id and booking.org_id == world.who("maker").org_id
    assert f"(queued run {again})" in booking.note


def test_an_entry_queued_without_a_user_is_booked_for_the_records_organisation(world: World) -> None:
    queued_id = register(world)
    with unit(world.svc.store) as s:
        row = s.get(QueuedRun, queued_id)
        row.payload = {k: v for k, v in row.payload.items() if k != "requested_by_user_id"}
    finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    [booking] = bookings_of(world, RETEST_RUN)
    assert booking.created_by == world.who("maker").id  # the organisation's first (only) user


def test_a_retest_report_never_becomes_a_certifying_report(world: World) -> None:
    """Its booking makes the run visible to `open_record`, but its report follows up a certificate:
    a run whose ICS is a record's input copy is refused as a baseline (409)."""
    from lab.actions.errors import Conflict

    queued_id = register(world)
    run_dir = finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    kept = Path(world.svc.settings.data_dir) / records.RECORDS_DIR / MODEL / CERT_RUN
    spec = json.loads((run_dir / "run.json").read_text())
    spec["options"] = ["--ics", str(kept / "ics.yaml"), "--ixit", str(kept / "ixit.yaml")]
    (run_dir / "run.json").write_text(json.dumps(spec))
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    assert bookings_of(world, RETEST_RUN)
    with pytest.raises(Conflict, match="re-test of a product record"):
        records.open_record(world.svc, world.who("lab"), RETEST_RUN)
