"""The lab's own login on an interface that carries credentials in clear text (telnet, HTTP basic, FTP).

A documented login that sends the password unencrypted is a finding for the communication test
cases (5.5-1-2, 5.5-6-2, 5.5-7-2): the lab logs in with the credentials the inventory holds for
the account the IXIT names (never guessed), while the capture runs, and keeps a transcript of
the exchange with the password masked. Every read is bounded in bytes and time; traffic goes
only to the DUT address the caller gives.
"""

from __future__ import annotations

import base64
import re
import socket
import time
from dataclasses import dataclass, field

MAX_READ = 64 * 1024  # bytes one exchange may receive
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
MASK = "********"


@dataclass
class LoginExchange:
    protocol: str  # "telnet", "http-basic" or "ftp"
    address: str
    port: int
    user: str
    outcome: str  # "accepted", "rejected", "no-login" (no login asked for) or "unreachable"
    detail: str = ""
    seconds: float = 0.0
    transcript: list[str] = field(default_factory=list)  # "> sent" / "< received", password masked

    def as_dict(self) -> dict:
        return {"protocol": self.protocol, "port": self.port, "user": self.user, "outcome": self.outcome,
                "detail": self.detail, "seconds": round(self.seconds, 3), "transcript": self.transcript}


def strip_telnet(data: bytes) -> tuple[bytes, bytes]:
    """(text, answer): the data without telnet commands, and our refusals of every option offered.

    The lab negotiates nothing: WILL x -> DONT x, DO x -> WONT x; subnegotiations are dropped.
    """
    text, answer = bytearray(), bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b != IAC:
            text.append(b)
            i += 1
            continue
        if i + 1 >= n:
            break
        cmd = data[i + 1]
        if cmd == IAC:
            text.append(IAC)
            i += 2
        elif cmd in (WILL, WONT, DO, DONT):
            if i + 2 < n and cmd in (WILL, DO):
                answer += bytes([IAC, DONT if cmd == WILL else WONT, data[i + 2]])
            i += 3
        elif cmd == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            i = n if end < 0 else end + 2
        else:
            i += 2
    return bytes(text), bytes(answer)


def _mask(text: str, secret: str) -> str:
    return text.replace(secret, MASK) if secret else text


