"""certlab's hardware drivers against real peers: a SCPI server thread, LCUS and console ptys,
a paramiko SSH server, loopback sockets, Ansible over SSH. No mocks: each driver talks its real
wire protocol, as it would to hardware.
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from lab.drivers.console import ConsoleDriver
from lab.drivers.net import NetDriver
from lab.drivers.power import PowerDriver, RelayBoardPower, ScpiPower
from lab.drivers.provision import ProvisionDriver
from lab.drivers.ssh import SSHDriver
from lab.errors import (CertlabError, CommandFailed, ConsoleFault, DutError, ExpectTimeout, LabFault, LabLoginRejected,
                        NetworkFault, PowerFault, ProvisionFault, SSHUnreachable)
from lab.steps import ListSteps
from lab.transcript import REDACTED, Transcript

pytestmark = pytest.mark.timeout(60)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [<>#] ")
IS_ROOT = os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- peers -------------------------------------------------------------------------------


class ScpiPeer:
    """A tiny SCPI switch on TCP: ROUT and INST/OUTP dialects, an error queue, a silent mode."""

    def __init__(self, *, silent: bool = False, channels: int = 4) -> None:
        self.closed = {ch: False for ch in range(1, channels + 1)}
        self.silent = silent
        self.log: list[str] = []
        self.connections = 0
        peer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                peer.connections += 1
                errors: list[str] = []
                selected = 1
                for raw in self.rfile:
                    replies = []
                    for line in filter(None, (c.strip().lstrip(":") for c in raw.decode().split(";"))):
                        peer.log.append(line)
                        if peer.silent:
                            continue
                        reply, selected = peer.execute(line, errors, selected)
                        if reply is not None:
                            replies.append(reply)
                    if replies:
                        self.wfile.write(";".join(replies).encode() + b"\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.resource = f"TCPIP::127.0.0.1::{self.port}::SOCKET"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def execute(self, line: str, errors: list[str], selected: int) -> tuple[str | None, int]:
        up = line.upper()
        if up == "*IDN?":
            return "TESTCO,SWITCH-4,0001,1.0", selected
        if up == "SYST:ERR?":
            return (errors.pop(0) if errors else '0,"No error"'), selected
        if m := re.fullmatch(r"ROUT:(CLOS|OPEN)(\?)? \(@(\d+)\)", up):
            ch = int(m.group(3))
            if ch not in self.closed:
                errors.append('-222,"Data out of range"')
                return ("0" if m.group(2) else None), selected
            if m.group(2):
                return ("1" if self.closed[ch] else "0"), selected
            self.closed[ch] = m.group(1) == "CLOS"
            return None, selected
        if m := re.fullmatch(r"INST:NSEL (\d+)", up):
            return None, int(m.group(1))
        if m := re.fullmatch(r"OUTP (ON|OFF)", up):
            self.closed[selected] = m.group(1) == "ON"
            return None, selected
        if up == "OUTP?":
            return ("1" if self.closed[selected] else "0"), selected
        errors.append('-113,"Undefined header"')
        return None, selected

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PtyPeer:
    """The far end of a pty pair; `path` is what a driver opens, as it would open /dev/ttyUSB0."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def serve(self, on_bytes: Callable[[bytes], None] | None = None) -> PtyPeer:
        def loop() -> None:
            import select

            while not self._stop.is_set():
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if ready:
                    try:
                        data = os.read(self.master, 4096)
                    except OSError:
                        return
                    self.received += data
                    if on_bytes:
                        on_bytes(data)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def send(self, data: bytes | str) -> None:
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(1)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class LcusBoard:
    """An LCUS relay board's byte protocol on a pty: A0 ch st sum sets, FF reports."""

    def __init__(self, channels: int = 2, *, silent: bool = False, stuck: bool = False) -> None:
        self.state = {ch: False for ch in range(1, channels + 1)}
        self.frames: list[bytes] = []
        self.silent, self.stuck = silent, stuck
        self._pending = b""
        self.pty = PtyPeer().serve(self._on_bytes)

    def _on_bytes(self, data: bytes) -> None:
        self._pending += data
        while self._pending:
            if self._pending[0] == 0xFF:
                self._pending = self._pending[1:]
                if not self.silent:
                    self.pty.send("".join(f"CH{ch}:{'ON' if on else 'OFF'}\r\n" for ch, on in self.state.items()))
            elif self._pending[0] == 0xA0 and len(self._pending) >= 4:
                frame, self._pending = self._pending[:4], self._pending[4:]
                self.frames.append(frame)
                if sum(frame[:3]) & 0xFF == frame[3] and not self.stuck:
                    self.state[frame[1]] = frame[2] == 1
            elif self._pending[0] == 0xA0:
                return
            else:
                self._pending = self._pending[1:]


