"""The `http-pdu` power backend: a network PDU's HTTP API, the NETIO JSON API (M2M JSON over HTTP(S)).

    power: {driver: http-pdu, url: "http://192.0.2.20/netio.json", channel: 2,
            user: netio, password: {file: secrets/pdu}, ca_file: pdu-ca.pem}

`GET <url>` returns {"Agent": {..., "NumOutputs": n}, "Outputs": [{"ID": n, "State": 0|1, ...}]};
`POST <url>` with {"Outputs": [{"ID": n, "Action": 0|1}]} switches an output (0 off, 1 on) and
answers with the same document. HTTP basic auth with the API's read-write user; HTTP 401 is a
wrong user or password, 403 a read-only user, 400 a command the PDU did not accept. Standard
library only (urllib): bounded timeouts, no proxies from the environment, no redirects, TLS
verified against `ca_file` (inventory-relative) or the system store.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lab.drivers.power import _RetryingPower, _Transient
from lab.drivers.registry import PowerBackend, PowerConfigBase, PowerContext
from lab.errors import CertlabError, PowerFault
from lab.secrets import SecretRef
from lab.steps import StepRecorder

MAX_REPLY_BYTES = 1 << 20  # a netio.json document is a few KiB
ACTION_OFF, ACTION_ON = 0, 1


class HttpPduConfig(PowerConfigBase):
    """Inventory fields of the `http-pdu` backend (NETIO JSON API)."""

    driver: Literal["http-pdu"]
    url: str  # the JSON API document, e.g. http://192.0.2.20/netio.json
    channel: int = Field(ge=1, le=64)  # the output ID
    api: Literal["netio-json"] = "netio-json"
    user: str | None = None
    password: SecretRef | None = None
    ca_file: str | None = None  # https only: PEM bundle to trust instead of the system store
    timeout: float = Field(default=5.0, gt=0, le=60)  # connect, and each answer

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("write the PDU's JSON API URL, e.g. http://192.0.2.20/netio.json")
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL; write them in power.user and power.password")
        try:
            parts.port
        except ValueError:
            raise ValueError("the port is not a number from 1 to 65535") from None
        return value

    @model_validator(mode="after")
    def _pairs(self) -> "HttpPduConfig":
        if (self.user is None) != (self.password is None):
            raise ValueError("give both power.user and power.password (the JSON API's read-write user), or neither")
        if self.ca_file and not self.url.startswith("https:"):
            raise ValueError("power.ca_file is for an https:// url; remove it or use https")
        return self


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # the 3xx reaches the caller as an HTTPError: said, never followed with our password


class NetioJsonPower(_RetryingPower):
    """One output of a NETIO PDU, switched and read back through its JSON API."""

    def __init__(self, url: str, channel: int, *, user: str | None = None, password: str | None = None,
                 ca_file: str | None = None, timeout: float = 5.0, retries: int = 2, bench: str | None = None,
                 steps: StepRecorder | None = None, credential_source: str = "power.user and power.password") -> None:
        super().__init__(channel, timeout=timeout, retries=retries, bench=bench, steps=steps)
        self.url = url
        self.where = f"PDU at {url}"
        self.user = user
        self.credential_source = credential_source
        self._auth = None if user is None else \
            "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
        handlers: list[Any] = [urllib.request.ProxyHandler({}), _NoRedirect()]
        if url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
        self._opener = urllib.request.build_opener(*handlers)

    def close(self) -> None:
        """Every request is its own connection: nothing to close."""

    def _drop(self) -> None:
        pass

    # --- the API ---------------------------------------------------------------------------
    def _request(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, method="GET" if body is None else "POST")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._auth:
            request.add_header("Authorization", self._auth)
        verb = request.get_method()
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                raw = reply.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, verb) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise PowerFault(f"{self.where}: its TLS certificate is not trusted ({reason.verify_message}); "
                                 "fix: set power.ca_file to the PDU's CA or certificate (PEM)", bench=self.bench) from None
            if isinstance(reason, TimeoutError):
                raise _Transient(f"did not answer {verb} within {self.timeout} s") from None
            raise _Transient(f"could not be reached ({getattr(reason, 'strerror', None) or reason})") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            if isinstance(exc, TimeoutError):
                raise _Transient(f"did not answer {verb} within {self.timeout} s") from None
            raise _Transient(f"broke off the answer to {verb} ({type(exc).__name__}: {exc})") from None
        if len(raw) > MAX_REPLY_BYTES:
            raise PowerFault(f"{self.where} answered {verb} with more than {MAX_REPLY_BYTES} bytes: not a NETIO "
                             "JSON API; fix: power.url", bench=self.bench)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise PowerFault(f"{self.where} answered {verb} with {raw[:80]!r}, not JSON; fix: power.url must be "
                             "the JSON API document (…/netio.json) and the JSON API enabled", bench=self.bench) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("Outputs"), list):
            raise PowerFault(f"{self.where} answered {verb} without an Outputs list: not a NETIO JSON API; "
                             "fix: power.url", bench=self.bench)
        return doc

    def _http_error(self, exc: urllib.error.HTTPError, verb: str) -> Exception:
        code = exc.code
        if code == 401:
            who = f"user {self.user!r}" if self.user else "no credentials"
            return PowerFault(f"{self.where} refused {who} (HTTP 401 on {verb}); fix: {self.credential_source} "
                              "must be the JSON API's read-write user and its password", bench=self.bench)
        if code == 403:
            return PowerFault(f"{self.where} forbids {verb} for user {self.user!r} (HTTP 403: read-only access); fix: "
                              "enable READ-WRITE for this user in the PDU's JSON API settings", bench=self.bench)
        if code == 400:
            return PowerFault(f"{self.where} rejected {verb} (HTTP 400: it did not accept the command for output "
                              f"{self.channel})", bench=self.bench)
        if 300 <= code < 400:
            return PowerFault(f"{self.where} redirects {verb} to {exc.headers.get('Location')!r} (HTTP {code}); "
                              "fix: write that URL in power.url", bench=self.bench)
        if code == 404:
            return PowerFault(f"{self.where} has no such document (HTTP 404); fix: power.url ends in /netio.json "
                              "and the JSON API is enabled", bench=self.bench)
        return _Transient(f"answered {verb} with HTTP {code} {exc.reason}")

    def _output(self, doc: dict[str, Any]) -> dict[str, Any]:
        for output in doc["Outputs"]:
            if isinstance(output, dict) and output.get("ID") == self.channel:
                return output
        ids = sorted(o.get("ID") for o in doc["Outputs"] if isinstance(o, dict) and isinstance(o.get("ID"), int))
        raise PowerFault(f"{self.where} has no output {self.channel} (its outputs: {ids}); fix: power.channel",
                         bench=self.bench)

    def _set(self, on: bool) -> None:
        self._request({"Outputs": [{"ID": self.channel, "Action": ACTION_ON if on else ACTION_OFF}]})

    def _get(self) -> bool:
        state = self._output(self._request()).get("State")
        if state not in (0, 1):
            raise PowerFault(f"{self.where} reports output {self.channel} in State {state!r}, not 0 or 1",
                             bench=self.bench)
        return state == 1

    def _identify(self) -> str:
        doc = self._request()
        self._output(doc)
        agent = doc.get("Agent") if isinstance(doc.get("Agent"), dict) else {}
        words = [str(agent[k]) for k in ("Model", "DeviceName") if agent.get(k)]
        if agent.get("SerialNumber"):
            words.append(f"serial {agent['SerialNumber']}")
        if agent.get("Version"):
            words.append(f"firmware {agent['Version']}")
        api = f"JSON API {agent['JSONVer']}" if agent.get("JSONVer") else "JSON API"
        return f"{' '.join(words) or 'NETIO PDU'} ({api}, {agent.get('NumOutputs', len(doc['Outputs']))} outputs) at {self.url}"


def _open(config: HttpPduConfig, ctx: PowerContext) -> NetioJsonPower:
    password = ctx.secret(config.password, "power.password") if config.password else None
    ca_file = str(ctx.path(config.ca_file)) if config.ca_file else None
    if ca_file is not None:
        try:
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CertlabError(f"{ctx.source}: bench {ctx.bench!r}, field 'certlab.power.ca_file': {ca_file} is no "
                               f"readable PEM file ({getattr(exc, 'strerror', None) or exc}); fix: give the PDU's CA "
                               "certificate (PEM)") from None
    source = f"power.user and power.password ({config.password.describe()})" if config.password else \
        "power.user and power.password (none set)"
    return NetioJsonPower(config.url, config.channel, user=config.user, password=password, ca_file=ca_file,
                          timeout=config.timeout, retries=config.retries, bench=ctx.bench, steps=ctx.steps,
                          credential_source=source)


HTTP_PDU = PowerBackend(HttpPduConfig, _open, "a network PDU's HTTP API (NETIO JSON)")
