"""The off-the-shelf DUT (lab.sim.ots_dut): dropbear and busybox as real processes.

Each test starts the launcher itself, as the bench host would (own session, a socketpair end as
its UART), on 127.0.0.1 with free ports, so it does not depend on the lab manager. It needs root
(chroot, namespaces, mounts), dropbear-bin, busybox and util-linux `unshare`; it skips otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LABEL = "Tq7v-Lw2c-9PzX"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the off-the-shelf DUT needs root (chroot, mount and PID namespaces)"
    for tool in ("dropbear", "dropbearkey", "busybox", "unshare", "ldd"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (apt-get install dropbear-bin busybox-static util-linux)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _has_telnetd() -> bool:
    listed = subprocess.run(["busybox", "--list"], capture_output=True, text=True, timeout=10).stdout.split()
    return "telnetd" in listed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Unit:
    """One powered DUT: the launcher process (group leader) and our end of its UART."""

    def __init__(self, bench_dir: Path, flaws: list[str]):
        self.dir = bench_dir
        self.ssh_port, self.debug_port = _free_port(), _free_port()
        bench_dir.mkdir(parents=True, exist_ok=True)
        (bench_dir / "dut.json").write_text(json.dumps({
            "bench": "t1", "model": "OTS-1", "serial": "OTS1-T001", "mac": "02:0f:00:00:00:01",
            "firmware": "3.2.1", "label_password": LABEL, "flaws": flaws, "lab_faults": [],
            "boot_seconds": 0.3, "address": "127.0.0.1", "ssh_port": self.ssh_port,
            "debug_port": self.debug_port}))
        self.uart, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with open(bench_dir / "dut.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lab.sim.ots_dut", "--bench-dir", str(bench_dir), "--uart-fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, cwd=REPO)
        theirs.close()
        self.uart.settimeout(0.2)
        self.buffer = ""

    def log(self) -> str:
        return (self.dir / "dut.log").read_text(errors="replace")

    def expect(self, pattern: str, timeout: float = 10.0) -> str:
        """Read the UART until `pattern` matches; consume up to the match and return that text."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.buffer)
            if m:
                seen, self.buffer = self.buffer[: m.end()], self.buffer[m.end():]
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"console: no {pattern!r} in {timeout} s; got {self.buffer[-300:]!r}\n{self.log()}")
            try:
                data = self.uart.recv(4096)
            except socket.timeout:
                continue
            if not data:
                raise AssertionError(f"UART closed; got {self.buffer[-300:]!r}\n{self.log()}")
            self.buffer += data.decode(errors="replace")

    def send(self, line: str) -> None:
        self.uart.sendall(line.encode() + b"\n")

    def wait_port(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s\n{self.log()}")

    def pid_namespace(self) -> str:
        """The PID namespace of the device (that of the launcher's forked PID 1)."""
        ours = os.readlink("/proc/self/ns/pid")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for entry in Path("/proc").iterdir():
                try:
                    if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        if (ns := os.readlink(entry / "ns" / "pid")) != ours:
                            return ns
                except (OSError, ValueError, IndexError):
                    continue
            time.sleep(0.05)
        raise AssertionError("the launcher has no PID 1 child")

    def power_off(self) -> None:
        if self.proc.returncode is None:  # once reaped, the pid may belong to someone else
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=5)
        self.uart.close()  # idempotent: the fixture powers every unit off again


