"""Power drivers come from the `certlab.power` entry points: certlab's own and a third party's plugin alike."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.bench import Bench
from lab.drivers.power import RelayBoardPower, ScpiPower
from lab.drivers.power_command import CommandPower, CommandPowerConfig
from lab.drivers.power_http import HttpPduConfig, NetioJsonPower
from lab.drivers.registry import ENTRY_POINT_GROUP, PowerConfigError, PowerRegistry
from lab.errors import InventoryError
from lab.inventory import BenchConfig, RelayBoardPowerConfig, ScpiPowerConfig, load_inventory

BUILT_IN = ["command", "http-pdu", "relay_board", "scpi"]


def _inventory(folder: Path, power: str, *, extra_bench: str = "") -> Path:
    path = folder / "inv.yaml"
    path.write_text(textwrap.dedent(f"""\
        all:
          vars:
            certlab: {{lab: tpw}}
          children:
            benches:
              hosts:
                b1:
                  certlab:
                    power: {power}
                    console: {{url: /tmp/x/b1/console}}
                    network: {{address: 127.0.0.1}}
                    dut: {{model: M, serial: S1, firmware: 1.0.0}}
        """) + extra_bench)
    return path


def _error(folder: Path, power: str) -> str:
    with pytest.raises(InventoryError) as info:
        load_inventory(_inventory(folder, power))
    message = str(info.value)
    assert "\n" not in message and str(folder / "inv.yaml") in message
    return message


# --- the installed registry ------------------------------------------------------------------

def test_certlabs_own_backends_are_entry_points():
    registry = PowerRegistry.installed()
    assert set(BUILT_IN) <= set(registry.names())
    assert registry.backend("scpi").config is ScpiPowerConfig
    assert registry.backend("relay_board").config is RelayBoardPowerConfig
    assert registry.backend("command").config is CommandPowerConfig
    assert registry.backend("http-pdu").config is HttpPduConfig


def test_each_backend_opens_its_driver(tmp_path: Path):
    registry = PowerRegistry.installed()
    powers = {
        "scpi": ('{driver: scpi, resource: "TCPIP::127.0.0.1::5025::SOCKET", channel: 2}', ScpiPower),
        "relay_board": ("{driver: relay_board, url: /dev/ttyUSB0, channel: 3}", RelayBoardPower),
        "command": ("{driver: command, on: 'x on', off: 'x off', status: 'x status'}", CommandPower),
        "http-pdu": ("{driver: http-pdu, url: 'http://127.0.0.1:9/netio.json', channel: 4}", NetioJsonPower),
    }
    for name, (power, cls) in powers.items():
        inv = load_inventory(_inventory(tmp_path, power))
        bench = Bench(inv, "b1", evidence_dir=tmp_path / "ev")
        assert isinstance(bench.power, cls), name
        assert bench.power.bench == "b1" and bench.power.channel == inv.benches["b1"].power.channel
        assert bench.equipment()["power"]["driver"] == name
        bench.close()
        assert registry.backend(name).summary


def test_every_existing_inventory_still_validates_unchanged():
    root = Path(__file__).resolve().parent.parent / "inventory"
    for path in sorted(root.glob("*.yaml")):
        if path.name == "lab-profile.yaml":
            continue
        inv = load_inventory(path)
        assert {b.power.driver for b in inv.benches.values()} <= {"scpi", "relay_board"}
        dumped = next(iter(inv.benches.values())).model_dump(mode="json")["power"]
        assert "resource" in dumped or "url" in dumped  # a backend's own fields survive serialisation


def test_bench_config_built_in_code_validates_power_by_its_backend():
    bench = BenchConfig(name="b", power={"driver": "command", "on": ["a"], "off": ["b"], "status": ["c"]},
                        console={"url": "/tmp/c"}, network={"address": "127.0.0.1"},
                        dut={"model": "M", "serial": "S", "firmware": "1"})
    assert isinstance(bench.power, CommandPowerConfig)
    with pytest.raises(ValueError, match="no installed power driver"):
        BenchConfig(name="b", power={"driver": "nope"}, console={"url": "/tmp/c"}, network={"address": "127.0.0.1"},
                    dut={"model": "M", "serial": "S", "firmware": "1"})


# --- one clear line for bad power blocks -----------------------------------------------------

@pytest.mark.parametrize("block, needles", [
    ("{driver: foo, url: x}", ["bench 'b1'", "certlab.power.driver", "'foo' is no installed power driver",
                                "installed: command, http-pdu, relay_board, scpi", "fix:", ENTRY_POINT_GROUP]),
    ("{driver: http_pdu, url: x}", ["did you mean 'http-pdu'"]),
    ("{url: /dev/ttyUSB0, channel: 1}", ["certlab.power.driver", "missing", "add 'driver: NAME'"]),
    ("[scpi]", ["certlab.power", "mapping"]),
    ("{driver: command, on: 'x on', off: 'x off'}", ["certlab.power.status", "add it"]),
    ("{driver: command, on: 'x on', off: 'x off', status: 'x', colour: red}", ["certlab.power.colour", "unknown field"]),
    ("{driver: command, on: 'x \"on', off: 'x off', status: 'x'}", ["certlab.power.on", "quoting"]),
    ("{driver: command, on: [], off: 'x off', status: 'x'}", ["certlab.power.on", "empty command"]),
    ("{driver: command, on: [x], off: [y], status: [z], shell: true}", ["with shell: true", "one string"]),
    ("{driver: command, on: x, off: y, status: z, status_on: '(['}", ["certlab.power.status_on", "regular expression"]),
    ("{driver: command, on: x, off: y, status: z, env: {'1BAD': v}}", ["certlab.power.env", "environment variable name"]),
    ("{driver: http-pdu, url: 'ftp://pdu/netio.json', channel: 1}", ["certlab.power.url", "netio.json"]),
    ("{driver: http-pdu, url: 'http://admin:pw@pdu/netio.json', channel: 1}", ["certlab.power.url", "no credentials"]),
    ("{driver: http-pdu, url: 'http://pdu/netio.json', channel: 1, user: admin}", ["power.user and power.password"]),
    ("{driver: http-pdu, url: 'http://pdu/netio.json', channel: 1, ca_file: ca.pem}", ["power.ca_file", "https"]),
    ("{driver: http-pdu, url: 'http://pdu/netio.json', channel: 0}", ["certlab.power.channel", "larger"]),
    ("{driver: scpi, resource: 'TCPIP::127.0.0.1::5025::SOCKET', channel: one}", ["certlab.power.channel", "whole number"]),
])
def test_bad_power_block_is_one_line_naming_the_field(tmp_path: Path, block: str, needles: list[str]):
    message = _error(tmp_path, block)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_two_benches_on_one_pdu_outlet_are_refused(tmp_path: Path):
    power = "{driver: http-pdu, url: 'http://pdu/netio.json', channel: 2}"
    second = textwrap.indent(textwrap.dedent(f"""\
        b2:
          certlab:
            power: {power}
            console: {{url: /tmp/x/b2/console}}
            network: {{address: 127.0.0.2}}
            dut: {{model: M, serial: S2, firmware: 1.0.0}}
        """), " " * 8)
    with pytest.raises(InventoryError, match="same power channel 2 of http://pdu/netio.json"):
        load_inventory(_inventory(tmp_path, power, extra_bench=second))


# --- a third party's plugin, installed for real (a dist-info on sys.path) -------------------

PLUGIN = '''
from typing import Literal
from lab.drivers.registry import PowerBackend, PowerConfigBase

class ToyRelayConfig(PowerConfigBase):
    driver: Literal["toy-relay"]
    board: str
    colour: Literal["red", "green"] = "red"

class ToyRelay:
    """Keeps its state in a file, so a test sees what it switched."""
    def __init__(self, config, context):
        self.config, self.bench, self.identity = config, context.bench, None
        self.state = context.path(config.board)
    def on(self): self.state.write_text("on")
    def off(self): self.state.write_text("off")
    def is_on(self): return self.state.exists() and self.state.read_text() == "on"
    def cycle(self, off_time=1.0): self.off(); self.on()
    def identify(self): return f"toy relay {self.config.colour}"
    def close(self): pass

BACKEND = PowerBackend(ToyRelayConfig, ToyRelay, "a toy relay from a plugin package")
'''


@pytest.fixture(autouse=True)
def _forget_the_plugin_module() -> Iterator[None]:
    """Each test installs its own copy of the plugin; none may find another test's module imported."""
    yield
    for name in [m for m in sys.modules if m == "toyrelay" or m.startswith("toyrelay.")]:
        del sys.modules[name]


