"""The conformance report (ISO/IEC 17025 7.8 test report): HTML content, escaping, and a real PDF print.

The HTML is checked with the stdlib parser rather than by string search where structure matters
(headings, links, table cells), so a test does not pass on a word that merely appears in a reason.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lab.errors import CertlabError
from lab.reports.document import SCHEMA
from lab.reports.errors import ReportError
from lab.reports.pdf import chromium_command, print_pdf
from lab.reports.render import css_string, human_size, render_html, write_html
from lab.reports.sample import synthetic_doc

REPORT_ID = "CL-test-20261126-022341-abc123"
EVIL = "<script>alert('x')</script> & \"quoted\""

# the ISO/IEC 17025 7.8.2.1 items, as section headings of the report
HEADINGS = (
    "Laboratory and customer", "Items tested", "Method", "Dates", "Decision rule", "Summary of results",
    "Deviations and inconclusive results", "Results per provision", "Other test results", "Equipment used",
    "Evidence index", "Authorisation",
)


def _result(bench: str, serial: str, verdict: str, reason: str, evidence: list[str], allure: str | None,
            cause: str | None = None) -> dict[str, Any]:
    nodeid = f"testsuites/en303645/test_x.py::test_y[{bench}]"
    return {"bench": bench, "executed_on": bench, "dut_serial": serial, "firmware": "1.4.0", "verdict": verdict,
            "reason": reason, "cause": cause, "attempt": 1, "duration": 2.3, "finished": "2026-11-26T02:30:00Z",
            "nodeid": nodeid, "evidence": evidence, "allure": allure,
            "decided_by": {"how": "automated", "test": "test_y", "nodeid": nodeid, "bench": bench, "evidence": evidence}}


def _case(ident: str, kind: str, title: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": ident, "kind": kind, "coverage": "manual" if kind == "conceptual" else "automated", "title": title,
            "note": None, "decided_by": ["automated"] if results else ["none"], "results": results}


def _prov(ident: str, title: str, status: str, verdict: str, reason: str, ics: dict[str, str] | None,
          cases: list[dict[str, Any]], missing: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": ident, "chapter": ident.rpartition("-")[0], "title": title, "status": status,
            "requirement": "recommended" if status.startswith("R") else "mandatory",
            "recommendation_not_implemented": False, "verdict": verdict, "reason": reason,
            "missing": missing or [], "ics": ics, "test_cases": cases}


def small_doc(*, approved: bool = False) -> dict[str, Any]:
    """Two samples, chapters 5.1/5.3/5.9, every verdict once, one lab-fault INCONCLUSIVE."""
    r = _result
    provisions = [
        _prov("5.1-1", "Passwords are unique per device", "M C(1)", "PASS", "every test result passed",
              {"support": "Y", "detail": "per-device passwords"},
              [_case("5.1-1-2", "functional", "Unique passwords", [
                  r("bench1", "TH100-0001", "PASS", "default refused", ["evidence/bench1/5.1-1-2-logins.json"],
                    "allure-report/index.html#suites/aaa111"),
                  r("bench2", "TH100-0002", "PASS", "default refused", ["evidence/bench2/5.1-1-2-logins.json"],
                    "allure-report/index.html#suites/bbb222")])]),
        _prov("5.1-5", "Brute force is impracticable", "M C(5)", "FAIL", EVIL, {"support": "Y", "detail": "rate limiting"},
              [_case("5.1-5-2", "functional", "Brute force", [
                  r("bench1", "TH100-0001", "FAIL", EVIL, ["evidence/bench1/5.1-5-2 logins#1.json"], None)])]),
        _prov("5.3-14", "Non-updatable device rationale", "R C(3,4)", "NOT_APPLICABLE",
              "All software components are updatable (condition 3 not met).",
              {"support": "N/A", "detail": "All software components are updatable (condition 3 not met)."},
              [_case("5.3-14-1", "conceptual", "Rationale", [])]),
        _prov("5.3-13", "Support period is published", "M", "NOT_ASSESSED",
              "no result for 5.3-13-1 on TH100-0001, TH100-0002", None,
              [_case("5.3-13-1", "conceptual", "Support period", [])],
              [{"test_case": "5.3-13-1", "unit": None, "samples": ["TH100-0001", "TH100-0002"]}]),
        _prov("5.9-2", "Recovers after power loss", "R", "INCONCLUSIVE", "a result is inconclusive (lab fault)",
              {"support": "Y", "detail": ""},
              [_case("5.9-2-2", "functional", "Power loss", [
                  r("bench2", "TH100-0002", "INCONCLUSIVE", "power relay did not confirm channel state",
                    ["evidence/bench2/5.9-2-2-power.json"], "allure-report/index.html#suites/ccc333", cause="lab-fault")])]),
    ]
    counts = {"PASS": 2, "FAIL": 1, "NOT_APPLICABLE": 0, "INCONCLUSIVE": 1}
    chapters = [
        {"chapter": "5.1", "title": "No universal default passwords", "verdict": "FAIL",
         "counts": {"PASS": 1, "FAIL": 1, "NOT_APPLICABLE": 0, "INCONCLUSIVE": 0, "NOT_ASSESSED": 0}},
        {"chapter": "5.3", "title": "Keep software updated", "verdict": "NOT_ASSESSED",
         "counts": {"PASS": 0, "FAIL": 0, "NOT_APPLICABLE": 1, "INCONCLUSIVE": 0, "NOT_ASSESSED": 1}},
        {"chapter": "5.9", "title": "Make systems resilient to outages", "verdict": "INCONCLUSIVE",
         "counts": {"PASS": 0, "FAIL": 0, "NOT_APPLICABLE": 0, "INCONCLUSIVE": 1, "NOT_ASSESSED": 0}},
    ]
    items = [{"model": "TH-100", "vendor": "Certlab Sim Devices", "serial": f"TH100-000{i}", "firmware": "1.4.0",
              "firmware_sha256": "ab" * 32, "firmware_file": "TH-100-1.4.0.clfw", "mac": None,
              "received_on": "2026-11-20", "condition_on_receipt": "new, sealed", "bench": f"bench{i}"} for i in (1, 2)]
    evidence = sorted({e for p in provisions for tc in p["test_cases"] for res in tc["results"] for e in res["evidence"]})
    return {
        "schema": SCHEMA,
        "report": {"id": REPORT_ID, "title": "Test report", "subject": "EN 303 645 assessment of TH-100",
                   "status": "approved" if approved else "draft", "issued": "2026-11-26",
                   "generated_at": "2026-11-26T03:12:00Z"},
        "laboratory": {"name": "Example Lab", "address": ["1 Lab Road", "Brussels"], "accreditation": None,
                       "contact": {"email": "lab@example.org", "phone": None, "web": None}},
        "customer": {"name": "Certlab Sim Devices Ltd", "address": ["2 Maker Street"], "contact": None},
        "method": {"standard": "ETSI EN 303 645 V2.1.1 (2020-06)", "test_specification": "ETSI TS 103 701 V1.1.1 (2021-08)",
                   "edition": "v2", "tool": "certlab 0.1.0", "software": {"python": "3.11.2", "pytest": "9.0.1"},
                   "suites": ["testsuites/en303645"]},
        "items": items,
        "dates": {"received": "2026-11-20", "testing_started": "2026-11-26T02:23:41Z",
                  "testing_ended": "2026-11-26T02:58:08Z", "issued": "2026-11-26"},
        "statement": "The results relate only to the items tested, as received.",
        "decision_rule": "A provision is reported PASS when every result is PASS.",
        "summary": {"overall": "FAIL", "counts": counts, "complete": False,
                    "not_assessed": [{"provision": "5.3-13", "requirement": "mandatory", "missing": ["5.3-13-1"],
                                      "reason": "no result for 5.3-13-1 on TH100-0001, TH100-0002"}],
                    "provision_counts": {"PASS": 1, "FAIL": 1, "NOT_APPLICABLE": 1, "INCONCLUSIVE": 1, "NOT_ASSESSED": 1},
                    "chapters": chapters},
        "provisions": provisions,
        "other_results": [],
        "inconclusive": [{"provision": "5.9-2", "test_case": "5.9-2-2", "bench": "bench2", "dut_serial": "TH100-0002",
                          "reason": "power relay did not confirm channel state", "cause": "lab-fault"}],
        "deviations": ["Test case 5.1-5-2 used 50 login attempts instead of 100."],
        "equipment": [{"bench": "bench1", "capabilities": ["capture"],
                       "power": {"driver": "scpi", "resource": "TCPIP::127.0.0.1::15025::SOCKET", "channel": 1,
                                 "identification": "CERTLAB,SIM-SWITCH-8,sw0,1.0"},
                       "console": {"url": "socket://127.0.0.1:16000", "baud": 115200},
                       "network": {"address": "10.203.1.2", "interface": "clh-sim-b1"},
                       "ssh": {"client": "paramiko 3.5.0", "server": None}}],
        "approval": {"by": "Dr A. Example", "role": "Technical Manager", "at": "2026-11-26T04:00:00Z"} if approved else None,
        "evidence_index": [{"path": p, "sha256": f"{i:064x}", "size": 1234 * (i + 1)} for i, p in enumerate(evidence)],
        "run": {"id": "20261126-022341-abc123", "lab": "sim", "operator": "Example Lab", "status": "completed",
                "inventory_sha256": "cd" * 32, "benches": ["bench1", "bench2"]},
        "links": {"allure_report": "allure-report/index.html", "verdicts": "verdicts.json",
                  "manifest": "manifest.json", "pdf": "conformance.pdf"},
    }


class Page(HTMLParser):
    """Headings, links, elements by id and the table cells tagged with a verdict, of one report."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.headings: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.scripts = 0
        self.summary: dict[str, dict[str, int]] = {}  # chapter -> verdict -> count
        self.text: list[str] = []
        self._heading: list[str] | None = None
        self._row: str | None = None
        self._cell: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "script":
            self.scripts += 1
        if tag in ("h1", "h2", "h3"):
            self._heading = []
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "tr":
            self._row = (a.get("id") or "").removeprefix("sum-") if (a.get("id") or "").startswith("sum-") else None
        if tag == "td" and self._row and a.get("data-verdict"):
            self._cell = a["data-verdict"]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._row and self._cell:
            self.summary.setdefault(self._row, {})[self._cell] = int(data.strip())


