"""The assessor's record actions (lab.actions.assessments): only an engineer records decisions and
evidence, a bad record is Invalid at the field inside it, evidence is never replaced by other bytes
nor read outside its folder, who recorded what and when is kept beside the record (outside what a
run copies), and the record page reads the decisions per test case."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from inputs_lab import DECIDED, PERFORMED, add_booking, caller, services, set_status
from webui import make_app

from lab.actions import assessments
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound

PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    client = make_app(tmp_path_factory.mktemp("assessments"))
    yield client.app  # type: ignore[misc]
    services(client.app).store.close()  # type: ignore[arg-type]


def evidence(app: FastAPI, bid: int, data: bytes = PHOTO, name: str = "6-1-2-notice.png",
             who: str = "lab") -> assessments.Evidence:
    return assessments.upload_evidence(services(app), caller(app, who), bid, io.BytesIO(data), name)


def test_a_record_with_evidence_is_kept_and_read_per_test_case(app: FastAPI) -> None:
    bid = add_booking(app)
    kept = evidence(app, bid)
    assert (kept.path, kept.by) == ("evidence/6-1-2-notice.png", "lab")
    summary = assessments.record_assessments(services(app), caller(app, "lab"), bid,
                                             DECIDED + PERFORMED.format(name="6-1-2-notice.png"))
    assert summary.decisions > 10 and summary.performed == 1 and summary.assessor == "Dana Reuter"
    assert assessments.assessments_text(services(app), caller(app, "maker"), bid).startswith("# Conceptual")

    page = assessments.assessment_record(services(app), caller(app, "lab"), bid)
    assert page.exists and page.can_edit and page.recorded is not None and page.recorded.by == "lab"
    assert ("4-1-1", "PASS") in [(d.case, d.verdict) for d in page.decisions]
    cases = [d.case for d in page.decisions]  # in the catalogue's order, not the text's
    assert cases.index("5.2-1-1") < cases.index("5.10-1-1") and cases == sorted(cases, key=assessments.case_order)
    assert [(p.case, p.verdict, p.evidence) for p in page.performed] == [
        ("6-1-2", "PASS", ("evidence/6-1-2-notice.png",))]
    assert [(e.name, e.by) for e in page.evidence] == [("6-1-2-notice.png", "lab")]
    maker = assessments.assessment_record(services(app), caller(app, "maker"), bid)
    assert maker.decisions == page.decisions and not maker.can_edit and maker.evidence == []  # the lab's files
    panel = assessments.booking_assessments(services(app), caller(app, "lab"), bid)
    assert panel.visible and panel.summary == summary and panel.evidence_count == 1
    history = assessments.booking_folder(services(app), bid) / assessments.HISTORY_FILE
    assert history.is_file()  # beside the record, not in evidence/ which a run copies and signs


def test_a_bad_record_is_invalid_at_the_field_inside_it(app: FastAPI) -> None:
    bid = add_booking(app)
    lab = caller(app, "lab")
    with pytest.raises(Invalid) as exc:
        assessments.record_assessments(services(app), lab, bid, DECIDED.replace("verdict: PASS", "verdict: MAYBE", 1))
    assert exc.value.loc[:3] == ["body", "assessments", "decisions"] and exc.value.loc[-1] == "verdict"
    with pytest.raises(Invalid) as exc:
        assessments.record_assessments(services(app), lab, bid, DECIDED + PERFORMED.format(name="nope.png"))
    assert "evidence/nope.png" in exc.value.msg and str(services(app).settings.data_dir) not in exc.value.msg
    with pytest.raises(Invalid) as exc:
        assessments.record_assessments(services(app), lab, bid, "  ")
    assert exc.value.field == "assessments"
    assert not assessments.assessment_record(services(app), lab, bid).exists


def test_evidence_is_never_replaced_and_never_read_outside_its_folder(app: FastAPI) -> None:
    bid = add_booking(app)
    evidence(app, bid)
    evidence(app, bid)  # the same bytes again: fine
    with pytest.raises(Conflict):
        evidence(app, bid, b"other")
    for name in ("../x.png", ".hidden", "a/b.png", ""):
        with pytest.raises(Invalid):
            evidence(app, bid, name=name)
    with pytest.raises(Invalid):
        evidence(app, bid, b"", name="empty.png")
    assert assessments.evidence_file(services(app), caller(app, "lab"), bid, "6-1-2-notice.png").read_bytes() == PHOTO
    for name in ("../assessments.history.json", "..", "nope.png", "%2e%2e"):
        with pytest.raises(NotFound):
            assessments.evidence_file(services(app), caller(app, "lab"), bid, name)
    with pytest.raises(Forbidden):
        assessments.evidence_file(services(app), caller(app, "maker"), bid, "6-1-2-notice.png")


@pytest.mark.parametrize("name", ["maker", "cert"])
def test_only_an_engineer_records(app: FastAPI, name: str) -> None:
    bid = add_booking(app)
    with pytest.raises(Forbidden):
        assessments.record_assessments(services(app), caller(app, name), bid, DECIDED)
    with pytest.raises(Forbidden):
        evidence(app, bid, who=name)
    with pytest.raises(Forbidden):
        assessments.list_evidence(services(app), caller(app, name), bid)


def test_another_tenant_a_certifier_and_a_frozen_booking(app: FastAPI) -> None:
    bid = add_booking(app)
    with pytest.raises(NotFound):
        assessments.assessment_record(services(app), caller(app, "rival"), bid)
    with pytest.raises(Forbidden):  # a certifier reads the record in the released report
        assessments.assessment_record(services(app), caller(app, "cert"), bid)
    with pytest.raises(NotFound):  # nothing recorded yet
        assessments.assessments_text(services(app), caller(app, "maker"), bid)
    set_status(app, bid, "running")
    with pytest.raises(Conflict):
        assessments.record_assessments(services(app), caller(app, "lab"), bid, DECIDED)
    with pytest.raises(Conflict):
        evidence(app, bid)
    page = assessments.assessment_record(services(app), caller(app, "lab"), bid)
    assert not page.can_edit and "running" in (page.frozen or "")