class _SftpRoot(paramiko.SFTPServerInterface):
    """Just enough SFTP for put/get: files under one folder."""

    def __init__(self, server: paramiko.ServerInterface, *, root: str) -> None:
        super().__init__(server)
        self.root = root

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def stat(self, path: str):
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._path(path)))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    lstat = stat

    def open(self, path: str, flags: int, attr):
        try:
            fd = os.open(self._path(path), flags, 0o644)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        handle = paramiko.SFTPHandle(flags)
        handle.readfile = handle.writefile = os.fdopen(fd, "r+b" if flags & os.O_RDWR else
                                                       "wb" if flags & os.O_WRONLY else "rb")
        return handle


class MiniSSH:
    """A small SSH server: password auth, exec through /bin/sh in a folder, SFTP, special commands."""

    def __init__(self, users: dict[str, str], root: Path, *, specials: dict[str, Callable[[], str]] | None = None):
        self.users, self.root, self.specials = users, root, specials or {}
        self.key = paramiko.ECDSAKey.generate()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.logins: list[tuple[str, bool]] = []
        self.failure_delay = 0.0  # s a wrong password waits before its answer
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        outer = self
        commands: list[str] = []
        ready = threading.Event()

        class Server(paramiko.ServerInterface):
            def check_auth_password(self, user: str, password: str) -> int:
                ok = outer.users.get(user) == password
                outer.logins.append((user, ok))
                if not ok and outer.failure_delay:
                    time.sleep(outer.failure_delay)
                return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

            def get_allowed_auths(self, user: str) -> str:
                return "password"

            def check_channel_request(self, kind: str, chanid: int) -> int:
                return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

            def check_channel_pty_request(self, *args) -> bool:
                return True

            def check_channel_exec_request(self, channel, command: bytes) -> bool:
                commands.append(command.decode())
                ready.set()
                return True

        transport = paramiko.Transport(conn)
        self.transports.append(transport)
        transport.add_server_key(self.key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _SftpRoot, root=str(self.root))
        try:
            transport.start_server(server=Server())
        except (paramiko.SSHException, EOFError, OSError):
            return
        while transport.is_active():
            chan = transport.accept(0.5)
            if chan is not None and ready.wait(5):
                ready.clear()
                threading.Thread(target=self._exec, args=(chan, commands.pop(0)), daemon=True).start()

    def _exec(self, chan: paramiko.Channel, command: str) -> None:
        if command in self.specials:
            out, err, status = self.specials[command]().encode(), b"", 0
        else:
            proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=self.root, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)

            def feed() -> None:  # stdin until the client's EOF; a command may exit before that
                try:
                    while chunk := chan.recv(65536):
                        proc.stdin.write(chunk)
                        proc.stdin.flush()
                    proc.stdin.close()
                except (OSError, ValueError):
                    pass

            threading.Thread(target=feed, daemon=True).start()
            err_reader = threading.Thread(target=lambda: errs.append(proc.stderr.read()), daemon=True)
            errs: list[bytes] = []
            err_reader.start()
            out = proc.stdout.read()
            err_reader.join(20)
            status = proc.wait(20)
            err = errs[0] if errs else b""
        chan.sendall(out)
        chan.sendall_stderr(err)
        chan.send_exit_status(status)
        chan.shutdown_write()
        chan.close()

    def close(self) -> None:
        self.sock.close()
        for t in self.transports:
            t.close()


# --- transcript ----------------------------------------------------------------------------


