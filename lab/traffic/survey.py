"""The unauthenticated survey of a DUT: one port scan, a banner per open port, discovery answers.

Four test cases judge the same black-box view (5.6-1-2 open ports, 5.6-2-2 what is disclosed
without authentication, 5.3-10-1 update services, 5.5-4-2 what answers without credentials),
so the lab takes it once per bench session (fixtures/survey.py) and each case decides from it.
Which ports to scan follows from the IXIT (its ports) plus fixed ranges; nothing here knows a
product. The scan needs a NetDriver-like object (`scan_tcp`, `scan_udp`); the decisions on
its result are plain functions, unit-tested without a network.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lab.ixit import Ixit
from lab.traffic.banner import grab_banner
from lab.traffic.ports import documented_ports

# Beyond 1-10000: high ports where embedded devices often leave services (vendor backdoors,
# UPnP/TR-064 stacks, management agents, test shells), checked in addition to the IXIT's ports.
COMMON_HIGH_TCP = (10001, 10243, 10443, 12345, 16992, 16993, 18080, 20000, 23231, 31337, 32764, 37215,
                   37777, 49152, 49153, 50000, 52869, 55443, 60000, 65000, 65535)
# A small UDP scan: discovery, management and IoT protocols.
COMMON_UDP = (53, 67, 69, 123, 137, 161, 500, 1900, 5353, 5683, 5684, 47808)
TCP_RANGE = range(1, 10001)
# Kernels answer closed UDP ports with ICMP unreachables at about 1/s after a burst of 6, so UDP
# ports are probed 6 at a time, spaced (the TCP scan between the first two groups).
UDP_GROUP, ICMP_REFILL_SECONDS = 6, 6.5
# Discovery protocols asked directly (unicast, as RFC 6762 5.5 and UPnP 1.1 allow): a device
# that answers them announces itself to anyone on the LAN without authentication.
SSDP_PORT, MDNS_PORT = 1900, 5353
DISCOVERY_TIMEOUT = 1.5
MAX_DATAGRAM = 4096


class Scanner(Protocol):
    def scan_tcp(self, ports: list[int]): ...
    def scan_udp(self, ports: list[int], *, passes: int = 2) -> dict[int, str]: ...


@dataclass(frozen=True)
class ScanPlan:
    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]

    @property
    def udp_groups(self) -> list[tuple[int, ...]]:
        return [self.udp_ports[i:i + UDP_GROUP] for i in range(0, len(self.udp_ports), UDP_GROUP)]


def scan_plan(ixit: Ixit) -> ScanPlan:
    """Ports 1-10000, common high TCP ports, common UDP ports, and every port the IXIT names."""
    named = {(c.transport, c.port) for c in ixit.com_mech if c.port and c.transport} | set(documented_ports(ixit))
    tcp = sorted({*TCP_RANGE, *COMMON_HIGH_TCP, *(p for (t, p) in named if t == "tcp")})
    udp = sorted({*COMMON_UDP, *(p for (t, p) in named if t == "udp")})
    return ScanPlan(tuple(tcp), tuple(udp))


@dataclass(frozen=True)
class Answer:
    """What a discovery protocol answered when asked on the DUT's address."""

    protocol: str  # "ssdp" or "mdns"
    transport: str
    port: int
    text: str  # readable text of the answer (mDNS names and TXT strings extracted)


@dataclass
class Survey:
    """What one bench's DUT shows without authentication."""

    address: str
    tcp_scanned: int
    udp_scanned: tuple[int, ...]
    passes: list[dict]
    open_tcp: list[int]
    udp: dict[int, str]
    banners: dict[str, str] = field(default_factory=dict)  # "tcp/22" -> first words
    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def open_udp(self) -> list[int]:
        """UDP ports that answered the scan or a discovery request."""
        return sorted({p for p, s in self.udp.items() if s == "open"} | {a.port for a in self.answers if a.transport == "udp"})

    def found(self) -> list[tuple[str, int]]:
        return [("tcp", p) for p in self.open_tcp] + [("udp", p) for p in self.open_udp]

    def disclosed(self) -> dict[str, str]:
        """Everything said without authentication, by source ("tcp/22", "udp/1900 ssdp")."""
        said = {k: v for k, v in self.banners.items() if not v.startswith("(")}
        for a in self.answers:
            said[f"{a.transport}/{a.port} {a.protocol}"] = a.text
        return said

    def evidence(self) -> dict:
        return {"address": self.address, "seconds": round(self.seconds, 3),
                "tcp": {"ports_scanned": self.tcp_scanned, "ranges": "1-10000 + IXIT + common high ports",
                        "passes": self.passes, "open": self.open_tcp},
                "udp": {"ports_scanned": list(self.udp_scanned), "states": self.udp,
                        "undetermined": [p for p, s in self.udp.items() if s == "open|filtered"]},
                "banners": self.banners,
                "discovery_answers": [a.__dict__ for a in self.answers]}


# --- discovery requests and answers (pure) ---------------------------------------------------

def ssdp_search() -> bytes:
    """An SSDP M-SEARCH for every device (UPnP Device Architecture 1.1, 1.3.2)."""
    return (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
            b"MX: 1\r\nST: ssdp:all\r\n\r\n")


