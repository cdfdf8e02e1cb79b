"""The simulated app service: its state machine (accounts, pairing, consent, settings, readings,
deletion), the four service flaws, and the same API over loopback HTTPS with Host routing."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.sim.appservice import AppService, Response
from lab.sim.cloud import CloudServer, ensure_pki
from lab.sim.site import Site
from lab.sim.shell import Shell
from lab.sim.telemetry import reply_settings, settings_lines
from lab.sim.web import WebServer

SERIAL, CODE = "TH100-T001", "pair-1234-code"
LINE = json.dumps({"serial": SERIAL, "token": "tok", "temperature": 21.5, "occupancy": "07:00-08:00"})

pytestmark = pytest.mark.timeout(60)


class Api:
    """The app's calls against an AppService, as the IXIT's operations name them."""

    def __init__(self, app: AppService):
        self.app = app

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.app.handle(method, path, headers, json.dumps(body).encode() if body is not None else b"")

    def user(self, email: str = "a@lab.invalid", password: str = "secret-password-1", pair: bool = True) -> str:
        assert self.call("POST", "/accounts", {"email": email, "password": password}).status == 201
        login = self.call("POST", "/login", {"email": email, "password": password})
        assert login.status == 200
        token = login.body["token"]
        if pair:
            assert self.call("POST", "/devices", {"serial": SERIAL, "pairing_code": CODE}, token).status == 201
        return token

    def readings(self, token: str) -> list[dict[str, Any]]:
        resp = self.call("GET", f"/devices/{SERIAL}/readings", token=token)
        assert resp.status == 200, resp
        return resp.body["readings"]


def api(*flaws: str) -> Api:
    return Api(AppService({SERIAL: CODE}, frozenset(flaws)))


# --- accounts and login ---------------------------------------------------------------------


def test_account_login_and_bearer_token() -> None:
    a = api()
    token = a.user(pair=False)
    assert a.call("POST", "/accounts", {"email": "A@lab.invalid", "password": "another-password"}).status == 409
    assert a.call("POST", "/accounts", {"email": "no-at-sign", "password": "secret-password-1"}).status == 400
    assert a.call("POST", "/accounts", {"email": "b@lab.invalid", "password": "short"}).status == 400
    assert a.call("POST", "/login", {"email": "a@lab.invalid", "password": "wrong-password"}).status == 401
    assert a.call("POST", "/login", {"email": "x@lab.invalid", "password": "secret-password-1"}).status == 401
    assert a.call("GET", "/consent").status == 401
    bad = a.call("GET", "/consent", token="not-a-token")
    assert bad.status == 401 and dict(bad.headers)["WWW-Authenticate"].startswith("Bearer")
    assert a.call("GET", "/consent", token=token).body == {"history": False}
    assert a.app.handle("POST", "/accounts", {}, b"{not json").status == 400
    assert a.call("GET", "/nothing", token=token).status == 404


def test_pairing_needs_the_label_code_and_moves_the_device_to_whoever_has_it() -> None:
    a = api()
    first = a.user("a@lab.invalid", pair=False)
    assert a.call("POST", "/devices", {"serial": SERIAL, "pairing_code": "wrong-code"}, first).status == 403
    assert a.call("POST", "/devices", {"serial": "TH100-NONE", "pairing_code": CODE}, first).status == 404
    assert a.call("POST", "/devices", {"serial": SERIAL}, first).status == 400
    assert a.call("GET", f"/devices/{SERIAL}/readings", token=first).status == 404
    assert a.call("POST", "/devices", {"serial": SERIAL, "pairing_code": CODE}, first).status == 201
    assert a.call("GET", "/devices", token=first).body == {"devices": [SERIAL]}
    second = a.user("b@lab.invalid")
    assert a.call("GET", f"/devices/{SERIAL}/settings", token=first).status == 404
    assert a.call("GET", "/devices", token=second).body == {"devices": [SERIAL]}


def test_a_device_without_a_pairing_code_cannot_be_paired() -> None:
    a = Api(AppService({SERIAL: None}))
    token = a.user(pair=False)
    assert a.call("POST", "/devices", {"serial": SERIAL, "pairing_code": ""}, token).status == 403


# --- consent gates the readings ---------------------------------------------------------------


def test_readings_are_kept_only_for_a_paired_device_with_consent() -> None:
    a = api()
    a.app.telemetry(LINE)  # nobody owns it yet
    token = a.user()
    a.app.telemetry(LINE)
    assert a.readings(token) == []
    assert a.call("PUT", "/consent", {"history": True}, token).body == {"history": True}
    a.app.telemetry(LINE)
    a.app.telemetry(LINE)
    got = a.readings(token)
    assert len(got) == 2 and got[0]["temperature"] == 21.5 and got[0]["occupancy"] == "07:00-08:00"
    assert got[0]["time"].endswith("Z")
    assert a.call("PUT", "/consent", {"history": "yes"}, token).status == 400


def test_withdrawing_consent_stops_storing_and_deletes_the_history() -> None:
    a = api()
    token = a.user()
    a.call("PUT", "/consent", {"history": True}, token)
    a.app.telemetry(LINE)
    assert a.call("PUT", "/consent", {"history": False}, token).body == {"history": False}
    a.app.telemetry(LINE)
    assert a.readings(token) == []
    assert a.call("GET", "/consent", token=token).body == {"history": False}


def test_telemetry_lines_that_are_not_a_known_device_get_a_plain_ok() -> None:
    a = api()
    assert a.app.telemetry("LOGIN TH100-T001 tok") == {"ok": True}
    assert a.app.telemetry('{"serial": "OTHER"}') == {"ok": True}
    assert a.app.telemetry("[1, 2]") == {"ok": True}
    assert a.app.telemetry(LINE) == {"ok": True, "settings": {"auto_update": True, "update_notifications": True}}


# --- settings -----------------------------------------------------------------------------------


def test_update_settings_default_on_switch_and_reach_the_device() -> None:
    a = api()
    token = a.user()
    path = f"/devices/{SERIAL}/settings"
    assert a.call("GET", path, token=token).body == {"auto_update": True, "update_notifications": True}
    assert a.call("PUT", path, {"auto_update": False}, token).body == {"auto_update": False, "update_notifications": True}
    assert a.call("PUT", path, {"update_notifications": False}, token).status == 200
    assert a.call("PUT", path, {"auto_update": "off"}, token).status == 400
    assert a.call("PUT", path, {"colour": True}, token).status == 400
    assert a.call("DELETE", path, token=token).status == 405
    reply = a.app.telemetry(LINE)
    assert reply_settings(json.dumps(reply)) == {"auto_update": False, "update_notifications": False}
    assert reply_settings('{"ok": true}') is None and reply_settings("garbage") is None


class _Out:
    def __init__(self) -> None:
        self.out, self.err = "", ""

    def write(self, text: str) -> None:
        self.out += text

    def write_err(self, text: str) -> None:
        self.err += text

    def read_line(self, prompt: str, *, echo: bool = True) -> str | None:
        return None


class _Host:
    hostname, model = "th100", "TH-100"

    def update_settings_lines(self) -> list[str]:
        return settings_lines({"auto_update": False, "update_notifications": True})


def test_the_device_shows_the_settings_it_got() -> None:
    assert settings_lines(None) == ["auto-update: unknown", "notifications: unknown"]
    assert settings_lines({"auto_update": True}) == ["auto-update: on", "notifications: unknown"]
    io = _Out()
    shell = Shell(_Host(), io)  # type: ignore[arg-type]
    assert shell.cmd_update_settings([], io) == 0
    assert io.out == "auto-update: off\nnotifications: on\n"
    assert shell.cmd_update_settings(["now"], io) == 2 and "usage" in io.err


# --- account deletion ---------------------------------------------------------------------------


def test_deleting_the_account_removes_it_its_readings_and_the_pairing() -> None:
    a = api()
    token = a.user("a@lab.invalid")
    a.call("PUT", "/consent", {"history": True}, token)
    a.app.telemetry(LINE)
    assert a.call("DELETE", "/account", token=token).body == {"deleted": True}
    assert a.call("GET", "/consent", token=token).status == 401
    assert a.call("POST", "/login", {"email": "a@lab.invalid", "password": "secret-password-1"}).status == 401
    a.app.telemetry(LINE)  # unpaired now: not kept
    nxt = a.user("b@lab.invalid")
    a.call("PUT", "/consent", {"history": True}, nxt)
    assert a.readings(nxt) == []
    # the same email can sign up again, as a new account without consent
    again = a.user("a@lab.invalid", pair=False)
    assert a.call("GET", "/consent", token=again).body == {"history": False}


# --- the service flaws ----------------------------------------------------------------------------


def test_flaw_auto_update_off_by_default() -> None:
    a = api("auto_update_off_by_default")
    token = a.user()
    assert a.call("GET", f"/devices/{SERIAL}/settings", token=token).body["auto_update"] is False


def test_flaw_cloud_keeps_deleted_data_shows_it_to_the_next_owner() -> None:
    a = api("cloud_keeps_deleted_data")
    token = a.user("a@lab.invalid")
    a.call("PUT", "/consent", {"history": True}, token)
    a.app.telemetry(LINE)
    assert a.call("DELETE", "/account", token=token).status == 200
    assert a.call("POST", "/login", {"email": "a@lab.invalid", "password": "secret-password-1"}).status == 401
    a.app.telemetry(LINE)  # still recorded without an owner
    nxt = a.user("b@lab.invalid")
    assert len(a.readings(nxt)) == 2
    a.app.telemetry(LINE)  # the new owner has not consented: not kept
    assert len(a.readings(nxt)) == 2


def test_flaw_stores_before_consent_until_the_user_decides() -> None:
    a = api("stores_before_consent")
    token = a.user()
    a.app.telemetry(LINE)
    assert a.call("GET", "/consent", token=token).body == {"history": False}
    assert len(a.readings(token)) == 1
    a.call("PUT", "/consent", {"history": True}, token)
    a.call("PUT", "/consent", {"history": False}, token)  # a withdrawal is honoured: only 6-2 is broken
    a.app.telemetry(LINE)
    assert a.readings(token) == []


def test_flaw_consent_withdrawal_ignored() -> None:
    a = api("consent_withdrawal_ignored")
    token = a.user()
    a.call("PUT", "/consent", {"history": True}, token)
    a.app.telemetry(LINE)
    assert a.call("PUT", "/consent", {"history": False}, token).status == 200
    assert a.call("GET", "/consent", token=token).body == {"history": False}
    a.app.telemetry(LINE)
    assert len(a.readings(token)) == 2


# --- over loopback HTTPS, with the telemetry server ------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[WebServer, CloudServer, ssl.SSLContext]]:
    pki = ensure_pki(tmp_path / "pki", "t", ["127.0.0.1"])
    app = AppService({SERIAL: CODE})
    web = WebServer("127.0.0.1", 0, pki, app, Site(frozenset(), "Contact: mailto:x@y\n"), tmp_path / "web.log")
    web.start()
    cloud = CloudServer("127.0.0.1", 0, pki, tmp_path / "cloud.log", on_line=app.telemetry)
    cloud.start()
    try:
        yield web, cloud, ssl.create_default_context(cafile=str(pki.ca_file))
    finally:
        web.close()
        cloud.close()


class _MappedHttps(http.client.HTTPSConnection):
    """HTTPS to `host` (SNI, Host, certificate name) at the server's loopback address, like curl --resolve."""

    def __init__(self, host: str, addr: tuple[str, int], ctx: ssl.SSLContext):
        super().__init__(host, 443, context=ctx, timeout=5)
        self._addr = addr

    def connect(self) -> None:
        self.sock = self._context.wrap_socket(socket.create_connection(self._addr, self.timeout),  # type: ignore[attr-defined]
                                              server_hostname=self.host)


