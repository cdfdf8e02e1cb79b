"""A simulated lab whose benches are powered by the `command` and `http-pdu` backends: `certlab lab up`
starts their simulated relays, and a real run powers each DUT through them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.errors import InventoryError
from lab.inventory import load_inventory
from lab.sim.genlab import write_sim_inventory
from lab.sim.lab import SimLab, processes_mentioning
from lab.sim.netns import unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
LAB = "tpow"
PDU_PORT = 17850


def certlab(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200"})


def power_lab(folder: Path, *, netns: bool) -> Path:
    """Two benches: b1 switched by the relay's control program, b2 by a NETIO PDU on loopback."""
    path = write_sim_inventory(folder, LAB, 2, scpi_port=17830, subnet=236, netns=netns, ssh_base_port=17840)
    doc = yaml.safe_load(path.read_text())
    hosts = doc["all"]["children"]["benches"]["hosts"]
    program = f"/tmp/certlab-sim/{LAB}/relays/ctl0"
    hosts["b1"]["certlab"]["power"] = {"driver": "command", "channel": 1, "on": [program, "on", "{channel}"],
                                       "off": f"{program} off {{channel}}", "status": [program, "status", "{channel}"]}
    (folder / "secrets" / "pdu.password").write_text("pdu-Secret-42\n")
    hosts["b2"]["certlab"]["power"] = {"driver": "http-pdu", "url": f"http://127.0.0.1:{PDU_PORT}/netio.json",
                                       "channel": 2, "user": "netio", "password": {"file": "secrets/pdu.password"}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_plans_a_control_socket_relay_and_a_pdu(tmp_path: Path):
    inv = load_inventory(power_lab(tmp_path, netns=False))
    plans = SimLab(inv).relay_plans()
    assert {p.kind: (p.endpoint, p.channels) for p in plans.values()} == {
        "ctl": (f"/tmp/certlab-sim/{LAB}/relays/ctl0", {1: "b1"}),
        "netio": (f"127.0.0.1:{PDU_PORT}", {2: "b2"}),
    }
    (pdu,) = [p for p in plans.values() if p.kind == "netio"]
    assert pdu.auth == ("netio", "pdu-Secret-42")


@pytest.mark.parametrize("block, needle", [
    ({"driver": "command", "on": "true", "off": "true", "status": "echo on"}, "runs its simulated relay's control program"),
    ({"driver": "http-pdu", "url": "http://192.0.2.9/netio.json", "channel": 1}, "a simulated PDU answers on loopback"),
])
def test_a_simulated_bench_must_name_a_simulated_relay(tmp_path: Path, block: dict, needle: str):
    path = power_lab(tmp_path, netns=False)
    doc = yaml.safe_load(path.read_text())
    doc["all"]["children"]["benches"]["hosts"]["b1"]["certlab"]["power"] = block
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InventoryError, match=needle):
        SimLab(load_inventory(path)).relay_plans()


def test_a_run_powers_each_dut_through_the_command_and_the_pdu_backends(tmp_path: Path):
    inv = power_lab(tmp_path, netns=unavailable_reason() is None)
    try:
        up = certlab("lab", "up", "-i", str(inv))
        assert up.returncode == 0, up.stdout + up.stderr
        run = certlab("run", "--suite", "testsuites/examples", "-i", str(inv), "--out", str(tmp_path / "reports"))
        assert run.returncode == 0, run.stdout + run.stderr
        (run_dir,) = (tmp_path / "reports").iterdir()
        results = json.loads((run_dir / "verdicts.json").read_text())["results"]
        assert {(r["bench"], r["verdict"]) for r in results} == {("b1", "PASS"), ("b2", "PASS")}, results
        drivers = {}
        for name in ("b1", "b2"):
            equipment = json.loads((run_dir / "evidence" / name / "equipment.json").read_text())
            drivers[name] = equipment["power"]["driver"]
        assert drivers == {"b1": "command", "b2": "http-pdu"}
        logs = {p.name: p.read_text() for p in Path(f"/tmp/certlab-sim/{LAB}/relays").glob("*.log")}
        assert "channel 1 ON -> OK ON" in logs["ctl-ctl0.log"]  # the relay switched the bench host's power
        assert "channel 2 ON -> OK ON" in logs[f"netio-127.0.0.1-{PDU_PORT}.log"]
        assert "pdu-Secret-42" not in "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    finally:
        down = certlab("lab", "down", "-i", str(inv))
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(f"/tmp/certlab-sim/{LAB}/") == []
