"""A bench is ready when every interface the test uses answers: after a power-on, SSH is waited
for (its banner) within the console's boot timeout counted from power-on; after that a refusal
is the DUT's answer. The strategy's wait runs on a fake clock here; the SSH driver's hook and the
simulated DUT whose SSH starts after its shell prompt are real.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from lab.drivers.ssh import SSHDriver
from lab.sim.netns import unavailable_reason
from lab.steps import ListSteps
from lab.strategy import BenchState, BenchStrategy, ConsolePrompts

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ConsolePrompts(boot_banner="Starting kernel", login_prompt=r"login:\s*$",
                         password_prompt=r"Password:\s*$", shell_prompt=r"# $")


class Clock:
    """A clock that moves only when something waits or works."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class FakePower:
    def __init__(self) -> None:
        self.switches: list[str] = []

    def on(self) -> None:
        self.switches.append("on")

    def off(self) -> None:
        self.switches.append("off")


class FakeConsole:
    """Shows the banner and then a shell prompt at once (a console that needs no login)."""

    transcript = None

    def open(self) -> None:
        pass

    def clear(self) -> str:
        return ""

    def expect(self, patterns, timeout=None):
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        index = 3 if len(patterns) == 4 else 0  # the login walk's patterns: the shell prompt answers
        return SimpleNamespace(index=index, before="")

    def read_until_quiet(self, **_: float) -> str:
        return ""

    def sendline(self, text: str = "", secret: bool = False) -> None:
        pass


class FakeSSH:
    """The SSH driver as the strategy sees it: refused until `listens_after` s past power-on."""

    where = "10.0.0.2:22"
    timeout = 10.0

    def __init__(self, clock: Clock, power: FakePower) -> None:
        self.clock, self.power = clock, power
        self.listens_after: float | None = None  # None: never answers
        self.probes = 0
        self.dropped: list[str] = []
        self.notes: list[str] = []
        self.on_probe = None  # called before each probe (a test may switch power meanwhile)
        self.readiness = None
        self.powered_at: float | None = None

    def attach_readiness(self, wait) -> None:
        self.readiness = wait

    def probe_banner(self, timeout: float) -> tuple[bool, str]:
        self.probes += 1
        if self.on_probe is not None:
            self.on_probe(self.probes)
        self.clock.sleep(0.01)  # a refused connect is quick
        up = (self.listens_after is not None and self.powered_at is not None
              and self.clock.now >= self.powered_at + self.listens_after)
        return (True, "SSH-2.0-OpenSSH_9.2p1") if up else (False, "Connection refused")

    def drop(self, why: str) -> None:
        self.dropped.append(why)

    def note(self, text: str) -> None:
        self.notes.append(text)


class Rig:
    def __init__(self, *, boot_timeout: float = 10.0) -> None:
        self.clock = Clock()
        self.power = FakePower()
        self.ssh = FakeSSH(self.clock, self.power)
        self.steps = ListSteps()
        self.strategy = BenchStrategy(power=self.power, console=FakeConsole(), ssh=self.ssh, prompts=PROMPTS,
                                      credentials=lambda: ("root", "pw"), boot_timeout=boot_timeout,
                                      bench="b1", steps=self.steps, clock=self.clock, sleep=self.clock.sleep)

    def boot_to_shell(self) -> float:
        """Power-cycle to the shell; returns the clock at power-on."""
        self.strategy.invalidate()
        self.strategy.transition(BenchState.SHELL)
        self.ssh.powered_at = self.strategy.powered_on_at
        return self.strategy.powered_on_at


def test_the_strategy_hands_its_wait_to_the_ssh_driver() -> None:
    rig = Rig()
    assert rig.ssh.readiness == rig.strategy.wait_ssh_ready


def test_after_power_on_the_first_ssh_use_waits_for_the_banner_and_records_the_figure() -> None:
    rig = Rig(boot_timeout=10.0)
    rig.ssh.listens_after = 4.0
    on_at = rig.boot_to_shell()
    assert rig.strategy.state is BenchState.SHELL and rig.ssh.probes == 0  # the shell came first
    seconds = rig.strategy.wait_ssh_ready()
    assert seconds is not None and 4.0 <= seconds <= 4.0 + 0.3  # one probe interval of resolution
    assert rig.strategy.ssh_seconds == seconds and rig.clock.now - on_at == pytest.approx(seconds)
    assert any(f"answered {seconds:.2f} s after power-on" in n and "boot timeout of 10 s" in n for n in rig.ssh.notes)
    titles = [title for title, *_ in rig.steps.records]
    assert "wait for SSH after power-on" in titles and f"SSH answered {seconds:.2f} s after power-on" in titles
    probes = rig.ssh.probes
    assert rig.strategy.wait_ssh_ready() is None and rig.ssh.probes == probes  # once per boot


