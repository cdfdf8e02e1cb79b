"""lab.traffic.update_surface: update-like listeners against the 7-UpdMech deliveries."""

from __future__ import annotations

from pathlib import Path

from lab.ixit import load_ixit
from lab.traffic.update_surface import declared_update_ports, undeclared_update_services, update_hint

TH100 = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ixit.yaml"


def test_hints_come_from_transfer_ports_and_update_words() -> None:
    assert update_hint("udp", 69, "") == "TFTP port"
    assert update_hint("tcp", 8080, "HTTP/1.0 200 OK Server: fwupd-lite/0.3 <title>Firmware upload</title>") == "says fwupd, upload"
    assert update_hint("tcp", 22, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3") is None
    assert update_hint("tcp", 80, "HTTP/1.1 200 OK <title>Thermostat</title>") is None
    assert update_hint("tcp", 23, "TH-100 firmware 1.4.0 login:") is None
    assert update_hint("udp", 1900, "SERVER: TH-100 X-FIRMWARE: 1.4.0 X-UPDATE: none") is None


def test_the_declared_delivery_interface_is_not_a_problem_and_an_undeclared_one_is_named() -> None:
    ixit = load_ixit(TH100)
    assert "fw-update" in declared_update_ports(ixit)[("tcp", 22)].split(", ")
    said = {"tcp/22": "SSH-2.0-OpenSSH_9.2p1 firmware update over SFTP",
            "tcp/8080": "HTTP/1.0 200 OK Server: fwupd-lite/0.3 <title>Firmware upload</title> Flash"}
    candidates, problems = undeclared_update_services([("tcp", 22), ("tcp", 8080), ("udp", 1900)], said, ixit)
    assert [c["port"] for c in candidates] == ["tcp/22", "tcp/8080"] and candidates[0]["declared_by"]
    assert len(problems) == 1 and problems[0].startswith("tcp/8080 looks like a network update service")
    assert "fwupd-lite" in problems[0]


def test_a_tftp_port_without_banner_is_a_problem() -> None:
    _, problems = undeclared_update_services([("udp", 69)], {}, load_ixit(TH100))
    assert problems and "TFTP port" in problems[0]
