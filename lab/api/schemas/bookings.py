"""Bodies of products, bookings, slots and samples: what a caller sends (…Create) and gets (…Out).

Lists never carry the ICS and IXIT texts (they can be large); only `GET /bookings/{id}` does.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from lab import resources
from lab.store.bookings import FIRST_DAY, LAST_DAY
from lab.store.models import BOOKING_STATES, Booking, CustodyEvent, Product, Sample, Slot, utcnow

SUITES = resources.NAMED_SUITES  # suite name a booking may ask for -> its --suite path
Suite = Literal["en303645", "examples"]
Edition = Literal["v2", "v3"]
BookingStatus = Literal[BOOKING_STATES]  # type: ignore[valid-type]
CustodyKind = Literal["received", "on-bench", "tested", "returned", "note"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Model = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.+/-]{0,127}$")]
Version = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$")]
Serial = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")]
Yaml = Annotated[str, StringConstraints(min_length=1, max_length=1 << 20)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; a larger one is simply not there (422, not a driver error)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
# A calendar day of the lab's calendar (FIRST_DAY..LAST_DAY): the pattern says so in the OpenAPI document (a
# JSON schema has no bounds for a date) and spells out real days, so a client's generated day is one the API takes.
_MONTH_DAYS = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
               r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
DAY_PATTERN = rf"^(?:20[0-9]{{2}}-{_MONTH_DAYS}|20(?:0[048]|[2468][048]|[13579][26])-02-29)$"
DAY_RANGE = f"a day from {FIRST_DAY} to {LAST_DAY}"
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY, json_schema_extra={"pattern": DAY_PATTERN})]


def today() -> date:
    """The lab's calendar day (UTC), for "not in the past"."""
    return utcnow().date()


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- products -------------------------------------------------------------------------------

class ProductCreate(_In):
    model: Model = Field(description="The DUT model as on its label and in the ICS (`product.model`)",
                         examples=["TH-100"])
    name: Name = Field(examples=["Smart thermostat"])
    vendor: Name = Field(examples=["Certlab Sim Devices"])


class ProductOut(BaseModel):
    id: int
    org_id: int
    model: str
    name: str
    vendor: str
    created_at: datetime

    @classmethod
    def of(cls, row: Product) -> "ProductOut":
        return cls(id=row.id, org_id=row.org_id, model=row.model, name=row.name, vendor=row.vendor,
                   created_at=row.created_at)


# --- bookings -------------------------------------------------------------------------------

class BookingCreate(_In):
    product_id: int = Field(ge=1, le=MAX_ID)
    firmware_version: Version = Field(description="The firmware the samples run (the ICS/IXIT's, if they name one)",
                                      examples=["1.4.0"])
    edition: Edition = Field("v2", description="EN 303 645 edition: v2 = V2.1.1, v3 = V3.1.3")
    suites: list[Suite] = Field(["en303645"], min_length=1, max_length=len(SUITES),
                                description=f"Test suites to run: {', '.join(SUITES)}")
    ics: Yaml = Field(description="The ICS (EN 303 645 Annex B) as YAML text, as `certlab` reads it")
    ixit: Yaml = Field(description="The IXIT (TS 103 701) as YAML text, as `certlab` reads it")
    preferred_from: Day | None = Field(None, description=f"First day the samples can be tested (not in the past; "
                                                          f"{DAY_RANGE})")
    preferred_to: Day | None = Field(None, description="Last acceptable day (not before preferred_from)")

    @field_validator("suites")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a suite is named twice; name each once")
        return value

    @field_validator("preferred_from", "preferred_to")
    @classmethod
    def _not_past(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and value < today():
            raise ValueError(f"{value} is in the past; give {today()} or later")
        if info.field_name == "preferred_to" and value is not None:
            start = info.data.get("preferred_from")
            if start is not None and value < start:
                raise ValueError(f"{value} is before preferred_from {start}; give a day on or after it")
        return value


class BookingOut(BaseModel):
    id: int
    org_id: int
    product_id: int
    model: str
    vendor: str
    firmware_version: str
    edition: str
    suites: list[str]
    preferred_from: date | None
    preferred_to: date | None
    status: str
    slot_day: date | None = Field(description="The day its samples are tested, once accepted")
    note: str | None = Field(description="Why it was rejected or cancelled")
    run_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def fields_of(cls, row: Booking) -> dict[str, object]:
        return dict(id=row.id, org_id=row.org_id, product_id=row.product_id, model=row.product.model,
                    vendor=row.product.vendor, firmware_version=row.firmware_version, edition=row.edition,
                    suites=list(row.suites or []), preferred_from=row.preferred_from, preferred_to=row.preferred_to,
                    status=row.status, slot_day=row.slot.day if row.slot else None, note=row.note,
                    run_id=row.run_id, created_at=row.created_at, updated_at=row.updated_at)

    @classmethod
    def of(cls, row: Booking) -> "BookingOut":
        return cls(**cls.fields_of(row))


class AcceptBody(_In):
    day: Day | None = Field(None, description="Test day (not in the past); default: the first day of the preferred "
                                              "window with a free bench")

    @field_validator("day")
    @classmethod
    def _not_past(cls, value: date | None) -> date | None:
        if value is not None and value < today():
            raise ValueError(f"{value} is in the past; give {today()} or later")
        return value


class RejectBody(_In):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class CancelBody(_In):
    reason: Note | None = None


# --- slots ----------------------------------------------------------------------------------

class SlotOut(BaseModel):
    model: str
    day: date
    capacity: int = Field(description="Benches the lab has for this model")
    reserved: int
    free: int

    @classmethod
    def of(cls, *, model: str, day: date, capacity: int, row: Slot | None) -> "SlotOut":
        reserved = row.reserved if row else 0
        return cls(model=model, day=day, capacity=capacity, reserved=reserved, free=max(0, capacity - reserved))


# --- samples --------------------------------------------------------------------------------

class SampleReceipt(_In):
    serial: Serial = Field(examples=["TH100-0001"])
    received_on: Day | None = Field(None, description="Day of receipt; default today")
    condition: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] = Field(
        examples=["new, sealed retail box; label intact"])
    firmware: Version | None = Field(None, description="Firmware on the sample; default the booking's")


class CustodyCreate(_In):
    kind: CustodyKind
    note: Note = ""


class CustodyOut(BaseModel):
    id: int
    kind: str
    note: str
    by: str | None
    at: datetime

    @classmethod
    def of(cls, row: CustodyEvent, names: dict[int, str]) -> "CustodyOut":
        return cls(id=row.id, kind=row.kind, note=row.note, by=names.get(row.by_user) if row.by_user else None,
                   at=row.at)


class SampleOut(BaseModel):
    id: int
    booking_id: int | None
    model: str
    serial: str
    firmware: str | None
    received_on: date | None
    condition: str | None
    bench: str | None = Field(description="The inventory bench holding this sample, if the lab lists it")
    custody: list[CustodyOut]

    @classmethod
    def of(cls, row: Sample, *, bench: str | None, custody: list[CustodyOut]) -> "SampleOut":
        return cls(id=row.id, booking_id=row.booking_id, model=row.model, serial=row.serial, firmware=row.firmware,
                   received_on=row.received_at.date() if row.received_at else None, condition=row.condition,
                   bench=bench, custody=custody)
