"""A man-in-the-middle on the lab's gateway: the DUT's outgoing TLS answered with an untrusted certificate.

A device that authenticates its peer aborts such a handshake (an alert, or a close); one that
completes it and sends application data would hand its data to anyone on the path. The lab PC
is the DUT's gateway on the bench network, so it can redirect the DUT's connections to a
documented port to a listener of its own (nftables: one table per bench interface, matching
only packets that come in on that interface from the DUT's address; removed when the block
ends, whatever happens). The listener presents a certificate for the documented server name,
signed by a CA made for this interception alone (never trusted by anything).

Nothing the DUT sends through the interception is kept: only how many bytes came, never what.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import NetworkFault

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h: the destination before the redirect
SIOCGIFADDR = 0x8915
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$")
_TLS_HANDSHAKE = 0x16


@dataclass
class Interception:
    """One connection of the DUT that the lab answered in the middle."""

    port: int  # the port the DUT connected to (before the redirect)
    client: str
    outcome: str = "pending"  # refused | accepted | closed_after_handshake | silent_after_handshake | not_tls | no_hello
    detail: str = ""
    tls_version: str | None = None
    app_bytes: int = 0  # application data the DUT sent after the handshake (count only)
    seconds: float = 0.0  # from accept to outcome

    def as_dict(self) -> dict:
        return {"port": self.port, "client": self.client, "outcome": self.outcome, "detail": self.detail,
                "tls_version": self.tls_version, "app_bytes": self.app_bytes, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class LabCertificate:
    """The certificate the interception presents, and the untrusted CA that signed it (PEM)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    server_names: tuple[str, ...]


def lab_certificate(server_names: list[str], *, organisation: str = "certlab interception CA (untrusted)") -> LabCertificate:
    """A fresh CA and a server certificate for `server_names` (host names; others are left out)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = tuple(dict.fromkeys(n for n in server_names if _HOSTNAME.match(n)))
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                         x509.NameAttribute(NameOID.COMMON_NAME, "certlab interception CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "certlab-interception")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return LabCertificate(ca.public_bytes(pem), cert.public_bytes(pem),
                          key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
                          names)


def interface_address(interface: str) -> str:
    """The IPv4 address the lab PC has on `interface` (where redirected connections arrive)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            raw = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError as exc:
            raise NetworkFault(f"the lab PC has no IPv4 address on {interface} ({exc}); the interception needs the "
                               "lab PC to be the DUT's gateway on that interface") from None
    return socket.inet_ntoa(raw[20:24])


def nft_table(interface: str) -> str:
    return "certlab_mitm_" + re.sub(r"[^A-Za-z0-9_]", "_", interface)


def nft_ruleset(table: str, interface: str, dut: str, redirects: dict[int, int]) -> str:
    """The nftables table that sends the DUT's connections to each documented port to the lab's listener."""
    ipaddress.IPv4Address(dut)
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", interface):
        raise NetworkFault(f"interface name {interface!r} cannot be used in a redirect rule")
    rules = "".join(f'    iifname "{interface}" ip saddr {dut} tcp dport {port} redirect to :{to}\n'
                    for port, to in sorted(redirects.items()))
    return (f"table ip {table} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n"
            f"{rules}  }}\n}}\n")


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, timeout=10)


