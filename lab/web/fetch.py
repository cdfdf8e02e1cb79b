"""The one HTTP layer of certlab for manufacturer sites and services (stdlib http.client + ssl).

No cookies, no authentication of its own, no proxy: what an anonymous visitor gets. Every request
goes only to a host the IXIT names (the allowlist of an `HttpTarget`), over the inventory's
`connect_to` mapping (SNI and Host stay the URL's host), trusting the inventory's `ca_file` or the
system store, bounded in time (each exchange within `timeout`), size (`max_bytes`) and redirects.

Outcomes map onto verdicts here, once, for every caller:
- a network-level failure (name resolution, connect) is the lab's fault unless the inventory's
  `path_check` URL answers (lab/web/path.py), then it is the product's: LabFault or DutError;
- a TLS error, a redirect loop or chain too long, an oversized body, no answer within the timeout
  after connecting: DutError naming the URL;
- a host outside the allowlist: CertlabError (the lab contacts only the hosts the IXIT names);
- an HTTP status is returned, never judged: the caller knows which statuses the IXIT promises.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

from lab.errors import CertlabError, DutError

if TYPE_CHECKING:
    from lab.bench import Bench
    from lab.inventory import HttpResource

REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "certlab (ETSI EN 303 645 test lab; anonymous visitor)"
CHUNK = 65536


class NetworkFailure(Exception):
    """Name resolution or connection failed before any byte was exchanged (lab/web/path.py decides
    whether that is the lab's path or the product's site)."""

    def __init__(self, url: str, cause: str):
        super().__init__(f"{url}: {cause}")
        self.url = url
        self.cause = cause


@dataclass(frozen=True)
class HttpTarget:
    """How to reach the hosts one IXIT names, from one bench's `HttpResource`."""

    allowed_hosts: frozenset[str]
    hosts_field: str  # the IXIT field that names the hosts, for the "not allowed" message
    connect_to: Mapping[str, str] = field(default_factory=dict)  # "host:port" -> "address:port"
    ca_file: Path | None = None
    timeout: float = 10.0
    max_redirects: int = 5
    max_bytes: int = 2048 * 1024
    path_check: str | None = None
    bench: str | None = None

    @classmethod
    def from_resource(cls, resource: "HttpResource", urls: Iterable[str | None], *, hosts_field: str,
                      ca_file: Path | None = None, bench: str | None = None) -> "HttpTarget":
        """`urls`: the IXIT's URLs (None skipped); `ca_file`: the resource's, already resolved."""
        max_kib = getattr(resource, "max_page_kib", 2048)
        return cls(allowed_hosts=hosts_of(urls), hosts_field=hosts_field, connect_to=dict(resource.connect_to),
                   ca_file=ca_file, timeout=float(resource.timeout), max_redirects=resource.max_redirects,
                   max_bytes=max_kib * 1024, path_check=resource.path_check, bench=bench)

    def check_allowed(self, url: str) -> None:
        host = _host(url)
        if host not in self.allowed_hosts:
            raise CertlabError(
                f"{url}: the lab contacts only the hosts the IXIT names ({', '.join(sorted(self.allowed_hosts)) or 'none'}) "
                f"and {host} is not among them; if the manufacturer really serves this there, name a URL on "
                f"{host} in the IXIT ({self.hosts_field})"
            )


def bench_target(bench: "Bench", kind: Literal["web", "service"], urls: Iterable[str | None], *,
                 hosts_field: str) -> HttpTarget:
    """The bench's `web` or `service` resource as a target allowed to reach the hosts of `urls` (the IXIT's)."""
    resource = getattr(bench.config, kind)
    if resource is None:
        raise CertlabError(f"the inventory declares no `{kind}` resource for bench {bench.name}: add {kind}: "
                           "{connect_to: ..., ca_file: ...} to it, or " + kind + ": {} for DNS and the system's "
                           "trust store (docs/associated-services.md)")
    ca_file = bench.inventory.resolve_path(resource.ca_file) if resource.ca_file else None
    return HttpTarget.from_resource(resource, urls, hosts_field=hosts_field, ca_file=ca_file, bench=bench.name)


def web_target(bench: "Bench", urls: Iterable[str | None], *, hosts_field: str) -> HttpTarget:
    """The bench's `web` resource as a target allowed to reach the hosts of `urls` (the IXIT's)."""
    return bench_target(bench, "web", urls, hosts_field=hosts_field)


