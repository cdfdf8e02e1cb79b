"""The lab's details for its test reports: who issues them, from where, and who may approve them.

ISO/IEC 17025 7.8.2.1 wants the laboratory's name and address on every report, and 7.8.6 a
stated decision rule; these are the lab's, not the run's, so they live in one file the lab
keeps (`lab_profile:` in the inventory's `all.vars.certlab`, or `certlab report --lab-profile`).

    profile = load_profile("inventory/lab-profile.yaml")
    profile.authoriser("Dr A. Example")     # the signatory, or a one-line error naming the fix
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lab.errors import CertlabError
from lab.yamlfile import read_yaml, validation_line

_EXAMPLE = "see inventory/lab-profile.yaml"

DEFAULT_STATEMENT = (
    "The results relate only to the items tested, as received. This report shall not be reproduced "
    "except in full without the written approval of the laboratory."
)
DEFAULT_DECISION_RULE = (
    "Each test case yields PASS, FAIL, NOT_APPLICABLE or INCONCLUSIVE as defined in ETSI TS 103 701; a test "
    "case is decided by an automated test, by the lab's assessor performing it by hand (with evidence), or, "
    "for a conceptual test case, by the assessor's recorded decision. A provision is FAIL when any of its test "
    "cases failed on any sample; INCONCLUSIVE when none failed but at least one could not be decided; "
    "NOT_ASSESSED when a test case in scope has no result on some sample; NOT_APPLICABLE only when the "
    "manufacturer's ICS states, with a justification, that it does not apply (or that a recommendation is not "
    "implemented); PASS only when every test case in scope passed on every sample. The overall result is the "
    "worst provision verdict in that order and is never PASS while a provision is NOT_ASSESSED. Where a "
    "measured value is compared with a limit from the IXIT, simple acceptance applies (ILAC-G8:09/2019 "
    "4.2.1, no guard band): the measurement uncertainty is recorded with the evidence, not subtracted."
)


class ProfileError(CertlabError):
    """The lab profile file is missing or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Accreditation(_Model):
    body: str = Field(min_length=1, max_length=200)
    number: str = Field(min_length=1, max_length=100)
    scope: str | None = Field(default=None, max_length=500)


class Contact(_Model):
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=50)
    web: str | None = Field(default=None, max_length=200)


class Laboratory(_Model):
    name: str = Field(min_length=1, max_length=200)
    address: list[str] = Field(min_length=1, max_length=8)
    accreditation: Accreditation | None = None
    contact: Contact = Contact()

    @field_validator("address")
    @classmethod
    def _lines(cls, value: list[str]) -> list[str]:
        if any(not line.strip() for line in value):
            raise ValueError("an address line is empty; write each line as text")
        return value


class Signatory(_Model):
    """A person the lab has authorised to approve reports (ISO/IEC 17025 7.8.2.1 o)."""

    name: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=200)


class ReportTexts(_Model):
    title: str = Field(default="Test report", min_length=1, max_length=200)
    statement: str = Field(default=DEFAULT_STATEMENT, min_length=1, max_length=2000)
    decision_rule: str = Field(default=DEFAULT_DECISION_RULE, min_length=1, max_length=4000)


class LabProfile(_Model):
    path: Path
    laboratory: Laboratory
    report: ReportTexts = ReportTexts()
    signatories: list[Signatory] = Field(default_factory=list)

    def authoriser(self, name: str, role: str) -> Signatory:
        """The signatory approving a report; only people the profile names may (when it names any)."""
        name, role = name.strip(), role.strip()
        if not name or not role:
            raise ProfileError("approve: give the authoriser's name with --by and role with --role")
        if not self.signatories:
            return Signatory(name=name, role=role)
        for person in self.signatories:
            if person.name.casefold() == name.casefold():
                if person.role.casefold() != role.casefold():
                    raise ProfileError(f"{self.path}: signatory {person.name!r} is authorised as {person.role!r}, "
                                       f"not {role!r}; fix: --role {person.role!r}")
                return person
        names = ", ".join(repr(p.name) for p in self.signatories)
        raise ProfileError(f"{self.path}: {name!r} is not an authorised signatory (field 'signatories'); "
                           f"fix: use one of {names}, or add the person to the lab profile")


def load_profile(path: str | Path) -> LabProfile:
    """Read and validate a lab profile; ProfileError (one line naming the field and the fix) on any problem."""
    path = Path(path)
    data = read_yaml(path, ProfileError, "lab profile")
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a lab profile is a mapping with 'laboratory:' (name, address); {_EXAMPLE}")
    try:
        return LabProfile(path=path, **data)
    except ValidationError as exc:
        raise ProfileError(validation_line(str(path), "lab profile", exc)) from None
    except TypeError as exc:
        raise ProfileError(f"{path}: {exc}; {_EXAMPLE}") from None
