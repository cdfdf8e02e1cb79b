"""Slots: per day and DUT model, how many of the lab's benches are free for bookings.

Capacity is read from the lab inventory at each call (benches whose `dut.model` is the model), so
adding a bench to the inventory opens room at once; reservations live in the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

from lab.actions.context import Caller, Services
from lab.actions.errors import Invalid, Unavailable
from lab.actions.inventories import InventoryCache
from lab.actions.tenancy import booking_for
from lab.api.settings import ApiSettings
from lab.errors import CertlabError
from lab.inventory import BenchConfig, load_inventory
from lab.store.bookings import FIRST_DAY, LAST_DAY, later, slots
from lab.store.models import utcnow
from lab.store.unit import reading

MAX_DAYS = 92  # the most days one listing covers
DEFAULT_DAYS = 14


@dataclass(frozen=True)
class SlotDay:
    """One day of one model: the lab's benches for it and how many bookings hold one."""

    model: str
    day: date
    capacity: int
    reserved: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.reserved)


def today() -> date:
    """The lab's calendar day (UTC), for "not in the past"."""
    return utcnow().date()


def lab_benches(settings: ApiSettings, cache: InventoryCache | None = None) -> dict[str, BenchConfig]:
    """The inventory's benches by name (through `cache`, parsed again only when the file changed);
    Unavailable if the lab's inventory cannot be read (a lab problem, not the caller's)."""
    try:
        try:
            inventory = cache.get(settings.inventory) if cache is not None else load_inventory(settings.inventory)
        except OSError:  # the cache's look at the file: the loader says it in its words
            inventory = load_inventory(settings.inventory)
        return dict(inventory.benches)
    except CertlabError as exc:
        raise Unavailable(f"the lab inventory cannot be read, so slots are unknown: {exc}") from None


def capacities(settings: ApiSettings, cache: InventoryCache | None = None) -> Counter[str]:
    """DUT model -> number of benches the lab has for it."""
    return Counter(bench.dut.model for bench in lab_benches(settings, cache).values())


def no_bench(model: str, caps: Counter[str], loc: list[str | int]) -> Invalid:
    have = ", ".join(sorted(caps)) or "none"
    return Invalid(loc, f"the lab has no bench for model {model!r} (it has benches for: {have})")


def _day_in_calendar(day: date, loc: list[str | int]) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise Invalid(loc, f"{day} is outside the lab's calendar; give a day from {FIRST_DAY} to {LAST_DAY}")


def free_slots(svc: Services, who: Caller, *, model: str | None = None, first: date | None = None,
               last: date | None = None) -> list[SlotDay]:
    """Every day from `first` (default today) to `last` (default 13 days on) for `model` (default every
    model the lab has benches for), day by day; any role may look."""
    first = first or today()
    _day_in_calendar(first, ["query", "from"])
    last = last or min(later(first, DEFAULT_DAYS - 1), LAST_DAY)
    _day_in_calendar(last, ["query", "to"])
    if last < first:
        raise Invalid(["query", "to"], f"{last} is before from {first}")
    if (last - first).days >= MAX_DAYS:
        raise Invalid(["query", "to"], f"at most {MAX_DAYS} days at once; ask for a shorter range")
    caps = capacities(svc.settings, svc.inventories)
    if model is not None and model not in caps:
        raise no_bench(model, caps, ["query", "model"])
    models = [model] if model else sorted(caps)
    stored = {(row.model, row.day): row.reserved for row in slots(svc.store, models=models, first=first, last=last)}
    days = [later(first, i) for i in range((last - first).days + 1)]
    return [SlotDay(model=m, day=d, capacity=caps[m], reserved=stored.get((m, d.isoformat()), 0))
            for d in days for m in models]


def booking_slots(svc: Services, who: Caller, booking_id: int) -> list[SlotDay]:
    """The days an engineer may accept a booking onto, with their free benches: its preferred window from
    today on (or the next 14 days when the window is past or not given), at most 92 days."""
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        model, start, end = booking.product.model, booking.preferred_from, booking.preferred_to
    now = today()
    first = max(date.fromisoformat(start), now) if start else now
    last = date.fromisoformat(end) if end else later(first, DEFAULT_DAYS - 1)
    if first > LAST_DAY or last < first:
        first, last = now, later(now, DEFAULT_DAYS - 1)
    last = min(last, later(first, MAX_DAYS - 1), LAST_DAY)
    try:
        return free_slots(svc, who, model=model, first=first, last=last)
    except Invalid as exc:  # the lab has no bench for the model: say so where the day is picked
        raise Invalid(["body", "day"], exc.msg) from None
