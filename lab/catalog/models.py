"""Typed entries of the catalogue: provisions, their status, test cases and mappings.

The data files are validated against these models on every load, so a typo in the catalogue
(an unknown condition, a test case outside its group, a wrong count) stops certlab at once
instead of silently dropping a provision from a certification.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Confidence = Literal["confirmed", "derived", "unconfirmed"]
Kind = Literal["conceptual", "functional", "both"]
Coverage = Literal["automated", "assisted", "manual"]
Requirement = Literal["M", "R"]

PROVISION_ID = re.compile(r"^(?P<chapter>\d+(?:\.\d+)?)-(?P<n>\d+[A-Z]?)$")
REQUIREMENT_NAMES = {"M": "mandatory", "R": "recommended"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    """A numbered condition (V2/V3) or a feature letter (V3) that makes a provision apply."""

    text: str
    confidence: Confidence


class Status(_Model):
    """M or R, applying only under the listed conditions and (V3) where the features exist."""

    requirement: Requirement
    conditions: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    confidence: Confidence
    note: str | None = None

    @property
    def conditional(self) -> bool:
        return bool(self.conditions or self.features)

    @property
    def level(self) -> str:
        """'mandatory' or 'recommended' (whether conditional or not)."""
        return REQUIREMENT_NAMES[self.requirement]

    def code(self) -> str:
        """The status as the standard's tables write it, e.g. 'M C(1)', 'R C(9,12)', 'M C(14) F(e)'."""
        parts = [self.requirement]
        if self.conditions:
            parts.append(f"C({','.join(self.conditions)})")
        if self.features:
            parts.append(f"F({','.join(self.features)})")
        return " ".join(parts)


class TestCase(_Model):
    """One TS 103 701 test case and how certlab covers it."""

    __test__ = False  # not a pytest test class

    id: str
    kind: Kind
    coverage: Coverage
    confidence: Confidence
    note: str | None = None
    purpose: str | None = None  # certlab's own paraphrase of the TS test purpose (report and Allure titles)
    provision: str = ""  # filled in from the enclosing provision by the loader

    @model_validator(mode="after")
    def _coverage_fits_kind(self) -> "TestCase":
        if self.kind == "conceptual" and self.coverage != "manual":
            raise ValueError(f"test case {self.id} is conceptual: only 'manual' coverage fits")
        if self.kind == "functional" and self.coverage == "manual":
            raise ValueError(f"test case {self.id} is functional: use 'automated' or 'assisted'")
        return self


class Mapping(_Model):
    """Topic-level correspondence to EN 18031-1/-2/-3 mechanisms and CRA Annex I (own analysis)."""

    en18031: tuple[str, ...] = ()
    cra: tuple[str, ...] = ()
    note: str | None = None
    confidence: Confidence


class Provision(_Model):
    """One EN 303 645 provision with its TS 103 701 test group."""

    id: str
    title: str | None = Field(description="certlab's own short paraphrase; null where unknown")
    confidence: Confidence
    status: Status
    replaces: tuple[str, ...] = ()  # ids of the previous edition this entry replaces (splits, renumbering)
    ics_optional: bool = False  # the ICS may leave it out (its Table B.1 row is unconfirmed)
    note: str | None = None
    test_group: str | None
    test_cases: tuple[TestCase, ...]
    mapping: Mapping | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not PROVISION_ID.match(value):
            raise ValueError(f"{value!r} is not a provision id like 5.1-1 or 5.13-1A")
        return value

    @model_validator(mode="after")
    def _cases_in_group(self) -> "Provision":
        if self.test_group is None and self.test_cases:
            raise ValueError(f"{self.id}: test cases without a test group")
        for case in self.test_cases:
            if not re.fullmatch(rf"{re.escape(self.test_group or '')}-\d+", case.id):
                raise ValueError(f"test case {case.id} does not belong to group {self.test_group} (<group>-<n>)")
        cases = tuple(c.model_copy(update={"provision": self.id}) for c in self.test_cases)
        return self.model_copy(update={"test_cases": cases})

    @property
    def chapter(self) -> str:
        """The clause the provision belongs to: '5.1' for 5.1-1, '6' for 6-3A."""
        return self.id.rpartition("-")[0]


class Counts(_Model):
    provisions: int
    test_groups: int
    test_cases: int


class CatalogFile(_Model):
    """The whole data file of one edition, checked for internal consistency."""

    edition: Literal["v2", "v3"]
    en: str
    ts: str
    confidence: Confidence
    expected_counts: Counts
    notes: tuple[str, ...] = ()
    conditions: dict[str, Condition]
    features: dict[str, Condition]
    provisions: tuple[Provision, ...]

    @model_validator(mode="after")
    def _consistent(self) -> "CatalogFile":
        seen: set[str] = set()
        for prov in self.provisions:
            for ident in (prov.id, *(c.id for c in prov.test_cases)):
                if ident in seen:
                    raise ValueError(f"id {ident} appears twice")
                seen.add(ident)
            for cond in prov.status.conditions:
                if cond not in self.conditions:
                    raise ValueError(f"{prov.id}: condition {cond} is not defined under 'conditions'")
            for feat in prov.status.features:
                if feat not in self.features:
                    raise ValueError(f"{prov.id}: feature {feat} is not defined under 'features'")
        counts = Counts(
            provisions=len(self.provisions),
            test_groups=sum(1 for p in self.provisions if p.test_group),
            test_cases=sum(len(p.test_cases) for p in self.provisions),
        )
        if counts != self.expected_counts:
            raise ValueError(f"counts {counts.model_dump()} differ from expected_counts {self.expected_counts.model_dump()}")
        return self
