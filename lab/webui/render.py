"""Rendering pages: every page gets who is signed in, the CSRF field, the navigation and the
one-time notice, so page modules pass only their own context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from lab.actions.errors import Invalid
from lab.resources import package_dir
from lab.webui.deps import session_of
from lab.webui.nav import nav_for
from lab.webui.session import set_notice

def templates_dir() -> Path:
    """The pages' templates (lab/webui/templates), installed or in a checkout."""
    return package_dir("lab.webui") / "templates"


def static_dir() -> Path:
    """The pages' pinned CSS and script (lab/webui/static)."""
    return package_dir("lab.webui") / "static"


def make_templates() -> Jinja2Templates:
    """The app's template set (held by app.state.templates, never by this module)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    return Jinja2Templates(env=env)


def page(request: Request, template: str, /, *, status: int = 200, **context: Any) -> HTMLResponse:
    """The `template` rendered for this request's caller; a notice left by `see_other` is
    shown here once (and cleared)."""
    view = session_of(request)
    notice = context.pop("notice", None)
    if view is not None and view.notice:
        notice = notice or view.notice
        set_notice(request.app.state.services.store, view.key, None)
    token = view.csrf if view is not None else context.pop("csrf_token", "")
    who = view.caller if view is not None else None
    base = {
        "who": who,
        "session": view,
        "csrf_token": token,
        "csrf_field": lambda: Markup(f'<input type="hidden" name="csrf" value="{escape(token)}">'),
        "nav": nav_for(who.role if who else None, request.url.path),
        "notice": notice,
        "path": request.url.path,
    }
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status)


def see_other(request: Request, url: str, notice: str | None = None) -> RedirectResponse:
    """303 to `url` (after a POST); `notice` is shown once on the page it leads to."""
    view = session_of(request)
    if notice and view is not None:
        set_notice(request.app.state.services.store, view.key, notice)
    return RedirectResponse(url, status_code=303)


def form_errors(exc: Invalid) -> dict[str, str]:
    """field -> message, for re-rendering a form with the error at the field it names."""
    return {exc.field: exc.msg}
