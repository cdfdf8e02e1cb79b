"""Inventories: the shipped ones validate, every class of bad input exits 2 with one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.errors import CertlabError, InventoryError
from lab.inventory import BenchConfig, load_inventory

ROOT = Path(__file__).resolve().parent.parent
GOOD = """\
all:
  vars:
    certlab: {lab: t1}
  children:
    benches:
      hosts:
        b1:
          ansible_host: 127.0.0.1
          certlab:
            power: {driver: scpi, resource: "TCPIP::127.0.0.1::5025::SOCKET", channel: 1}
            console: {url: /tmp/x/b1/console}
            network: {address: 127.0.0.1}
            ssh: {user: root, port: 2201, password: {env: T1_PASSWORD}}
            dut: {model: M, serial: S1, firmware: 1.0.0}
            sim: {flaws: [], lab_faults: []}
"""


def certlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("name", ["sim.yaml", "example-hardware.yaml"])
def test_shipped_inventories_validate(name):
    inv = load_inventory(ROOT / "inventory" / name)
    assert len(inv.benches) >= 4
    if name == "sim.yaml":
        assert all(b.simulated and not b.sim.flaws and not b.sim.lab_faults for b in inv.benches.values())
    else:
        assert not any(b.simulated for b in inv.benches.values())
        assert {b.power.driver for b in inv.benches.values()} == {"scpi", "relay_board"}


@pytest.mark.skipif(shutil.which("ansible-inventory") is None and not (Path(sys.executable).parent / "ansible-inventory").exists(),
                    reason="ansible-inventory is not installed")
@pytest.mark.parametrize("name", ["sim.yaml", "example-hardware.yaml"])
def test_ansible_parses_the_same_file(name):
    """Ansible reads our inventory as we do: the same hosts, groups and variables."""
    path = ROOT / "inventory" / name
    exe = Path(sys.executable).parent / "ansible-inventory"
    proc = subprocess.run([str(exe if exe.exists() else "ansible-inventory"), "-i", str(path), "--list"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    inv = load_inventory(path)
    hostvars = listed["_meta"]["hostvars"]
    assert set(hostvars) == set(inv.benches)
    for host, bench in inv.benches.items():
        again = BenchConfig(name=host, ansible_vars={k: v for k, v in hostvars[host].items() if k.startswith("ansible_")},
                            **hostvars[host]["certlab"])
        assert again == bench, f"{host}: ansible's variables give another bench"
        assert hostvars[host]["ansible_host"] == bench.network.address
    assert _groups_of(listed) == _groups_in_yaml(yaml.safe_load(path.read_text()))
    # Ansible's own word on the file ("[WARNING]: ... could not parse"); Python deprecation
    # warnings that third-party libraries print while ansible starts say nothing of the inventory
    assert not [line for line in proc.stderr.splitlines() if line.startswith(("[WARNING]", "[ERROR]"))], proc.stderr


def _groups_of(listed: dict) -> dict[str, set[str]]:
    """{group: its direct hosts} from `ansible-inventory --list` (empty groups left out)."""
    return {name: set(group.get("hosts", [])) for name, group in listed.items()
            if name != "_meta" and group.get("hosts")}


def _groups_in_yaml(data: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def walk(group: dict, name: str) -> None:
        if group.get("hosts"):
            found.setdefault(name, set()).update(group["hosts"])
        for child, sub in (group.get("children") or {}).items():
            walk(sub or {}, child)

    walk(data["all"], "all")
    return found


def _mutate(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BAD = {
    "unknown driver": (_mutate(GOOD, "driver: scpi", "driver: scip"), ["b1", "power.driver", "scip", "installed: command, http-pdu, relay_board, scpi", "did you mean 'scpi'"]),
    "missing field": (_mutate(GOOD, "            console: {url: /tmp/x/b1/console}\n", ""), ["b1", "console", "add it"]),
    "wrong type": (_mutate(GOOD, "channel: 1", "channel: one"), ["b1", "power.channel", "whole number"]),
    "unknown flaw id": (_mutate(GOOD, "flaws: []", "flaws: [open_telnet]"), ["b1", "sim.flaws", "open_telnet", "universal_default_password"]),
    "unknown lab fault": (_mutate(GOOD, "lab_faults: []", "lab_faults: [fire]"), ["b1", "sim.lab_faults", "fire"]),
    "unknown field": (_mutate(GOOD, "serial: S1", "serail: S1"), ["b1", "serail", "did you mean 'serial'"]),
    "bad regex": (_mutate(GOOD, "url: /tmp/x/b1/console}", "url: /tmp/x/b1/console, shell_prompt: '(['}"), ["b1", "console.shell_prompt", "regular expression"]),
    "duplicate bench key": (GOOD + GOOD[GOOD.index("        b1:"):], ["duplicate key 'b1'", "line"]),
    "duplicate bench across groups": (
        GOOD + "    more:\n      hosts:\n" + GOOD[GOOD.index("        b1:"):],
        ["b1", "defined twice"],
    ),
    "shared relay channel": (
        GOOD + GOOD[GOOD.index("        b1:"):].replace("b1", "b2").replace("127.0.0.1\n", "127.0.0.2\n")
        .replace("address: 127.0.0.1}", "address: 127.0.0.2}"),
        ["b2", "power channel 1", "b1"],
    ),
    "yaml syntax error": (_mutate(GOOD, "channel: 1}", "channel: 1"), ["YAML syntax error", "line"]),
    "address mismatch": (_mutate(GOOD, "ansible_host: 127.0.0.1", "ansible_host: 127.0.0.9"), ["ansible_host", "127.0.0.9"]),
    "not an ip": (_mutate(GOOD, "address: 127.0.0.1}", "address: dut.local}"), ["network.address"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inventory_exits_2_with_one_clear_line(tmp_path, case):
    text, needles = BAD[case]
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError):
        load_inventory(path)
    proc = certlab("inventory", "check", "-i", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    message = " ".join(lines)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert str(path) in message.replace("\n", "")
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_missing_file_exits_2(tmp_path):
    proc = certlab("lab", "check", "-i", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_secret_reference_is_resolved_only_on_use_and_never_printed(tmp_path, monkeypatch):
    path = tmp_path / "inv.yaml"
    path.write_text(GOOD)
    inv = load_inventory(path)
    ref = inv.benches["b1"].ssh.password
    assert "T1_PASSWORD" in repr(ref)
    monkeypatch.delenv("T1_PASSWORD", raising=False)
    with pytest.raises(CertlabError, match="T1_PASSWORD is not set"):
        inv.resolve_secret(ref)
    monkeypatch.setenv("T1_PASSWORD", "s3cret-value")
    assert inv.resolve_secret(ref) == "s3cret-value"
    proc = certlab("inventory", "check", "-i", str(path))
    assert proc.returncode == 0 and "s3cret" not in proc.stdout


def test_inventory_round_trips_through_yaml():
    data = yaml.safe_load((ROOT / "inventory" / "sim.yaml").read_text())
    assert data["all"]["children"]["benches"]["hosts"]["bench1"]["ansible_host"] == "10.203.1.2"
