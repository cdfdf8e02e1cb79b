"""lab.secboot: the judgements of 5.7-1-2 and 5.7-2-2 on small inputs (no bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import firmware
from lab.errors import CertlabError
from lab.ixit import Ixit, load_ixit
from lab.secboot import (AlertOutcome, BootOutcome, base_release, flows_of, refusal_lines, secure_boot_entry,
                         suspended_mechanisms)
from lab.sim import vendor
from lab.traffic.flows import Flow

TH100 = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ixit.yaml"
LOG = "U-Boot\r\n## Checking image in slot b ... BAD (payload hash mismatch)\r\n## Checking image in slot a ... OK (1.5.0)\r\n"


@pytest.fixture(scope="module")
def ixit() -> Ixit:
    return load_ixit(TH100)


def test_the_entry_needs_placement_and_refusal(ixit):
    assert secure_boot_entry(ixit).id == "verified-boot"
    bare = Ixit.model_validate({**ixit.model_dump(by_alias=True),
                                "20-SecBoot": [{"id": "vb", "description": "verified boot"}]})
    with pytest.raises(CertlabError, match="20-SecBoot: no entry gives test_placement"):
        secure_boot_entry(bare)


def test_refusal_found_by_the_documented_pattern(ixit):
    pattern = secure_boot_entry(ixit).refusal_pattern
    assert refusal_lines(LOG, pattern) == ("## Checking image in slot b ... BAD (payload hash mismatch)",)
    assert refusal_lines("## Checking image in slot b ... BAD (empty)", pattern) == ()


def test_boot_outcomes():
    ok = BootOutcome("a tampered image", "1.2.0", "1.5.0", "1.5.0", ("## ... BAD",))
    assert ok.problem() is None
    booted = BootOutcome("a tampered image", "1.2.0", "1.5.0", "1.2.0", ())
    assert "booted a tampered image (it now runs 1.2.0" in booted.problem()
    other = BootOutcome("a tampered image", "1.2.0", "1.5.0", "1.4.0", ())
    assert "neither its firmware 1.5.0 nor the forged 1.2.0" in other.problem()
    silent = BootOutcome("a tampered image", "1.2.0", "1.5.0", "1.5.0", ())
    assert "shows no refusal" in silent.problem()


def test_base_release_differs_from_the_running_version():
    hdr = {v: firmware.parse_image(vendor.build_release("M", v, 1, size=32)) for v in ("1.2.0", "1.5.0")}
    headers = {"older": hdr["1.2.0"], "newer": hdr["1.5.0"]}
    assert base_release(headers, "1.5.0") == "older"
    assert base_release({"newer": hdr["1.5.0"]}, "1.4.0") == "newer"
    with pytest.raises(CertlabError, match="every release file has the running version 1.5.0"):
        base_release({"newer": hdr["1.5.0"]}, "1.5.0")


def test_alert_problems():
    good = AlertOutcome(("SECURITY ALERT: x",), "tamper: DETECTED", True, ())
    assert good.problems(console_documented=True, status_documented=True) == []
    bad = AlertOutcome((), "tamper: none", False, ("telemetry: tcp 10.0.0.2:5000 -> 10.0.0.1:8883",))
    problems = bad.problems(console_documented=True, status_documented=True)
    assert len(problems) == 3 and "no tamper alert on the console" in problems[0]
    assert "'tamper: none'" in problems[1] and "not restricted as documented: telemetry" in problems[2]
    assert bad.problems(console_documented=False, status_documented=False) == [problems[2]]


def test_flows_of_the_suspended_mechanisms(ixit):
    mechs = suspended_mechanisms(ixit, ["telemetry"])
    flows = [Flow("tcp", ("10.203.1.2", 40000), ("10.203.1.1", 8883), 0.0),
             Flow("tcp", ("10.203.1.1", 50000), ("10.203.1.2", 22), 0.0),
             Flow("tcp", ("10.203.9.9", 40001), ("10.203.1.1", 8883), 0.0)]
    assert flows_of(flows, mechs, "10.203.1.2") == ("telemetry: tcp 10.203.1.2:40000 -> 10.203.1.1:8883",)
    with pytest.raises(CertlabError, match="'nope' is not an id in 11-ComMech"):
        suspended_mechanisms(ixit, ["nope"])