def test_transcript_lines_are_stamped_marked_redacted_and_thread_safe(tmp_path: Path) -> None:
    t = Transcript(tmp_path / "ev" / "console.log")
    t.record_received("boot\r\nlogin: ")
    t.record_sent("hunter22\n", secret=True)
    t.record_received("echo of hunter22 by a careless DUT\n")
    t.note("a note")
    threads = [threading.Thread(target=lambda i=i: [t.record_sent(f"t{i}-{n}") for n in range(50)]) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lines = (tmp_path / "ev" / "console.log").read_text().splitlines()
    assert all(STAMP.match(line) for line in lines), lines[:3]
    assert lines[0].endswith("< boot") and lines[1].endswith("< login: ")
    assert lines[2].endswith(f"> {REDACTED}") and lines[4].endswith("# a note")
    assert "hunter22" not in "\n".join(lines) and REDACTED in lines[3]
    assert len(lines) == 5 + 200
    t.close()


# --- power: SCPI ---------------------------------------------------------------------------


@pytest.fixture
def scpi_peer() -> Iterator[ScpiPeer]:
    peer = ScpiPeer()
    yield peer
    peer.close()


@pytest.mark.parametrize("dialect", ["route", "output"])
def test_scpi_power_switches_and_confirms(scpi_peer: ScpiPeer, dialect: str) -> None:
    steps = ListSteps()
    power = ScpiPower(scpi_peer.resource, 2, dialect=dialect, timeout=1.0, bench="b1", steps=steps)
    assert isinstance(power, PowerDriver)
    assert power.identify() == "TESTCO,SWITCH-4,0001,1.0"
    assert power.is_on() is False
    power.on()
    assert scpi_peer.closed[2] is True and power.is_on() is True and scpi_peer.closed[1] is False
    power.cycle(off_time=0.05)
    assert scpi_peer.closed[2] is True
    power.off()
    assert power.is_on() is False
    power.close()
    if dialect == "route":
        assert "ROUT:CLOS (@2)" in scpi_peer.log and "ROUT:CLOS? (@2)" in scpi_peer.log
    else:
        assert "INST:NSEL 2" in scpi_peer.log and "OUTP ON" in scpi_peer.log and "OUTP?" in scpi_peer.log
    assert "SYST:ERR?" in scpi_peer.log
    assert scpi_peer.connections == 1, "one session, opened lazily and reused"
    assert [s[0] for s in steps.records][:2] == ["power identify", "power state"]


def test_scpi_instrument_error_is_a_power_fault_naming_the_command(scpi_peer: ScpiPeer) -> None:
    power = ScpiPower(scpi_peer.resource, 9, timeout=1.0, bench="b1")
    with pytest.raises(PowerFault) as err:
        power.on()
    assert "refused ROUT:CLOS (@9)" in str(err.value) and "-222" in str(err.value)
    assert err.value.bench == "b1"
    assert scpi_peer.log.count("ROUT:CLOS (@9)") == 1, "an instrument error is not retried"
    power.close()


def test_silent_relay_gives_power_fault_after_bounded_retries() -> None:
    peer = ScpiPeer(silent=True)
    power = ScpiPower(peer.resource, 1, timeout=0.3, retries=2)
    start = time.monotonic()
    with pytest.raises(PowerFault) as err:
        power.identify()
    assert time.monotonic() - start < 5
    assert str(err.value.cause).startswith(f"relay at {peer.resource} did not answer *IDN? within 0.3 s (3 attempts")
    assert peer.log.count("*IDN?") == 3 and peer.connections == 3, "a fresh session per attempt"
    power.close()
    peer.close()


def test_relay_that_refuses_connections_is_a_power_fault() -> None:
    resource = f"TCPIP::127.0.0.1::{free_port()}::SOCKET"
    with pytest.raises(PowerFault, match="refused the connection"):
        ScpiPower(resource, 1, timeout=0.5, retries=1).on()


# --- power: LCUS relay board ---------------------------------------------------------------


def test_relay_board_sends_lcus_frames_and_confirms_by_status() -> None:
    board = LcusBoard(channels=4)
    power = RelayBoardPower(board.pty.path, 3, timeout=1.0)
    try:
        assert power.is_on() is False
        power.on()
        assert board.state[3] is True and power.is_on() is True
        power.off()
        assert board.frames == [bytes([0xA0, 3, 1, 0xA4]), bytes([0xA0, 3, 0, 0xA3])]
        assert power.status() == {1: False, 2: False, 3: False, 4: False}
        assert "4 channels" in power.identify()
    finally:
        power.close()
        board.pty.close()


def test_relay_board_faults_silent_and_stuck() -> None:
    silent, stuck = LcusBoard(silent=True), LcusBoard(stuck=True)
    try:
        with pytest.raises(PowerFault, match=r"did not answer the status query \(FF\) within 0.3 s \(2 attempts"):
            RelayBoardPower(silent.pty.path, 1, timeout=0.3, retries=1).on()
        with pytest.raises(PowerFault, match="kept channel 2 off after switching it on"):
            RelayBoardPower(stuck.pty.path, 2, timeout=0.5, retries=1).on()
        assert len(stuck.frames) == 2, "the set is retried once"
        with pytest.raises(PowerFault, match="could not be opened"):
            RelayBoardPower("/nonexistent/ttyUSB9", 1, retries=0).off()
    finally:
        silent.pty.close()
        stuck.pty.close()


def test_benches_sharing_one_relay_board_do_not_read_each_others_replies() -> None:
    board = LcusBoard(channels=2)
    drivers = [RelayBoardPower(board.pty.path, ch, timeout=1.0, retries=0) for ch in (1, 2)]
    errors: list[Exception] = []

    def hammer(power: RelayBoardPower) -> None:
        try:
            for _ in range(8):
                power.on()
                power.off()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(d,)) for d in drivers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == [] and len(board.frames) == 32 and board.state == {1: False, 2: False}
    finally:
        for d in drivers:
            d.close()
        board.pty.close()


