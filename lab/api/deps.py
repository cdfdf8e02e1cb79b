"""Request dependencies: the store, the caller (bearer token, rate limit) and role checks.

Every route says which roles may call it (`Allow("engineer")`); a caller without a valid token
gets 401, with the wrong role 403, over its rate 429. Tenant checks live in `tenancy.py`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lab.api.ratelimit import RateLimiter
from lab.api.settings import ApiSettings
from lab.catalog import Catalogs
from lab.store.accounts import token_hash, user_for_token
from lab.store.db import Store
from lab.store.models import User


@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    role: str
    org_id: int
    org: str

    @property
    def is_engineer(self) -> bool:
        return self.role == "engineer"


@dataclass
class CallerCache:
    """Recently seen tokens -> their caller, for `ttl` seconds: a read then costs no token lookup.

    Only live users are kept, so a revoked token is refused within `ttl` at the latest.
    """

    ttl: float = 2.0
    size: int = 10_000
    _seen: dict[str, tuple[Caller, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> Caller | None:
        hit = self._seen.get(key)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def put(self, key: str, who: Caller) -> None:
        with self._lock:
            if len(self._seen) >= self.size:
                self._seen.clear()  # rare: a flood of distinct tokens; all are looked up again
            self._seen[key] = (who, time.monotonic() + self.ttl)


@dataclass
class Services:
    """What the routes share, held by the app (app.state.services), never by a module."""

    store: Store
    settings: ApiSettings
    limiter: RateLimiter
    callers: CallerCache = field(default_factory=CallerCache)
    catalogs: Catalogs = field(default_factory=Catalogs)  # every ICS upload is checked against one


def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(auto_error=False, description="The API token `certlab users add` printed")


async def caller(request: Request, svc: ServicesDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no API token; send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    key = token_hash(credentials.credentials)
    who = svc.callers.get(key)
    if who is None:
        user: User | None = await run_in_threadpool(user_for_token, svc.store, credentials.credentials)
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        who = Caller(id=user.id, name=user.name, role=user.role, org_id=user.org_id, org=user.org.name)
        svc.callers.put(key, who)
    wait = svc.limiter.allow(key)
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"rate limit: retry in {wait:.2f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})
    request.state.caller = who  # for the audit log
    return who


CallerDep = Annotated[Caller, Depends(caller)]


class Allow:
    """`Depends(Allow("engineer", "manufacturer"))`: the caller, if its role is one of these."""

    def __init__(self, *roles: str) -> None:
        self.roles = roles

    async def __call__(self, who: CallerDep) -> Caller:
        if who.role not in self.roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"a {who.role} may not do this; it takes: {', '.join(self.roles)}")
        return who


Engineer = Annotated[Caller, Depends(Allow("engineer"))]
Manufacturer = Annotated[Caller, Depends(Allow("manufacturer"))]
Certifier = Annotated[Caller, Depends(Allow("certifier"))]
AnyRole = CallerDep