@pytest.fixture(scope="module")
def draft() -> tuple[str, Page]:
    html = render_html(small_doc())
    return html, Page(html)


@pytest.fixture(scope="module")
def approved() -> tuple[str, Page]:
    html = render_html(small_doc(approved=True))
    return html, Page(html)


def test_every_iso17025_section_is_a_heading(draft: tuple[str, Page]) -> None:
    _, page = draft
    for title in HEADINGS:
        assert any(h.endswith(title) for h in page.headings), f"no heading {title!r} in {page.headings}"
    assert page.headings[0] == "Test report"
    assert page.scripts == 0


def test_report_id_header_and_end_of_report(draft: tuple[str, Page]) -> None:
    html, page = draft
    text = "".join(page.text)
    assert f"Report {REPORT_ID}" in text  # the running header (screen)
    assert f"End of report {REPORT_ID}" in text
    assert f'@top-right {{ content: "Report {REPORT_ID}"' in html  # @page margin box: every printed page
    assert 'counter(pages)' in html


def test_draft_banner_only_in_draft_authoriser_only_when_approved(draft: tuple[str, Page],
                                                                   approved: tuple[str, Page]) -> None:
    d_text, a_text = "".join(draft[1].text), "".join(approved[1].text)
    assert "DRAFT — not approved" in d_text and 'class="watermark"' in draft[0]
    assert "DRAFT" not in a_text and 'class="watermark"' not in approved[0]
    assert "Dr A. Example" in a_text and "Technical Manager" in a_text
    assert "Dr A. Example" not in d_text and 'class="signature empty"' in draft[0]


