"""lab/service: the IXIT-driven client of a product's app API, against a small loopback fake of one.

The fake (HTTPS on 127.0.0.1, its own throw-away CA) is written here, not the simulator: the
client must work from the IXIT's description alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.errors import CertlabError, DutError, LabFault, LabLoginRejected
from lab.ixit import AssociatedService
from lab.service.api import MASK, PointerError, Redactor, fill_body, fill_text, resolve_pointer
from lab.service.client import ServiceClient
from lab.service.records import (Moment, Record, dated_after, dated_before, left_after_deletion, moment_of, records_of,
                                 shown_switch, switch_value)
from lab.web.fetch import HttpTarget
from tests.webserver import make_pki

HOST = "api.fake.invalid"
SERIAL = "SN-0042"
CODE = "pair-7788-9911"

OPERATIONS = {
    "create_account": {"method": "POST", "path": "/accounts", "body": {"email": "{user}", "password": "{password}"}},
    "login": {"method": "POST", "path": "/login", "body": {"email": "{user}", "password": "{password}"}, "token": "/auth/token"},
    "pair_device": {"method": "POST", "path": "/devices", "body": {"serial": "{serial}", "pairing_code": "{pairing_code}"}},
    "list_personal_data": {"method": "GET", "path": "/devices/{serial}/readings", "items": "/readings", "item_time": "/time"},
    "get_consent": {"method": "GET", "path": "/consent", "value": "/history"},
    "give_consent": {"method": "PUT", "path": "/consent", "body": {"history": True}},
    "get_update_settings": {"method": "GET", "path": "/devices/{serial}/settings"},
    "set_auto_update": {"method": "PUT", "path": "/devices/{serial}/settings", "body": {"auto_update": "{value}"}},
    "delete_account": {"method": "DELETE", "path": "/account", "expect": [204]},
}


def _service(**changes) -> AssociatedService:
    data = {"description": "fake", "base_url": f"https://{HOST}/v1", "signup": True, "operations": OPERATIONS}
    data.update(changes)
    return AssociatedService.model_validate(data)


class FakeApi:
    """Accounts, one device, consent, settings, readings; `status` forces an answer for a path."""

    def __init__(self) -> None:
        self.accounts: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.owner: str | None = None
        self.consent: dict[str, bool] = {}
        self.settings = {"auto_update": True}
        self.readings: list[dict] = []
        self.forced: dict[str, int] = {}
        self.slow: set[str] = set()
        self.seen: list[tuple[str, str, dict, object]] = []


def _handler(api: FakeApi):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self, status: int, data=None) -> None:
            body = json.dumps(data).encode() if data is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            path = self.path.removeprefix("/v1")
            api.seen.append((self.command, path, dict(self.headers), body))
            if path in api.slow:
                time.sleep(1.5)
            if path in api.forced:
                return self._answer(api.forced[path], {"error": "forced"})
            user = api.tokens.get((self.headers.get("Authorization") or "").removeprefix("Bearer "))
            if self.command == "POST" and path == "/accounts":
                api.accounts[body["email"]] = body["password"]
                return self._answer(201, {"ok": True})
            if self.command == "POST" and path == "/login":
                if api.accounts.get(body["email"]) != body["password"]:
                    return self._answer(401, {"error": f"bad password {body['password']}"})
                token = f"tok-{len(api.tokens)}-abcdef"
                api.tokens[token] = body["email"]
                return self._answer(200, {"auth": {"token": token}})
            if user is None:
                return self._answer(401, {"error": "no token"})
            if self.command == "POST" and path == "/devices":
                if body["pairing_code"] != CODE:
                    return self._answer(403, {"error": f"wrong code {body['pairing_code']}"})
                api.owner = user
                return self._answer(200, {"serial": body["serial"]})
            if path == f"/devices/{SERIAL}/readings":
                return self._answer(200, {"readings": api.readings})
            if path == "/consent":
                if self.command == "PUT":
                    api.consent[user] = body["history"]
                return self._answer(200, {"history": api.consent.get(user, False)})
            if path == f"/devices/{SERIAL}/settings":
                if self.command == "PUT":
                    api.settings.update(body)
                return self._answer(200, dict(api.settings))
            if self.command == "DELETE" and path == "/account":
                api.accounts.pop(user, None)
                return self._answer(204)
            return self._answer(404, {"error": "no such path"})

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


@pytest.fixture
def fake(tmp_path):
    ca, cert, key = make_pki(tmp_path, [HOST])
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    target = HttpTarget(allowed_hosts=frozenset({HOST}), hosts_field="associated_service.base_url",
                        connect_to={f"{HOST}:443": f"127.0.0.1:{server.server_address[1]}"}, ca_file=ca, timeout=0.5)
    yield api, target
    server.shutdown()
    server.server_close()


def _client(target, service=None, **kw) -> ServiceClient:
    kw.setdefault("pairing_code", lambda: CODE)
    return ServiceClient(service or _service(), target, serial=SERIAL, bench="b1", **kw)


# --- pure parts -------------------------------------------------------------------------------

def test_pointer_rfc6901():
    doc = {"a/b": {"m~n": [10, {"x": True}]}, "": 1}
    assert resolve_pointer(doc, "") is doc
    assert resolve_pointer(doc, "/a~1b/m~0n/1/x") is True
    assert resolve_pointer(doc, "/") == 1
    for bad in ("/a~1b/m~0n/2", "/a~1b/m~0n/01", "/zz", "/a~1b/m~0n/0/x", "nope"):
        with pytest.raises(PointerError):
            resolve_pointer(doc, bad)


def test_placeholders_fill_path_and_typed_value():
    assert fill_text("/devices/{serial}/x", {"serial": "a b/c"}, operation="o", url=True) == "/devices/a%20b%2Fc/x"
    body = fill_body({"auto": "{value}", "who": "{user}", "n": ["{value}"], "k": 3}, {"value": False, "user": "u"}, operation="o")
    assert body == {"auto": False, "who": "u", "n": [False], "k": 3}
    with pytest.raises(CertlabError, match=r"operations\.pair_device uses \{pairing_code\}"):
        fill_body({"c": "{pairing_code}"}, {}, operation="pair_device")


def test_redactor_masks_values_everywhere_and_secret_keys():
    r = Redactor()
    r.add("s3cret pass/word")
    r.add("ab")  # too short to mask by value; still masked by key
    out = r.data({"url": "https://h/x?p=s3cret%20pass%2Fword", "password": "ab", "note": "was s3cret pass/word",
                  "list": ["s3cret pass/word"], "Authorization": "Bearer zzz", "temperature": 21})
    assert "s3cret" not in json.dumps(out)
    assert out["password"] == MASK and out["Authorization"] == MASK and out["temperature"] == 21


def test_records_and_moments():
    doc = {"readings": [{"time": "2026-01-01T10:00:00Z"}, {"time": "2026-01-01T10:00:05+00:00"}, {"time": "2026-01-01T10:00:09"}]}
    recs = records_of(doc, "/readings", "/time", operation="list_personal_data")
    m = moment_of({"Date": "Thu, 01 Jan 2026 10:00:05 GMT"}, dt.datetime.now(dt.timezone.utc), dt.datetime.now(dt.timezone.utc))
    assert m.clock == "service"
    assert [r.time.second for r in dated_before(recs, m)] == [0]
    assert [r.time.second for r in dated_after(recs, m)] == [9]  # 10:00:05 may be the same second: neither
    lab = moment_of({}, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc))
    assert isinstance(lab, Moment) and lab.clock == "lab"
    with pytest.raises(DutError, match="item_time"):
        records_of({"readings": [{"when": 1}]}, "/readings", "/time", operation="list_personal_data")
    with pytest.raises(DutError, match="not a list"):
        records_of({"readings": {}}, "/readings", "/time", operation="list_personal_data")


def test_left_after_deletion_places_records_surely():
    t = lambda s: dt.datetime(2026, 1, 1, 10, 0, s, 500000, tzinfo=dt.timezone.utc)  # noqa: E731
    deleted = Moment(t(10).replace(microsecond=0), t(11).replace(microsecond=0), "service")
    repaired = Moment(t(20).replace(microsecond=0), t(21).replace(microsecond=0), "service")
    seen_same_second = Record(t(10), {"n": 1})  # the deleted account saw it: old, though in the deletion's second
    earlier, kept, unplaced, new = Record(t(5), {"n": 0}), Record(t(15), {"n": 2}), Record(t(20), {"n": 3}), Record(t(25), {"n": 4})
    old, unowned = left_after_deletion([earlier, seen_same_second, kept, unplaced, new], [seen_same_second], deleted, repaired)
    assert old == [earlier, seen_same_second] and unowned == [kept]
    assert left_after_deletion([new], [seen_same_second], deleted, repaired) == ([], [])


def test_switch_values():
    assert switch_value(True, what="x") is True
    with pytest.raises(DutError, match="reads 'yes'"):
        switch_value("yes", what="auto_update")
    assert shown_switch("auto-update: off\nnotifications: on\n", r"auto-update: (?P<value>on|off)", "on") is False
    assert shown_switch("auto-update: unknown\n", r"auto-update: (?P<value>on|off)", "on") is None


# --- against the fake --------------------------------------------------------------------------

def test_account_flow_token_pointers_and_redacted_evidence(fake):
    api, target = fake
    client = _client(target)
    acct = client.new_account()
    assert re.fullmatch(r"certlab-[0-9a-f]{12}@lab\.invalid", acct.user)
    acct.login()
    acct.pair()
    assert api.owner == acct.user
    assert api.seen[-1][3] == {"serial": SERIAL, "pairing_code": CODE}
    acct.call("give_consent")
    assert acct.read("get_consent", what="consent") is True
    acct.call("set_auto_update", value=False)
    assert api.settings["auto_update"] is False  # "{value}" went as the JSON boolean
    assert acct.read("get_update_settings", pointer="/auto_update", what="auto_update") is False
    api.readings.append({"time": "2026-01-01T10:00:00Z", "temperature": 20})
    records, _ = acct.records()
    assert len(records) == 1
    client.close()
    assert acct.deleted and acct.user not in api.accounts
    text = json.dumps(client.exchanges())
    for secret in (acct.password, CODE, *api.tokens):
        assert secret not in text
    assert '"operation": "pair_device"' in text and "Bearer" not in text


def test_wait_for_records_is_bounded(fake):
    api, target = fake
    client = _client(target)
    acct = client.new_account()
    acct.login()
    found, held = acct.wait_for_records(0.2, lambda r: bool(r), poll_s=0.1)
    assert (found, held) == ([], False)
    api.readings.append({"time": "2026-01-01T10:00:00Z"})
    found, held = acct.wait_for_records(0.2, lambda r: bool(r), poll_s=0.1)
    assert held and len(found) == 1


def test_401_and_500_are_the_services_findings_naming_the_operation(fake):
    api, target = fake
    client = _client(target)
    acct = client.new_account()
    with pytest.raises(DutError, match=r"get_consent .*HTTP 401 \(not authorised\)"):
        acct.call("get_consent")  # not logged in: the service refuses
    acct.login()
    api.forced["/consent"] = 500
    with pytest.raises(DutError, match=r"give_consent .*HTTP 500"):
        acct.call("give_consent")
    api.forced["/account"] = 200
    with pytest.raises(DutError, match=r"HTTP 200, not 204"):
        acct.call("delete_account")


def test_wrong_pairing_code_error_is_masked(fake):
    api, target = fake
    client = _client(target, pairing_code=lambda: "bad-code-1234")
    acct = client.new_account()
    acct.login()
    with pytest.raises(DutError) as err:
        acct.pair()
    assert "HTTP 403" in str(err.value) and "bad-code-1234" not in str(err.value)
    assert "bad-code-1234" not in json.dumps(client.exchanges())


def test_inventory_account_refused_is_the_labs_fault(fake):
    api, target = fake
    client = _client(target, _service(signup=False), account=("lab@x.invalid", lambda: "wrong-password-1"))
    acct = client.new_account()
    with pytest.raises(LabLoginRejected, match="service.account"):
        acct.login()
    assert "wrong-password-1" not in json.dumps(client.exchanges())  # echoed by the fake's error: masked


def test_timeout_after_connect_is_a_dut_error(fake):
    api, target = fake
    api.slow.add("/accounts")
    with pytest.raises(DutError, match=r"create_account .*did not answer within"):
        _client(target).new_account()


def test_unreachable_without_path_check_is_a_lab_fault(fake):
    _api, target = fake
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    dead = HttpTarget(allowed_hosts=target.allowed_hosts, hosts_field=target.hosts_field,
                      connect_to={f"{HOST}:443": f"127.0.0.1:{closed}"}, ca_file=target.ca_file, timeout=0.5)
    with pytest.raises(LabFault):
        _client(dead).new_account()


def test_missing_operation_and_facts_name_the_field(fake):
    _api, target = fake
    ops = {k: v for k, v in OPERATIONS.items() if k != "get_consent"}
    client = _client(target, _service(operations=ops))
    with pytest.raises(CertlabError, match="get_consent"):
        client.operation("get_consent")
    client = _client(target, pairing_code=None)
    acct = client.new_account()
    acct.login()
    with pytest.raises(CertlabError, match="dut.pairing_code"):
        acct.pair()
    no_signup = _client(target, _service(signup=False))
    with pytest.raises(CertlabError, match="service.account"):
        no_signup.new_account()
