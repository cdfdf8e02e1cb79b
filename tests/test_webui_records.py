"""The product record pages through FastAPI's TestClient (no browser, no lab): the public page and
index read without an account, the headline figures and the flag, every section from the signed
chain in the store (tests/recordview.py), the manufacturer's forms shown only to the product's
manufacturer, a bad SBOM or CSAF refused at its field with the document's field path, CSRF, the
engineer's "Open the product record" button; and the helpers that shape the record for reading."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from html import unescape
from pathlib import Path

import pytest

from lab.actions.errors import Invalid
from lab.reports.keys import KEY_DIR_ENV, init_keys, load_private_key
from lab.sim.publish import advisory, advisory_json, sbom_json
from lab.sim.vendor import build_release, firmware_components, next_security_version
from lab.store.models import Booking, Organisation, Product
from lab.store.unit import unit
from lab.webui.pages import records as pages
from tests.records_lab import booking_with_run, certifying_run, records_world
from tests.recordview import MODEL, PRODUCT_DIR, history, seed_record
from tests.webui import WebClient, login, make_app, post_form

TODAY = date.today()
PAGE = f"/public/records/{MODEL}"
RUN = "20261206-100000-again1"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebClient]:
    """The web app with TH-100's record (7 signed revisions) kept for Acme, the maker's organisation;
    its re-test inputs (run.json, IXIT) as opening it from a run keeps them."""
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    init_keys(tmp_path / "keys")
    client = make_app(tmp_path)
    store = client.app.state.services.store  # type: ignore[attr-defined]
    with unit(store) as s:
        org = s.query(Organisation).filter_by(name="Acme").one()
        product = Product(org_id=org.id, model=MODEL, name="Smart thermostat", vendor="Acme")
        s.add(product)
        s.flush()
        org_id, product_id = org.id, product.id
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "run.json").write_text('{"suites": ["examples"], "options": [], "edition": "v2"}')
    (inputs / "ixit.yaml").write_text((PRODUCT_DIR / "ixit.yaml").read_text())
    seed_record(store, org_id=org_id, product_id=product_id, key=load_private_key(), today=TODAY,
                inputs_dir=str(inputs))
    with client:
        yield client
    store.close()


def text_of(html: str) -> str:
    """The page's words without tags, spaces collapsed (what a reader sees, roughly)."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def field_error(html: str, name: str) -> str:
    """The error shown at form field `name` (its aria-invalid control and the message it points to)."""
    control = re.search(rf'<(?:input|select|textarea)[^>]*id="f-{re.escape(name)}"[^>]*>', html)
    assert control and 'aria-invalid="true"' in control.group(0), f"no invalid control f-{name}"
    message = re.search(rf'id="f-{re.escape(name)}-error"><strong>Error:</strong> ([^<]*)<', html)
    assert message, f"no error message at f-{name}"
    return message.group(1)


# --- shaping the record for reading ------------------------------------------------------------------


def test_when_days_and_support_read_as_people_read_them() -> None:
    assert pages.when("2026-12-06T10:20:00Z") == "2026-12-06 10:20 UTC"
    assert pages.when("2026-12-06") == "2026-12-06" and pages.when(None) == ""
    assert pages.days_between("2026-12-01T00:00:00Z", "2026-12-07") == 6
    assert pages.days_between(None, "2026-12-07") is None and pages.days_between("soon", "2026-12-07") is None
    assert pages.support_text({"support_days_left": 1}) == "1 day left"
    assert pages.support_text({"support_days_left": -3}) == "ended 3 days ago"
    assert pages.support_text({"support_days_left": None}) == "not declared"


def test_an_sbom_diff_is_summed_up_in_one_line() -> None:
    releases = history(TODAY)[-1][2]["releases"]
    assert pages.sbom_summary(releases[1]["sbom_diff"]) == \
        "1 added, 0 removed, 2 changed, 1 unchanged (against release 1.6's SBOM)"
    assert pages.sbom_summary(releases[0]["sbom_diff"]).startswith(
        "3 added, 0 removed, 0 changed, 0 unchanged (the first")
    assert pages.sbom_summary(None) == "no SBOM comparison"


def test_an_advisory_is_open_only_as_the_figures_say_else_fixed_in_the_release_that_fixed_it() -> None:
    record = history(TODAY)[-1][2]
    first, second = record["advisories"]
    figures = {"as_of": TODAY.isoformat(), "open_advisory_ids": [second["id"]]}
    assert pages.advisory_state(second, record, figures) == pages.AdvisoryState(True, "open for 6 days")
    assert pages.advisory_state(first, record, figures) == pages.AdvisoryState(False, "fixed in 1.5.0")
    unfixed = {**first, "fixed": ["9.9.9"]}
    assert pages.advisory_state(unfixed, record, figures) == \
        pages.AdvisoryState(False, "not affecting the current firmware")


