"""The lab's pre-imported DUT fork server (lab.sim.forkserver), with a stand-in entry instead of the device.

The fork itself is what is tested: each child leads its own group, holds only stdio and its UART,
draws fresh random numbers, enters its bench's namespace, reports its exit status (3 = reboot,
-9 = power cut), and dies when its bench host lets go; a real bench host re-forks on a reboot.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.sim import forkserver, netns
from lab.sim.forkserver import BootRequest, ForkServerError

ROOT = Path(__file__).resolve().parent.parent
PID = os.getpid()

pytestmark = pytest.mark.timeout(60)

STANDIN = """\
import argparse, json, logging, os, pathlib, random, signal, socket, subprocess, threading

def main(argv):
    p = argparse.ArgumentParser(); p.add_argument("--bench-dir"); p.add_argument("--uart-fd", type=int)
    a = p.parse_args(argv)
    d = pathlib.Path(a.bench_dir)
    uart = socket.socket(fileno=a.uart_fd)
    fds = [int(f) for f in os.listdir("/proc/self/fd")]
    ns = os.stat("/proc/self/ns/net").st_ino
    info = {"pid": os.getpid(), "pgid": os.getpgrp(), "sid": os.getsid(0), "ppid": os.getppid(),
            "fds": sorted(f for f in fds if os.path.exists(f"/proc/self/fd/{f}")), "uart": a.uart_fd,
            "random": random.random(), "netns_ino": ns, "sys_net": sorted(os.listdir("/sys/class/net")),
            "cwd": os.getcwd(), "env": os.environ.get("FS_TEST"), "log_handlers": len(logging.getLogger().handlers),
            "threads": threading.active_count(), "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}
    flag = d / "exit"
    if flag.exists():
        code = int(flag.read_text()); flag.unlink(); return code
    uart.sendall(json.dumps(info).encode() + b"\\n")
    subprocess.Popen(["sleep", "300"])  # a member of its group besides itself
    while data := uart.recv(1024):
        if b"reboot" in data:
            return 3
    return 0
"""


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    folder = tmp_path_factory.mktemp("fs")
    (folder / "fs_standin.py").write_text(STANDIN)
    sock = folder / "fs.sock"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    with open(folder / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lab.sim.forkserver", "--socket", str(sock),
                                 "--entry", "fs_standin:main"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    wait_for(lambda: sock.exists() or proc.poll() is not None, 20, "the fork server's socket")
    assert proc.poll() is None, (folder / "server.log").read_text()
    yield sock, proc
    proc.terminate()
    proc.wait(10)
    assert not sock.exists()


async def boot(sock: Path, bench_dir: Path, netns_name: str | None = None,
               ) -> tuple[forkserver.ForkedDut, asyncio.StreamReader, asyncio.StreamWriter]:
    bench_dir.mkdir(parents=True, exist_ok=True)
    ours, theirs = socket.socketpair()
    try:
        dut = await forkserver.boot(sock, BootRequest(str(bench_dir), netns_name, str(bench_dir), {"FS_TEST": "yes"}),
                                    theirs.fileno())
    finally:
        theirs.close()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    return dut, reader, writer


async def info_of(reader: asyncio.StreamReader) -> dict:
    return json.loads(await asyncio.wait_for(reader.readline(), 20))


# --- pure parts ---------------------------------------------------------------------------------


def test_boot_requests_round_trip_and_bad_ones_name_the_field() -> None:
    req = BootRequest("/tmp/x/b1", "cl-x-1", "/repo", {"A": "1"})
    assert BootRequest.decode(req.encode()) == req
    for line, field in [(b"not json", "not JSON"), (b"{}", "bench_dir"), (b'{"bench_dir": "/b", "netns": "../x"}', "netns"),
                        (b'{"bench_dir": "/b", "env": {"A": 1}}', "env"), (b'{"bench_dir": "/b", "cwd": 3}', "cwd")]:
        with pytest.raises(ForkServerError, match=field):
            BootRequest.decode(line)


def test_replies_and_entries() -> None:
    assert forkserver.parse_reply(b'{"pid": 42}\n', "pid") == 42
    assert forkserver.parse_reply(b'{"exit": -9}\n', "exit") == -9
    with pytest.raises(ForkServerError, match="too many threads"):
        forkserver.parse_reply(b'{"error": "too many threads"}\n', "pid")
    with pytest.raises(ForkServerError, match="unexpected reply"):
        forkserver.parse_reply(b"", "exit")
    with pytest.raises(ForkServerError, match="module:function"):
        forkserver.load_entry("lab.sim.dut")
    with pytest.raises(ForkServerError, match="no_such"):
        forkserver.load_entry("lab.sim.dut:no_such")


@pytest.mark.parametrize("args, said", [(["--entry", "nope"], "module:function"),
                                        (["--entry", "json:dumps"], "cannot listen on")])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str], said: str) -> None:
    sock = tmp_path / "missing-folder" / "s" if said == "cannot listen on" else tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "lab.sim.forkserver", "--socket", str(sock), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and said in proc.stderr, proc.stderr


# --- the server with real forks -----------------------------------------------------------------


def test_two_concurrent_boots_are_fresh_group_leaders_and_a_group_kill_is_a_power_cut(server, tmp_path: Path) -> None:
    sock, proc = server

    async def scenario() -> None:
        (a, ra, wa), (b, rb, wb) = await asyncio.gather(boot(sock, tmp_path / "a"), boot(sock, tmp_path / "b"))
        ia, ib = await asyncio.gather(info_of(ra), info_of(rb))
        for dut, info in ((a, ia), (b, ib)):
            assert info["pid"] == info["pgid"] == info["sid"] == dut.pid  # its own session and group
            assert info["ppid"] == proc.pid
            assert info["fds"] == sorted({0, 1, 2, info["uart"]})  # nothing of the server's inherited
            assert info["env"] == "yes" and info["cwd"] == str(tmp_path / dut_name(dut, a))
            assert info["log_handlers"] == 0 and info["threads"] == 1 and info["sigterm_default"]  # nothing of the server's
        assert ia["pid"] != ib["pid"] and ia["random"] != ib["random"]
        os.killpg(a.pid, signal.SIGKILL)
        assert await asyncio.wait_for(a.wait(), 10) == -9
        wait_for(lambda: group_gone(a.pid), 5, "the killed group (the sleep child too) to be reaped")
        assert not group_gone(b.pid)  # the other bench's DUT is untouched
        os.killpg(b.pid, signal.SIGKILL)
        assert await asyncio.wait_for(b.wait(), 10) == -9
        wa.close()
        wb.close()

    def dut_name(dut: forkserver.ForkedDut, a: forkserver.ForkedDut) -> str:
        return "a" if dut is a else "b"

    asyncio.run(scenario())


def test_exit_status_is_reported_as_popen_says_it(server, tmp_path: Path) -> None:
    sock, _ = server
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "exit").write_text("3")

    async def scenario() -> int:
        dut, _, writer = await boot(sock, tmp_path / "r")
        writer.close()
        return await asyncio.wait_for(dut.wait(), 10)

    assert asyncio.run(scenario()) == 3


def test_a_bench_host_letting_go_cuts_its_dut(server, tmp_path: Path) -> None:
    sock, _ = server

    async def scenario() -> int:
        dut, reader, writer = await boot(sock, tmp_path / "g")
        await info_of(reader)
        dut._writer.close()  # the bench host's end of the boot connection: as if it had died
        writer.close()
        return dut.pid

    pid = asyncio.run(scenario())
    wait_for(lambda: group_gone(pid), 5, "the abandoned DUT's group to be killed")


def test_a_request_without_a_uart_is_refused_with_a_reason(server) -> None:
    sock, _ = server
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(BootRequest("/nonexistent").encode())
        reply = s.makefile("rb").readline()
    with pytest.raises(ForkServerError, match="exactly one fd"):
        forkserver.parse_reply(reply, "pid")


def test_an_absent_server_is_a_fork_server_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        a, b = socket.socketpair()
        with a, b:
            await forkserver.boot(tmp_path / "none.sock", BootRequest(str(tmp_path)), b.fileno())

    with pytest.raises(ForkServerError, match="cannot reach"):
        asyncio.run(scenario())


@pytest.mark.e2e
@pytest.mark.skipif(netns.unavailable_reason() is not None, reason=f"{netns.unavailable_reason()}")
def test_the_child_lives_in_its_bench_namespace_with_its_sysfs(server, tmp_path: Path) -> None:
    sock, _ = server
    ns = f"cl-fs-{PID}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        async def scenario() -> dict:
            dut, reader, writer = await boot(sock, tmp_path / "n", ns)
            info = await info_of(reader)
            os.killpg(dut.pid, signal.SIGKILL)
            await asyncio.wait_for(dut.wait(), 10)
            writer.close()
            return info

        info = asyncio.run(scenario())
        assert info["netns_ino"] == os.stat(f"/var/run/netns/{ns}").st_ino
        assert info["sys_net"] == ["lo"]  # /sys shows the namespace's links, as under `ip netns exec`
    finally:
        subprocess.run(["ip", "netns", "del", ns], timeout=10)


# --- through a real bench host ------------------------------------------------------------------


@pytest.mark.e2e
def test_bench_host_forks_reforks_on_reboot_and_kills_the_group_at_power_off(server, tmp_path: Path) -> None:
    sock, proc = server
    bdir = tmp_path / "bh"
    bdir.mkdir()
    link = tmp_path / "console"
    cfg = {"bench": "bh", "console_link": str(link), "netns": None, "faults": [], "cloud": None, "cwd": str(bdir),
           "dut_command": [sys.executable, "-c", "raise SystemExit(9)"],  # would show if it fell back to exec
           "forkserver": str(sock)}
    (bdir / "host.json").write_text(json.dumps(cfg))
    host = subprocess.Popen([sys.executable, "-m", "lab.sim.bench_host", "--bench-dir", str(bdir)], cwd=ROOT,
                            stdout=open(bdir / "host.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def power(word: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(bdir / "power.sock"))
            s.sendall(word.encode() + b"\n")
            return s.makefile("rb").readline().decode().strip()

    def dut_pid() -> int | None:
        try:
            return int((bdir / "dut.pid").read_text())
        except (OSError, ValueError):
            return None

    try:
        wait_for(lambda: (bdir / "power.sock").exists() and link.exists(), 20, "the bench host")
        assert power("ON") == "OK ON"
        first = int(wait_for(dut_pid, 10, "the first DUT"))
        assert Path(f"/proc/{first}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(proc.pid)  # forked by it
        console = os.open(link, os.O_RDWR | os.O_NOCTTY)
        try:
            wait_for(lambda: (bdir / "dut.log").exists(), 5, "the DUT's log")
            os.write(console, b"reboot\n")
            second = int(wait_for(lambda: (p := dut_pid()) not in (None, first) and p, 10, "the re-forked DUT"))
        finally:
            os.close(console)
        wait_for(lambda: not forkserver._alive(first), 5, "the rebooted DUT")
        os.killpg(first, signal.SIGKILL)  # its sleep child: a reboot only ends the leader, as before the fork server
        assert power("STATE") == "OK ON"
        assert power("OFF") == "OK OFF"
        assert group_gone(second) and dut_pid() is None  # gone, sleep child included, when OFF answers
        assert "fresh interpreter" not in (bdir / "host.log").read_text()
    finally:
        host.terminate()
        host.wait(10)