class _Listener:
    """Accepts the redirected connections and plays the TLS server with the lab's certificate."""

    def __init__(self, address: str, ctx: ssl.SSLContext, deadline: float) -> None:
        self.deadline = deadline
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.results: list[Interception] = []
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept_loop, name="mitm-accept", daemon=True)
        self._accepter.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set() and len(self._threads) < 64:
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn, peer), name="mitm-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        start = time.monotonic()
        try:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port = struct.unpack("!H", raw[2:4])[0]
        except OSError:
            port = 0
        item = Interception(port=port, client=f"{peer[0]}:{peer[1]}")
        try:
            conn.settimeout(max(0.1, self.deadline - time.monotonic()))
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                item.outcome, item.detail = "refused", "closed the connection before sending a ClientHello"
            elif first[0] != _TLS_HANDSHAKE:
                item.outcome, item.detail = "not_tls", f"first byte 0x{first[0]:02x} is not a TLS handshake record"
            else:
                self._handshake(conn, item)
        except (TimeoutError, socket.timeout):
            item.outcome, item.detail = "no_hello", "connected but sent nothing before the interception window ended"
        except OSError as exc:
            item.outcome, item.detail = "refused", f"connection ended: {type(exc).__name__}: {exc}"
        finally:
            item.seconds = time.monotonic() - start
            with contextlib.suppress(OSError):
                conn.close()
            with self.changed:
                self.results.append(item)
                self.changed.notify_all()

    def _handshake(self, conn: socket.socket, item: Interception) -> None:
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except ssl.SSLError as exc:
            item.outcome, item.detail = "refused", f"handshake aborted by the DUT: {exc.reason or exc}"
            return
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
            item.outcome, item.detail = "refused", f"the DUT reset the connection during the handshake ({exc})"
            return
        item.tls_version = tls.version()
        try:
            data = tls.recv(4096)
        except (TimeoutError, socket.timeout):
            item.outcome = "silent_after_handshake"
            item.detail = "completed the handshake, then neither sent data nor closed before the window ended"
            return
        except (ssl.SSLError, OSError) as exc:
            item.outcome, item.detail = "closed_after_handshake", f"completed the handshake, then ended it: {exc}"
            return
        if data:
            item.outcome, item.app_bytes = "accepted", len(data)
            item.detail = f"completed the handshake ({item.tls_version}) and sent {len(data)} bytes of application data"
        else:
            item.outcome, item.detail = "closed_after_handshake", "completed the handshake, then closed without data"
        with contextlib.suppress(OSError, ssl.SSLError):
            tls.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        self._accepter.join(timeout=1.0)
        for t in list(self._threads):
            t.join(timeout=max(0.0, self.deadline - time.monotonic()) + 1.0)


@dataclass
class TlsInterception:
    """A running interception: `wait_for(ports)` until each port has a judged connection or the window ends."""

    listener_address: str
    listener_port: int
    certificate: LabCertificate
    rules: str
    deadline: float
    _listener: _Listener = field(repr=False)

    @property
    def results(self) -> list[Interception]:
        with self._listener.changed:
            return list(self._listener.results)

    def wait_for(self, ports: set[int]) -> list[Interception]:
        """Block until every port in `ports` has one connection with an outcome, or the window's end."""
        with self._listener.changed:
            while True:
                done = {r.port for r in self._listener.results if r.outcome != "pending"}
                left = self.deadline - time.monotonic()
                if ports <= done or left <= 0:
                    return list(self._listener.results)
                self._listener.changed.wait(timeout=min(left, 1.0))


@contextlib.contextmanager
def intercept_tls(interface: str, dut: str, ports: list[int], server_names: list[str], *,
                  window_s: float) -> Iterator[TlsInterception]:
    """Redirect the DUT's new connections to `ports` to the lab's TLS listener for at most `window_s`.

    The rule is removed when the block ends (and a leftover table of an earlier crash is
    replaced first), so the bench is never left intercepted.
    """
    if shutil.which("nft") is None:
        raise NetworkFault("the `nft` command (nftables) is missing on the lab PC; install nftables "
                           "(system-packages.txt) so the lab can intercept the DUT's connections")
    address = interface_address(interface)
    cert = lab_certificate(server_names)
    deadline = time.monotonic() + window_s
    with tempfile.TemporaryDirectory(prefix="certlab-mitm-") as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(cert.cert_pem + cert.ca_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(cert.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        listener = _Listener(address, ctx, deadline)
        table = nft_table(interface)
        rules = nft_ruleset(table, interface, dut, {p: listener.port for p in ports})
        try:
            _nft(["delete", "table", "ip", table])  # a leftover of a crashed run; absent is fine
            done = _nft(["-f", "-"], stdin=rules)
            if done.returncode != 0:
                raise NetworkFault(f"the redirect rule for the interception could not be installed: "
                                   f"{done.stderr.strip()[:300]}")
            yield TlsInterception(address, listener.port, cert, rules, deadline, listener)
        finally:
            removed = _nft(["delete", "table", "ip", table])
            listener.close()
            if removed.returncode != 0 and "No such file" not in removed.stderr:
                raise NetworkFault(f"the interception's redirect table {table} could not be removed: "
                                   f"{removed.stderr.strip()[:300]}; remove it with `nft delete table ip {table}`")
