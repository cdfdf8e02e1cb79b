"""The conformance document as a typed model: what `conformance.json` may contain, and must.

`build_document` validates what it built against this model before anything is written, and the
renderer validates what it reads, so a misspelt verdict, a missing field or a stray key stops the
report with the field's path instead of printing a blank into a signed document. Verdicts are
the enums of lab/verdicts.py; how a result was decided is `DecidedBy`. Fields that may be absent
by nature (no approval yet, no Allure link) are `None`, never left out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lab.reports.errors import ReportError
from lab.reports.profile import Laboratory
from lab.verdicts import Cause, ProvisionVerdict, Verdict

SCHEMA = "certlab.conformance/2"


class DecidedBy(StrEnum):
    """How a test case result was decided: what a certifier checks before trusting it."""

    AUTOMATED = "automated"
    ASSESSOR_PERFORMED = "assessor-performed"
    CONCEPTUAL_DECISION = "conceptual decision"
    NONE = "none"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Person(_Model):
    name: str
    role: str


class Decision(_Model):
    """Who or what decided one result, with what that way of deciding rests on."""

    how: Literal[DecidedBy.AUTOMATED, DecidedBy.ASSESSOR_PERFORMED, DecidedBy.CONCEPTUAL_DECISION]
    # automated: the suite's test, the bench that ran it, its evidence
    test: str | None = None
    nodeid: str | None = None
    bench: str | None = None
    evidence: list[str] = []
    # assessor-performed and conceptual decision: the assessor and the date; performed: samples
    assessor: Person | None = None
    date: str | None = None
    samples: list[str] = []
    reasoning: str | None = None
    ixit_refs: list[str] = []


class Result(_Model):
    bench: str | None
    executed_on: str | None
    dut_serial: str | None
    firmware: str | None
    test_case: str | None = None
    test: str | None = None
    provision: str | None = None
    verdict: Verdict
    reason: str
    cause: Cause | None
    attempt: int
    duration: float | None
    finished: str | None
    nodeid: str | None
    evidence: list[str]
    allure: str | None
    decided_by: Decision | None = None


class Missing(_Model):
    test_case: str | None
    unit: Literal["conceptual", "functional"] | None
    samples: list[str]


class TestCaseEntry(_Model):
    __test__ = False  # not a pytest class

    id: str
    kind: Literal["conceptual", "functional", "both"]
    coverage: Literal["automated", "assisted", "manual"]
    title: str
    purpose: str | None = None  # the catalogue's paraphrase of the TS 103 701 test purpose, where it has one
    note: str | None
    decided_by: list[DecidedBy] = Field(min_length=1)
    results: list[Result]


class IcsRow(_Model):
    support: str
    detail: str


class ProvisionEntry(_Model):
    id: str
    chapter: str
    title: str
    status: str
    requirement: Literal["mandatory", "recommended"]
    recommendation_not_implemented: bool
    verdict: ProvisionVerdict
    reason: str
    missing: list[Missing]
    ics: IcsRow | None
    test_cases: list[TestCaseEntry]


class NotAssessed(_Model):
    provision: str
    requirement: Literal["mandatory", "recommended"]
    missing: list[str]
    reason: str


class Chapter(_Model):
    chapter: str
    title: str
    counts: dict[ProvisionVerdict, int]
    verdict: ProvisionVerdict


class Summary(_Model):
    overall: ProvisionVerdict
    complete: bool
    not_assessed: list[NotAssessed]
    counts: dict[Verdict, int]
    provision_counts: dict[ProvisionVerdict, int]
    chapters: list[Chapter]


class ReportHead(_Model):
    id: str
    title: str
    subject: str
    status: Literal["draft", "approved"]
    issued: str
    generated_at: str


class Customer(_Model):
    name: str
    address: list[str]
    contact: str | None


class InputFile(_Model):
    what: str
    source: str
    file: str
    sha256: str


class Method(_Model):
    standard: str
    test_specification: str
    edition: str
    edition_label: str | None = None
    catalogue_confidence: str | None = None
    tool: str
    software: dict[str, str]
    suites: list[str]
    inputs: list[InputFile] = []


class Item(_Model):
    model: str
    vendor: str | None = None
    serial: str
    firmware: str
    firmware_sha256: str | None = None
    firmware_file: str | None = None
    mac: str | None = None
    received_on: str | None = None
    condition_on_receipt: str | None = None
    bench: str | None = None


class Dates(_Model):
    received: str | None
    testing_started: str | None
    testing_ended: str | None
    issued: str


class ShortResult(_Model):
    provision: str | None
    test_case: str | None
    test: str | None = None
    bench: str | None
    executed_on: str | None = None
    dut_serial: str | None
    reason: str
    cause: Cause | None
    attempt: int | None = None
    nodeid: str | None = None


class EvidenceFile(_Model):
    path: str
    sha256: str
    size: int


class Approval(_Model):
    by: str | None
    role: str | None
    at: str | None


class Run(_Model):
    id: str
    lab: str | None
    operator: str | None
    status: Literal["completed", "cancelled"]
    inventory_sha256: str | None
    benches: list[str]
    created: str | None = None


class Links(_Model):
    allure_report: str | None
    verdicts: str | None
    manifest: str | None
    pdf: str | None


class ConformanceDocument(_Model):
    """The whole report as data (ISO/IEC 17025 7.8.2.1; see docs/architecture.md "Reports")."""

    schema_: Literal["certlab.conformance/2"] = Field(alias="schema")
    report: ReportHead
    laboratory: Laboratory
    customer: Customer
    method: Method
    items: list[Item]
    dates: Dates
    statement: str
    decision_rule: str
    summary: Summary
    provisions: list[ProvisionEntry]
    other_results: list[Result]
    inconclusive: list[ShortResult]
    deviations: list[str]
    equipment: list[dict[str, Any]]  # as each bench recorded it (evidence/<bench>/equipment.json)
    approval: Approval | None
    evidence_index: list[EvidenceFile]
    run: Run
    links: Links

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def checked(doc: Any) -> dict[str, Any]:
    """`doc` validated against the model, as plain JSON data; ReportError naming the first bad field."""
    if not isinstance(doc, dict):
        raise ReportError("the conformance document is not a JSON object")
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise ReportError(f"conformance document schema {schema!r} is not {SCHEMA!r}: rebuild it with this certlab")
    try:
        model = ConformanceDocument.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ReportError(f"conformance document: {where}: {err['msg']}{more}; fix: rebuild it with "
                          f"`certlab report DIR`") from None
    return model.model_dump(mode="json", by_alias=True)
