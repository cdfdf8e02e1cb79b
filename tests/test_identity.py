"""lab.identity (5.3-16-2, 5.5-2-2) and the IXIT fields those cases and 5.1-3-2 read, with their bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lab.identity import designation_problem, implementation_problem, names, same_model, ssh_software
from lab.ixit import IxitError, load_ixit

PRODUCTS = Path(__file__).resolve().parent.parent / "inventory" / "products"


@pytest.mark.parametrize("text,token,found", [
    ("TH-100 firmware 1.4.0 (slot a)", "TH-100", True),
    ("th-100 firmware", "TH-100", True),
    ("TH-100X firmware 1.4.0", "TH-100", False),
    ("TH-1000 firmware", "TH-100", False),
    ('PRETTY_NAME="OTS-1 firmware 1.0"', "OTS-1", True),
    ('PRETTY_NAME="OTS-1T firmware 1.0"', "OTS-1", False),
    ("anything", " ", False),
])
def test_names_whole_tokens(text, token, found):
    assert names(text, token) is found


def test_ssh_software():
    assert ssh_software("SSH-2.0-OpenSSH_9.2p1 Debian-2") == "OpenSSH_9.2p1 Debian-2"
    assert ssh_software("SSH-2.0-dropbear_2022.83\r\n") == "dropbear_2022.83"
    assert ssh_software("HTTP/1.1 400") is None


@pytest.mark.parametrize("shown,name,version,missing", [
    ("OpenSSH_9.2p1", "OpenSSH", "9.2p1", None),
    ("dropbear_2022.83", "dropbear", "2022.83", None),
    ("dropbear_2019.78", "OpenSSH", "9.2p1", "name and version"),
    ("OpenSSH_9.2p1", "OpenSSH", "9.2", "version"),
    ("OpenSSH_9.2p1", "OpenSSH", "9.2p", "version"),
    ("dropbear_2022.83.1", "dropbear", "2022.83", "version"),
    ("libssh 0.10.5", "OpenSSH", "0.10.5", "name"),
])
def test_implementation_problem(shown, name, version, missing):
    problem = implementation_problem(shown, name, version, "the SSH identification of ssh")
    if missing is None:
        assert problem is None
    else:
        assert f"lacks the {missing} of" in problem and "12-NetSecImpl" in problem and len(problem) > 20


def test_designation_problem_and_same_model():
    assert designation_problem("TH-100 firmware 1.4.0", "TH-100", "`version`") is None
    problem = designation_problem("TH-100X firmware 1.4.0\n", "TH-100", "`version`")
    assert "'TH-100X firmware 1.4.0'" in problem and "2-UserInfo" in problem
    assert same_model("TH-100", "TH-100") and same_model("TH-100 Smart Thermostat", "TH-100")
    assert not same_model("TH-100T", "TH-100")


# --- the IXIT fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("product", sorted(p.name for p in PRODUCTS.iterdir() if (p / "ixit.yaml").exists()))
def test_shipped_products_answer_the_new_fields(product):
    ixit = load_ixit(PRODUCTS / product / "ixit.yaml")
    assert ixit.user_info.model_designation.shown_by
    assert any(impl.exposed for e in ixit.net_sec_impl for impl in e.implementations)
    ssh_mechs = [m for m in ixit.auth_mech if any(ixit.interface(i).protocol == "ssh" for i in m.interfaces)]
    assert ssh_mechs and all(m.ssh_algorithms for m in ssh_mechs)


@pytest.fixture
def th100() -> dict:
    return yaml.safe_load((PRODUCTS / "TH-100" / "ixit.yaml").read_text())


def _load_bad(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(IxitError) as exc:
        load_ixit(path)
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: ")
    return text


def test_bad_exposure_interface_names_the_field(tmp_path, th100):
    data = copy.deepcopy(th100)
    data["12-NetSecImpl"][0]["implementations"][0]["exposed"][0]["interface"] = "telnet"
    text = _load_bad(tmp_path, data)
    assert "12-NetSecImpl[0].implementations[0].exposed[0].interface" in text and "'telnet'" in text


def test_exposure_without_its_place_is_refused(tmp_path, th100):
    data = copy.deepcopy(th100)
    data["12-NetSecImpl"][0]["implementations"][0]["exposed"][0] = {"kind": "command"}
    assert "needs 'command'" in _load_bad(tmp_path, data)


def test_bad_algorithm_name_and_empty_list_are_refused(tmp_path, th100):
    data = copy.deepcopy(th100)
    data["1-AuthMech"][0]["ssh_algorithms"]["kex"] = ["curve25519 sha256"]
    assert "ssh_algorithms" in _load_bad(tmp_path, data)
    data["1-AuthMech"][0]["ssh_algorithms"]["kex"] = []
    assert "ssh_algorithms" in _load_bad(tmp_path, data)


def test_designation_place_needs_a_command(tmp_path, th100):
    data = copy.deepcopy(th100)
    data["2-UserInfo"]["model_designation"]["shown_by"] = [{"description": "x"}]
    assert "shown_by" in _load_bad(tmp_path, data)
