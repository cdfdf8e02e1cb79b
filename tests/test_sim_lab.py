"""The simulated lab with real processes: relays, consoles, power, faults, namespaces, teardown.

Everything is driven over the wire, as certlab's drivers would (raw SCPI, pyvisa-py, pyserial),
because the point of the simulator is that the real drivers cannot tell it from hardware.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyvisa
import pytest
import serial
import yaml

from lab.inventory import Inventory, load_inventory
from lab.sim import netns
from lab.sim.cloud import CloudServer, ensure_pki, redact
from lab.sim.lab import SimLab, power_state

ROOT = Path(__file__).resolve().parent.parent
REAL_DUT = (ROOT / "lab" / "sim" / "dut.py").exists()
PID = os.getpid()

pytestmark = pytest.mark.timeout(90)

# A stand-in DUT: banner on the UART, echo, a child in its process group; exits 3 once on request.
STANDIN = """\
import argparse, os, pathlib, socket, subprocess, sys
p = argparse.ArgumentParser(); p.add_argument("--bench-dir"); p.add_argument("--uart-fd", type=int)
a = p.parse_args()
flag = pathlib.Path(a.bench_dir) / "exit3"
if flag.exists():
    flag.unlink(); sys.exit(3)
uart = socket.socket(fileno=a.uart_fd)
subprocess.Popen(["sleep", "300"])
uart.sendall(f"standin boot pid={os.getpid()}\\r\\nlogin: ".encode())
while data := uart.recv(1024):
    uart.sendall(b"echo:" + data)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_until(port: serial.Serial, needle: bytes, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        data += port.read(256)
    return data


def scpi(port: int, *lines: str, timeout: float = 3.0) -> list[str]:
    """Send lines on one connection; collect one reply per query."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, sock.makefile("rwb") as f:
        replies = []
        for line in lines:
            f.write(line.encode() + b"\n")
            f.flush()
            if "?" in line:
                replies.append(f.readline().decode().strip())
        return replies


def lcus_frame(channel: int, on: bool) -> bytes:
    st = 1 if on else 0
    return bytes([0xA0, channel, st, (0xA0 + channel + st) & 0xFF])


def bench(name: str, lab: str, power: dict, *, address: str = "127.0.0.1", ssh_port: int | None = None,
          cloud_port: int | None = None, faults: tuple[str, ...] = (), network: dict | None = None) -> dict:
    return {name: {"certlab": {
        "power": power,
        "console": {"url": f"/tmp/certlab-sim/{lab}/{name}/console"},
        "network": network or {"address": address},
        "ssh": {"port": ssh_port or free_port(), "password": {"file": "pw"}},
        "dut": {"model": "TH-100", "serial": f"SN-{name}", "mac": "02:00:00:00:01:01", "firmware": "1.4.0",
                "label_password": {"file": "pw"}},
        "sim": {"boot_seconds": 0.2, "cloud_port": cloud_port or free_port(), "lab_faults": list(faults),
                "telemetry_interval": 1.0},
    }}}


def write_inventory(folder: Path, lab: str, hosts: dict) -> Inventory:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pw").write_text("label-Pw-7x9\n")
    doc = {"all": {"vars": {"certlab": {"lab": lab}}, "children": {"benches": {"hosts": hosts}}}}
    path = folder / f"{lab}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_inventory(path)


def lab_processes(lab_dir: Path) -> list[int]:
    marker = f"{lab_dir}/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def assert_nothing_left(lab: SimLab, extra_paths: list[Path]) -> None:
    assert lab_processes(lab.root) == []
    leftovers = [p for p in extra_paths if p.exists() or p.is_symlink()]
    assert leftovers == []
    if lab.root.exists():
        junk = [p for p in lab.root.rglob("*") if p.is_symlink() or p.is_socket() or p.suffix == ".pid"]
        assert junk == []


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    script = tmp_path_factory.mktemp("dut") / "standin_dut.py"
    script.write_text(STANDIN)
    return [sys.executable, str(script)]


# --- a two-bench lab: one SCPI switch, one LCUS board ------------------------------------


@pytest.fixture(scope="module")
def main_lab(tmp_path_factory: pytest.TempPathFactory, standin: list[str]) -> Iterator[tuple[SimLab, int]]:
    name = f"t{PID}m"
    scpi_port = free_port()
    hosts = {
        **bench("b1", name, {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{scpi_port}::SOCKET", "channel": 1}),
        **bench("b2", name, {"driver": "relay_board", "url": f"/tmp/certlab-sim/{name}/relays/lcus0", "channel": 2}),
    }
    inv = write_inventory(tmp_path_factory.mktemp("inv"), name, hosts)
    lab = SimLab(inv, dut_command=None if REAL_DUT else standin)
    lab.up()
    yield lab, scpi_port
    lab.down(purge=True)


def test_up_starts_everything_off_and_is_idempotent(main_lab: tuple[SimLab, int]) -> None:
    lab, _ = main_lab
    first = lab.status()
    assert first["up"] and {b["power"] for b in first["benches"].values()} == {"OFF"}
    assert lab.up()["benches"]["b1"]["host_pid"] == first["benches"]["b1"]["host_pid"]
    assert {r["pid"] for r in lab.status()["relays"].values()} == {r["pid"] for r in first["relays"].values()}
    dut = json.loads((lab.root / "b1" / "dut.json").read_text())
    assert dut["label_password"] == "label-Pw-7x9" and dut["cloud"]["ca_file"].endswith("ca.pem")
    assert oct((lab.root / "b1" / "dut.json").stat().st_mode & 0o777) == "0o600"


def test_scpi_protocol_over_a_raw_socket(main_lab: tuple[SimLab, int]) -> None:
    lab, port = main_lab
    idn, closed, err0, err1, err2, err3 = scpi(
        port, "*idn?", "ROUTe:CLOSe? (@1,2)", "SYST:ERR?", "FOO:BAR", "SYST:ERR?", "rout:clos (@99)",
        "syst:error?", "OUTP MAYBE", "SYSTem:ERRor:NEXT?")
    assert idn.startswith("CERTLAB,SIM-SWITCH-8,") and idn.endswith(",1.0")
    assert closed == "0,0" and err0 == '0,"No error"'
    assert err1 == '-113,"Undefined header"' and err2 == '-222,"Data out of range"' and err3.startswith("-224")
    # several clients at once: an idle connection does not block another one
    with socket.create_connection(("127.0.0.1", port), timeout=3) as idle:
        idle.sendall(b"INST:NSEL 2\n")
        # the `output` dialect switches the same contact; selection is per connection
        assert scpi(port, "INST:NSEL 1", "OUTP ON", "OUTP?", "ROUT:CLOS? (@1)") == ["1", "1"]
        idle.sendall(b"INST:NSEL?\n")
        assert idle.recv(16) == b"2\n"
    assert power_state(lab.root / "b1" / "power.sock") == "ON"
    assert scpi(port, "INSTrument:NSELect 1", "OUTPut:STATe OFF", "OUTP?", "SYST:ERR?") == ["0", '0,"No error"']
    assert power_state(lab.root / "b1" / "power.sock") == "OFF"


def test_pyvisa_power_on_shows_boot_bytes_and_power_off_kills_the_group(main_lab: tuple[SimLab, int]) -> None:
    lab, port = main_lab
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(f"TCPIP::127.0.0.1::{port}::SOCKET", read_termination="\n",
                            write_termination="\n", timeout=3000)
    console = serial.serial_for_url(str(lab.root / "b1" / "console"), baudrate=115200, timeout=0.2)
    try:
        assert inst.query("*IDN?").startswith("CERTLAB,SIM-SWITCH-8")
        inst.write("ROUT:CLOS (@1)")
        assert inst.query("ROUT:CLOS? (@1)") == "1"
        assert wait_for(lambda: console.read(256), 10, "the DUT's first console bytes")
        pgid = int(wait_for(lambda: lab.status()["benches"]["b1"]["dut_pid"], 5, "the DUT's pid"))
        assert os.getpgid(pgid) == pgid, "the DUT leads its own process group"
        os.killpg(pgid, 0)
        inst.write("ROUT:OPEN (@1)")
        assert inst.query("ROUT:CLOS? (@1)") == "0"
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)  # the whole group, children included, is gone and reaped
        assert inst.query("SYST:ERR?") == '0,"No error"'
    finally:
        console.close()
        inst.close()
        rm.close()


def test_lcus_board_over_pyserial(main_lab: tuple[SimLab, int]) -> None:
    lab, _ = main_lab
    board = serial.Serial(str(lab.root / "relays" / "lcus0"), 9600, timeout=0.3)
    console = serial.Serial(str(lab.root / "b2" / "console"), 115200, timeout=0.2)
    try:
        board.write(b"\xff")
        # a 2-channel board (the smallest LCUS size holding channel 2)
        assert read_until(board, b"CH2:OFF\r\n", 3) == b"CH1:OFF\r\nCH2:OFF\r\n"
        board.write(lcus_frame(2, True))
        wait_for(lambda: power_state(lab.root / "b2" / "power.sock") == "ON", 5, "bench b2 powered")
        assert wait_for(lambda: console.read(256), 10, "b2's console bytes")
        board.write(bytes([0xA0, 2, 0, 0x00]))  # bad checksum: ignored, as by the real board
        board.write(b"\xff")
        assert read_until(board, b"CH2:ON\r\n", 3) == b"CH1:OFF\r\nCH2:ON\r\n"
        board.write(lcus_frame(2, False))
        wait_for(lambda: power_state(lab.root / "b2" / "power.sock") == "OFF", 5, "bench b2 unpowered")
        assert lab.status()["benches"]["b2"]["dut_pid"] is None
    finally:
        board.close()
        console.close()


def test_down_leaves_no_process_link_or_socket(main_lab: tuple[SimLab, int]) -> None:
    lab, port = main_lab
    scpi(port, "ROUT:CLOS (@1)")
    wait_for(lambda: lab.status()["benches"]["b1"]["dut_pid"], 5, "b1's DUT running")
    assert lab_processes(lab.root)
    lab.down()
    assert_nothing_left(lab, [lab.root / "b1" / "console", lab.root / "b2" / "console", lab.root / "relays" / "lcus0"])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    lab.down()  # twice is fine


# --- lab faults ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_lab(tmp_path_factory: pytest.TempPathFactory, standin: list[str]) -> Iterator[tuple[SimLab, dict[str, int]]]:
    name = f"t{PID}f"
    ports = {"hung": free_port(), "dies": free_port()}
    lcus = {"driver": "relay_board", "url": f"/tmp/certlab-sim/{name}/relays/lcus1"}
    hosts = {
        **bench("hung", name, {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{ports['hung']}::SOCKET", "channel": 1},
                faults=("relay_unresponsive",)),
        **bench("dies", name, {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{ports['dies']}::SOCKET", "channel": 1},
                faults=("bench_dies_midrun",)),
        **bench("silent", name, {**lcus, "channel": 1}, faults=("console_silent",)),
        **bench("reboot", name, {**lcus, "channel": 2}),
        **bench("echo", name, {**lcus, "channel": 3}),
    }
    inv = write_inventory(tmp_path_factory.mktemp("inv"), name, hosts)
    lab = SimLab(inv, dut_command=standin)
    lab.up()
    yield lab, ports
    lab.down(purge=True)
    assert lab_processes(lab.root) == []


def test_relay_unresponsive_accepts_but_never_answers(fault_lab: tuple[SimLab, dict[str, int]]) -> None:
    lab, ports = fault_lab
    with socket.create_connection(("127.0.0.1", ports["hung"]), timeout=1.0) as sock:
        sock.sendall(b"*IDN?\nROUT:CLOS (@1)\nROUT:CLOS? (@1)\n")
        with pytest.raises(socket.timeout):
            sock.recv(100)
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(f"TCPIP::127.0.0.1::{ports['hung']}::SOCKET", read_termination="\n",
                            write_termination="\n", timeout=800)
    try:
        with pytest.raises(pyvisa.errors.VisaIOError):
            inst.query("*IDN?")
    finally:
        inst.close()
        rm.close()
    assert power_state(lab.root / "hung" / "power.sock") == "OFF"


def test_console_silent_port_opens_but_no_byte_arrives(fault_lab: tuple[SimLab, dict[str, int]]) -> None:
    lab, _ = fault_lab
    console = serial.Serial(str(lab.root / "silent" / "console"), 115200, timeout=0.2)
    board = serial.Serial(str(lab.root / "relays" / "lcus1"), 9600, timeout=0.3)
    try:
        board.write(lcus_frame(1, True))
        wait_for(lambda: lab.status()["benches"]["silent"]["dut_pid"], 5, "the silent bench's DUT running")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert console.read(256) == b""
    finally:
        board.write(lcus_frame(1, False))
        board.close()
        console.close()


def test_dut_exit_status_3_is_a_reboot_while_power_stays_on(fault_lab: tuple[SimLab, dict[str, int]]) -> None:
    lab, _ = fault_lab
    (lab.root / "reboot" / "exit3").touch()
    console = serial.Serial(str(lab.root / "reboot" / "console"), 115200, timeout=0.2)
    board = serial.Serial(str(lab.root / "relays" / "lcus1"), 9600, timeout=0.3)
    try:
        board.write(lcus_frame(2, True))
        assert b"login: " in read_until(console, b"login: ", 10)
        assert not (lab.root / "reboot" / "exit3").exists()
        assert "asked for a reboot" in (lab.root / "reboot" / "host.log").read_text()
        assert power_state(lab.root / "reboot" / "power.sock") == "ON"
    finally:
        board.write(lcus_frame(2, False))
        board.close()
        console.close()


def test_console_input_while_off_is_lost(fault_lab: tuple[SimLab, dict[str, int]]) -> None:
    lab, _ = fault_lab
    console = serial.Serial(str(lab.root / "echo" / "console"), 115200, timeout=0.2)
    board = serial.Serial(str(lab.root / "relays" / "lcus1"), 9600, timeout=0.3)
    try:
        console.write(b"typed-while-off\n")
        time.sleep(0.2)
        board.write(lcus_frame(3, True))
        assert b"login: " in read_until(console, b"login: ", 10)
        console.write(b"typed-while-on\n")
        seen = read_until(console, b"echo:typed-while-on", 5)
        assert b"echo:typed-while-on" in seen and b"typed-while-off" not in seen
    finally:
        board.write(lcus_frame(3, False))
        board.close()
        console.close()


def test_bench_dies_midrun_relay_exits_after_n_switches(fault_lab: tuple[SimLab, dict[str, int]]) -> None:
    lab, ports = fault_lab
    rid = next(k for k, r in lab.status()["relays"].items() if r["endpoint"] == f"127.0.0.1:{ports['dies']}")
    with socket.create_connection(("127.0.0.1", ports["dies"]), timeout=3) as sock, sock.makefile("rwb") as f:
        for n, line in enumerate(["ROUT:CLOS (@1)", "ROUT:OPEN (@1)", "ROUT:CLOS (@1)"], 1):
            f.write(f"{line}\nROUT:CLOS? (@1)\n".encode())
            f.flush()
            assert f.readline().strip() == (b"1" if n % 2 else b"0")
        f.write(b"ROUT:OPEN (@1)\nROUT:CLOS? (@1)\n")  # the 4th switch: the relay dies after it
        f.flush()
        assert f.readline() == b""
    wait_for(lambda: not lab.status()["relays"][rid]["running"], 5, "the relay's exit")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports["dies"]), timeout=1).close()
    assert lab.up()["up"], "up restarts what died, keeps the rest"
    assert scpi(ports["dies"], "*IDN?")[0].startswith("CERTLAB")


# --- cloud endpoint ---------------------------------------------------------------------------


def test_cloud_answers_plain_and_tls_and_never_logs_a_token(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", "t", ["127.0.0.1"])
    server = CloudServer("127.0.0.1", 0, pki, tmp_path / "cloud.log")
    server.start()
    try:
        line = b'{"serial": "SN1", "token": "tok-0123456789abcdef"}\n'
        with socket.create_connection(server.address, timeout=3) as plain:
            plain.sendall(line)
            assert plain.makefile("rb").readline() == b'{"ok": true}\n'
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        with ctx.wrap_socket(socket.create_connection(server.address, timeout=3),
                             server_hostname="cloud.certlab.test") as tls:
            tls.sendall(b"login user=dev password=hunter2-long-secret\n")
            assert tls.makefile("rb").readline() == b'{"ok": true}\n'
        wait_for(lambda: (tmp_path / "cloud.log").read_text().count('"line"') == 2, 3, "two log lines")
        log = (tmp_path / "cloud.log").read_text()
        assert '"transport": "plain"' in log and '"transport": "tls"' in log
        assert "0123456789abcdef" not in log and "hunter2-long-secret" not in log and "SN1" in log
    finally:
        server.close()
    assert redact("token=abcdefghijkl") == "token=abc…(12 chars)"


# --- network namespaces -----------------------------------------------------------------------


@pytest.mark.skipif(netns.unavailable_reason() is not None, reason=f"{netns.unavailable_reason()}")
def test_netns_bench_lives_in_its_namespace_and_down_removes_it(tmp_path: Path, standin: list[str]) -> None:
    name = f"t{PID}n"
    subnet = 20 + PID % 200
    spaces = {"n1": (f"cl-{PID}-n1", f"clh{PID}a", 1), "n2": (f"cl-{PID}-n2", f"clh{PID}b", 2)}
    hosts: dict = {}
    port = free_port()
    for bname, (ns, host_if, i) in spaces.items():
        hosts.update(bench(bname, name, {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{port}::SOCKET", "channel": i},
                           ssh_port=22, cloud_port=8883, faults=("ssh_unreachable",) if bname == "n2" else (),
                           network={"address": f"10.203.{subnet}.{4 * i + 2}", "netns": ns, "interface": host_if,
                                    "gateway": f"10.203.{subnet}.{4 * i + 1}", "prefix": 30}))
    lab = SimLab(write_inventory(tmp_path, name, hosts), dut_command=None if REAL_DUT else standin)
    try:
        lab.up()
        ns, host_if, _ = spaces["n1"]
        assert netns.exists(ns) and Path(f"/sys/class/net/{host_if}").exists()
        assert Path(f"/sys/class/net/{spaces['n2'][1]}/operstate").read_text().strip() == "down"  # link cut
        routes = subprocess.run(["ip", "-n", ns, "route"], capture_output=True, text=True, check=True).stdout
        assert "default" not in routes and f"10.203.{subnet}.4/30" in routes
        scpi(port, "ROUT:CLOS (@1)")
        dut_pid = int(wait_for(lambda: lab.status()["benches"]["n1"]["dut_pid"], 5, "n1's DUT"))
        assert os.stat(f"/proc/{dut_pid}/ns/net").st_ino == os.stat(f"/var/run/netns/{ns}").st_ino
        # the cloud, on the gateway, answers TLS from inside the namespace with the lab CA
        ca = json.loads((lab.root / "n1" / "dut.json").read_text())["cloud"]["ca_file"]
        probe = ("import socket,ssl,sys; c=ssl.create_default_context(cafile=sys.argv[1]);"
                 "s=c.wrap_socket(socket.create_connection((sys.argv[2],8883),timeout=3),server_hostname='cloud.certlab.test');"
                 "s.sendall(b'{\"token\": \"secret-token-123456\"}\\n'); print(s.recv(64).decode())")
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe, ca, f"10.203.{subnet}.5"],
                             capture_output=True, text=True, timeout=15)
        assert out.stdout.strip() == '{"ok": true}', out.stderr
        log = (lab.root / "n1" / "cloud.log").read_text()
        assert '"transport": "tls"' in log and "secret-token-123456" not in log
    finally:
        lab.down(purge=True)
    for ns, host_if, _ in spaces.values():
        assert not netns.exists(ns) and not Path(f"/sys/class/net/{host_if}").exists()
    assert lab_processes(lab.root) == []


# --- planning errors are bad input, said before anything starts -------------------------------


def test_bad_simulated_resources_are_refused_before_anything_starts(tmp_path: Path) -> None:
    from lab.errors import InventoryError

    name = f"t{PID}p"
    remote = bench("r1", name, {"driver": "scpi", "resource": "TCPIP::192.0.2.7::5025::SOCKET", "channel": 1})
    with pytest.raises(InventoryError, match="loopback"):
        SimLab(write_inventory(tmp_path / "a", name, remote)).up()
    port = free_port()
    clash = {**bench("c1", name, {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{port}::SOCKET", "channel": 1},
                     ssh_port=port)}
    with pytest.raises(InventoryError, match="both listen on 127.0.0.1"):
        SimLab(write_inventory(tmp_path / "b", name, clash)).up()
    assert not (Path("/tmp/certlab-sim") / name).exists()


def test_a_process_just_started_is_not_called_dead_before_its_command_line_shows(
        tmp_path: Path, standin: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Just after exec, /proc/<pid>/cmdline can be empty on a busy machine: `up` must wait, not fail."""
    import lab.sim.lab as sim_lab

    name = f"t{PID}c"
    port = free_port()
    inv = write_inventory(tmp_path, name, bench("c1", name, {
        "driver": "scpi", "resource": f"TCPIP::127.0.0.1::{port}::SOCKET", "channel": 1}))
    lab = SimLab(inv, dut_command=None if REAL_DUT else standin)
    monkeypatch.setattr(sim_lab, "_running", lambda pid, marker: False)  # every command line still unreadable
    try:
        lab.up()
        monkeypatch.undo()
        assert scpi(port, "*IDN?")[0]
    finally:
        monkeypatch.undo()
        lab.down(purge=True)
    assert lab_processes(lab.root) == []
