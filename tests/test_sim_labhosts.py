"""The two-host simulated lab (inventory/sim-labhosts.yaml) and `SimLab(..., labhost=H)`'s planning.

Nothing starts here: these check what one host's `lab up --labhost H` would start and where it
keeps its state, so two hosts of one inventory never share a process, a port or a file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from lab.errors import InventoryError
from lab.inventory import Inventory, load_inventory
from lab.sim.genlab import write_sim_inventory
from lab.sim.lab import SimLab

INVENTORY = Path(__file__).resolve().parent.parent / "inventory" / "sim-labhosts.yaml"
OTHER_SIM_INVENTORIES = ["sim.yaml", "sim-flaws.yaml", "sim-labfaults.yaml", "sim-offtheshelf.yaml", "sim-vm.yaml"]


def _inv() -> Inventory:
    return load_inventory(INVENTORY)


def test_two_hosts_of_two_conforming_th100_each_spares_for_each_other():
    inv = _inv()
    by_host: dict[str, list[str]] = {}
    for bench in inv.benches.values():
        assert bench.labhost, f"bench {bench.name} names no labhost"
        by_host.setdefault(bench.labhost, []).append(bench.name)
        assert bench.sim is not None and not bench.sim.flaws and not bench.sim.lab_faults
    assert sorted(by_host) == ["rack-a", "rack-b"] and all(len(b) == 2 for b in by_host.values())
    assert len({b.dut.model for b in inv.benches.values()}) == 1
    assert len({tuple(sorted(b.capabilities)) for b in inv.benches.values()}) == 1


def test_own_lab_name_namespaces_and_subnets():
    inv = _inv()
    others = [load_inventory(INVENTORY.parent / name) for name in OTHER_SIM_INVENTORIES]
    assert inv.lab not in {o.lab for o in others}
    ours = {b.network.netns for b in inv.benches.values()} | {b.network.interface for b in inv.benches.values()}
    theirs = {n for o in others for b in o.benches.values() for n in (b.network.netns, b.network.interface)}
    assert not ours & theirs
    nets = {ipaddress.ip_network(f"{b.network.address}/{b.network.prefix}", strict=False) for b in inv.benches.values()}
    other_nets = {ipaddress.ip_network(f"{b.network.address}/{b.network.prefix}", strict=False)
                  for o in others for b in o.benches.values()}
    assert len(nets) == 4 and not any(n.overlaps(m) for n in nets for m in other_nets)
    assert not any(n.overlaps(ipaddress.ip_network("10.203.250.0/24")) for n in nets)  # the hosts' own links


def test_a_labhost_brings_up_only_its_benches_with_its_own_state_folder():
    inv = _inv()
    a, b, whole = SimLab(inv, labhost="rack-a"), SimLab(inv, labhost="rack-b"), SimLab(inv)
    assert sorted(a.benches) == ["ra1", "ra2"] and sorted(b.benches) == ["rb1", "rb2"]
    assert sorted(whole.benches) == ["ra1", "ra2", "rb1", "rb2"]
    assert a.host_dir != b.host_dir and a.host_dir.parent == whole.dir == whole.host_dir
    assert a.forkserver_socket != b.forkserver_socket
    assert {p.channels[1] for p in a.relay_plans().values()} == {"ra1"}
    assert {p.channels[1] for p in b.relay_plans().values()} == {"rb1"}
    # a host's down sweeps its own folder and benches, never the other host's
    assert not any(m.startswith((str(b.host_dir), *(str(b.bench_dir(n)) + "/" for n in b.benches)))
                   for m in a._sweep_markers())


def test_an_unknown_labhost_is_one_line_naming_the_field_and_the_hosts():
    with pytest.raises(InventoryError, match=r"no simulated bench has labhost 'rack-c'.*certlab\.labhost.*rack-a, rack-b"):
        SimLab(_inv(), labhost="rack-c")


def test_loopback_ports_do_not_depend_on_which_host_comes_up(tmp_path: Path):
    """Loopback benches sharing a cloud port are offset over the whole inventory, not per host."""
    path = write_sim_inventory(tmp_path, "tlhp", 3, scpi_port=17790, subnet=232, netns=False)
    doc = yaml.safe_load(path.read_text())
    for i, host in ((1, "ha"), (2, "hb"), (3, "ha")):
        doc["all"]["children"]["benches"]["hosts"][f"b{i}"]["certlab"]["labhost"] = host
    path.write_text(yaml.safe_dump(doc))
    inv = load_inventory(path)
    whole, hb = SimLab(inv), SimLab(inv, labhost="hb")
    assert hb._cloud_addr(inv.benches["b2"]) == whole._cloud_addr(inv.benches["b2"])
    assert hb._web_addr(inv.benches["b2"]) == whole._web_addr(inv.benches["b2"])
