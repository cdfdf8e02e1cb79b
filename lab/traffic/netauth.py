"""5.5-4-2 / 5.5-5-2: what a network service lets a client do without (right) credentials.

Which services to try comes from the survey (open ports) and the IXIT (15-Intf network
interfaces, 28-ExtAPI, 13-SoftServ `allows_configuration` with its `interfaces`); how to try
them from the protocol: SSH (authentication method `none`, an empty and a wrong password, then
the right one), a telnet-style login (the product's prompts from the inventory), and for an
unknown listener whether the product's version command answers without any login. The
probes talk to the DUT's address only and are bounded in time; the judgements are pure.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import dataclass, field

import paramiko

from lab.errors import CertlabError
from lab.ixit import Ixit

ATTEMPTS = ("none", "empty", "wrong")  # without credentials, with wrong ones
MAX_READ = 8192


@dataclass(frozen=True)
class AuthTarget:
    """One network service to try: where, what the IXIT says about it."""

    transport: str
    port: int
    protocol: str  # as the IXIT names it, lower case; "" for an undocumented listener
    source: str  # "15-Intf ssh", "28-ExtAPI ssh-api", "undocumented"
    authentication: tuple[str, ...]  # 1-AuthMech ids; () = documented as unauthenticated

    @property
    def where(self) -> str:
        return f"{self.transport}/{self.port}"

    @property
    def declared_open(self) -> bool:
        """The IXIT documents the service as intentionally reachable without authentication."""
        return self.source != "undocumented" and not self.authentication


def kind_of(protocol: str, banner: str) -> str:
    """How the lab can talk to it: "ssh", "telnet" or "raw" (an unknown line service)."""
    p = protocol.lower()
    if p.startswith("ssh") or banner.startswith("SSH-"):
        return "ssh"
    if "telnet" in p:
        return "telnet"
    return "raw"


def auth_targets(ixit: Ixit, found: list[tuple[str, int]]) -> list[AuthTarget]:
    """Every open port, with what 15-Intf / 28-ExtAPI document about it (documented ports not open are not targets)."""
    docs: dict[tuple[str, int], AuthTarget] = {}
    for intf in ixit.network_interfaces(enabled_only=False):
        docs[(intf.transport, intf.port)] = AuthTarget(intf.transport, intf.port, intf.protocol.lower(),
                                                       f"15-Intf {intf.id}", intf.authentication)
    for api in ixit.ext_api:
        if api.port is not None and api.transport is not None:
            key = (api.transport, api.port)
            known = docs.get(key)
            auth = tuple(dict.fromkeys((known.authentication if known else ()) + api.authentication))
            docs[key] = AuthTarget(api.transport, api.port, (known.protocol if known else api.protocol.lower()),
                                   known.source if known else f"28-ExtAPI {api.id}", auth)
    return [docs.get(key) or AuthTarget(key[0], key[1], "", "undocumented", ()) for key in found]


@dataclass
class Probe:
    """What one service did with each attempt: attempt -> "accepted" / "rejected" / "no login asked" / why not tried."""

    target: AuthTarget
    kind: str
    outcomes: dict[str, str] = field(default_factory=dict)
    reached: dict[str, str] = field(default_factory=dict)  # attempt -> what the function answered
    note: str = ""

    def record(self) -> dict:
        return {"port": self.target.where, "source": self.target.source, "protocol": self.target.protocol,
                "documented_authentication": list(self.target.authentication), "probe": self.kind,
                "outcomes": self.outcomes, "reached_without_credentials": self.reached, "note": self.note}


def unauthenticated_access(probes: list[Probe]) -> list[str]:
    """One problem per service that let a client in without the right credentials (unless declared open)."""
    problems = []
    for p in probes:
        if p.target.declared_open:
            continue
        got_in = [a for a in ATTEMPTS if p.outcomes.get(a) in ("accepted", "no login asked")]
        if got_in:
            how = ", ".join({"none": "SSH authentication method none", "empty": "an empty password",
                             "wrong": "a wrong password"}.get(a, a) if p.outcomes[a] == "accepted"
                            else "no login at all" for a in got_in)
            doc = (f"IXIT {p.target.source} requires {', '.join(p.target.authentication)}" if p.target.authentication
                   else "not documented in IXIT 15-Intf")
            answer = next(iter(p.reached.values()), "")
            problems.append(f"{p.target.where} ({p.kind}) let the lab in with {how} ({doc})"
                            + (f"; it answered {answer[:100]!r}" if answer else ""))
    return problems


def right_login_refused(probes: list[Probe]) -> list[str]:
    """Services whose right credentials (inventory) were refused: their other refusals prove nothing."""
    return [p.target.where for p in probes if p.outcomes.get("right") not in (None, "accepted", "not tried")]


# --- probes (network) ------------------------------------------------------------------------

def wrong_password(right: str) -> str:
    while True:
        guess = "wrong-" + secrets.token_urlsafe(9)
        if guess != right:
            return guess


def _ssh_transport(host: str, port: int, timeout: float) -> paramiko.Transport:
    sock = socket.create_connection((host, port), timeout=timeout)
    t = paramiko.Transport(sock)
    t.banner_timeout = t.auth_timeout = timeout
    t.start_client(timeout=timeout)
    return t


def ssh_exec(transport: paramiko.Transport, command: str, timeout: float) -> str:
    """Run one command on an authenticated transport; its output (bounded)."""
    chan = transport.open_session(timeout=timeout)
    chan.settimeout(timeout)
    chan.exec_command(command)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < MAX_READ:
            chunk = chan.recv(1024)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, socket.timeout):
        pass
    chan.close()
    return out.decode("utf-8", "replace")


def probe_ssh(target: AuthTarget, host: str, user: str, right: str, *, command: str,
              timeout: float = 10.0, attempts: tuple[str, ...] = ATTEMPTS + ("right",)) -> Probe:
    """Each attempt on a fresh connection; when one without the right password gets in, `command` is run
    on it (what a client without credentials can do)."""
    probe = Probe(target, "ssh")
    for attempt in attempts:
        try:
            t = _ssh_transport(host, target.port, timeout)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            probe.outcomes[attempt] = f"no SSH session: {exc or type(exc).__name__}"
            continue
        try:
            if attempt == "none":
                try:
                    t.auth_none(user)
                except paramiko.BadAuthenticationType:
                    pass
            else:
                password = {"empty": "", "wrong": wrong_password(right), "right": right}[attempt]
                try:
                    t.auth_password(user, password)
                except paramiko.BadAuthenticationType as exc:
                    probe.outcomes[attempt] = f"password authentication not offered ({exc.allowed_types})"
                    continue
            probe.outcomes[attempt] = "accepted" if t.is_authenticated() else "rejected"
            if t.is_authenticated() and attempt != "right":
                probe.reached[attempt] = ssh_exec(t, command, timeout).strip()[:300]
        except paramiko.AuthenticationException:
            probe.outcomes[attempt] = "rejected"
        except (OSError, paramiko.SSHException, EOFError) as exc:
            probe.outcomes[attempt] = f"connection failed: {exc or type(exc).__name__}"
        finally:
            t.close()
    return probe


class LineSession:
    """A telnet-style text session: expect a regex, send a line; telnet negotiation refused and dropped."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buffer = ""

    def _read(self, deadline: float) -> bool:
        self.sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            data = self.sock.recv(4096)
        except (TimeoutError, socket.timeout):
            return True
        if not data:
            return False
        data = re.sub(rb"\xff[\xfb-\xfe].", b"", re.sub(rb"\xff\xfa.*?\xff\xf0", b"", data, flags=re.S))
        self.buffer = (self.buffer + data.decode("utf-8", "replace"))[-MAX_READ:]
        return True

    def expect(self, patterns: list[str], timeout: float | None = None) -> int | None:
        """Index of the first pattern seen (buffer consumed up to it), None on timeout or close."""
        deadline = time.monotonic() + (timeout or self.timeout)
        compiled = [re.compile(p) for p in patterns]
        while True:
            hits = [(m.end(), i) for i, c in enumerate(compiled) if (m := c.search(self.buffer))]
            if hits:
                end, index = min(hits)
                self.buffer = self.buffer[end:]
                return index
            if time.monotonic() >= deadline or not self._read(deadline):
                return None

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def close(self) -> None:
        self.sock.close()


