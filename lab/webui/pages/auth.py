"""Signing in and out, the start page and the account page (`/`, `/login`, `/logout`, `/account`)."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lab.actions import account
from lab.actions.context import Caller
from lab.actions.errors import Invalid
from lab.store.accounts import PASSWORD_MIN, user_for_password, user_for_token
from lab.store.models import User
from lab.webui.deps import SvcDep, Viewer, session_of
from lab.webui.guard import WEB_EXPIRED
from lab.webui.nav import home_for
from lab.webui.render import form_errors, page, see_other
from lab.webui.session import COOKIE, LOGIN_COOKIE, WebCore, end_session, open_session, purge_expired

router = APIRouter(include_in_schema=False)

FAILED = "That user name and password (or API token) did not work. Check them and try again."


def safe_next(raw: str | None) -> str | None:
    """`raw` if it is a path on this site (no scheme, no host, not `//evil`), else None: no open redirect."""
    if not raw or len(raw) > 2048 or any(ord(c) < 33 or c == "\\" for c in raw):
        return None
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not raw.startswith("/") or raw.startswith("//"):
        return None
    if parts.path in ("/login", "/logout"):
        return None
    return raw


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(request: Request, *, status: int = 200, message: str = "", failed: bool = False,
                name: str = "", next_path: str | None = None, token_open: bool = False,
                errors: dict[str, str] | None = None) -> HTMLResponse:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = page(request, "login.html", status=status, csrf_token=token, message=message, failed=failed,
                    name=name, next=next_path or "", token_open=token_open, errors=errors or {})
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/login")
    return response


@router.get("/")
def start(request: Request) -> Response:
    view = session_of(request)
    return RedirectResponse(home_for(view.caller.role) if view else "/login", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None, expired: str | None = None,
               out: str | None = None) -> Response:
    view = session_of(request)
    target = safe_next(next)
    if view is not None:  # signed in already
        return RedirectResponse(target or home_for(view.caller.role), status_code=303)
    message = ""
    if expired or request.scope.get("state", {}).get(WEB_EXPIRED):
        message = "Your session expired. Sign in again to continue."
    elif out:
        message = "You are signed out."
    response = _login_page(request, message=message, next_path=target)
    if expired or request.scope.get("state", {}).get(WEB_EXPIRED):
        response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/login")
async def login(request: Request, svc: SvcDep, name: Annotated[str, Form()] = "",
                password: Annotated[str, Form()] = "", token: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "") -> Response:
    """Sign in by user name and password, or by API token; failures are audited, rate limited
    (per user name and client address) and worded alike whether or not the user exists."""
    web: WebCore = request.app.state.web
    target = safe_next(next)
    state = request.scope.setdefault("state", {})
    name = name.strip()[:128]
    by_token = bool(token) and not name
    state["audit_detail"] = f"sign-in by {'token' if by_token else 'password'} as {name!r}" if not by_token \
        else "sign-in by API token"
    client = request.client.host if request.client else "?"
    wait = web.login_limiter.allow(f"{'token' if by_token else name}|{client}")
    if wait:
        return _login_page(request, status=429, failed=True, name=name, next_path=target, token_open=by_token,
                           message=f"Too many sign-in attempts. Wait {max(1, round(wait))} seconds, then try again.")
    if by_token:
        user: User | None = await run_in_threadpool(user_for_token, svc.store, token.strip())
    elif name and password:
        user = await run_in_threadpool(user_for_password, svc.store, name, password)
    else:
        missing = "name" if not name else "password"
        return _login_page(request, status=422, name=name, next_path=target,
                           errors={missing: f"type your {'user name' if missing == 'name' else 'password'}"})
    if user is None:
        return _login_page(request, status=401, failed=True, message=FAILED, name=name, next_path=target,
                           token_open=by_token)
    now = web.clock()
    await run_in_threadpool(purge_expired, svc.store, now=now, settings=web.settings)
    cookie, _ = await run_in_threadpool(open_session, svc.store, user.id, now=now, settings=web.settings)
    state["caller"] = Caller(id=user.id, name=user.name, role=user.role, org_id=user.org_id, org=user.org.name)
    response = RedirectResponse(target or home_for(user.role), status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=int(web.settings.absolute.total_seconds()), httponly=True,
                        samesite="strict", secure=_secure(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, svc: SvcDep, who: Viewer) -> Response:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        end_session(svc.store, cookie)
    response = RedirectResponse("/login?out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _account_page(request: Request, svc: SvcDep, who: Caller, *, status: int = 200,
                  errors: dict[str, str] | None = None) -> HTMLResponse:
    web: WebCore = request.app.state.web
    return page(request, "account.html", status=status, errors=errors or {},
                has_password=account.has_password(svc, who), min_length=PASSWORD_MIN,
                idle_minutes=round(web.settings.idle.total_seconds() / 60))


@router.get("/account")
def account_page(request: Request, svc: SvcDep, who: Viewer) -> HTMLResponse:
    return _account_page(request, svc, who)


@router.post("/account/password")
def change_password(request: Request, svc: SvcDep, who: Viewer, current: Annotated[str, Form()] = "",
                    new: Annotated[str, Form()] = "", again: Annotated[str, Form()] = "") -> Response:
    try:
        account.change_password(svc, who, current=current, new=new, again=again)
    except Invalid as exc:
        return _account_page(request, svc, who, status=422, errors=form_errors(exc))
    return see_other(request, "/account", "Your password is saved. Use it next time you sign in.")