class _Conn:
    """One TCP connection with bounded reads and a masked transcript."""

    def __init__(self, address: str, port: int, timeout: float, secret: str, transcript: list[str], *, telnet: bool):
        self.sock = socket.create_connection((address, port), timeout=timeout)
        self.timeout, self.secret, self.transcript, self.telnet = timeout, secret, transcript, telnet
        self.buffer = ""
        self.received = 0

    def send(self, text: str, *, shown: str | None = None) -> None:
        self.sock.sendall(text.encode("utf-8"))
        self.transcript.append("> " + (shown if shown is not None else _mask(text, self.secret)).rstrip("\r\n"))

    def wait_for(self, patterns: list[str], timeout: float | None = None) -> int | None:
        """Index of the first pattern found in what arrives (searching the text since the last match)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        regexes = [re.compile(p) for p in patterns]
        while True:
            for index, rx in enumerate(regexes):
                m = rx.search(self.buffer)
                if m:
                    self.buffer = self.buffer[m.end():]
                    return index
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.received >= MAX_READ:
                return None
            self.sock.settimeout(min(remaining, 1.0))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                return None
            self.received += len(data)
            if self.telnet:
                data, answer = strip_telnet(data)
                if answer:
                    self.sock.sendall(answer)
            text = data.decode("utf-8", "replace")
            self.transcript.append("< " + _mask(text, self.secret).rstrip("\r\n"))
            self.buffer += text

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def telnet_login(address: str, port: int, user: str, password: str, *, login_prompt: str, password_prompt: str,
                 shell_prompt: str, login_incorrect: str = r"(?i)incorrect", timeout: float = 10.0) -> LoginExchange:
    """Log in over telnet as a person would: the login prompt, the user, the password prompt, the password.

    The prompts are the product's (inventory); accepted = its shell prompt, rejected = its
    login-incorrect message or the login prompt again. Ends with `exit`.
    """
    ex = LoginExchange("telnet", address, port, user, "unreachable")
    start = time.monotonic()
    try:
        conn = _Conn(address, port, timeout, password, ex.transcript, telnet=True)
    except OSError as exc:
        ex.detail = f"TCP connect failed: {exc}"
        return ex
    try:
        if conn.wait_for([login_prompt]) is None:
            ex.outcome, ex.detail = "no-login", f"no login prompt matching {login_prompt!r}"
            return ex
        conn.send(user + "\r\n")
        if conn.wait_for([password_prompt]) is None:
            ex.outcome, ex.detail = "no-login", f"no password prompt matching {password_prompt!r} after the user name"
            return ex
        conn.send(password + "\r\n", shown=MASK)
        got = conn.wait_for([shell_prompt, login_incorrect, login_prompt])
        if got == 0:
            ex.outcome, ex.detail = "accepted", "the shell prompt followed the password"
            conn.send("exit\r\n")
        else:
            ex.outcome = "rejected"
            ex.detail = "no shell prompt after the password" if got is None else "the login was refused"
    except OSError as exc:
        ex.outcome, ex.detail = ("rejected" if ex.transcript else "unreachable"), f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
        ex.seconds = time.monotonic() - start
    return ex


def http_basic_login(address: str, port: int, user: str, password: str, *, path: str = "/",
                     timeout: float = 10.0) -> LoginExchange:
    """GET `path` over plain HTTP: a 401 with `WWW-Authenticate: Basic`, then again with the credentials."""
    ex = LoginExchange("http-basic", address, port, user, "unreachable")
    start = time.monotonic()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(auth: bool) -> int | None:
        conn = _Conn(address, port, timeout, token, ex.transcript, telnet=False)
        try:
            head = f"GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n"
            conn.send(head + (f"Authorization: Basic {token}\r\n" if auth else "") + "\r\n")
            if conn.wait_for([r"\r\n\r\n"]) is None:
                return None
            status = re.findall(r"HTTP/1\.[01] (\d{3})", "\n".join(ex.transcript))
            if not auth and not re.search(r"(?im)^WWW-Authenticate:\s*Basic", "\n".join(ex.transcript)):
                return -1
            return int(status[-1]) if status else None
        finally:
            conn.close()

    try:
        first = request(False)
        if first != 401:
            ex.outcome, ex.detail = "no-login", f"no 401 with WWW-Authenticate: Basic (got {first})"
            return ex
        second = request(True)
        ex.outcome = "accepted" if second is not None and 200 <= second < 400 else "rejected"
        ex.detail = f"HTTP {second} with the credentials"
    except OSError as exc:
        ex.detail = f"{type(exc).__name__}: {exc}"
    finally:
        ex.seconds = time.monotonic() - start
    return ex


def ftp_login(address: str, port: int, user: str, password: str, *, timeout: float = 10.0) -> LoginExchange:
    """USER and PASS on the FTP control connection: 230 accepted, 530 rejected. Ends with QUIT."""
    ex = LoginExchange("ftp", address, port, user, "unreachable")
    start = time.monotonic()
    try:
        conn = _Conn(address, port, timeout, password, ex.transcript, telnet=False)
    except OSError as exc:
        ex.detail = f"TCP connect failed: {exc}"
        return ex
    try:
        if conn.wait_for([r"(?m)^220[ -]"]) is None:
            ex.outcome, ex.detail = "no-login", "no 220 greeting"
            return ex
        conn.send(f"USER {user}\r\n")
        got = conn.wait_for([r"(?m)^331 ", r"(?m)^230 ", r"(?m)^[45]\d\d "])
        if got == 0:
            conn.send(f"PASS {password}\r\n", shown=f"PASS {MASK}")
            got = conn.wait_for([r"(?m)^230 ", r"(?m)^[45]\d\d "])
            ex.outcome = "accepted" if got == 0 else "rejected"
        else:
            ex.outcome = "accepted" if got == 1 else "no-login"
        ex.detail = "230 after USER/PASS" if ex.outcome == "accepted" else "no 230 after USER/PASS"
        conn.send("QUIT\r\n")
    except OSError as exc:
        ex.detail = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
        ex.seconds = time.monotonic() - start
    return ex


def clear_login_kind(protocol: str) -> str | None:
    """Which clear-text login the lab drives for an 11-ComMech/15-Intf protocol name, or None."""
    p = protocol.lower()
    if "telnet" in p:
        return "telnet"
    if "ftp" in p and "sftp" not in p and "ftps" not in p:
        return "ftp"
    if p.startswith("http") and not p.startswith("https"):
        return "http-basic"
    return None