def test_an_error_inside_a_document_names_its_field_path_at_the_file_input() -> None:
    assert pages.document_path(["components", 3, "name"]) == "components[3].name"
    assert pages.document_path([]) == ""
    inner = Invalid(["body", "sbom", "components", 3, "name"], "required field missing; fix: add it")
    assert pages.field_errors_of(inner, pages.RELEASE_FIELDS, "image") == \
        {"sbom": "components[3].name: required field missing; fix: add it"}
    date_error = Invalid(["body", "released_on"], "released_on 'x': not a date; fix: give YYYY-MM-DD")
    assert pages.field_errors_of(date_error, pages.RELEASE_FIELDS, "image") == {"released_on": date_error.msg}
    elsewhere = Invalid(["body", "run_id"], "not this form's")
    assert pages.field_errors_of(elsewhere, pages.ADVISORY_FIELDS, "csaf") == {"csaf": "not this form's"}


def test_revisions_are_listed_newest_first_with_a_short_hash() -> None:
    listed = [{"seq": n, "at": "x", "kind": "note", "summary": "s", "hash": f"{n}" * 64} for n in (1, 3, 2)]
    rows = pages.revision_rows(listed)
    assert [r["seq"] for r in rows] == [3, 2, 1] and rows[0]["short"] == "3" * pages.SHORT_HASH


def test_a_release_links_its_kept_sbom_and_one_holding_its_components_does_not() -> None:
    summary = {"version": "1.5.0", "sbom": {"format": "CycloneDX", "spec_version": "1.5", "sha256": "a" * 64,
                                            "components": 120}}
    assert pages.sbom_url("TH-100", summary) == "/records/TH-100/releases/1.5.0/sbom"
    whole = {"version": "1.4.1", "sbom": {"format": "CycloneDX", "spec_version": "1.5", "sha256": "b" * 64,
                                          "components": [{"name": "busybox", "version": "1.36.1", "purl": None}]}}
    assert pages.sbom_url("TH-100", whole) is None


# --- the public page ----------------------------------------------------------------------------------


def test_the_record_page_is_public_with_the_headline_figures_and_the_flag_first(app: WebClient) -> None:
    answer = app.get(PAGE)
    assert answer.status_code == 200, answer.text
    html, words = answer.text, text_of(answer.text)
    figures = html[html.index('<dl class="figures">'):html.index("</dl>", html.index('<dl class="figures">'))]
    shown = text_of(figures)
    assert "Days since the last security update 4 release 1.5.0" in shown
    assert "Open advisories 1 TH100-2026-002; oldest open 6 days" in shown
    assert "Support days left 1120 security updates until" in shown
    assert "Last re-test FAIL FLAG: a provision went from PASS to FAIL release 1.6.0" in shown
    assert html.index('<dl class="figures">') < html.index('id="cert-h"'), "the figures come first"
    conformance_sha256 = history(TODAY)[0][2]["certification"][0]["conformance_sha256"]
    for seen in ("CL-2026-0042", conformance_sha256, "(sign-in needed)", "security@acme.example",
                 "Security updates for at least three years", "Release 1.6.0 FLAG", "debugd 0.9",
                 "busybox 1.36.1 → 1.37.0", "1 newly failing : 5.6-1", "1 newly passing : 5.5-1", "2 unchanged",
                 "5.3-2 PASS → INCONCLUSIVE", "open for 6 days", "fixed in 1.5.0", "CVE-2026-22222, CVE-2026-22223",
                 "Revisions (7)", f"certlab verify-record http://testserver/records/{MODEL}/revisions"):
        assert seen in words, seen
    assert f'href="/records/{MODEL}/revisions/7"' in html and f'href="/records/{MODEL}/revisions/1"' in html
    assert 'href="/feed/records.atom"' in html and 'href="/feed/records.json"' in html
    assert "Register a release" not in html and f'href="/login?next=/public/records/{MODEL}"' in html
    assert '<nav aria-label="Main">' in html and 'href="/public/records" aria-current="page"' in html
    assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_the_index_lists_each_record_with_its_figures(app: WebClient) -> None:
    answer = app.get("/public/records")
    assert answer.status_code == 200
    row = text_of(answer.text[answer.text.index("<tbody>"):])
    assert row.startswith(f"{MODEL} Acme Smart thermostat 4 1 1120 days left FAIL 1.6.0 FLAG: PASS to FAIL"), row
    assert f'href="/public/records/{MODEL}"' in answer.text


