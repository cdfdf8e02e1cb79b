"""inventory/sim-labfaults.yaml proves lab faults never become FAILs only if it is built right:
every lab fault once, on a conforming DUT, and a faulty relay never shared with a healthy bench.
Fast: reads the file, starts nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lab.flaws import LAB_FAULTS
from lab.inventory import Inventory, ScpiPowerConfig, load_inventory

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventory" / "sim-labfaults.yaml"
RELAY_FAULTS = {"relay_unresponsive", "bench_dies_midrun"}  # lab/sim/lab.py RELAY_FAULTS: they break the relay process


def _inv() -> Inventory:
    return load_inventory(INVENTORY)


def _instrument(bench) -> str:
    """The relay process a bench's power goes through (lab/sim/lab.py groups benches the same way)."""
    power = bench.power
    return power.resource if isinstance(power, ScpiPowerConfig) else str(Path(power.url))


def test_every_lab_fault_once_and_nothing_else():
    inv = _inv()
    assert inv.lab == "labfaults"
    faults = Counter(f for b in inv.benches.values() for f in b.sim.lab_faults)
    assert faults == Counter(list(LAB_FAULTS)), "each lab fault must appear on exactly one bench"
    assert all(len(b.sim.lab_faults) <= 1 for b in inv.benches.values()), "one fault per bench keeps causes apart"


def test_every_dut_conforming_and_simulated():
    inv = _inv()
    for bench in inv.benches.values():
        assert bench.sim is not None and bench.sim.dut == "certlab", bench.name
        assert bench.sim.flaws == [], f"{bench.name}: a product flaw would make a FAIL legitimate"
        assert bench.dut.model == "TH-100", bench.name


def test_at_least_two_healthy_benches():
    healthy = [b.name for b in _inv().benches.values() if not b.sim.lab_faults]
    assert len(healthy) >= 2, healthy


def test_faulty_relays_on_their_own_instruments():
    inv = _inv()
    users: dict[str, list[str]] = {}
    for bench in inv.benches.values():
        users.setdefault(_instrument(bench), []).append(bench.name)
    for bench in inv.benches.values():
        if RELAY_FAULTS & set(bench.sim.lab_faults):
            assert users[_instrument(bench)] == [bench.name], (
                f"{bench.name}'s faulty relay is shared with {users[_instrument(bench)]}")


def test_simulator_plans_faulty_relays_alone():
    """The simulator's own grouping (pure planning, nothing started) agrees with the test above."""
    from lab.sim.lab import RELAY_FAULTS as SIM_RELAY_FAULTS, SimLab

    assert SIM_RELAY_FAULTS == RELAY_FAULTS
    plans = SimLab(_inv()).relay_plans()
    for plan in plans.values():
        if plan.faults:
            assert len(plan.channels) == 1, f"relay {plan.id} with faults {sorted(plan.faults)} serves {plan.channels}"
    healthy = [p for p in plans.values() if not p.faults]
    assert healthy, "the healthy benches need a healthy relay"


def test_names_follow_the_lab_conventions():
    inv = _inv()
    for i, bench in enumerate(inv.benches.values(), start=1):
        net = bench.network
        assert net.netns == f"cl-labfaults-{i}" and net.interface == f"clh-labfaults-{i}", bench.name
        assert len(net.interface) <= 15, "Linux interface names are at most 15 characters"
        assert net.address.startswith("10.203.6") and 61 <= int(net.address.split(".")[2]) <= 69, bench.name
        assert bench.console.url == f"/tmp/certlab-sim/labfaults/{bench.name}/console"
        assert bench.ssh.password is not None and bench.ssh.password.file == f"secrets/sim-labfaults/{bench.name}.password"
        assert inv.resolve_path(bench.ssh.password.file).is_file(), bench.name
    assert inv.firmware_dir == "/tmp/certlab-sim/labfaults/firmware"


def test_same_capabilities_everywhere_so_work_can_move_to_a_healthy_bench():
    inv = _inv()
    caps = {tuple(getattr(b, "capabilities", ())) for b in inv.benches.values()}
    assert len(caps) == 1, f"benches differ in capabilities: {caps}"
