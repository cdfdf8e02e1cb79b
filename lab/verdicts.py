"""The words of a verdict, defined once: what a test case, a provision and a cause can be.

They are string enums, so they travel as plain strings through JSON, the store and templates,
while code that writes one can only pick a member: a misspelt verdict is an AttributeError,
never a quiet new category in a signed report. The rules (docs/architecture.md "Verdicts"):
PASS only for what was performed and evidenced; FAIL only for the DUT's behaviour;
NOT_APPLICABLE only from the manufacturer's ICS; everything the lab could not decide is
INCONCLUSIVE with a Cause; a provision with a test case that has no result is NOT_ASSESSED.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """One test case on one sample."""

    PASS = "PASS"
    FAIL = "FAIL"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    INCONCLUSIVE = "INCONCLUSIVE"


class ProvisionVerdict(StrEnum):
    """One provision over every sample: a test case verdict, or not fully assessed."""

    PASS = "PASS"
    FAIL = "FAIL"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_ASSESSED = "NOT_ASSESSED"


class Cause(StrEnum):
    """Why a verdict is INCONCLUSIVE; only LAB_FAULT is worth a retry on another bench."""

    LAB_FAULT = "lab-fault"
    ASSESSMENT_PENDING = "assessment-pending"  # the assessor's record lacks a decision: never the bench's fault
    SAMPLE_UNUSABLE = "sample-unusable"
    TEST_ERROR = "test-error"
    CANCELLED = "cancelled"
    NOT_RUN = "not-run"


class Role(StrEnum):
    """Who calls the booking API."""

    MANUFACTURER = "manufacturer"
    ENGINEER = "engineer"
    CERTIFIER = "certifier"


VERDICTS: tuple[str, ...] = tuple(Verdict)
CAUSES: tuple[str, ...] = tuple(Cause)
ROLES: tuple[str, ...] = tuple(Role)