# --- console -------------------------------------------------------------------------------


@pytest.fixture
def pty_peer() -> Iterator[PtyPeer]:
    peer = PtyPeer().serve()
    yield peer
    peer.close()


def test_console_expect_sendline_and_transcript(pty_peer: PtyPeer, tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "console.log")
    console = ConsoleDriver(pty_peer.path, transcript=transcript, timeout=3, bench="b1")
    with console:
        pty_peer.send("U-Boot 2024.01\r\nStarting kernel ...\r\n")
        pty_peer.send("th100 login: ")
        found = console.expect([r"Password:\s*$", r"login:\s*$"])
        assert found.index == 1 and "Starting kernel" in found.before
        console.sendline("root")
        console.sendline("pw-Secret-1", secret=True)
        wait_for(lambda: b"pw-Secret-1\n" in pty_peer.received)
        pty_peer.send("pw-Secret-1\r\n# ")  # a DUT that echoes the password
        console.expect(r"# $")
        pty_peer.send("line one\r\nline two\r\n")
        assert console.read_until_quiet(quiet=0.2, timeout=3) == "line one\r\nline two\r\n"
        assert console.bytes_received > 40
    text = (tmp_path / "console.log").read_text()
    assert "< th100 login: " in text and "> root" in text and "pw-Secret-1" not in text
    assert all(STAMP.match(line) for line in text.splitlines())


def test_console_earliest_match_wins_and_is_consumed(pty_peer: PtyPeer) -> None:
    with ConsoleDriver(pty_peer.path, timeout=2) as console:
        pty_peer.send("Login incorrect\r\n\r\nlogin: ")
        assert console.expect([r"login:\s*$", "Login incorrect"]).index == 1
        assert console.expect([r"login:\s*$", "Login incorrect"]).index == 0


def test_silent_console_is_a_console_fault(pty_peer: PtyPeer) -> None:
    console = ConsoleDriver(pty_peer.path, timeout=0.5, bench="b1")
    with pytest.raises(ConsoleFault, match=rf"console at {pty_peer.path} silent: no byte in 0\.\d s"):
        console.expect("login:")
    console.close()


def test_chatter_without_the_pattern_is_an_expect_timeout(pty_peer: PtyPeer) -> None:
    with ConsoleDriver(pty_peer.path) as console:
        pty_peer.send("kernel panic - not syncing\r\n")
        with pytest.raises(ExpectTimeout) as err:
            console.expect(r"login:\s*$", timeout=0.5)
    assert isinstance(err.value, DutError) and "kernel panic" in err.value.tail


def test_a_wait_of_the_configured_length_names_where_that_length_comes_from(pty_peer: PtyPeer) -> None:
    source = "console.timeout of bench b1 in the inventory"
    with ConsoleDriver(pty_peer.path, timeout=0.4, bench="b1", timeout_source=source) as console:
        pty_peer.send("booting slowly\r\n")
        with pytest.raises(ExpectTimeout, match=rf"within 0.4 s \({source}\)"):
            console.expect(r"# $")
        with pytest.raises(ExpectTimeout) as other:
            console.expect(r"# $", timeout=0.3)  # a test's own wait is its own business
    assert source not in str(other.value)


def test_console_that_cannot_be_opened_is_a_console_fault() -> None:
    with pytest.raises(ConsoleFault, match="cannot be opened"):
        ConsoleDriver("/nonexistent/ttyUSB7").open()


