"""The lab assessor's record: decisions on conceptual test cases, and functional test cases
the lab performed by hand.

A conceptual test case compares the manufacturer's design (ICS and IXIT) with a provision; no
instrument can decide it, a qualified assessor does. Some functional test cases (the casing, the
printed manual, the vendor's web site) are performed by a person, not by a suite. certlab never
invents either: the verdict is what the assessor recorded, with their name, reasoning or reason,
and for a performed case the samples and the evidence files; a case without a record has no
result, and its provision is NOT_ASSESSED in the report.

    assessor: {name: "A. Assessor", role: "lead assessor"}
    date: 2024-05-02
    decisions:
      "5.1-1-1": {verdict: PASS, reasoning: "...", ixit_refs: ["1-AuthMech root-password"]}
    performed:
      "6-1-2":
        verdict: PASS
        reason: "the privacy notice in the box says what personal data is processed and why"
        assessor: {name: "A. Assessor", role: "lead assessor"}   # default: the file's assessor
        date: 2024-05-03
        samples: [SN0001]
        evidence: [evidence/6-1-2-notice.png]                  # relative to this file

A functional case a suite automates cannot be recorded by hand. A bad file stops with one line
naming the file, the field path and the fix (like lab/ics.py).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lab.automation import automated_by, marked_tests
from lab.catalog import Catalog, Catalogs, load_catalog, normalise_edition
from lab.yamlfile import read_yaml, validation_line
from lab.errors import CertlabError, PaperworkPending
from lab.ixit import LIST_NAMES, Ixit
from lab.inventory import Inventory
from lab.products import find_product_file, product_folder
from lab.verdicts import Verdict

_EXAMPLE = "see inventory/products/TH-100/assessments.yaml"
#: IXIT list names an ixit_ref may start with (V1.1.1 names and the V2.1.1 renames)
IXIT_LISTS = set(LIST_NAMES.values()) | {"11-SecComMech", "15-PhyIntf", "28-LogIntf", "test_facts"}
_REF = re.compile(r"^(?P<list>[0-9]{1,2}-[A-Za-z]+|test_facts)(?:\s+(?P<entry>\S.*))?$")


class AssessmentsError(CertlabError):
    """The assessments file is missing, malformed or inconsistent with the catalogue or IXIT."""


class AssessmentPending(PaperworkPending):
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


class Performed(_Model):
    """A functional test case the lab performed by hand, on named samples, with its evidence."""

    verdict: Literal[Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE]
    reason: str = Field(min_length=10)
    assessor: Assessor | None = None
    date: dt.date
    samples: tuple[str, ...] = Field(min_length=1)
    evidence: tuple[str, ...] = Field(min_length=1)

    @field_validator("verdict", mode="before")
    @classmethod
    def _verdict(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("YAML read a yes/no word as a boolean; write PASS, FAIL or INCONCLUSIVE")
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("samples", "evidence", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("evidence")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = set()
        for ref in value:
            path = PurePosixPath(ref)
            if path.is_absolute() or ".." in path.parts or "\\" in ref or not ref.strip():
                raise ValueError(f"{ref!r}: give a path relative to the assessments file, without '..'")
            if path.name in names:
                raise ValueError(f"two evidence files are named {path.name!r}; rename one")
            names.add(path.name)
        return value


class AssessmentsFile(_Model):
    edition: str | None = None
    model: str | None = None
    assessor: Assessor
    date: dt.date
    decisions: dict[str, Decision] = {}
    performed: dict[str, Performed] = {}


class Assessments:
    """A validated assessments file bound to its edition's catalogue."""

    def __init__(self, path: Path, data: AssessmentsFile, catalog: Catalog, base_dir: Path | None = None) -> None:
        self.path = path
        self.data = data
        self.catalog = catalog
        self.base_dir = base_dir if base_dir is not None else path.parent

    @property
    def assessor(self) -> Assessor:
        return self.data.assessor

    def decision(self, test_case: str) -> Decision | None:
        return self.data.decisions.get(test_case)

    def performed(self, test_case: str) -> Performed | None:
        return self.data.performed.get(test_case)

    def performed_by(self, record: Performed) -> Assessor:
        return record.assessor or self.data.assessor

    def evidence_path(self, ref: str) -> Path:
        """Where an evidence file named in the record is: relative to the file's folder (or `base_dir`)."""
        return self.base_dir / ref

    def check_samples(self, serials: dict[str, str], *, where: str = "the run") -> None:
        """Every sample a performed case names must be a DUT serial of the run (serial -> bench)."""
        for case, record in self.data.performed.items():
            for i, serial in enumerate(record.samples):
                if serial not in serials:
                    raise AssessmentsError(
                        f"{self.path}: assessments: performed.{case}.samples[{i}]: {serial!r} is not a sample of "
                        f"{where}; use the DUT serial of a bench in the run: {', '.join(sorted(serials)) or '(none)'}")

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


