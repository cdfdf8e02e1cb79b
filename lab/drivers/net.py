"""Network driver (scapy): port scans of the DUT and packet captures as evidence.

Guardrail first: this driver scans and captures one address, the DUT's, and refuses anything
that could leave the lab. A non-loopback address needs the bench's interface, and the route to
the address must go out through that interface (a veth into the DUT's network namespace, or the
lab's isolated DUT LAN). Every result says how it was measured (SYN or connect scan), because a
certifier weighs a SYN scan and a connect scan differently.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.errors import CertlabError, NetworkFault
from lab.steps import NullSteps, StepRecorder


SYN_SCAN_MAX_PORTS = 256  # above this, "auto" scans by connecting


class PortScan(list):
    """Open ports (a plain sorted list of ints) plus how they were found."""

    def __init__(self, ports: Iterable[int], *, method: str, seconds: float, closed: int = 0,
                 filtered: int = 0) -> None:
        super().__init__(sorted(ports))
        self.method = method  # "syn" (scapy, raw packets) or "connect" (TCP connect())
        self.seconds = seconds
        self.closed = closed
        self.filtered = filtered


class Capture:
    """A running (then finished) capture; `packets` is filled when the `with` block ends."""

    def __init__(self, path: Path, interface: str, bpf_filter: str) -> None:
        self.path = path
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.packets: list = []

    def __len__(self) -> int:
        return len(self.packets)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class NetDriver:
    def __init__(self, address: str, *, interface: str | None = None, bench: str | None = None,
                 steps: StepRecorder | None = None) -> None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise CertlabError(f"network address {address!r} is not one IP address; write e.g. 10.203.1.2") from None
        if ip.is_multicast or ip.is_unspecified or ip.version != 4 or str(ip).endswith(".255"):
            raise CertlabError(f"network address {address}: only one IPv4 unicast DUT address can be scanned")
        if not ip.is_loopback and not interface:
            raise CertlabError(
                f"network address {address} is not loopback and no interface is given; add "
                "certlab.network.interface (the lab's DUT-side interface) so scans cannot leave the lab"
            )
        self.address = str(ip)
        self.interface = interface
        self.loopback = ip.is_loopback
        self.bench = bench
        self._steps = steps or NullSteps()
        self._lock = threading.Lock()  # scapy's route table is shared process state

    # --- guardrail -------------------------------------------------------------------------
    def _wire(self) -> str:
        """The interface packets to the DUT leave on, after checking it is the bench's own."""
        if self.loopback:
            return "lo"
        from scapy.all import conf

        with self._lock:
            conf.route.resync()  # the veth may have appeared after scapy was imported
            iface, _src, _gw = conf.route.route(self.address, verbose=0)
        if str(iface) != self.interface:
            raise NetworkFault(
                f"the route to {self.address} goes via {iface or 'nowhere'}, not the bench interface "
                f"{self.interface}; refusing to send packets outside the lab (is the bench network up?)",
                bench=self.bench,
            )
        return self.interface

    # --- disturbances (lab.drivers.netcut): always undone when the block ends ----------------
    def _own_interface(self, what: str) -> str:
        if self.loopback or not self.interface:
            raise NetworkFault(f"{what} needs the bench network's own interface; {self.address} is reached over "
                               "loopback", bench=self.bench)
        if not _is_root():
            raise NetworkFault(f"{what} needs root (or CAP_NET_ADMIN) on the lab PC", bench=self.bench)
        return self._wire()

    @contextlib.contextmanager
    def link_cut(self) -> Iterator:
        """The DUT loses its link (the bench interface down) while the block runs; restored after."""
        from lab.drivers.netcut import link_cut

        wire = self._own_interface("cutting the DUT's link")
        with self._steps.step("link cut", bench=self.bench, interface=wire):
            with link_cut(wire, self.address) as cut:
                yield cut

    @contextlib.contextmanager
    def refuse_peer(self, port: int, transport: str = "tcp") -> Iterator[str]:
        """The DUT's new connections to `port` are refused while the block runs (yields the rules)."""
        from lab.drivers.netcut import refuse_peer

        wire = self._own_interface("refusing the DUT's connections")
        with self._steps.step("refuse peer port", bench=self.bench, interface=wire, port=port, transport=transport):
            with refuse_peer(wire, self.address, port, transport) as rules:
                yield rules

    # --- scans -----------------------------------------------------------------------------
    def scan_tcp(self, ports: Iterable[int], timeout: float = 2.0, *, method: str = "auto") -> PortScan:
        """Open TCP ports by SYN scan ("syn") or full connects ("connect").

        "auto" takes a SYN scan (quieter, sees half-open services) for a few ports when root on a
        known interface, and connects for large ranges, where scapy's per-packet cost in Python
        makes a SYN scan ten times slower on a busy lab PC.
        """
        if method not in ("auto", "syn", "connect"):
            raise ValueError(f"scan method {method!r}: use auto, syn or connect")
        ports = sorted({int(p) for p in ports})
        wire = self._wire()
        can_syn = _is_root() and self.interface is not None
        syn = can_syn and (method == "syn" or (method == "auto" and len(ports) <= SYN_SCAN_MAX_PORTS))
        with self._steps.step("tcp scan", bench=self.bench, address=self.address, ports=len(ports),
                              method="syn" if syn else "connect"):
            start = time.monotonic()
            if syn:
                open_, closed = self._syn_scan(ports, wire, timeout)
            else:
                open_, closed = self._connect_scan(ports, timeout)
            return PortScan(open_, method="syn" if syn else "connect", seconds=time.monotonic() - start,
                            closed=len(closed), filtered=len(ports) - len(open_) - len(closed))

    def _syn_scan(self, ports: list[int], wire: str, timeout: float) -> tuple[list[int], list[int]]:
        from scapy.all import IP, TCP, RandShort, sr
        from scapy.sendrecv import sndrcv
        from scapy.supersocket import L3RawSocket

        probe = IP(dst=self.address) / TCP(sport=RandShort(), dport=ports, flags="S")
        if wire == "lo":  # packet sockets cannot route to loopback: raw IP socket on lo
            sock = L3RawSocket(iface="lo")
            try:
                answered, _ = sndrcv(sock, probe, timeout=timeout, verbose=0)
            finally:
                sock.close()
        else:
            answered, _ = sr(probe, iface=wire, timeout=timeout, verbose=0)
        open_, closed = set(), set()
        for _sent, reply in answered:
            if reply.haslayer(TCP) and reply[IP].src == self.address:
                flags = int(reply[TCP].flags)
                if flags & 0x12 == 0x12:
                    open_.add(int(reply[TCP].sport))
                elif flags & 0x04:
                    closed.add(int(reply[TCP].sport))
        return sorted(open_), sorted(closed)

    def _connect_scan(self, ports: list[int], timeout: float) -> tuple[list[int], list[int]]:
        def probe(port: int) -> str:
            try:
                with socket.create_connection((self.address, port), timeout=timeout):
                    return "open"
            except ConnectionRefusedError:
                return "closed"
            except OSError:
                return "filtered"

        with ThreadPoolExecutor(max_workers=min(64, max(1, len(ports)))) as pool:
            states = dict(zip(ports, pool.map(probe, ports)))
        return ([p for p, s in states.items() if s == "open"], [p for p, s in states.items() if s == "closed"])

    def scan_udp(self, ports: Iterable[int], timeout: float = 2.0, *, passes: int = 2) -> dict[int, str]:
        """UDP port states: `open` (a reply), `closed` (ICMP port unreachable), `open|filtered`.

        Connected UDP sockets receive the ICMP errors, so this needs no privileges. Kernels rate
        limit ICMP unreachables, so ports without an answer are probed again (`passes`).
        """
        ports = sorted({int(p) for p in ports})
        self._wire()
        states = {p: "open|filtered" for p in ports}
        with self._steps.step("udp scan", bench=self.bench, address=self.address, ports=len(ports)):
            for _ in range(max(1, passes)):
                pending = [p for p, s in states.items() if s == "open|filtered"]
                if not pending:
                    break
                states.update(self._udp_pass(pending, timeout))
        return states

    def _udp_pass(self, ports: list[int], timeout: float) -> dict[int, str]:
        socks: dict[socket.socket, int] = {}
        result: dict[int, str] = {}
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setblocking(False)
                s.connect((self.address, port))
                socks[s] = port
                try:
                    s.send(b"\r\n")
                except ConnectionRefusedError:
                    result[port] = "closed"
                except OSError:
                    pass
            deadline = time.monotonic() + timeout
            waiting = [s for s, p in socks.items() if p not in result]
            while waiting and time.monotonic() < deadline:
                readable, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
                for s in readable:
                    try:
                        s.recv(2048)
                        result[socks[s]] = "open"
                    except ConnectionRefusedError:
                        result[socks[s]] = "closed"
                    except OSError:
                        continue
                    waiting.remove(s)
        finally:
            for s in socks:
                s.close()
        return result

    # --- capture ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def capture(self, pcap_path: str | Path, *, bpf_filter: str | None = None, dut_only: bool = True,
                linger: float = 0.2, on_packet: Callable[[object], None] | None = None) -> Iterator[Capture]:
        """Capture the DUT's traffic while the block runs; write a pcap when it ends.

        `on_packet` sees each packet as it arrives (a test waiting for one stops early)."""
        from scapy.all import AsyncSniffer, wrpcap
        from scapy.arch.linux import L2Socket

        if not _is_root():
            raise NetworkFault("packet capture needs root (or CAP_NET_RAW) on the lab PC", bench=self.bench)
        wire = self._wire()
        parts = [f"host {self.address}"] if dut_only else []
        if bpf_filter:
            parts.append(f"({bpf_filter})")
        flt = " and ".join(parts)
        path = Path(pcap_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cap = Capture(path, wire, flt)
        started = threading.Event()
        with self._steps.step("capture", bench=self.bench, interface=wire, filter=flt, pcap=str(path)):
            try:
                if wire == "lo":  # on lo every packet shows twice (out and in); keep it once, like tcpdump
                    sniffer = AsyncSniffer(opened_socket=L2Socket(iface="lo", filter=flt or None), store=True, prn=on_packet,
                                           started_callback=started.set)
                else:
                    sniffer = AsyncSniffer(iface=wire, filter=flt or None, store=True, prn=on_packet,
                                           started_callback=started.set)
                sniffer.start()
            except Exception as exc:  # noqa: BLE001 - scapy raises many types for a bad iface/filter
                raise NetworkFault(f"capture on {wire} could not start: {exc}", bench=self.bench) from None
            if not started.wait(5.0):
                with contextlib.suppress(Exception):
                    sniffer.stop(join=False)
                raise NetworkFault(f"capture on {wire} ({flt}) did not start within 5 s", bench=self.bench)
            try:
                yield cap
            finally:
                time.sleep(linger)  # the last replies are still in flight when the block ends
                packets = sniffer.stop() if sniffer.running else sniffer.results
                cap.packets = list(packets or [])
                wrpcap(str(path), cap.packets)

    # --- interception ------------------------------------------------------------------------
    @contextlib.contextmanager
    def intercept_tls(self, ports: list[int], server_names: list[str], *, window_s: float):
        """The lab's gateway answers the DUT's new connections to `ports` with an untrusted certificate
        (lab.drivers.intercept); the redirect is removed when the block ends."""
        from lab.drivers.intercept import intercept_tls

        if self.loopback or not self.interface:
            raise NetworkFault(f"intercepting the DUT's connections needs the bench network's interface (the lab PC as "
                               f"the DUT's gateway); {self.address} is reached over loopback", bench=self.bench)
        self._wire()
        with self._steps.step("tls interception", bench=self.bench, interface=self.interface, ports=list(ports),
                              window_s=window_s):
            with intercept_tls(self.interface, self.address, list(ports), server_names, window_s=window_s) as mitm:
                yield mitm
