"""The Allure report: rendered by the real, pinned Allure 3 CLI, with certlab's metadata, links and history.

No simulated lab: each test writes a small allure-results folder in allure-pytest's format.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import uuid as uuidlib
from pathlib import Path

import pytest

from lab.reports import allure as rep
from lab.sim.genlab import write_sim_inventory
from lab.reports.allure import ReportError

_missing_cli: str | None
try:
    rep.allure_command()
    _missing_cli = None
except ReportError as exc:
    _missing_cli = str(exc)
pytest_plugins = ["pytester"]
needs_cli = pytest.mark.skipif(_missing_cli is not None, reason=f"Allure CLI missing: {_missing_cli}")

SUITE = "testsuites/etsi/test_auth.py"
LAB_FAULT = "lab.errors.PowerFault: bench bench2: power relay fault: relay did not answer *IDN? within 2.0 s"


def _result(folder: Path, *, name: str, status: str, nodeid: str | None, start: int, message: str = "",
            serial: str = "TH100-0001") -> str:
    """One test result as allure-pytest writes it; returns its uuid."""
    uid = str(uuidlib.uuid4())
    base = name.split("[")[0]
    doc = {
        "name": name, "status": status, "uuid": uid, "start": start, "stop": start + 500,
        "historyId": hashlib.md5(name.encode()).hexdigest(),
        "testCaseId": hashlib.md5(base.encode()).hexdigest(),
        "fullName": f"testsuites.etsi.test_auth#{base}",
        "steps": [{"name": "console expect (bench=bench1, patterns=['login:'])", "status": "passed",
                   "start": start, "stop": start + 100}],
        "parameters": [{"name": "bench", "value": "'bench1'"}, {"name": "DUT serial", "value": repr(serial)}],
        "links": [{"type": "link", "name": "EN 303 645 5.1-1", "url": "https://www.etsi.org/deliver/x.pdf"}],
        "labels": [{"name": "bench", "value": "bench1"}, {"name": "dut_serial", "value": serial},
                   {"name": "epic", "value": "EN 303 645 V2.1.1 / TS 103 701 V1.1.1"},
                   {"name": "story", "value": "5.1-1"}, {"name": "framework", "value": "pytest"}],
        "attachments": [{"name": "console.log", "source": f"{uid}-attachment.txt", "type": "text/plain"}],
    }
    if nodeid:
        doc["labels"].append({"name": rep.NODEID_LABEL, "value": nodeid})
    if message:
        doc["statusDetails"] = {"message": message, "trace": "Traceback (most recent call last): ..."}
    (folder / f"{uid}-result.json").write_text(json.dumps(doc), encoding="utf-8")
    (folder / f"{uid}-attachment.txt").write_text(f"login: of {name}\n", encoding="utf-8")
    return uid


def make_run(parent: Path, run_id: str, *, broken_lab: bool = True) -> tuple[Path, dict[str, str]]:
    """A run directory with five results (one per verdict kind, one retried); node id -> latest uuid."""
    run = parent / run_id
    results = run / "allure-results"
    results.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": run_id, "edition": "v2"}), encoding="utf-8")
    t = 1_795_659_828_000
    ids = {}
    ids[f"{SUITE}::test_pass[bench1]"] = _result(results, name="test_pass[bench1]", status="passed",
                                                 nodeid=f"{SUITE}::test_pass[bench1]", start=t)
    ids[f"{SUITE}::test_defect[bench1]"] = _result(
        results, name="test_defect[bench1]", status="failed", nodeid=f"{SUITE}::test_defect[bench1]", start=t + 1000,
        message="AssertionError: DUT accepted 100 wrong passwords in 3.1 s")
    node = f"{SUITE}::test_relay[bench1]"
    _result(results, name="test_relay[bench1]", status="broken", nodeid=node, start=t + 2000,
            message=LAB_FAULT if broken_lab else "KeyError: 'missing'")
    ids[node] = _result(results, name="test_relay[bench1]", status="broken", nodeid=node, start=t + 3000,
                        message=LAB_FAULT if broken_lab else "KeyError: 'missing'")  # the retry: stops last
    ids[f"{SUITE}::test_bug[bench1]"] = _result(results, name="test_bug[bench1]", status="broken",
                                                nodeid=f"{SUITE}::test_bug[bench1]", start=t + 4000,
                                                message="KeyError: 'missing'")
    ids[f"{SUITE}::test_na[bench1]"] = _result(results, name="test_na[bench1]", status="skipped",
                                               nodeid=f"{SUITE}::test_na[bench1]", start=t + 5000,
                                               message="Skipped: ICS: 5.3-2 N/A: no update mechanism")
    return run, ids


def metadata(run: Path) -> None:
    rep.write_metadata(run / "allure-results",
                       environment={"lab": "Lab Nord", "operator": "Jürgen O'Neil", "certlab": "0.1.0",
                                    "run id": run.name, "inventory sha256": "ab" * 32},
                       executor={"buildName": run.name, "buildOrder": 7, "reportName": "TH-100 fw 1.4.0"})


def report_doc(report: Path, uid: str) -> dict:
    return json.loads((report / "data" / "test-results" / f"{hashlib.md5(uid.encode()).hexdigest()}.json")
                      .read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    if _missing_cli:
        pytest.skip(f"Allure CLI missing: {_missing_cli}")
    run, ids = make_run(tmp_path_factory.mktemp("runs"), "20261126-010101-aaaaaa")
    metadata(run)
    out = rep.generate(run, report_name="TH-100 fw 1.4.0", history_file=None)
    return run, ids, out


# --- metadata -----------------------------------------------------------------------------------

def test_metadata_files_escape_and_are_idempotent(tmp_path: Path):
    run, _ = make_run(tmp_path, "r1")
    results = run / "allure-results"
    rep.write_metadata(results, environment={"lab": "Lab Nord", "run id": "a=b: c", "operator": "Jürgen\nX",
                                             "path": r"C:\lab", " lead": " space"},
                       executor={"buildName": "r1", "buildOrder": "3"})
    first = {p.name: p.read_bytes() for p in results.glob("*.json*")} | \
            {"environment.properties": (results / "environment.properties").read_bytes()}
    props = (results / "environment.properties").read_text(encoding="ascii")  # Allure 2 reads Latin-1
    assert props.splitlines() == ["lab=Lab Nord", r"run\ id=a=b: c", r"operator=J\u00fcrgen\nX", r"path=C:\\lab",
                                  r"\ lead=\ space"]
    executor = json.loads((results / "executor.json").read_text())
    assert executor == {"name": "certlab", "type": "certlab", "buildName": "r1", "buildOrder": 3}
    cats = json.loads((results / "categories.json").read_text())
    assert [c["name"] for c in cats] == ["Product defect", "Lab infrastructure", "Test error", "Not applicable (ICS)"]
    lab_re = re.compile(cats[1]["messageRegex"])
    assert lab_re.fullmatch(LAB_FAULT) and lab_re.fullmatch("x\nsample unusable: y")
    assert not lab_re.fullmatch("KeyError: 'missing'")
    rep.write_metadata(results, environment={"lab": "Lab Nord", "run id": "a=b: c", "operator": "Jürgen\nX",
                                             "path": r"C:\lab", " lead": " space"},
                       executor={"buildName": "r1", "buildOrder": "3"})
    assert first == {p.name: p.read_bytes() for p in results.glob("*.json*")} | \
        {"environment.properties": (results / "environment.properties").read_bytes()}
    with pytest.raises(ValueError, match="operator"):
        rep.write_metadata(results, environment={}, executor={"operator": "me"})


def test_history_path_sanitises_without_collisions(tmp_path: Path):
    assert rep.history_path(tmp_path, "lab-nord", "TH-100") == tmp_path / "allure-history" / "lab-nord" / "TH-100.jsonl"
    odd = rep.history_path(tmp_path, "../etc", "a/b")
    assert odd.parent.parent == tmp_path / "allure-history" and ".." not in odd.parts
    assert rep.history_path(tmp_path, "x", "a/b") != rep.history_path(tmp_path, "x", "a_b")


# --- missing or failing CLI ---------------------------------------------------------------------

def test_missing_cli_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(rep.ALLURE_ENV, raising=False)
    with pytest.raises(ReportError, match=r"sh scripts/setup\.sh"):
        rep.allure_command(root=tmp_path)
    monkeypatch.setenv(rep.ALLURE_ENV, str(tmp_path / "nowhere" / "allure"))
    with pytest.raises(ReportError, match=rf"{rep.ALLURE_ENV}=.*unset .*sh scripts/setup\.sh"):
        rep.allure_command()
    run, _ = make_run(tmp_path, "r1")
    with pytest.raises(ReportError, match=r"setup\.sh"):
        rep.generate(run, report_name="x", history_file=None)


def test_failing_cli_reports_its_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "allure"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 3.18.0; exit 0; }\n"
                    "echo 'Error: The provided Allure config is broken' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(rep.ALLURE_ENV, str(fake))
    run, _ = make_run(tmp_path, "r1")
    (run / "allure-report").mkdir()
    (run / "allure-report" / "index.html").write_text("the old report")
    with pytest.raises(ReportError, match=r"exit 3[\s\S]*config is broken"):
        rep.generate(run, report_name="x", history_file=None)
    assert (run / "allure-report" / "index.html").read_text() == "the old report"  # kept whole
    assert sorted(p.name for p in run.iterdir()) == ["allure-report", "allure-results", "run.json"]


# --- the report ---------------------------------------------------------------------------------

@needs_cli
def test_report_has_environment_categories_and_nothing_foreign(rendered):
    run, ids, out = rendered
    report = run / "allure-report"
    assert out.path == report and out.version == "3.18.0" and (report / "index.html").is_file()
    assert sorted(p.name for p in run.iterdir()) == ["allure-report", "allure-results", "run.json"]
    env = json.loads((report / "widgets" / "allure_environment.json").read_text(encoding="utf-8"))
    assert {"name": "operator", "values": ["Jürgen O'Neil"]} in env
    assert {"name": "inventory sha256", "values": ["ab" * 32]} in env
    category = {node: report_doc(report, uid)["categories"][0]["name"] for node, uid in ids.items()
                if report_doc(report, uid).get("categories")}
    assert category == {f"{SUITE}::test_defect[bench1]": "Product defect",
                        f"{SUITE}::test_relay[bench1]": "Lab infrastructure",
                        f"{SUITE}::test_bug[bench1]": "Test error",
                        f"{SUITE}::test_na[bench1]": "Not applicable (ICS)"}
    doc = report_doc(report, ids[f"{SUITE}::test_pass[bench1]"])
    names = {label["name"] for label in doc["labels"]}
    assert "dut_serial" in names and rep.NODEID_LABEL not in names  # hidden
    assert doc["links"][0]["name"] == "EN 303 645 5.1-1"
    assert "googletagmanager" not in (report / "index.html").read_text(encoding="utf-8")


@needs_cli
def test_links_map_node_ids_to_existing_results(rendered):
    run, ids, out = rendered
    assert set(out.links) == set(ids)
    for nodeid, href in out.links.items():
        page, _, rid = href.partition("#")
        assert page == "allure-report/index.html" and (run / page).is_file()
        assert rid == hashlib.md5(ids[nodeid].encode()).hexdigest()  # the retry that stopped last
        assert (run / "allure-report" / "data" / "test-results" / f"{rid}.json").is_file()


@needs_cli
def test_single_file_is_one_self_contained_file(tmp_path: Path):
    run, ids = make_run(tmp_path, "r1")
    metadata(run)
    out = rep.generate(run, report_name="TH-100 fw 1.4.0", history_file=None, single_file=True)
    assert out.path == run / "allure-report.html"
    assert sorted(p.name for p in run.iterdir()) == ["allure-report.html", "allure-results", "run.json"]
    html = out.path.read_text(encoding="utf-8")
    assert "googletagmanager" not in html and not re.search(r"""<script[^>]+src=["'](?!data:)""", html)
    node = f"{SUITE}::test_defect[bench1]"
    rid = hashlib.md5(ids[node].encode()).hexdigest()
    assert out.links[node] == f"allure-report.html#{rid}"
    blob = re.search(rf'd\("data/test-results/{rid}\.json","([^"]+)"\)', html)
    assert blob and "DUT accepted 100 wrong passwords" in base64.b64decode(blob.group(1)).decode()


