"""The lab assessor's recorded decisions on the conceptual test cases of TS 103 701.

A conceptual test case compares the manufacturer's design (ICS and IXIT) with a provision; no
instrument can decide it, a qualified assessor does. certlab never invents that decision: the
verdict of a conceptual test case is what the assessor wrote in the assessments file, with their
name and reasoning, and a case without a decision stays INCONCLUSIVE (`AssessmentPending`).

    assessor: {name: "A. Assessor", role: "lead assessor"}
    date: 2024-05-02
    decisions:
      "5.1-1-1": {verdict: PASS, reasoning: "...", ixit_refs: ["1-AuthMech root-password"]}

A bad file stops with one line naming the file, the field path and the fix (like lab/ics.py).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lab.catalog import Catalog, Catalogs, load_catalog, normalise_edition
from lab.yamlfile import read_yaml, validation_line
from lab.errors import CertlabError, LabFault
from lab.ixit import LIST_NAMES, Ixit
from lab.products import find_product_file

_EXAMPLE = "see inventory/products/TH-100/assessments.yaml"
#: IXIT list names an ixit_ref may start with (V1.1.1 names and the V2.1.1 renames)
IXIT_LISTS = set(LIST_NAMES.values()) | {"11-SecComMech", "15-PhyIntf", "28-LogIntf", "test_facts"}
_REF = re.compile(r"^(?P<list>[0-9]{1,2}-[A-Za-z]+|test_facts)(?:\s+(?P<entry>\S.*))?$")


class AssessmentsError(CertlabError):
    """The assessments file is missing, malformed or inconsistent with the catalogue or IXIT."""


class AssessmentPending(LabFault):
    """No assessor decision is recorded for a conceptual test case: the lab has not decided yet."""

    kind = "conceptual assessment pending"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Assessor(_Model):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)


class Decision(_Model):
    verdict: Literal["PASS", "FAIL"]
    reasoning: str = Field(min_length=10)
    ixit_refs: tuple[str, ...] = ()

    @field_validator("verdict", mode="before")
    @classmethod
    def _verdict(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("YAML read a yes/no word as a boolean; write PASS or FAIL")
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("reasoning", mode="before")
    @classmethod
    def _reasoning(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("ixit_refs")
    @classmethod
    def _refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            m = _REF.match(ref.strip())
            if not m or m.group("list") not in IXIT_LISTS:
                raise ValueError(f"{ref!r} is not an IXIT reference; write '<list> [entry id]', e.g. "
                                 "'11-ComMech telemetry' (lists: 1-AuthMech ... 29-InpVal)")
        return tuple(r.strip() for r in value)


class AssessmentsFile(_Model):
    edition: str | None = None
    model: str | None = None
    assessor: Assessor
    date: dt.date
    decisions: dict[str, Decision] = {}


class Assessments:
    """A validated assessments file bound to its edition's catalogue."""

    def __init__(self, path: Path, data: AssessmentsFile, catalog: Catalog) -> None:
        self.path = path
        self.data = data
        self.catalog = catalog

    @property
    def assessor(self) -> Assessor:
        return self.data.assessor

    def decision(self, test_case: str) -> Decision | None:
        return self.data.decisions.get(test_case)

    def check_refs(self, ixit: Ixit) -> None:
        """Every `ixit_refs` entry id must exist in the IXIT it claims to rely on."""
        for case, decision in self.data.decisions.items():
            for i, ref in enumerate(decision.ixit_refs):
                m = _REF.match(ref)
                entry = m.group("entry") if m else None
                name = m.group("list") if m else ""
                field = next((f for f, n in LIST_NAMES.items() if n == name or name.split("-")[0] == n.split("-")[0]), None)
                if not entry or field is None or field == "user_info":
                    continue
                ids = [e.id for e in getattr(ixit, field)]
                if entry not in ids:
                    raise AssessmentsError(
                        f"{self.path}: assessments: decisions.{case}.ixit_refs[{i}]: {entry!r} is not an entry of "
                        f"{LIST_NAMES[field]} in the IXIT; use one of: {', '.join(ids) or '(none)'}"
                    )


def default_path(folder: Path, edition: str) -> Path | None:
    """`assessments.<edition>.yaml` or `assessments.yaml` in a product folder, if one exists."""
    return find_product_file(folder, "assessments", edition)


def load_assessments(path: str | Path, edition: str, *, model: str | None = None,
                     catalogs: Catalogs | None = None, check_files: bool = True) -> Assessments:
    """Read and validate an assessments file for `edition`; AssessmentsError (one line) on any problem.
    `catalogs`: the caller's parsed catalogues, else the edition's is parsed for this call."""
    path = Path(path)
    raw = read_yaml(path, AssessmentsError, "assessments")
    if not isinstance(raw, dict):
        raise AssessmentsError(f"{path}: an assessments file is a mapping with assessor, date and decisions; {_EXAMPLE}")
    raw = {str(k): v for k, v in raw.items()}
    if isinstance(raw.get("decisions"), dict):
        raw["decisions"] = {str(k): v for k, v in raw["decisions"].items()}
    try:
        data = AssessmentsFile.model_validate(raw)
    except ValidationError as exc:
        raise AssessmentsError(validation_line(str(path), "assessments", exc)) from None
    try:
        wanted = normalise_edition(edition)
        declared = normalise_edition(data.edition) if data.edition else wanted
    except CertlabError as exc:
        raise AssessmentsError(f"{path}: assessments: edition: {exc}") from None
    if declared != wanted:
        raise AssessmentsError(f"{path}: assessments: edition: the decisions are for {declared} but {wanted} is "
                               f"assessed; use --edition {declared} or record decisions for {wanted}")
    if model and data.model and data.model != model:
        raise AssessmentsError(f"{path}: assessments: model: the decisions are for {data.model!r}, the DUT is "
                               f"{model!r}; pass the assessments file of {model!r}")
    cat = catalogs.get(wanted) if catalogs is not None else load_catalog(wanted)
    for case in data.decisions:
        where = f"{path}: assessments: decisions.{case}"
        try:
            tc = cat.test_case(case)
        except CertlabError as exc:
            raise AssessmentsError(f"{where}: {exc}") from None
        if tc.kind == "functional":
            raise AssessmentsError(f"{where}: {case} is a functional test case, decided by the DUT's behaviour; "
                                   "record decisions only for conceptual test cases")
    return Assessments(path, data, cat)
