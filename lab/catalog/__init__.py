"""The catalogue: every EN 303 645 provision and TS 103 701 test case of an edition, as data.

Everything else in certlab (ICS validation, test plans, verdict reports) asks the catalogue which
provisions and test cases exist, so the edition lives in one data file per edition
(`data/*.yaml`) instead of being scattered through code. Each entry says how sure we are of it.

    cat = load_catalog("v2")
    cat.provision("5.1-1").status.code()        # 'M C(1)'
    cat.select_test_cases(coverage="automated")
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import ValidationError

from lab.catalog.automation import marked_tests
from lab.catalog.models import (
    CatalogFile,
    Condition,
    Confidence,
    Coverage,
    Kind,
    Mapping,
    Provision,
    Status,
    TestCase,
)
from lab.yamlfile import parse_yaml, validation_line
from lab.errors import CertlabError

__all__ = [
    "EDITIONS", "Catalog", "CatalogError", "Condition", "Confidence", "Coverage", "Kind", "Mapping",
    "Provision", "Status", "TestCase", "load_catalog", "matching_cases", "normalise_edition",
]

#: edition name -> data file (EN 303 645 version with its TS 103 701 version)
EDITIONS: MappingType[str, str] = MappingProxyType({
    "v2": "en303645-v2.1.1.yaml",  # EN 303 645 V2.1.1 + TS 103 701 V1.1.1
    "v3": "en303645-v3.1.3.yaml",  # EN 303 645 V3.1.3 + TS 103 701 V2.1.1
})
# how a report names an edition: the standard and the test specification that go together
EDITION_LABELS = {"v2": "EN 303 645 V2.1.1 / TS 103 701 V1.1.1", "v3": "EN 303 645 V3.1.3 / TS 103 701 V2.1.1"}
# where a report links a provision ("en") and a test case ("ts") to: ETSI's published deliverables
EDITION_URLS = {
    "v2": {"en": "https://www.etsi.org/deliver/etsi_en/303600_303699/303645/02.01.01_60/en_303645v020101p.pdf",
           "ts": "https://www.etsi.org/deliver/etsi_ts/103700_103799/103701/01.01.01_60/ts_103701v010101p.pdf"},
    "v3": {"en": "https://www.etsi.org/deliver/etsi_en/303600_303699/303645/03.01.03_60/en_303645v030103p.pdf",
           "ts": "https://www.etsi.org/deliver/etsi_ts/103700_103799/103701/02.01.01_60/ts_103701v020101p.pdf"},
}
# the clause titles of EN 303 645 (the same in V2.1.1 and V3.1.3), for per-chapter summaries
CHAPTER_TITLES = {
    "4": "Reporting implementation",
    "5.1": "No universal default passwords",
    "5.2": "Implement a means to manage reports of vulnerabilities",
    "5.3": "Keep software updated",
    "5.4": "Securely store sensitive security parameters",
    "5.5": "Communicate securely",
    "5.6": "Minimize exposed attack surfaces",
    "5.7": "Ensure software integrity",
    "5.8": "Ensure that personal data is secure",
    "5.9": "Make systems resilient to outages",
    "5.10": "Examine system telemetry data",
    "5.11": "Make it easy for users to delete user data",
    "5.12": "Make installation and maintenance of devices easy",
    "5.13": "Validate input data",
    "6": "Data protection provisions for consumer IoT",
}
_ALIASES = {"2": "v2", "2.1.1": "v2", "v2.1.1": "v2", "3": "v3", "3.1.3": "v3", "v3.1.3": "v3"}
STATUS_FILTERS = ("mandatory", "recommended", "conditional", "unconditional", "M", "R")


class CatalogError(CertlabError):
    """An unknown edition, provision or filter value, or a broken catalogue data file."""


def normalise_edition(edition: str) -> str:
    """'v2', '2.1.1', 'V3.1.3' ... -> 'v2' / 'v3'; anything else is a CatalogError."""
    key = str(edition).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EDITIONS:
        raise CatalogError(f"edition {edition!r}: unknown; use one of: {', '.join(EDITIONS)}")
    return key


@dataclass(frozen=True)
class Catalog:
    """One edition's provisions and test cases, with lookups and filters (read-only)."""

    edition: str
    en: str
    ts: str
    confidence: Confidence
    notes: tuple[str, ...]
    conditions: MappingType[str, Condition]
    features: MappingType[str, Condition]
    provisions: tuple[Provision, ...]
    _by_id: MappingType[str, Provision] = field(repr=False)
    _cases: MappingType[str, TestCase] = field(repr=False)

    @classmethod
    def from_file(cls, data: CatalogFile) -> "Catalog":
        return cls(
            edition=data.edition, en=data.en, ts=data.ts, confidence=data.confidence, notes=data.notes,
            conditions=MappingProxyType(dict(data.conditions)), features=MappingProxyType(dict(data.features)),
            provisions=data.provisions,
            _by_id=MappingProxyType({p.id: p for p in data.provisions}),
            _cases=MappingProxyType({c.id: c for p in data.provisions for c in p.test_cases}),
        )

    @property
    def label(self) -> str:
        return f"{self.en} / {self.ts}"

    @property
    def test_cases(self) -> tuple[TestCase, ...]:
        return tuple(self._cases.values())

    @property
    def test_groups(self) -> tuple[str, ...]:
        return tuple(p.test_group for p in self.provisions if p.test_group)

    def has_provision(self, provision_id: str) -> bool:
        return provision_id in self._by_id

    def replaced_by(self, old_id: str) -> tuple[str, ...]:
        """Ids of this edition that replace `old_id` of the other edition (split or renumbered)."""
        return tuple(p.id for p in self.provisions if old_id in p.replaces)

    def unknown_provision_hint(self, provision_id: str) -> str:
        """The fix for an id this edition lacks: its replacement, a close spelling, or the id format."""
        newer = self.replaced_by(provision_id)
        if newer:
            return f"in {self.edition} it is {' and '.join(newer)}"
        close = difflib.get_close_matches(provision_id, list(self._by_id), n=1, cutoff=0.8)
        if close:
            return f"did you mean {close[0]!r}?"
        return f"use a provision id of {self.en} (`certlab catalog --edition {self.edition}` lists them)"

    def provision_ids(self, given: str) -> set[str]:
        """The provisions `given` names: itself, or in V3 its lettered parts (5.6-4 -> 5.6-4A, 5.6-4B)."""
        return {k for k in self._by_id if k == given or k.rstrip("ABCDEFGH") == given}

    def provision(self, provision_id: str) -> Provision:
        try:
            return self._by_id[provision_id]
        except KeyError:
            raise CatalogError(
                f"provision {provision_id!r} is not in {self.en}; {self.unknown_provision_hint(provision_id)}"
            ) from None

    def test_case(self, test_case_id: str) -> TestCase:
        try:
            return self._cases[test_case_id]
        except KeyError:
            close = difflib.get_close_matches(test_case_id, list(self._cases), n=1, cutoff=0.8)
            fix = f"did you mean {close[0]!r}?" if close else "use an id like 5.1-1-2 (<provision>-<n>)"
            raise CatalogError(f"test case {test_case_id!r} is not in {self.ts}; {fix}") from None

    def condition_texts(self, provision: Provision) -> tuple[str, ...]:
        """The status's conditions and features spelt out, e.g. ('C1: passwords are used',)."""
        return tuple(
            [f"C{c}: {self.conditions[c].text}" for c in provision.status.conditions]
            + [f"F({f}): {self.features[f].text}" for f in provision.status.features]
        )

    def select(self, *, chapter: str | None = None, status: str | None = None,
               kind: str | None = None, coverage: str | None = None) -> tuple[Provision, ...]:
        """Provisions matching every filter given; with kind/coverage, only those with a matching case."""
        _check_filter("kind", kind, ("conceptual", "functional", "both"))
        _check_filter("coverage", coverage, ("automated", "assisted", "manual"))
        _check_filter("status", status, STATUS_FILTERS)
        picked = []
        for prov in self.provisions:
            if chapter and not _in_chapter(prov.chapter, chapter):
                continue
            if status and not _has_status(prov.status, status):
                continue
            if (kind or coverage) and not matching_cases(prov, kind, coverage):
                continue
            picked.append(prov)
        return tuple(picked)

    def select_test_cases(self, *, chapter: str | None = None, status: str | None = None,
                          kind: str | None = None, coverage: str | None = None) -> tuple[TestCase, ...]:
        """Test cases matching every filter (chapter and status are those of their provision)."""
        return tuple(
            case
            for prov in self.select(chapter=chapter, status=status, kind=kind, coverage=coverage)
            for case in matching_cases(prov, kind, coverage)
        )