def _install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch, entry_points: str, module: str = PLUGIN) -> None:
    (site / "toyrelay").mkdir(parents=True)
    (site / "toyrelay" / "__init__.py").write_text(module)
    dist = site / "certlab_toy_relay-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: certlab-toy-relay\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}")
    monkeypatch.syspath_prepend(str(site))


def test_a_plugin_package_adds_a_backend_without_editing_certlab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _install_plugin(tmp_path / "site", monkeypatch, "toy-relay = toyrelay:BACKEND\n")
    assert "toy-relay" in PowerRegistry.installed().names()
    inv = load_inventory(_inventory(tmp_path, "{driver: toy-relay, board: board.state, colour: green, channel: 5}"))
    cfg = inv.benches["b1"].power
    assert type(cfg).__name__ == "ToyRelayConfig" and cfg.colour == "green" and cfg.channel == 5
    bench = Bench(inv, "b1", evidence_dir=tmp_path / "ev")
    bench.power.on()
    assert (tmp_path / "board.state").read_text() == "on" and bench.power.is_on()
    bench.power.off()
    assert not bench.power.is_on()
    assert bench.equipment()["power"] == {"driver": "toy-relay", "channel": 5, "resource": "toy-relay",
                                          "identification": None}
    # the plugin's own model checks the plugin's own fields, with the inventory's one-line error
    message = _error(tmp_path, "{driver: toy-relay, board: b, colour: blue}")
    assert "certlab.power.colour" in message and "bench 'b1'" in message
    message = _error(tmp_path, "{driver: toy-relay}")
    assert "certlab.power.board" in message and "add it" in message