def test_an_unknown_model_is_the_404_page(app: WebClient) -> None:
    answer = app.get("/public/records/NO-SUCH")
    assert answer.status_code == 404 and "<h1>Page not found</h1>" in answer.text


def test_anonymous_views_are_rate_limited_per_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    client = make_app(tmp_path, rate_per_second=0.001, rate_burst=2)
    with client:
        assert [client.get("/public/records").status_code for _ in range(3)] == [200, 200, 429]
    client.app.state.services.store.close()  # type: ignore[attr-defined]


# --- the manufacturer's forms ---------------------------------------------------------------------------


def test_the_forms_are_shown_to_the_product_s_manufacturer_only(app: WebClient) -> None:
    assert "Register a release" in login(app, "maker").get(PAGE).text
    for name in ("rival", "lab", "cert"):
        html = login(app, name).get(PAGE).text
        assert "Register a release" not in html and "Register an advisory" not in html, name
        assert "/login?next=" not in html, "signed in: no sign-in hint"


def test_a_bad_sbom_is_refused_at_its_field_with_the_document_s_field_path(app: WebClient,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    maker = login(app, "maker")
    bad = b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": [{"type": "library"}]}'
    answer = post_form(maker, f"{PAGE}/releases", {"released_on": ""},
                       files={"image": ("TH-100-1.7.0.clfw", b"firmware"), "sbom": ("bom.json", bad)})
    assert answer.status_code == 422
    message = field_error(answer.text, "sbom")
    assert message.startswith("components[0].name: ") and "fix:" in message, message
    assert "Please correct this" in answer.text and "Release 1.7.0" not in answer.text
    missing = post_form(maker, f"{PAGE}/releases", {}, files={"image": ("TH-100-1.7.0.clfw", b"firmware")})
    assert missing.status_code == 422 and "CycloneDX" in field_error(missing.text, "sbom")
    no_image = post_form(maker, f"{PAGE}/releases", {}, files={"sbom": ("bom.json", bad)})
    assert no_image.status_code == 422 and "firmware image" in field_error(no_image.text, "image")
    monkeypatch.setattr(pages, "MAX_DOCUMENT", 16)
    huge = post_form(maker, f"{PAGE}/releases", {}, files={"image": ("TH-100-1.7.0.clfw", b"firmware"),
                                                           "sbom": ("bom.json", bad)})
    assert huge.status_code == 422 and "bom.json: larger than" in field_error(huge.text, "sbom")


def test_a_bad_csaf_is_refused_at_its_field(app: WebClient) -> None:
    maker = login(app, "maker")
    answer = post_form(maker, f"{PAGE}/advisories", files={"csaf": ("advisory.json", b'{"document": {}}')})
    assert answer.status_code == 422
    assert field_error(answer.text, "csaf")
    assert "TH100-2026-003" not in answer.text


def test_the_manufacturer_registers_a_release_and_an_advisory_and_reads_them_on_the_record(app: WebClient) -> None:
    maker = login(app, "maker")
    image = build_release(MODEL, "1.7.0", next_security_version())
    bom = sbom_json(MODEL, "1.7.0", firmware_components("1.7.0")).encode()
    done = post_form(maker, f"{PAGE}/releases", {"released_on": TODAY.isoformat()},
                     files={"image": (f"{MODEL}-1.7.0.clfw", image), "sbom": (f"{MODEL}-1.7.0.cdx.json", bom)})
    assert done.status_code == 303 and done.headers["location"] == f"{PAGE}#releases", done.text
    shown = text_of(maker.get(PAGE).text)
    assert "Release 1.7.0 registered (signature valid" in shown and "Its re-test is queued" in shown
    assert "Release 1.7.0 Released" in shown and "queued (queued run" in shown
    page = maker.get(PAGE).text
    link = f"/records/{MODEL}/releases/1.7.0/sbom"
    assert f'href="{link}"' in page and f'href="/records/{MODEL}/releases/1.6.0/sbom"' not in page, \
        "the new release links its kept SBOM; 1.6.0 (its components in the record, the old shape) has none"
    assert "against release 1.6.0's SBOM" in text_of(page), \
        "diffed against 1.6.0's components read from the record itself"
    assert app.get(link).content == bom, "served as uploaded, no account needed"
    csaf = advisory_json(advisory(MODEL, advisory_id="TH100-2026-003", title="Fixed in 1.7.0",
                                  cves=["CVE-2026-33333"], affected=["1.6.0"], fixed=["1.7.0"], published=TODAY))
    done = post_form(maker, f"{PAGE}/advisories", files={"csaf": ("TH100-2026-003.json", csaf.encode())})
    assert done.status_code == 303, done.text
    shown = text_of(maker.get(PAGE).text)
    assert "Advisory TH100-2026-003 registered" in shown and "Revisions (9)" in shown
    rows = re.findall(r'<th scope="row">(\d+)</th><td>[^<]*</td><td>([a-z-]+)</td>', maker.get(PAGE).text)
    assert rows[:2] == [("9", "advisory"), ("8", "release")] and len(rows) == 9, rows
    assert "Days since the last security update 0 release 1.7.0" in shown, "1.7.0 fixes an advisory"
    lab = login(app, "lab")
    page = lab.get(PAGE).text
    assert f'action="{PAGE}/releases/1.6.0/retest"' in page, "an ended re-test can be queued again by the lab"
    assert f'action="{PAGE}/releases/1.7.0/retest"' not in page, "a pending one cannot"
    assert f'action="{PAGE}/releases/1.6.0/retest"' not in maker.get(PAGE).text
    refused = post_form(lab, f"{PAGE}/releases/1.7.0/retest")
    assert refused.status_code == 303 and "Not queued: release 1.7.0's re-test is queued already" in \
        text_of(lab.get(PAGE).text)
    assert post_form(maker, f"{PAGE}/releases/1.6.0/retest").status_code == 403


def test_another_manufacturer_and_a_stale_or_anonymous_form_are_refused(app: WebClient) -> None:
    files = {"csaf": ("advisory.json", b"{}")}
    rival = login(app, "rival")
    assert post_form(rival, f"{PAGE}/advisories", files=files).status_code == 404
    maker = login(app, "maker")
    assert maker.post(f"{PAGE}/advisories", files=files, follow_redirects=False).status_code == 403, "no CSRF token"
    anonymous = app.post(f"{PAGE}/advisories", files=files, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    assert "Revisions (7)" in text_of(app.get(PAGE).text), "nothing was added"


# --- the engineer opens a record from an approved report ---------------------------------------------------


def test_the_engineer_opens_the_record_from_an_approved_report(app: WebClient) -> None:
    store = app.app.state.services.store  # type: ignore[attr-defined]
    with unit(store) as s:
        org = s.query(Organisation).filter_by(name="Acme").one()
        product = s.query(Product).filter_by(org_id=org.id, model=MODEL).one()
        s.add(Booking(org_id=org.id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                      suites=["examples"], ics=(PRODUCT_DIR / "ics.yaml").read_text(),
                      ixit=(PRODUCT_DIR / "ixit.yaml").read_text(), status="reported", run_id=RUN, created_by=1))
    reports_dir = app.app.state.services.settings.reports_dir  # type: ignore[attr-defined]
    certifying_run(reports_dir, RUN, {"5.1-1": "PASS", "5.6-1": "PASS"})
    lab = login(app, "lab")
    report = lab.get(f"/reports/{RUN}").text
    assert "Open the product record" in report and f'action="/reports/{RUN}/open-record"' in report
    assert "Open the product record" not in login(app, "maker").get(f"/reports/{RUN}").text
    assert post_form(login(app, "maker"), f"/reports/{RUN}/open-record").status_code == 403
    done = post_form(lab, f"/reports/{RUN}/open-record")
    assert done.status_code == 303 and done.headers["location"] == PAGE
    shown = text_of(lab.get(PAGE).text)
    assert f"now holds the report of run {RUN}" in shown and f"CL-sim-{RUN}" in shown and "Revisions (8)" in shown
    again = post_form(lab, f"/reports/{RUN}/open-record")
    assert again.status_code == 303 and again.headers["location"] == f"/reports/{RUN}"
    assert "already" in text_of(lab.get(f"/reports/{RUN}").text), "the refusal shown as the notice"


def test_a_record_just_opened_reads_well_with_nothing_registered_yet(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    world = records_world(tmp_path, monkeypatch)
    with world.client:
        assert "No product record yet" in world.client.get("/public/records").text
        booking_with_run(world, RUN)
        certifying_run(world.reports, RUN, {"5.1-1": "PASS", "5.6-1": "PASS"})
        lab = login(world.client, "lab")
        assert post_form(lab, f"/reports/{RUN}/open-record").headers["location"] == PAGE
        answer = world.client.get(PAGE)
        assert answer.status_code == 200
        shown = text_of(answer.text)
        for seen in ("Days since the last security update none no registered release fixes a published advisory",
                     "Open advisories 0 no known unfixed vulnerability", "Last re-test none yet",
                     "No release registered since certification.", "No security advisory registered.",
                     "Revisions (1)", f"CL-sim-{RUN}"):
            assert seen in shown, seen
        assert "security updates until 2030-12-31" in shown and "security@sim-devices.certlab.test" in shown, \
            "support and contact from the certifying run's IXIT"
    world.svc.store.close()