def hosts_of(urls: Iterable[str | None]) -> frozenset[str]:
    """The lower-case host names of the http(s) URLs among `urls`."""
    hosts = set()
    for url in urls:
        if url and urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname:
            hosts.add(urlsplit(url).hostname.lower())
    return frozenset(hosts)


@dataclass(frozen=True)
class Hop:
    url: str
    status: int
    location: str | None


@dataclass(frozen=True)
class Page:
    """One page as fetched: the chain of redirects, the final answer and its body."""

    url: str  # as asked
    final_url: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    fetched_at: str  # ISO-8601 UTC, when the final answer came
    hops: tuple[Hop, ...] = ()  # the redirects followed, in order

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def header(self, name: str) -> str | None:
        return header_of(self.headers, name)

    @property
    def text(self) -> str:
        """The body decoded with the charset of its Content-Type (UTF-8 otherwise), never raising."""
        ctype = self.header("Content-Type") or ""
        charset = "utf-8"
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def record(self) -> dict[str, Any]:
        """What the evidence keeps beside the body file."""
        return {"url": self.url, "final_url": self.final_url, "status": self.status, "reason": self.reason,
                "fetched_at": self.fetched_at, "sha256": self.sha256, "bytes": len(self.body),
                "headers": [list(h) for h in self.headers],
                "redirects": [{"url": h.url, "status": h.status, "location": h.location} for h in self.hops]}


@dataclass(frozen=True)
class JsonResponse:
    """One API exchange: status, headers, raw body and its JSON (None with `json_error` when not JSON)."""

    method: str
    url: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    data: Any
    json_error: str | None
    at: str  # ISO-8601 UTC, when the answer came
    seconds: float

    def header(self, name: str) -> str | None:
        return header_of(self.headers, name)


