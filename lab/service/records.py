"""What the lab judges of the service's answers: dated personal-data records, switches, the service's clock.

Record times come from the service (the IXIT's `item_time` pointer), so they are compared with
the service's own clock at the moment of an operation (its HTTP `Date` header, whole seconds),
not the lab's: a real service's clock may be off by more than a telemetry interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from lab.errors import DutError
from lab.service.api import PointerError, resolve_pointer

DATE_RESOLUTION = timedelta(seconds=1)  # an HTTP Date is whole seconds: the moment lies in [Date, Date + 1 s)


@dataclass(frozen=True)
class Moment:
    """When an operation happened, on the service's clock when it said (Date header), else the lab's.

    The true moment lies in [earliest, latest]: a record dated before `earliest` is surely older,
    one dated after `latest` surely newer.
    """

    earliest: datetime
    latest: datetime
    clock: str  # "service" or "lab"

    def describe(self) -> str:
        return f"{self.earliest.isoformat(timespec='seconds')} ({self.clock} clock)"


def moment_of(headers: dict[str, str] | None, lab_before: datetime, lab_after: datetime) -> Moment:
    """The moment of an exchange: the response's Date header if it has a valid one, else the lab's time."""
    date = next((v for k, v in (headers or {}).items() if k.lower() == "date"), None)
    if date:
        try:
            when = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return Moment(when, when + DATE_RESOLUTION, "service")
    return Moment(lab_before, lab_after, "lab")


def parse_time(value: Any) -> datetime:
    """An ISO-8601 time (a trailing Z accepted); naive times are taken as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Record:
    time: datetime
    data: Any


def records_of(document: Any, items: str, item_time: str, *, operation: str) -> list[Record]:
    """The dated records in a `list_personal_data` answer, by the IXIT's `items` and `item_time` pointers.

    An answer that does not hold them as documented is the service's fault (DutError).
    """
    try:
        listed = resolve_pointer(document, items)
    except PointerError as exc:
        raise DutError(f"the service's answer to {operation} does not hold the records at `items` {items}: {exc}") from None
    if not isinstance(listed, list):
        raise DutError(f"the service's answer to {operation} has a {type(listed).__name__} at `items` {items}, not a list")
    out: list[Record] = []
    for i, item in enumerate(listed):
        try:
            out.append(Record(parse_time(resolve_pointer(item, item_time)), item))
        except (PointerError, ValueError) as exc:
            raise DutError(f"record {i} of {operation} has no ISO-8601 time at `item_time` {item_time}: {exc}") from None
    return out


def dated_before(records: list[Record], moment: Moment) -> list[Record]:
    return [r for r in records if r.time < moment.earliest]


def dated_after(records: list[Record], moment: Moment) -> list[Record]:
    return [r for r in records if r.time > moment.latest]


def span(records: list[Record]) -> str:
    """'3 readings dated 10:00:01 to 10:00:11' for a FAIL reason."""
    if not records:
        return "no records"
    times = sorted(r.time for r in records)
    first, last = times[0].isoformat(timespec="seconds"), times[-1].isoformat(timespec="seconds")
    return f"{len(records)} record(s) dated {first}" + (f" to {last}" if last != first else "")


def switch_value(value: Any, *, what: str) -> bool:
    """A setting or consent read through the IXIT's `value` pointer: the JSON boolean it documents."""
    if isinstance(value, bool):
        return value
    raise DutError(f"{what} reads {value!r}, not the true/false the IXIT documents")


def shown_switch(output: str, pattern: str, on_value: str) -> bool | None:
    """What the device prints for a setting (`pattern` with a group `value`): on, off, or None if not shown."""
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        return None
    return match.group("value").strip().lower() == on_value.strip().lower()


def left_after_deletion(shown: list[Record], seen_before: list[Record], deleted: Moment,
                        repaired: Moment) -> tuple[list[Record], list[Record]]:
    """What a new owner is shown that a deletion should have removed (5.11-2-2): (old, unowned).

    `old`: the deleted account's records, those it was shown (`seen_before`) or dated surely
    before the deletion; `unowned`: records dated surely between the deletion and the new pairing
    (the device's data flow kept while nobody owned it). A record in the second of either
    operation that the deleted account never saw is neither: the lab cannot place it.
    """
    old = [r for r in shown if r in seen_before or r.time < deleted.earliest]
    unowned = [r for r in shown if r not in old and deleted.latest < r.time < repaired.earliest]
    return old, unowned
