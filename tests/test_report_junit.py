"""lab/reports/junit.py: a run's verdicts as JUnit XML that Jenkins and GitLab read.

Each verdict's mapping, the counts, escaping of hostile reasons, parse-back with ElementTree, and
the structure checked against the shape of junit-10.xsd (the schema the Jenkins xunit plugin
validates with; the junit plugin and GitLab read a subset of it).
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from lab.reports.errors import ReportError
from lab.reports.junit import JUNIT_FILE, junit_for_run, junit_xml, write_junit

NASTY = "a\x00b\x01\x07\x1b[31m <tag attr=\"x\"> & 'q' ]]> \ud800 \ufffe \uffff\r\n\ttab é 🔒 end"
NASTY_CLEAN = "ab[31m <tag attr=\"x\"> & 'q' ]]>   \r\n\ttab é 🔒 end"


def _result(bench: str, test: str, verdict: str | None, reason: str = "", cause: str | None = None,
            case: str = "5.1-1-1", duration: object = 1.5, **extra: object) -> dict:
    return {"bench": bench, "dut_serial": f"SN-{bench}", "firmware": "1.0", "test_case": case, "test": test,
            "provision": case.rsplit("-", 1)[0], "verdict": verdict, "reason": reason,
            "evidence": [f"evidence/{bench}/{test}.log"],
            "nodeid": f"testsuites/en303645/test_5_1_passwords.py::{test}[{bench}]", "executed_on": bench,
            "cause": cause, "attempt": 1, "duration": duration, "finished": "2026-12-07T10:00:10Z", **extra}


def _doc() -> dict:
    return {"run_id": "20261207-100000-abcdef", "edition": "EN 303 645 V2.1.1 / TS 103 701 V1.1.1", "lab": "lab1",
            "results": [
                _result("b1", "test_pass", "PASS", duration=2.25),
                _result("b1", "test_fail", "FAIL", "default password admin/admin opens SSH"),
                _result("b1", "test_lab", "INCONCLUSIVE", "relay did not answer", "lab-fault"),
                _result("b1", "test_cancel", "INCONCLUSIVE", "run cancelled", "cancelled"),
                _result("b2", "test_notrun", "INCONCLUSIVE", "its worker ended before it", "not-run"),
                _result("b2", "test_nocause", "INCONCLUSIVE", "something", None),
                _result("b2", "test_na", "NOT_APPLICABLE", "ICS: 5.3-1 N/A: no update mechanism."),
                _result("b2", "test_na_plain", "NOT_APPLICABLE", "no telemetry collected"),
                _result("b2", "test_unknown", "NOT_ASSESSED", "no decision recorded"),
                _result("b2", "test_none", None, "", duration=None),
            ]}


def _parse(data: bytes) -> ET.Element:
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(data)


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in root.iter("testcase")}


def _outcome(case: ET.Element) -> tuple[str | None, str | None, str | None]:
    kids = [k for k in case if k.tag != "system-out"]
    assert len(kids) <= 1
    return (kids[0].tag, kids[0].get("type"), kids[0].get("message")) if kids else (None, None, None)


def test_each_verdict_maps_to_its_junit_outcome() -> None:
    cases = _cases(_parse(junit_xml(_doc())))
    assert _outcome(cases["test_pass[b1]"]) == (None, None, None)
    assert _outcome(cases["test_fail[b1]"]) == ("failure", "FAIL", "default password admin/admin opens SSH")
    assert _outcome(cases["test_lab[b1]"]) == ("error", "INCONCLUSIVE", "lab-fault: relay did not answer")
    assert _outcome(cases["test_cancel[b1]"]) == ("error", "INCONCLUSIVE", "cancelled: run cancelled")
    assert _outcome(cases["test_notrun[b2]"]) == ("error", "INCONCLUSIVE", "not-run: its worker ended before it")
    assert _outcome(cases["test_nocause[b2]"]) == ("error", "INCONCLUSIVE", "cause not recorded: something")
    assert _outcome(cases["test_na[b2]"]) == ("skipped", None, "ICS: 5.3-1 N/A: no update mechanism.")
    assert _outcome(cases["test_na_plain[b2]"]) == ("skipped", None, "ICS: no telemetry collected")
    # a verdict certlab does not know is undecided: an error naming it, never passed or skipped
    assert _outcome(cases["test_unknown[b2]"]) == ("error", "NOT_ASSESSED", "NOT_ASSESSED: no decision recorded")
    assert _outcome(cases["test_none[b2]"]) == ("error", "no verdict", "no verdict")
    fail = cases["test_fail[b1]"].find("failure")
    assert fail is not None and fail.text == "default password admin/admin opens SSH"


def test_testcase_carries_test_case_id_bench_time_and_record() -> None:
    cases = _cases(_parse(junit_xml(_doc())))
    case = cases["test_pass[b1]"]
    assert case.get("classname") == "5.1-1-1"
    assert case.get("time") == "2.250"
    assert cases["test_none[b2]"].get("time") == "0.000"  # no duration recorded
    out = case.findtext("system-out") or ""
    assert "verdict: PASS\n" in out and "evidence/b1/test_pass.log" in out and "dut_serial: SN-b1" in out


def test_name_always_names_the_bench_and_classname_falls_back_to_the_module() -> None:
    doc = {"run_id": "r", "results": [
        _result("b1", "test_x", "PASS", nodeid="testsuites/en303645/test_mod.py::test_x"),
        _result("b1", "test_y", "PASS", nodeid="testsuites/en303645/test_mod.py::test_y[b1-v3]", case=""),
    ]}
    cases = _cases(_parse(junit_xml(doc)))
    assert set(cases) == {"test_x[b1]", "test_y[b1-v3]"}
    assert cases["test_y[b1-v3]"].get("classname") == "test_mod"


def test_counts_on_every_suite_and_on_testsuites() -> None:
    root = _parse(junit_xml(_doc()))
    assert root.tag == "testsuites"
    suites = {s.find("properties/property[@name='bench']").get("value"): s for s in root.findall("testsuite")}
    assert set(suites) == {"b1", "b2"}
    expected = {"b1": {"tests": 4, "failures": 1, "errors": 2, "skipped": 0},
                "b2": {"tests": 6, "failures": 0, "errors": 4, "skipped": 2}}
    for bench, suite in suites.items():
        assert {k: int(suite.get(k)) for k in expected[bench]} == expected[bench]
        kids = [k.tag for c in suite.findall("testcase") for k in c if k.tag != "system-out"]
        assert kids.count("failure") == int(suite.get("failures"))
        assert kids.count("error") == int(suite.get("errors"))
        assert kids.count("skipped") == int(suite.get("skipped"))
        assert len(suite.findall("testcase")) == int(suite.get("tests"))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("10", "1", "6")
    assert float(suites["b1"].get("time")) == pytest.approx(2.25 + 3 * 1.5)
    assert float(root.get("time")) == pytest.approx(2.25 + 3 * 1.5 + 5 * 1.5)
    assert suites["b1"].get("timestamp") == "2026-12-07T10:00:07"  # the earliest start: 10:00:10 - 2.25 s


def test_suite_named_after_bench_model_and_serial_with_run_properties() -> None:
    root = _parse(junit_xml(_doc(), models={"b1": "TH-100"}))
    names = [s.get("name") for s in root.findall("testsuite")]
    assert names == ["b1 (TH-100, serial SN-b1)", "b2 (serial SN-b2)"]
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").iter("property")}
    assert props == {"run_id": "20261207-100000-abcdef", "edition": "EN 303 645 V2.1.1 / TS 103 701 V1.1.1",
                     "lab": "lab1", "bench": "b1", "dut_model": "TH-100", "dut_serial": "SN-b1", "firmware": "1.0"}
    assert root.get("name") == "certlab run 20261207-100000-abcdef"


def test_hostile_text_gives_valid_xml_that_parses_back_cleaned() -> None:
    doc = {"run_id": "r\x00", "edition": NASTY, "lab": "l", "results": [
        _result("b<1>&\x1b", "test_x", "FAIL", NASTY, test_case=NASTY),
        _result("b2", "test_y", "INCONCLUSIVE", NASTY, "lab-fault"),
        _result("b2", "test_z", "NOT_APPLICABLE", NASTY, evidence=[NASTY]),
    ]}
    data = junit_xml(doc)
    data.decode("utf-8")  # no lone surrogate made it through
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", data)
    root = _parse(data)
    failure = next(root.iter("failure"))
    assert failure.get("message") == NASTY_CLEAN  # \r\n\t kept as character references in an attribute
    assert failure.text == NASTY_CLEAN.replace("\r\n", "\n")  # XML's end-of-line normalisation in text
    assert next(root.iter("error")).get("message") == "lab-fault: " + failure.get("message")
    assert next(root.iter("skipped")).get("message") == "ICS: " + failure.get("message")
    assert "b<1>& (serial SN-b<1>&)" in [s.get("name") for s in root.iter("testsuite")]
    assert ("  " + NASTY_CLEAN.split("\r")[0]) in "".join(c.findtext("system-out") for c in root.iter("testcase"))


def test_attributes_keep_newlines_and_tabs_as_character_references() -> None:
    message = next(_parse(junit_xml({"results": [_result("b", "t", "FAIL", "line1\nline2\tx")]})).iter("failure"))
    assert message.get("message") == "line1\nline2\tx"  # &#10; and &#09; in the file, not raw whitespace


# --- the shape of junit-10.xsd (Jenkins xunit plugin): elements, their children and attributes ---

_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")  # its SUREFIRE_TIME type
_SHAPE: dict[str, tuple[set[str], set[str], set[str]]] = {  # element: (children, attributes, required)
    "testsuites": ({"testsuite"}, {"name", "time", "tests", "failures", "errors"}, set()),
    "testsuite": ({"testsuite", "properties", "testcase", "system-out", "system-err"},
                  {"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp", "hostname", "id",
                   "package", "file", "log", "url"}, {"name", "tests", "failures", "errors"}),
    "properties": ({"property"}, set(), set()),
    "property": (set(), {"name", "value"}, {"name", "value"}),
    "testcase": ({"skipped", "error", "failure", "system-out", "system-err"}, {"name", "time", "classname", "group"},
                 {"name"}),
    "failure": (set(), {"type", "message"}, set()),
    "error": (set(), {"type", "message"}, set()),
    "skipped": (set(), {"type", "message"}, set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}


def _check_shape(element: ET.Element, path: str = "") -> list[str]:
    where = f"{path}/{element.tag}"
    if element.tag not in _SHAPE:
        return [f"{where}: not a junit-10.xsd element"]
    children, attributes, required = _SHAPE[element.tag]
    problems = [f"{where}: attribute {a} not allowed" for a in set(element.attrib) - attributes]
    problems += [f"{where}: attribute {a} missing" for a in required - set(element.attrib)]
    problems += [f"{where}/@time {element.get('time')!r} not SUREFIRE_TIME"
                 for _ in [0] if "time" in element.attrib and not _TIME.fullmatch(element.get("time"))]
    for child in element:
        if child.tag not in children:
            problems.append(f"{where}: child {child.tag} not allowed")
        problems += _check_shape(child, where)
    for count in ("tests", "failures", "errors", "skipped"):
        if count in element.attrib and not element.get(count).isdigit():
            problems.append(f"{where}/@{count} not a count")
    return problems


def test_structure_matches_the_jenkins_junit_schema() -> None:
    for doc in (_doc(), {"run_id": "r", "results": []}):
        root = _parse(junit_xml(doc, models={"b1": "M"}))
        assert root.tag == "testsuites"
        assert _check_shape(root) == []


def test_the_shape_check_itself_catches_what_the_schema_rejects() -> None:
    problems = _check_shape(ET.fromstring('<testsuites skipped="1"><testsuite name="x" time="1.5s"><bogus/>'
                                          '</testsuite></testsuites>'))
    assert "/testsuites: attribute skipped not allowed" in problems
    assert "/testsuites/testsuite: attribute tests missing" in problems
    assert "/testsuites/testsuite/@time '1.5s' not SUREFIRE_TIME" in problems
    assert "/testsuites/testsuite: child bogus not allowed" in problems


def test_empty_run_has_no_suites_and_zero_counts() -> None:
    root = _parse(junit_xml({"run_id": "r", "results": []}))
    assert root.findall("testsuite") == []
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("time")) == ("0", "0", "0", "0.000")


@pytest.mark.parametrize("doc", [{}, {"results": "x"}, {"results": [1]}, []])
def test_a_document_without_results_is_a_report_error(doc: object) -> None:
    with pytest.raises(ReportError, match="'results' is not a list of results; fix:"):
        junit_xml(doc)  # type: ignore[arg-type]


def test_same_document_gives_the_same_bytes() -> None:
    assert junit_xml(_doc(), models={"b1": "M"}) == junit_xml(json.loads(json.dumps(_doc())), models={"b1": "M"})


def test_write_junit_is_atomic_and_owner_only(tmp_path: Path) -> None:
    target = tmp_path / JUNIT_FILE
    target.write_text("old")
    write_junit(target, _doc())
    assert target.read_bytes() == junit_xml(_doc())
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [JUNIT_FILE]  # no .tmp left behind


# --- certlab report junit RUN_DIR -----------------------------------------------------------------

def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "verdicts.json").write_text(json.dumps(_doc()))
    return run


def test_junit_for_run_writes_the_runs_junit_xml(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    path, counts = junit_for_run(run)
    assert path == run / JUNIT_FILE and path.read_bytes() == junit_xml(_doc())
    assert counts == {"tests": 10, "failures": 1, "errors": 6, "skipped": 2}


def test_a_signed_run_keeps_its_junit_xml_unless_unchanged(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (run / "manifest.json").write_text("{}")
    with pytest.raises(ReportError, match="is signed: writing junit.xml there .* fix: pass --out FILE"):
        junit_for_run(run)
    assert not (run / JUNIT_FILE).exists()
    (run / JUNIT_FILE).write_bytes(junit_xml(_doc()))
    junit_for_run(run)  # the same bytes: the signature still holds
    (tmp_path / "ci").mkdir()
    elsewhere, _ = junit_for_run(run, tmp_path / "ci" / "junit.xml")
    assert elsewhere.read_bytes() == junit_xml(_doc())


@pytest.mark.parametrize("content, message", [(None, "verdicts.json: not found; fix: give the directory"),
                                              ("{nope", "verdicts.json: unreadable"),
                                              ("[]", "verdicts.json: not a verdicts document"),
                                              ('{"results": 3}', "verdicts.json: verdicts document: 'results'")])
def test_cli_bad_run_dir_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], content: str | None,
                                                message: str) -> None:
    from lab.cli import main

    if content is not None:
        (tmp_path / "verdicts.json").write_text(content)
    monkeypatch.setattr(sys, "argv", ["certlab", "report", "junit", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_writes_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main

    run = _run_dir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["certlab", "report", "junit", str(run)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0
    assert "10 tests, 1 failures (FAIL), 6 errors (INCONCLUSIVE), 2 skipped (NOT_APPLICABLE)" in capsys.readouterr().out
    assert _check_shape(ET.parse(run / JUNIT_FILE).getroot()) == []
