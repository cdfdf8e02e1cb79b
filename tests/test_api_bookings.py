"""The booking API: products, bookings (ICS/IXIT validated like the command line), slots, samples.

Every test has its own app on a private SQLite store (tests/conftest.py sets CERTLAB_DATA_DIR)
and the simulated lab's inventory: four benches of model TH-100, so a TH-100 slot holds four
bookings a day. The slot race runs on the store (SQLite and PostgreSQL) and through the API.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pytest
from apilib import app, bearer, client_of  # noqa: F401 - tests/apilib.py; app is a fixture
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lab.store import bookings as bk
from lab.store.accounts import organisation, users
from lab.store.db import Store, open_store
from lab.store.models import Booking, ReportRelease, Slot
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIR = ROOT / "inventory" / "products" / "TH-100"
ICS = (PRODUCT_DIR / "ics.yaml").read_text(encoding="utf-8")
IXIT = (PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8")
API = "/api/v1"
TODAY = date.today()
DAY = TODAY + timedelta(days=10)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with client_of(app) as c:
        yield c


@pytest.fixture
def store(app: FastAPI) -> Store:
    return app.state.services.store


@pytest.fixture
def acme(store: Store) -> dict[str, str]:
    return bearer(store, "alice", "manufacturer", "Acme")


@pytest.fixture
def other(store: Store) -> dict[str, str]:
    return bearer(store, "bob", "manufacturer", "Globex")


@pytest.fixture
def eng(store: Store) -> dict[str, str]:
    return bearer(store, "erin", "engineer", "Lab")


def add_product(client: TestClient, who: dict[str, str], model: str = "TH-100") -> dict:
    r = client.post(f"{API}/products", headers=who, json={"model": model, "name": "Thermostat",
                                                          "vendor": "Certlab Sim Devices"})
    assert r.status_code == 201, r.text
    return r.json()


def booking_body(product_id: int, **changes: object) -> dict:
    body = {"product_id": product_id, "firmware_version": "1.4.0", "edition": "v2", "suites": ["en303645"],
            "ics": ICS, "ixit": IXIT, "preferred_from": DAY.isoformat(),
            "preferred_to": (DAY + timedelta(days=4)).isoformat()}
    body.update(changes)
    return body


def add_booking(client: TestClient, who: dict[str, str], product_id: int, **changes: object) -> dict:
    r = client.post(f"{API}/bookings", headers=who, json=booking_body(product_id, **changes))
    assert r.status_code == 201, r.text
    return r.json()


def user_id(store: Store, name: str) -> int:
    return next(u.id for u in users(store) if u.name == name)


def store_booking(store: Store, product_id: int, org_id: int, user_id: int) -> int:
    """A booking made directly in the store (skips the ~0.3 s ICS/IXIT validation)."""
    return bk.create_booking(store, org_id=org_id, product_id=product_id, created_by=user_id,
                             firmware_version="1.4.0", edition="v2", suites=["en303645"], ics=ICS, ixit=IXIT).id


def the_error(r) -> dict:
    assert r.status_code == 422, r.text
    return r.json()["detail"][0]


# --- products and bookings ------------------------------------------------------------------

def test_manufacturer_books_a_product_and_sees_it(client: TestClient, acme: dict[str, str]) -> None:
    product = add_product(client, acme)
    assert product["model"] == "TH-100"
    dup = client.post(f"{API}/products", headers=acme, json={"model": "TH-100", "name": "x", "vendor": "y"})
    assert dup.status_code == 409 and "TH-100" in dup.json()["detail"]
    assert [p["id"] for p in client.get(f"{API}/products", headers=acme).json()] == [product["id"]]

    booking = add_booking(client, acme, product["id"])
    assert booking["status"] == "requested" and booking["model"] == "TH-100" and "ics" not in booking
    listed = client.get(f"{API}/bookings", headers=acme).json()
    assert [b["id"] for b in listed] == [booking["id"]]
    assert "ics" not in listed[0] and "ixit" not in listed[0]
    one = client.get(f"{API}/bookings/{booking['id']}", headers=acme).json()
    assert "ixit" not in one and one["preferred_from"] == DAY.isoformat()
    for name, text in (("ics", ICS), ("ixit", IXIT)):  # the documents, as uploaded, on their own
        doc = client.get(f"{API}/bookings/{booking['id']}/{name}", headers=acme)
        assert doc.status_code == 200 and doc.text == text and doc.headers["content-type"].startswith("application/yaml")
    assert client.get(f"{API}/bookings?status=requested", headers=acme).json() == listed
    assert client.get(f"{API}/bookings?status=accepted", headers=acme).json() == []
    assert client.get(f"{API}/bookings?status=bogus", headers=acme).status_code == 422


@pytest.mark.parametrize(("change", "loc", "words"), [
    (lambda t: t.replace('"5.1-1":  {support: Y', '"5.1-1":  {support: maybe', 1),
     ["provisions", "5.1-1", "support"], "'Y', 'N' or 'N/A'"),
    (lambda t: t.replace("provisions:\n", 'provisions:\n  "9.9-9": {support: Y, detail: x}\n', 1),
     ["provisions", "9.9-9"], "unknown provision"),
    (lambda t: t.replace("  model: TH-100", "  model: TH-200", 1), ["product", "model"], "TH-200"),
    (lambda t: t.replace("edition: v2", "edition: v3", 1), ["edition"], "v3"),
    (lambda t: t.replace("provisions:", "provisions: [", 1), [], "YAML syntax error"),
    # an N/A the IXIT contradicts (lab/conditions.py): the same preflight as the command line
    (lambda t: t.replace('"5.3-7":  {support: Y', '"5.3-7":  {support: N/A', 1),
     ["provisions", "5.3-7", "support"], "the uploaded IXIT shows condition 12"),
])
def test_a_bad_ics_answers_422_naming_the_field(client: TestClient, acme: dict[str, str],
                                                change: Callable[[str], str], loc: list, words: str) -> None:
    product = add_product(client, acme)
    err = the_error(client.post(f"{API}/bookings", headers=acme, json=booking_body(product["id"], ics=change(ICS))))
    assert err["loc"] == ["body", "ics", *loc]
    assert words in err["msg"] and err["msg"].startswith("ics: ")
    assert "/tmp" not in err["msg"] and "certlab-upload" not in err["msg"]


@pytest.mark.parametrize(("change", "loc", "words"), [
    (lambda t: t.replace("port: 22\n    transport: tcp\n    status", "port: 99999\n    transport: tcp\n    status", 1),
     ["15-Intf", 2, "port"], "65535"),
    (lambda t: t.replace("15-Intf:", "15-Intf-typo:", 1), ["15-Intf-typo"], "unknown field"),
    (lambda t: t.replace("  model: TH-100", "  model: TH-200", 1), ["product", "model"], "TH-200"),
    (lambda t: t.replace("  firmware: 1.4.0", "  firmware: 1.5.0", 1), ["product", "firmware"], "1.5.0"),
])
def test_a_bad_ixit_answers_422_naming_the_field(client: TestClient, acme: dict[str, str],
                                                 change: Callable[[str], str], loc: list, words: str) -> None:
    product = add_product(client, acme)
    err = the_error(client.post(f"{API}/bookings", headers=acme, json=booking_body(product["id"], ixit=change(IXIT))))
    assert err["loc"] == ["body", "ixit", *loc]
    assert words in err["msg"] and err["msg"].startswith("ixit: ")


def test_booking_fields_are_checked(client: TestClient, acme: dict[str, str]) -> None:
    pid = add_product(client, acme)["id"]
    bad_suite = the_error(client.post(f"{API}/bookings", headers=acme,
                                      json=booking_body(pid, suites=["en303645", "nope"])))
    assert bad_suite["loc"] == ["body", "suites", 1]
    backwards = the_error(client.post(f"{API}/bookings", headers=acme, json=booking_body(
        pid, preferred_from=DAY.isoformat(), preferred_to=(DAY - timedelta(days=1)).isoformat())))
    assert backwards["loc"] == ["body", "preferred_to"]
    past = the_error(client.post(f"{API}/bookings", headers=acme, json=booking_body(
        pid, preferred_from=(TODAY - timedelta(days=2)).isoformat())))
    assert past["loc"] == ["body", "preferred_from"]
    assert the_error(client.post(f"{API}/bookings", headers=acme, json=booking_body(pid, edition="v9")))["loc"] \
        == ["body", "edition"]
    assert client.post(f"{API}/bookings", headers=acme, json=booking_body(999)).status_code == 404


def test_another_tenant_gets_404(client: TestClient, acme: dict[str, str], other: dict[str, str]) -> None:
    product = add_product(client, acme)
    booking = add_booking(client, acme, product["id"])
    bid = booking["id"]
    assert client.get(f"{API}/bookings/{bid}", headers=other).status_code == 404
    assert client.get(f"{API}/products/{product['id']}", headers=other).status_code == 404
    assert client.post(f"{API}/bookings/{bid}/cancel", headers=other).status_code == 404
    assert client.post(f"{API}/bookings", headers=other, json=booking_body(product["id"])).status_code == 404
    assert client.get(f"{API}/bookings", headers=other).json() == []
    assert client.get(f"{API}/products", headers=other).json() == []
    # accept is the lab's: a manufacturer is refused by role, the same for any id (nothing leaks)
    assert client.post(f"{API}/bookings/{bid}/accept", headers=other, json={}).status_code == 403
    assert client.post(f"{API}/bookings/99999/accept", headers=other, json={}).status_code == 403
    assert client.get(f"{API}/bookings/{bid}", headers=acme).json()["status"] == "requested"
    # the same model is another product in another organisation
    assert add_product(client, other)["id"] != product["id"]


def test_a_certifier_sees_a_booking_once_its_report_is_released(client: TestClient, store: Store,
                                                                acme: dict[str, str], eng: dict[str, str]) -> None:
    cert = bearer(store, "carol", "certifier", "TUV")
    product = add_product(client, acme)
    booking = add_booking(client, acme, product["id"])
    assert client.get(f"{API}/bookings", headers=cert).json() == []
    assert client.get(f"{API}/bookings/{booking['id']}", headers=cert).status_code == 404
    assert client.get(f"{API}/products/{product['id']}", headers=cert).status_code == 404
    with unit(store) as s:
        s.add(ReportRelease(run_id="run-1", booking_id=booking["id"], org_id=organisation(s, "TUV").id,
                            released_by=user_id(s, "erin")))
    assert [b["id"] for b in client.get(f"{API}/bookings", headers=cert).json()] == [booking["id"]]
    assert client.get(f"{API}/bookings/{booking['id']}", headers=cert).status_code == 200
    assert client.get(f"{API}/products/{product['id']}", headers=cert).status_code == 200
    assert client.post(f"{API}/bookings/{booking['id']}/cancel", headers=cert).status_code == 403


# --- accepting onto slots -------------------------------------------------------------------

def test_accept_reserves_a_slot_and_cancel_frees_it(client: TestClient, acme: dict[str, str],
                                                    eng: dict[str, str]) -> None:
    pid = add_product(client, acme)["id"]
    first, second, third = (add_booking(client, acme, pid)["id"] for _ in range(3))

    r = client.post(f"{API}/bookings/{first}/accept", headers=eng, json={"day": DAY.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted" and r.json()["slot_day"] == DAY.isoformat()
    slots = client.get(f"{API}/slots?model=TH-100&from={DAY}&to={DAY}", headers=acme).json()
    assert slots == [{"model": "TH-100", "day": DAY.isoformat(), "capacity": 4, "reserved": 1, "free": 3}]

    again = client.post(f"{API}/bookings/{first}/accept", headers=eng, json={"day": DAY.isoformat()})
    assert again.status_code == 409 and "accepted" in again.json()["detail"]
    assert client.get(f"{API}/slots?from={DAY}&to={DAY}", headers=eng).json()[0]["reserved"] == 1

    # without a day: the first day of the preferred window with room
    r = client.post(f"{API}/bookings/{second}/accept", headers=eng)
    assert r.status_code == 200, r.text
    assert r.json()["slot_day"] == DAY.isoformat()
    assert client.get(f"{API}/slots?from={DAY}&to={DAY}", headers=eng).json()[0]["reserved"] == 2

    cancelled = client.post(f"{API}/bookings/{first}/cancel", headers=acme, json={"reason": "postponed"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"{API}/slots?from={DAY}&to={DAY}", headers=eng).json()[0]["reserved"] == 1
    assert client.post(f"{API}/bookings/{first}/cancel", headers=acme).status_code == 409

    rejected = client.post(f"{API}/bookings/{third}/reject", headers=eng, json={"reason": "no samples sent"})
    assert rejected.json()["status"] == "rejected" and rejected.json()["note"] == "no samples sent"
    late = client.post(f"{API}/bookings/{third}/accept", headers=eng, json={"day": DAY.isoformat()})
    assert late.status_code == 409 and "rejected" in late.json()["detail"]
    assert client.post(f"{API}/bookings/{third}/reject", headers=eng, json={"reason": ""}).status_code == 422
    past = client.post(f"{API}/bookings/{second}/accept", headers=eng,
                       json={"day": (TODAY - timedelta(days=1)).isoformat()})
    assert the_error(past)["loc"] == ["body", "day"]


def test_slots_list_every_day_and_refuse_unknown_models(client: TestClient, eng: dict[str, str]) -> None:
    rows = client.get(f"{API}/slots?from={DAY}&to={DAY + timedelta(days=2)}", headers=eng).json()
    assert [(r["day"], r["free"]) for r in rows] == [((DAY + timedelta(days=i)).isoformat(), 4) for i in range(3)]
    assert len(client.get(f"{API}/slots", headers=eng).json()) == 14
    assert the_error(client.get(f"{API}/slots?model=XY-1", headers=eng))["loc"] == ["query", "model"]
    assert the_error(client.get(f"{API}/slots?from={DAY}&to={TODAY}", headers=eng))["loc"] == ["query", "to"]


def test_accept_needs_a_bench_for_the_model(client: TestClient, store: Store, acme: dict[str, str],
                                            eng: dict[str, str]) -> None:
    product = add_product(client, acme, model="XY-1")
    bid = store_booking(store, product["id"], product["org_id"], user_id=user_id(store, "alice"))
    err = the_error(client.post(f"{API}/bookings/{bid}/accept", headers=eng, json={"day": DAY.isoformat()}))
    assert "no bench for model 'XY-1'" in err["msg"] and "TH-100" in err["msg"]


def test_a_full_slot_answers_409_and_the_booking_stays_requested(client: TestClient, store: Store,
                                                                  acme: dict[str, str], eng: dict[str, str]) -> None:
    product = add_product(client, acme)
    for _ in range(4):
        bk.reserve_slot(store, model="TH-100", day=DAY, capacity=4)
    bid = store_booking(store, product["id"], product["org_id"], user_id=user_id(store, "alice"))
    r = client.post(f"{API}/bookings/{bid}/accept", headers=eng, json={"day": DAY.isoformat()})
    assert r.status_code == 409
    assert f"no slot left on {DAY.isoformat()} for TH-100" in r.json()["detail"]
    assert client.get(f"{API}/bookings/{bid}", headers=acme).json()["status"] == "requested"


def run_threads(count: int, work: Callable[[int], object], timeout: float = 30) -> list[object]:
    """`work(i)` in `count` threads released together by a barrier; errors are results."""
    barrier = threading.Barrier(count, timeout=timeout)
    out: list[object] = [None] * count

    def body(i: int) -> None:
        try:
            barrier.wait()
            out[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - the test counts them
            out[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"
    return out


def test_fifty_threads_race_for_the_last_bench_in_the_store(db_url: str) -> None:
    with open_store(db_url) as store:
        for _ in range(3):
            bk.reserve_slot(store, model="TH-100", day=DAY, capacity=4)
        stores = [open_store(db_url, migrate=False) for _ in range(50)]
        try:
            got = run_threads(50, lambda i: bk.reserve_slot(stores[i], model="TH-100", day=DAY, capacity=4))
        finally:
            for s in stores:
                s.close()
        kinds = Counter(type(g).__name__ for g in got)
        assert kinds == {"Slot": 1, "SlotFull": 49}, [g for g in got if not isinstance(g, (Slot, bk.SlotFull))][:3]
        assert [s.reserved for s in bk.slots(store, models=["TH-100"], first=DAY, last=DAY)] == [4]
        assert bk.release_slot(store, slot_id=next(g for g in got if isinstance(g, Slot)).id)
        assert [s.reserved for s in bk.slots(store, models=["TH-100"], first=DAY, last=DAY)] == [3]


def test_fifty_accepts_for_the_last_bench_through_the_api(client: TestClient, store: Store,
                                                          acme: dict[str, str], eng: dict[str, str]) -> None:
    product = add_product(client, acme)
    for _ in range(3):
        bk.reserve_slot(store, model="TH-100", day=DAY, capacity=4)
    ids = [store_booking(store, product["id"], product["org_id"], user_id=user_id(store, "alice")) for _ in range(50)]

    def accept(bid: int) -> int:
        return client.post(f"{API}/bookings/{bid}/accept", headers=eng, json={"day": DAY.isoformat()}).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(accept, ids))
    assert Counter(codes) == {200: 1, 409: 49}
    states = Counter(b["status"] for b in client.get(f"{API}/bookings", headers=eng).json())
    assert states == {"accepted": 1, "requested": 49}
    assert client.get(f"{API}/slots?from={DAY}&to={DAY}", headers=eng).json()[0]["free"] == 0


# --- samples and custody --------------------------------------------------------------------

def test_sample_receipt_and_chain_of_custody(client: TestClient, acme: dict[str, str], other: dict[str, str],
                                             eng: dict[str, str]) -> None:
    pid = add_product(client, acme)["id"]
    bid = add_booking(client, acme, pid)["id"]
    receipt = {"serial": "TH100-0001", "received_on": TODAY.isoformat(), "condition": "sealed box, label intact"}
    assert client.post(f"{API}/bookings/{bid}/samples", headers=acme, json=receipt).status_code == 403
    r = client.post(f"{API}/bookings/{bid}/samples", headers=eng, json=receipt)
    assert r.status_code == 201, r.text
    sample = r.json()
    assert sample["bench"] == "bench1" and sample["model"] == "TH-100" and sample["firmware"] == "1.4.0"
    assert [e["kind"] for e in sample["custody"]] == ["received"] and sample["custody"][0]["by"] == "erin"

    sid = sample["id"]
    for kind in ("on-bench", "tested"):
        assert client.post(f"{API}/samples/{sid}/custody", headers=eng, json={"kind": kind, "note": "bench1"}
                           ).status_code == 201
    assert the_error(client.post(f"{API}/samples/{sid}/custody", headers=eng, json={"kind": "lost"}))["loc"] \
        == ["body", "kind"]
    assert client.post(f"{API}/samples/{sid}/custody", headers=acme, json={"kind": "note"}).status_code == 403

    mine = client.get(f"{API}/samples/{sid}", headers=acme).json()
    assert [e["kind"] for e in mine["custody"]] == ["received", "on-bench", "tested"]
    assert mine["received_on"] == TODAY.isoformat() and mine["condition"] == "sealed box, label intact"
    assert [s["id"] for s in client.get(f"{API}/bookings/{bid}/samples", headers=acme).json()] == [sid]
    assert client.get(f"{API}/samples/{sid}", headers=other).status_code == 404
    assert client.get(f"{API}/bookings/{bid}/samples", headers=other).status_code == 404

    # a unit the inventory does not list is recorded without a bench; an empty serial is refused
    loose = client.post(f"{API}/bookings/{bid}/samples", headers=eng, json={**receipt, "serial": "TH100-9999"})
    assert loose.status_code == 201 and loose.json()["bench"] is None
    assert the_error(client.post(f"{API}/bookings/{bid}/samples", headers=eng,
                                 json={**receipt, "serial": ""}))["loc"] == ["body", "serial"]
    # the same unit cannot come with a second open booking
    bid2 = add_booking(client, acme, pid)["id"]
    assert client.post(f"{API}/bookings/{bid2}/samples", headers=eng, json=receipt).status_code == 409


def test_a_serial_the_inventory_lists_as_another_model_is_refused(client: TestClient, store: Store,
                                                                   acme: dict[str, str], eng: dict[str, str]) -> None:
    product = add_product(client, acme, model="XY-1")
    bid = store_booking(store, product["id"], product["org_id"], user_id=user_id(store, "alice"))
    err = the_error(client.post(f"{API}/bookings/{bid}/samples", headers=eng,
                                json={"serial": "TH100-0002", "condition": "ok"}))
    assert err["loc"] == ["body", "serial"] and "TH-100" in err["msg"]


def test_the_assessors_decisions_are_validated_kept_and_shown_to_the_owner(client: TestClient, acme: dict[str, str],
                                                                          other: dict[str, str], eng: dict[str, str]) -> None:
    booking = add_booking(client, acme, add_product(client, acme)["id"])
    url = f"{API}/bookings/{booking['id']}/assessments"
    assert client.get(url, headers=acme).status_code == 404  # none recorded yet
    decided = (PRODUCT_DIR / "assessments.yaml").read_text(encoding="utf-8")
    assert client.put(url, headers=acme, json={"assessments": decided}).status_code == 403  # the lab's decisions

    bad = client.put(url, headers=eng, json={"assessments": decided.replace("verdict: PASS", "verdict: MAYBE", 1)})
    assert bad.status_code == 422
    err = the_error(bad)
    assert err["loc"][:3] == ["body", "assessments", "decisions"] and err["loc"][-1] == "verdict", err
    ok = client.put(url, headers=eng, json={"assessments": decided})
    assert ok.status_code == 200 and ok.json()["decisions"] > 10, ok.text
    shown = client.get(url, headers=acme)
    assert shown.status_code == 200 and shown.text == decided
    assert client.get(url, headers=other).status_code == 404  # another manufacturer: no such booking


def test_assessor_evidence_is_uploaded_hashed_and_named_by_performed_cases(
        client: TestClient, app: FastAPI, acme: dict[str, str], other: dict[str, str], eng: dict[str, str]) -> None:
    import hashlib

    booking = add_booking(client, acme, add_product(client, acme)["id"])
    url = f"{API}/bookings/{booking['id']}/assessments"
    photo = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    files = {"file": ("6-1-2-notice.png", photo, "image/png")}
    assert client.post(f"{url}/evidence", headers=acme, files=files).status_code == 403  # the lab's evidence
    up = client.post(f"{url}/evidence", headers=eng, files=files)
    assert up.status_code == 201, up.text
    assert up.json() == {"name": "6-1-2-notice.png", "path": "evidence/6-1-2-notice.png",
                         "sha256": hashlib.sha256(photo).hexdigest(), "size": len(photo)}
    assert client.post(f"{url}/evidence", headers=eng, files=files).status_code == 201  # same bytes: fine
    clash = client.post(f"{url}/evidence", headers=eng, files={"file": ("6-1-2-notice.png", b"other", "image/png")})
    assert clash.status_code == 409 and "never replaced" in clash.text
    assert client.post(f"{url}/evidence", headers=eng, files={"file": ("../x.png", b"x", "image/png")}).status_code == 422
    assert client.post(f"{url}/evidence", headers=eng, files={"file": ("e.png", b"", "image/png")}).status_code == 422
    import dataclasses

    services = app.state.services
    services.settings = dataclasses.replace(services.settings, max_upload_bytes=1024)
    big = client.post(f"{url}/evidence", headers=eng, files={"file": ("big.bin", b"x" * 2048, "application/octet-stream")})
    assert big.status_code == 413 and "upload limit of 1024 bytes" in big.text
    listed = client.get(f"{url}/evidence", headers=eng)
    assert [e["name"] for e in listed.json()] == ["6-1-2-notice.png"]  # nothing left of the refused one
    other_eng = client.get(f"{API}/bookings/{booking['id'] + 999}/assessments/evidence", headers=eng)
    assert other_eng.status_code == 404

    decided = (PRODUCT_DIR / "assessments.yaml").read_text(encoding="utf-8")
    performed = ('\nperformed:\n  "6-1-2":\n    verdict: PASS\n    reason: The privacy notice says what the '
                 'IXIT says.\n    date: 2026-11-21\n    samples: [TH100-0001]\n    evidence: [evidence/{name}]\n')
    missing = client.put(url, headers=eng, json={"assessments": decided + performed.format(name="nope.png")})
    assert missing.status_code == 422, missing.text
    err = the_error(missing)
    assert err["loc"][:4] == ["body", "assessments", "performed", "6-1-2"], err
    assert "evidence/nope.png" in err["msg"] and "POST /bookings/" in err["msg"] and str(app.state.services.settings.data_dir) not in err["msg"], err
    automated = client.put(url, headers=eng, json={"assessments": decided + performed.format(name="6-1-2-notice.png")
                                                   .replace("6-1-2", "5.1-1-2", 1)})
    assert automated.status_code == 422 and "automated by certlab" in automated.text
    ok = client.put(url, headers=eng, json={"assessments": decided + performed.format(name="6-1-2-notice.png")})
    assert ok.status_code == 200 and ok.json()["performed"] == 1, ok.text
    assert client.post(f"{url}/evidence", headers=other, files=files).status_code in (403, 404)


# --- days are bounded: the lab's calendar ------------------------------------------------------

def test_days_past_the_calendar_are_422_naming_the_field_not_an_overflow(client: TestClient, acme: dict[str, str],
                                                                        eng: dict[str, str]) -> None:
    assert the_error(client.get(f"{API}/slots?from=9999-12-31", headers=eng))["loc"] == ["query", "from"]
    assert the_error(client.get(f"{API}/slots?from={TODAY}&to=9999-12-31", headers=eng))["loc"] == ["query", "to"]
    last = client.get(f"{API}/slots?from={bk.LAST_DAY}", headers=eng)  # the last day: the range stops there
    assert last.status_code == 200 and {r["day"] for r in last.json()} == {bk.LAST_DAY.isoformat()}
    product = add_product(client, acme)
    r = client.post(f"{API}/bookings", headers=acme, json=booking_body(product["id"], preferred_from="9999-12-30",
                                                                        preferred_to=None))
    assert the_error(r)["loc"] == ["body", "preferred_from"]
    bid = add_booking(client, acme, product["id"])["id"]
    assert the_error(client.post(f"{API}/bookings/{bid}/accept", headers=eng,
                                 json={"day": "9999-12-30"}))["loc"] == ["body", "day"]


def test_a_stored_far_future_window_is_refused_by_accept_not_an_overflow(client: TestClient, store: Store,
                                                                         acme: dict[str, str],
                                                                         eng: dict[str, str]) -> None:
    """A booking stored before days were bounded (or by hand) preferring 9999-12-30 made accept a 500."""
    product = add_product(client, acme)
    bid = store_booking(store, product["id"], product["org_id"], user_id=user_id(store, "alice"))
    with unit(store) as s:
        s.get(Booking, bid).preferred_from = "9999-12-30"
    r = client.post(f"{API}/bookings/{bid}/accept", headers=eng)
    assert r.status_code == 409 and "end of the lab's calendar" in r.json()["detail"], r.text
    with unit(store) as s:
        s.get(Booking, bid).preferred_from, s.get(Booking, bid).preferred_to = None, "9999-12-31"
    r = client.post(f"{API}/bookings/{bid}/accept", headers=eng)  # from today: the first free day
    assert r.status_code == 200 and r.json()["slot_day"] == TODAY.isoformat(), r.text


def test_day_arithmetic_stops_at_the_last_date() -> None:
    assert bk.later(date.max - timedelta(days=1), 13) == date.max
    assert bk.later(DAY, 3) == DAY + timedelta(days=3)


def test_the_documented_day_pattern_is_exactly_the_calendars_days() -> None:
    """A client generating days from the OpenAPI document's pattern gets only days the API takes, and all of them."""
    import re

    from lab.api.schemas.bookings import DAY_PATTERN
    pattern = re.compile(DAY_PATTERN)
    day, seen = bk.FIRST_DAY, 0
    while day <= bk.LAST_DAY:
        assert pattern.fullmatch(day.isoformat()), day
        day, seen = day + timedelta(days=1), seen + 1
    assert seen == (bk.LAST_DAY - bk.FIRST_DAY).days + 1
    for wrong in ("1999-12-31", "2100-01-01", "2023-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "9999-12-31"):
        assert not pattern.fullmatch(wrong), wrong
    assert pattern.fullmatch("2024-02-29") and pattern.fullmatch("2000-02-29")
