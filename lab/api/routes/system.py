"""Health, the caller's own identity, and the audit log (lab engineers only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from lab.api.deps import AnyRole, Engineer, ServicesDep
from lab.api.schemas.errors import AUTHENTICATED, errors
from lab.store.models import AuditEntry
from lab.store.unit import reading

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str


class Me(BaseModel):
    name: str
    role: str
    organisation: str


class AuditOut(BaseModel):
    id: int
    at: datetime
    user: str | None
    role: str | None
    organisation: str | None
    method: str
    path: str
    status: int
    detail: str


@router.get("/health", response_model=Health, summary="Is the service up (no token needed)")
def health() -> Health:
    return Health(status="ok")


@router.get("/me", response_model=Me, responses=errors(*AUTHENTICATED), summary="Who the token belongs to")
def me(who: AnyRole) -> Me:
    return Me(name=who.name, role=who.role, organisation=who.org)


@router.get("/audit", response_model=list[AuditOut], responses=errors(*AUTHENTICATED, 403, 422), summary="The audit log, oldest first (lab engineers)")
def audit(who: Engineer, svc: ServicesDep, after_id: int = Query(0, ge=0, le=2**63 - 1),
          limit: int = Query(100, ge=1, le=1000)) -> list[AuditOut]:
    with reading(svc.store) as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id).limit(limit))
        return [AuditOut(id=r.id, at=r.at, user=r.user_name, role=r.role, organisation=r.org, method=r.method,
                         path=r.path, status=r.status, detail=r.detail) for r in rows]
