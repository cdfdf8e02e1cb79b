"""The reports pages through FastAPI's TestClient (no browser, no lab, no `certlab report`
subprocess): each role's list and report page, refusals (403 page for the wrong role, 404 for
another tenant's or an unreleased run), CSRF, forms re-rendered with the error at its field, the
run directory opened in place under its own policy, and the verification state."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.reports.approval import write_approval
from lab.reports.keys import KEY_DIR_ENV, init_keys, load_private_key
from lab.reports.manifest import sign_run
from lab.store.models import Booking, Organisation, Product
from lab.store.unit import reading, unit
from tests.webui import WebClient, login, make_app, post_form

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"
RUN = "20260101-120000-abc123"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebClient]:
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    init_keys(tmp_path / "keys")
    client = make_app(tmp_path)
    store = client.app.state.services.store  # type: ignore[attr-defined]
    with unit(store) as s:
        org = s.query(Organisation).filter_by(name="Acme").one()
        product = Product(org_id=org.id, model="TH-100", name="Thermostat", vendor="Sim")
        s.add(product)
        s.flush()
        s.add(Booking(org_id=org.id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                      suites=["examples"], ics=(PRODUCT / "ics.yaml").read_text(),
                      ixit=(PRODUCT / "ixit.yaml").read_text(), status="tested", run_id=RUN, created_by=1))
    with client:
        yield client
    store.close()


def run_dir(client: WebClient) -> Path:
    return client.app.state.services.settings.reports_dir / RUN  # type: ignore[attr-defined]


def write_run(client: WebClient, *, approved: bool = False) -> Path:
    """A finished run with a made, signed report (small contents), as `certlab report` leaves it."""
    folder = run_dir(client)
    (folder / "evidence").mkdir(parents=True)
    (folder / "allure-report").mkdir()
    (folder / "run.json").write_text(json.dumps({"run_id": RUN}))
    (folder / "verdicts.json").write_text(json.dumps({"results": []}))
    (folder / "evidence" / "log.txt").write_text("evidence\n")
    doc = {"report": {"id": "CL-TEST-1"}, "summary": {"overall": "FAIL", "complete": True,
                                                      "counts": {"PASS": 1, "FAIL": 1}},
           "provisions": [{"id": "5.1-1", "title": "No universal default passwords", "verdict": "PASS"},
                          {"id": "5.3-2", "title": "Secure updates", "verdict": "FAIL"}]}
    (folder / "conformance.json").write_text(json.dumps(doc))
    (folder / "conformance.html").write_text("<html><style>p{}</style><p>the conformance report</p></html>")
    (folder / "conformance.pdf").write_bytes(b"%PDF-1.4 small")
    (folder / "allure-report" / "index.html").write_text("<html><script>window.allure={};</script>"
                                                         '<script src="app.js"></script></html>')
    (folder / "allure-report" / "app.js").write_text("console.log(1)")
    key = load_private_key()
    sign_run(folder, key)
    if approved:
        approve(client)
    return folder


def approve(client: WebClient) -> None:
    key = load_private_key()
    write_approval(run_dir(client), by="Alex Example", role="Technical Manager", report_id="CL-TEST-1", key=key)
    sign_run(run_dir(client), key)
    with unit(client.app.state.services.store) as s:  # type: ignore[attr-defined]
        s.query(Booking).filter_by(run_id=RUN).one().status = "reported"


def release(client: WebClient, lab: WebClient) -> None:
    done = post_form(lab, f"/reports/{RUN}/release", {"organisation": "CertBody"})
    assert done.status_code == 303, done.text


def field_error(html: str, name: str) -> str:
    """The error shown at form field `name` (its aria-invalid control and the message it points to)."""
    control = re.search(rf'<(?:input|select|textarea)[^>]*id="f-{re.escape(name)}"[^>]*>', html)
    assert control and 'aria-invalid="true"' in control.group(0), f"no invalid control f-{name}"
    assert f"f-{name}-error" in control.group(0)
    message = re.search(rf'id="f-{re.escape(name)}-error"><strong>Error:</strong> ([^<]*)<', html)
    assert message, f"no error message at f-{name}"
    return message.group(1)


# --- lists per role -----------------------------------------------------------------------------------


def test_each_role_sees_its_own_reports_list(app: WebClient) -> None:
    write_run(app)
    lab, maker, cert = login(app, "lab"), login(app, "maker"), login(app, "cert")
    page = lab.get("/reports")
    assert page.status_code == 200 and "Drafts awaiting approval" in page.text and RUN in page.text
    assert RUN not in maker.get("/reports").text, "a draft is the lab's alone"
    assert RUN not in cert.get("/reports").text
    approve(app)
    release(app, lab)
    assert "Released" in lab.get("/reports").text
    made = maker.get("/reports").text
    assert RUN in made and f"/reports/{RUN}/download/conformance.pdf" in made
    listed = cert.get("/reports").text
    assert RUN in listed and "badge-valid" in listed, "verification state shown as text"
    assert RUN not in login(app, "rival").get("/reports").text


# --- the report page per role, refusals -----------------------------------------------------------------


def test_the_report_page_answers_404_to_other_tenants_and_unreleased_certifiers(app: WebClient) -> None:
    write_run(app, approved=True)
    assert login(app, "rival").get(f"/reports/{RUN}").status_code == 404
    cert = login(app, "cert")
    assert cert.get(f"/reports/{RUN}").status_code == 404
    assert cert.get("/reports/..%2F..%2Fetc").status_code == 404


def test_a_draft_is_refused_to_the_manufacturer_and_the_forms_to_the_wrong_role(app: WebClient) -> None:
    write_run(app)
    maker, cert = login(app, "maker"), login(app, "cert")
    draft = maker.get(f"/reports/{RUN}")
    assert draft.status_code == 409 and "not approved yet" in draft.text
    for who, url in ((maker, "approve"), (maker, "release"), (maker, "make"), (cert, "approve"), (maker, "reviews")):
        refused = post_form(who, f"/reports/{RUN}/{url}", {"by": "x", "role": "y", "decision": "accepted"})
        assert refused.status_code == 403 and "<h1>" in refused.text, (url, refused.status_code)


def test_a_post_without_its_csrf_token_is_refused(app: WebClient) -> None:
    write_run(app, approved=True)
    lab = login(app, "lab")
    refused = lab.post(f"/reports/{RUN}/release", data={"organisation": "CertBody"}, follow_redirects=False)
    assert refused.status_code == 403
    assert login(app, "cert").get(f"/reports/{RUN}").status_code == 404, "nothing released"


def test_the_engineer_approves_with_the_profile_s_signatories_and_errors_show_at_the_field(app: WebClient) -> None:
    write_run(app)
    lab = login(app, "lab")
    page = lab.get(f"/reports/{RUN}")
    assert page.status_code == 200 and "Approve as an authorised signatory" in page.text
    assert "Alex Example (Technical Manager)" in page.text, "the lab profile's signatories to choose from"
    assert "badge-valid" in page.text and "missing (a draft" in page.text  # verified: signature valid, no approval
    refused = post_form(lab, f"/reports/{RUN}/approve", {"signatory": ""})
    assert refused.status_code == 422
    assert "fix:" in field_error(refused.text, "signatory")


def test_release_needs_a_certification_body_named_at_the_field(app: WebClient) -> None:
    write_run(app, approved=True)
    lab = login(app, "lab")
    page = lab.get(f"/reports/{RUN}")
    assert "Release to a certification body" in page.text and '<option value="CertBody"' in page.text
    refused = post_form(lab, f"/reports/{RUN}/release", {"organisation": "Acme"})
    assert refused.status_code == 422 and "certlab users add" in field_error(refused.text, "organisation")
    release(app, lab)
    assert "CertBody" in lab.get(f"/reports/{RUN}").text


# --- the certifier: verification state, reading in place, review ------------------------------------------


def test_the_certifier_sees_the_verification_state_and_tampering(app: WebClient) -> None:
    folder = write_run(app, approved=True)
    lab, cert = login(app, "lab"), login(app, "cert")
    release(app, lab)
    page = cert.get(f"/reports/{RUN}")
    assert page.status_code == 200 and "every file matches the signed manifest" in page.text
    assert "valid: Alex Example (Technical Manager)" in page.text
    (folder / "evidence" / "log.txt").write_text("changed\n")
    page = cert.get(f"/reports/{RUN}")
    assert "badge-tampered" in page.text and "changed: evidence/log.txt" in page.text


def test_the_reports_open_in_place_under_their_own_policy(app: WebClient, tmp_path: Path) -> None:
    write_run(app)
    lab, maker = login(app, "lab"), login(app, "maker")
    page = lab.get(f"/reports/{RUN}").text
    assert f'<iframe src="/reports/{RUN}/files/conformance.html"' in page and "allure-report/index.html" in page
    html = lab.get(f"/reports/{RUN}/files/conformance.html")
    assert html.status_code == 200 and "the conformance report" in html.text
    assert "sandbox" in html.headers["content-security-policy"] and "script-src" not in html.headers[
        "content-security-policy"]
    allure = lab.get(f"/reports/{RUN}/files/allure-report/index.html")
    policy = allure.headers["content-security-policy"]
    assert allure.status_code == 200 and "'sha256-" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    assert lab.get(f"/reports/{RUN}/files/allure-report/app.js").status_code == 200
    (tmp_path / "secret.txt").write_text("secret")
    for bad in ("..%2F..%2Fsecret.txt", "evidence/..%2F..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", ".hidden"):
        assert lab.get(f"/reports/{RUN}/files/{bad}").status_code == 404, bad
    assert maker.get(f"/reports/{RUN}/files/conformance.html").status_code == 409, "a draft: the lab's alone"
    download = lab.get(f"/reports/{RUN}/download/conformance.pdf")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]


def test_the_certifier_reviews_with_a_comment_per_provision(app: WebClient) -> None:
    write_run(app, approved=True)
    release(app, login(app, "lab"))
    cert = login(app, "cert")
    form = cert.get(f"/reports/{RUN}").text
    assert 'id="f-pc-5.3-2"' in form and "Secure updates" in form
    refused = post_form(cert, f"/reports/{RUN}/reviews", {"comment": "kept"})
    assert refused.status_code == 422 and "accepted or rejected" in field_error(refused.text, "decision")
    assert ">kept</textarea>" in refused.text, "what was typed is kept"
    refused = post_form(cert, f"/reports/{RUN}/reviews", {"decision": "rejected", "pc-9.9-9": "no such"})
    assert refused.status_code == 422 and "is not a provision of this report" in refused.text  # in the summary
    done = post_form(cert, f"/reports/{RUN}/reviews", {"decision": "rejected", "comment": "see 5.3-2",
                                                       "pc-5.3-2": "the update image was not signed"})
    assert done.status_code == 303
    page = cert.get(f"/reports/{RUN}").text
    assert "badge-rejected" in page and "the update image was not signed" in page
    assert "the update image was not signed" in login(app, "maker").get(f"/reports/{RUN}").text


def test_the_booking_page_shows_its_reports(app: WebClient) -> None:
    if importlib.util.find_spec("lab.webui.pages.bookings") is None:
        pytest.skip("the booking page (lab/webui/pages/bookings.py) is not in this build yet")
    write_run(app)
    with reading(app.app.state.services.store) as s:  # type: ignore[attr-defined]
        booking_id = s.query(Booking).filter_by(run_id=RUN).one().id
    page = login(app, "lab").get(f"/bookings/{booking_id}")
    assert page.status_code == 200 and f'href="/reports/{RUN}"' in page.text
    assert f'href="/reports/{RUN}"' not in login(app, "maker").get(f"/bookings/{booking_id}").text, "a draft"