def test_console_over_a_socket_url() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    console = ConsoleDriver(f"socket://127.0.0.1:{server.getsockname()[1]}", timeout=3)
    console.open()
    conn, _ = server.accept()
    conn.sendall(b"console server says hi\r\n$ ")
    assert console.expect(r"\$ $").before.startswith("console server")
    console.sendline("id")
    assert conn.recv(16) == b"id\n"
    console.close()
    conn.close()
    server.close()


# --- ssh -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssh_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniSSH]:
    peer = MiniSSH({"root": "Dut-Pw-42"}, tmp_path_factory.mktemp("dutroot"))
    yield peer
    peer.close()


@pytest.mark.parametrize("attempt_first", [False, True])
def test_time_auth_times_the_password_attempt_against_a_none_request(ssh_peer: MiniSSH, tmp_path: Path,
                                                                      attempt_first: bool) -> None:
    transcript = Transcript(tmp_path / "ssh.log")
    ssh = SSHDriver("127.0.0.1", ssh_peer.port, "root", lambda: "Dut-Pw-42", transcript=transcript, timeout=5)
    ssh_peer.failure_delay = 0.3
    try:
        t = ssh.time_auth("root", "guess-123", attempt_first=attempt_first)
    finally:
        ssh_peer.failure_delay = 0.0
    assert (t.outcome, t.detail) == ("rejected", "")
    assert t.baseline is not None and t.attempt is not None
    assert t.attempt - t.baseline >= 0.25 and t.baseline < 0.25, t  # the delay, not the key exchange
    assert "guess-123" not in (tmp_path / "ssh.log").read_text()
    right = ssh.time_auth("root", "Dut-Pw-42")
    assert right.outcome == "accepted" and right.baseline is not None


def test_time_auth_names_a_refused_connection() -> None:
    t = SSHDriver("127.0.0.1", free_port(), "root", "x", timeout=2).time_auth("root", "x")
    assert (t.outcome, t.baseline, t.attempt) == ("refused", None, None)


def test_ssh_run_put_get_and_transcript(ssh_peer: MiniSSH, tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "ssh.log")
    ssh = SSHDriver("127.0.0.1", ssh_peer.port, "root", lambda: "Dut-Pw-42", transcript=transcript, timeout=5)
    try:
        assert ssh.wait_reachable(timeout=5) < 5
        result = ssh.run("echo hello; echo oops >&2; exit 3")
        assert (result.exit_status, result.stdout, result.stderr) == (3, "hello\n", "oops\n")
        assert ssh.run("tr a-z A-Z", stdin="quiet\n").stdout == "QUIET\n"
        with pytest.raises(CommandFailed, match="exited 3"):
            ssh.run("exit 3", check=True)
        ssh._client.get_transport().close()  # the DUT rebooted under us
        assert ssh.run("echo back").stdout == "back\n"
        (tmp_path / "fw.bin").write_bytes(os.urandom(100_000))
        ssh.put(tmp_path / "fw.bin", "/fw.bin")
        ssh.get("/fw.bin", tmp_path / "copy.bin")
        assert (tmp_path / "copy.bin").read_bytes() == (tmp_path / "fw.bin").read_bytes()
        assert ssh.host_key and ssh.host_key.startswith("ecdsa-sha2-nistp256 SHA256:")
    finally:
        ssh.close()
    text = (tmp_path / "ssh.log").read_text()
    assert "> $ echo hello; echo oops >&2; exit 3" in text and "< [stderr] oops" in text
    assert "host key of 127.0.0.1" in text and "Dut-Pw-42" not in text


def test_ssh_keeps_one_transport_warm_with_a_channel_per_command(ssh_peer: MiniSSH, tmp_path: Path) -> None:
    ssh = SSHDriver("127.0.0.1", ssh_peer.port, password="Dut-Pw-42", transcript=Transcript(tmp_path / "ssh.log"),
                    timeout=5)
    try:
        transports = len(ssh_peer.transports)
        outputs = [ssh.run(f"echo {i}").stdout for i in range(20)]
        assert outputs == [f"{i}\n" for i in range(20)]
        assert len(ssh_peer.transports) == transports + 1  # one connection for all twenty
        kept = ssh._client.get_transport()
        assert kept.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert ssh.try_login("root", "Dut-Pw-42", timeout=5).outcome == "accepted"  # a connection of its own
        assert len(ssh_peer.transports) == transports + 2 and ssh._client.get_transport() is kept
        assert ssh.run("echo still").stdout == "still\n" and ssh.reconnects == 0
    finally:
        ssh.close()


