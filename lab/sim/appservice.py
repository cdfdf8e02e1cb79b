"""The simulated manufacturer's app service: accounts, paired devices, consent, settings, readings.

One `AppService` lives in each bench host, shared by the HTTPS API (`handle`, the companion app's
calls as TH-100's IXIT `associated_service.operations` documents them) and the telemetry line
server (`telemetry`, each line the DUT sends). A reading is stored only for a paired device
whose owner has consented to the history (26-UserDec `telemetry-consent`); the telemetry reply
carries the device's update settings. Product flaws change exactly one rule each:
`auto_update_off_by_default`, `cloud_keeps_deleted_data` (a deleted account's device keeps its
readings and goes on being recorded, all shown to its next owner), `stores_before_consent` (kept
from pairing until the user first decides), `consent_withdrawal_ignored`. State is in memory only: a lab down forgets every account.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_READINGS = 1000  # per device, newest kept
MAX_ACCOUNTS = 10_000
MAX_TOKENS = 10_000
_PBKDF2_ROUNDS = 20_000
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
_DEVICE_PATH = re.compile(r"^/devices/([A-Za-z0-9._-]{1,64})/(readings|settings)$")
SETTING_NAMES = ("auto_update", "update_notifications")


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def encoded(self) -> bytes:
        return (json.dumps(self.body, sort_keys=True) + "\n").encode()


@dataclass
class _Account:
    email: str
    salt: bytes
    pw_hash: bytes
    consent: bool = False  # what the account's consent reads
    processing: bool = False  # whether the cloud acts on it (differs only with consent_withdrawal_ignored)
    decided: bool = False  # the user has given or withdrawn consent at least once


@dataclass
class _Device:
    serial: str
    pairing_code: str | None
    owner: str | None = None
    orphaned: bool = False  # cloud_keeps_deleted_data: its owner deleted the account, the cloud still records it
    settings: dict[str, bool] = field(default_factory=dict)
    readings: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=MAX_READINGS))


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ROUNDS)


def _now_iso(clock: Callable[[], dt.datetime]) -> str:
    return clock().astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> Response:
    extra = (("WWW-Authenticate", 'Bearer realm="sim-devices"'),) if status == 401 else ()
    return Response(status, {"error": message}, extra)


class AppService:
    """Thread-safe state and request handling; `devices` maps each known serial to its pairing code."""

    def __init__(self, devices: Mapping[str, str | None], flaws: frozenset[str] = frozenset(),
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)):
        self._flaws = flaws
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._tokens: dict[str, str] = {}  # bearer token -> email (insertion order: oldest first)
        self._devices = {serial: _Device(serial, code, settings=self._default_settings())
                         for serial, code in devices.items()}

    def _default_settings(self) -> dict[str, bool]:
        return {"auto_update": "auto_update_off_by_default" not in self._flaws, "update_notifications": True}

    # --- the device's telemetry ---------------------------------------------------------------

    def telemetry(self, line: str) -> dict[str, Any]:
        """Take one telemetry line; the reply carries the device's settings (known serials only)."""
        try:
            msg = json.loads(line)
        except ValueError:
            return {"ok": True}
        if not isinstance(msg, dict) or not isinstance(msg.get("serial"), str):
            return {"ok": True}
        with self._lock:
            device = self._devices.get(msg["serial"])
            if device is None:
                return {"ok": True}
            if self._keeps_readings_of(device):
                device.readings.append({"time": _now_iso(self._clock), "temperature": msg.get("temperature"),
                                        "occupancy": msg.get("occupancy")})
            return {"ok": True, "settings": dict(device.settings)}

    def _keeps_readings_of(self, device: _Device) -> bool:
        owner = self._accounts.get(device.owner) if device.owner else None
        if owner is None:
            return device.orphaned
        return owner.processing or ("stores_before_consent" in self._flaws and not owner.decided)

    # --- the app's API --------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """One API request (path without the /v1 prefix); JSON in, JSON out."""
        payload: Any = None
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                return _error(400, "the body is not JSON")
        route = (method, path)
        if route == ("POST", "/accounts"):
            return self._create_account(payload)
        if route == ("POST", "/login"):
            return self._login(payload)
        with self._lock:
            email = self._tokens.get(_bearer(headers))
            account = self._accounts.get(email) if email else None
            if account is None:
                return _error(401, "log in first: Authorization: Bearer <token from /login>")
            if route == ("POST", "/devices"):
                return self._pair(account, payload)
            if route == ("GET", "/devices"):
                return Response(200, {"devices": [d.serial for d in self._devices.values() if d.owner == email]})
            if path == "/consent":
                return self._consent(account, method, payload)
            if route == ("DELETE", "/account"):
                return self._delete_account(account)
            if m := _DEVICE_PATH.match(path):
                device = self._devices.get(m.group(1))
                if device is None or device.owner != email:
                    return _error(404, "no such device in this account")
                if m.group(2) == "readings" and method == "GET":
                    return Response(200, {"serial": device.serial, "readings": list(device.readings)})
                if m.group(2) == "settings" and method == "GET":
                    return Response(200, dict(device.settings))
                if m.group(2) == "settings" and method in ("PUT", "PATCH"):
                    return self._set_settings(device, payload)
                return _error(405, f"{method} is not allowed on {path}")
        return _error(404, f"no operation {method} {path}")

    def _create_account(self, payload: Any) -> Response:
        email, password = _credentials(payload)
        if email is None or password is None:
            return _error(400, "give an email address and a password of 8 to 256 characters")
        salt = secrets.token_bytes(16)
        pw_hash = _hash(password, salt)
        with self._lock:
            if email in self._accounts:
                return _error(409, "an account with this email address exists")
            if len(self._accounts) >= MAX_ACCOUNTS:
                return _error(503, "too many accounts")
            self._accounts[email] = _Account(email, salt, pw_hash)
        return Response(201, {"email": email})

    def _login(self, payload: Any) -> Response:
        email, password = _credentials(payload)
        with self._lock:
            account = self._accounts.get(email) if email else None
            salt, stored = (account.salt, account.pw_hash) if account else (b"\0" * 16, b"")
        if password is None or not hmac.compare_digest(_hash(password, salt), stored) or account is None:
            return _error(401, "wrong email address or password")
        token = secrets.token_urlsafe(24)
        with self._lock:
            if email not in self._accounts:
                return _error(401, "wrong email address or password")
            while len(self._tokens) >= MAX_TOKENS:
                self._tokens.pop(next(iter(self._tokens)))
            self._tokens[token] = account.email
        return Response(200, {"token": token})

    def _pair(self, account: _Account, payload: Any) -> Response:
        serial = payload.get("serial") if isinstance(payload, dict) else None
        code = payload.get("pairing_code") if isinstance(payload, dict) else None
        if not isinstance(serial, str) or not isinstance(code, str):
            return _error(400, "give the device's serial and the pairing code from its label")
        device = self._devices.get(serial)
        if device is None:
            return _error(404, "no device with this serial")
        if device.pairing_code is None or not hmac.compare_digest(code.encode(), device.pairing_code.encode()):
            return _error(403, "wrong pairing code")
        if device.owner != account.email:  # the code proves possession: the device moves to this account
            device.owner, device.orphaned = account.email, False
            device.settings = self._default_settings()
            if "cloud_keeps_deleted_data" not in self._flaws:
                device.readings.clear()  # the previous owner's history is not the new owner's
        return Response(201, {"serial": serial, "paired": True})

    def _consent(self, account: _Account, method: str, payload: Any) -> Response:
        if method == "GET":
            return Response(200, {"history": account.consent})
        if method not in ("PUT", "PATCH"):
            return _error(405, f"{method} is not allowed on /consent")
        value = payload.get("history") if isinstance(payload, dict) else None
        if not isinstance(value, bool):
            return _error(400, 'give {"history": true|false}')
        account.consent, account.decided = value, True
        if value:
            account.processing = True
        elif "consent_withdrawal_ignored" not in self._flaws:
            account.processing = False
            for device in self._devices.values():  # withdrawing deletes the history (21-PersData)
                if device.owner == account.email:
                    device.readings.clear()
        return Response(200, {"history": account.consent})

    def _set_settings(self, device: _Device, payload: Any) -> Response:
        if not isinstance(payload, dict) or not payload:
            return _error(400, f"give one or more of {', '.join(SETTING_NAMES)} as true/false")
        for key, value in payload.items():
            if key not in SETTING_NAMES or not isinstance(value, bool):
                return _error(400, f"unknown setting or not true/false: {key!r}; use {', '.join(SETTING_NAMES)}")
        device.settings.update(payload)
        return Response(200, dict(device.settings))

    def _delete_account(self, account: _Account) -> Response:
        email = account.email
        del self._accounts[email]
        for token in [t for t, e in self._tokens.items() if e == email]:
            del self._tokens[token]
        for device in self._devices.values():
            if device.owner == email:
                device.owner = None
                device.settings = self._default_settings()
                if "cloud_keeps_deleted_data" in self._flaws:
                    device.orphaned = True  # its data flow is still recorded, for whoever pairs it next
                else:
                    device.readings.clear()
        return Response(200, {"deleted": True})


def _bearer(headers: Mapping[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _credentials(payload: Any) -> tuple[str | None, str | None]:
    if not isinstance(payload, dict):
        return None, None
    email, password = payload.get("email"), payload.get("password")
    email = email.strip().lower() if isinstance(email, str) and _EMAIL.match(email.strip()) else None
    password = password if isinstance(password, str) and 8 <= len(password) <= 256 else None
    return email, password
