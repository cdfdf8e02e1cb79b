"""Slots: per day and DUT model, how many of the lab's benches are free for bookings.

Capacity is read from the lab inventory at each call (benches whose `dut.model` is the model), so
adding a bench to the inventory opens room at once; reservations live in the store.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from lab.api.deps import AnyRole, ServicesDep
from lab.api.schemas.bookings import DAY_RANGE, Day, Model, SlotOut, today
from lab.api.schemas.errors import AUTHENTICATED, errors, invalid
from lab.api.settings import ApiSettings
from lab.errors import CertlabError
from lab.inventory import BenchConfig, load_inventory
from lab.store.bookings import LAST_DAY, later, slots

router = APIRouter(prefix="/slots", tags=["slots"], responses=errors(*AUTHENTICATED))
MAX_DAYS = 92
DEFAULT_DAYS = 14


def lab_benches(settings: ApiSettings) -> dict[str, BenchConfig]:
    """The inventory's benches by name; 503 if the lab's inventory cannot be read (a lab problem, not the caller's)."""
    try:
        return dict(load_inventory(settings.inventory).benches)
    except CertlabError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the lab inventory cannot be read, so slots are unknown: {exc}") from None


def capacities(settings: ApiSettings) -> Counter[str]:
    """DUT model -> number of benches the lab has for it."""
    return Counter(bench.dut.model for bench in lab_benches(settings).values())


def no_bench(model: str, caps: Counter[str], loc: list[str | int]) -> HTTPException:
    have = ", ".join(sorted(caps)) or "none"
    return invalid(loc, f"the lab has no bench for model {model!r} (it has benches for: {have})")


@router.get("", response_model=list[SlotOut], responses=errors(422, 503, why={
                422: "A bad day or range (`to` before `from`, more than 92 days), or a model the lab has no bench for"}),
            summary="Free benches per day and model (default: the next 14 days, every model the lab has)")
def list_slots(who: AnyRole, svc: ServicesDep,
               model: Annotated[Model | None, Query(description="Only this DUT model")] = None,
               first: Annotated[Day | None, Query(alias="from",
                                                  description=f"First day (default today); {DAY_RANGE}")] = None,
               last: Annotated[Day | None, Query(alias="to",
                                                 description=f"Last day (default from + 13 days); {DAY_RANGE}")] = None,
               ) -> list[SlotOut]:
    first = first or today()
    last = last or min(later(first, DEFAULT_DAYS - 1), LAST_DAY)
    if last < first:
        raise invalid(["query", "to"], f"{last} is before from {first}")
    if (last - first).days >= MAX_DAYS:
        raise invalid(["query", "to"], f"at most {MAX_DAYS} days at once; ask for a shorter range")
    caps = capacities(svc.settings)
    if model is not None and model not in caps:
        raise no_bench(model, caps, ["query", "model"])
    models = [model] if model else sorted(caps)
    stored = {(row.model, row.day): row for row in slots(svc.store, models=models, first=first, last=last)}
    days = [later(first, i) for i in range((last - first).days + 1)]
    return [SlotOut.of(model=m, day=d, capacity=caps[m], row=stored.get((m, d.isoformat())))
            for d in days for m in models]