def test_the_wait_is_bounded_by_the_boot_timeout_counted_from_power_on() -> None:
    rig = Rig(boot_timeout=10.0)
    on_at = rig.boot_to_shell()
    rig.clock.sleep(7.0)  # the test used the console for 7 s before its first SSH use
    assert rig.strategy.wait_ssh_ready() is None
    assert 10.0 <= rig.clock.now - on_at <= 10.0 + 0.05  # 3 s more, not a whole boot timeout
    assert any("did not answer within the boot timeout of 10 s" in n and "Connection refused" in n
               for n in rig.ssh.notes)
    probes = rig.ssh.probes
    assert 0 < probes <= int(3.0 / 0.25) + 2
    assert rig.strategy.wait_ssh_ready() is None and rig.ssh.probes == probes  # from now on refused is an answer


def test_past_the_boot_timeout_nothing_is_waited_for() -> None:
    rig = Rig(boot_timeout=10.0)
    rig.boot_to_shell()
    rig.clock.sleep(11.0)
    assert rig.strategy.wait_ssh_ready() is None and rig.ssh.probes == 0


def test_without_a_power_on_by_the_strategy_nothing_is_waited_for() -> None:
    rig = Rig()
    assert rig.strategy.wait_ssh_ready() is None and rig.ssh.probes == 0


def test_every_power_switch_drops_the_kept_ssh_connection() -> None:
    rig = Rig()
    rig.boot_to_shell()
    assert rig.ssh.dropped  # the boot dropped any connection of an earlier life
    before = len(rig.ssh.dropped)
    rig.strategy.transition(BenchState.OFF)
    assert len(rig.ssh.dropped) == before + 1 and rig.power.switches[-1] == "off"
    assert rig.strategy.wait_ssh_ready() is None and rig.ssh.probes == 0  # off: nothing to wait for
    rig.strategy.power_cycle(off_time=0.5)
    assert len(rig.ssh.dropped) >= before + 2


def test_a_power_off_during_the_wait_ends_it() -> None:
    rig = Rig(boot_timeout=30.0)
    rig.boot_to_shell()
    rig.ssh.on_probe = lambda n: rig.strategy.transition(BenchState.OFF) if n == 3 else None
    assert rig.strategy.wait_ssh_ready() is None
    assert rig.ssh.probes == 3 and rig.strategy.state is BenchState.OFF


# --- the SSH driver asks before every new connection, and before a login attempt ---------------