def _check_filter(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise CatalogError(f"filter {name}={value!r}: unknown value; use one of: {', '.join(allowed)}")


def _in_chapter(chapter: str, wanted: str) -> bool:
    wanted = wanted.strip().rstrip(".")
    return chapter == wanted or chapter.startswith(wanted + ".")


def _has_status(status: Status, wanted: str) -> bool:
    return {
        "mandatory": status.requirement == "M",
        "M": status.requirement == "M",
        "recommended": status.requirement == "R",
        "R": status.requirement == "R",
        "conditional": status.conditional,
        "unconditional": not status.conditional,
    }[wanted]


def matching_cases(prov: Provision, kind: str | None = None, coverage: str | None = None) -> tuple[TestCase, ...]:
    """The test cases of `prov` of that kind (a "both" case counts as either) and coverage."""
    return tuple(
        c for c in prov.test_cases
        if (kind is None or c.kind == kind or (c.kind == "both" and kind in ("conceptual", "functional")))
        and (coverage is None or c.coverage == coverage)
    )


@dataclass
class Catalogs:
    """Each edition's catalogue, parsed once: parsing costs more than an ICS check itself, so a
    long-lived process that checks many (the booking API) holds one of these. A Catalog is
    read-only, so sharing it is safe; two threads may at worst both parse it once."""

    _parsed: dict[str, Catalog] = field(default_factory=dict)

    def get(self, edition: str) -> Catalog:
        key = normalise_edition(edition)
        found = self._parsed.get(key)
        if found is None:
            found = self._parsed[key] = load_catalog(key)
        return found


def load_catalog(edition: str = "v2", suites: Path | Literal["shipped"] | None = "shipped") -> Catalog:
    """Load and validate one edition's catalogue ('v2' or 'v3'); CatalogError if it is broken.

    A test case's `automated` coverage is not data: it follows from the `@pytest.mark.etsi`
    markers of the suites in `suites` ("shipped": the installed assessment suites; None: no suites,
    nothing automated), so the data file says
    `assisted`/`manual` and adding a test case touches its suite only."""
    key = normalise_edition(edition)
    name = EDITIONS[key]
    source = f"lab/catalog/data/{name}"
    text = resources.files(__name__).joinpath("data", name).read_text(encoding="utf-8")
    raw = parse_yaml(text, source, CatalogError)
    try:
        data = CatalogFile.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(validation_line(source, "catalogue", exc)) from None
    if data.edition != key:
        raise CatalogError(f"{source}: field 'edition' is {data.edition!r}, expected {key!r}; fix the data file")
    by_hand = [c.id for p in data.provisions for c in p.test_cases if c.coverage == "automated"]
    if by_hand:
        raise CatalogError(
            f"{source}: test case {by_hand[0]} says 'coverage: automated'; write 'assisted': automated "
            "coverage follows from a suite test marked @pytest.mark.etsi with its id (docs/adding-a-test-case.md)"
        )
    marked = marked_tests(key, None if suites == "shipped" else suites) if suites else {}
    return Catalog.from_file(with_automation(data, set(marked)))


def with_automation(data: CatalogFile, marked: set[str]) -> CatalogFile:
    """`data` with every functional (or both) test case a suite marks set to `automated` coverage."""
    provisions = tuple(
        prov.model_copy(update={"test_cases": tuple(
            case.model_copy(update={"coverage": "automated"})
            if case.id in marked and case.kind != "conceptual" else case
            for case in prov.test_cases
        )})
        for prov in data.provisions
    )
    return data.model_copy(update={"provisions": provisions})
