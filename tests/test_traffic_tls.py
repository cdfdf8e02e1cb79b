"""lab.traffic.tls on real handshakes of Python's ssl (tests/data/tls1*_handshake.pcap).

The 5.5 cases judge TLS by what parse_tls reads: offered and negotiated versions, cipher suite.
A handshake the capture cut short must come back as "cut", never as an exception that turns
all four communication test cases into errors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from scapy.all import rdpcap

from lab.traffic.flows import Flow, build_flows
from lab.traffic.tls import TLS12, WEAK_CIPHER_WORDS, parse_tls

DATA = Path(__file__).resolve().parent / "data"


def flow_of(name: str) -> Flow:
    (flow,) = build_flows(rdpcap(str(DATA / f"{name}.pcap")))
    return flow


def test_a_tls13_handshake_reads_offered_and_chosen_version_suite_and_server_name() -> None:
    info = parse_tls(flow_of("tls13_handshake"))
    assert info["client_hello"] and info["server_hello"] and "cut" not in info
    assert info["offered"] == ["TLS 1.3", "TLS 1.2"] and info["offered_codes"] == [0x0304, 0x0303]
    assert info["server_name"] == "th100.lab.test"
    assert info["version"] == "TLS 1.3" and info["version_code"] == 0x0304  # from supported_versions, not legacy
    assert info["cipher_suite"].startswith("TLS_AES_")


def test_a_tls12_handshake_reads_the_negotiated_version_and_a_named_suite() -> None:
    info = parse_tls(flow_of("tls12_handshake"))
    assert info["version"] == "TLS 1.2" and info["version_code"] == TLS12
    assert info["cipher_suite"].startswith("TLS_ECDHE_") and not any(w in info["cipher_suite"] for w in WEAK_CIPHER_WORDS)


@pytest.mark.parametrize("name", ["tls12_handshake", "tls13_handshake"])
def test_a_hello_cut_anywhere_is_reported_cut_never_raised(name: str) -> None:
    full = flow_of(name)
    client_cut = server_cut = 0
    for n in range(9, 120):  # from the first handshake header to past the end of both hellos
        info = parse_tls(dataclasses.replace(full, c2s=full.c2s[:n], s2c=full.s2c[:n]))
        client_cut += "ClientHello" in info.get("cut", [])
        server_cut += "ServerHello" in info.get("cut", [])
        assert info["client_hello"] or "ClientHello" in info.get("cut", []), n
    assert client_cut and server_cut


def test_a_hello_whose_inner_lengths_lie_is_not_a_hello() -> None:
    body = b"\x03\x03" + bytes(32) + b"\xff" + bytes(5)  # session id length 255 in a 40-byte hello
    record = b"\x16\x03\x01" + (len(body) + 4).to_bytes(2, "big") + b"\x01" + len(body).to_bytes(3, "big") + body
    flow = Flow("tcp", ("10.0.0.2", 40000), ("10.0.0.1", 443), 0.0, 2, record, b"")
    assert parse_tls(flow) == {"client_hello": False, "server_hello": False}


def test_the_5_5_cases_do_not_judge_a_flow_whose_clienthello_the_capture_cut() -> None:
    """The suite's check_mechanism on the library's result: a cut hello is 'not judged', the whole one judged."""
    from suitelib import load_suite_module  # tests/suitelib.py

    from lab.ixit import load_ixit

    comm = load_suite_module("test_5_5_communication.py", "certlab_suite_5_5_tls")
    tele = next(m for m in load_ixit(DATA.parent.parent / "inventory" / "products" / "TH-100" / "ixit.yaml").com_mech
                if m.id == "telemetry")
    dut, cloud = ("10.203.45.2", 40000), ("10.203.45.1", 8883)
    whole = dataclasses.replace(flow_of("tls13_handshake"), client=dut, server=cloud)
    cut = dataclasses.replace(whole, client=(dut[0], 40001), c2s=whole.c2s[:60], s2c=b"", first_seen=1.0)
    traffic = comm.Traffic(pcap="x.pcap", window_s=12.0, interval_s=5.0, flows=[whole, cut])
    summary, problems = comm.check_mechanism(tele, traffic, dut[0], [])
    assert problems == []
    assert [r.get("not_judged", "")[:30] for r in summary["flows"]] == ["", "its ClientHello is cut short i"]
    assert summary["flows"][0]["tls"]["version"] == "TLS 1.3" and summary["not_judged"] == 1
