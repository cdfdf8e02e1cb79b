"""The simulated vendor cloud a DUT logs in to and sends telemetry to.

One TCP port serves both plain text and TLS (told apart by the first byte, 0x16 = TLS
handshake), so a DUT with the `cleartext_credentials` flaw and a well-behaved one talk to the
same endpoint and the evidence (cloud.log, packet captures) shows which transport each used.
The log never holds a token or password in full: evidence files are shared with the vendor.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CLOUD_HOSTNAME = "cloud.certlab.test"
WEB_HOSTNAMES = ("sim-devices.certlab.test", "api.sim-devices.certlab.test")  # lab.sim.web, same certificate
_TLS_HANDSHAKE = 0x16
_SECRET_KEY = re.compile(r"token|password|passwd|secret|key", re.IGNORECASE)
_SECRET_TEXT = re.compile(r"(?i)(token|password|passwd|secret)(\"?\s*[:=]\s*\"?)([^\s\"',;&}]+)")


# --- PKI: one CA per lab, one server certificate for the cloud name -------------------------


@dataclass(frozen=True)
class CloudPki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certlab simulated lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_pki(directory: Path, lab: str, ips: list[str]) -> CloudPki:
    """Create the lab CA and the cloud's certificate once; later calls reuse the files (made anew
    when the certificate lacks one of the names it now needs, e.g. the web names)."""
    pki = CloudPki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    if pki.ca_file.exists() and pki.cert_file.exists() and pki.key_file.exists() and _has_names(pki.cert_file):
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"certlab {lab} lab CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in (CLOUD_HOSTNAME, *WEB_HOSTNAMES)]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sorted(set(ips))]
    cert = (x509.CertificateBuilder().subject_name(_name(CLOUD_HOSTNAME)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.touch(mode=0o600)
    pki.key_file.write_bytes(_pem_key(key))
    return pki  # the CA key is not kept: nothing else is ever signed with it


def _has_names(cert_file: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound, OSError):
        return False
    return {CLOUD_HOSTNAME, *WEB_HOSTNAMES} <= set(sans.get_values_for_type(x509.DNSName))


# --- redaction ------------------------------------------------------------------------------


def _mask(value: str) -> str:
    return f"{value[:3]}…({len(value)} chars)" if len(value) >= 8 else "***"


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_mask(v) if isinstance(v, str) and _SECRET_KEY.search(str(k)) else _redact_json(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def redact(line: str) -> str:
    """The line with every token/password value shortened to a recognisable, useless prefix."""
    try:
        return json.dumps(_redact_json(json.loads(line)), ensure_ascii=False)
    except ValueError:
        return _SECRET_TEXT.sub(lambda m: m.group(1) + m.group(2) + _mask(m.group(3)), line)


# --- server ---------------------------------------------------------------------------------


class CloudServer:
    """Threaded line server; `start()` binds (IP_FREEBIND: the bench's link may be down)."""

    def __init__(self, host: str, port: int, pki: CloudPki, log_path: Path, *, idle_timeout: float = 120.0,
                 on_line: Callable[[str], dict[str, Any]] | None = None):
        self._addr = (host, port)
        self._on_line = on_line  # the app service takes each telemetry line; its answer is the reply
        self._log_path = log_path
        self._idle = idle_timeout
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ctx.load_cert_chain(pki.cert_file, pki.key_file)
        self._log_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        assert self._sock is not None, "start() first"
        return self._sock.getsockname()[:2]

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        sock.bind(self._addr)
        sock.listen(16)
        self._sock = sock
        threading.Thread(target=self._accept_loop, name="cloud-accept", daemon=True).start()

    def close(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, peer), name="cloud-conn", daemon=True).start()

    def _log(self, peer: tuple[str, int], transport: str, **fields: Any) -> None:
        entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 "peer": f"{peer[0]}:{peer[1]}", "transport": transport, **fields}
        with self._log_lock, self._log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        transport = "plain"
        try:
            conn.settimeout(self._idle)
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if first[0] == _TLS_HANDSHAKE:
                transport = "tls"
                conn = self._ctx.wrap_socket(conn, server_side=True)
            self._log(peer, transport, event="connect")
            with conn.makefile("rb") as lines:
                for raw in lines:
                    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    if line:
                        self._log(peer, transport, line=redact(line))
                        reply = self._on_line(line) if self._on_line else {"ok": True}
                        conn.sendall((json.dumps(reply, sort_keys=True) + "\n").encode())
        except (OSError, ssl.SSLError) as exc:
            self._log(peer, transport, event="error", error=type(exc).__name__ + ": " + str(exc)[:200])
        finally:
            conn.close()
