"""Firmware uploads, runs, reports and reviews on the booking API, without a lab.

Rows are made directly in a private store (no products/bookings routes needed) and a run
directory is faked on disk where a report would be, so every check here takes milliseconds.
The whole flow on a simulated lab is tests/test_api_flow.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lab.api.app import PREFIX, create_app
from lab.api.settings import ApiSettings
from lab.firmware import build_image
from lab.sim.vendor import build_release, vendor_private_key
from lab.store.accounts import add_user
from lab.store.models import Booking, Product
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"
RUN_ID = "20260101-120000-abc123"
USERS = (("maker", "manufacturer", "Acme"), ("rival", "manufacturer", "Rival"), ("lab", "engineer", "Test Lab"),
         ("cert", "certifier", "CertBody"), ("cert2", "certifier", "OtherBody"))


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    settings: ApiSettings
    tokens: dict[str, str]
    ids: dict[str, int] = field(default_factory=dict)

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, path: str, user: str | None = None, **kw: Any):
        return self.client.get(PREFIX + path, headers=self.as_(user) if user else {}, **kw)

    def post(self, path: str, user: str | None = None, **kw: Any):
        return self.client.post(PREFIX + path, headers=self.as_(user) if user else {}, **kw)

    def upload(self, booking_id: int, data: bytes, user: str = "maker", name: str = "fw.clfw"):
        return self.post(f"/bookings/{booking_id}/firmware", user, files={"file": (name, data)})

    def booking(self, booking_id: int) -> Booking:
        with unit(self.app.state.services.store) as s:
            return s.get(Booking, booking_id)


def make_api(tmp_path: Path, **settings: Any) -> Api:
    config = ApiSettings(data_dir=tmp_path / "data", reports_dir=tmp_path / "reports", rate_per_second=1e6,
                         rate_burst=1e6, **settings)
    app = create_app(config)
    store = app.state.services.store
    tokens, users = {}, {}
    for name, role, org in USERS:
        user, tokens[name] = add_user(store, name=name, role=role, org=org)
        users[name] = user
    api = Api(app=app, client=TestClient(app, raise_server_exceptions=False), settings=config, tokens=tokens)
    with unit(store) as s:
        for owner, model in (("maker", "TH-100"), ("rival", "TH-100"), ("maker", "ZZ-1")):
            product = Product(org_id=users[owner].org_id, model=model, name="Thermostat", vendor="Certlab Sim Devices")
            s.add(product)
            s.flush()
            booking = Booking(org_id=users[owner].org_id, product_id=product.id, firmware_version="1.4.0",
                              edition="v2", suites=["examples"], ics=(PRODUCT / "ics.yaml").read_text(),
                              ixit=(PRODUCT / "ixit.yaml").read_text(), status="accepted",
                              created_by=users[owner].id)
            s.add(booking)
            s.flush()
            api.ids[f"{owner}-{model}"] = booking.id
    return api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path)
    with made.client:
        yield made
    made.app.state.services.store.close()


def fake_run(api: Api, booking_key: str = "maker-TH-100", *, approved: bool = False) -> Path:
    """A finished run with a report, as `certlab run` + `certlab report` leave it (contents faked)."""
    store = api.app.state.services.store
    with unit(store) as s:
        booking = s.get(Booking, api.ids[booking_key])
        booking.run_id, booking.status = RUN_ID, "tested"
    run_dir = api.settings.reports_dir / RUN_ID
    (run_dir / "evidence").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": RUN_ID}))
    (run_dir / "verdicts.json").write_text(json.dumps({"results": []}))
    (run_dir / "evidence" / "log.txt").write_text("evidence\n")
    doc = {"report": {"id": "CL-TEST-1", "status": "draft"},
           "summary": {"overall": "NOT_ASSESSED", "complete": False,
                       "not_assessed": [{"provision": "5.2-1", "missing": ["5.2-1-2"]}],
                       "counts": {"PASS": 3, "FAIL": 0, "NOT_APPLICABLE": 1, "INCONCLUSIVE": 0}}}
    (run_dir / "conformance.json").write_text(json.dumps(doc))
    (run_dir / "conformance.html").write_text("<html>report</html>")
    (run_dir / "conformance.pdf").write_bytes(b"%PDF-1.4 fake")
    if approved:
        approve(run_dir)
    return run_dir


def approve(run_dir: Path) -> None:
    (run_dir / "approval.json").write_text(json.dumps({"by": "Alex Example", "role": "Technical Manager"}))


# --- firmware -------------------------------------------------------------------------------

def test_upload_over_the_limit_is_413_naming_it_and_an_empty_file_422(tmp_path: Path) -> None:
    small = make_api(tmp_path, max_upload_bytes=4096)
    with small.client:
        booking = small.ids["maker-TH-100"]
        over = small.upload(booking, b"x" * 5000)
        assert over.status_code == 413, over.text
        assert "4096 bytes" in over.json()["detail"]
        empty = small.upload(booking, b"")
        assert empty.status_code == 422, empty.text
        assert "empty" in empty.text
        assert small.get(f"/bookings/{booking}/firmware", "maker").json() == []
        left = [p for p in small.settings.firmware_dir.rglob("*") if p.is_file()]
        assert left == [], f"a refused upload leaves nothing behind: {left}"
    small.app.state.services.store.close()


def test_a_vendor_signed_image_is_valid_a_wrong_key_invalid_and_junk_unchecked(api: Api) -> None:
    booking = api.ids["maker-TH-100"]
    good = api.upload(booking, build_release("TH-100", "1.4.0", 3, size=4096), name="TH-100-1.4.0.clfw")
    assert good.status_code == 201, good.text
    assert (good.json()["signature"], good.json()["version"]) == ("valid", "1.4.0"), good.json()
    assert good.json()["filename"] == "TH-100-1.4.0.clfw"

    forged = build_image(model="TH-100", version="1.4.1", security_version=3, payload=b"evil" * 100,
                         private_key=Ed25519PrivateKey.generate())
    bad = api.upload(booking, forged)
    assert bad.status_code == 201, bad.text
    assert bad.json()["signature"] == "invalid" and "another key" in bad.json()["signature_detail"], bad.json()

    unsigned = build_image(model="TH-100", version="1.4.2", security_version=3, payload=b"p" * 64, private_key=None)
    assert api.upload(booking, unsigned).json()["signature"] == "invalid"

    junk = api.upload(booking, b"\x7fELF not a clfw image")
    assert junk.status_code == 201, junk.text
    assert junk.json()["signature"] == "unchecked" and junk.json()["version"] is None
    assert "not an image format certlab reads" in junk.json()["signature_detail"]

    other_model = build_image(model="XY-9", version="1.0", security_version=1, payload=b"q" * 64,
                              private_key=vendor_private_key())
    wrong = api.upload(booking, other_model)
    assert wrong.status_code == 422 and "XY-9" in wrong.text, wrong.text

    listed = api.get(f"/bookings/{booking}/firmware", "lab").json()
    assert [f["signature"] for f in listed] == ["valid", "invalid", "invalid", "unchecked"]


def test_an_ixit_without_an_update_key_leaves_the_signature_unchecked(api: Api) -> None:
    with unit(api.app.state.services.store) as s:
        s.get(Booking, api.ids["maker-TH-100"]).ixit = "product: {model: TH-100}\n7-UpdMech: []\n"
    done = api.upload(api.ids["maker-TH-100"], build_release("TH-100", "1.4.0", 3, size=1024))
    assert done.json()["signature"] == "unchecked" and "signing key" in done.json()["signature_detail"], done.json()


def test_images_are_stored_once_by_content_hash(api: Api) -> None:
    data = build_release("TH-100", "1.5.0", 4, size=8192)
    sha = hashlib.sha256(data).hexdigest()
    first = api.upload(api.ids["maker-TH-100"], data)
    again = api.upload(api.ids["maker-TH-100"], data, name="copy.clfw")
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert again.json()["id"] == first.json()["id"] and first.json()["sha256"] == sha
    elsewhere = api.upload(api.ids["maker-ZZ-1"], b"same bytes, other booking")
    assert elsewhere.status_code == 201
    stored = sorted(p for p in api.settings.firmware_dir.rglob("*") if p.is_file())
    assert api.settings.firmware_dir / sha[:2] / sha in stored and len(stored) == 2, stored

    fid = first.json()["id"]
    assert api.get(f"/firmware/{fid}", "maker").json()["sha256"] == sha
    for user in ("maker", "lab"):
        content = api.get(f"/firmware/{fid}/content", user)
        assert content.status_code == 200 and content.content == data, user
    assert api.get(f"/firmware/{fid}/content", "cert").status_code == 403


def test_another_manufacturer_sees_no_firmware_runs_or_reports(api: Api) -> None:
    booking = api.ids["maker-TH-100"]
    fid = api.upload(booking, build_release("TH-100", "1.4.0", 3, size=1024)).json()["id"]
    fake_run(api, approved=True)
    for path in (f"/firmware/{fid}", f"/firmware/{fid}/content", f"/bookings/{booking}/firmware",
                 f"/bookings/{booking}/runs", f"/runs/{RUN_ID}", f"/runs/{RUN_ID}/report",
                 f"/runs/{RUN_ID}/report/conformance.pdf", f"/runs/{RUN_ID}/report/archive",
                 f"/runs/{RUN_ID}/reviews", "/firmware/999", "/runs/no-such-run", "/runs/..%2F..%2Fetc"):
        got = api.get(path, "rival")
        assert got.status_code == 404, (path, got.status_code, got.text)
    assert api.upload(booking, b"data", user="rival").status_code == 404
    for path in (f"/runs/{RUN_ID}/report", f"/runs/{RUN_ID}/report/conformance.pdf"):  # not released to it
        assert api.get(path, "cert").status_code == 404, path
    assert api.get(f"/runs/{RUN_ID}", "maker").status_code == 200
    assert api.get(f"/runs/{RUN_ID}").status_code == 401


# --- runs -----------------------------------------------------------------------------------

def test_only_an_accepted_booking_with_a_bench_for_its_model_starts(api: Api) -> None:
    assert api.post(f"/bookings/{api.ids['maker-TH-100']}/runs", "maker").status_code == 403
    no_bench = api.post(f"/bookings/{api.ids['maker-ZZ-1']}/runs", "lab")
    assert no_bench.status_code == 409 and "ZZ-1" in no_bench.text, no_bench.text
    assert api.booking(api.ids["maker-ZZ-1"]).status == "accepted", "a run that did not start frees the booking"
    bad_suite = api.post(f"/bookings/{api.ids['maker-TH-100']}/runs", "lab", json={"suites": ["/etc"]})
    assert bad_suite.status_code == 422, bad_suite.text
    # the command line's preflight, before anything starts: an ICS N/A the IXIT contradicts is one line, 422
    with unit(api.app.state.services.store) as s:
        booking = s.get(Booking, api.ids["maker-TH-100"])
        good_ics, booking.ics = booking.ics, booking.ics.replace('"5.3-7":  {support: Y', '"5.3-7":  {support: N/A', 1)
    refused = api.post(f"/bookings/{api.ids['maker-TH-100']}/runs", "lab")
    assert refused.status_code == 422 and "provisions.5.3-7.support" in refused.text, refused.text
    assert api.booking(api.ids["maker-TH-100"]).status == "accepted", "a run that did not start frees the booking"
    with unit(api.app.state.services.store) as s:
        s.get(Booking, api.ids["maker-TH-100"]).ics = good_ics
    fake_run(api)  # the booking is now "tested"
    again = api.post(f"/bookings/{api.ids['maker-TH-100']}/runs", "lab")
    assert again.status_code == 409 and "tested" in again.text, again.text


# --- reports --------------------------------------------------------------------------------

def test_downloads_wait_for_approval_except_for_the_lab(api: Api) -> None:
    run_dir = fake_run(api)
    meta = api.get(f"/runs/{RUN_ID}/report", "maker")
    assert meta.status_code == 200 and meta.json()["status"] == "draft", meta.text
    assert (meta.json()["report_id"], meta.json()["overall"], meta.json()["counts"]["PASS"]) == ("CL-TEST-1", "NOT_ASSESSED", 3)
    assert meta.json()["complete"] is False and meta.json()["not_assessed"] == ["5.2-1"]  # said before any download
    for name in ("conformance.pdf", "conformance.html", "conformance.json", "archive"):
        refused = api.get(f"/runs/{RUN_ID}/report/{name}", "maker")
        assert refused.status_code == 409 and "not approved" in refused.text, (name, refused.text)
        assert api.get(f"/runs/{RUN_ID}/report/{name}", "lab").status_code == 200, name
    refused = api.post(f"/runs/{RUN_ID}/release", "lab", json={"organisation": "CertBody"})
    assert refused.status_code == 409, "a draft is not released"

    approve(run_dir)
    assert api.get(f"/runs/{RUN_ID}/report", "maker").json()["status"] == "approved"
    pdf = api.get(f"/runs/{RUN_ID}/report/conformance.pdf", "maker")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"
    archive = api.get(f"/runs/{RUN_ID}/report/archive", "maker")
    assert archive.status_code == 200, archive.text
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert {f"{RUN_ID}/conformance.pdf", f"{RUN_ID}/evidence/log.txt", f"{RUN_ID}/approval.json"} <= names, names


def test_making_a_report_needs_a_finished_run(api: Api) -> None:
    with unit(api.app.state.services.store) as s:
        s.get(Booking, api.ids["maker-TH-100"]).run_id = RUN_ID
    (api.settings.reports_dir / RUN_ID).mkdir(parents=True)
    (api.settings.reports_dir / RUN_ID / "run.json").write_text("{}")
    made = api.post(f"/runs/{RUN_ID}/report", "lab")
    assert made.status_code == 409 and "not finished" in made.text, made.text
    assert api.post(f"/runs/{RUN_ID}/report", "maker").status_code == 403
    assert api.post(f"/runs/{RUN_ID}/approve", "lab", json={"by": "Alex Example", "role": "Technical Manager"}
                    ).status_code == 409


# --- releases and reviews -------------------------------------------------------------------

def test_only_the_certifier_it_was_released_to_reviews(api: Api) -> None:
    fake_run(api, approved=True)
    review = {"decision": "accepted", "comment": "fine"}
    assert api.post(f"/runs/{RUN_ID}/reviews", "cert", json=review).status_code == 404, "not released yet"
    unknown = api.post(f"/runs/{RUN_ID}/release", "lab", json={"organisation": "Acme"})
    assert unknown.status_code == 422 and "certifier" in unknown.text, "a manufacturer is no certification body"
    released = api.post(f"/runs/{RUN_ID}/release", "lab", json={"organisation": "CertBody"})
    assert released.status_code == 201 and released.json()["organisation"] == "CertBody", released.text

    assert api.get(f"/runs/{RUN_ID}/report/conformance.pdf", "cert").status_code == 200
    assert api.get(f"/runs/{RUN_ID}/report/conformance.pdf", "cert2").status_code == 404
    done = api.post(f"/runs/{RUN_ID}/reviews", "cert", json=review)
    assert done.status_code == 201, done.text
    assert (done.json()["organisation"], done.json()["reviewer"], done.json()["decision"]) == \
        ("CertBody", "cert", "accepted")
    assert api.post(f"/runs/{RUN_ID}/reviews", "cert2", json=review).status_code == 404
    assert api.post(f"/runs/{RUN_ID}/reviews", "maker", json=review).status_code == 403
    assert api.post(f"/runs/{RUN_ID}/reviews", "lab", json=review).status_code == 403
    assert api.post(f"/runs/{RUN_ID}/reviews", "cert", json={"decision": "maybe"}).status_code == 422

    for user in ("lab", "maker", "cert"):
        listed = api.get(f"/runs/{RUN_ID}/reviews", user)
        assert listed.status_code == 200 and [r["decision"] for r in listed.json()] == ["accepted"], (user, listed.text)
    assert api.get(f"/runs/{RUN_ID}/reviews", "cert2").status_code == 404
    assert api.get(f"/runs/{RUN_ID}/reviews", "rival").status_code == 404
    assert [r["organisation"] for r in api.get(f"/runs/{RUN_ID}/releases", "maker").json()] == ["CertBody"]


# --- a booking's inputs freeze when its testing starts -------------------------------------------

FROZEN_STATES = ("running", "tested", "reported", "rejected", "cancelled")


def set_status(api: Api, booking_id: int, status: str) -> None:
    with unit(api.app.state.services.store) as s:
        s.get(Booking, booking_id).status = status


@pytest.mark.parametrize("state", FROZEN_STATES)
def test_no_firmware_assessments_or_evidence_once_testing_started(api: Api, state: str) -> None:
    """A run copies the booking's inputs at its start: after that (and once closed) none changes, 409 naming
    the state; the lab's chain-of-custody records go on (they are no inputs of a run)."""
    booking = api.ids["maker-TH-100"]
    set_status(api, booking, state)
    image = api.upload(booking, build_release("TH-100", "1.4.0", 3, size=1024))
    assert image.status_code == 409 and f"is {state}" in image.json()["detail"], image.text
    record = api.client.put(f"{PREFIX}/bookings/{booking}/assessments", headers=api.as_("lab"),
                            json={"assessments": (PRODUCT / "assessments.yaml").read_text()})
    assert record.status_code == 409 and f"is {state}" in record.json()["detail"], record.text
    evidence = api.post(f"/bookings/{booking}/assessments/evidence", "lab", files={"file": ("p.png", b"png")})
    assert evidence.status_code == 409 and f"is {state}" in evidence.json()["detail"], evidence.text
    assert api.get(f"/bookings/{booking}/firmware", "maker").json() == []
    assert not (api.settings.data_dir / "bookings" / str(booking) / "assessments.yaml").exists()


