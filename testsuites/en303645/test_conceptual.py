"""The conceptual test cases of TS 103 701: the lab assessor's recorded decisions.

A conceptual test case checks the manufacturer's design as described in the ICS and IXIT against
a provision (TS 103 701: "IXIT design vs provision"). No instrument decides that; a qualified
assessor does, and records the verdict with their reasoning in the product's assessments file
(`--assessments FILE`, default `<inventory>/products/<model>/assessments.yaml`). This module
turns each recorded decision into the test case's verdict, so conceptual and functional results
land in one report with the same labels and evidence:

- the ICS says the provision is N/A: NOT_APPLICABLE with its justification (the plugin);
- a decision is recorded: PASS or FAIL as recorded, naming the assessor and their reasoning;
- no decision: INCONCLUSIVE ("conceptual assessment pending"). Never PASS by default.

One test per conceptual test case of the assessed edition (and the conceptual unit of a case
that is both conceptual and functional). The DUT is never touched: only the bench's model.
"""

from __future__ import annotations

from pathlib import Path

import allure
import pytest

from fixtures.etsi import settings
from lab.assessments import AssessmentPending, Assessments, default_path, load_assessments
from lab.verdicts import Verdict


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conceptual_case" not in metafunc.fixturenames:
        return
    catalog = settings(metafunc.config).catalog
    cases = [tc for tc in catalog.test_cases if tc.kind in ("conceptual", "both")]
    metafunc.parametrize(
        "conceptual_case",
        [pytest.param(tc.id, marks=pytest.mark.etsi(tc.id), id=tc.id) for tc in cases],
    )


@pytest.fixture(scope="session")
def assessments(request: pytest.FixtureRequest, bench, ixit) -> Assessments | None:
    """The assessor's decisions for this bench's model (None when the lab has recorded none yet)."""
    s = settings(request.config)
    model = bench.config.dut.model
    if s.assessments_path:
        path: Path | None = Path(s.assessments_path)
    else:
        path = default_path(bench.inventory.base_dir / "products" / model, s.edition)
    if path is None:
        return None
    loaded = load_assessments(path, s.edition, model=model, catalogs=s.catalogs)
    loaded.check_refs(ixit)
    return loaded


def test_conceptual(conceptual_case: str, bench, catalog, ics, assessments: Assessments | None, evidence) -> None:
    """The assessor's recorded decision on one conceptual test case (design in ICS/IXIT vs provision)."""
    tc = catalog.test_case(conceptual_case)
    entry = ics.entry(tc.provision)
    what = "conceptual unit of a conceptual/functional test case" if tc.kind == "both" else "conceptual test case"
    decision = assessments.decision(conceptual_case) if assessments else None
    with allure.step(f"look up the assessor's decision on {conceptual_case} ({what})"):
        if decision is None:
            where = assessments.path if assessments else "no assessments file"
            raise AssessmentPending(f"no assessor decision recorded for {conceptual_case} ({where})")
    a = assessments.assessor
    record = {
        "test_case": conceptual_case,
        "provision": tc.provision,
        "kind": tc.kind,
        "ics": {"support": entry.support, "detail": entry.detail} if entry else None,
        "assessor": {"name": a.name, "role": a.role},
        "date": str(assessments.data.date),
        "verdict": decision.verdict,
        "reasoning": decision.reasoning,
        "ixit_refs": list(decision.ixit_refs),
        "assessments_file": str(assessments.path),
    }
    evidence.json("assessment", record)
    allure.dynamic.description(f"{a.name} ({a.role}), {assessments.data.date}: {decision.verdict}. {decision.reasoning}")
    if decision.verdict != Verdict.PASS:  # an AssertionError is a FAIL; its message is the verdict's reason
        raise AssertionError(f"assessor {a.name} ({a.role}) recorded FAIL on {assessments.data.date}: {decision.reasoning}")