def _request(web: WebServer, ctx: ssl.SSLContext, host: str, method: str, path: str, body: Any = None,
             token: str | None = None) -> tuple[int, Any]:
    conn = _MappedHttps(host, ("127.0.0.1", web.server_address[1]), ctx)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if resp.getheader("Content-Type") == "application/json" else data
    finally:
        conn.close()


def test_api_over_https_with_telemetry_replies(served: tuple[WebServer, CloudServer, ssl.SSLContext]) -> None:
    web, cloud, ctx = served
    api_host = "api.sim-devices.certlab.test"
    creds = {"email": "a@lab.invalid", "password": "secret-password-1"}
    assert _request(web, ctx, api_host, "POST", "/v1/accounts", creds)[0] == 201
    status, body = _request(web, ctx, api_host, "POST", "/v1/login", creds)
    token = body["token"]
    assert _request(web, ctx, api_host, "POST", "/v1/devices", {"serial": SERIAL, "pairing_code": "nope"}, token)[0] == 403
    assert _request(web, ctx, api_host, "POST", "/v1/devices", {"serial": SERIAL, "pairing_code": CODE}, token)[0] == 201
    assert _request(web, ctx, api_host, "PUT", "/v1/consent", {"history": True}, token) == (200, {"history": True})
    assert _request(web, ctx, api_host, "GET", "/v1/consent")[0] == 401
    assert _request(web, ctx, api_host, "GET", "/consent", token=token)[0] == 404  # outside /v1
    with socket.create_connection(cloud.address, timeout=3) as plain:  # what the DUT sends, answered with settings
        plain.sendall(LINE.encode() + b"\n")
        reply = plain.makefile("rb").readline()
    assert reply_settings(reply.decode()) == {"auto_update": True, "update_notifications": True}
    status, body = _request(web, ctx, api_host, "GET", f"/v1/devices/{SERIAL}/readings", token=token)
    assert status == 200 and len(body["readings"]) == 1
    assert _request(web, ctx, "sim-devices.certlab.test", "GET", "/.well-known/security.txt")[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):  # the certificate names only the lab's hosts
        _request(web, ctx, "other.example", "GET", "/")
    log = (web._log_path).read_text()
    assert token not in log and CODE not in log and "secret-password-1" not in log


