"""The web pages' gate, a pure ASGI middleware in front of every page (not /api/, not /static/):
it turns the session cookie into the request's caller once, before any body is read.

* the caller goes into the scope's state (the `Viewer` dependency and the audit log read it);
* an unsafe request without a live session is sent to the login page unread (no anonymous upload
  is buffered), except the login form itself;
* page requests count against the caller's rate, like API tokens do.

The CSRF token is checked by `csrf_checked`, an app-wide dependency (it may need the form body,
which FastAPI parses once for the route and the check alike); it passes /api/ paths untouched.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import Request
from starlette.responses import PlainTextResponse, RedirectResponse

from lab.actions.errors import Forbidden
from lab.store.db import StoreUnavailable
from lab.webui.session import COOKIE, EXPIRED, LOGIN_COOKIE, SessionView, load

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

WEB = "web_session"  # scope["state"] key: the request's SessionView
WEB_EXPIRED = "web_expired"  # scope["state"] key: True when the cookie's session ran out
SAFE = {"GET", "HEAD", "OPTIONS"}
ANONYMOUS_POSTS = {"/login"}
API = "/api/"
STATIC = "/static/"
PUBLIC_JSON = ("/records", "/feed/")  # product records' public JSON and feeds (lab/api/routes/records.py)


def is_page(path: str) -> bool:
    """Whether a path belongs to the web app (its errors are pages, its POSTs carry a CSRF token); the
    API and the product records' public JSON are not pages."""
    if path.startswith(API) or path == API.rstrip("/"):
        return False
    return not (path == PUBLIC_JSON[0] or path.startswith(PUBLIC_JSON[0] + "/") or path.startswith(PUBLIC_JSON[1]))


def cookie_of(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header: as if there were none
                return None
            if name in jar:
                return jar[name].value
    return None


@dataclass
class WebGuard:
    app: Callable[[Scope, Receive, Send], Awaitable[None]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not is_page(path):
            await self.app(scope, receive, send)
            return
        send = _with_headers(send, static=path.startswith(STATIC))
        if path.startswith(STATIC):
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        svc, web = app.state.services, app.state.web
        cookie = cookie_of(scope, COOKIE)
        try:
            view = await anyio.to_thread.run_sync(
                lambda: load(svc.store, cookie, now=web.clock(), settings=web.settings)) if cookie else None
        except StoreUnavailable as exc:
            await PlainTextResponse(f"the result store is unavailable: {exc}", status_code=503)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if isinstance(view, SessionView):
            state[WEB] = view
            state["caller"] = view.caller  # for the audit log
            wait = svc.limiter.allow(f"web:{view.key}")
            if wait:
                await PlainTextResponse(f"too many requests; retry in {wait:.1f} s", status_code=429,
                                        headers={"Retry-After": str(max(1, round(wait)))})(scope, receive, send)
                return
        elif view == EXPIRED:
            state[WEB_EXPIRED] = True
        if scope["method"] not in SAFE and not isinstance(view, SessionView) and path not in ANONYMOUS_POSTS:
            where = "/login?expired=1" if view == EXPIRED else "/login"
            await RedirectResponse(where, status_code=303)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _with_headers(send: Send, *, static: bool) -> Send:
    """`send` adding the pages' security headers (CSP: nothing but this server; no framing by others)."""
    from lab.webui import CSP

    extra = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
             (b"referrer-policy", b"same-origin")]
    if not static:
        extra.append((b"cache-control", b"no-store"))  # a signed-out browser's Back shows no page

    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            have = {name.lower() for name, _ in message.get("headers", [])}
            message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in have]
        await send(message)

    return wrapped


class CsrfRefused(Forbidden):
    """An unsafe page request without its session's CSRF token (a stale form, or another site's)."""

    def __init__(self) -> None:
        super().__init__("the form expired; reload the page and send it again")


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


async def csrf_checked(request: Request) -> None:
    """App-wide dependency: every unsafe page request carries its session's CSRF token, as the form
    field `csrf` or the header `X-CSRF-Token` (for fetch); the login form its login cookie's token.
    Constant-time compare; refused with a 403 page. /api/ paths (bearer tokens, no cookies) pass."""
    if request.method in SAFE or not is_page(request.url.path):
        return
    view: SessionView | None = request.scope.get("state", {}).get(WEB)
    expected = view.csrf if view is not None else request.cookies.get(LOGIN_COOKIE)
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").split(";")[0].strip().lower() in FORMS:
        try:
            value = (await request.form()).get("csrf")
        except Exception:  # a malformed body: no token in it
            value = None
        given = value if isinstance(value, str) else None
    if not expected or not given or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise CsrfRefused()


def login_url(next_path: str | None = None, *, expired: bool = False) -> str:
    query = [f"next={quote(next_path, safe='/')}"] if next_path else []
    if expired:
        query.append("expired=1")
    return "/login" + ("?" + "&".join(query) if query else "")
