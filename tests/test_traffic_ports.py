"""lab.traffic.ports: the 5.6-1-2 judgement of a scan against IXIT 15-Intf / 28-ExtAPI, without a network."""

from __future__ import annotations

from pathlib import Path

import yaml

from lab.ixit import load_ixit
from lab.traffic.ports import documented_ports, undocumented_open

TH100 = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ixit.yaml"


def test_the_documented_ports_are_the_network_interfaces_of_the_ixit() -> None:
    docs = documented_ports(load_ixit(TH100))
    assert docs == {("tcp", 22): {"id": "ssh", "status": "enabled", "protocol": docs[("tcp", 22)]["protocol"]},
                    ("udp", 1900): {"id": "discovery", "status": "enabled", "protocol": "ssdp"}}


def test_an_external_api_on_a_port_no_interface_names_is_documented_with_its_interfaces_status(tmp_path: Path) -> None:
    data = yaml.safe_load(TH100.read_text())
    data["28-ExtAPI"].append({**data["28-ExtAPI"][0], "id": "rest", "port": 8443, "protocol": "https"})
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data))
    assert documented_ports(load_ixit(path))[("tcp", 8443)] == {"id": "28-ExtAPI rest", "status": "enabled",
                                                                 "protocol": "https"}


def test_undocumented_and_disabled_open_ports_are_named_with_their_banner() -> None:
    docs = {("tcp", 22): {"id": "ssh", "status": "enabled"}, ("tcp", 2323): {"id": "debug", "status": "disabled"}}
    found = [("tcp", 22), ("tcp", 23), ("tcp", 2323), ("udp", 5353)]
    banners = {"tcp/22": "SSH-2.0-dropbear", "tcp/23": "TH100-0001 login:", "tcp/2323": "(no banner: timed out)"}
    assert undocumented_open(found, docs, banners) == [
        "undocumented open port tcp/23, banner 'TH100-0001 login:' (not in IXIT 15-Intf)",
        "tcp/2323 is open but IXIT 15-Intf debug says it is disabled",  # "(no banner: ...)" is not a banner
        "undocumented open port udp/5353 (not in IXIT 15-Intf)",
    ]
    assert undocumented_open([("tcp", 22)], docs, banners) == []
