"""Page dependencies: the signed-in caller (`Viewer`), role gates and the app's `Services`.

No or expired session: `LoginRequired`, answered with a 303 to /login?next=<this page>. Wrong
role: `Forbidden`, answered with the 403 page. CSRF is checked for every page centrally
(`guard.csrf_checked`): page modules only put `{{ csrf_field() }}` in each `<form method="post">`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lab.actions.context import Caller, Services
from lab.actions.errors import Forbidden
from lab.webui.guard import WEB, WEB_EXPIRED
from lab.webui.session import SessionView


class LoginRequired(Exception):
    """The page needs a signed-in caller; `next` is where to come back to."""

    def __init__(self, next_path: str, expired: bool) -> None:
        super().__init__("sign in first")
        self.next_path, self.expired = next_path, expired


def session_of(request: Request) -> SessionView | None:
    return request.scope.get("state", {}).get(WEB)


def viewer(request: Request) -> Caller:
    view = session_of(request)
    if view is None:
        query = request.url.query
        raise LoginRequired(request.url.path + (f"?{query}" if query else ""),
                            bool(request.scope.get("state", {}).get(WEB_EXPIRED)))
    return view.caller


Viewer = Annotated[Caller, Depends(viewer)]


def _a(role: str) -> str:
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


class Roles:
    """`Depends(Roles("engineer", "manufacturer"))`: the signed-in caller, if its role is one of these."""

    def __init__(self, *roles: str) -> None:
        self.roles = roles

    def __call__(self, who: Viewer) -> Caller:
        if who.role not in self.roles:
            wanted = " or ".join(_a(role) for role in self.roles)
            raise Forbidden(f"this page is for {wanted}; you are signed in as {_a(who.role)} ({who.name}, {who.org})")
        return who


EngineerView = Annotated[Caller, Depends(Roles("engineer"))]
ManufacturerView = Annotated[Caller, Depends(Roles("manufacturer"))]
CertifierView = Annotated[Caller, Depends(Roles("certifier"))]


def services(request: Request) -> Services:
    return request.app.state.services


SvcDep = Annotated[Services, Depends(services)]
