"""The assessor's decisions file (lab/assessments.py): validation, one-line errors, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.assessments import AssessmentPending, AssessmentsError, default_path, load_assessments
from lab.catalog import load_catalog
from lab.errors import LabFault
from lab.ics import load_ics
from lab.ixit import load_ixit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"
HEAD = 'assessor: {name: "T. Tester", role: assessor}\ndate: 2024-05-06\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assessments.yaml"
    path.write_text(text)
    return path


def test_shipped_file_decides_every_applicable_conceptual_case() -> None:
    a = load_assessments(PRODUCT / "assessments.yaml", "v2", model="TH-100")
    a.check_refs(load_ixit(PRODUCT / "ixit.yaml"))
    cat, ics = load_catalog("v2"), load_ics(PRODUCT / "ics.yaml", "v2")
    wanted = {tc.id for tc in cat.test_cases if tc.kind in ("conceptual", "both") and ics.applicability(tc.provision)[0]}
    assert set(a.data.decisions) == wanted
    assert a.decision("5.1-1-1").verdict == "PASS" and a.decision("5.3-14-1") is None
    # a recommendation the ICS answers N is not met: never PASS
    assert a.decision("5.10-1-1").verdict == "FAIL"


def test_minimal_file_and_lookups(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'decisions:\n  "5.1-1-1": {verdict: pass, reasoning: "  per-unit label password  "}\n')
    a = load_assessments(path, "v2")
    d = a.decision("5.1-1-1")
    assert (d.verdict, d.reasoning, d.ixit_refs) == ("PASS", "per-unit label password", ())
    assert a.assessor.name == "T. Tester" and str(a.data.date) == "2024-05-06"
    assert a.decision("5.1-2-1") is None


@pytest.mark.parametrize(
    "body, expected",
    [
        ('decisions:\n  "5.1-1-1": {verdict: MAYBE, reasoning: "long enough reason"}\n',
         "decisions.5.1-1-1.verdict: Input should be 'PASS' or 'FAIL'"),
        ('decisions:\n  "5.1-1-1": {verdict: yes, reasoning: "long enough reason"}\n', "write PASS or FAIL"),
        ('decisions:\n  "5.1-1-1": {verdict: PASS, reasoning: "ok"}\n', "decisions.5.1-1-1.reasoning"),
        ('decisions:\n  "5.1-1-1": {verdict: PASS, reasonning: "long enough reason"}\n', "unknown field; did you mean 'reasoning'?"),
        ('decisions:\n  "5.1-1-2": {verdict: PASS, reasoning: "long enough reason"}\n', "is a functional test case"),
        ('decisions:\n  "5.1-1-9": {verdict: PASS, reasoning: "long enough reason"}\n', "decisions.5.1-1-9: test case"),
        ('decisions:\n  "5.1-1-1": {verdict: PASS, reasoning: "long enough reason", ixit_refs: ["AuthMech"]}\n',
         "is not an IXIT reference"),
        ('edition: v3\ndecisions: {}\n', "the decisions are for v3 but v2 is assessed"),
    ],
)
def test_bad_files_give_one_line(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, HEAD + body)
    with pytest.raises(AssessmentsError) as exc:
        load_assessments(path, "v2")
    text = str(exc.value)
    assert "\n" not in text and text.startswith(str(path)) and expected in text, text


def test_missing_assessor_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(AssessmentsError, match="assessor: Field required; add it"):
        load_assessments(write(tmp_path, "date: 2024-05-06\ndecisions: {}\n"), "v2")
    with pytest.raises(AssessmentsError, match="YAML syntax error"):
        load_assessments(write(tmp_path, "assessor: [\n"), "v2")
    with pytest.raises(AssessmentsError, match="file not found"):
        load_assessments(tmp_path / "nope.yaml", "v2")


def test_model_and_ixit_refs_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, 'model: TH-200\n' + HEAD + 'decisions:\n  "5.1-1-1": {verdict: PASS, reasoning: '
                 '"long enough reason", ixit_refs: ["1-AuthMech nosuch"]}\n')
    with pytest.raises(AssessmentsError, match="the decisions are for 'TH-200'"):
        load_assessments(path, "v2", model="TH-100")
    a = load_assessments(path, "v2")
    with pytest.raises(AssessmentsError, match=r"ixit_refs\[0\]: 'nosuch' is not an entry of 1-AuthMech"):
        a.check_refs(load_ixit(PRODUCT / "ixit.yaml"))


def test_default_path_prefers_the_edition_file(tmp_path: Path) -> None:
    assert default_path(tmp_path, "v2") is None
    (tmp_path / "assessments.yaml").write_text("x")
    assert default_path(tmp_path, "v3") == tmp_path / "assessments.yaml"
    (tmp_path / "assessments.v3.yaml").write_text("x")
    assert default_path(tmp_path, "v3") == tmp_path / "assessments.v3.yaml"


def test_pending_is_paperwork_neither_a_lab_fault_nor_a_failure() -> None:
    from types import SimpleNamespace

    from fixtures.verdicts import classify, inconclusive_cause

    exc = AssessmentPending("no assessor decision recorded for 5.1-1-1")
    assert not isinstance(exc, (LabFault, AssertionError))  # never retried, never counts against a bench
    assert str(exc) == "conceptual assessment pending: no assessor decision recorded for 5.1-1-1"

    def pending() -> None:
        raise exc

    call = pytest.CallInfo.from_call(pending, when="call")
    report = SimpleNamespace(when="call", passed=False, skipped=False, failed=True, longrepr=None)
    assert classify(report, call) == ("INCONCLUSIVE", str(exc))
    assert inconclusive_cause(call, report) == "assessment-pending"
