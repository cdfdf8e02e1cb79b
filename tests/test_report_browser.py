"""The reports as a certifier sees them: in a real browser (headless Chromium from the distribution).

Rendering bugs that file checks cannot see (a script error, a count the UI computes differently, a
link that 404s once served) show up only in a browser. A synthetic run is reported once (real
Allure 3 CLI, conformance HTML, signature), served over HTTP on 127.0.0.1 (the Allure 3 report
fetches its data, which file:// forbids) and opened with Selenium driving the Debian chromium and
chromium-driver packages; Selenium Manager is kept offline, so nothing is ever downloaded.

Screenshots go to tmp_path; with CERTLAB_SCREENSHOTS=1 they go to docs/img/ for the README, taken
of the reported run directory CERTLAB_SCREENSHOT_RUN names when it is set (a real run's report).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from chromium import headless_chromium, shot_path  # tests/chromium.py

from lab.reports.build import build_report
from lab.reports.keys import init_keys
from lab.reports.profile import load_profile
from lab.reports.synthetic import make_run

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "inventory" / "lab-profile.yaml"
WAIT_S = 30  # bound on every wait for the page to render
# seed 3: the 40 verdicts hold all four kinds with distinct counts (33/4/1/2), so a swapped status shows
RESULTS, SAMPLES, SEED = 40, 2, 3
# Allure verdict name shown in the report -> certlab verdict (lab.reports.synthetic.STATUS)
ALLURE_STATUS = {"passed": "PASS", "failed": "FAIL", "broken": "INCONCLUSIVE", "skipped": "NOT_APPLICABLE"}


@dataclass(frozen=True)
class Served:
    run_dir: Path
    base: str  # http://127.0.0.1:PORT/
    verdicts: dict[str, Any]
    doc: dict[str, Any]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One synthetic run reported once and served read-only to both tests."""
    root = tmp_path_factory.mktemp("browser")
    given = os.environ.get("CERTLAB_SCREENSHOT_RUN")  # a real, reported run for the README's pictures
    if given:
        run_dir = Path(given)
    else:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CERTLAB_KEY_DIR", str(root / "keys"))
            mp.delenv("CERTLAB_KEY_PASSPHRASE", raising=False)
            init_keys(root / "keys")
            run_dir = make_run(root / "runs", results=RESULTS, samples=SAMPLES, seed=SEED)
            build_report(run_dir, profile=load_profile(PROFILE), data_dir=root / "data", with_pdf=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(run_dir)))
    thread = threading.Thread(target=server.serve_forever, name="report-http", daemon=True)
    thread.start()
    try:
        yield Served(run_dir=run_dir, base=f"http://127.0.0.1:{server.server_port}/",
                     verdicts=json.loads((run_dir / "verdicts.json").read_text(encoding="utf-8")),
                     doc=json.loads((run_dir / "conformance.json").read_text(encoding="utf-8")))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through the packaged ChromeDriver; missing packages fail (CI installs them)."""
    with headless_chromium(size=(1400, 1000), page_timeout=WAIT_S, script_timeout=WAIT_S) as driver:
        yield driver


def screenshot(driver: Any, path: Path) -> None:
    assert driver.save_screenshot(str(path)), path
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, f"{path}: not a screenshot"


def console_errors(driver: Any, harmless: tuple[str, ...] = ()) -> list[str]:
    """SEVERE console entries since the last call, less the exact harmless ones named by the caller."""
    return [e["message"] for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and not any(h in e["message"] for h in harmless)]


def open_page(driver: Any, url: str) -> None:
    """Load `url` afresh (not as a hash change of the page before) with the console log emptied."""
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(url)


def wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, f"{what} not shown within {WAIT_S} s")


def by_testid(driver: Any, testid: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def fetch_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - our own 127.0.0.1 server
        resp.read(1)
        return resp.status


# Allure 3.18's awesome UI asks for widgets/metrics.json, which `allure generate` does not write for
# this report; the UI does without it. Filtered by its exact path, so any other 404 still fails.
ALLURE_HARMLESS = ("/allure-report/widgets/metrics.json?",)
# conformance.html is self-contained and names no icon, so the browser asks the server root for
# /favicon.ico on its own; a browser opening the file from disk does not.
CONFORMANCE_HARMLESS = ("/favicon.ico - Failed to load resource: the server responded with a status of 404",)


def test_allure_report_shows_every_result_and_deep_links(served: Served, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    expected = Counter(r["verdict"] for r in served.verdicts["results"])
    total = len(served.verdicts["results"])
    open_page(browser, served.base + "allure-report/index.html")
    wait(browser, lambda d: by_testid(d, "metadata-item-total") and by_testid(d, "tree-leaf"),
         "the Allure summary and test tree")

    def shown(testid: str) -> int:
        """A count in the summary; Allure leaves out a status no result has."""
        items = by_testid(browser, testid)
        if not items:
            return 0
        return int(items[0].find_element(By.CSS_SELECTOR, '[data-testid="metadata-value"]').text.strip())

    counts = {"total": shown("metadata-item-total")}
    counts.update({status: shown(f"metadata-item-{status}") for status in ALLURE_STATUS})
    want = {"total": total, **{status: expected[verdict] for status, verdict in ALLURE_STATUS.items()}}
    assert counts == want, (f"Allure shows {counts}, verdicts.json has {want}; Allure counts as retries "
                            f"({shown('metadata-item-retries')} shown) results whose testCaseId and parameters "
                            f"are equal: do the results differ in their parameters?")
    tab_all = by_testid(browser, "tab-all")[0].find_element(By.CSS_SELECTOR, '[data-testid="counter"]').text
    assert int(tab_all) == total
    leaves = len(by_testid(browser, "tree-leaf"))
    assert leaves == total if total <= RESULTS else leaves > 0  # a long tree is drawn a page at a time
    browser.execute_script("window.scrollTo(0, 0); document.querySelectorAll('*')"
                           ".forEach(e => { if (e.scrollTop) e.scrollTop = 0; });")
    screenshot(browser, shot_path(tmp_path, "allure-report.png"))
    assert not (errors := console_errors(browser, ALLURE_HARMLESS)), "console errors:\n" + "\n".join(errors)

    # a deep link from the conformance report, opened fresh: a failed result (its page shows most)
    results = [r for p in served.doc["provisions"] for tc in p["test_cases"] for r in tc["results"]]
    result = next(r for r in sorted(results, key=lambda r: r["verdict"] != "FAIL") if "#" in (r["allure"] or ""))
    name = result["nodeid"].rsplit("::", 1)[1]
    open_page(browser, served.base + result["allure"])
    title = wait(browser, lambda d: (t := by_testid(d, "test-result-info-title")) and t[0].text.strip() and t[0],
                 f"the result page of {result['allure']}")
    assert title.text.strip() == name
    status = {verdict: name for name, verdict in ALLURE_STATUS.items()}[result["verdict"]]
    assert by_testid(browser, f"test-result-status-{status}"), result["verdict"]
    screenshot(browser, shot_path(tmp_path, "allure-result.png"))
    assert not (errors := console_errors(browser, ALLURE_HARMLESS)), "console errors:\n" + "\n".join(errors)


def test_conformance_report_shows_the_document(served: Served, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    doc = served.doc
    open_page(browser, served.base + "conformance.html")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.chapters tfoot"), "the chapter summary")
    screenshot(browser, shot_path(tmp_path, "conformance-report.png"))
    assert not (errors := console_errors(browser, CONFORMANCE_HARMLESS)), "console errors:\n" + "\n".join(errors)

    body = browser.find_element(By.TAG_NAME, "body").text
    assert doc["report"]["id"] in body
    banner = browser.find_element(By.CSS_SELECTOR, ".draft-banner")
    assert banner.is_displayed() and "DRAFT" in banner.text

    def cells(row: Any) -> dict[str, int]:
        return {td.get_attribute("data-verdict"): int(td.text.strip())
                for td in row.find_elements(By.CSS_SELECTOR, "td[data-verdict]")}

    chapters = doc["summary"]["chapters"]
    rows = browser.find_elements(By.CSS_SELECTOR, "table.chapters tbody tr")
    assert len(rows) == len(chapters)
    for chapter in chapters:
        row = browser.find_element(By.ID, f"sum-{chapter['chapter']}")
        assert cells(row) == chapter["counts"], chapter["chapter"]
    assert cells(browser.find_element(By.CSS_SELECTOR, "table.chapters tfoot tr")) == doc["summary"]["provision_counts"]

    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href]")]
    evidence = next(h for h in links if h.startswith(served.base + "evidence/"))
    allure = next(h for h in links if h.startswith(served.base + "allure-report/index.html#"))
    for href in (evidence, allure):
        assert fetch_status(href.split("#")[0]) == 200, href
    rid = allure.split("#", 1)[1]
    assert (served.run_dir / "allure-report" / "data" / "test-results" / f"{rid}.json").is_file(), allure
