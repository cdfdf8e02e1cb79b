"""lab.traffic.flows on pcaps of real loopback exchanges (tests/data, made by make_pcaps.py).

Flow building decides who is the client, what each side sent and whether the capture saw the
connection open; every 5.5 verdict rests on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.all import IP, TCP, Ether, rdpcap

from lab.traffic.flows import Flow, build_flows

DATA = Path(__file__).resolve().parent / "data"


def flows_of(name: str) -> list[Flow]:
    return build_flows(rdpcap(str(DATA / f"{name}.pcap")))


@pytest.mark.parametrize("name, kind, client_starts", [
    ("ssh_login", "ssh", b"SSH-2.0-"), ("ssh_weak_algorithms", "ssh", b"SSH-2.0-"),
    ("tls13_handshake", "tls", b"\x16\x03"), ("tls12_handshake", "tls", b"\x16\x03"),
    ("telnet_login", "clear", b"root\r\n")])
def test_each_capture_is_one_flow_opened_in_the_window(name: str, kind: str, client_starts: bytes) -> None:
    (flow,) = flows_of(name)
    assert flow.transport == "tcp" and flow.kind == kind
    assert flow.opened_in_window and flow.server_packets > 0
    assert flow.c2s.startswith(client_starts) and flow.s2c  # the SYN's sender is the client


def test_the_client_is_who_sent_the_syn_and_the_streams_are_in_order() -> None:
    (flow,) = flows_of("telnet_login")
    assert flow.c2s == b"root\r\nSecret-Pw-1\r\nexit\r\n"
    assert flow.s2c == b"TH100-F005 login: Password: \r\n# "
    assert flow.name == f"tcp 127.0.0.1:{flow.client[1]} -> 127.0.0.1:{flow.server[1]}"


def test_a_flow_whose_syn_is_not_captured_is_marked_and_its_client_guessed_by_port() -> None:
    packets = [p for p in rdpcap(str(DATA / "telnet_login.pcap")) if not int(p[TCP].flags) & 0x02]
    (flow,) = build_flows(packets)
    assert not flow.opened_in_window
    assert flow.client[1] > flow.server[1]  # the higher (ephemeral) port is taken for the client
    assert flow.c2s == b"root\r\nSecret-Pw-1\r\nexit\r\n"


def test_a_retransmitted_segment_keeps_its_first_copy_and_non_ip_is_skipped() -> None:
    packets = list(rdpcap(str(DATA / "telnet_login.pcap")))
    data = next(p for p in packets if bytes(p[TCP].payload))
    packets.insert(packets.index(data) + 1, data.copy())
    packets.append(Ether() / b"not ip")
    (flow,) = build_flows(packets)
    assert flow.c2s == b"root\r\nSecret-Pw-1\r\nexit\r\n"
    assert flow.s2c == b"TH100-F005 login: Password: \r\n# "


def test_a_syn_that_is_never_answered_is_a_flow_without_server_packets() -> None:
    syn = IP(src="10.203.45.2", dst="10.203.45.1") / TCP(sport=40000, dport=8883, flags="S")
    (flow,) = build_flows([syn, syn.copy()])
    assert flow.server_packets == 0 and flow.kind == "no payload" and flow.client == ("10.203.45.2", 40000)