def test_inputs_are_taken_until_the_run_starts(api: Api) -> None:
    booking = api.ids["maker-TH-100"]
    for state in ("requested", "accepted"):
        set_status(api, booking, state)
        image = api.upload(booking, build_release("TH-100", "1.4.0", len(state), size=1024))
        assert image.status_code == 201, image.text
        evidence = api.post(f"/bookings/{booking}/assessments/evidence", "lab", files={"file": (f"{state}.png", b"x")})
        assert evidence.status_code == 201, evidence.text


def test_the_store_refuses_firmware_of_a_booking_claimed_meanwhile(api: Api) -> None:
    """The route's early check is not the only one: the record is taken only while the booking still takes
    inputs, in the same transaction (a run claimed while the image arrived wins)."""
    from lab.store import service
    from lab.store.bookings import InputsFrozen

    booking = api.ids["maker-TH-100"]
    store = api.app.state.services.store
    assert service.claim_for_run(store, booking_id=booking)
    with pytest.raises(InputsFrozen, match="is running"):
        service.add_firmware(store, org_id=1, booking_id=booking, filename="fw.bin", sha256="0" * 64, size=1,
                             version=None, signature="unchecked", signature_detail=None, uploaded_by=1)
    assert service.booking_firmware(store, booking_id=booking) == []


