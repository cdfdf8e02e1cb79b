"""Regenerate the small pcaps the lab.traffic unit tests read (run as root: it sniffs on `lo`).

    .venv/bin/python tests/data/make_pcaps.py

Each pcap is a real loopback exchange against the protocol stacks the simulated DUT uses
(paramiko's SSH server with the sim's Ed25519 host key, Python's ssl, a telnet-style login the
lab drives with lab.logins.telnet_login), so the parsers are tested on bytes those stacks
really send. Everything stays on 127.0.0.1; every exchange is bounded in time.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

import paramiko
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scapy.all import AsyncSniffer, wrpcap

from lab.logins import telnet_login
from lab.sim.sshd import BROKEN_ALGORITHMS, generate_host_key_pem, load_host_key

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
USER, PASSWORD, SERIAL = "root", "Secret-Pw-1", "TH100-F005"
TIMEOUT = 10.0


def _listener() -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((HOST, 0))
    srv.listen(1)
    srv.settimeout(TIMEOUT)
    return srv


def _captured(name: str, port: int, exchange) -> None:
    """Run `exchange` while sniffing `lo` for tcp port `port`; write tests/data/<name>.pcap."""
    sniffer = AsyncSniffer(iface="lo", filter=f"tcp port {port}")
    sniffer.start()
    time.sleep(0.5)  # the sniffer's socket is open before the first SYN
    try:
        exchange()
    finally:
        time.sleep(0.5)
        packets = sniffer.stop()
    wrpcap(str(HERE / f"{name}.pcap"), packets)
    print(f"{name}.pcap: {len(packets)} packets, {(HERE / f'{name}.pcap').stat().st_size} bytes")


class _PasswordServer(paramiko.ServerInterface):
    def check_auth_password(self, username: str, password: str) -> int:
        ok = (username, password) == (USER, PASSWORD)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


def ssh_login(name: str, *, weak: bool) -> None:
    """The lab's SSH login: identification lines, KEXINIT both ways, key exchange, password auth.

    The conforming sim disables paramiko's broken algorithms; `weak` keeps them, as the sim's
    `weak_ssh_algorithms` flaw does.
    """
    srv = _listener()
    port = srv.getsockname()[1]
    key = load_host_key(generate_host_key_pem())

    def serve() -> None:
        conn, _ = srv.accept()
        transport = paramiko.Transport(conn, disabled_algorithms={} if weak else BROKEN_ALGORITHMS)
        transport.add_server_key(key)
        transport.start_server(server=_PasswordServer())
        transport.accept(TIMEOUT)
        time.sleep(1.0)
        transport.close()

    def exchange() -> None:
        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(HOST, port, USER, PASSWORD, timeout=TIMEOUT, allow_agent=False, look_for_keys=False)
        client.close()
        worker.join(TIMEOUT)

    _captured(name, port, exchange)
    srv.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "th100.lab.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_handshake(name: str, maximum: ssl.TLSVersion) -> None:
    """A TLS handshake (ClientHello with SNI, ServerHello, certificate) with Python's ssl, up to `maximum`."""
    srv = _listener()
    port = srv.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        server_ctx.maximum_version = maximum

    def serve() -> None:
        conn, _ = srv.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(64)

    def exchange() -> None:
        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection((HOST, port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="th100.lab.test") as tls:
                tls.sendall(b"bye")
        worker.join(TIMEOUT)

    _captured(name, port, exchange)
    srv.close()


def telnet_clear_login() -> None:
    """A clear-text login (user, password, shell prompt) driven by lab.logins.telnet_login."""
    srv = _listener()
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        conn.settimeout(TIMEOUT)
        with conn:
            conn.sendall(f"{SERIAL} login: ".encode())
            conn.recv(256)
            conn.sendall(b"Password: ")
            got = conn.recv(256)
            conn.sendall(b"\r\n# " if PASSWORD.encode() in got else b"\r\nLogin incorrect\r\n")
            conn.recv(256)

    def exchange() -> None:
        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        ex = telnet_login(HOST, port, USER, PASSWORD, login_prompt=r"login: $", password_prompt=r"Password: $",
                          shell_prompt=r"# $", timeout=TIMEOUT)
        assert ex.outcome == "accepted", ex
        worker.join(TIMEOUT)

    _captured("telnet_login", port, exchange)
    srv.close()


if __name__ == "__main__":
    ssh_login("ssh_login", weak=False)
    ssh_login("ssh_weak_algorithms", weak=True)
    tls_handshake("tls13_handshake", ssl.TLSVersion.TLSv1_3)
    tls_handshake("tls12_handshake", ssl.TLSVersion.TLSv1_2)
    telnet_clear_login()
