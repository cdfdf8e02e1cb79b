"""lab.traffic.banner: the line that names an open port in the 5.6-1-2 evidence (loopback services only)."""

from __future__ import annotations

import socket
import threading

import pytest

from lab.traffic.banner import grab_banner, readable


def test_telnet_negotiation_and_terminal_escapes_are_removed() -> None:
    data = b"\xff\xfd\x18\xff\xfa\x18\x01\xff\xf0\x1b[2J\x1b[0;1mTH100-0001 login: \r\n\x00"
    assert readable(data) == "TH100-0001 login:"
    assert readable("caf\u00e9 \u2603\n".encode()) == "caf\u00e9 \u2603"
    assert readable(b"x" * 500) == "x" * 200


@pytest.fixture
def service():
    """A loopback TCP service answering one connection with `script` (what to send, whether to wait for a line)."""
    servers: list[tuple[socket.socket, threading.Thread]] = []

    def start(greeting: bytes, after_line: bytes = b"") -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(5)

        def serve() -> None:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                conn.sendall(greeting)
                if after_line:
                    try:
                        conn.recv(64)
                        conn.sendall(after_line)
                        conn.recv(64)
                    except OSError:
                        pass

        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        servers.append((srv, worker))
        return srv.getsockname()[1]

    yield start
    for srv, worker in servers:
        srv.close()
        worker.join(5)


def test_a_service_that_speaks_first_is_named_by_its_greeting(service) -> None:
    port = service(b"SSH-2.0-dropbear_2022.83\r\n")
    assert grab_banner("127.0.0.1", port, timeout=1.0) == "SSH-2.0-dropbear_2022.83"


def test_a_silent_service_is_nudged_with_an_empty_line(service) -> None:
    port = service(b"", after_line=b"HTTP/1.0 400 Bad Request\r\nServer: vendor-httpd/1.2\r\n\r\n")
    assert grab_banner("127.0.0.1", port, timeout=0.3) == "HTTP/1.0 400 Bad Request Server: vendor-httpd/1.2"


def test_a_closed_port_says_why_there_is_no_banner() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # bound, never listened: the port is closed
    assert grab_banner("127.0.0.1", port, timeout=1.0).startswith("(no banner: ")