def read_assessments_file(path: Path) -> AssessmentsFile:
    """The file's YAML in the record's shape, without the catalogue's checks (`load_assessments` adds them):
    enough to show a record that was validated when it was kept."""
    raw = read_yaml(path, AssessmentsError, "assessments")
    if not isinstance(raw, dict):
        raise AssessmentsError(f"{path}: an assessments file is a mapping with assessor, date and decisions; {_EXAMPLE}")
    raw = {str(k): v for k, v in raw.items()}
    for section in ("decisions", "performed"):
        if isinstance(raw.get(section), dict):
            raw[section] = {str(k): v for k, v in raw[section].items()}
    try:
        return AssessmentsFile.model_validate(raw)
    except ValidationError as exc:
        raise AssessmentsError(validation_line(str(path), "assessments", exc)) from None


def load_assessments(path: str | Path, edition: str, *, model: str | None = None,
                     catalogs: Catalogs | None = None, check_files: bool = True,
                     base_dir: Path | None = None) -> Assessments:
    """Read and validate an assessments file for `edition`; AssessmentsError (one line) on any problem.
    `catalogs`: the caller's parsed catalogues, else the edition's is parsed for this call.
    `check_files`: evidence files must exist (relative to `base_dir`, default the file's folder);
    off for a run's copy, whose evidence was copied and hashed when the run started."""
    path = Path(path)
    data = read_assessments_file(path)
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
                                   "record decisions only for conceptual test cases (a functional case performed "
                                   "by hand goes under performed:)")
    marked = marked_tests(wanted) if data.performed else {}
    base = base_dir if base_dir is not None else path.parent
    for case, record in data.performed.items():
        where = f"{path}: assessments: performed.{case}"
        try:
            tc = cat.test_case(case)
        except CertlabError as exc:
            raise AssessmentsError(f"{where}: {exc}") from None
        if tc.kind == "conceptual":
            raise AssessmentsError(f"{where}: {case} is a conceptual test case, decided on the design; record it "
                                   "under decisions: with the assessor's reasoning")
        tests = automated_by(cat, case, marked)
        if tests:
            raise AssessmentsError(f"{where}: {case} is automated by certlab ({'; '.join(tests)}); its result "
                                   "comes from that test and cannot be recorded by hand; remove it from performed:")
        for i, ref in enumerate(record.evidence):
            if check_files and not (base / ref).is_file():
                raise AssessmentsError(f"{where}.evidence[{i}]: file not found: {base / ref}; fix: put the file "
                                       f"there (paths are relative to {base}) or correct the path")
    return Assessments(path, data, cat, base)


def for_run(inventory: Inventory, benches: list[str] | tuple[str, ...], edition: str,
            explicit: Path | None = None, *, catalogs: Catalogs | None = None) -> dict[str, Assessments]:
    """The assessor's record of each model a run tests, checked before the lab moves: the file as
    for every run, its evidence files, and every sample a performed case names being in the run."""
    found: dict[str, Assessments] = {}
    models = sorted({inventory.benches[b].dut.model for b in benches if b in inventory.benches})
    for model in models:
        path = explicit if explicit is not None else default_path(product_folder(inventory.base_dir, model), edition)
        if path is None:
            continue
        loaded = load_assessments(path, edition, model=model, catalogs=catalogs)
        serials = {inventory.benches[b].dut.serial: b for b in benches
                   if b in inventory.benches and inventory.benches[b].dut.model == model}
        loaded.check_samples(serials, where=f"this run ({model} on {', '.join(sorted(serials.values()))})")
        found[model] = loaded
    return found