def header_of(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` (any case) among `headers`, else None."""
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


@dataclass(frozen=True)
class _Raw:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    at: str


def _host(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CertlabError(f"{url!r} is not an http(s) URL")
    return parts.hostname.lower()


class _Connection(http.client.HTTPSConnection):
    """HTTPS (or plain HTTP when `context` is None) to `address`, with SNI and Host from the URL."""

    def __init__(self, host: str, port: int, address: tuple[str, int], context: ssl.SSLContext | None,
                 timeout: float):
        super().__init__(host, port, timeout=timeout, context=context or ssl.create_default_context())
        self._address = address
        self._tls = context is not None
        self.default_port = 443 if self._tls else 80  # Host carries the port only when it is not the default

    def connect(self) -> None:
        self.sock = socket.create_connection(self._address, self.timeout)
        if self._tls:
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def _context(target: HttpTarget) -> ssl.SSLContext:
    if target.ca_file is None:
        return ssl.create_default_context()
    if not target.ca_file.is_file():
        raise CertlabError(f"{target.ca_file}: the bench's ca_file does not exist; fix `ca_file` in the inventory "
                           "(or remove it to trust the system store)")
    try:
        return ssl.create_default_context(cafile=str(target.ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise CertlabError(f"{target.ca_file}: the bench's ca_file is not a PEM bundle ({exc}); fix `ca_file` "
                           "in the inventory") from None


def _address(target: HttpTarget, host: str, port: int, url: str) -> tuple[str, int]:
    mapped = {k.lower(): v for k, v in target.connect_to.items()}.get(f"{host}:{port}")
    if mapped:
        address, _, mport = mapped.rpartition(":")
        return address, int(mport)
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkFailure(url, f"the name {host} does not resolve ({exc})") from None
    return info[0][4][0], port


def _exchange(target: HttpTarget, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
              deadline: float) -> _Raw:
    """One request and its whole answer, within `deadline` (time.monotonic) and `max_bytes`."""
    target.check_allowed(url)
    parts = urlsplit(url)
    host = parts.hostname.lower()
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    address = _address(target, host, port, url)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DutError(f"{url}: no complete answer within {target.timeout:g} s")
    conn = _Connection(host, port, address, _context(target) if tls else None, min(target.timeout, remaining))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            raise DutError(f"{url}: the TLS certificate of {host} is not valid for it ({exc.verify_message})") from None
        except ssl.SSLError as exc:
            raise DutError(f"{url}: the TLS handshake with {host} failed ({exc.reason or exc})") from None
        except (TimeoutError, socket.timeout):
            raise NetworkFailure(url, f"no connection to {address[0]}:{address[1]} within {target.timeout:g} s") from None
        except OSError as exc:
            raise NetworkFailure(url, f"cannot connect to {address[0]}:{address[1]} ({exc.strerror or exc})") from None
        sock = conn.sock  # http.client drops it from `conn` once the answer says Connection: close
        try:
            all_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > target.max_bytes:
                raise DutError(f"{url}: the answer is {int(length)} bytes, more than the bench's limit of "
                               f"{target.max_bytes // 1024} KiB (web.max_page_kib)")
            chunks: list[bytes] = []
            size = 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DutError(f"{url}: the answer did not complete within {target.timeout:g} s")
                sock.settimeout(min(target.timeout, left))
                chunk = resp.read1(CHUNK) if hasattr(resp, "read1") else resp.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > target.max_bytes:
                    raise DutError(f"{url}: the answer is more than the bench's limit of "
                                   f"{target.max_bytes // 1024} KiB (web.max_page_kib)")
                chunks.append(chunk)
        except (TimeoutError, socket.timeout):
            raise DutError(f"{url}: {host} accepted the connection but did not answer within "
                           f"{target.timeout:g} s") from None
        except ssl.SSLError as exc:
            raise DutError(f"{url}: TLS error with {host} ({exc.reason or exc})") from None
        except (http.client.HTTPException, OSError) as exc:
            raise DutError(f"{url}: {host} broke the HTTP exchange ({type(exc).__name__}: {exc})") from None
        return _Raw(resp.status, resp.reason, tuple(resp.getheaders()), b"".join(chunks),
                    datetime.now(timezone.utc).isoformat(timespec="seconds"))
    finally:
        conn.close()


def _with_path_check(target: HttpTarget, failure: NetworkFailure) -> Exception:
    from lab.web.path import judge_network_failure  # path.py fetches through this module

    return judge_network_failure(target, failure)


def fetch(target: HttpTarget, url: str) -> Page:
    """GET `url` as an anonymous visitor, following redirects within the target's bounds.

    Each exchange must complete within `timeout` seconds, so the whole chain within
    `timeout * (max_redirects + 1)`. Returns the final answer whatever its status.
    """
    hops: list[Hop] = []
    seen = {url}
    current = url
    try:
        while True:
            raw = _exchange(target, "GET", current, {"Accept": "text/html, text/plain;q=0.9, */*;q=0.5"}, None,
                            time.monotonic() + target.timeout)
            location = dict((k.lower(), v) for k, v in raw.headers).get("location")
            if raw.status not in REDIRECTS or not location:
                return Page(url, current, raw.status, raw.reason, raw.headers, raw.body, raw.at, tuple(hops))
            hops.append(Hop(current, raw.status, location))
            following = urljoin(current, location)
            if urlsplit(following).scheme not in ("http", "https"):
                raise DutError(f"{url}: {current} redirects to {location!r}, not a web page")
            if following in seen:
                raise DutError(f"{url}: redirect loop ({' -> '.join(h.url for h in hops)} -> {following})")
            if len(hops) > target.max_redirects:
                raise DutError(f"{url}: more than {target.max_redirects} redirects (the bench's max_redirects), "
                               f"last to {following}")
            seen.add(following)
            current = following
    except NetworkFailure as failure:
        raise _with_path_check(target, failure) from None


def request_json(target: HttpTarget, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                 body: Any = None) -> JsonResponse:
    """One JSON API request (no redirect followed): `body` (if not None) is sent as JSON.

    The same allowlist, connect_to, CA, timeout and size bounds as `fetch`; the status is
    returned, never judged. The caller keeps the evidence (and masks its secrets).
    """
    sent = {"Accept": "application/json", **(headers or {})}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    start = time.monotonic()
    try:
        raw = _exchange(target, method.upper(), url, sent, payload, start + target.timeout)
    except NetworkFailure as failure:
        raise _with_path_check(target, failure) from None
    data, error = None, None
    if raw.body:
        try:
            data = json.loads(raw.body)
        except ValueError as exc:
            error = f"not JSON: {exc}"
    return JsonResponse(method.upper(), url, raw.status, raw.reason, raw.headers, raw.body, data, error, raw.at,
                        round(time.monotonic() - start, 3))