def test_ssh_kept_connection_lost_is_reconnected_once_and_said(ssh_peer: MiniSSH, tmp_path: Path) -> None:
    """A transport that died behind the lab's back (a DUT that restarted) is replaced, never hidden."""
    ssh = SSHDriver("127.0.0.1", ssh_peer.port, password="Dut-Pw-42", transcript=Transcript(tmp_path / "ssh.log"),
                    timeout=5)
    try:
        assert ssh.run("echo one").stdout == "one\n"
        ssh_peer.transports[-1].close()  # the DUT's side goes away
        assert ssh.run("echo two").stdout == "two\n"
        assert ssh.reconnects == 1
        ssh.drop("the bench switched the DUT's power")  # the lab's own doing: not a loss
        assert ssh._client is None
        assert ssh.run("echo three").stdout == "three\n" and ssh.reconnects == 1
    finally:
        ssh.close()
    text = (tmp_path / "ssh.log").read_text()
    assert "lost" in text and "the DUT may have restarted since the last command" in text
    assert "closed: the bench switched the DUT's power" in text


def test_ssh_try_login_outcomes(ssh_peer: MiniSSH, tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "ssh.log")
    ssh = SSHDriver("127.0.0.1", ssh_peer.port, transcript=transcript)
    good = ssh.try_login("root", "Dut-Pw-42", timeout=5)
    bad = ssh.try_login("root", "admin", timeout=5)
    assert (good.outcome, bad.outcome) == ("accepted", "rejected") and good.seconds < 5
    closed = SSHDriver("127.0.0.1", free_port()).try_login("root", "x", timeout=2)
    assert closed.outcome == "refused"
    assert ("root", False) in ssh_peer.logins
    assert "admin" not in (tmp_path / "ssh.log").read_text()


def test_ssh_to_a_closed_port_is_unreachable() -> None:
    ssh = SSHDriver("127.0.0.1", free_port(), password="x", timeout=1)
    with pytest.raises(SSHUnreachable, match="TCP connect failed"):
        ssh.run("true")
    with pytest.raises(SSHUnreachable, match="not reachable within 0.5 s"):
        ssh.wait_reachable(timeout=0.5)


def test_ssh_wrong_lab_password_is_a_lab_fault_naming_the_field(ssh_peer: MiniSSH) -> None:
    """The lab's own login rejected: the inventory (or the sample's state) is wrong, not the product."""
    ssh = SSHDriver("127.0.0.1", ssh_peer.port, password="wrong", timeout=5, bench="b1",
                    password_source="ssh.password of bench b1")
    with pytest.raises(LabFault) as err:
        ssh.run("true")
    assert isinstance(err.value, LabLoginRejected) and not isinstance(err.value, AssertionError)
    assert "the lab cannot log in with ssh.password of bench b1" in str(err.value)
    assert "rejected the lab's credentials" in str(err.value) and "wrong" not in str(err.value)


class _OnBench:
    """Just enough of a Bench for the health check: powered, console answers, SSH is the MiniSSH peer."""

    class _Power:
        def identify(self) -> str:
            return "SIM,relay"

        def is_on(self) -> bool:
            return True

    class _Console:
        bytes_received = 0

        def sendline(self, text: str) -> None:
            self.bytes_received += 10

        def read_until_quiet(self, **_: float) -> str:
            return "# "

    class _Strategy:
        cycles = 0

        def power_cycle(self) -> float:
            self.cycles += 1
            return 0.1

    def __init__(self, ssh: SSHDriver) -> None:
        from types import SimpleNamespace

        self.name = "b1"
        self.power, self.console, self.strategy, self.ssh = self._Power(), self._Console(), self._Strategy(), ssh
        self.config = SimpleNamespace(ssh=SimpleNamespace(timeout=2.0))


