"""The manufacturer's Implementation Conformance Statement (EN 303 645 Annex B, Table B.1).

Per provision of the chosen edition: support `Y` (detail = the measures), `N` (detail = why not)
or `N/A` (detail = why the condition is not met; only for conditional provisions). It is the
only source of NOT_APPLICABLE verdicts, so it is checked against the catalogue before any test
runs: an unknown id, an unjustified N/A or an N/A on an unconditional provision stops the run
with one line naming the file, the field and the fix.

    ics = load_ics("inventory/products/TH-100/ics.yaml", "v2")
    applies, why = ics.applicability("5.3-6")     # (False, "no automatic updates ...")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lab.catalog import Catalog, Catalogs, load_catalog, normalise_edition
from lab.yamlfile import read_yaml, validation_line
from lab.errors import CertlabError
from lab.ixit import Product

Support = Literal["Y", "N", "N/A"]
_EXAMPLE = "see inventory/products/TH-100/ics.yaml"


class IcsError(CertlabError):
    """The ICS file is missing, malformed or inconsistent with the catalogue."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IcsEntry(_Model):
    """One row of Table B.1: Support and Detail."""

    support: Support
    detail: str = ""

    @field_validator("support", mode="before")
    @classmethod
    def _support(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML turns yes/no/true/false into booleans
            raise ValueError("YAML read a yes/no word as a boolean; write Y, N or \"N/A\" (quoted)")
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("detail", mode="before")
    @classmethod
    def _detail(cls, value: Any) -> Any:
        return "" if value is None else value.strip() if isinstance(value, str) else value


class IcsFile(_Model):
    """The file as written: which edition, which product, and one entry per provision."""

    edition: str | None = None
    product: Product
    provisions: dict[str, IcsEntry] = Field(min_length=1)


class Ics(_Model):
    """A validated ICS bound to its edition's catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    path: Path
    edition: str
    product: Product
    provisions: dict[str, IcsEntry]
    catalog: Catalog = Field(repr=False, exclude=True)

    def entry(self, provision_id: str) -> IcsEntry | None:
        """The ICS row of a provision (or of a test case's provision); None if left out."""
        return self.provisions.get(self._provision_id(provision_id))

    def applicability(self, provision_id: str) -> tuple[bool, str]:
        """(applies, justification). Only an N/A row makes a provision not apply.

        Accepts a provision id (5.1-1) or a test case id (5.1-1-2). A provision the ICS may
        omit (ics_optional in the catalogue) and did omit applies, with an empty detail.
        """
        entry = self.entry(provision_id)
        if entry is None:
            return True, ""
        return entry.support != "N/A", entry.detail

    def _provision_id(self, ident: str) -> str:
        if self.catalog.has_provision(ident):
            return ident
        try:
            return self.catalog.test_case(ident).provision
        except CertlabError:
            raise IcsError(
                f"{self.path}: no provision or test case {ident!r} in {self.catalog.en}; "
                f"{self.catalog.unknown_provision_hint(ident)}"
            ) from None


def _check_against_catalog(path: Path, data: IcsFile, cat: Catalog) -> None:
    """Table B.1 rules: known ids, N/A only where a condition exists, N and N/A justified, all rows."""
    for pid, entry in data.provisions.items():
        where = f"{path}: ics: provisions.{pid}"
        if not cat.has_provision(pid):
            raise IcsError(f"{where}: unknown provision for {cat.en}; {cat.unknown_provision_hint(pid)}")
        status = cat.provision(pid).status
        if entry.support == "N/A" and not status.conditional:
            raise IcsError(
                f"{where}.support: N/A is only allowed for a conditional provision, and {pid} is "
                f"{status.code()} ({status.level}, unconditional); answer Y, or N with the reason in detail"
            )
        if entry.support != "Y" and not entry.detail:
            what = "the justification why its condition is not met" if entry.support == "N/A" else "the reason it is not met"
            raise IcsError(f"{where}.detail: required when support is {entry.support}; write {what}")
    missing = [p.id for p in cat.provisions if p.id not in data.provisions and not p.ics_optional]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise IcsError(
            f"{path}: ics: provisions: {len(missing)} provision(s) of {cat.en} not answered ({shown}); "
            "add each with support Y, N or N/A"
        )


def load_ics(path: str | Path, edition: str | None = None, *, catalogs: Catalogs | None = None) -> Ics:
    """Read and validate an ICS for `edition` (default: the file's own `edition`, else v2);
    `catalogs`: the caller's parsed catalogues, else the edition's is parsed for this call."""
    path = Path(path)
    raw = read_yaml(path, IcsError, "ICS")
    if not isinstance(raw, dict):
        raise IcsError(f"{path}: an ICS is a mapping with 'product' and 'provisions'; {_EXAMPLE}")
    try:
        data = IcsFile.model_validate(raw)
    except ValidationError as exc:
        raise IcsError(validation_line(str(path), "ics", exc)) from None
    try:
        wanted = normalise_edition(edition or data.edition or "v2")
        declared = normalise_edition(data.edition) if data.edition else wanted
    except CertlabError as exc:
        raise IcsError(f"{path}: ics: edition: {exc}") from None
    if declared != wanted:
        raise IcsError(
            f"{path}: ics: edition: the file is for {declared} but {wanted} was asked for; "
            f"use --edition {declared} or answer the {wanted} provisions"
        )
    cat = catalogs.get(wanted) if catalogs is not None else load_catalog(wanted)
    _check_against_catalog(path, data, cat)
    return Ics(path=path, edition=wanted, product=data.product, provisions=dict(data.provisions), catalog=cat)
