"""lab.traffic.cleartext on a real clear-text login (tests/data/telnet_login.pcap) and the TLS/SSH pcaps.

What counts as confidential comes from the IXIT (carried data, 24-TelData), the serial number and
the lab's password; excerpts in the evidence never show the password.
"""

from __future__ import annotations

from pathlib import Path

from scapy.all import rdpcap

from lab.ixit import load_ixit
from lab.logins import LoginExchange
from lab.traffic.cleartext import clear_logins, csp_markers, excerpt, leak_markers, scan_clear_text
from lab.traffic.flows import Flow, Traffic, build_flows

DATA = Path(__file__).resolve().parent / "data"
TH100 = DATA.parent.parent / "inventory" / "products" / "TH-100" / "ixit.yaml"
PASSWORD, SERIAL = "Secret-Pw-1", "TH100-F005"  # what make_pcaps.py put on the wire


def traffic_of(*names: str) -> Traffic:
    flows = [f for n in names for f in build_flows(rdpcap(str(DATA / f"{n}.pcap")))]
    return Traffic(pcap="capture.pcap", window_s=12.0, interval_s=5.0, flows=flows)


def test_a_clear_text_login_shows_the_password_and_the_serial_masked_in_the_excerpt() -> None:
    traffic = traffic_of("telnet_login")
    markers = leak_markers(load_ixit(TH100), SERIAL, PASSWORD)
    findings, problems = scan_clear_text(traffic, markers, [PASSWORD])
    by_direction = {f["direction"]: f for f in findings}
    assert by_direction["client->server"]["found"] == ["the device's login password"]
    assert by_direction["server->client"]["found"] == [f"the serial number {SERIAL!r}", "credential word /(?i)passw(or)?d/",
                                                       "carried data 'password' (IXIT 11/24)"]  # the prompt
    assert by_direction["client->server"]["excerpt"] == "root..********..exit.."
    assert all(PASSWORD not in p for p in problems) and "********" in by_direction["client->server"]["excerpt"]


def test_csp_markers_find_the_password_but_not_the_serial() -> None:
    findings, _ = scan_clear_text(traffic_of("telnet_login"), csp_markers(PASSWORD), [PASSWORD])
    assert [(f["direction"], f["found"]) for f in findings] == [("client->server", ["the device's login password"]),
                                                                ("server->client", ["credential word /(?i)passw(or)?d/"])]


def test_inside_tls_and_ssh_only_the_password_is_looked_for() -> None:
    traffic = traffic_of("tls13_handshake", "ssh_login")
    # "th100" (the certificate's name) and "ssh" would match carried words if the encrypted flows were scanned
    assert scan_clear_text(traffic, leak_markers(load_ixit(TH100), "th100", PASSWORD), [PASSWORD]) == ([], [])


def test_leak_markers_take_carried_data_and_telemetry_ids_from_the_ixit() -> None:
    names = [what for what, _ in leak_markers(load_ixit(TH100), SERIAL, None)]
    carried = [n.split("'")[1] for n in names if n.startswith("carried data")]
    assert names[:4] == [f"the serial number {SERIAL!r}", "credential word /\\bLOGIN\\b/", "credential word /(?i)token/",
                         "credential word /(?i)passw(or)?d/"]  # no password given: no password marker
    # 11-ComMech carries.what words of 5+ letters without the stop words ("device", "version", "images"), sorted
    assert carried == ["configuration", "firmware", "occupancy", "password", "schedule", "serial", "temperature", "token"]


def test_an_excerpt_masks_secrets_and_shortens_long_tokens() -> None:
    data = b"\x00\x01LOGIN TH100-F005 0123456789abcdef0123 pw=Secret-Pw-1\r\n"
    text = excerpt(data, data.index(b"LOGIN"), [PASSWORD])
    assert text == "..LOGIN TH100-F005 0123...(20 chars) pw=********.."


def test_an_accepted_clear_login_is_a_problem_naming_the_flow_with_the_password() -> None:
    traffic = traffic_of("telnet_login")
    flow = traffic.flows[0]
    traffic.logins["telnet"] = LoginExchange("telnet", "127.0.0.1", flow.server[1], "root", "accepted")
    mech = type("Mech", (), {"id": "telnet", "protocol": "telnet", "encrypted": False})()
    (problem,) = clear_logins([mech], traffic, "127.0.0.1", [PASSWORD])
    assert problem.startswith(f"telnet on port {flow.server[1]} accepted the login of user root in clear text")
    assert f"flow {flow.name}, the password in the client's bytes" in problem and PASSWORD not in problem
    traffic.logins["telnet"].outcome = "rejected"
    assert clear_logins([mech], traffic, "127.0.0.1", [PASSWORD]) == []


def test_a_flow_made_by_hand_is_scanned_like_a_captured_one() -> None:
    flow = Flow("tcp", ("10.203.45.2", 40000), ("10.203.45.1", 8883), 0.0, 4, b'{"token": "x"}\n', b"OK\n")
    findings, _ = scan_clear_text(Traffic("x.pcap", 1.0, 1.0, [flow]), csp_markers(None), [])
    assert findings[0]["found"] == ["credential word /(?i)token/"]