def test_first_page_says_incomplete_with_the_count_and_the_list(draft: tuple[str, Page]) -> None:
    html, _ = draft
    cover = html[html.index('<section class="cover"'):html.index('<nav class="toc"')]
    text = " ".join(Page(cover).text).split()
    words = " ".join(text)
    assert "Incomplete assessment: 1 provision in scope has test cases without a result" in words
    assert "5.3-13 (5.3-13-1)" in words and 'href="#p-5.3-13"' in cover
    doc = small_doc()
    doc["summary"].update(complete=True, not_assessed=[])
    complete = render_html(doc)
    assert 'id="incomplete"' not in complete and "<strong>Complete</strong>" in complete


def test_approved_status_without_approval_stays_a_draft() -> None:
    doc = small_doc()
    doc["report"]["status"] = "approved"  # but nobody approved it
    assert "DRAFT — not approved" in render_html(doc)


def test_chapter_summary_counts_match_the_document(draft: tuple[str, Page]) -> None:
    _, page = draft
    doc = small_doc()
    for ch in doc["summary"]["chapters"]:
        assert page.summary[ch["chapter"]] == ch["counts"], ch["chapter"]
    for ch in ("5.1", "5.3", "5.9"):
        assert f"ch-{ch}" in page.ids and f"#ch-{ch}" in page.links


