"""ICS and IXIT: the shipped TH-100 files validate, and each class of bad input gives one clear line."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from lab.errors import CertlabError
from lab.ics import IcsError, load_ics
from lab.ixit import IxitError, load_ixit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"


@pytest.fixture(scope="module")
def ics_data() -> dict:
    return yaml.safe_load((PRODUCT / "ics.yaml").read_text())


@pytest.fixture(scope="module")
def ixit_data() -> dict:
    return yaml.safe_load((PRODUCT / "ixit.yaml").read_text())


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def one_line(exc: pytest.ExceptionInfo, path: Path, *parts: str) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(f"{path}: "), text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"
    return text


# --- the shipped product files ---------------------------------------------------------------


def test_shipped_ics_validates():
    ics = load_ics(PRODUCT / "ics.yaml", "v2")
    assert ics.product.model == "TH-100" and ics.edition == "v2"
    assert len(ics.provisions) == 68
    applies, why = ics.applicability("5.3-14")
    assert not applies and "Conditions 3 and 4" in why
    assert ics.applicability("5.1-1-2")[0]  # a test case id answers for its provision
    # every provision an automated suite tests applies to a conforming DUT: the TH-100, or for what
    # only a non-updatable product has (5.3-14), the TH-10
    th10 = load_ics(PRODUCT.parent / "TH-10" / "ics.yaml", "v2")
    for case in ics.catalog.select_test_cases(coverage="automated"):
        assert ics.applicability(case.id)[0] or th10.applicability(case.id)[0], case.id
    with pytest.raises(IcsError, match="did you mean"):
        ics.applicability("5.1-9")


def test_shipped_ixit_validates():
    ixit = load_ixit(PRODUCT / "ixit.yaml")
    assert ixit.product.model == "TH-100"
    assert ixit.listening_ports() == {("tcp", 22), ("udp", 1900)}
    assert [i.id for i in ixit.debug_interfaces()] == ["uart-console"]
    root = ixit.auth_mechanism("root-password")
    assert root.user == "root" and set(root.interfaces) == {"uart-console", "ssh"}
    assert root.brute_force_prevention.max_attempts == 5 and root.brute_force_prevention.lockout_seconds == 10
    assert root.change.command == "passwd" and root.change.min_length == 8
    upd = ixit.update_mechanism("fw-update")
    assert upd.delivery.apply_command.format(path=upd.delivery.upload_path) == "update /tmp/update.clfw"
    assert upd.signature.algorithm == "Ed25519" and upd.anti_rollback.enabled and upd.ab_slots
    assert [c.port for c in ixit.com_mech if c.peer == "cloud.certlab.test"] == [8883]
    assert ixit.del_func[0].command == "factory-reset"
    assert len([n for n in type(ixit).model_fields if n not in ("product", "test_facts", "associated_service")]) == 29
    assert ixit.test_facts is not None and ixit.test_facts.update_images["newer"] == "TH-100-1.5.0.clfw"


def test_ixit_matches_the_simulated_product():
    """The simulator's vendor key and label passwords are what the IXIT documents."""
    vendor = pytest.importorskip("lab.sim.vendor")
    ixit = load_ixit(PRODUCT / "ixit.yaml")
    assert ixit.update_mechanism("fw-update").signature.public_key_hex == vendor.vendor_public_key_hex()
    gen = ixit.auth_mechanism("root-password").password_generation
    samples = [p.read_text().strip() for p in (ROOT / "inventory" / "secrets" / "sim").glob("*.password")]
    assert samples
    for pw in samples:
        assert re.fullmatch(gen.pattern, pw) and len(pw) == gen.length


def test_ics_and_ixit_describe_the_same_product():
    same = {"vendor", "model", "firmware"}  # the IXIT also states facts (constrained) the ICS does not
    assert load_ics(PRODUCT / "ics.yaml").product.model_dump(include=same) == \
        load_ixit(PRODUCT / "ixit.yaml").product.model_dump(include=same)


# --- bad ICS ---------------------------------------------------------------------------------


def test_ics_unknown_provision(tmp_path, ics_data):
    data = copy.deepcopy(ics_data)
    data["provisions"]["5.1-9"] = {"support": "Y"}
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, "provisions.5.1-9", "unknown provision", "did you mean")


def test_ics_v2_id_in_a_v3_ics_names_its_replacement(tmp_path, ics_data):
    data = copy.deepcopy(ics_data)
    data["edition"] = "v3"
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v3")
    one_line(exc, path, "provisions.4-1", "in v3 it is 5.0-1")


def test_ics_edition_mismatch(tmp_path, ics_data):
    path = write(tmp_path, "ics.yaml", ics_data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v3")
    one_line(exc, path, "edition", "use --edition v2")


def test_ics_na_without_justification(tmp_path, ics_data):
    data = copy.deepcopy(ics_data)
    data["provisions"]["5.3-6"] = {"support": "N/A"}
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, "provisions.5.3-6.detail", "required when support is N/A", "justification")


def test_ics_n_without_reason(tmp_path, ics_data):
    data = copy.deepcopy(ics_data)
    data["provisions"]["5.3-4"] = {"support": "N", "detail": "  "}
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, "provisions.5.3-4.detail", "required when support is N")