def test_health_check_rejected_lab_login_is_a_lab_fault(ssh_peer: MiniSSH) -> None:
    """A wrong ssh.password must stop the bench (INCONCLUSIVE, lab fault), never reach a test as a FAIL."""
    from lab.check import health_check

    ok = _OnBench(SSHDriver("127.0.0.1", ssh_peer.port, password="Dut-Pw-42", timeout=5, bench="b1"))
    health_check(ok)  # the right password: the quick path, no power cycle
    assert ok.strategy.cycles == 0
    wrong = _OnBench(SSHDriver("127.0.0.1", ssh_peer.port, password="wrong", timeout=5, bench="b1",
                               password_source="ssh.password of bench b1"))
    with pytest.raises(LabLoginRejected, match="the lab cannot log in with ssh.password of bench b1"):
        health_check(wrong)
    assert wrong.strategy.cycles == 1  # the full probe ran before the lab gave up


def test_rejected_lab_login_in_a_test_is_inconclusive_lab_fault(ssh_peer: MiniSSH) -> None:
    from fixtures.verdicts import classify, inconclusive_cause
    from types import SimpleNamespace

    ssh = SSHDriver("127.0.0.1", ssh_peer.port, password="wrong", timeout=5, bench="b1",
                    password_source="ssh.password of bench b1")
    call = pytest.CallInfo.from_call(lambda: ssh.run("true"), when="call")
    report = SimpleNamespace(when="call", passed=False, skipped=False, failed=True, longrepr=None)
    verdict, reason = classify(report, call)
    assert (verdict, inconclusive_cause(call, report)) == ("INCONCLUSIVE", "lab-fault")
    assert "the lab cannot log in with ssh.password of bench b1" in reason


# --- net -----------------------------------------------------------------------------------


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


def test_tcp_connect_scan_finds_listening_loopback_ports(listeners: list[int]) -> None:
    closed = [free_port(), free_port()]
    scan = NetDriver("127.0.0.1").scan_tcp(listeners + closed, timeout=1)
    assert scan == sorted(listeners) and scan.method == "connect" and scan.closed == 2


@pytest.mark.skipif(not IS_ROOT, reason="a SYN scan needs raw sockets")
def test_tcp_syn_scan_on_lo(listeners: list[int]) -> None:
    scan = NetDriver("127.0.0.1", interface="lo").scan_tcp(listeners + [free_port()], timeout=1)
    assert scan == sorted(listeners) and scan.method == "syn" and scan.closed == 1


def test_udp_scan_open_and_closed() -> None:
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))

    def serve() -> None:
        data, addr = echo.recvfrom(100)
        echo.sendto(b"pong", addr)

    threading.Thread(target=serve, daemon=True).start()
    open_port = echo.getsockname()[1]
    closed_port = free_port()
    states = NetDriver("127.0.0.1").scan_udp([open_port, closed_port], timeout=0.5)
    assert states == {open_port: "open", closed_port: "closed"}
    echo.close()


def test_net_guardrail_refuses_addresses_outside_the_lab() -> None:
    with pytest.raises(CertlabError, match="not loopback and no interface"):
        NetDriver("192.0.2.10")
    with pytest.raises(CertlabError):
        NetDriver("224.0.0.1", interface="lo")
    with pytest.raises(NetworkFault, match="refusing to send packets outside the lab"):
        NetDriver("192.0.2.10", interface="lo").scan_tcp([22], timeout=0.2)


@pytest.mark.skipif(not IS_ROOT, reason="capturing needs raw sockets")
def test_capture_on_lo_writes_a_readable_pcap(listeners: list[int], tmp_path: Path) -> None:
    from scapy.all import TCP, rdpcap

    net = NetDriver("127.0.0.1", interface="lo")
    with net.capture(tmp_path / "ev" / "dut.pcap", bpf_filter=f"tcp port {listeners[0]}") as cap:
        socket.create_connection(("127.0.0.1", listeners[0]), timeout=2).close()
    packets = rdpcap(str(tmp_path / "ev" / "dut.pcap"))
    assert len(packets) == len(cap.packets) >= 3
    syns = [p for p in packets if TCP in p and p[TCP].dport == listeners[0] and p[TCP].flags == "S"]
    assert len(syns) == 1, "each packet once on lo, as tcpdump shows it"


NETNS_PEER = """
import socket, sys, time
tcp = [socket.create_server(("0.0.0.0", int(p))) for p in sys.argv[1:3]]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", int(sys.argv[3])))
print("ready", flush=True)
while True:
    data, addr = udp.recvfrom(100)
    udp.sendto(b"pong", addr)
"""


