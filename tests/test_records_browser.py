"""A product record's public page in a real browser: `certlab serve` in its own process, the
distribution's Chromium, no simulated lab. The server's store holds TH-100's signed record (seven
revisions: certified, two advisories, two releases re-tested, the second flagged; tests/recordview.py).

A visitor without an account finds the record from the menu, reads the headline figures and the
flag first, opens a revision's JSON, and the chain the page names verifies; the manufacturer
signs in, is refused a bad SBOM at its field and registers a release through the form. Every page
shown has no console error and no serious or critical axe-core violation, at desktop and phone
width. With CERTLAB_SCREENSHOTS=1 the public page is saved as docs/img/record-public.png (README):
`CERTLAB_SCREENSHOTS=1 .venv/bin/python -m pytest tests/test_records_browser.py -p no:randomly`.
Helpers: tests/webapp_browser.py, tests/chromium.py.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from chromium import shot_path  # tests/chromium.py
from webapp_browser import DESKTOP, Pages, Served, chromium, private_inventory, served_app  # tests/webapp_browser.py

from lab.records.chain import verify_chain
from lab.reports.keys import PRIVATE_KEY_FILE, load_private_key
from lab.sim.publish import sbom_json
from lab.sim.vendor import build_release, firmware_components, next_security_version
from lab.store import open_store
from lab.store.accounts import user_for_token
from lab.store.models import Product
from lab.store.unit import unit
from tests.recordview import MODEL, PRODUCT_DIR, seed_record

USERS = [("maker", "manufacturer", "Acme Devices"), ("rival", "manufacturer", "Rival Devices"),
         ("lab", "engineer", "Test Lab")]
PAGE = f"/public/records/{MODEL}"
SHOT_SIZE = (DESKTOP[0], 1500)  # the figures, the certification and the flagged release in one picture


@pytest.fixture
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`certlab serve` with TH-100's record seeded into its store, signed with the server's lab key; one
    per test (a release registered by one test changes the figures another reads)."""
    folder = tmp_path_factory.mktemp("records-web")
    inventory = private_inventory(folder / "lab", "trbr", scpi_port=17970, subnet=244, ssh_base_port=17980)
    with served_app(folder / "server", inventory, USERS) as app:
        inputs = folder / "record-inputs"  # the certifying run's copies a release's re-test is queued with
        inputs.mkdir()
        (inputs / "run.json").write_text(json.dumps({"suites": ["examples"], "options": [], "edition": "v2"}))
        (inputs / "ixit.yaml").write_text((PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8"))
        with open_store(env=app.env) as store:
            maker = user_for_token(store, app.users["maker"].token)
            assert maker is not None
            with unit(store) as s:
                product = Product(org_id=maker.org_id, model=MODEL, name="Smart thermostat", vendor="Acme Devices")
                s.add(product)
                s.flush()
                product_id = product.id
            seed_record(store, org_id=maker.org_id, product_id=product_id, manufacturer="Acme Devices",
                        key=load_private_key(Path(app.env["CERTLAB_KEY_DIR"]) / PRIVATE_KEY_FILE),
                        today=datetime.now(timezone.utc).date(), inputs_dir=str(inputs))
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def pages(browser: Any, served: Served, tmp_path: Path) -> Iterator[Pages]:
    """The browser for one test; after it, every page it looked at must have been clean."""
    browser.delete_all_cookies()
    browser.get("about:blank")
    browser.get_log("browser")
    made = Pages(driver=browser, served=served, shots=tmp_path)
    yield made
    made.assert_clean()


def test_a_visitor_without_an_account_reads_the_figures_and_the_flag_and_can_verify(pages: Pages,
                                                                                    served: Served) -> None:
    pages.go("/login")
    pages.follow("Records", within="header nav")
    assert pages.path() == "/public/records", pages.path()
    row = pages.el("main tbody tr").text
    assert row.startswith(MODEL) and "FLAG" in row, row
    pages.check("anyone", "records", shot=False)

    pages.follow(MODEL)
    assert pages.path() == PAGE
    figures = [f.text for f in pages.els("main dl.figures .figure")]
    assert len(figures) == 4, figures
    assert figures[0].startswith("Days since the last security update\n4"), figures[0]
    assert figures[1].startswith("Open advisories\n1") and "TH100-2026-002" in figures[1], figures[1]
    assert figures[2].startswith("Support days left\n1120"), figures[2]
    assert "FAIL" in figures[3] and "FLAG: a provision went from PASS to FAIL" in figures[3], figures[3]
    flag = pages.el("main dl.figures .flag")
    assert flag.is_displayed() and flag.location["y"] < pages.el("#cert-h").location["y"], "the flag comes first"
    text = pages.text()
    for seen in ("CL-2026-0042", "1 newly failing: 5.6-1", "open for 6 days", "fixed in 1.5.0", "Revisions (7)"):
        assert seen in text, seen
    assert "Register a release" not in text
    pages.check("anyone", "record", shot=False)
    pages.driver.set_window_size(*SHOT_SIZE)
    try:
        pages.driver.execute_script("window.scrollTo(0, 0)")
        shot = shot_path(pages.shots, "record-public.png")
        assert pages.driver.save_screenshot(str(shot)), shot
    finally:
        pages.driver.set_window_size(*DESKTOP)

    command = pages.el("#verify pre").text
    chain_url = served.url(f"/records/{MODEL}/revisions")
    assert command == f"certlab verify-record {chain_url}", command
    with urllib.request.urlopen(chain_url, timeout=10) as resp:  # noqa: S310 - our own loopback server
        check = verify_chain(json.loads(resp.read()))
    assert check.ok and check.revisions == 7, check
    newest = pages.el("#revisions tbody tr a").get_attribute("href")
    assert newest == served.url(f"/records/{MODEL}/revisions/7"), newest
    pages.driver.get(newest)
    assert json.loads(pages.el("pre").text)["seq"] == 7, "the revision's JSON, as signed"


def test_the_manufacturer_is_refused_a_bad_sbom_at_its_field_then_registers_a_release(
        pages: Pages, served: Served, tmp_path: Path) -> None:
    image, bom = tmp_path / f"{MODEL}-1.7.0.clfw", tmp_path / f"{MODEL}-1.7.0.cdx.json"
    image.write_bytes(build_release(MODEL, "1.7.0", next_security_version()))
    bom.write_text(sbom_json(MODEL, "1.7.0", firmware_components("1.7.0")))
    bad = tmp_path / "bad.cdx.json"
    bad.write_text('{"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, '
                   '"components": [{"type": "library"}]}')

    pages.login(served.users["rival"])
    pages.go(PAGE)
    assert "Register a release" not in pages.text(), "another manufacturer's product"
    pages.login(served.users["maker"])
    pages.go(PAGE)
    pages.fill("Firmware image", image)
    pages.fill("SBOM", bad)
    pages.press("Register the release")
    assert pages.error_at("SBOM").startswith("Error: components[0].name: "), pages.error_at("SBOM")
    pages.check("manufacturer", "record-sbom-error", shot=False,
                harmless=(f"{served.url(PAGE)}/releases - Failed to load resource: the server responded with a "
                          f"status of 422",))

    pages.fill("Firmware image", image)
    pages.fill("SBOM", bom)
    pages.press("Register the release")
    assert pages.path() == f"{PAGE}#releases", pages.path()
    notice = pages.el("main .notice").text
    assert notice.startswith("Release 1.7.0 registered (signature valid") and "re-test is queued" in notice, notice
    release = pages.el("#releases article").text
    assert release.startswith("Release 1.7.0") and "queued (queued run" in release, release
    pages.check("manufacturer", "record-registered", shot=False)