def probe_telnet(target: AuthTarget, host: str, user: str, right: str, *, login: str, password: str,
                 shell: str, incorrect: str, command: str, timeout: float = 10.0) -> Probe:
    """Empty, wrong, then right password at the login prompt (a new connection each); a shell without the
    right one gets `command`."""
    probe = Probe(target, "telnet")
    probe.outcomes["none"] = "not applicable (telnet has no method none)"
    for attempt, pw in (("empty", ""), ("wrong", wrong_password(right)), ("right", right)):
        try:
            s = LineSession(host, target.port, timeout)
        except OSError as exc:
            probe.outcomes[attempt] = f"no connection: {exc}"
            continue
        try:
            first = s.expect([shell, login, password], timeout=min(timeout, 2.0))
            if first is None:  # a service that waits for the client: an empty line (not while a prompt is up)
                s.send("")
                first = s.expect([shell, login, password])
            if first == 0:
                probe.outcomes[attempt] = "no login asked"
            elif first is None:
                probe.outcomes[attempt] = "no login prompt"
                continue
            else:
                if first == 1:
                    s.send(user)
                    if s.expect([password]) is None:
                        probe.outcomes[attempt] = "no password prompt"
                        continue
                s.send(pw)
                after = s.expect([shell, incorrect, login])
                probe.outcomes[attempt] = {0: "accepted", 1: "rejected", 2: "rejected", None: "no answer"}[after]
            if probe.outcomes[attempt] in ("accepted", "no login asked"):
                if attempt != "right":
                    s.send(command)
                    s.expect([shell], timeout=min(timeout, 5.0))
                    probe.reached[attempt] = s.buffer.strip()[:300] or "(shell prompt)"
                s.send("exit")
        except OSError as exc:
            probe.outcomes[attempt] = f"connection failed: {exc}"
        finally:
            s.close()
    return probe


