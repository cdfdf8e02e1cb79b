"""Request bodies: the token is checked before a byte is read, and a body past its route's limit is refused.

FastAPI reads and parses a request's body before any dependency runs, so a check in the `caller`
dependency comes too late: an anonymous 64 MiB body would be held in memory before its 401. This
pure ASGI middleware stands in front of the app and, for a request carrying a body,

* admits its token with `deps.admit` (the same 401/429 as the dependency, which then reuses the
  result from the scope instead of looking the token up again);
* refuses a declared `Content-Length` over the route's limit with 413, without reading;
* counts the bytes as the app pulls them (a chunked body declares no length) and answers 413 as
  soon as they pass the limit: the app then sees the client gone, nothing is buffered here.

Limits per route: the routes taking a multipart file (firmware, evidence) allow the configured
upload limit plus multipart framing (`uploads.body_limit`); every other body is JSON text, held to
`ApiSettings.max_json_bytes`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, params, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from lab.api.deps import ADMITTED, Services, admit, bearer_token
from lab.api.uploads import body_limit, too_large
from lab.store.db import StoreUnavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def upload_paths(app: Any, *, pages: bool = False) -> list[re.Pattern[str]]:
    """The path patterns of the API's routes whose body is a multipart form (a file upload); with
    `pages`, of the web pages' forms that take a file (a page's plain form keeps the small limit)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes are the (already prefixed) routes
        contexts: list[tuple[Any, str]] = [(r, getattr(r, "path", "")) for r in app.routes]
    else:
        contexts = [(c.original_route, c.path or "") for c in iter_route_contexts(app.routes)]
    return [compile_path(path)[0] for route, path in contexts if isinstance(route, APIRoute)
            and route.body_field is not None and isinstance(route.body_field.field_info, params.Form)
            and ((not path.startswith("/api/") and _takes_file(route)) if pages else path.startswith("/api/"))]


def _takes_file(route: APIRoute) -> bool:
    """Whether a route reads a file from its form (a page's plain form is held to the small limit)."""
    pending, seen = [route.dependant], 0
    while pending and seen < 1000:  # the route and its dependencies' dependencies
        dependant, seen = pending.pop(), seen + 1
        if any(isinstance(f.field_info, params.File) for f in dependant.body_params):
            return True
        pending.extend(dependant.dependencies)
    return False


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when it declares none (chunked)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def carries_body(scope: Scope) -> bool:
    """Whether the request has a body to read: a non-zero Content-Length or a transfer encoding."""
    for name, value in scope.get("headers", []):
        if (name == b"content-length" and value.strip() not in (b"", b"0")) or name == b"transfer-encoding":
            return True
    return False


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return value.decode("latin-1")
    return None


async def refuse(send: Send, exc: HTTPException) -> None:
    """The refusal as the app's HTTPException handler words it: `{"detail": ...}` with its headers."""
    response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def json_too_large(limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                         f"the request body is larger than this route's limit of {limit} bytes "
                         f"({limit / (1 << 10):g} KiB); fix: send a smaller document, or ask the lab to raise "
                         f"CERTLAB_MAX_JSON_KB")


@dataclass
class BodyGuard:
    """The middleware (`app.add_middleware(BodyGuard)`); see the module's docstring."""

    app: ASGIApp
    _uploads: list[re.Pattern[str]] | None = field(default=None, init=False)  # found on the first body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not carries_body(scope):
            await self.app(scope, receive, send)
            return
        svc: Services = scope["app"].state.services
        if scope["path"].startswith("/api/"):  # a web page's session was admitted by lab.webui.guard.WebGuard
            try:
                admitted = await admit(svc, bearer_token(_header(scope, b"authorization")))
            except HTTPException as exc:
                await refuse(send, exc)
                return
            except StoreUnavailable as exc:  # outside the app's handlers: answer as its StoreUnavailable handler does
                await refuse(send, HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                                 f"the result store is unavailable: {exc}"))
                return
            state = scope.setdefault("state", {})
            state[ADMITTED] = admitted
            state["caller"] = admitted[1]  # for the audit log, whatever happens next
        limit, refusal = self._limit(scope, svc)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await refuse(send, refusal)
            return
        counted = _Counted(receive, send, limit, refusal)
        await self.app(scope, counted.receive, counted.send)

    def _limit(self, scope: Scope, svc: Services) -> tuple[int, HTTPException]:
        """The body limit of the request's route (read from the settings each time: they may change)."""
        if self._uploads is None:
            self._uploads = upload_paths(scope["app"]) + upload_paths(scope["app"], pages=True)
        if any(p.match(scope["path"]) for p in self._uploads):
            return body_limit(svc.settings.max_upload_bytes), too_large(svc.settings.max_upload_bytes)
        return svc.settings.max_json_bytes, json_too_large(svc.settings.max_json_bytes)


@dataclass
class _Counted:
    """The app's `receive` and `send` for one request with a body: bytes are counted as the app
    pulls them; past the limit this answers 413 itself (unless the app has started answering) and
    tells the app the client left, so it stops reading; what the app sends after that is dropped."""

    inner_receive: Receive
    inner_send: Send
    limit: int
    refusal: HTTPException
    seen: int = 0
    over: bool = False
    refused: bool = False  # the 413 went out: the app's own answer is dropped
    started: bool = False

    async def receive(self) -> Message:
        if self.over:
            return {"type": "http.disconnect"}
        message = await self.inner_receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.over = True
                if not self.started:
                    self.refused = self.started = True
                    await refuse(self.inner_send, self.refusal)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self.inner_send(message)