@needs_cli
def test_history_spans_runs_and_regeneration_keeps_one_entry_per_run(tmp_path: Path):
    history = rep.history_path(tmp_path / "data", "lab-nord", "TH-100")
    run1, ids1 = make_run(tmp_path, "20261126-010101-aaaaaa")
    run2, ids2 = make_run(tmp_path, "20261127-010101-bbbbbb", broken_lab=False)

    def entries() -> list[str]:
        return [json.loads(line)["name"] for line in history.read_text().splitlines()]

    rep.generate(run1, report_name="TH-100", history_file=history)
    assert entries() == ["certlab run 20261126-010101-aaaaaa"]
    rep.generate(run2, report_name="TH-100", history_file=history)
    rep.generate(run2, report_name="TH-100", history_file=history)  # regenerated: no second entry
    assert entries() == ["certlab run 20261126-010101-aaaaaa", "certlab run 20261127-010101-bbbbbb"]
    doc = report_doc(run2 / "allure-report", ids2[f"{SUITE}::test_relay[bench1]"])
    assert [h["status"] for h in doc["history"]] == ["broken"]  # run 1's result, once
    charts = json.loads((run2 / "allure-report" / "widgets" / "charts.json").read_text())
    trend = next(c for c in charts["general"].values() if c["type"] == "statusDynamics")
    assert [p["name"] for p in trend["data"]] == ["certlab run 20261126-010101-aaaaaa", "current"]
    rep.generate(run1, report_name="TH-100", history_file=history)  # an older run again: keeps its place
    assert entries() == ["certlab run 20261126-010101-aaaaaa", "certlab run 20261127-010101-bbbbbb"]
    assert report_doc(run1 / "allure-report", ids1[f"{SUITE}::test_relay[bench1]"])["history"] == []  # not run 2's


