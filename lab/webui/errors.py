"""Errors on pages are pages: an action's refusal, an unknown address, a login needed, a bad form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from lab.api.validation import safe_text
from lab.webui.deps import LoginRequired
from lab.webui.guard import is_page, login_url
from lab.webui.render import page
from lab.webui.session import COOKIE

HEADINGS = {
    400: "This request cannot be handled",
    401: "Sign in first",
    403: "Not allowed",
    404: "Page not found",
    405: "Not available this way",
    409: "Not possible now",
    413: "Too large",
    422: "Please check what you sent",
    429: "Too many requests",
    503: "Temporarily unavailable",
    504: "Timed out",
}
MESSAGES = {
    404: "There is nothing at this address, or it is not yours to see. Check the link, or start again from the menu.",
    405: "This address does not take that kind of request. Use the page's links and buttons.",
}


def error_page(request: Request, status: int, message: str | None = None) -> HTMLResponse:
    """The error page for `status`, with the one-line `message` saying what happened and what to do."""
    heading = HEADINGS.get(status, "Something went wrong" if status >= 500 else "This request cannot be handled")
    text = message or MESSAGES.get(status) or heading
    if status == 404 and message:  # an action's "no booking 7": say what it may mean and what to do
        text = f"{message[:1].upper()}{message[1:]}: it does not exist, or it is not yours to see. " \
               f"Check the link, or start again from the menu."
    return page(request, "error.html", status=status, heading=heading, message=text)


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line for a form FastAPI could not read: the first field named and what is wrong."""
    for error in errors:
        names = [str(p) for p in error.get("loc", ()) if not isinstance(p, int) and p not in ("body", "query", "form")]
        field = names[-1] if names else "the form"
        return f"{field}: {safe_text(str(error.get('msg', 'not valid')))}; fix: go back, correct it and send again"
    return "the form could not be read; go back and send it again"


def login_redirect(request: Request, exc: LoginRequired) -> RedirectResponse:
    response = RedirectResponse(login_url(exc.next_path, expired=exc.expired), status_code=303)
    if exc.expired:
        response.delete_cookie(COOKIE, path="/")
    return response


async def http_error(request: Request, exc: HTTPException) -> Response:
    """An HTTPException (an unknown address, a wrong method): the error page on pages, JSON in the API."""
    if not is_page(request.url.path):
        return await http_exception_handler(request, exc)
    return error_page(request, exc.status_code, MESSAGES.get(exc.status_code) or str(exc.detail))


async def login_needed(request: Request, exc: LoginRequired) -> Response:
    return login_redirect(request, exc)


async def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected error: on a page, the error page (no trace shown); in the API, Starlette's plain 500."""
    if is_page(request.url.path):
        try:
            return error_page(request, 500, "Something went wrong on the server; it is in the server's log. "
                                            "Try again, and tell the lab if it happens again.")
        except Exception:  # the page itself cannot be drawn (the store is gone): plain words
            pass
    return PlainTextResponse("Internal Server Error", status_code=500)