def test_oversized_body_and_silent_client_do_not_block(served: tuple[WebServer, CloudServer, ssl.SSLContext]) -> None:
    web, _cloud, ctx = served
    silent = socket.create_connection(("127.0.0.1", web.server_address[1]), timeout=3)  # never says hello
    try:
        host = "api.sim-devices.certlab.test"
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", web.server_address[1]), timeout=5),
                             server_hostname=host) as tls:
            tls.sendall(f"POST /v1/accounts HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000000\r\n\r\n".encode())
            assert tls.makefile("rb").readline().split()[1] == b"413"
        assert _request(web, ctx, "sim-devices.certlab.test", "GET", "/security/disclosure")[0] == 200
    finally:
        silent.close()


def test_lab_up_gives_each_bench_host_its_sample_and_flaws() -> None:
    from lab.inventory import load_inventory
    from lab.sim.lab import SimLab

    root = Path(__file__).resolve().parent.parent
    lab = SimLab(load_inventory(root / "inventory" / "sim-flaws.yaml"))
    web = lab._web_json(lab.benches["stores_before_consent"])
    code = (root / "inventory" / "secrets" / "sim-flaws" / "stores_before_consent.pairing").read_text().strip()
    assert web["host"] == lab.benches["stores_before_consent"].network.gateway and web["port"] == 8443
    assert web["pairing_code"] == code and web["flaws"] == ["stores_before_consent"]
