"""lab.traffic.survey: the scan plan, the survey procedure on a fake scanner, the discovery requests."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from lab.drivers.net import PortScan
from lab.ixit import load_ixit
from lab.traffic.survey import (Answer, ask_discovery, ask_udp, dns_strings, mdns_query, run_survey, scan_plan,
                                ssdp_search)

TH100 = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ixit.yaml"


class FakeNet:
    def __init__(self, open_tcp, udp_open=(), lose_first=False):
        self.open_tcp, self.udp_open, self.lose_first, self.tcp_calls, self.udp_calls = open_tcp, udp_open, lose_first, 0, []

    def scan_tcp(self, ports):
        self.tcp_calls += 1
        lost = self.lose_first and self.tcp_calls == 1
        return PortScan([] if lost else [p for p in self.open_tcp if p in ports], method="connect", seconds=0.1,
                        filtered=1 if lost else 0)

    def scan_udp(self, ports, passes=2):
        self.udp_calls.append(list(ports))
        return {p: ("open" if p in self.udp_open else "closed") for p in ports}


def test_the_plan_covers_the_fixed_ranges_and_every_port_the_ixit_names() -> None:
    plan = scan_plan(load_ixit(TH100))
    assert set(range(1, 10001)) <= set(plan.tcp_ports) and 8883 in plan.tcp_ports and 65535 in plan.tcp_ports
    assert 1900 in plan.udp_ports and all(len(g) <= 6 for g in plan.udp_groups)


def test_a_lost_reply_gets_a_second_tcp_pass_and_every_udp_group_is_scanned() -> None:
    plan = scan_plan(load_ixit(TH100))
    net = FakeNet([22, 8080], lose_first=True)
    slept = []
    s = run_survey(net, "10.0.0.2", plan, grab=lambda a, p: "SSH-2.0-x" if p == 22 else "(no banner)",
                   discover=lambda a: [Answer("ssdp", "udp", 1900, "SERVER: Linux TH-100")],
                   web=lambda a, p: "HTTP/1.0 200 OK fw" if p == 8080 else "", sleep=slept.append)
    assert net.tcp_calls == 2 and s.open_tcp == [22, 8080]
    assert sorted(p for g in net.udp_calls for p in g) == list(plan.udp_ports)
    assert s.banners == {"tcp/22": "SSH-2.0-x", "tcp/8080": "HTTP/1.0 200 OK fw"}
    assert ("udp", 1900) in s.found() and s.disclosed()["udp/1900 ssdp"] == "SERVER: Linux TH-100"
    assert len(slept) == len(plan.udp_groups) - 2


def test_closed_ports_and_a_silent_banner_are_not_disclosures() -> None:
    s = run_survey(FakeNet([23]), "10.0.0.2", scan_plan(load_ixit(TH100)), grab=lambda a, p: "(no banner: reset)",
                   discover=lambda a: [], web=lambda a, p: "", sleep=lambda s: None)
    assert s.disclosed() == {} and s.found() == [("tcp", 23)]


def test_the_discovery_requests_are_well_formed() -> None:
    assert ssdp_search().startswith(b"M-SEARCH * HTTP/1.1\r\n") and b'MAN: "ssdp:discover"' in ssdp_search()
    q = mdns_query()
    assert q[4:6] == b"\x00\x01" and b"\x09_services\x07_dns-sd\x04_udp\x05local\x00" in q
    assert "_services" in dns_strings(q)


def test_a_discovery_answer_is_read_from_the_asked_address_only() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def answer():
        data, peer = srv.recvfrom(2048)
        srv.sendto(b"HTTP/1.1 200 OK\r\nSERVER: x\r\n\r\n" if data.startswith(b"M-SEARCH") else b"?", peer)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    assert ask_udp("127.0.0.1", port, ssdp_search(), timeout=2.0).startswith(b"HTTP/1.1 200 OK")
    t.join(2)
    srv.close()
    answers = ask_discovery("127.0.0.1", ask=lambda a, p, payload: b"HTTP/1.1 200 OK\r\nX: 1\r\n" if p == 1900 else None)
    assert answers == [Answer("ssdp", "udp", 1900, "HTTP/1.1 200 OK X: 1")]