def mdns_query() -> bytes:
    """A unicast-response mDNS query for _services._dns-sd._udp.local PTR (RFC 6763 9)."""
    name = b"".join(bytes([len(p)]) + p for p in (b"_services", b"_dns-sd", b"_udp", b"local")) + b"\x00"
    return b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x0c\x80\x01"


def dns_strings(data: bytes) -> str:
    """The printable runs of a DNS message (labels, TXT strings), joined: what a reader sees."""
    runs, cur = [], bytearray()
    for b in data[12:]:
        if 32 <= b < 127:
            cur.append(b)
        else:
            if len(cur) >= 2:
                runs.append(cur.decode())
            cur = bytearray()
    if len(cur) >= 2:
        runs.append(cur.decode())
    return " ".join(runs)[:500]


def answer_text(protocol: str, data: bytes) -> str:
    if protocol == "mdns":
        return dns_strings(data)
    return " ".join("".join(c if c.isprintable() else " " for c in data.decode("utf-8", "replace")).split())[:500]


def ask_udp(address: str, port: int, payload: bytes, timeout: float = DISCOVERY_TIMEOUT) -> bytes | None:
    """One datagram to (address, port); the first answer from that address, or None. Bounded by `timeout`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((address, port))
            s.send(payload)
            return s.recv(MAX_DATAGRAM)
        except OSError:  # refused (ICMP), timed out, unreachable: no answer
            return None


def ask_discovery(address: str, *, ask: Callable[[str, int, bytes], bytes | None] = ask_udp) -> list[Answer]:
    answers = []
    for protocol, port, payload in (("ssdp", SSDP_PORT, ssdp_search()), ("mdns", MDNS_PORT, mdns_query())):
        data = ask(address, port, payload)
        if data:
            answers.append(Answer(protocol, "udp", port, answer_text(protocol, data)))
    return answers


def http_head(address: str, port: int, timeout: float = 1.5) -> str:
    """The status line and headers a web server gives to `GET /` (a banner-less service may be HTTP)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(data) < MAX_DATAGRAM:
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return ""
    return " ".join(data.decode("utf-8", "replace").split())[:300] if data.startswith(b"HTTP/") else ""


# --- the survey ------------------------------------------------------------------------------

def run_survey(net: Scanner, address: str, plan: ScanPlan, *,
               step: Callable[[str], object] | None = None,
               grab: Callable[[str, int], str] = grab_banner,
               discover: Callable[[str], list[Answer]] = ask_discovery,
               web: Callable[[str, int], str] = http_head,
               sleep: Callable[[float], None] = time.sleep) -> Survey:
    """Scan (TCP with a second pass if any reply was lost, UDP in ICMP-paced groups), read a banner
    per open TCP port, ask the discovery protocols. `step(title)` is a context manager for the report."""
    import contextlib

    stepper = step or (lambda title: contextlib.nullcontext())
    start = time.monotonic()
    groups = plan.udp_groups
    udp: dict[int, str] = {}
    with stepper(f"UDP scan of {len(plan.udp_ports)} ports, part 1"):
        udp.update(net.scan_udp(list(groups[0]), passes=1))
    with stepper(f"TCP scan of {len(plan.tcp_ports)} ports (1-10000, the IXIT's and common high ports)"):
        scan = net.scan_tcp(list(plan.tcp_ports))
        passes = [{"method": scan.method, "seconds": round(scan.seconds, 3), "open": list(scan),
                   "closed": scan.closed, "no_answer": scan.filtered}]
        open_tcp = set(scan)
        if scan.filtered:  # a lost reply must not hide a port: one more pass
            again = net.scan_tcp(list(plan.tcp_ports))
            passes.append({"method": again.method, "seconds": round(again.seconds, 3), "open": list(again),
                           "closed": again.closed, "no_answer": again.filtered})
            open_tcp |= set(again)
    answers: list[Answer] | None = None
    ask_title = "ask the discovery protocols (SSDP M-SEARCH, mDNS) on the DUT's address"
    for n, group in enumerate(groups[1:], start=2):
        with stepper(f"UDP scan of {len(plan.udp_ports)} ports, part {n}"):
            if n > 2:
                paused = time.monotonic()
                if answers is None:  # asked while the kernel's ICMP budget refills: costs no time of its own
                    with stepper(ask_title):
                        answers = discover(address)
                sleep(max(0.0, ICMP_REFILL_SECONDS - (time.monotonic() - paused)))
            udp.update(net.scan_udp(list(group), passes=1))
    if answers is None:
        with stepper(ask_title):
            answers = discover(address)
    banners: dict[str, str] = {}
    with stepper("read the banner of every open TCP port"):
        for port in sorted(open_tcp):
            banner = grab(address, port)
            if banner.startswith("HTTP/") or banner == "(no banner)":
                head = web(address, port)  # a web server answers a request, not an empty line
                banner = head or banner
            banners[f"tcp/{port}"] = banner
    return Survey(address, len(plan.tcp_ports), plan.udp_ports, passes, sorted(open_tcp), udp, banners, answers,
                  time.monotonic() - start)