@needs_cli
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to cut the network")
def test_generation_needs_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a network namespace here")
    wrapper = tmp_path / "allure-offline"
    wrapper.write_text(f"#!/bin/sh\nexec unshare -rn {rep.allure_command()[0]} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv(rep.ALLURE_ENV, str(wrapper))
    run, ids = make_run(tmp_path, "r1")
    out = rep.generate(run, report_name="offline", history_file=None)
    assert (out.path / "index.html").is_file() and len(out.links) == len(ids)


PLUGIN_TESTS = '''
import pytest
from lab.errors import PowerFault, DutError

@pytest.mark.etsi("5.1-1-2")
def test_passes(bench):
    assert bench.name

@pytest.mark.etsi("5.1-5-2")
def test_dut_fails(bench):
    raise DutError("DUT accepted 100 wrong passwords in 3.1 s without any delay")

@pytest.mark.etsi("5.6-1-2")
def test_relay_fault(bench):
    raise PowerFault("relay did not answer *IDN? within 2.0 s", bench=bench.name)
'''


@needs_cli
def test_plugin_results_carry_labels_links_and_map_to_verdicts(pytester: pytest.Pytester, tmp_path: Path):
    """The real plugin's results: node id, serial and ETSI links on each; every verdict gets its page."""
    inventory = write_sim_inventory(tmp_path / "inv", "tallure", 1, scpi_port=16945, subnet=171, netns=False)
    pytester.makepyfile(test_suite=PLUGIN_TESTS)
    run = tmp_path / "run"
    pytester.runpytest("--inventory", str(inventory), "--certlab-out", str(run),
                       "--alluredir", str(run / "allure-results"), "-q")
    verdicts = json.loads((run / "verdicts.json").read_text())["results"]
    results = [json.loads(p.read_text()) for p in (run / "allure-results").glob("*-result.json")]
    assert len(results) == len(verdicts) == 3
    for doc in results:
        labels = {lb["name"]: lb["value"] for lb in doc["labels"]}
        assert labels["dut_serial"] == "TALLURE-0001"
        function = labels[rep.NODEID_LABEL].rsplit("::", 1)[1].partition("[")[0]
        assert doc["fullName"].endswith(function), (doc["fullName"], labels[rep.NODEID_LABEL])
        assert doc["name"].startswith(f"{labels['test_case']} "), f"the title names its test case: {doc['name']!r}"
        links = {lk["name"]: lk["url"] for lk in doc["links"]}
        provision = labels["story"]
        assert links[f"EN 303 645 {provision}"].endswith("en_303645v020101p.pdf")
        assert links[f"TS 103 701 {labels['test_case']}"].endswith("ts_103701v010101p.pdf")
    metadata(run)
    out = rep.generate(run, report_name="TALLURE", history_file=None)
    for verdict in verdicts:
        page, _, rid = out.links[verdict["nodeid"]].partition("#")
        assert (run / "allure-report" / "data" / "test-results" / f"{rid}.json").is_file()
    relay = next(v for v in verdicts if v["test"] == "test_relay_fault")
    rid = out.links[relay["nodeid"]].partition("#")[2]
    doc = json.loads((run / "allure-report" / "data" / "test-results" / f"{rid}.json").read_text())
    assert doc["categories"][0]["name"] == "Lab infrastructure"
