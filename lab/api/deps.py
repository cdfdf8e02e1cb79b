"""Request dependencies: the store, the caller (bearer token, rate limit) and role checks.

Every route says which roles may call it (`Allow("engineer")`); a caller without a valid token
gets 401, with the wrong role 403, over its rate 429. Tenant checks live in `lab/actions/tenancy.py`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from lab.actions.context import Caller, Services
from lab.store.accounts import token_hash, user_for_token
from lab.store.db import Store
from lab.store.models import User


def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(auto_error=False, description="The API token `certlab users add` printed")


ADMITTED = "admitted"  # scope["state"] key: (token hash, caller) once `admit` let the request in


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    scheme, token = get_authorization_scheme_param(authorization)
    return token if authorization and scheme.lower() == "bearer" and token else None


def _caller_for(store: Store, token: str) -> Caller | None:
    """The live caller holding `token` (the full lookup, on a cache miss)."""
    user: User | None = user_for_token(store, token)
    if user is None:
        return None
    return Caller(id=user.id, name=user.name, role=user.role, org_id=user.org_id, org=user.org.name)


async def admit(svc: Services, token: str | None) -> tuple[str, Caller]:
    """(token hash, caller) for a request bearing `token`, counted against its rate; 401 or 429 otherwise.

    The one place a token becomes a caller: the `caller` dependency and `BodyGuard` (which must
    decide before FastAPI reads a body) both call it, once per request.
    """
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no API token; send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    key = token_hash(token)
    cached = svc.callers.get(key)
    if cached is not None:  # the liveness read is tens of microseconds: cheaper than a thread-pool hop
        who = cached if svc.live(cached.id) else None
    else:
        who = await run_in_threadpool(_caller_for, svc.store, token)
    if who is None:
        svc.callers.drop(key)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if cached is None:
        svc.callers.put(key, who)
    wait = svc.limiter.allow(key)
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"rate limit: retry in {wait:.2f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})
    return key, who


async def caller(request: Request, svc: ServicesDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    admitted: tuple[str, Caller] | None = request.scope.get("state", {}).get(ADMITTED)
    if admitted is None:
        admitted = await admit(svc, credentials.credentials if credentials is not None else None)
    request.state.caller = admitted[1]  # for the audit log
    return admitted[1]


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
