"""The lab's clear-text logins (telnet, HTTP basic, FTP) against tiny loopback servers.

Each client must log in as a person would, refuse every telnet option, tell accepted from
rejected, keep the password out of its transcript and stay bounded when the peer says nothing.
"""

from __future__ import annotations

import base64

from loopback import serve_once
from lab.logins import DO, IAC, WILL, clear_login_kind, ftp_login, http_basic_login, strip_telnet, telnet_login

USER, PASSWORD = "root", "Sx7k-Qp2L-9mZt"
PROMPTS = dict(login_prompt=r"login:\s*$", password_prompt=r"Password:\s*$", shell_prompt=r"# $")


def read_line(conn) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.strip()


def telnet_server(conn):
    conn.sendall(bytes([IAC, WILL, 1, IAC, DO, 24]) + b"dut login: ")
    user = strip_telnet(read_line(conn))[0]
    conn.sendall(b"Password: ")
    password = read_line(conn)
    if user == USER.encode() and password.endswith(PASSWORD.encode()):
        conn.sendall(b"\r\nroot@dut:~# ")
        read_line(conn)
    else:
        conn.sendall(b"\r\nLogin incorrect\r\ndut login: ")


def test_strip_telnet_refuses_every_option():
    text, answer = strip_telnet(bytes([IAC, WILL, 1, IAC, DO, 31]) + b"login: " + bytes([IAC, IAC]))
    assert text == b"login: \xff"
    assert answer == bytes([IAC, 254, 1, IAC, 252, 31])


def test_telnet_login_accepted_and_password_masked():
    ex = telnet_login("127.0.0.1", serve_once(telnet_server), USER, PASSWORD, **PROMPTS, timeout=3)
    assert ex.outcome == "accepted", ex.as_dict()
    assert PASSWORD not in "\n".join(ex.transcript) and "> ********" in ex.transcript


def test_telnet_login_rejected():
    ex = telnet_login("127.0.0.1", serve_once(telnet_server), USER, "wrong", **PROMPTS, timeout=3)
    assert ex.outcome == "rejected"


def test_a_silent_peer_is_no_login_within_the_timeout():
    ex = telnet_login("127.0.0.1", serve_once(lambda c: c.recv(10)), USER, PASSWORD, **PROMPTS, timeout=1)
    assert ex.outcome == "no-login" and ex.seconds < 3


def test_http_basic_login():
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def handler(conn):
        request = conn.recv(4096).decode()
        if f"Basic {token}" in request:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        else:
            conn.sendall(b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="dut"\r\nContent-Length: 0\r\n\r\n')

    ex = http_basic_login("127.0.0.1", serve_once(handler, connections=2), USER, PASSWORD, timeout=3)
    assert ex.outcome == "accepted", ex.as_dict()
    assert token not in "\n".join(ex.transcript)
    wrong = http_basic_login("127.0.0.1", serve_once(handler, connections=2), USER, "nope", timeout=3)
    assert wrong.outcome == "rejected"


def test_ftp_login():
    def handler(conn):
        conn.sendall(b"220 dut FTP\r\n")
        assert read_line(conn) == f"USER {USER}".encode()
        conn.sendall(b"331 Password required\r\n")
        ok = read_line(conn) == f"PASS {PASSWORD}".encode()
        conn.sendall(b"230 Logged in\r\n" if ok else b"530 Login incorrect\r\n")
        read_line(conn)

    ex = ftp_login("127.0.0.1", serve_once(handler), USER, PASSWORD, timeout=3)
    assert ex.outcome == "accepted", ex.as_dict()
    assert "> PASS ********" in ex.transcript


def test_clear_login_kind():
    assert clear_login_kind("Telnet") == "telnet"
    assert clear_login_kind("HTTP/1.1") == "http-basic"
    assert clear_login_kind("HTTPS") is None
    assert clear_login_kind("FTP") == "ftp" and clear_login_kind("SFTP") is None
    assert clear_login_kind("SSH 2") is None
