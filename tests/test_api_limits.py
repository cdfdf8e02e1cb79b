"""Request bodies on the booking API: the token is checked before a body is read, bodies are held to
their route's limit (declared or counted), and a revoked token is refused from the next request.

Body tests drive the ASGI app directly with a `receive` that counts what the app pulled, so
"refused before it is read" is a number, not a timing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lab.api.app import PREFIX, create_app
from lab.api.bodylimit import upload_paths
from lab.api.cli import users_revoke
from lab.api.settings import ApiSettings
from lab.store.accounts import LiveUsers, add_user, is_live, revoke_user
from lab.store.db import open_store

MiB = 1 << 20
CHUNK = 64 << 10
BIG = 64 * MiB  # what the probe sent


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    pulled: int  # body bytes the app took from the client
    offered: int  # body bytes the client had

    def __repr__(self) -> str:  # a failure names the figures, not megabytes of echoed body
        return f"Reply(status={self.status}, pulled={self.pulled}, offered={self.offered}, body={self.body[:200]!r})"


BOUNDARY = "certlab-test"
FILE_HEAD = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="fw.bin"\r\n'
             f'Content-Type: application/octet-stream\r\n\r\n').encode()
FILE_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass
class Drip:
    """A client's body (`head`, `total` filler bytes in all, `tail`), handed out in chunks on demand,
    counting what was taken."""

    total: int
    head: bytes = b""
    tail: bytes = b""
    chunk: int = CHUNK
    pulled: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def receive(self) -> dict[str, Any]:
        if self.pulled >= self.total:
            return {"type": "http.disconnect"}
        size = min(self.chunk, self.total - self.pulled)
        body = bytearray(b"x" * size)
        if self.pulled < len(self.head):
            body[:len(self.head)] = self.head  # the filler starts with the head...
        if self.pulled + size == self.total and self.tail:
            body[-len(self.tail):] = self.tail  # ...and ends with the tail
        self.pulled += size
        return {"type": "http.request", "body": bytes(body), "more_body": self.pulled < self.total}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def drive(app: FastAPI, method: str, path: str, *, total: int, token: str | None = None, declare: bool = True,
          content_type: str = "application/json", upload: bool = False) -> Reply:
    """One request straight into the ASGI app; the body is `total` bytes, with or without Content-Length
    (`upload`: a multipart form holding one file)."""
    if upload:
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
    headers = [(b"host", b"127.0.0.1"), (b"content-type", content_type.encode())]
    headers.append((b"content-length", str(total).encode()) if declare else (b"transfer-encoding", b"chunked"))
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": PREFIX + path, "raw_path": (PREFIX + path).encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8303)}
    drip = Drip(total, FILE_HEAD, FILE_TAIL) if upload else Drip(total)
    anyio.run(app, scope, drip.receive, drip.send)
    start = next(m for m in drip.sent if m["type"] == "http.response.start")
    assert sum(m["type"] == "http.response.start" for m in drip.sent) == 1, drip.sent
    body = b"".join(m.get("body", b"") for m in drip.sent if m["type"] == "http.response.body")
    return Reply(start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, drip.pulled, total)


@dataclass
class Lab:
    app: FastAPI
    tokens: dict[str, str]


def make_lab(tmp_path: Path, **settings: Any) -> Lab:
    config = dict(rate_per_second=1e6, rate_burst=1e6) | settings
    app = create_app(ApiSettings(data_dir=tmp_path / "data", reports_dir=tmp_path / "reports", **config))
    store = app.state.services.store
    tokens = {role: add_user(store, name=name, role=role, org=org)[1]
              for name, role, org in (("maker", "manufacturer", "Acme"), ("lab", "engineer", "Test Lab"))}
    return Lab(app, tokens)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = make_lab(tmp_path)
    yield made
    made.app.state.services.store.close()


# --- authenticate before reading ------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "clt_not-a-token", "not even the prefix"])
def test_a_64_mib_body_without_a_valid_token_is_401_before_a_byte_is_read(lab: Lab, token: str | None) -> None:
    for declare in (True, False):
        reply = drive(lab.app, "POST", "/bookings", total=BIG, token=token, declare=declare)
        assert reply.status == 401, reply.body
        assert reply.pulled == 0, f"the app read {reply.pulled} bytes of an unauthenticated body"
        assert reply.headers["www-authenticate"].startswith("Bearer"), reply.headers
        assert b"token" in reply.body, reply.body


def test_a_revoked_token_with_a_body_is_401_before_reading(lab: Lab) -> None:
    store = lab.app.state.services.store
    assert drive(lab.app, "POST", "/products", total=10, token=lab.tokens["manufacturer"]).status == 422  # cached
    revoke_user(store, "maker")
    reply = drive(lab.app, "POST", "/products", total=BIG, token=lab.tokens["manufacturer"])
    assert (reply.status, reply.pulled) == (401, 0), reply
    assert b"revoked" in reply.body


def test_the_401_before_reading_is_the_dependencys_401(lab: Lab) -> None:
    with TestClient(lab.app) as client:
        read = client.get(f"{PREFIX}/bookings", headers={"Authorization": "Bearer clt_nope"})
    body = drive(lab.app, "POST", "/bookings", total=100, token="clt_nope")
    assert (body.status, body.body, body.headers["www-authenticate"]) == (
        read.status_code, read.content, read.headers["www-authenticate"])


def test_a_store_down_before_reading_is_503_not_500(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.store.db import StoreUnavailable

    def down(*_args: object) -> None:
        raise StoreUnavailable("sqlite:///x: database is locked")

    monkeypatch.setattr("lab.api.deps.user_for_token", down)
    reply = drive(lab.app, "POST", "/products", total=BIG, token=lab.tokens["manufacturer"])
    assert (reply.status, reply.pulled) == (503, 0), reply
    assert b"the result store is unavailable" in reply.body


# --- limits per route -------------------------------------------------------------------------

def test_a_json_body_declared_over_the_limit_is_413_unread(lab: Lab) -> None:
    reply = drive(lab.app, "POST", "/bookings", total=2 * MiB, token=lab.tokens["manufacturer"])
    assert (reply.status, reply.pulled) == (413, 0), reply
    assert b"1024 KiB" in reply.body and b"CERTLAB_MAX_JSON_KB" in reply.body, reply.body


def test_a_chunked_json_body_over_the_limit_is_413_once_over(lab: Lab) -> None:
    reply = drive(lab.app, "POST", "/bookings", total=16 * MiB, token=lab.tokens["manufacturer"], declare=False)
    assert reply.status == 413, reply.body
    assert reply.pulled <= MiB + CHUNK, f"read {reply.pulled} of {reply.offered} bytes before refusing"


def test_a_multipart_body_to_a_json_route_gets_the_json_limit(lab: Lab) -> None:
    reply = drive(lab.app, "POST", "/bookings", total=2 * MiB, token=lab.tokens["manufacturer"], upload=True,
                  declare=False)
    assert reply.status == 413 and reply.pulled <= MiB + CHUNK, reply


def test_uploads_get_the_upload_limit_declared_or_counted(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, max_upload_bytes=4 * MiB)
    maker = lab.tokens["manufacturer"]
    declared = drive(lab.app, "POST", "/bookings/1/firmware", total=8 * MiB, token=maker, upload=True)
    assert (declared.status, declared.pulled) == (413, 0), declared
    assert b"upload limit of 4194304 bytes" in declared.body
    chunked = drive(lab.app, "POST", "/bookings/1/firmware", total=64 * MiB, token=maker, declare=False,
                    upload=True)
    assert chunked.status == 413 and chunked.pulled <= 4 * MiB + (64 << 10) + CHUNK, chunked
    within = drive(lab.app, "POST", "/bookings/1/firmware", total=2 * MiB, token=maker, upload=True)
    assert within.status != 413 and within.pulled == 2 * MiB, within  # over the JSON limit, yet read: an upload
    lab.app.state.services.store.close()


def test_the_upload_routes_are_the_multipart_ones(lab: Lab) -> None:
    paths = {p.pattern for p in upload_paths(lab.app)}
    assert len(paths) == 4, paths
    assert any("/firmware" in p for p in paths) and any("/assessments/evidence" in p for p in paths), paths
    assert any("/records/" in p and p.endswith("/releases$") for p in paths), paths  # product records (issue 20)
    assert any("/records/" in p and p.endswith("/advisories$") for p in paths), paths


def test_max_json_kb_is_a_setting() -> None:
    assert ApiSettings.from_env({"CERTLAB_MAX_JSON_KB": "256"}).max_json_bytes == 256 << 10
    assert ApiSettings.from_env({}).max_json_bytes == MiB
    largest = max(p.stat().st_size for p in (Path(__file__).parent.parent / "inventory" / "products").rglob("*.yaml"))
    assert largest * 2 * 8 < MiB, "the default JSON limit leaves ample room for an ICS + IXIT (JSON-escaped)"


def test_a_body_request_is_admitted_once(tmp_path: Path) -> None:
    """The middleware's admission is the dependency's: one rate token per request, not two."""
    lab = make_lab(tmp_path, rate_per_second=0.001, rate_burst=3)
    maker = lab.tokens["manufacturer"]
    statuses = [drive(lab.app, "POST", "/products", total=2, token=maker).status for _ in range(4)]
    assert statuses == [422, 422, 422, 429], statuses
    lab.app.state.services.store.close()


def test_normal_bodies_still_pass_and_refusals_are_audited(lab: Lab) -> None:
    with TestClient(lab.app) as client:
        auth = {"Authorization": f"Bearer {lab.tokens['manufacturer']}"}
        made = client.post(f"{PREFIX}/products", headers=auth, json={"model": "TH-100", "name": "Thermo"})
        assert made.status_code in (201, 422), made.text
        big = client.post(f"{PREFIX}/products", headers=auth, content=b"x" * (2 * MiB))
        assert big.status_code == 413, big.text[:200]
        anon = client.post(f"{PREFIX}/products", content=b"{}")
        assert anon.status_code == 401
        eng = {"Authorization": f"Bearer {lab.tokens['engineer']}"}
        log = client.get(f"{PREFIX}/audit", headers=eng).json()
    rows = [(e["status"], e.get("user")) for e in (log if isinstance(log, list) else log.get("entries", []))]
    assert any(s == 413 for s, _ in rows) and any(s == 401 for s, _ in rows), rows


# --- revocation -----------------------------------------------------------------------------

def test_revocation_by_the_command_line_holds_for_the_next_request(tmp_path: Path, db_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTLAB_DATABASE_URL", db_url)
    lab = make_lab(tmp_path)
    auth = {"Authorization": f"Bearer {lab.tokens['manufacturer']}"}
    with TestClient(lab.app) as client:
        assert client.get(f"{PREFIX}/me", headers=auth).status_code == 200
        assert client.get(f"{PREFIX}/me", headers=auth).status_code == 200  # now from the cache
        users_revoke("maker")  # what `certlab users revoke maker` runs, on its own store connection
        after = client.get(f"{PREFIX}/me", headers=auth)
        assert after.status_code == 401, after.text
        assert after.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get(f"{PREFIX}/me", headers={"Authorization": f"Bearer {lab.tokens['engineer']}"}).status_code == 200
    lab.app.state.services.store.close()


def test_liveness_sees_a_revocation_made_through_another_connection(db_url: str) -> None:
    with open_store(db_url) as store, open_store(db_url) as other:
        live = LiveUsers(store)
        user, _ = add_user(store, name="u", role="engineer", org="Lab")
        assert is_live(store, user.id) and not is_live(store, user.id + 1)
        assert live(user.id) and live(user.id) and not live(user.id + 1)  # the kept connection, read twice
        revoke_user(other, "u")  # as `certlab users revoke` does, in its own process
        assert not live(user.id) and not is_live(store, user.id)
    assert live._conn is None, "closing the store closes the kept connection"