# --- another tenant's id costs what a missing one does ---------------------------------------------

def statements(api: Api, path: str, user: str) -> tuple[int, list[str]]:
    """(status, the SQL statements the request ran), tokens already cached (so only the route's own work)."""
    from sqlalchemy import event

    api.get("/me", user)
    seen: list[str] = []

    def record(conn: object, cursor: object, sql: str, *rest: object) -> None:
        seen.append(" ".join(sql.split()))  # parameters apart: the same text whatever the id

    engine = api.app.state.services.store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        got = api.get(path, user)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return got.status_code, seen


def test_another_tenants_ids_run_the_same_queries_as_missing_ones(api: Api) -> None:
    """Response time told whether another organisation's firmware id existed (fetch, then compare owner):
    now the lookup is one query narrowed to the caller, the same statements either way."""
    from lab.store.bookings import receive_sample
    from datetime import date

    booking = api.ids["maker-TH-100"]
    fid = api.upload(booking, build_release("TH-100", "1.4.0", 3, size=1024)).json()["id"]
    sample = receive_sample(api.app.state.services.store, booking_id=booking, model="TH-100", serial="S-1",
                            received_on=date(2026, 1, 1), condition="new", firmware=None, by_user=None).id
    fake_run(api)
    for theirs, missing in ((f"/firmware/{fid}", "/firmware/999999"), (f"/samples/{sample}", "/samples/999999"),
                            (f"/runs/{RUN_ID}", "/runs/20990101-000000-none00")):
        mine = statements(api, theirs, "maker")
        assert mine[0] == 200, (theirs, mine)
        other, none = statements(api, theirs, "rival"), statements(api, missing, "rival")
        assert other[0] == none[0] == 404, (theirs, other, none)
        assert other[1] == none[1], (theirs, other, none)


# --- every 422 has the documented shape -------------------------------------------------------------

def test_the_routes_own_422s_are_the_standard_list_naming_the_field(api: Api) -> None:
    booking = api.ids["maker-TH-100"]
    other_model = build_image(model="ZZ-9", version="1.0", security_version=1, payload=b"p", private_key=None)
    refused = [(api.upload(booking, b""), ["body", "file"]),
               (api.upload(booking, other_model, name="zz.clfw"), ["body", "file"]),
               (api.post(f"/bookings/{booking}/assessments/evidence", "lab", files={"file": ("a b", b"x")}),
                ["body", "file"])]
    fake_run(api, approved=True)
    release = api.post(f"/runs/{RUN_ID}/release", "lab", json={"organisation": "Acme"})
    refused.append((release, ["body", "organisation"]))
    for got, loc in refused:
        assert got.status_code == 422, got.text
        detail = got.json()["detail"]
        assert isinstance(detail, list) and detail[0]["loc"] == loc and detail[0]["msg"], got.text
