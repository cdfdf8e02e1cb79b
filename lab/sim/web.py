"""The bench's one HTTPS server: the manufacturer's site and its app API, told apart by Host.

`sim-devices.certlab.test` gets lab.sim.site's pages, `api.sim-devices.certlab.test` the app
service (lab.sim.appservice) under /v1. Each connection has its own thread, its TLS handshake
done there (a silent client never blocks the others), an idle timeout, and bounded request
bodies. The access log has method, host, path and status only: no bodies, no tokens.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lab.sim import vendor
from lab.sim.appservice import AppService, Response
from lab.sim.cloud import CloudPki
from lab.sim.site import Site

MAX_BODY = 64 * 1024
IDLE_TIMEOUT = 10.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SimDevices/1.0"
    sys_version = ""
    server: WebServer

    def setup(self) -> None:
        self.request.settimeout(IDLE_TIMEOUT)
        super().setup()

    def _host(self) -> str:
        return (self.headers.get("Host") or "").rsplit(":", 1)[0].strip().lower().rstrip(".")

    def _send(self, status: int, body: bytes, content_type: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        host = self._host()
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length else 0
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(413, b'{"error": "send a Content-Length body of at most 64 KiB"}\n', "application/json")
            return
        body = self.rfile.read(size) if size else b""
        if host == vendor.API_HOST:
            path = self.path.split("?", 1)[0]
            if path.startswith(vendor.API_PREFIX + "/"):
                resp = self.server.app.handle(self.command, path[len(vendor.API_PREFIX):], self.headers, body)
            else:
                resp = Response(404, {"error": f"the API is under {vendor.API_PREFIX}/"})
            self._send(resp.status, resp.encoded(), "application/json", resp.headers)
        elif host == vendor.SITE_HOST and self.command in ("GET", "HEAD"):
            page = self.server.site.get(self.path)
            self._send(page.status, page.body, page.content_type,
                       (("Location", page.location),) if page.location else ())
        elif host == vendor.SITE_HOST:
            self._send(405, b"only GET and HEAD\n", "text/plain", (("Allow", "GET, HEAD"),))
        else:
            self._send(421, f"this server does not serve {host!r}\n".encode(), "text/plain")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.access(self.client_address, self.command, self._host(), self.path.split("?", 1)[0], code)


class WebServer(ThreadingHTTPServer):
    """`start()` binds (IP_FREEBIND, like the cloud: the bench's link may be down) and serves in a thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 32

    def __init__(self, host: str, port: int, pki: CloudPki, app: AppService, site: Site, log_path: Path):
        self.app, self.site = app, site
        self._log_path = log_path
        self._log_lock = threading.Lock()
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ctx.load_cert_chain(pki.cert_file, pki.key_file)
        super().__init__((host, port), _Handler, bind_and_activate=False)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: it asks DNS for our name
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def start(self) -> None:
        self.server_bind()
        self.server_activate()
        self._started = True
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.5}, name="web", daemon=True).start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread, bounded by the idle timeout."""
        request.settimeout(IDLE_TIMEOUT)
        try:
            tls = self._ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.access(client_address, "-", "-", "-", f"TLS {type(exc).__name__}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.access(client_address, "-", "-", "-", "error")

    def close(self) -> None:
        if getattr(self, "_started", False):
            self.shutdown()
        self.server_close()

    def access(self, peer: Any, method: str, host: str, path: str, status: Any) -> None:
        entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 "peer": f"{peer[0]}:{peer[1]}", "method": method, "host": host, "path": path, "status": str(status)}
        with self._log_lock, self._log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