def _leftovers(pgid: int, pidns: str, rootfs: Path) -> list[str]:
    """Live or zombie processes of the device: by process group, PID namespace or chroot."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            why = []
            if int(fields[2]) == pgid:
                why.append("pgid")
            if os.readlink(entry / "ns" / "pid") == pidns:
                why.append("pidns")
            if os.readlink(entry / "root").startswith(str(rootfs)):
                why.append("chroot")
        except (OSError, ValueError, IndexError):
            continue
        if why:
            found.append(f"{entry.name} {stat.split(')')[0]}) {'+'.join(why)}")
    return found


@pytest.fixture
def unit_factory(tmp_path):
    units: list[Unit] = []

    def make(flaws: list[str]) -> Unit:
        unit = Unit(tmp_path / f"bench{len(units)}", flaws)
        units.append(unit)
        return unit

    yield make
    for unit in units:
        unit.power_off()


def _ssh(port: int, password: str):
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a throwaway unit's fresh key
    client.connect("127.0.0.1", port=port, username="root", password=password, look_for_keys=False,
                   allow_agent=False, timeout=5, banner_timeout=5, auth_timeout=5)
    return client


def _run(client, command: str) -> str:
    _, out, _ = client.exec_command(command, timeout=10)
    return out.read().decode()


def _assert_all_gone(unit: Unit, pidns: str) -> None:
    unit.power_off()
    rootfs = unit.dir / "flash" / "rootfs"
    deadline = time.monotonic() + 5
    while (left := _leftovers(unit.proc.pid, pidns, rootfs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes survived the power cut: {left}"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(rootfs) not in mounts, "a mount of the device leaked into the host's namespace"


def test_conforming_unit_console_and_ssh_with_label_password(unit_factory):
    import paramiko

    unit = unit_factory([])
    pidns = unit.pid_namespace()
    boot = unit.expect(r"login: $", timeout=20)
    assert "Starting kernel" in boot and "OTS-1 firmware 3.2.1" in boot
    unit.send("root")
    unit.expect(r"Password: $")
    unit.send("admin")  # busybox login: a wrong password is refused (after its 3 s delay)
    unit.expect(r"Login incorrect")
    unit.expect(r"login: $")
    unit.send("root")
    unit.expect(r"Password: $")
    unit.send(LABEL)
    unit.expect(r"# (\x1b\[6n)?$")  # busybox ash asks the terminal for the cursor after its prompt
    unit.send("id; hostname; cat /etc/os-release")
    out = unit.expect(r"VERSION_ID=\S+")
    assert "uid=0(root)" in out and 'VERSION_ID="3.2.1"' in out and "ots1-t001" in out

    unit.wait_port(unit.ssh_port)
    with _ssh(unit.ssh_port, LABEL) as client:
        assert _run(client, "id -u; cat /etc/hostname").split() == ["0", "ots1-t001"]
        banner = client.get_transport().remote_version
        assert "dropbear" in banner.lower()
        # Chrooted: the host's accounts are not the device's.
        assert _run(client, "cat /etc/passwd").splitlines()[0] == "root:x:0:0:root:/root:/bin/sh"
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(unit.ssh_port, "admin")
    with pytest.raises(OSError):  # no debug service on a conforming unit
        socket.create_connection(("127.0.0.1", unit.debug_port), timeout=1).close()
    _assert_all_gone(unit, pidns)


@pytest.mark.skipif(not _has_telnetd(), reason="this busybox has no telnetd applet; install busybox-static")
def test_flawed_unit_universal_password_and_debug_telnet(unit_factory):
    import paramiko

    unit = unit_factory(["universal_default_password", "open_debug_service"])
    pidns = unit.pid_namespace()
    unit.expect(r"login: $", timeout=20)
    unit.wait_port(unit.ssh_port)
    with _ssh(unit.ssh_port, "admin") as client:
        assert _run(client, "id -u").strip() == "0"
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(unit.ssh_port, LABEL)

    unit.wait_port(unit.debug_port)
    with socket.create_connection(("127.0.0.1", unit.debug_port), timeout=5) as telnet:
        telnet.settimeout(0.3)
        telnet.sendall(b"id\r\n")
        got, deadline = b"", time.monotonic() + 10
        while b"uid=0(root)" not in got and time.monotonic() < deadline:
            try:
                got += telnet.recv(4096)
            except socket.timeout:
                pass
        assert b"uid=0(root)" in got, f"no root shell on the telnet port: {got!r}"
    _assert_all_gone(unit, pidns)


def test_unauthenticated_console_and_reboot(unit_factory):
    unit = unit_factory(["unauthenticated_console"])
    boot = unit.expect(r"# (\x1b\[6n)?$", timeout=20)
    assert "login:" not in boot
    unit.send("id")
    assert "uid=0(root)" in unit.expect(r"uid=\S+")
    # busybox `reboot` signals PID 1, which exits 3: the bench host's "restart me" status.
    unit.send("reboot")
    assert unit.proc.wait(timeout=10) == 3
    unit.uart.close()
    deadline = time.monotonic() + 5
    while _leftovers(unit.proc.pid, "none", unit.dir / "flash" / "rootfs") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _leftovers(unit.proc.pid, "none", unit.dir / "flash" / "rootfs")


def test_password_set_on_the_device_survives_power_cycles(unit_factory):
    unit = unit_factory([])
    unit.expect(r"login: $", timeout=20)
    unit.send("root")
    unit.expect(r"Password: $")
    unit.send(LABEL)
    unit.expect(r"# (\x1b\[6n)?$")
    unit.send("passwd -a sha512 && sync")  # the device's own passwd, asked interactively
    unit.expect(r"New password: $")
    unit.send("N3w-Pass-w0rd")
    unit.expect(r"Retype password: $")
    unit.send("N3w-Pass-w0rd")
    unit.expect(r"changed.*\n.*# (\x1b\[6n)?$")
    unit.power_off()

    again = Unit(unit.dir, [])
    try:
        again.wait_port(again.ssh_port, timeout=20)
        with _ssh(again.ssh_port, "N3w-Pass-w0rd") as client:
            assert _run(client, "id -u").strip() == "0"
    finally:
        again.power_off()