def test_verdicts_reasons_and_ics_justification(draft: tuple[str, Page]) -> None:
    html, page = draft
    text = " ".join(" ".join(page.text).split())
    for pid in ("5.1-1", "5.1-5", "5.3-14", "5.3-13", "5.9-2"):
        assert f"p-{pid}" in page.ids
    assert "Justification (ICS): All software components are updatable (condition 3 not met)." in text
    for label in ("PASS", "FAIL", "INCONCLUSIVE", "NOT APPLICABLE", "NOT ASSESSED"):
        assert f">{label}</span>" in html
    assert "Cause: lab-fault" in text  # the inconclusive result names its cause
    assert "#p-5.9-2" in page.links  # ... and is listed in section 7
    assert "Test case 5.1-5-2 used 50 login attempts instead of 100." in text
    assert "A provision is reported PASS when every result is PASS." in text
    assert "The results relate only to the items tested, as received." in text
    for item in ("TH100-0001", "TH100-0002", "ab" * 32, "new, sealed", "CERTLAB,SIM-SWITCH-8,sw0,1.0",
                 "ETSI TS 103 701 V1.1.1 (2021-08)", "certlab 0.1.0", "2026-11-20", "2026-11-26 02:23:41 UTC"):
        assert item in text, item


def test_evidence_and_allure_links(draft: tuple[str, Page]) -> None:
    _, page = draft
    assert "evidence/bench1/5.1-1-2-logins.json" in page.links
    assert "evidence/bench1/5.1-5-2%20logins%231.json" in page.links  # a '#' in a file name stays in the path
    assert "allure-report/index.html#suites/ccc333" in page.links
    assert page.links.count("allure-report/index.html#suites/aaa111") == 1
    assert sum(link.startswith("allure-report/index.html#suites/") for link in page.links) == 3  # None: no link
    assert "manifest.json" in page.links


def test_document_text_is_escaped(draft: tuple[str, Page]) -> None:
    html, page = draft
    assert "<script>" not in html and page.scripts == 0
    assert "&lt;script&gt;alert(" in html
    assert EVIL in "".join(page.text)


def test_hostile_values_cannot_escape_css_or_links() -> None:
    doc = small_doc()
    doc["report"]["id"] = 'X"; } body { display: none } </style><script>alert(1)</script>'
    doc["laboratory"]["name"] = "Lab \\ \"quoted\" </style>"
    doc["provisions"][0]["test_cases"][0]["results"][0]["allure"] = "javascript:alert(1)"
    doc["provisions"][0]["test_cases"][0]["results"][0]["evidence"] = ["/etc/passwd"]
    html = render_html(doc)
    page = Page(html)
    assert page.scripts == 0 and "</style><script>" not in html
    assert not any(link.lower().startswith("javascript:") or link.startswith("/") for link in page.links)
    assert css_string('a"b\\c</style>') == '"a\\22 b\\5c c\\3c /style\\3e "'


def test_fields_that_may_be_empty_are_null_and_a_missing_one_stops_the_report() -> None:
    doc = small_doc()
    doc.update(equipment=[], evidence_index=[], inconclusive=[], deviations=[], other_results=[])
    doc["laboratory"] = {"name": "Lab", "address": ["1 Street"]}
    doc["items"][0] = {"model": "TH-100", "serial": "S1", "firmware": "1.4.0"}
    html = render_html(doc)
    assert f"End of report {REPORT_ID}" in html and "None." in html
    for drop in (("summary", "complete"), ("provisions", 0, "missing"), ("report", "id"), ("run",)):
        broken = copy.deepcopy(doc)
        target = broken
        for key in drop[:-1]:
            target = target[key]
        del target[drop[-1]]
        with pytest.raises(ReportError, match="conformance document: " + re.escape(".".join(map(str, drop)))
                           + ": Field required"):
            render_html(broken)
    typo = copy.deepcopy(doc)
    typo["provisions"][0]["verdict"] = "PASSED"
    with pytest.raises(ReportError, match=r"provisions\.0\.verdict: Input should be"):
        render_html(typo)


def test_the_template_fails_on_a_key_the_document_lacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """StrictUndefined: a template that names a field the document lacks stops instead of printing blank."""
    import lab.reports.render as render

    (tmp_path / render.TEMPLATE).write_text("{{ doc.summary.no_such_field }}")
    (tmp_path / "conformance.css").write_text("")
    monkeypatch.setattr(render, "TEMPLATES", tmp_path)
    with pytest.raises(ReportError, match="no_such_field"):
        render_html(small_doc())


def test_wrong_schema_is_a_report_error() -> None:
    with pytest.raises(ReportError, match="schema"):
        render_html({"schema": "certlab.conformance/99"})
    with pytest.raises(ReportError, match="schema 'certlab.conformance/1' is not 'certlab.conformance/2'"):
        render_html({**small_doc(), "schema": "certlab.conformance/1"})
    assert issubclass(ReportError, CertlabError)


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 GiB"]
    assert human_size(None) == "—"