class LateBanner:
    """A TCP port that refuses until `after` s, then sends an SSH banner to whoever connects."""

    def __init__(self, after: float, port: int = 0) -> None:
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(after,), daemon=True)
        self._thread.start()

    def _serve(self, after: float) -> None:
        if self._stop.wait(after):
            return
        with socket.create_server(("127.0.0.1", self.port)) as srv:
            srv.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                with conn:
                    conn.sendall(b"SSH-2.0-Late_1.0\r\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def test_a_probe_right_after_the_shell_prompt_waits_for_ssh_instead_of_failing(tmp_path: Path) -> None:
    """The race of issue 14 on the real driver: SSH listens 0.8 s after the shell prompt."""
    late = LateBanner(after=3600)  # only to learn a free port
    late.close()
    ssh = SSHDriver("127.0.0.1", late.port, password="x", timeout=2, bench="b1")
    strategy = BenchStrategy(power=FakePower(), console=FakeConsole(), ssh=ssh, prompts=PROMPTS,
                             credentials=lambda: ("root", "pw"), boot_timeout=5.0, bench="b1")
    strategy.transition(BenchState.OFF)
    late = LateBanner(after=0.8, port=late.port)  # the DUT's SSH: up 0.8 s after power-on
    try:
        strategy.transition(BenchState.SHELL)
        assert ssh.probe_banner(0.2)[0] is False  # the shell came before SSH
        ssh.wait_reachable(timeout=0.1)  # alone, 0.1 s would be far too short: the boot is waited for first
        assert strategy.ssh_seconds is not None and 0.7 < strategy.ssh_seconds < 5.0
    finally:
        late.close()


def test_the_driver_waits_before_a_new_connection_and_a_login_attempt_not_inside_it() -> None:
    calls: list[str] = []
    ssh = SSHDriver("127.0.0.1", 9, password="x", timeout=0.5)  # port 9 (discard): refused on loopback
    ssh.attach_readiness(lambda: (calls.append("wait"), time.sleep(0.3)))
    attempt = ssh.try_login("root", "x", timeout=0.5)
    assert calls == ["wait"] and attempt.outcome in ("refused", "error") and attempt.seconds < 0.3
    with pytest.raises(Exception):
        ssh.run("true")
    assert calls == ["wait", "wait"]


# --- the simulated DUT whose SSH listens after its shell prompt (end to end) -----------------


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"needs network namespaces: {unavailable_reason()}")
def test_ssh_after_the_shell_prompt_is_waited_for_and_5_1_detects_the_universal_password(tmp_path: Path) -> None:
    """A DUT that offers its shell at once and starts SSH 4 s later: the 5.1 tests must find its
    universal default password (FAIL), not give up on "connection refused" (INCONCLUSIVE)."""
    from lab.bench import Bench
    from lab.inventory import load_inventory
    from lab.sim.genlab import write_sim_inventory
    from lab.sim.lab import SimLab

    lab = f"t{os.getpid() % 100000}rdy"
    path = write_sim_inventory(tmp_path / "inv", lab, 1, scpi_port=17630, subnet=223, netns=True, boot_timeout=30,
                               sim={"flaws": ["universal_default_password", "unauthenticated_console"],
                                    "ssh_delay_seconds": 4.0})
    (tmp_path / "inv" / "secrets" / f"{lab}-b1.password").write_text("admin\n")  # what its label says
    inv = load_inventory(path)
    sim = SimLab(inv)
    sim.up()
    try:
        bench = Bench(inv, "b1", evidence_dir=tmp_path / "probe")
        try:  # the DUT behaves as in the issue: a shell at once, SSH refused for seconds after it
            bench.strategy.transition(BenchState.SHELL)
            assert bench.strategy.unauthenticated_console is True
            assert bench.ssh.probe_banner(1.0) == (False, "Connection refused")
        finally:
            bench.strategy.transition(BenchState.OFF)
            bench.close()
        out = tmp_path / "run"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "testsuites/en303645/test_5_1_passwords.py", "--inventory", str(path),
             "--certlab-out", str(out), "-p", "no:cacheprovider", "-p", "no:xdist", "-q"],
            capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
        )
    finally:
        sim.down()
    results = json.loads((out / "verdicts.json").read_text())["results"]
    verdicts = {r["test_case"]: (r["verdict"], r["reason"][:200]) for r in results}
    assert verdicts.get("5.1-1-2", ("missing",))[0] == "FAIL", (verdicts, proc.stdout[-3000:])
    assert "admin" in verdicts["5.1-1-2"][1] or "default" in verdicts["5.1-1-2"][1].lower()
    undecided = {case: v for case, v in verdicts.items() if v[0] == "INCONCLUSIVE"}
    assert not undecided, undecided
    ssh_log = next((out / "evidence").rglob("ssh-b1.log")).read_text()
    assert "after power-on" in ssh_log and "answered" in ssh_log  # the wait and its figure are evidence


# --- `lab check` times the three moments from power-on, each on its own ----------------------


def test_lab_check_times_banner_login_prompt_and_ssh_from_power_on() -> None:
    """The console's prompt comes 0.3 s after the banner, SSH answers 0.1 s after power-on: the
    check says so instead of one 'boot' figure, and waiting for one never delays the other."""
    from lab.check import probe

    class Console(FakeConsole):
        def expect(self, patterns, timeout=None):
            if isinstance(patterns, list) and len(patterns) == 2:  # the check's login/shell prompt wait
                time.sleep(0.3)
                return SimpleNamespace(index=0, before="")
            return SimpleNamespace(index=0, before="")

    class Ssh:
        where, timeout = "10.0.0.2:22", 5.0

        def __init__(self) -> None:
            self.commands: list[str] = []

        def attach_readiness(self, wait) -> None:
            self.wait = wait

        def probe_banner(self, timeout: float) -> tuple[bool, str]:
            up = time.monotonic() - strategy.powered_on_at >= 0.1
            return (True, "SSH-2.0-X") if up else (False, "Connection refused")

        def drop(self, why: str) -> None:
            pass

        def note(self, text: str) -> None:
            pass

        def run(self, command: str, **_: object) -> None:
            self.wait()
            self.commands.append(command)

    class Power(FakePower):
        def identify(self) -> str:
            return "TESTCO,SWITCH"

    ssh, console = Ssh(), Console()
    strategy = BenchStrategy(power=Power(), console=console, ssh=ssh, prompts=PROMPTS,
                             credentials=lambda: ("root", "pw"), boot_timeout=5.0, bench="b1")
    bench = SimpleNamespace(name="b1", power=strategy.power, console=console, ssh=ssh, strategy=strategy, prompts=PROMPTS)
    result = probe(bench)
    assert result.ok, result.problems
    assert result.console == "ok (boot banner seen)" and ssh.commands == ["true"]
    assert result.banner_seconds < 0.2 and 0.3 <= result.prompt_seconds < 2.0
    assert 0.1 <= result.ssh_seconds < 0.3 + 0.5  # watched while the console was awaited, not after it
