"""lab.traffic.ssh on real paramiko sessions (tests/data/ssh_*.pcap), as the simulated DUT serves them.

ssh_login.pcap: the conforming sim (paramiko's broken algorithms disabled); ssh_weak_algorithms.pcap:
its `weak_ssh_algorithms` flaw. The 5.5-1-2 verdict on an SSH mechanism is what parse_ssh reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scapy.all import rdpcap

from lab.traffic.flows import Flow, build_flows
from lab.traffic.ssh import parse_ssh

DATA = Path(__file__).resolve().parent / "data"


def flow_of(name: str) -> Flow:
    (flow,) = build_flows(rdpcap(str(DATA / f"{name}.pcap")))
    return flow


def test_the_identification_lines_and_the_servers_kexinit_are_read() -> None:
    info = parse_ssh(flow_of("ssh_login"))
    assert info["client_ident"].startswith("SSH-2.0-paramiko") and info["server_ident"].startswith("SSH-2.0-")
    offers = info["server_offers"]
    assert offers["host_key"] == ["ssh-ed25519"] and "aes128-ctr" in offers["ciphers"]
    assert "hmac-sha2-256" in offers["macs"] and "curve25519-sha256@libssh.org" in offers["kex"]
    assert info["weak_offered"] == []


def test_a_server_offering_broken_algorithms_names_them() -> None:
    info = parse_ssh(flow_of("ssh_weak_algorithms"))
    assert info["weak_offered"] == ["3des-cbc", "hmac-md5", "hmac-md5-96"]


def test_a_stream_cut_inside_the_kexinit_gives_no_offers_and_no_error() -> None:
    full = flow_of("ssh_login")
    for n in range(0, 400, 7):
        info = parse_ssh(dataclasses.replace(full, s2c=full.s2c[:n]))
        assert "weak_offered" not in info or info["weak_offered"] == []


def test_a_non_ssh_stream_has_no_identification() -> None:
    flow = Flow("tcp", ("10.0.0.1", 50000), ("10.0.0.2", 22), 0.0, 2, b"GET / HTTP/1.0\r\n", b"HTTP/1.0 200 OK\r\n")
    assert parse_ssh(flow) == {"client_ident": None, "server_ident": None}


def test_a_server_may_send_lines_before_its_identification() -> None:
    """RFC 4253 4.2: a banner line first is allowed; the server still speaks SSH 2 and its KEXINIT is read."""
    full = flow_of("ssh_weak_algorithms")
    info = parse_ssh(dataclasses.replace(full, s2c=b"Welcome to the TH-100\r\nauthorised use only\r\n" + full.s2c))
    assert info["server_ident"] == parse_ssh(full)["server_ident"]
    assert info["weak_offered"] == ["3des-cbc", "hmac-md5", "hmac-md5-96"]
