"""The pages of samples and custody, firmware and the assessor's record, driven as a browser would
(TestClient, no browser): each role's forms and reads, the others refused (403 page, or 404 for
another tenant's booking), a POST without the CSRF token refused, a form in error re-rendered with
the message at its field (aria-invalid) and what was typed kept."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from inputs_lab import DECIDED, PERFORMED, add_booking, caller, services, set_status
from webui import WebClient, login, make_app, post_form

from lab.actions import firmware, samples
from lab.firmware import build_image
from lab.sim.vendor import build_release
from lab.store.models import ReportRelease
from lab.store.unit import unit

PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, WebClient]]:
    """One app for the module, a signed-in client per user (the tests use fresh bookings each)."""
    anon = make_app(tmp_path_factory.mktemp("webui-samples"))
    clients = {name: login(anon, name) for name in ("maker", "lab", "cert", "rival")}
    yield {"anon": anon, **clients}
    anon.app.state.services.store.close()  # type: ignore[attr-defined]


def app_of(site: dict[str, WebClient]) -> FastAPI:
    return site["anon"].app  # type: ignore[return-value]


def invalid_field(html: str, name: str) -> str:
    """The error message shown at field `name`, after checking the field is marked invalid and described by it."""
    control = re.search(rf'<(?:input|textarea|select)[^>]*id="f-{name}"[^>]*>', html)
    assert control, f"no control f-{name}"
    assert 'aria-invalid="true"' in control.group(0) and f"f-{name}-error" in control.group(0), control.group(0)
    message = re.search(rf'id="f-{name}-error"><strong>Error:</strong> ([^<]*)<', html)
    assert message, f"no error message at f-{name}"
    return message.group(1)


# --- samples and custody ---------------------------------------------------------------------------

def test_the_engineer_records_a_receipt_and_custody_on_the_booking_page(site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    lab = site["lab"]
    page = lab.get(f"/bookings/{bid}")
    assert page.status_code == 200 and "Record a sample's receipt" in page.text and 'action="/bookings/' \
        f'{bid}/sample"' in page.text
    done = post_form(lab, f"/bookings/{bid}/sample", {"serial": "TH100-0001", "condition": "sealed box",
                                                       "received_on": "2026-11-20", "firmware": ""})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/bookings/{bid}#sample-")
    page = lab.get(done.headers["location"].split("#")[0]).text
    assert "Sample TH100-0001 received (on bench bench1)" in page  # the notice, once
    assert "Chain of custody of sample TH100-0001" in page and "2026-11-20" in page and ">received<" in page
    sid = int(done.headers["location"].rsplit("-", 1)[1])
    custody = post_form(lab, f"/samples/{sid}/custody", {"kind": "on-bench", "note": "bench1, port 3"})
    assert custody.status_code == 303 and custody.headers["location"] == f"/bookings/{bid}#sample-{sid}"
    shown = site["maker"].get(f"/bookings/{bid}").text
    assert "on-bench" in shown and "bench1, port 3" in shown and f'action="/samples/{sid}/custody"' not in shown
    assert "Record a sample" not in shown  # the manufacturer reads, the lab records
    assert site["maker"].get(f"/samples/{sid}").status_code == 200
    assert site["rival"].get(f"/samples/{sid}").status_code == 404


def test_a_bad_receipt_comes_back_with_the_error_at_its_field(site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    bad = post_form(site["lab"], f"/bookings/{bid}/sample", {"serial": "has space", "condition": "dented box"})
    assert bad.status_code == 422
    assert "serial" in invalid_field(bad.text, "serial") and "dented box" in bad.text  # what was typed is kept
    day = post_form(site["lab"], f"/bookings/{bid}/sample", {"serial": "X1", "condition": "ok",
                                                             "received_on": "20/11/2026"})
    assert day.status_code == 422 and "YYYY-MM-DD" in invalid_field(day.text, "received_on")
    assert site["lab"].get(f"/bookings/{bid}/sample").status_code == 200


def test_a_bad_custody_event_comes_back_on_the_sample_page(site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    done = post_form(site["lab"], f"/bookings/{bid}/sample", {"serial": "LOOSE-7", "condition": "ok"})
    sid = int(done.headers["location"].rsplit("-", 1)[1])
    bad = post_form(site["lab"], f"/samples/{sid}/custody", {"kind": "lost", "note": "keep me"})
    assert bad.status_code == 422 and "on-bench" in invalid_field(bad.text, "kind") and "keep me" in bad.text


def test_samples_refuse_the_other_roles_and_a_post_without_its_token(site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    receipt = {"serial": "TH100-0002", "condition": "ok"}
    assert post_form(site["maker"], f"/bookings/{bid}/sample", receipt).status_code == 403
    assert post_form(site["rival"], f"/bookings/{bid}/sample", receipt).status_code in (403, 404)
    assert site["maker"].get(f"/bookings/{bid}/sample").status_code == 403
    assert site["cert"].get(f"/bookings/{bid}/firmware").status_code == 404  # not released to it
    no_token = site["lab"].post(f"/bookings/{bid}/sample", data=receipt, follow_redirects=False)
    assert no_token.status_code == 403
    anon = site["anon"].get(f"/bookings/{bid}/firmware", follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login")


# --- firmware --------------------------------------------------------------------------------------

def upload(client: WebClient, bid: int, data: bytes, name: str = "fw.clfw"):  # type: ignore[no-untyped-def]
    return post_form(client, f"/bookings/{bid}/firmware", files={"file": (name, data, "application/octet-stream")})


def test_the_manufacturer_uploads_and_sees_the_signature_result_and_hash(site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    maker = site["maker"]
    form = maker.get(f"/bookings/{bid}").text
    assert 'enctype="multipart/form-data"' in form and f'action="/bookings/{bid}/firmware"' in form
    good = upload(maker, bid, build_release("TH-100", "1.4.0", 3, size=1024), "TH-100-1.4.0.clfw")
    assert good.status_code == 303, good.text
    page = maker.get(f"/bookings/{bid}").text
    assert "TH-100-1.4.0.clfw uploaded (signature valid: Ed25519 signature valid" in page
    forged = build_image(model="TH-100", version="1.4.1", security_version=3, payload=b"e" * 64,
                         private_key=Ed25519PrivateKey.generate())
    assert upload(maker, bid, forged).status_code == 303
    assert upload(maker, bid, b"\x7fELF junk", "junk.bin").status_code == 303
    page = maker.get(f"/bookings/{bid}").text
    for state in ("valid", "invalid", "unchecked"):
        assert f'class="badge badge-{state}">{state}</span>' in page
    assert "signed with another key" in page and "not an image format certlab reads" in page
    assert re.search(r'<code class="hash">[0-9a-f]{64}</code>', page)
    fid = int(re.search(r'href="/firmware/(\d+)/download"', page).group(1))
    assert maker.get(f"/firmware/{fid}/download").content == build_release("TH-100", "1.4.0", 3, size=1024)
    assert site["lab"].get(f"/firmware/{fid}/download").status_code == 200
    assert site["rival"].get(f"/firmware/{fid}/download").status_code == 404


def test_a_bad_upload_comes_back_with_the_error_at_the_file_field(site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    other = build_image(model="XY-9", version="1", security_version=1, payload=b"q" * 8, private_key=None)
    wrong = upload(site["maker"], bid, other)
    assert wrong.status_code == 422 and "XY-9" in invalid_field(wrong.text, "file")
    empty = upload(site["maker"], bid, b"", "")
    assert empty.status_code == 422 and "choose the image file" in invalid_field(empty.text, "file")
    assert upload(site["lab"], bid, b"x").status_code == 403  # the manufacturer's release, not the lab's
    no_token = site["maker"].post(f"/bookings/{bid}/firmware", files={"file": ("a.bin", b"x")},
                                  follow_redirects=False)
    assert no_token.status_code == 403


# --- the assessor's record -------------------------------------------------------------------------

def test_the_engineer_records_decisions_with_evidence_and_the_manufacturer_reads_them(
        site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    lab, url = site["lab"], f"/bookings/{bid}/assessments"
    empty = lab.get(url)
    assert empty.status_code == 200 and "No decisions recorded yet" in empty.text and 'name="assessments"' in empty.text
    kept = post_form(lab, f"{url}/evidence", files={"file": ("6-1-2-notice.png", PHOTO, "image/png")})
    assert kept.status_code == 303 and kept.headers["location"] == f"{url}#evidence"
    done = post_form(lab, url, {"assessments": DECIDED + PERFORMED.format(name="6-1-2-notice.png")})
    assert done.status_code == 303, done.text
    page = lab.get(url).text
    assert "Recorded:" in page and "Dana Reuter" in page and "by lab at" in page
    assert '<th scope="row">5.1-1-1</th>' in page and '<th scope="row">6-1-2</th>' in page
    assert f'href="{url}/evidence/6-1-2-notice.png"' in page
    assert lab.get(f"{url}/evidence/6-1-2-notice.png").content == PHOTO
    assert lab.get(f"{url}/record.yaml").text.startswith("# Conceptual")
    booking = lab.get(f"/bookings/{bid}").text
    assert "Assessor's record" in booking and "by Dana Reuter" in booking

    maker = site["maker"].get(url)
    assert maker.status_code == 200 and '<th scope="row">5.1-1-1</th>' in maker.text
    assert 'name="assessments"' not in maker.text and "/evidence/6-1-2-notice.png" not in maker.text
    assert site["maker"].get(f"{url}/evidence/6-1-2-notice.png").status_code == 403
    assert post_form(site["maker"], url, {"assessments": DECIDED}).status_code == 403
    assert site["cert"].get(url).status_code in (403, 404)
    assert site["rival"].get(url).status_code == 404
    assert lab.get(f"{url}/evidence/..%2Fassessments.history.json").status_code == 404


def test_a_bad_record_comes_back_with_the_loaders_line_and_the_text_kept(site: dict[str, WebClient]) -> None:
    bid = add_booking(app_of(site))
    url = f"/bookings/{bid}/assessments"
    text = DECIDED.replace("verdict: PASS", "verdict: MAYBE", 1)
    bad = post_form(site["lab"], url, {"assessments": text})
    assert bad.status_code == 422
    assert "decisions." in invalid_field(bad.text, "assessments") and "MAYBE" in bad.text
    missing = post_form(site["lab"], url, {"assessments": DECIDED + PERFORMED.format(name="nope.png")})
    assert missing.status_code == 422 and "evidence/nope.png" in invalid_field(missing.text, "assessments")
    by_file = post_form(site["lab"], url, {"assessments": ""}, files={"assessments_file": ("a.yaml", DECIDED.encode())})
    assert by_file.status_code == 303
    evidence = post_form(site["lab"], f"{url}/evidence", files={"file": ("../x.png", b"x", "image/png")})
    assert evidence.status_code == 422 and "plain file name" in invalid_field(evidence.text, "file")
    no_token = site["lab"].post(url, data={"assessments": DECIDED}, follow_redirects=False)
    assert no_token.status_code == 403


def test_the_upload_forms_get_the_upload_limit_not_the_json_one(site: dict[str, WebClient]) -> None:
    from lab.api.bodylimit import upload_paths

    paths = upload_paths(app_of(site), pages=True)
    for path in ("/bookings/7/firmware", "/bookings/7/assessments/evidence", "/bookings/7/assessments"):
        assert any(p.match(path) for p in paths), path



def test_a_certifier_reads_samples_and_firmware_of_a_released_booking_but_no_image_or_record(
        site: dict[str, WebClient]) -> None:
    app = app_of(site)
    bid = add_booking(app, status="accepted")
    samples.receive_sample(services(app), caller(app, "lab"), bid, serial="CERT-1", condition="ok")
    fid = firmware.upload_firmware(services(app), caller(app, "maker"), bid, io.BytesIO(b"image"), "fw.bin").firmware.id
    set_status(app, bid, "tested")
    with unit(services(app).store) as s:
        s.add(ReportRelease(run_id=f"run-{bid}", booking_id=bid, org_id=caller(app, "cert").org_id,
                            released_by=caller(app, "lab").id))
    page = site["cert"].get(f"/bookings/{bid}")
    assert page.status_code == 200 and "Sample CERT-1" in page.text and "fw.bin" in page.text
    assert "/firmware/" not in page.text and "Assessor's record" not in page.text  # no image, no record
    assert 'action="/samples/' not in page.text and "Record a sample" not in page.text
    assert site["cert"].get(f"/firmware/{fid}/download").status_code == 403
    assert site["cert"].get(f"/bookings/{bid}/assessments").status_code == 403
