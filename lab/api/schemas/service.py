"""Bodies of the firmware, run, report and review calls: what comes in, then what goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

RunIdPath = Annotated[str, Path(pattern=r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$",
                                description="A run id as `certlab run` makes it, e.g. 20260101-120000-abc123")]

# --- in ---------------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunStart(_In):
    """Optional narrowing of what the booking asked for: by default every bench holding the
    product's model runs the booking's suites (the EN 303 645 suites if it names none)."""

    suites: list[str] | None = Field(None, description="suite names (en303645, examples) or folders and files "
                                     "under testsuites/, e.g. testsuites/en303645/test_5_1_passwords.py",
                                     max_length=50)
    benches: list[str] | None = Field(None, description="only these benches of the inventory", max_length=200)


class ApproveIn(_In):
    by: str = Field(..., min_length=1, max_length=128, description="the authoriser, as the lab profile lists them")
    role: str = Field(..., min_length=1, max_length=128, description="their role, as the lab profile lists it")


class ReleaseIn(_In):
    organisation: str = Field(..., min_length=1, max_length=128, description="the certification body's "
                              "organisation name (it must have a certifier user)")


ProvisionId = Annotated[str, Field(min_length=1, max_length=32)]


class ReviewIn(_In):
    decision: Literal["accepted", "rejected"]
    comment: str = Field("", max_length=20_000)
    provision_comments: dict[ProvisionId, Annotated[str, Field(max_length=20_000)]] = Field(
        default_factory=dict, max_length=500,
        description="provision id (as the conformance report lists it, e.g. 5.1-1) -> why you disagree there")


# --- out --------------------------------------------------------------------------------------


class FirmwareOut(BaseModel):
    id: int
    booking_id: int
    filename: str
    sha256: str
    size: int
    version: str | None
    signature: Literal["valid", "invalid", "unchecked"]
    signature_detail: str | None
    created_at: datetime


class BenchProgress(BaseModel):
    bench: str
    done: int
    total: int
    verdicts: dict[str, int]


class RunOut(BaseModel):
    run_id: str
    booking_id: int
    status: str = Field(..., description="starting, running, finished, interrupted, cancelled or failed "
                        "(the process ended without verdicts)")
    process: Literal["running", "exited", "unknown"]
    exit_code: int | None = Field(None, description="certlab run's exit status: 0 all passed, 1 a FAIL, "
                                  "3 INCONCLUSIVE, 2 bad input")
    benches: list[BenchProgress]
    done: int
    total: int
    verdicts: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None


class ReportOut(BaseModel):
    run_id: str
    status: Literal["draft", "approved"]
    report_id: str | None
    overall: str | None
    complete: bool | None = None  # False while a provision is NOT_ASSESSED (None: a report made before)
    not_assessed: list[str] = []  # those provisions' ids
    counts: dict[str, int]
    approved_by: str | None
    approved_role: str | None
    approved_at: str | None
    files: list[str] = Field(..., description="what GET /runs/{run_id}/report/<file> serves")


class ReleaseOut(BaseModel):
    run_id: str
    booking_id: int
    organisation: str
    at: datetime


class ReviewOut(BaseModel):
    id: int
    run_id: str
    organisation: str
    reviewer: str
    decision: Literal["accepted", "rejected"]
    comment: str
    at: datetime
    provision_comments: dict[str, str] = Field(default_factory=dict)
