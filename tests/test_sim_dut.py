"""The simulated DUT as real processes: console over a socketpair, SSH/SFTP, power cuts (SIGKILL).

No mocks: each test starts `python -m lab.sim.dut` in its own session, plays the bench host
(UART peer, respawn after exit 3, SIGKILL of the process group for power-off) and talks to the
device the way the drivers will. Timings are shrunk (boot 0.3 s, short lockouts).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab import firmware
from lab.errors import FirmwareFormatError
from lab.sim import vendor
from lab.sim.flash import Flash

pytestmark = pytest.mark.timeout(60)  # every wait below is bounded too; this is the backstop

ROOT = Path(__file__).resolve().parents[1]
LABEL = "Label-Pw-4711"
MODEL = "TH-100"
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dut:
    """One bench's worth of DUT: dut.json, the UART peer, the process, SSH helpers."""

    def __init__(self, bench_dir: Path, **overrides: object):
        self.dir = bench_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ssh_port = free_port()
        self.debug_port = free_port()
        self.cfg = {
            "bench": "t1", "model": MODEL, "serial": "SN0001", "mac": "02:00:00:00:01:2a",
            "firmware": "1.4.0", "label_password": LABEL, "flaws": [], "boot_seconds": 0.3,
            "address": "127.0.0.1", "ssh_port": self.ssh_port, "debug_port": self.debug_port,
            "telemetry_interval": 5, "lockout_attempts": 5, "lockout_seconds": 10,
            "dirty_expire_seconds": 5, "update_write_seconds": 0.2,
            "vendor_pubkey": vendor.vendor_public_key_hex(),
        } | overrides
        (self.dir / "dut.json").write_text(json.dumps(self.cfg))
        self.proc: subprocess.Popen | None = None
        self.uart: socket.socket | None = None
        self.out = bytearray()
        self.cursor = 0
        self._cond = threading.Condition()

    # -- power --

    def power_on(self) -> "Dut":
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.sim.dut", "--bench-dir", str(self.dir), "--uart-fd", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], start_new_session=True, cwd=ROOT, env=SUBPROCESS_ENV,
        )
        theirs.close()
        self.uart = ours
        with self._cond:
            self.out.clear()
            self.cursor = 0
        threading.Thread(target=self._pump, args=(ours,), daemon=True).start()
        return self

    def _pump(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            with self._cond:
                if sock is self.uart:
                    self.out.extend(data)
                    self._cond.notify_all()

    def power_off(self) -> None:
        """Power cut: SIGKILL the whole process group, no shutdown hook."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.uart is not None:
            self.uart.close()
            self.uart = None

    def wait_exit(self, timeout: float = 5) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def respawn_after_reboot(self) -> None:
        """What the bench host does when the DUT exits 3 while power stays on."""
        assert self.wait_exit(5) == 3
        self.power_off()
        self.power_on()

    # -- console --

    def expect(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self.out[self.cursor :].decode("utf-8", "replace")
                m = rx.search(text)
                if m:
                    self.cursor += len(text[: m.end()].encode("utf-8"))
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"console never showed {pattern!r}; tail: {text[-600:]!r}")
                self._cond.wait(left)

    def quiet_for(self, pattern: str, seconds: float) -> str:
        """Assert `pattern` does not show up within `seconds`; returns what did."""
        time.sleep(seconds)
        with self._cond:
            text = self.out[self.cursor :].decode("utf-8", "replace")
        assert not re.search(pattern, text), f"unexpected {pattern!r} in {text[-400:]!r}"
        return text

    def send(self, text: str | bytes) -> None:
        assert self.uart is not None
        self.uart.sendall(text.encode() if isinstance(text, str) else text)

    def console_login(self, password: str = LABEL) -> None:
        self.expect(r"login: $")
        self.send("root\r")
        self.expect(r"Password: $")
        self.send(password + "\r")
        self.expect(r"root@[\w-]+:~# $")

    def console_run(self, line: str, timeout: float = 5) -> str:
        self.send(line + "\r")
        m = self.expect(r"(?s)^(.*?)root@[\w-]+:\S+# $", timeout)
        return m.group(1).replace("\r\n", "\n").split("\n", 1)[1]  # drop the echoed line

    # -- network --

    def ssh(self, password: str = LABEL, user: str = "root") -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", self.ssh_port, user, password, timeout=5, banner_timeout=5,
                       auth_timeout=5, allow_agent=False, look_for_keys=False)
        return client

    def run(self, command: str, password: str = LABEL, stdin: str | None = None) -> tuple[int, str, str]:
        with self.ssh(password) as client:
            i, o, e = client.exec_command(command, timeout=15)
            if stdin is not None:
                i.write(stdin)
                i.channel.shutdown_write()
            out, err = o.read().decode(), e.read().decode()
            return o.channel.recv_exit_status(), out, err

    def try_password(self, password: str) -> bool:
        with socket.create_connection(("127.0.0.1", self.ssh_port), timeout=5) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=5)
                transport.auth_password("root", password)
                return True
            except paramiko.AuthenticationException:
                return False
            finally:
                transport.close()

    def put(self, data: bytes, path: str) -> None:
        with self.ssh() as client, client.open_sftp() as sftp:
            with sftp.open(path, "wb") as f:
                f.write(data)

    def update(self, image: bytes) -> tuple[int, str, str]:
        self.put(image, "/tmp/fw.clfw")
        return self.run("update /tmp/fw.clfw")

    def flash_file(self, rel: str) -> bytes:
        path = self.dir / "flash" / rel
        return path.read_bytes() if path.exists() else b""


@pytest.fixture
def make_dut(tmp_path: Path) -> Iterator:
    duts: list[Dut] = []

    def make(**overrides: object) -> Dut:
        dut = Dut(tmp_path / f"bench{len(duts)}", **overrides)
        duts.append(dut)
        return dut

    yield make
    for dut in duts:
        dut.power_off()


def booted(make_dut, **overrides: object) -> Dut:
    dut = make_dut(**overrides).power_on()
    dut.expect(r"login: $|# $", 15)
    return dut


# --- firmware format (no process) -----------------------------------------------------------


def test_firmware_round_trip_and_attack_helpers() -> None:
    key = vendor.vendor_private_key()
    pub = firmware.public_key_hex(key)
    image = vendor.build_release(MODEL, "1.5.0", 4, size=4096)
    assert image == vendor.build_release(MODEL, "1.5.0", 4, size=4096)  # deterministic
    img = firmware.parse_image(image)
    assert (img.model, img.version, img.security_version, img.payload_size) == (MODEL, "1.5.0", 4, 4096)
    assert firmware.verify_signature(img, pub) and firmware.payload_matches(img)
    assert firmware.verify_signature(img, bytes.fromhex(pub))

    unsigned = firmware.parse_image(firmware.strip_signature(image))
    assert unsigned.signature is None and not firmware.verify_signature(unsigned, pub)
    wrong = firmware.parse_image(firmware.resign(image, Ed25519PrivateKey.generate()))
    assert not firmware.verify_signature(wrong, pub) and firmware.payload_matches(wrong)
    tampered = firmware.parse_image(firmware.flip_payload_byte(image, 7))
    assert firmware.verify_signature(tampered, pub) and not firmware.payload_matches(tampered)


@pytest.mark.parametrize(
    "data",
    [
        b"", b"CLFW", b"NOPE\x01" + b"\0" * 20, b"CLFW\x01\x00\x00\x00", b"CLFW\x01\xff\xff\xff\xff",
        b"CLFW\x01\x00\x00\x00\x05{bad}", b"CLFW\x01\x00\x00\x00\x02[]",
        b"CLFW\x01\x00\x00\x00\x02\xff\xfe", os.urandom(300), b"\x00" * 1000,
    ],
)
def test_parse_image_garbage_raises_format_error(data: bytes) -> None:
    with pytest.raises(FirmwareFormatError):
        firmware.parse_image(data)


def test_parse_image_truncated_or_bad_fields() -> None:
    image = vendor.build_release(MODEL, "1.4.0", 3, size=1000)
    for cut in (6, 9, 50, len(image) - 1):
        with pytest.raises(FirmwareFormatError):
            firmware.parse_image(image[:cut])
    with pytest.raises(FirmwareFormatError):
        firmware.parse_image(image + b"x")
    bad = firmware.build_image(model=MODEL, version="1", security_version=-1, payload=b"x", private_key=None)
    with pytest.raises(FirmwareFormatError, match="security_version"):
        firmware.parse_image(bad)


def test_write_releases_index(tmp_path: Path) -> None:
    index = json.loads(vendor.write_releases(tmp_path, MODEL, size=2048).read_text())
    assert {r["version"]: r["security_version"] for r in index["releases"]} == {"1.2.0": 2, "1.4.0": 3, "1.5.0": 4}
    for r in index["releases"]:
        img = firmware.parse_image((tmp_path / r["file"]).read_bytes())
        assert firmware.verify_signature(img, index["vendor_pubkey"])


def test_flash_writeback_cache(tmp_path: Path) -> None:
    flash = Flash(tmp_path, dirty_expire_seconds=0.3)
    flash.mkdir("d")
    flash.write("d/f", b"hello")
    assert flash.read("d/f") == b"hello" and (tmp_path / "d/f").read_bytes() == b""  # created, not written
    flash.start_writeback()
    deadline = time.monotonic() + 5
    while (tmp_path / "d/f").read_bytes() != b"hello":
        assert time.monotonic() < deadline, "writeback never happened"
        time.sleep(0.05)
    flash.write_atomic("d/g", b"atomic")
    assert (tmp_path / "d/g").read_bytes() == b"atomic"
    flash.stop_writeback()


@pytest.mark.parametrize("flaws, boots", [
    ([], "a"),  # the genuine image in slot a
    (["unsigned_update_accepted"], "b"),  # a product that checks no signature boots whatever is active
])
def test_boot_loader_verifies_the_slot_signature(tmp_path: Path, flaws: list[str], boots: str) -> None:
    """20-SecBoot: the loader checks the active slot's signature under the vendor key, not just its hash."""
    from lab.sim.updater import BootState, choose_boot_slot, slot_path, write_boot_state

    flash = Flash(tmp_path)
    flash.mkdir("slots")
    genuine = vendor.build_release(MODEL, "1.4.0", 3, size=2048)
    forged = firmware.resign(vendor.build_release(MODEL, "1.5.0", 4, size=2048), Ed25519PrivateKey.generate())
    assert firmware.payload_matches(firmware.parse_image(forged))  # its hash alone would pass
    flash.write_atomic(slot_path("a"), genuine)
    flash.write_atomic(slot_path("b"), forged)
    write_boot_state(flash, BootState("b", 4))
    key = vendor.vendor_public_key_hex()
    slot, img, lines = choose_boot_slot(flash, model=MODEL, flaws=flaws, vendor_pubkey=key)
    assert slot == boots, lines
    if not flaws:
        assert "## Checking image in slot b ... BAD (bad signature)" in lines
        assert "## Warning: slot b is not bootable, falling back to slot a" in lines and img.version == "1.4.0"
    flash.write_atomic(slot_path("b"), firmware.strip_signature(forged))
    slot, _, lines = choose_boot_slot(flash, model=MODEL, flaws=flaws, vendor_pubkey=key)
    assert slot == boots and (flaws or "## Checking image in slot b ... BAD (unsigned)" in lines), lines
    flash.write_atomic(slot_path("a"), forged)  # nothing genuine left: a conforming loader halts
    slot, _, lines = choose_boot_slot(flash, model=MODEL, flaws=flaws, vendor_pubkey=key)
    assert slot == (None if not flaws else "b") and (flaws or lines[-1] == "## Error: no bootable image found, halting")


# --- console ---------------------------------------------------------------------------------


def test_console_boot_login_and_wrong_password(make_dut) -> None:
    dut = make_dut().power_on()
    dut.expect(r"U-Boot", 10)
    dut.expect(r"Booting slot a")
    dut.expect(r"Starting kernel \.\.\.")
    dut.expect(r"\[\s+\d+\.\d{6}\] ")
    dut.expect(r"th-100-sn0001 login: $", 10)
    dut.send("root\r")
    dut.expect(r"Password: $")
    dut.send("wrong-password\r")
    dut.expect(r"Login incorrect", 5)
    dut.console_login()
    assert dut.console_run("version") == "TH-100 firmware 1.4.0 (slot a, security version 3)\n"
    assert "sh: frobnicate: not found" in dut.console_run("frobnicate")
    # garbage and a huge line never kill the shell
    dut.send(b"\x00\xff\xfe\x1b[A 'unterminated\r")
    dut.expect(r"> $")  # a POSIX shell waits for the rest of the quote (PS2) ...
    dut.send(b"\x03")
    dut.expect(r"# $")  # ... and ^C abandons it
    dut.send("x" * 20000 + "\r")
    dut.expect(r"# $")
    assert dut.console_run("echo alive && false || echo fallback") == "alive\nfallback\n"
    dut.send("reboot\r")
    dut.expect("reboot: Restarting system")
    dut.respawn_after_reboot()
    dut.expect(r"login: $", 15)


# --- SSH -------------------------------------------------------------------------------------


def test_ssh_exec_sftp_and_passwd(make_dut) -> None:
    dut = booted(make_dut)
    assert dut.run("id") == (0, "uid=0(root) gid=0(root) groups=0(root)\n", "")
    assert dut.run("false")[0] == 1
    status, _, err = dut.run("nosuchcmd")
    assert status == 127 and "sh: nosuchcmd: not found" in err
    assert dut.run("/bin/sh -c 'echo one; echo two > /tmp/t && cat /tmp/t'")[:2] == (0, "one\ntwo\n")
    assert dut.run("sh -c 'exit 3'")[0] == 3

    with dut.ssh() as client:  # interactive shell with a pty, as a human or Ansible's shell would
        chan = client.invoke_shell()
        chan.settimeout(5)
        seen = b""
        chan.send(b"hostname\r")
        while not re.search(rb"th-100-sn0001\r\n.*# $", seen, re.S):
            chunk = chan.recv(4096)
            assert chunk, f"shell closed: {seen!r}"
            seen += chunk
        chan.send(b"exit\r")
        assert chan.recv_exit_status() == 0

    with dut.ssh() as client, client.open_sftp() as sftp:
        with sftp.open("/tmp/blob", "wb") as f:
            f.write(b"\x00\x01" * 5000)
        assert sftp.stat("/tmp/blob").st_size == 10000
        with sftp.open("/etc/version", "rb") as f:
            assert f.read() == b"1.4.0\n"
        sftp.mkdir("/data/sub")
        assert "sub" in sftp.listdir("/data")
        with pytest.raises(OSError):
            sftp.open("/etc/version", "wb")

    weak = dut.run("passwd", stdin=f"{LABEL}\nshort\nshort\n")
    assert weak[0] == 1 and "passwd: password too weak" in weak[2]
    new = "N3w-Strong-Pass"
    status, out, _ = dut.run("passwd", stdin=f"{LABEL}\n{new}\n{new}\n")
    assert status == 0 and "passwd: password updated successfully" in out
    assert dut.try_password(new) and not dut.try_password(LABEL)


def test_lockout_after_five_failures(make_dut) -> None:
    dut = booted(make_dut, lockout_seconds=2)
    for _ in range(5):
        assert not dut.try_password("wrong")
    assert not dut.try_password(LABEL), "the right password must be refused during the lockout"
    time.sleep(2.2)
    assert dut.try_password(LABEL)


def test_no_lockout_with_flaw_and_guessable_password(make_dut) -> None:
    dut = booted(make_dut, flaws=["no_bruteforce_protection", "guessable_password"])
    for _ in range(8):
        assert not dut.try_password("wrong")
    assert dut.try_password("0000012a")  # last 8 hex digits of the MAC
    assert not dut.try_password(LABEL)


def _ssh_server_offers(port: int) -> bytes:
    """The server's identification and KEXINIT (clear text), read after sending our identification."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"SSH-2.0-probe\r\n")
        deadline = time.monotonic() + 5
        while b"hmac-sha2-256" not in data and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@pytest.mark.parametrize("flaw", [None, "weak_ssh_algorithms"])
def test_ssh_server_offers_broken_algorithms_only_with_the_flaw(make_dut, flaw: str | None) -> None:
    """The IXIT promises AES-CTR with HMAC-SHA2: paramiko's 3DES and MD5 defaults are the flaw's, not the product's."""
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    offers = _ssh_server_offers(dut.ssh_port)
    assert b"hmac-sha2-256" in offers and b"aes128-ctr" in offers
    assert (b"3des-cbc" in offers, b"hmac-md5" in offers) == ((True, True) if flaw else (False, False))


def test_universal_password_open_console_and_debug_service(make_dut) -> None:
    dut = make_dut(flaws=["universal_default_password", "unauthenticated_console", "open_debug_service"])
    dut.power_on()
    dut.expect(r"root@[\w-]+:~# $", 15)  # no login at all
    assert dut.console_run("whoami") == "root\n"
    assert dut.try_password("admin")
    with socket.create_connection(("127.0.0.1", dut.debug_port), timeout=5) as s:
        s.sendall(b"id\n")
        data = b""
        while b"uid=0(root)" not in data:
            chunk = s.recv(4096)
            assert chunk, f"debug service closed: {data!r}"
            data += chunk


def test_conforming_device_has_no_debug_service(make_dut) -> None:
    dut = booted(make_dut)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", dut.debug_port), timeout=2).close()


# --- updates ---------------------------------------------------------------------------------


def test_valid_update_installs_into_other_slot(make_dut) -> None:
    dut = booted(make_dut)
    status, out, _ = dut.update(vendor.build_release(MODEL, "1.5.0", 4))
    assert status == 0 and "update: installed 1.5.0 in slot b; rebooting" in out
    dut.respawn_after_reboot()
    dut.expect("Booting slot b", 15)
    dut.expect(r"login: $")
    assert dut.run("version")[1] == "TH-100 firmware 1.5.0 (slot b, security version 4)\n"
    assert json.loads(dut.flash_file("boot.json")) == {"active": "b", "security_counter": 4}
    # a corrupted active slot: the boot loader falls back to the other, still valid one
    dut.power_off()
    slot_b = dut.dir / "flash" / "slots" / "b.img"
    slot_b.write_bytes(firmware.flip_payload_byte(slot_b.read_bytes()))
    dut.power_on()
    dut.expect("falling back to slot a", 15)
    dut.expect("Booting slot a")
    dut.expect(r"login: $")


def test_bad_updates_are_rejected(make_dut) -> None:
    dut = booted(make_dut)
    good = vendor.build_release(MODEL, "1.5.0", 4)
    cases = {
        "bad signature": firmware.strip_signature(good),
        "bad signature ": firmware.resign(good, Ed25519PrivateKey.generate()),
        "payload does not match its signed hash": firmware.flip_payload_byte(good),
        "security version 2 is older than installed 3 (rollback)": vendor.build_release(MODEL, "1.2.0", 2),
        "not a firmware image": b"#!/bin/sh\nrm -rf /\n",
        "image is for model XY-9": vendor.build_release("XY-9", "1.5.0", 4),
    }
    for reason, image in cases.items():
        status, out, _ = dut.update(image)
        assert status == 1 and f"update: rejected: {reason.strip()}" in out, (reason, out)
    assert dut.proc is not None and dut.proc.poll() is None, "a rejected image must not reboot the device"
    assert dut.run("version")[1].startswith("TH-100 firmware 1.4.0 (slot a")


@pytest.mark.parametrize(
    "flaw, craft",
    [
        ("unsigned_update_accepted", lambda good: firmware.strip_signature(good)),
        ("tampered_update_accepted", lambda good: firmware.flip_payload_byte(good)),
        ("rollback_allowed", lambda good: vendor.build_release(MODEL, "1.2.0", 2)),
    ],
)
def test_flawed_update_agent_accepts_bad_image(make_dut, flaw: str, craft) -> None:
    dut = booted(make_dut, flaws=[flaw])
    image = craft(vendor.build_release(MODEL, "1.5.0", 4))
    status, out, _ = dut.update(image)
    assert status == 0 and "update: installed" in out, out
    dut.respawn_after_reboot()
    dut.expect("Booting slot b", 15)


@pytest.mark.parametrize("flaw", [None, "update_bricks_on_power_loss"])
def test_power_cut_during_update(make_dut, flaw: str | None) -> None:
    dut = booted(make_dut, flaws=[flaw] if flaw else [], update_write_seconds=3.0)
    dut.put(vendor.build_release(MODEL, "1.5.0", 4), "/tmp/fw.clfw")
    with dut.ssh() as client:
        _, out, _ = client.exec_command("update /tmp/fw.clfw", timeout=10)
        assert out.readline().startswith("update: writing 1.5.0")
        time.sleep(0.8)
        dut.power_off()
    dut.power_on()
    if flaw:
        dut.expect(r"## Error: no bootable image found, halting", 15)
        dut.quiet_for(r"login:", 1.0)
        assert dut.proc is not None and dut.proc.poll() is None, "a halted device stays powered"
    else:
        dut.expect(r"Booting slot a", 15)
        dut.expect(r"login: $")
        assert dut.run("version")[1].startswith("TH-100 firmware 1.4.0 (slot a")


# --- flash, config, factory reset -------------------------------------------------------------


def test_unsynced_write_is_lost_on_power_cut(make_dut) -> None:
    dut = booted(make_dut)
    assert dut.run("echo kept > /data/kept && sync && echo lost > /data/lost && cat /data/lost")[1] == "lost\n"
    dut.power_off()
    dut.power_on()
    dut.expect(r"login: $", 15)
    assert dut.run("cat /data/kept")[1] == "kept\n"
    assert dut.run("cat /data/lost")[1] == ""  # the file was created, its data never written back


@pytest.mark.parametrize("flaw", [None, "non_atomic_config_write"])
def test_power_cut_during_config_write(make_dut, flaw: str | None) -> None:
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    with dut.ssh() as client:
        client.exec_command("config set ntp_server ntp.example.test", timeout=5)
        time.sleep(0.3)
        dut.power_off()
    dut.power_on()
    dut.expect(r"login: $", 15)
    status, out, err = dut.run("config get ntp_server")
    if flaw:
        assert status == 1 and "corrupt" in err
    else:
        assert status == 0 and out in ("pool.ntp.org\n", "ntp.example.test\n")


@pytest.mark.parametrize("flaw", [None, "factory_reset_keeps_data"])
def test_factory_reset(make_dut, flaw: str | None) -> None:
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    new = "Changed-Pass-99"
    assert dut.run("passwd", stdin=f"{LABEL}\n{new}\n{new}\n")[0] == 0
    assert dut.run("echo secret > /data/user && config set log_level debug && sync", password=new)[0] == 0
    status, out, _ = dut.run("factory-reset", password=new)
    assert status == 0 and "rebooting" in out
    dut.respawn_after_reboot()
    dut.expect(r"login: $", 15)
    assert dut.try_password(LABEL) and not dut.try_password(new)
    assert dut.run("config get log_level")[1] == "info\n"
    status, out, _ = dut.run("cat /data/user")
    assert (status, out) == ((0, "secret\n") if flaw else (1, ""))


# --- telemetry -------------------------------------------------------------------------------


def _cloud(tls: ssl.SSLContext | None) -> tuple[socket.socket, list[bytes]]:
    srv = socket.create_server(("127.0.0.1", 0))
    lines: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                stream = tls.wrap_socket(conn, server_side=True) if tls else conn
                with stream.makefile("rb") as f:
                    for line in f:
                        lines.append(line)
                        stream.sendall(b'{"ok": true}\n')
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, lines


def _pki(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for cloud.certlab.test: (ca, cert, key) PEM files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject: str, pub, ca: bool, ext: x509.ExtensionType | None = None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name("test CA"))
             .public_key(pub).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ext is not None:
            b = b.add_extension(ext, critical=False)
        return b.sign(ca_key, hashes.SHA256())

    folder.mkdir()
    files = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    files[0].write_bytes(cert("test CA", ca_key.public_key(), True).public_bytes(serialization.Encoding.PEM))
    san = x509.SubjectAlternativeName([x509.DNSName("cloud.certlab.test")])
    files[1].write_bytes(cert("cloud.certlab.test", key.public_key(), False, san).public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return files


@pytest.mark.parametrize("cleartext", [False, True])
def test_telemetry(make_dut, tmp_path: Path, cleartext: bool) -> None:
    ca, cert, key = _pki(tmp_path / "pki")
    tls = None
    if not cleartext:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    srv, lines = _cloud(tls)
    try:
        cloud = {"host": "127.0.0.1", "port": srv.getsockname()[1], "ca_file": str(ca)}
        booted(make_dut, cloud=cloud, telemetry_interval=0.3,
               flaws=["cleartext_credentials"] if cleartext else [])
        deadline = time.monotonic() + 10
        while not any(b'"temperature"' in line for line in lines):
            assert time.monotonic() < deadline, f"no telemetry arrived: {lines!r}"
            time.sleep(0.1)
        record = json.loads(next(line for line in lines if b'"temperature"' in line))
        assert record["serial"] == "SN0001" and record["firmware"] == "1.4.0" and len(record["token"]) == 32
        assert any(line.startswith(b"LOGIN SN0001 ") for line in lines) == cleartext
    finally:
        srv.close()


# --- flaws for 5.1-4 and 5.13-1 ----------------------------------------------------------------


@pytest.mark.parametrize("flaw", [None, "password_change_ineffective"])
def test_passwd_stores_the_new_password_unless_flawed(make_dut, flaw: str | None) -> None:
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    new = "N3w-Strong-Pass"
    status, out, _ = dut.run("passwd", stdin=f"{LABEL}\n{new}\n{new}\n")
    assert status == 0 and "passwd: password updated successfully" in out  # both claim success
    assert dut.try_password(new) is (flaw is None)
    assert dut.try_password(LABEL) is (flaw is not None)


def _send_ident(port: int, line: bytes) -> bytes:
    """Connect, read the server's banner, send `line`, half-close; what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        banner = s.recv(256)
        assert banner.startswith(b"SSH-2.0-"), banner
        try:
            s.sendall(line)
            s.shutdown(socket.SHUT_WR)
            return s.recv(4096)
        except OSError:  # a daemon that dies on the line may close before we finish (seen under load)
            return b""


@pytest.mark.parametrize("line", [b"GET / HTTP/1.0\r\n", b"SSH-2.0-" + b"A" * 400 + b"\r\n", b"\x00\xff" * 200])
@pytest.mark.parametrize("flaw", [None, "crashes_on_malformed_input"])
def test_malformed_ssh_identification(make_dut, flaw: str | None, line: bytes) -> None:
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    assert dut.run("true")[0] == 0
    _send_ident(dut.ssh_port, line)
    if flaw is None:
        assert dut.run("echo alive") == (0, "alive\n", "")
        return
    deadline = time.monotonic() + 5
    while True:  # the daemon dies: the port stops listening, the console lives on
        try:
            socket.create_connection(("127.0.0.1", dut.ssh_port), timeout=1).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "sshd still listening after a malformed identification line"
        time.sleep(0.1)
    dut.send("\r")  # a fresh login prompt
    dut.console_login()
    assert dut.console_run("echo alive") == "alive\n"


def test_fragile_ssh_parser_accepts_ordinary_clients(make_dut) -> None:
    dut = booted(make_dut, flaws=["crashes_on_malformed_input"])
    for _ in range(3):  # paramiko (SSH-2.0-paramiko_x), banner-only probes and port checks are fine
        assert dut.run("echo ok") == (0, "ok\n", "")
        socket.create_connection(("127.0.0.1", dut.ssh_port), timeout=2).close()
    assert dut.run("true")[0] == 0


@pytest.mark.parametrize("flaw", [None, "crashes_on_malformed_input"])
def test_overlong_console_line(make_dut, flaw: str | None) -> None:
    dut = make_dut(flaws=[flaw] if flaw else []).power_on()
    dut.console_login()
    dut.send("y" * 6000 + "\r")
    if flaw is None:
        dut.expect(r"# $")
        assert dut.console_run("echo alive") == "alive\n"
        return
    dut.quiet_for(r"# $", 1.5)  # the console hangs: no prompt, ever
    dut.send("\x03\r")
    dut.quiet_for(r"# $", 1.0)
    assert dut.run("echo alive") == (0, "alive\n", "")  # SSH still works