def test_write_html_is_atomic_and_does_not_mutate_the_doc(tmp_path: Path) -> None:
    doc = small_doc()
    before = copy.deepcopy(doc)
    out = write_html(doc, tmp_path / "conformance.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["conformance.html"]
    assert doc == before


def test_synthetic_doc_is_deterministic_and_renders_every_result() -> None:
    """Its speed is bench/report.py's to measure, not a timed assertion here."""
    doc = synthetic_doc(2000, samples=3)
    assert doc == synthetic_doc(2000, samples=3)
    assert sum(doc["summary"]["counts"].values()) == 2000
    html = render_html(doc)
    assert html.count('<tr class="r-') == 2000 + len(doc["other_results"])


def test_chromium_command_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTLAB_CHROMIUM", "no-such-chromium-xyz --flag")
    with pytest.raises(ReportError, match="CERTLAB_CHROMIUM"):
        chromium_command()
    monkeypatch.setenv("CERTLAB_CHROMIUM", "sh --flag")
    assert chromium_command() == [shutil.which("sh"), "--flag"]
    monkeypatch.delenv("CERTLAB_CHROMIUM")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ReportError, match="install the Debian package chromium"):
        chromium_command()


def test_print_failure_is_a_report_error_and_leaves_no_pdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\necho 'fatal: no display for you' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CERTLAB_CHROMIUM", str(fake))
    html = write_html(small_doc(), tmp_path / "conformance.html")
    with pytest.raises(ReportError, match="no display for you"):
        print_pdf(html, tmp_path / "conformance.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conformance.html", "fake-chromium"]


def test_print_timeout_kills_the_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "slow-chromium"
    fake.write_text("#!/bin/sh\nsleep 60 &\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CERTLAB_CHROMIUM", str(fake))
    html = write_html(small_doc(), tmp_path / "conformance.html")
    start = time.monotonic()
    with pytest.raises(ReportError, match="within 1 s"):
        print_pdf(html, tmp_path / "conformance.pdf", timeout=1)
    assert time.monotonic() - start < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conformance.html", "slow-chromium"]


def _have_chromium() -> bool:
    try:
        chromium_command()
    except ReportError:
        return False
    return bool(shutil.which("pdftotext") and shutil.which("pdfinfo"))


@pytest.mark.skipif(not _have_chromium(), reason="needs chromium and poppler-utils (sh scripts/setup.sh installs them)")
def test_pdf_has_the_report_id_on_every_page(tmp_path: Path) -> None:
    doc = synthetic_doc(60, samples=2)
    rid = doc["report"]["id"]
    html = write_html(doc, tmp_path / "conformance.html")
    pdf = tmp_path / "conformance.pdf"
    seconds = print_pdf(html, pdf, timeout=90)
    assert pdf.read_bytes()[:5] == b"%PDF-" and seconds > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conformance.html", "conformance.pdf"]
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert pages >= 3
    texts = [subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), str(pdf), "-"], capture_output=True,
                            text=True, check=True).stdout for n in range(1, pages + 1)]
    for n, text in enumerate(texts, 1):
        assert f"Report {rid}" in text, f"page {n} lacks the report id"
        assert f"Page {n} of {pages}" in text, f"page {n} lacks its page number"
        footer = [line for line in text.splitlines() if f"{rid} · issued" in line]
        assert footer and "Page" not in footer[0], f"page {n}: the footer's boxes run together: {footer}"
        assert "NOT APPROVED" in text, f"page {n} lacks the draft mark"
    assert f"End of report {rid}" in " ".join(texts[-1].split())


def test_first_page_counts_and_names_results_outside_the_conformance_scope() -> None:
    """The first page's count and the terminal's must reconcile: the examples are named, not dropped."""
    doc = small_doc()
    first = doc["provisions"][0]["test_cases"][0]["results"][0]
    example = {**first, "test_case": None, "provision": None, "verdict": "PASS", "reason": "",
               "test": "testsuites/examples/test_examples.py::test_boots_to_a_shell"}
    doc["other_results"] = [example, {**example, "bench": "bench2", "dut_serial": "TH100-0002"}]
    html = render_html(doc)
    cover = " ".join(" ".join(Page(html[html.index('<section class="cover"'):html.index('<nav class="toc"')]).text).split())
    assert ("2 further results of 1 test outside the conformance scope "
            "(testsuites/examples/test_examples.py::test_boots_to_a_shell) are listed in section 9") in cover, cover
    assert "further result" not in " ".join(Page(render_html(small_doc())).text)