@pytest.mark.parametrize("pid", ["5.2-1", "5.5-2"])  # mandatory and recommended, both unconditional
def test_ics_na_on_unconditional_provision(tmp_path, ics_data, pid):
    data = copy.deepcopy(ics_data)
    data["provisions"][pid] = {"support": "N/A", "detail": "we think it does not apply"}
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, f"provisions.{pid}.support", "only allowed for a conditional provision", "answer Y, or N")


@pytest.mark.parametrize("value, expected", [(True, "write Y, N"), ("maybe", "'Y', 'N' or 'N/A'"), (3, "'Y', 'N' or 'N/A'")])
def test_ics_wrong_type(tmp_path, ics_data, value, expected):
    data = copy.deepcopy(ics_data)
    data["provisions"]["5.1-1"] = {"support": value, "detail": "x"}
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, "provisions.5.1-1.support", expected)


def test_ics_missing_provision_and_field(tmp_path, ics_data):
    data = copy.deepcopy(ics_data)
    del data["provisions"]["5.11-1"]
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, "provisions", "5.11-1", "add each")
    data = copy.deepcopy(ics_data)
    del data["provisions"]["5.11-1"]["support"]
    path = write(tmp_path, "ics2.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, "provisions.5.11-1.support", "add it")


def test_ics_optional_row_may_be_left_out(tmp_path, ics_data):
    data = copy.deepcopy(ics_data)
    del data["provisions"]["4-1"]
    ics = load_ics(write(tmp_path, "ics.yaml", data), "v2")
    assert ics.applicability("4-1") == (True, "")


def test_ics_misspelt_field(tmp_path, ics_data):
    data = copy.deepcopy(ics_data)
    data["provisions"]["5.1-1"] = {"suport": "Y"}
    path = write(tmp_path, "ics.yaml", data)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, "provisions.5.1-1.suport", "did you mean 'support'")


@pytest.mark.parametrize("text, where", [
    ("edition: v2\nprovisions:\n  '5.1-1': {support: Y\n", "line 4"),
    ("edition: v2\nprovisions:\n  '5.1-1': {support: Y}\n  '5.1-1': {support: N}\n", "line 4: duplicate key '5.1-1'"),
])
def test_ics_yaml_errors(tmp_path, text, where):
    path = write(tmp_path, "ics.yaml", text)
    with pytest.raises(IcsError) as exc:
        load_ics(path, "v2")
    one_line(exc, path, where)


def test_ics_file_not_found(tmp_path):
    with pytest.raises(CertlabError, match="file not found"):
        load_ics(tmp_path / "none.yaml")


# --- bad IXIT --------------------------------------------------------------------------------


def _ixit_error(tmp_path: Path, data: object) -> tuple[pytest.ExceptionInfo, Path]:
    path = write(tmp_path, "ixit.yaml", data)
    with pytest.raises(IxitError) as exc:
        load_ixit(path)
    return exc, path


def test_ixit_wrong_type(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    data["15-Intf"][2]["port"] = "twenty-two"
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "ixit: 15-Intf[2].port (entry 'ssh')", "valid integer", "write a whole number")


def test_ixit_missing_field(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    del data["1-AuthMech"][0]["factor"]
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "ixit: 1-AuthMech[0].factor", "add it")


def test_ixit_network_interface_needs_port(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    del data["15-Intf"][2]["port"]
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "ixit: 15-Intf[2]", "needs 'port' and 'transport'")


def test_ixit_missing_list(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    del data["22-ExtSens"]
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "ixit: 22-ExtSens", "write [] if the product has none")


def test_ixit_dangling_reference(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    data["1-AuthMech"][0]["interfaces"] = ["uart-console", "telnet"]
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "ixit: 1-AuthMech[0].interfaces[1]", "'telnet' is not an id in 15-Intf", "use one of:")


def test_ixit_duplicate_id_and_port(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    data["15-Intf"].append({**data["15-Intf"][2], "id": "ssh2"})
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, f"ixit: 15-Intf[{len(data['15-Intf']) - 1}].port", "tcp/22 is already interface 'ssh'")


def test_ixit_bad_key_and_template(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    data["7-UpdMech"][0]["signature"]["public_key_hex"] = "abcd"
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "ixit: 7-UpdMech[0].signature", "64 hex digits")
    data = copy.deepcopy(ixit_data)
    data["7-UpdMech"][0]["delivery"]["apply_command"] = "update {file}"
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "7-UpdMech[0].delivery.apply_command", "{path}")


def test_ixit_unknown_field(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    data["15-Intf"][1]["debugg"] = True
    exc, path = _ixit_error(tmp_path, data)
    one_line(exc, path, "ixit: 15-Intf[1].debugg", "unknown field")


def test_ixit_v2_list_names_are_accepted(tmp_path, ixit_data):
    data = copy.deepcopy(ixit_data)
    data["11-SecComMech"] = data.pop("11-ComMech")
    data["15-PhyIntf"] = data.pop("15-Intf")
    ixit = load_ixit(write(tmp_path, "ixit.yaml", data))
    assert ixit.listening_ports() == {("tcp", 22), ("udp", 1900)}


def test_ixit_yaml_syntax_error(tmp_path):
    exc, path = _ixit_error(tmp_path, "product: {vendor: a, model: b}\n1-AuthMech: [\n")
    one_line(exc, path, "YAML syntax error at line 3", "fix the YAML")
