"""The web app in a real browser: `certlab serve` in its own process, the distribution's Chromium.

What only a browser proves: the pages work as served (cookies, redirects, forms, uploads, the
Content-Security-Policy against our own script, live updates by server-sent events), have no
console error, and pass axe-core's accessibility rules (no serious or critical violation) at desktop
and phone width. Each role's journey runs end to end on a private simulated lab (one bench, the
`examples` suite: a run of about 30 s); around it the sign-in, CSRF, session expiry and tenancy
checks go through the pages as a user (or an attacker with a stale form) would.

One server and one browser for the module; every test signs in afresh. Screenshots go to
tmp_path, or with CERTLAB_SCREENSHOTS=1 to docs/img/webapp-<role>-<page>.png for the README.
Helpers: tests/webapp_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webapp_browser import (  # tests/webapp_browser.py
    Pages,
    Served,
    chromium,
    private_inventory,
    served_app,
    shot_path,
)

from lab.store import open_store
from lab.store.accounts import user_for_token
from lab.store.models import Booking, Product, WebSession
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIR = ROOT / "inventory" / "products" / "TH-100"
USERS = [("maker", "manufacturer", "Acme Devices"), ("rival", "manufacturer", "Rival Devices"),
         ("lab", "engineer", "Test Lab"), ("cert", "certifier", "CertBody")]
# a page answered with its error status on purpose: the browser logs the status as a console error
STATUS_LOGGED = "the server responded with a status of"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("webapp")
    inventory = private_inventory(folder / "lab", "tweb", scpi_port=17910, subnet=241, ssh_base_port=17920)
    with served_app(folder / "server", inventory, USERS) as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def pages(browser: Any, served: Served, tmp_path: Path) -> Pages:
    shots = shot_path(tmp_path, "x").parent
    browser.delete_all_cookies()
    browser.get("about:blank")
    browser.get_log("browser")  # what an earlier test left in the console is not this test's
    return Pages(driver=browser, served=served, shots=shots)


def seed_booking(served: Served, owner: str) -> int:
    """A TH-100 product and a requested booking of it in `owner`'s organisation, straight into the store."""
    with open_store(env=served.env) as store:
        user = user_for_token(store, served.users[owner].token)
        assert user is not None
        with unit(store) as s:
            product = Product(org_id=user.org_id, model="TH-100", name="Thermostat", vendor="Certlab Sim Devices")
            s.add(product)
            s.flush()
            booking = Booking(org_id=user.org_id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                              suites=["examples"], ics=(PRODUCT_DIR / "ics.yaml").read_text(encoding="utf-8"),
                              ixit=(PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8"), status="requested",
                              created_by=user.id)
            s.add(booking)
            s.flush()
            return booking.id


def test_sign_in_by_password_or_token_and_sign_out(pages: Pages, served: Served) -> None:
    maker = served.users["maker"]
    pages.go("/account")  # a page needs a session: to the login page, coming back afterwards
    assert pages.path().startswith("/login?next=") and "account" in pages.path(), pages.path()
    pages.check("anyone", "sign-in")

    pages.sign_in(maker.name, "not-the-password")
    assert pages.path().startswith("/login")
    wrong = pages.el("main [role=alert]").text
    pages.go("/login")
    pages.sign_in("nobody-of-that-name", "not-the-password")
    assert pages.el("main [role=alert]").text == wrong, "the message must not say whether the user exists"
    pages.check("anyone", "sign-in-failed", harmless=(STATUS_LOGGED,), narrow=False)

    pages.go("/login?next=/account")
    pages.sign_in(maker.name, maker.password)
    assert pages.path() == "/account", pages.path()
    assert maker.name in pages.el("header").text and "manufacturer" in pages.el("header").text
    cookie = pages.driver.get_cookie("certlab_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    pages.check("manufacturer", "account")
    pages.sign_out()
    assert "signed out" in pages.text().lower()
    pages.go("/account")
    assert pages.path().startswith("/login"), "signed out, the account page is not shown"

    lab = served.users["lab"]
    pages.go("/login")
    pages.sign_in_with_token(lab.token)
    assert pages.path() == "/bench", pages.path()  # an engineer starts at the bench board
    assert lab.name in pages.el("header").text


def test_a_form_with_a_wrong_csrf_token_is_refused(pages: Pages, served: Served) -> None:
    maker = served.users["maker"]
    pages.login(maker)
    pages.go("/account")
    forms = [f for f in pages.els("main form[method=post]") if f.find_elements("css selector", "input[name=csrf]")]
    assert forms, "the account page has no form with a CSRF token"
    form = forms[0]
    pages.driver.execute_script("arguments[0].querySelector('input[name=csrf]').value = 'forged';", form)
    for box in form.find_elements("css selector", "input[type=password]"):
        box.send_keys("some-new-password-1")
    old = pages.el("html")
    form.submit()
    pages.next_page(old, "the answer to the forged form")
    assert pages.el("h1").text == "Not allowed", pages.text()[:300]
    assert "reload the page" in pages.text()
    pages.check("anyone", "csrf-refused", harmless=(STATUS_LOGGED,), narrow=False)

    pages.driver.delete_all_cookies()  # another site's form: no session cookie goes with it (SameSite)
    pages.go("/login")
    pages.driver.execute_script("document.querySelector('main form input[name=csrf]').value = 'forged';")
    pages.sign_in(maker.name, maker.password)
    assert pages.el("h1").text == "Not allowed" and "/account" not in pages.path()


def test_an_expired_session_goes_back_to_sign_in(pages: Pages, served: Served) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    maker = served.users["maker"]
    pages.login(maker)
    pages.go("/account")
    assert pages.path() == "/account"
    # idle for longer than CERTLAB_SESSION_IDLE_MIN: the session's last request moves back a day
    from lab.webui.session import key_of

    key = key_of(pages.driver.get_cookie("certlab_session")["value"])
    with open_store(env=served.env) as store, unit(store) as s:
        row = s.get(WebSession, key)
        assert row is not None, "the browser's session is not in the store"
        s.execute(update(WebSession).where(WebSession.id == key).values(
            last_seen_at=row.last_seen_at - timedelta(days=1), created_at=row.created_at - timedelta(days=1)))
    pages.go("/account?tab=1")
    assert pages.path().startswith("/login") and "next=" in pages.path(), pages.path()
    assert "session expired" in pages.text().lower(), pages.text()[:300]
    pages.check("anyone", "session-expired", narrow=False)
    pages.sign_in(maker.name, maker.password)
    assert pages.path() == "/account?tab=1", "after signing in again the page asked for is shown"


def test_another_organisations_booking_is_not_found(pages: Pages, served: Served) -> None:
    booking = seed_booking(served, "maker")
    pages.login(served.users["maker"])
    pages.go(f"/bookings/{booking}")
    assert pages.el("h1").text != "Page not found", "the owner sees its booking"
    pages.login(served.users["rival"])
    pages.go(f"/bookings/{booking}")
    assert pages.el("h1").text == "Page not found", pages.text()[:300]
    assert "TH-100" not in pages.text() and "Acme" not in pages.text()
    pages.check("manufacturer", "not-found", harmless=(STATUS_LOGGED,), narrow=False)
    pages.login(served.users["cert"])  # a certifier has no bookings page: the 403 page
    pages.go(f"/bookings/{booking}")
    assert pages.el("h1").text in ("Not allowed", "Page not found"), pages.text()[:300]
