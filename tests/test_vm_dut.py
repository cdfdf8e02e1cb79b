"""The VM DUT (lab.sim.vm_dut): Debian's kernel in qemu, behind the simulated relay and console.

A private copy of inventory/sim-vm.yaml (own lab name, relay port and subnet, so it never meets a
running `vm` lab) is brought up with SimLab; everything else goes over the wire as certlab's
drivers would: SCPI to switch power, the console pty (pyserial), SSH (paramiko), TCP connects.
vm1 conforms; vm2 has the universal password, the telnet debug shell and (in this copy only) a
clear-text telnet login. Both boot in parallel;
a password set with passwd survives a power cycle (the ext4 flash partition); a power cut kills
qemu; `lab down` leaves no process, namespace, bridge or tap.
Needs root, network namespaces, qemu-system-x86, busybox-static and dropbear-bin, and the
Debian kernel package (fetched with apt on first use, or already in the cache); skips otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

import paramiko
import pytest
import serial
import yaml

from lab.inventory import load_inventory
from lab.sim import netns
from lab.sim.lab import SimLab, processes_mentioning

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "inventory" / "sim-vm.yaml"
LAB, SCPI_PORT, SUBNET = "vmproof", 17120, 173
BOOT_SECONDS = 150.0  # power-on to login prompt, both VMs under emulation on a busy 2-core machine


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the VM DUT needs root (network namespaces, tap devices)"
    if reason := netns.unavailable_reason():
        return reason
    for tool in ("qemu-system-x86_64", "dropbear", "dropbearkey", "busybox", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (apt-get install qemu-system-x86 dropbear-bin busybox-static)"
    return None


pytestmark = [pytest.mark.skipif(_missing() is not None, reason=_missing() or ""), pytest.mark.timeout(240)]


def _private_copy(folder: Path) -> Path:
    doc = yaml.safe_load(SHIPPED.read_text())
    doc["all"]["vars"]["certlab"]["lab"] = LAB
    doc["all"]["vars"].pop("certlab_console_prompts", None)
    for i, (name, host) in enumerate(doc["all"]["children"]["benches"]["hosts"].items(), start=1):
        c = host["certlab"]
        address = f"10.203.{SUBNET}.{4 * i + 2}"
        host["ansible_host"] = address
        c["power"]["resource"] = f"TCPIP::127.0.0.1::{SCPI_PORT}::SOCKET"
        c["console"]["url"] = f"/tmp/certlab-sim/{LAB}/{name}/console"
        c["network"] = {"address": address, "netns": f"cl-{LAB}-{i}", "interface": f"clh{SUBNET}v{i}",
                        "gateway": f"10.203.{SUBNET}.{4 * i + 1}", "prefix": 30}
        for ref in (c["ssh"]["password"], c["dut"]["label_password"]):
            ref["file"] = str((SHIPPED.parent / ref["file"]).resolve())
        if name == "vm2":  # one more flaw on the flawed sample, so no third VM is needed
            c["sim"]["flaws"] = [*c["sim"]["flaws"], "cleartext_telnet_login"]
    path = folder / f"{LAB}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def scpi(*lines: str) -> list[str]:
    with socket.create_connection(("127.0.0.1", SCPI_PORT), timeout=5) as sock:
        replies = []
        f = sock.makefile("rwb")
        for line in lines:
            f.write(line.encode() + b"\n")
            f.flush()
            if line.endswith("?") or "? " in line:
                replies.append(f.readline().decode().strip())
        return replies


class Console:
    """The bench's console pty, read with a bounded expect."""

    def __init__(self, link: Path):
        self.port = serial.Serial(str(link), 115200, timeout=0.2)
        self.seen = ""

    def expect(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if m := re.search(pattern, self.seen):
                before, self.seen = self.seen[: m.end()], self.seen[m.end():]
                return before
            self.seen += self.port.read(4096).decode(errors="replace")
        raise AssertionError(f"console: no {pattern!r} within {timeout:.0f} s; last output {self.seen[-400:]!r}")

    def send(self, line: str) -> None:
        self.port.write(line.encode() + b"\r")


def _ssh(address: str, password: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(address, username="root", password=password, timeout=20, banner_timeout=30, auth_timeout=30,
                   look_for_keys=False, allow_agent=False)
    return client


def _wait_port(address: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing listens on {address}:{port} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    inventory = load_inventory(_private_copy(tmp_path_factory.mktemp("vm-proof")))
    lab = SimLab(inventory, start_timeout=30)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
        left = processes_mentioning(lab.marker)
        assert not left, f"processes left after lab down: {left}"
        for bench in inventory.benches.values():  # the namespace took its bridge and tap with it
            assert not netns.exists(bench.network.netns or ""), bench.network.netns
            assert not netns.link_exists(bench.network.interface or ""), bench.network.interface


@pytest.fixture(scope="module")
def booted(lab):
    """Both VMs powered on through the relay; per bench its console after the login prompt."""
    consoles = {b: Console(lab.console_link(lab.inv.bench(b))) for b in ("vm1", "vm2")}
    start = time.monotonic()
    assert scpi("ROUT:CLOS (@1,2)", "*OPC?") == ["1"]
    for bench, console in consoles.items():
        console.expect(r"Linux version \S+", BOOT_SECONDS)
        console.expect(r"login:\s*$", BOOT_SECONDS - (time.monotonic() - start))
    yield consoles, time.monotonic() - start
    for console in consoles.values():
        console.port.close()


def test_console_login_on_the_real_kernel(lab, booted):
    consoles, took = booted
    log = (lab.bench_dir("vm1") / "dut.log").read_text()
    assert re.search(r"accelerator: (kvm|tcg)", log), log[-500:]
    vm1 = consoles["vm1"]
    vm1.send("root")
    vm1.expect(r"Password:\s*$", 30)
    vm1.send(lab.inv.resolve_secret(lab.inv.bench("vm1").dut.label_password))
    vm1.expect(r"# (\x1b\[6n)?$", 30)
    vm1.send("uname -r; cat /etc/os-release")
    out = vm1.expect(r"# (\x1b\[6n)?$", 30)
    assert re.search(r"\d+\.\d+\.\d+-\d+-amd64", out) and 'VERSION_ID="3.1.0"' in out, out
    print(f"both VMs at their login prompt {took:.1f} s after power-on")


def test_ssh_with_the_label_password_and_closed_ports_refuse(lab, booted):
    vm1 = lab.inv.bench("vm1")
    _wait_port(vm1.network.address, 22, 60)  # dropbear may come up after getty: no ordering
    client = _ssh(vm1.network.address, lab.inv.resolve_secret(vm1.dut.label_password))
    try:
        _, out, _ = client.exec_command("cat /proc/version; ip -4 addr show eth0", timeout=20)
        text = out.read().decode()
    finally:
        client.close()
    assert "Debian" in text and f"inet {vm1.network.address}/30" in text, text
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(vm1.network.address, "admin").close()
    for port in (23, 2323, 80):  # the guest kernel answers RST: refused at once, not a timeout
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((vm1.network.address, port), timeout=10).close()


def test_flawed_sample_has_admin_and_a_telnet_root_shell(lab, booted):
    vm2 = lab.inv.bench("vm2")
    _wait_port(vm2.network.address, 22, 60)
    _ssh(vm2.network.address, "admin").close()
    _wait_port(vm2.network.address, 2323, 30)
    with socket.create_connection((vm2.network.address, 2323), timeout=10) as sock:
        sock.settimeout(1)
        sock.sendall(b"id\r\n")
        got, deadline = b"", time.monotonic() + 20
        while b"uid=0(root)" not in got and time.monotonic() < deadline:
            try:
                got += sock.recv(4096)
            except socket.timeout:
                pass
    assert b"uid=0(root)" in got, got[-300:]


def test_password_set_with_passwd_survives_a_power_cycle(lab, booted):
    vm1 = lab.inv.bench("vm1")
    address, label, new = vm1.network.address, lab.inv.resolve_secret(vm1.dut.label_password), "Vm-Test-Pass-42"
    client = _ssh(address, label)
    try:
        _, out, _ = client.exec_command(f"printf '{new}\\n{new}\\n' | passwd 2>&1; sync", timeout=30)
        said = out.read().decode()
    finally:
        client.close()
    assert "changed" in said, said
    assert scpi("ROUT:OPEN (@1)", "ROUT:CLOS (@1)", "*OPC?") == ["1"]
    _wait_port(address, 22, BOOT_SECONDS)
    _ssh(address, new).close()  # read back from the ext4 flash partition after the power cut
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(address, label).close()


def _telnet_until(sock: socket.socket, got: bytes, want: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while want not in got and time.monotonic() < deadline:
        try:
            got += sock.recv(4096)
        except socket.timeout:
            pass
    assert want in got, f"telnet: no {want!r} within {timeout:.0f} s; got {got[-300:]!r}"
    return got


def test_cleartext_telnet_login_asks_for_the_password(lab, booted):
    vm2 = lab.inv.bench("vm2")
    _wait_port(vm2.network.address, 23, 30)
    with socket.create_connection((vm2.network.address, 23), timeout=10) as sock:
        sock.settimeout(1)
        got = _telnet_until(sock, b"", b"login: ", 30)  # busybox login, after telnetd's option requests
        sock.sendall(b"root\r\n")
        got = _telnet_until(sock, got, b"Password: ", 20)
        sock.sendall(b"admin\r\n")
        got = _telnet_until(sock, got, b"# ", 20)
        sock.sendall(b"id\r\n")
        _telnet_until(sock, got, b"uid=0(root)", 20)


def test_power_cut_kills_the_machine(lab, booted):
    pid_file = lab.bench_dir("vm1") / "dut.pid"
    pid = int(pid_file.read_text())
    assert b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert scpi("ROUT:OPEN (@1,2)", "*OPC?") == ["1"]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "qemu survived the power cut"
    with pytest.raises(OSError):
        socket.create_connection((lab.inv.bench("vm1").network.address, 22), timeout=3).close()
