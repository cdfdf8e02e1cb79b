"""A loopback HTTPS server with a throwaway CA, for the tests of lab/web and lab/service.

Routes are a dict path -> handler(request) -> (status, headers, body); the server serves on
127.0.0.1 only, in a daemon thread, and is shut down by the context manager.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    sni: str | None


Handler = Callable[[Request], tuple[int, dict[str, str], bytes]]


@dataclass
class Server:
    port: int
    ca_file: Path
    seen: list[Request] = field(default_factory=list)


def make_pki(folder: Path, names: list[str], *, ca_name: str = "certlab test CA") -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a CA and a server certificate for `names`, valid for a day."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (x509.CertificateBuilder().subject_name(ca_subject).issuer_name(ca_subject)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextmanager
def https_server(folder: Path, routes: dict[str, Handler], names: list[str]) -> Iterator[Server]:
    """Serve `routes` over TLS on 127.0.0.1 with a certificate for `names`; unknown paths 404."""
    ca, cert, key = make_pki(folder, names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sni: dict[int, str | None] = {}

    def remember(sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni[id(sock)] = name

    context.sni_callback = remember
    server_state = Server(port=0, ca_file=ca)

    class _Handler(http.server.BaseHTTPRequestHandler):
        timeout = 5

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Request(self.command, self.path, dict(self.headers.items()), body,
                          sni.get(id(self.connection)))
            server_state.seen.append(req)
            handler = routes.get(self.path.split("?")[0])
            status, headers, payload = handler(req) if handler else (404, {}, b"not found")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=True)
    server_state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