@pytest.fixture
def netns_dut(tmp_path: Path) -> Iterator[tuple[str, str, list[int]]]:
    """A DUT address inside a network namespace of our own, behind a veth pair (as the sim lab has)."""
    if not IS_ROOT or not Path("/usr/sbin/ip").exists() and not Path("/sbin/ip").exists():
        pytest.skip("needs root and iproute2")
    pid = os.getpid()
    ns, host_if, dut_if = f"cld{pid}", f"cld{pid}h", f"cld{pid}d"
    net = f"10.249.{pid % 250}"
    cmds = [f"ip netns add {ns}", f"ip link add {host_if} type veth peer name {dut_if}",
            f"ip link set {dut_if} netns {ns}", f"ip addr add {net}.1/30 dev {host_if}", f"ip link set {host_if} up",
            f"ip -n {ns} addr add {net}.2/30 dev {dut_if}", f"ip -n {ns} link set {dut_if} up",
            f"ip -n {ns} link set lo up"]
    proc = None
    try:
        for cmd in cmds:
            done = subprocess.run(cmd.split(), capture_output=True, text=True)
            if done.returncode:
                pytest.skip(f"cannot build a network namespace here: {done.stderr.strip()}")
        ports = [free_port(), free_port(), free_port()]
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", NETNS_PEER, *map(str, ports)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        yield f"{net}.2", host_if, ports
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(5)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def test_scans_and_capture_through_a_veth_into_a_namespace(netns_dut, tmp_path: Path) -> None:
    from scapy.all import UDP, rdpcap

    address, interface, (tcp1, tcp2, udp_port) = netns_dut
    net = NetDriver(address, interface=interface)
    with net.capture(tmp_path / "veth.pcap") as cap:
        scan = net.scan_tcp([tcp1, tcp2, 9], timeout=1)
        udp = net.scan_udp([udp_port, 9], timeout=0.5)
    assert scan == sorted([tcp1, tcp2]) and scan.method == "syn" and scan.closed == 1
    assert udp == {udp_port: "open", 9: "closed"}
    assert any(UDP in p and p[UDP].sport == udp_port for p in rdpcap(str(cap.path)))
    with pytest.raises(NetworkFault, match="not the bench interface"):
        NetDriver(address, interface="lo").scan_tcp([tcp1], timeout=0.2)


# --- provision -----------------------------------------------------------------------------


def test_provision_runs_a_playbook_without_the_password_on_disk(tmp_path: Path, monkeypatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the private data dir goes
    password = "Prov-Pw-8c1"

    def disk_scan() -> str:  # runs in the server while the playbook runs: is the password on disk?
        hits = [str(p) for p in scratch.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
        used = [p.name for p in scratch.iterdir()]
        return f"hits={hits} dirs={used}\n"

    peer = MiniSSH({"root": password}, tmp_path, specials={"/bin/sh -c 'certlab-disk-scan && sleep 0'": disk_scan,
                                                           "certlab-disk-scan": disk_scan})
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "all:\n  children:\n    benches:\n      hosts:\n        bench1:\n"
        f"          ansible_host: 127.0.0.1\n          ansible_port: {peer.port}\n"
        "          ansible_user: root\n          ansible_connection: paramiko\n"
    )
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.raw: echo provisioned > marker.txt\n"
        "    - ansible.builtin.raw: certlab-disk-scan\n      register: scan\n"
        "    - ansible.builtin.debug: {msg: 'SCAN {{ scan.stdout | trim }}'}\n"
        "    - ansible.builtin.raw: '{{ fail_with | default(\"true\") }}'\n"
    )
    steps = ListSteps()
    driver = ProvisionDriver(inventory, "bench1", password=lambda: password, bench="bench1", steps=steps)
    try:
        result = driver.run_playbook(playbook, timeout=60)
        assert result.status == "successful" and result.rc == 0
        assert (tmp_path / "marker.txt").read_text() == "provisioned\n"
        scan = re.search(r"SCAN hits=(\[.*?\]) dirs=(\[.*?\])", result.stdout)
        assert scan and scan.group(1) == "[]" and "certlab-ansible-" in scan.group(2), result.stdout[-800:]
        assert password not in result.stdout
        assert list(scratch.iterdir()) == [], "the private data dir is removed"
        with pytest.raises(ProvisionFault) as err:
            driver.run_playbook(playbook, extravars={"fail_with": "echo no space left >&2; exit 4"}, timeout=60)
        assert "failed at task" in str(err.value) and "no space left" in str(err.value)
        assert [s[0] for s in steps.records] == ["provision", "provision"]
    finally:
        peer.close()
