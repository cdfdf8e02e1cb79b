"""The web app as page tests drive it (no browser): an app on a private store with one user per role,
each with a password and an API token, and clients signed in as one of them.

    client = make_app(tmp_path)              # anonymous WebClient; client.tokens[name], PASSWORDS[name]
                                             # (or the fixture `web`: `from webui import web`)
    maker = login(client, "maker")           # a new WebClient on the same app, signed in (cookie set)
    maker.get("/bookings")
    post_form(maker, "/bookings/1/cancel", {"reason": "x"})   # adds the session's CSRF token
    maker.post(url, data={"csrf": csrf(maker), ...}, files={"ics": ("ics.yaml", b"...")})

Users: maker (manufacturer, Acme), lab (engineer, Test Lab), cert (certifier, CertBody),
rival (manufacturer, Rival: another tenant).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from lab.api.app import create_app
from lab.api.settings import ApiSettings
from lab.store.accounts import add_user, hash_password
from lab.store.models import WebSession
from lab.store.unit import reading, unit
from lab.webui.session import COOKIE, key_of

ROOT = Path(__file__).resolve().parent.parent
USERS: dict[str, tuple[str, str]] = {  # name -> (role, organisation)
    "maker": ("manufacturer", "Acme"),
    "lab": ("engineer", "Test Lab"),
    "cert": ("certifier", "CertBody"),
    "rival": ("manufacturer", "Rival"),
}
PASSWORDS = {name: f"{name}-secret-pw" for name in USERS}
FAST = 1 << 8  # scrypt cost of the test users' passwords: signing in takes no time
ROLE_USER = {"manufacturer": "maker", "engineer": "lab", "certifier": "cert"}


class WebClient(TestClient):
    """A TestClient that knows the users' API tokens (for setting up through the API)."""

    tokens: dict[str, str]

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def make_app(tmp_path: Path, **overrides: Any) -> WebClient:
    """An anonymous client of an app on a private SQLite store under `tmp_path` (the simulated lab's
    inventory), with the users of USERS, their passwords and tokens. `overrides`: ApiSettings fields."""
    settings = {"inventory": ROOT / "inventory" / "sim.yaml", "data_dir": tmp_path / "data",
                "reports_dir": tmp_path / "reports", "database_url": f"sqlite:///{tmp_path / 'store.db'}", **overrides}
    app = create_app(ApiSettings(**settings))  # type: ignore[arg-type]
    store = app.state.services.store
    tokens = {}
    with unit(store) as s:
        for name, (role, org) in USERS.items():
            user, tokens[name] = add_user(s, name=name, role=role, org=org)
            user.password_hash = hash_password(PASSWORDS[name], n=FAST)  # `certlab users passwd`, at a test's cost
    client = _client(app, tokens)
    return client


def _client(app: FastAPI, tokens: dict[str, str]) -> WebClient:
    client = WebClient(app, base_url="http://testserver")
    client.tokens = tokens
    return client


def login(client: TestClient, name: str) -> WebClient:
    """A new client on `client`'s app signed in as `name` (by password); raises if the sign-in fails."""
    tokens = getattr(client, "tokens", {})
    fresh = _client(client.app, tokens)  # type: ignore[arg-type]
    fresh.get("/login")  # the login form's CSRF cookie
    token = fresh.cookies.get("certlab_login")
    answer = fresh.post("/login", data={"name": name, "password": PASSWORDS[name], "csrf": token},
                        follow_redirects=False)
    assert answer.status_code == 303 and fresh.cookies.get(COOKIE), f"sign-in as {name} failed: {answer.status_code}"
    return fresh


def csrf(client: TestClient) -> str:
    """The CSRF token of `client`'s session (what `{{ csrf_field() }}` puts in every form)."""
    cookie = client.cookies.get(COOKIE)
    assert cookie, "not signed in: use login(client, name)"
    with reading(client.app.state.services.store) as s:  # type: ignore[attr-defined]
        token = s.scalars(select(WebSession.csrf).where(WebSession.id == key_of(cookie))).first()
    assert token, "the session has ended"
    return token


def post_form(client: TestClient, url: str, data: dict[str, Any] | None = None, *, files: Any = None,
              follow_redirects: bool = False) -> Any:
    """POST a page form as the browser would, with the session's CSRF token."""
    return client.post(url, data={**(data or {}), "csrf": csrf(client)}, files=files,
                       follow_redirects=follow_redirects)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebClient]:
    """`make_app`'s anonymous client for one test (`from webui import web`), its store closed after."""
    client = make_app(tmp_path)
    try:
        yield client
    finally:
        client.app.state.services.store.close()  # type: ignore[attr-defined]
