"""Slots: per day and DUT model, how many of the lab's benches are free for bookings (lab.actions.slots)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lab.actions import slots as actions
from lab.api.deps import AnyRole, ServicesDep
from lab.api.schemas.bookings import DAY_RANGE, Day, Model, SlotOut
from lab.api.schemas.errors import AUTHENTICATED, errors

router = APIRouter(prefix="/slots", tags=["slots"], responses=errors(*AUTHENTICATED))


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
    return [SlotOut(model=d.model, day=d.day, capacity=d.capacity, reserved=d.reserved, free=d.free)
            for d in actions.free_slots(svc, who, model=model, first=first, last=last)]