def test_a_broken_plugin_is_named_and_breaks_only_its_own_benches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _install_plugin(tmp_path / "site", monkeypatch,
                    "toy-relay = toyrelay:BACKEND\nmissing = toyrelay.nowhere:BACKEND\nwrong = toyrelay:ToyRelay\n")
    registry = PowerRegistry.installed()
    assert {"toy-relay", "missing", "wrong"} <= set(registry.names())
    load_inventory(_inventory(tmp_path, "{driver: scpi, resource: 'TCPIP::127.0.0.1::5025::SOCKET', channel: 1}"))
    message = _error(tmp_path, "{driver: missing}")
    assert "'missing' (toyrelay.nowhere:BACKEND, from certlab-toy-relay) failed to load" in message
    assert "ModuleNotFoundError" in message and "fix: reinstall certlab-toy-relay" in message
    message = _error(tmp_path, "{driver: wrong}")
    assert "is not a lab.drivers.registry.PowerBackend" in message


def test_a_registry_can_be_given_its_backends_directly():
    registry = PowerRegistry.installed()
    own = PowerRegistry({"only": registry.backend("command")})
    assert own.names() == ["only"]
    with pytest.raises(PowerConfigError, match="installed: only"):
        own.validate({"driver": "scpi"})
    empty = PowerRegistry([])
    with pytest.raises(PowerConfigError, match="not even certlab's own"):
        empty.validate({"driver": "scpi"})


def test_the_cli_finds_the_plugin_in_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`certlab inventory check` in a new interpreter, the plugin only on its PYTHONPATH: as a pip install would."""
    import os
    import subprocess

    _install_plugin(tmp_path / "site", monkeypatch, "toy-relay = toyrelay:BACKEND\n")
    inv = _inventory(tmp_path, "{driver: toy-relay, board: board.state, channel: 4}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")])),
           "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "inventory", "check", "-i", str(inv)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "toy-relay" in proc.stdout and "ch 4" in proc.stdout
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # uninstalled: one line, exit 2
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "inventory", "check", "-i", str(inv)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "'toy-relay' is no installed power driver" in proc.stderr
    assert "Traceback" not in proc.stderr
