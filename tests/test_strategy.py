"""The bench strategy with real drivers and tiny real peers: a SCPI relay on TCP whose contact
powers a fake DUT speaking on a pty console (boot log, login, shell)."""

from __future__ import annotations

import os
import re
import socketserver
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.drivers.console import ConsoleDriver
from lab.drivers.power import ScpiPower
from lab.errors import BootFailure, CertlabError, ConsoleFault, DutError, LabLoginRejected, PowerFault
from lab.steps import ListSteps
from lab.strategy import BenchState, BenchStrategy, ConsolePrompts
from lab.transcript import Transcript

pytestmark = pytest.mark.timeout(60)

PROMPTS = ConsolePrompts(boot_banner="Starting kernel", login_prompt=r"login:\s*$",
                         password_prompt=r"Password:\s*$", shell_prompt=r"# $")


class FakeDut:
    """A DUT behind a pty: prints a boot log when powered, then asks to log in (or not)."""

    def __init__(self, *, password: str = "Bench-Pw-1", boot: str = "Starting kernel ...",
                 no_login: bool = False, silent: bool = False) -> None:
        self.password, self.boot, self.no_login, self.silent = password, boot, no_login, silent
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.powered = False
        self.boots = 0
        self.mode = "off"
        self._line = b""
        self._user = ""
        self._stop = threading.Event()
        self._fds = threading.Lock()  # held while the pty's fds are used or closed
        self._reader = threading.Thread(target=self._loop, daemon=True)
        self._reader.start()

    def say(self, text: str) -> None:
        with self._fds:
            if self.powered and not self.silent and not self._stop.is_set():
                os.write(self.master, text.encode())

    def power(self, on: bool) -> None:
        if on and not self.powered:
            self.powered, self.boots, self.mode = True, self.boots + 1, "boot"
            threading.Thread(target=self._boot, args=(self.boots,), daemon=True).start()
        elif not on:
            self.powered, self.mode = False, "off"

    def _boot(self, boot_id: int) -> None:
        time.sleep(0.1)
        for line in ("U-Boot 2024.01", self.boot, "[    0.210] init: starting services"):
            if self.boots != boot_id or not self.powered:
                return
            self.say(line + "\r\n")
            time.sleep(0.05)
        self.mode = "shell" if self.no_login else "login"
        self.say("# " if self.no_login else "dut login: ")

    def _loop(self) -> None:
        import select

        while not self._stop.is_set():
            try:
                if not select.select([self.master], [], [], 0.05)[0]:
                    continue
            except (OSError, ValueError):
                return  # closed under us
            with self._fds:
                if self._stop.is_set():
                    return
                try:
                    data = os.read(self.master, 1024)
                except OSError:
                    return
            if not self.powered:
                continue  # a UART of a DUT without power hears nothing
            self._line += data
            while b"\n" in self._line:
                raw, self._line = self._line.split(b"\n", 1)
                self._on_line(raw.decode().strip("\r"))

    def _on_line(self, line: str) -> None:
        if self.mode == "login":
            if not line:
                self.say("\r\ndut login: ")
                return
            self._user, self.mode = line, "password"
            self.say(line + "\r\nPassword: ")
        elif self.mode == "password":
            if self._user == "root" and line == self.password:
                self.mode = "shell"
                self.say("\r\n# ")
            else:
                self.mode = "login"
                self.say("\r\nLogin incorrect\r\n\r\ndut login: ")
        elif self.mode == "shell":
            self.say(f"{line}\r\n" + (f"{line[5:]}\r\n" if line.startswith("echo ") else "") + "# ")

    def close(self) -> None:
        """Stop reading and writing before the fds go: the next test's pty reuses their numbers, and
        a late thread of this DUT would answer on it (seen on a loaded machine as a bogus login)."""
        with self._fds:
            self._stop.set()
            self.powered = False
            for fd in (self.master, self.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._reader.join(timeout=2)


class Relay:
    """A SCPI switch on TCP; channel 1 powers the fake DUT. `silent` accepts and never answers."""

    def __init__(self, dut: FakeDut, *, silent: bool = False) -> None:
        self.log: list[str] = []
        self.closed = False
        relay = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    line = raw.decode().strip()
                    relay.log.append(line)
                    if silent:
                        continue
                    if m := re.fullmatch(r"ROUT:(CLOS|OPEN) \(@1\)", line):
                        relay.closed = m.group(1) == "CLOS"
                        dut.power(relay.closed)
                    elif line == "ROUT:CLOS? (@1)":
                        self.wfile.write(b"1\n" if relay.closed else b"0\n")
                    elif line == "SYST:ERR?":
                        self.wfile.write(b'0,"No error"\n')
                    elif line == "*IDN?":
                        self.wfile.write(b"TESTCO,SWITCH,1,1.0\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.resource = f"TCPIP::127.0.0.1::{self.server.server_address[1]}::SOCKET"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def switches(self) -> list[str]:
        return [line for line in self.log if line.startswith(("ROUT:CLOS (", "ROUT:OPEN ("))]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Rig:
    def __init__(self, tmp_path: Path, *, silent_relay: bool = False, password: str = "Bench-Pw-1",
                 boot_timeout: float = 3.0, **dut_options) -> None:
        self.dut = FakeDut(**dut_options)
        self.relay = Relay(self.dut, silent=silent_relay)
        self.transcript_path = tmp_path / "console-b1.log"
        self.console = ConsoleDriver(self.dut.path, transcript=Transcript(self.transcript_path), bench="b1")
        # 1 s per answer: a loaded CI machine must not turn a slow reply into a retried switch
        self.power = ScpiPower(self.relay.resource, 1, timeout=1.0, retries=1, bench="b1")
        self.steps = ListSteps()
        self.strategy = BenchStrategy(power=self.power, console=self.console, prompts=PROMPTS,
                                      credentials=lambda: ("root", password), boot_timeout=boot_timeout,
                                      login_timeout=3.0, bench="b1", steps=self.steps)

    def close(self) -> None:
        self.console.close()
        self.power.close()
        self.relay.close()
        self.dut.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def test_transitions_are_ordered_and_idempotent(rig: Rig) -> None:
    assert rig.strategy.state is BenchState.UNKNOWN
    rig.strategy.transition("shell")
    assert rig.strategy.state is BenchState.SHELL and rig.dut.mode == "shell"
    assert rig.relay.switches() == ["ROUT:OPEN (@1)", "ROUT:CLOS (@1)"], "from UNKNOWN: a power cycle"
    assert rig.strategy.unauthenticated_console is False
    rig.strategy.transition(BenchState.SHELL)
    rig.strategy.transition(BenchState.BOOTED)
    assert len(rig.relay.switches()) == 2 and rig.dut.boots == 1, "nothing to do: already there"
    rig.console.sendline("echo hi")
    rig.console.expect(r"hi\r\n# $", timeout=2)
    rig.strategy.transition(BenchState.OFF)
    assert rig.strategy.state is BenchState.OFF and rig.relay.closed is False
    rig.strategy.transition(BenchState.BOOTED)
    assert rig.relay.switches()[-1] == "ROUT:CLOS (@1)" and rig.dut.boots == 2
    rig.strategy.transition(BenchState.SHELL)  # later, from BOOTED: asks the console for a prompt
    assert rig.strategy.state is BenchState.SHELL
    text = rig.transcript_path.read_text()
    assert "Bench-Pw-1" not in text and "> ********" in text and "< dut login: " in text
    assert ("bench transition", {"bench": "b1", "source": "UNKNOWN", "target": "SHELL"}) in \
        [(t, p) for t, p, _, _ in rig.steps.records]


def test_power_cycle_measures_boot_time_and_invalidate_forces_one(rig: Rig) -> None:
    seconds = rig.strategy.power_cycle(off_time=0.1)
    assert 0.1 < seconds < 3 and rig.strategy.state is BenchState.BOOTED
    rig.strategy.transition("shell")
    rig.strategy.invalidate()
    assert rig.strategy.state is BenchState.UNKNOWN
    rig.strategy.transition("shell")
    assert rig.dut.boots == 2 and rig.strategy.state is BenchState.SHELL


def test_a_console_without_login_is_a_shell_and_is_noted(tmp_path: Path) -> None:
    r = Rig(tmp_path, no_login=True)
    try:
        r.strategy.transition("shell")
        assert r.strategy.state is BenchState.SHELL and r.strategy.unauthenticated_console is True
        assert "without asking to log in" in r.transcript_path.read_text()
    finally:
        r.close()


def test_rejected_console_login_is_a_lab_fault_not_latched(tmp_path: Path) -> None:
    """The lab's own login says nothing about the product: INCONCLUSIVE naming the credentials."""
    r = Rig(tmp_path, password="not-the-password")
    try:
        with pytest.raises(LabLoginRejected, match="console login as 'root' was rejected") as raised:
            r.strategy.transition("shell")
        assert not isinstance(raised.value, DutError) and "the lab cannot log in on the console" in str(raised.value)
        assert r.strategy.state is BenchState.UNKNOWN and r.strategy.fault is None
        r.strategy._credentials = lambda: ("root", "Bench-Pw-1")
        r.strategy.transition("shell")  # a DUT error does not lose the bench
        assert r.strategy.state is BenchState.SHELL
    finally:
        r.close()


def test_lost_relay_is_latched_for_the_rest_of_the_run(tmp_path: Path) -> None:
    r = Rig(tmp_path, silent_relay=True)
    try:
        with pytest.raises(PowerFault, match="did not answer"):
            r.strategy.transition("booted")
        sent = len(r.relay.log)
        start = time.monotonic()
        with pytest.raises(PowerFault, match="not retried") as again:
            r.strategy.transition("shell")
        with pytest.raises(PowerFault):
            r.strategy.power_cycle()
        assert time.monotonic() - start < 0.5 and len(r.relay.log) == sent, "the relay is not asked again"
        assert again.value.bench == "b1" and isinstance(again.value.__cause__, PowerFault)
    finally:
        r.close()


def test_silent_console_is_a_latched_console_fault(tmp_path: Path) -> None:
    r = Rig(tmp_path, silent=True, boot_timeout=1.0)
    try:
        with pytest.raises(ConsoleFault, match="silent: no byte in"):
            r.strategy.power_cycle()
        with pytest.raises(ConsoleFault):
            r.strategy.transition("off")
    finally:
        r.close()


def test_boot_log_without_the_banner_is_a_boot_failure(tmp_path: Path) -> None:
    r = Rig(tmp_path, boot="Kernel panic - not syncing: VFS: Unable to mount root fs", boot_timeout=1.0)
    try:
        with pytest.raises(BootFailure, match="Kernel panic"):
            r.strategy.power_cycle(off_time=0.05)
        assert r.strategy.fault is None and r.strategy.state is BenchState.UNKNOWN
    finally:
        r.close()


def test_provisioned_needs_a_playbook(rig: Rig) -> None:
    with pytest.raises(CertlabError, match="no provisioning playbook"):
        rig.strategy.transition("provisioned")
    with pytest.raises(CertlabError):
        rig.strategy.transition(BenchState.UNKNOWN)


# --- the simulated lab: real processes, real drivers, the example playbook -----------------


def _sim_inventory(folder: Path, lab: str, password: str):
    import socket

    import yaml

    from lab.inventory import load_inventory

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pw").write_text(password + "\n")
    ssh_port = free_port()
    bench = {"ansible_host": "127.0.0.1", "ansible_port": ssh_port, "certlab": {
        "power": {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{free_port()}::SOCKET", "channel": 1},
        "console": {"url": f"/tmp/certlab-sim/{lab}/b1/console", "boot_banner": "Starting kernel",
                    "login_prompt": r"login:\s*$", "password_prompt": r"Password:\s*$", "shell_prompt": "# $",
                    "boot_timeout": 20},
        "network": {"address": "127.0.0.1"},
        "ssh": {"user": "root", "port": ssh_port, "password": {"file": "pw"}},
        "dut": {"model": "TH-100", "serial": "SN-DRV1", "mac": "02:00:00:00:0d:01", "firmware": "1.4.0",
                "label_password": {"file": "pw"}},
        "sim": {"boot_seconds": 0.3, "cloud_port": free_port()},
    }}
    doc = {"all": {"vars": {"certlab": {"lab": lab}, "ansible_user": "root", "ansible_connection": "paramiko"},
                   "children": {"benches": {"hosts": {"b1": bench}}}}}
    path = folder / f"{lab}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_inventory(path)


@pytest.mark.timeout(120)
def test_simulated_bench_goes_off_to_provisioned_with_the_example_playbook(tmp_path: Path) -> None:
    sim_lab = pytest.importorskip("lab.sim.lab")
    if not (Path(__file__).resolve().parents[1] / "lab" / "sim" / "dut.py").exists():
        pytest.skip("the simulated DUT is not there yet")
    from lab.bench import Bench

    password = "Drv-Label-3q7"
    inv = _sim_inventory(tmp_path / "inv", f"t{os.getpid()}drv", password)
    lab = sim_lab.SimLab(inv)
    lab.up()
    bench = Bench(inv, "b1", evidence_dir=tmp_path / "evidence")
    try:
        assert bench.power.identify()
        bench.strategy.transition("off")
        assert bench.strategy.state is BenchState.OFF and bench.power.is_on() is False
        bench.strategy.transition("provisioned")
        assert bench.strategy.state is BenchState.PROVISIONED
        assert bench.strategy.unauthenticated_console is False and bench.strategy.boot_seconds < 20
        assert bench.ssh.run("config get provisioned-by", check=True).stdout.strip() == "certlab"
        bench.strategy.transition("shell")  # idempotent: provisioned is past shell
        assert bench.strategy.state is BenchState.PROVISIONED
    finally:
        bench.close()
        lab.down(purge=True)
    evidence = {p.name: p.read_text() for p in (tmp_path / "evidence").iterdir()}
    assert "Starting kernel" in evidence["console-b1.log"] and "> root" in evidence["console-b1.log"]
    assert all(password not in text for text in evidence.values())
