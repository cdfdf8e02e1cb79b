"""The products and bookings pages through FastAPI's TestClient (no browser): each role's pages, the
others refused (403 page, or 404 for another organisation's booking), CSRF, and forms shown again
with the error at the field it concerns (an ICS problem at the ICS file input, with the file's name
and the field path inside it).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from webui import ROOT, WebClient, login, post_form, web  # noqa: F401 (fixture)

from lab.store import bookings as bk
from lab.store.models import Product, ReportRelease, User
from lab.store.unit import reading, unit

ICS = (ROOT / "inventory" / "products" / "TH-100" / "ics.yaml").read_bytes()
IXIT = (ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml").read_bytes()
DAY = datetime.now(timezone.utc).date() + timedelta(days=10)


def ids(web: WebClient, name: str) -> tuple[int, int]:
    """(user id, organisation id) of a user."""
    with reading(web.app.state.services.store) as s:  # type: ignore[attr-defined]
        user = s.query(User).filter(User.name == name).one()
        return user.id, user.org_id


def product(web: WebClient, name: str = "maker", model: str = "TH-100") -> int:
    _, org = ids(web, name)
    return bk.create_product(web.app.state.services.store, org_id=org, model=model, name="Thermostat",  # type: ignore[attr-defined]
                             vendor="Acme").id


def booking(web: WebClient, product_id: int, name: str = "maker", **window: date) -> int:
    user, org = ids(web, name)
    return bk.create_booking(web.app.state.services.store, org_id=org, product_id=product_id,  # type: ignore[attr-defined]
                             created_by=user, firmware_version="1.4.0", edition="v2", suites=["en303645"],
                             ics=ICS.decode(), ixit=IXIT.decode(), **window).id


def error_at(html: str, field: str) -> str:
    """The error shown at a form field (its text), asserting the control points at it."""
    control = re.search(rf'<(?:input|select|textarea) id="f-{field}"[^>]*>', html)
    assert control, f"no control f-{field}"
    assert 'aria-invalid="true"' in control.group(0) and f"f-{field}-error" in control.group(0), control.group(0)
    message = re.search(rf'<p class="error" id="f-{field}-error">(.*?)</p>', html, re.S)
    assert message, f"no error at {field}"
    text = re.sub(r"<[^>]+>", "", message.group(1)).replace("&#39;", "'").replace("&#34;", '"')
    return text.removeprefix("Error: ")


def test_a_manufacturer_adds_a_product_and_books_with_errors_at_the_field(web: WebClient) -> None:
    maker = login(web, "maker")
    assert "You have no products yet" in maker.get("/products").text
    assert "Add the product first" in maker.get("/bookings/new").text
    bad = post_form(maker, "/products/new", {"model": "", "name": "Thermostat", "vendor": "Acme"})
    assert bad.status_code == 422 and "DUT model" in error_at(bad.text, "model")
    added = post_form(maker, "/products/new", {"model": "TH-100", "name": "Thermostat", "vendor": "Acme"})
    assert added.status_code == 303 and added.headers["location"] == "/products"
    listed = maker.get("/products")
    assert "Product TH-100 added" in listed.text and "Book a test of TH-100" in listed.text
    again = post_form(maker, "/products/new", {"model": "TH-100", "name": "x", "vendor": "y"})
    assert again.status_code == 409 and "already has product model" in error_at(again.text, "model")

    with reading(web.app.state.services.store) as s:  # type: ignore[attr-defined]
        pid = s.query(Product).one().id
    form = {"product_id": str(pid), "firmware_version": "1.4.0", "edition": "v2", "suites": ["en303645"],
            "preferred_from": DAY.isoformat()}
    wrong = ICS.replace(b'"5.1-1":  {support: Y', b'"5.1-1":  {support: maybe', 1)
    r = post_form(maker, "/bookings/new", form, files={"ics": ("acme-th100-ics.yaml", wrong),
                                                       "ixit": ("acme-ixit.yaml", IXIT)})
    assert r.status_code == 422
    msg = error_at(r.text, "ics")
    assert msg.startswith("acme-th100-ics.yaml: ") and "provisions.5.1-1.support" in msg and "'Y', 'N' or 'N/A'" in msg
    assert 'value="1.4.0"' in r.text  # what was typed is kept
    other = IXIT.replace(b"  firmware: 1.4.0", b"  firmware: 1.5.0", 1)
    r = post_form(maker, "/bookings/new", form, files={"ics": ("ics.yaml", ICS), "ixit": ("ixit.yaml", other)})
    assert "product.firmware" in error_at(r.text, "ixit") and "1.5.0" in error_at(r.text, "ixit")
    r = post_form(maker, "/bookings/new", {**form, "preferred_to": (DAY - timedelta(days=1)).isoformat()},
                  files={"ics": ("ics.yaml", ICS), "ixit": ("ixit.yaml", IXIT)})
    assert "before preferred_from" in error_at(r.text, "preferred_to")
    r = post_form(maker, "/bookings/new", form, files={"ics": ("ics.pdf", b"%PDF\xff\xfe"), "ixit": ("ixit.yaml", IXIT)})
    assert "not UTF-8" in error_at(r.text, "ics")
    r = post_form(maker, "/bookings/new", {**form, "firmware_version": "one four"},
                  files={"ics": ("ics.yaml", ICS), "ixit": ("ixit.yaml", IXIT)})
    assert "firmware_version" in error_at(r.text, "firmware_version")

    made = post_form(maker, "/bookings/new", form, files={"ics": ("ics.yaml", ICS), "ixit": ("ixit.yaml", IXIT)})
    assert made.status_code == 303 and re.fullmatch(r"/bookings/\d+", made.headers["location"])
    page = maker.get(made.headers["location"])
    assert page.status_code == 200 and "requested" in page.text and "Timeline" in page.text
    assert "Cancel this booking" in page.text and "Accept onto a test day" not in page.text
    assert "Next step:" in page.text and "upload the firmware image" in page.text
    doc = maker.get(made.headers["location"] + "/ics.yaml")
    assert doc.status_code == 200 and doc.content == ICS
    assert "Booking " in maker.get("/bookings").text


def test_the_engineer_accepts_from_the_inbox_with_the_slot_picker(web: WebClient) -> None:
    pid = product(web)
    first = booking(web, pid, preferred_from=DAY, preferred_to=DAY + timedelta(days=2))
    second = booking(web, pid)
    lab = login(web, "lab")
    inbox = lab.get("/bookings")
    assert inbox.status_code == 200 and "Bookings inbox" in inbox.text and "Requested (2)" in inbox.text
    assert "<caption>" in inbox.text and '<th scope="col">Manufacturer</th>' in inbox.text and "Acme" in inbox.text
    page = lab.get(f"/bookings/{first}")
    assert f'<option value="{DAY.isoformat()}">' in page.text and "4 of 4 benches free" in page.text
    assert post_form(lab, f"/bookings/{second}/accept", {"day": ""}).status_code == 422  # no window: give the day
    r = post_form(lab, f"/bookings/{second}/accept", {"day": "someday"})
    assert r.status_code == 422 and "YYYY-MM-DD" in error_at(r.text, "day")
    accepted = post_form(lab, f"/bookings/{first}/accept", {"day": ""})
    assert accepted.status_code == 303
    shown = lab.get(f"/bookings/{first}").text
    assert f"accepted for {DAY.isoformat()}" in shown and "test day" in shown
    assert "Accepted (1)" in lab.get("/bookings").text
    assert "No rejected bookings" in lab.get("/bookings?status=rejected").text
    assert lab.get("/bookings?status=bogus").status_code == 422
    r = post_form(lab, f"/bookings/{second}/reject", {"reason": ""})
    assert r.status_code == 422 and "say why" in error_at(r.text, "reason")
    assert post_form(lab, f"/bookings/{second}/reject", {"reason": "no samples"}).status_code == 303
    maker = login(web, "maker")
    assert "Rejected: no samples" in maker.get(f"/bookings/{second}").text


def test_a_full_day_is_shown_at_the_day_picker(web: WebClient) -> None:
    pid = product(web)
    bid = booking(web, pid, preferred_from=DAY)
    for _ in range(4):
        bk.reserve_slot(web.app.state.services.store, model="TH-100", day=DAY, capacity=4)  # type: ignore[attr-defined]
    lab = login(web, "lab")
    assert f"{DAY.isoformat()} ({DAY:%a}): full" in lab.get(f"/bookings/{bid}").text
    r = post_form(lab, f"/bookings/{bid}/accept", {"day": DAY.isoformat()})
    assert r.status_code == 409 and "no slot left" in error_at(r.text, "day")


def test_the_inbox_is_paginated(web: WebClient) -> None:
    pid = product(web)
    for _ in range(55):
        booking(web, pid)
    lab = login(web, "lab")
    first = lab.get("/bookings")
    assert first.text.count('<th scope="row">') == 50 and "Page 1 of 2" in first.text and 'rel="next"' in first.text
    second = lab.get("/bookings?page=2")
    assert second.text.count('<th scope="row">') == 5 and 'rel="prev"' in second.text


def test_roles_and_tenants_are_refused(web: WebClient) -> None:
    pid = product(web)
    bid = booking(web, pid)
    lab, cert, rival = login(web, "lab"), login(web, "cert"), login(web, "rival")
    for client, url in ((lab, "/products"), (lab, "/bookings/new"), (cert, "/products"), (cert, "/products/new")):
        r = client.get(url)
        assert r.status_code == 403 and "Not allowed" in r.text, url
    assert rival.get(f"/bookings/{bid}").status_code == 404
    assert rival.get(f"/bookings/{bid}/ics.yaml").status_code == 404
    assert post_form(rival, f"/bookings/{bid}/cancel").status_code == 404
    assert post_form(rival, f"/bookings/{bid}/accept").status_code == 403  # accepting is the lab's, for any id
    assert post_form(lab, f"/bookings/{bid}/cancel").status_code == 403
    assert "No bookings yet" in rival.get("/bookings").text
    assert cert.get(f"/bookings/{bid}").status_code == 404  # nothing released to it yet
    user, _ = ids(web, "lab")
    _, cert_org = ids(web, "cert")
    with unit(web.app.state.services.store) as s:  # type: ignore[attr-defined]
        s.add(ReportRelease(run_id="run-1", booking_id=bid, org_id=cert_org, released_by=user))
    seen = cert.get(f"/bookings/{bid}")
    assert seen.status_code == 200 and "Report released" in seen.text
    assert 'method="post"' not in seen.text.split("<main", 1)[1]  # read-only: no form but the header's sign-out
    assert post_form(cert, f"/bookings/{bid}/cancel").status_code == 403
    assert "Booking " in cert.get("/bookings").text
    anonymous = WebClient(web.app)
    r = anonymous.get(f"/bookings/{bid}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_a_post_without_the_csrf_token_is_refused(web: WebClient) -> None:
    pid = product(web)
    bid = booking(web, pid, preferred_from=DAY)
    lab, maker = login(web, "lab"), login(web, "maker")
    assert lab.post(f"/bookings/{bid}/accept", data={"day": ""}, follow_redirects=False).status_code == 403
    assert maker.post("/products/new", data={"model": "TH-2", "name": "x", "vendor": "y"},
                      follow_redirects=False).status_code == 403
    assert maker.post(f"/bookings/{bid}/cancel", data={"csrf": "forged"}, follow_redirects=False).status_code == 403
    assert "requested" in maker.get(f"/bookings/{bid}").text