def probe_raw(target: AuthTarget, host: str, *, command: str, version_pattern: str, timeout: float = 3.0) -> Probe:
    """An unknown listener: does the product's version command get an answer with no login at all?"""
    probe = Probe(target, "raw", note="an unknown service: the product's version command sent without any login")
    try:
        s = LineSession(host, target.port, timeout)
    except OSError as exc:
        probe.outcomes["none"] = f"no connection: {exc}"
        return probe
    try:
        s.expect([r"\S"], timeout=min(1.0, timeout))  # whatever it says first
        s.send(command)
        hit = s.expect([version_pattern], timeout=timeout)
        if hit is not None:
            probe.outcomes["none"] = "no login asked"
            probe.reached["none"] = f"`{command}` answered with the product's version"
        else:
            probe.outcomes["none"] = "rejected"
    except OSError as exc:
        probe.outcomes["none"] = f"connection failed: {exc}"
    finally:
        s.close()
    return probe


# --- 5.5-5-2: where settings can be changed --------------------------------------------------

def configuration_interfaces(ixit: Ixit) -> list[tuple[str, AuthTarget]]:
    """(13-SoftServ id, its network interface) for every enabled service that allows configuration."""
    targets: list[tuple[str, AuthTarget]] = []
    for serv in ixit.soft_serv:
        if not serv.allows_configuration or serv.status != "enabled":
            continue
        if not serv.interfaces:
            raise CertlabError(f"ixit: 13-SoftServ {serv.id}: allows_configuration is true but `interfaces` is not "
                               "given; add interfaces: [<15-Intf id>, ...] (where the service is reached)")
        for ident in serv.interfaces:
            intf = ixit.interface(ident)
            if intf.kind != "network" or intf.status == "disabled":
                continue
            targets.append((serv.id, AuthTarget(intf.transport, intf.port, intf.protocol.lower(), f"15-Intf {intf.id}",
                                                tuple(dict.fromkeys(intf.authentication + serv.authentication)))))
    return targets


def settings_changed(probes: list[Probe], marker: str, readback: str) -> list[str]:
    """A problem per service that took the lab's setting without the right credentials, shown by the readback."""
    if marker not in readback:
        return []
    return [f"{p.target.where} ({p.kind}, {p.target.source}) changed the setting with "
            + ", ".join(a for a in ATTEMPTS if p.outcomes.get(a) in ("accepted", "no login asked"))
            for p in probes if any(p.outcomes.get(a) in ("accepted", "no login asked") for a in ATTEMPTS)]
