"""lab.traffic.disclosure: identifying values found in what is said without authentication, against 15-Intf `discloses`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.errors import CertlabError
from lab.ixit import load_ixit
from lab.traffic.disclosure import find_values, identifying_values, judge_disclosures

PRODUCTS = Path(__file__).resolve().parents[1] / "inventory" / "products"
VALUES = identifying_values(serial="TH100-F027", mac="02:c1:ac:00:00:1b", firmware="1.4.0", model="TH-100")


def test_values_are_found_in_the_forms_devices_print_them() -> None:
    assert find_values("X-MAC: 02C1AC00001B", VALUES) == ["mac"]
    assert find_values("mac=02-c1-ac-00-00-1b", VALUES) == ["mac"]
    assert find_values("th-100-th100-f027 login:", VALUES) == ["model", "serial"]
    assert find_values("firmware 1.4.0.", VALUES) == ["firmware_version"]


def test_look_alikes_are_not_found() -> None:
    assert find_values("SSH-2.0-OpenSSH_9.2p1 build 11.4.01 TH-1000 TH100-F0270", VALUES) == []


def test_the_documented_allow_list_passes_and_more_fails_naming_the_value() -> None:
    ixit = load_ixit(PRODUCTS / "TH-100" / "ixit.yaml")
    ok = judge_disclosures({"udp/1900 ssdp": "SERVER: Linux UPnP/1.1 TH-100", "tcp/22": "SSH-2.0-OpenSSH_9.2p1"}, VALUES, ixit)
    assert ok.problems == [] and ok.found == {"udp/1900 ssdp": ["model"]}
    bad = judge_disclosures({"udp/1900 ssdp": "SERVER: TH-100 X-SERIAL: TH100-F027 X-FIRMWARE: 1.4.0"}, VALUES, ixit)
    assert len(bad.problems) == 1 and "serial 'TH100-F027'" in bad.problems[0] and "firmware_version" in bad.problems[0]
    assert "15-Intf discovery" in bad.problems[0]


def test_an_undocumented_listener_may_disclose_nothing() -> None:
    ixit = load_ixit(PRODUCTS / "TH-100" / "ixit.yaml")
    bad = judge_disclosures({"tcp/2323": "TH-100 factory debug shell"}, VALUES, ixit)
    assert "does not document" in bad.problems[0]


def test_an_unstated_allow_list_is_inconclusive_naming_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load((PRODUCTS / "TH-100" / "ixit.yaml").read_text())
    for intf in data["15-Intf"]:
        intf.pop("discloses", None)
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CertlabError, match=r"15-Intf discovery: `discloses` is not stated"):
        judge_disclosures({"udp/1900 ssdp": "TH-100"}, VALUES, load_ixit(path))
    assert judge_disclosures({"tcp/22": "SSH-2.0-OpenSSH_9.2p1"}, VALUES, load_ixit(path)).problems == []


def test_a_malformed_allow_list_names_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load((PRODUCTS / "TH-100" / "ixit.yaml").read_text())
    data["15-Intf"][2]["discloses"] = ["owner-name"]
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CertlabError, match="discloses"):
        load_ixit(path)
