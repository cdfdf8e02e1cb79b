"""The judging half of the 5.5 communication test cases, on hand-made flows (no bench, no capture).

Which mechanisms each case judges (5.5-6-2: every one carrying CSPs; 5.5-7-2: only the remotely
reachable ones), that a CSP in clear fails them, and that a mechanism whose IXIT entry does not
say whether it is remotely reachable is undecidable (naming the field), never guessed.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from suitelib import load_suite_module  # tests/suitelib.py
import yaml

from lab.errors import CertlabError
from lab.ixit import load_ixit

ROOT = Path(__file__).resolve().parents[1]
TH100 = ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml"
DUT = "10.203.45.2"


@pytest.fixture(scope="module")
def comm() -> ModuleType:
    """The suite module, imported as a library (its `import support` needs the suite folder on the path)."""
    return load_suite_module("test_5_5_communication.py", "certlab_suite_5_5")


def traffic(comm: ModuleType, *flows) -> object:
    return comm.Traffic(pcap="x.pcap", window_s=12.0, interval_s=5.0, flows=list(flows),
                        exercised={"ssh-session": "SSH login by the lab"})


def telemetry_flow(comm: ModuleType, payload: bytes):
    return comm.Flow("tcp", (DUT, 40000), ("10.203.45.1", 8883), 0.0, 6, payload, b"OK\n", True, 3)


def ssh_flow(comm: ModuleType):
    return comm.Flow("tcp", ("10.203.45.1", 50000), (DUT, 22), 0.0, 20, b"SSH-2.0-paramiko\r\n\x00\x01",
                     b"SSH-2.0-dropbear\r\n\x00\x01", True, 10)


def test_csp_mechanisms_come_from_the_ixit(comm: ModuleType) -> None:
    ixit = load_ixit(TH100)
    assert comm.csp_mechanisms(ixit) == {"telemetry", "ssh-session"}
    remote = {m.id for m in ixit.com_mech if m.id in comm.csp_mechanisms(ixit) and comm.remote_access(m)}
    assert remote == {"ssh-session"}  # 5.5-7-2's scope: the outgoing telemetry is 5.5-6-2's, not 5.5-7-2's


def test_a_csp_in_clear_fails_its_mechanism_and_the_scan(comm: ModuleType) -> None:
    ixit = load_ixit(TH100)
    tele = next(m for m in ixit.com_mech if m.id == "telemetry")
    t = traffic(comm, telemetry_flow(comm, b"LOGIN TH100-F005 0123456789abcdef\n"), ssh_flow(comm))
    summary, problems = comm.check_mechanism(tele, t, DUT, [], csp=True)
    assert problems and "does not start with a TLS handshake record" in problems[0]
    findings, found = comm.scan_clear_text(t, comm.csp_markers("Secret-Pw-1"), ["Secret-Pw-1"])
    assert [f["found"] for f in findings] == [["credential word /\\bLOGIN\\b/"]] and "LOGIN" in found[0]
    inbound = [f for f in t.flows if f.server[0] == DUT]  # 5.5-7-2 scans the connections made to the DUT
    assert comm.scan_clear_text(t, comm.csp_markers("Secret-Pw-1"), [], inbound) == ([], [])


def test_an_unencrypted_csp_mechanism_fails_even_without_markers(comm: ModuleType, tmp_path: Path) -> None:
    data = yaml.safe_load(TH100.read_text())
    mech = data["11-ComMech"][0]
    mech.update(tls=False, encrypted=False, protocol="JSON lines")
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data))
    tele = next(m for m in load_ixit(path).com_mech if m.id == "telemetry")
    _, problems = comm.check_mechanism(tele, traffic(comm, telemetry_flow(comm, b'{"t": 21.5}\n')), DUT, [], csp=True)
    assert problems and "carries critical security parameters without encryption" in problems[0]


def test_a_mechanism_without_remote_access_is_undecidable_naming_the_field(comm: ModuleType, tmp_path: Path) -> None:
    data = yaml.safe_load(TH100.read_text())
    del data["11-ComMech"][1]["remote_access"]
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data))
    ixit = load_ixit(path)  # the schema accepts it: only the tests that need the fact stop
    ssh = next(m for m in ixit.com_mech if m.id == "ssh-session")
    assert ssh.remote_access is None
    with pytest.raises(CertlabError, match="11-ComMech entry 'ssh-session': field remote_access is not set"):
        comm.check_mechanism(ssh, traffic(comm, ssh_flow(comm)), DUT, [], csp=True)
    assert not isinstance(CertlabError("x"), AssertionError)  # INCONCLUSIVE (test error), never FAIL


# --- a documented clear-text login (cleartext_telnet_login) --------------------------------------

TH100T = ROOT / "inventory" / "products" / "TH-100T" / "ixit.yaml"


class _Bench:
    """What login_account reads of a bench: the lab's account and its password."""

    def __init__(self, user: str = "root", password: str | None = "Secret-Pw-1"):
        self.config = type("C", (), {"ssh": type("S", (), {"user": user})()})()
        self._password = password

    def ssh_password(self):
        return self._password


def test_the_login_account_is_the_one_the_ixit_names(comm: ModuleType) -> None:
    ixit = load_ixit(TH100T)
    telnet = next(m for m in ixit.com_mech if m.id == "telnet-session")
    assert comm.login_account(ixit, telnet, _Bench()) == ("root", "Secret-Pw-1")
    why = comm.login_account(ixit, telnet, _Bench(user="admin"))
    assert isinstance(why, str) and "'root'" in why  # never another account, never a guess
    assert "no password" in comm.login_account(ixit, telnet, _Bench(password=None))


def test_an_accepted_clear_text_login_fails_with_port_user_and_flow(comm: ModuleType) -> None:
    from lab.logins import LoginExchange

    ixit = load_ixit(TH100T)
    telnet = next(m for m in ixit.com_mech if m.id == "telnet-session")
    flow = comm.Flow("tcp", ("10.203.45.1", 41000), (DUT, 23), 0.0, 12, b"root\r\nSecret-Pw-1\r\n",
                     b"login: Password: # ", True, 6)
    t = traffic(comm, flow)
    t.logins["telnet-session"] = LoginExchange("telnet", DUT, 23, "root", "accepted")
    problems = comm.clear_logins([telnet], t, DUT, ["Secret-Pw-1"])
    assert len(problems) == 1
    assert problems[0].startswith("telnet on port 23 accepted the login of user root in clear text (captured in x.pcap")
    assert flow.name in problems[0]
    t.logins["telnet-session"].outcome = "rejected"
    assert comm.clear_logins([telnet], t, DUT, ["Secret-Pw-1"]) == []
