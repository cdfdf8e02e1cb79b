"""One simulated device: identity, manufacture, boot, console login and its services.

A process of this module *is* the powered device. Power-off is a SIGKILL of its process group
(only fsynced flash survives, see flash.py); a reboot is exit status 3, after which the bench
host starts a new process while power stays on. Whatever the device keeps between boots lives
in DIR/flash; DIR/ram is wiped at every start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import select
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.errors import CertlabError
from lab.firmware import FirmwareImage
from lab.flaws import FLAWS
from lab.sim import netservices, vendor
from lab.sim.flash import Flash, FlashError
from lab.sim.fwmanifest import read_manifest
from lab.sim.shell import MAX_TERMINAL_LINE, ConfigCorrupt, LineReader, Shell, TerminalIO, Vfs, run_session
from lab.sim.sshd import OTHER_SERVER_VERSION, SERVER_VERSION, AuthGuard, SshService, generate_host_key_pem, load_host_key
from lab.sim.telemetry import TelemetryClient, carrier_up, settings_lines
from lab.sim.updater import BootState, UpdateAgent, slot_path, write_boot_state
from lab.sim.updater import RADIO_IMAGE, RadioAgent, place_unverified, radio_image, read_boot_state, select_boot

log = logging.getLogger("certlab.sim.device")

REBOOT_EXIT_STATUS = 3
REBOOT_GRACE_SECONDS = 0.5  # lets an SSH client receive output and exit status first
LOGIN_FAIL_DELAY = 1.0
TELNET_PORT = 23  # the cleartext_telnet_login flaw's login service
CONFIG_REL = "config/config.json"
SHADOW_REL = "config/shadow"
IDENTITY_REL = "factory/identity.json"
HOSTKEY_REL = "factory/ssh_host_ed25519_key"
SECRETS_REL = "config/secrets.json"  # secret settings, encrypted under the storage key (root only)
STORAGE_KEY_REL = "factory/storage.key"  # the device-unique key sealing them: outside the user-visible file system
SECRET_SETTINGS = ("wifi_psk",)  # settings that are secret parameters (IXIT 10-SecParam wifi-key)
NON_ATOMIC_WRITE_SECONDS = 0.5
PARTITIONS = ("factory", "slots", "data", "config", "home")
SETUP_PENDING_REL = "config/setup-pending"  # the `settings_change_without_auth` flaw's open window
TAMPER_REL = "tamper.json"  # an unacknowledged tamper event (IXIT 20-SecBoot tamper_alert); survives factory reset


# --- dut.json ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudConfig:
    host: str
    port: int
    ca_file: str | None
    server_name: str = "cloud.certlab.test"


@dataclass(frozen=True)
class DutConfig:
    """DIR/dut.json as written by `lab up` (defaults as documented there)."""

    bench: str
    model: str
    serial: str
    mac: str
    hostname: str
    firmware: str
    label_password: str | None
    flaws: frozenset[str]
    lab_faults: tuple[str, ...]
    boot_seconds: float
    address: str
    ssh_port: int
    cloud: CloudConfig | None
    telemetry_interval: float
    vendor_pubkey: str
    lockout_attempts: int
    lockout_seconds: float
    dirty_expire_seconds: float
    update_write_seconds: float
    debug_port: int
    ssh_delay_seconds: float = 0.0  # sshd listens this long after the console offers its prompt

    @classmethod
    def load(cls, path: Path) -> "DutConfig":
        try:
            raw = json.loads(path.read_text())
        except OSError as exc:
            raise CertlabError(f"{path}: cannot read the DUT description ({exc.strerror})") from None
        except ValueError as exc:
            raise CertlabError(f"{path}: not valid JSON ({exc}); let `certlab lab up` rewrite it") from None
        if not isinstance(raw, dict):
            raise CertlabError(f"{path}: must be a JSON object")
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict, where: str = "dut.json") -> "DutConfig":
        def need(key: str) -> str:
            value = raw.get(key)
            if not isinstance(value, str) or not value:
                raise CertlabError(f"{where}: field '{key}' is missing or not a string")
            return value

        def num(key: str, default: float, kind: type = float) -> float:
            value = raw.get(key)
            value = default if value is None else value
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise CertlabError(f"{where}: field '{key}' must be a non-negative number")
            return kind(value)

        model, serial, mac, firmware = need("model"), need("serial"), need("mac"), need("firmware")
        flaws = raw.get("flaws") or []
        unknown = [f for f in flaws if f not in FLAWS]
        if unknown:
            raise CertlabError(f"{where}: field 'flaws': unknown id(s) {unknown}; known: {sorted(FLAWS)}")
        cloud_raw = raw.get("cloud")
        cloud = None
        if isinstance(cloud_raw, dict) and cloud_raw.get("host") and cloud_raw.get("port"):
            cloud = CloudConfig(str(cloud_raw["host"]), int(cloud_raw["port"]), cloud_raw.get("ca_file"),
                                str(cloud_raw.get("hostname") or "cloud.certlab.test"))
        hostname = raw.get("hostname") or re.sub(r"[^a-z0-9-]+", "-", f"{model}-{serial}".lower()).strip("-")
        return cls(
            bench=str(raw.get("bench", "")),
            model=model,
            serial=serial,
            mac=mac,
            hostname=hostname,
            firmware=firmware,
            label_password=raw.get("label_password"),
            flaws=frozenset(flaws),
            lab_faults=tuple(raw.get("lab_faults") or ()),
            boot_seconds=num("boot_seconds", 1.5),
            address=str(raw.get("address", "127.0.0.1")),
            ssh_port=int(num("ssh_port", 22, int)),
            cloud=cloud,
            telemetry_interval=num("telemetry_interval", 5.0),
            vendor_pubkey=str(raw.get("vendor_pubkey") or vendor.vendor_public_key_hex()),
            lockout_attempts=max(1, int(num("lockout_attempts", 5, int))),
            lockout_seconds=num("lockout_seconds", 10.0),
            dirty_expire_seconds=num("dirty_expire_seconds", 5.0),
            update_write_seconds=num("update_write_seconds", 1.0),
            debug_port=int(num("debug_port", 2323, int)),
            ssh_delay_seconds=num("ssh_delay_seconds", 0.0),
        )

    def factory_password(self) -> str:
        """The password this unit leaves the factory with (what its flaws make it)."""
        if "universal_default_password" in self.flaws:
            return "admin"
        if "guessable_password" in self.flaws:
            return self.mac.replace(":", "").replace("-", "").lower()[-8:]
        if not self.label_password:
            raise CertlabError("dut.json: field 'label_password' is required unless a password flaw is set")
        return self.label_password


# --- passwords -----------------------------------------------------------------------------

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """scrypt with a random salt: `scrypt$n$r$p$salt$hash` (hex)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


# --- UART ----------------------------------------------------------------------------------


class Uart:
    """The console line: a stream socket (or any fd). Writes never block for long: a UART
    nobody listens to drops characters rather than stalling the device."""

    SEND_TIMEOUT = 1.0

    def __init__(self, fd: int):
        self._lock = threading.Lock()
        self._sock: socket.socket | None
        try:
            self._sock = socket.socket(fileno=fd)
        except OSError:
            self._sock = None
        self._fd = fd

    def send(self, data: bytes) -> None:
        with self._lock:
            deadline = time.monotonic() + self.SEND_TIMEOUT
            view = memoryview(data)
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    _, writable, _ = select.select([], [self._fd], [], remaining)
                    if not writable:
                        return
                    if self._sock is not None:
                        sent = self._sock.send(view, socket.MSG_DONTWAIT)
                    else:
                        sent = os.write(self._fd, view)
                except BlockingIOError:
                    continue
                except (OSError, ValueError):
                    return
                view = view[sent:]

    def recv(self) -> bytes:
        try:
            return self._sock.recv(4096) if self._sock is not None else os.read(self._fd, 4096)
        except (OSError, ValueError):
            return b""

    def drain(self) -> None:
        """Discard what was typed before getty started."""
        try:
            while select.select([self._fd], [], [], 0)[0]:
                if not self.recv():
                    return
        except (OSError, ValueError):
            return


# --- the device ----------------------------------------------------------------------------


class Device:
    """The powered device; implements what the shell and the SSH server need (SessionHost)."""

    def __init__(self, bench_dir: Path, uart: Uart, cfg: DutConfig):
        self.bench_dir = bench_dir
        self.uart = uart
        self.cfg = cfg
        self.model = cfg.model
        # what the device calls itself (version, motd); the `wrong_model_designation` build names another model
        self.shown_model = f"{cfg.model}X" if "wrong_model_designation" in cfg.flaws else cfg.model
        self.hostname = cfg.hostname
        self.flash = Flash(bench_dir / "flash", dirty_expire_seconds=cfg.dirty_expire_seconds)
        self.ram = bench_dir / "ram"
        self.vfs = Vfs(
            self.flash,
            self.ram / "tmp",
            {
                "/etc/version": lambda: f"{self.image.version if self.image else '?'}\n".encode(),
                "/etc/hostname": lambda: f"{self.hostname}\n".encode(),
                "/proc/uptime": lambda: f"{self.uptime():.2f} {self.uptime() * 0.9:.2f}\n".encode(),
            },
        )
        self.slot: str | None = None
        self.image: FirmwareImage | None = None
        # the unit's flaws (dut.json) and, once booted, those the running release's software carries
        self.flaws: frozenset[str] = cfg.flaws
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._config_lock = threading.Lock()
        self._update_lock = threading.Lock()
        self._rebooting = threading.Event()
        self._booted = threading.Event()  # the boot log is done: the console offers its prompt
        self._identity: dict = {}
        self._cloud_settings: dict[str, bool] | None = None  # from the cloud's last telemetry reply

    # -- lifecycle --

    def run(self) -> int:
        """Power on: manufacture if new, wipe RAM, boot, then serve the console for ever."""
        self._wipe_ram()
        self.manufacture_if_needed()
        self.flash.start_writeback()
        if not self.boot():
            threading.Event().wait()  # halted: alive, silent
        self._booted.set()
        self.console_loop()
        threading.Event().wait()
        return 0

    def _wipe_ram(self) -> None:
        shutil.rmtree(self.ram, ignore_errors=True)
        (self.ram / "tmp").mkdir(parents=True)

    def manufacture_if_needed(self) -> None:
        """First power-on: write the factory partition, slot a and boot.json, all fsynced."""
        f = self.flash
        for part in PARTITIONS:
            f.mkdir(part, exist_ok=True)
            for name in f.listdir(part):  # a cut during an atomic write leaves its temp file
                if ".tmp-" in name:
                    f.remove_tree(f"{part}/{name}")
        for name in f.listdir("."):
            if ".tmp-" in name:
                f.remove_tree(name)
        factory_pw = self.cfg.factory_password()
        if not f.exists(IDENTITY_REL):
            log.info("manufacturing %s %s (firmware %s)", self.cfg.model, self.cfg.serial, self.cfg.firmware)
            sv = vendor.security_version_for(self.cfg.firmware)
            f.write_atomic(slot_path("a"), vendor.build_release(self.cfg.model, self.cfg.firmware, sv))
            write_boot_state(f, BootState("a", sv))
            f.write_atomic(HOSTKEY_REL, generate_host_key_pem().encode())
            self._write_default_config()
            identity = {
                "model": self.cfg.model,
                "serial": self.cfg.serial,
                "mac": self.cfg.mac,
                "token": secrets.token_hex(16),
                "factory_password": hash_password(factory_pw),
            }
            f.write_atomic(IDENTITY_REL, json.dumps(identity, indent=2).encode())  # last: "manufactured"
            f.sync()
        if not f.exists(RADIO_IMAGE):  # the radio co-processor's factory firmware
            radio = vendor.current_release(vendor.RADIO_RELEASES)
            f.mkdir("radio", exist_ok=True)
            f.write_atomic(RADIO_IMAGE, vendor.build_release(vendor.component_model(self.cfg.model, vendor.RADIO),
                                                             radio.version, radio.security_version, vendor.RADIO_SIZE))
        self._identity = json.loads(f.read(IDENTITY_REL))
        if not verify_password(factory_pw, self._identity.get("factory_password", "")):
            # The lab re-labelled this unit (other label password or password flaw): re-provision.
            log.info("factory password changed in dut.json; re-provisioning the factory password")
            self._identity["factory_password"] = hash_password(factory_pw)
            f.write_atomic(IDENTITY_REL, json.dumps(self._identity, indent=2).encode())
            if f.exists(SHADOW_REL):
                f.unlink(SHADOW_REL)
            f.sync()

    def boot(self) -> bool:
        """Print the boot log over boot_seconds; False if no slot is bootable (halted)."""
        cfg = self.cfg
        choice = select_boot(self.flash, model=cfg.model, flaws=cfg.flaws, vendor_pubkey=cfg.vendor_pubkey)
        slot, image, loader = choice.slot, choice.image, choice.lines
        lines = _uboot_lines(cfg) + loader
        self._record_tamper(choice.refused)
        state = read_boot_state(self.flash)
        if slot is not None and slot != state.active:  # booted after a fallback: mark the running slot good
            write_boot_state(self.flash, BootState(slot, state.security_counter))
        if slot is None:
            self._print_paced(lines, cfg.boot_seconds / 2)
            log.error("no bootable image; halted")
            return False
        self.slot, self.image = slot, image
        self.flaws = self.cfg.flaws | software_flaws(image)
        self._started = time.monotonic()
        kernel = _kernel_lines(cfg)
        services = 4
        pace = cfg.boot_seconds / max(1, len(lines) + len(kernel) + services)
        self._print_paced(lines + kernel, pace * (len(lines) + len(kernel)))
        self._config_check()
        self.say("Starting syslogd: OK")
        alert = self.tamper_alert()
        if alert:
            self.say(f"certlab-integrity: SECURITY ALERT: {alert}; telemetry suspended until acknowledged (tamper-status --clear)")
        time.sleep(pace)
        self.say(f"Starting network: OK (eth0 {cfg.address})")
        time.sleep(pace)
        if cfg.ssh_delay_seconds > 0:  # e.g. host keys made in the background: the prompt comes first
            self.say("Starting sshd: OK (in the background)")
            threading.Thread(target=self._start_sshd_later, name="sshd-later", daemon=True).start()
        else:
            self.say("Starting sshd: " + ("OK" if self._start_sshd() else "FAILED"))
        time.sleep(pace)
        self.say("Starting telemetry: " + ("OK" if self._start_telemetry() else "disabled"))
        netservices.start_ssdp(cfg.address, self._ssdp_answer)  # discovery: answers M-SEARCH only
        if "undocumented_update_service" in self.flaws:
            netservices.start_fwupload(cfg.address)
        if "open_debug_service" in self.flaws:
            self._start_debug_service()
        if "cleartext_telnet_login" in self.flaws:
            self.say("Starting telnetd: " + ("OK" if self._start_telnet_login() else "FAILED"))
        time.sleep(pace)
        self.say("")
        self.say(f"Welcome to certlab {cfg.model} (firmware {image.version})")
        self.say("")
        log.info("booted slot %s, firmware %s", slot, image.version)
        return True

    def say(self, line: str) -> None:
        self.uart.send(line.encode("utf-8", "replace") + b"\r\n")

    def _print_paced(self, lines: list[str], seconds: float) -> None:
        pause = seconds / max(1, len(lines))
        for line in lines:
            self.say(line)
            time.sleep(pause)

    def _config_check(self) -> None:
        if not self.flash.exists(CONFIG_REL):
            self._write_default_config()
        try:
            self.config_read()
        except ConfigCorrupt:
            self.say("certlab-config: error: /etc/certlab/config.json is corrupt")
            log.error("config.json is corrupt")

    # -- services --

    def _start_sshd(self) -> bool:
        try:
            if "shared_host_key" in self.cfg.flaws:  # baked into the firmware: every unit has the same
                key = load_host_key(vendor.baked_host_key_pem(self.model))
            else:
                key = load_host_key(self.flash.read(HOSTKEY_REL).decode())
            guard = AuthGuard(
                self.cfg.lockout_attempts,
                self.cfg.lockout_seconds,
                enabled="no_bruteforce_protection" not in self.flaws,
            )
            SshService(self, self.cfg.address, self.cfg.ssh_port, key, guard,
                       fragile_ident_parser="crashes_on_malformed_input" in self.cfg.flaws,
                       weak_algorithms="weak_ssh_algorithms" in self.flaws,
                       legacy_kex="weak_auth_crypto" in self.flaws,
                       version=OTHER_SERVER_VERSION if "undocumented_security_impl" in self.flaws else SERVER_VERSION,
                       ).start()
            return True
        except Exception:
            log.exception("sshd failed to start")
            return False

    def _start_sshd_later(self) -> None:
        """sshd listens `ssh_delay_seconds` after the console's prompt (the end of boot())."""
        self._booted.wait(timeout=max(60.0, self.cfg.boot_seconds * 4))
        time.sleep(self.cfg.ssh_delay_seconds)
        log.info("sshd starting %.1f s after the console prompt", self.cfg.ssh_delay_seconds)
        self._start_sshd()

    def _start_telemetry(self) -> bool:
        cloud = self.cfg.cloud
        if cloud is None or self.cfg.telemetry_interval <= 0:
            return False
        TelemetryClient(
            host=cloud.host,
            port=cloud.port,
            ca_file=cloud.ca_file,
            interval=self.cfg.telemetry_interval,
            serial=self.cfg.serial,
            token=str(self._identity.get("token", "")),
            firmware=lambda: self.image.version if self.image else "?",
            cleartext="cleartext_credentials" in self.flaws,
            backoff="reconnect_storm" not in self.cfg.flaws,
            gives_up_on_link_loss="no_reconnect_after_link_loss" in self.cfg.flaws,
            link_up=(lambda: True) if self.cfg.address.startswith("127.") else carrier_up,
            source_address=self.cfg.address,
            server_name=cloud.server_name,
            enabled=self._telemetry_enabled,
            verify_server="accepts_any_certificate" not in self.flaws,
            occupancy_in_clear="sensitive_data_cleartext" in self.flaws,
            on_settings=self._keep_cloud_settings,
        ).start()
        return True

    def _keep_cloud_settings(self, settings: dict[str, bool]) -> None:
        self._cloud_settings = dict(settings)

    def update_settings_lines(self) -> list[str]:
        """The update settings the app service last sent (shell `update-settings`); unknown before any."""
        return settings_lines(self._cloud_settings)

    def _telemetry_enabled(self) -> bool:
        if self.tamper_alert():  # 20-SecBoot: after a detected tamper event only local administration
            return False
        try:
            return self.config_read().get("telemetry", True) is not False
        except ConfigCorrupt:
            return True

    def _start_debug_service(self) -> None:
        """The `open_debug_service` flaw: an undocumented root shell on a TCP port, no login."""
        try:
            srv = socket.create_server((self.cfg.address, self.cfg.debug_port), reuse_port=False)
        except OSError:
            log.exception("debug service failed to bind")
            return
        slots = threading.BoundedSemaphore(4)

        def serve(conn: socket.socket) -> None:
            try:
                send = lambda data: _sendall_quiet(conn, data)  # noqa: E731
                term = TerminalIO(send, LineReader(lambda: _recv_quiet(conn), None))
                term.write(f"{self.cfg.model} factory debug shell\n")
                run_session(Shell(self, term), term, lambda: "# ", self.is_rebooting)
            finally:
                conn.close()
                slots.release()

        _serve_forever(srv, serve, slots, "debugd")

    def _start_telnet_login(self) -> bool:
        """The `cleartext_telnet_login` flaw: a telnet login (user, password, root shell) on tcp/23.

        The product documents it (its IXIT lists the interface); what is wrong is that the
        password crosses the network unencrypted. No option is negotiated; IAC sequences the
        client sends are dropped. Three wrong logins end the connection.
        """
        try:
            srv = socket.create_server((self.cfg.address, TELNET_PORT), reuse_port=False)
        except OSError:
            log.exception("telnetd failed to bind")
            return False
        slots = threading.BoundedSemaphore(4)

        def serve(conn: socket.socket) -> None:
            try:
                send = lambda data: _sendall_quiet(conn, data)  # noqa: E731
                term = TerminalIO(send, LineReader(_without_telnet_commands(lambda: _recv_quiet(conn)), None))
                for _ in range(3):
                    user = term.read_line(f"\n{self.hostname} login: ")
                    password = None if user is None else term.read_line("Password: ", echo=False)
                    if password is None or self.is_rebooting():
                        return
                    if user.strip() == "root" and self.check_password(password):
                        log.info("telnet login as root")
                        self._console_session(term)
                        return
                    time.sleep(LOGIN_FAIL_DELAY)
                    term.write("\nLogin incorrect\n")
            finally:
                conn.close()
                slots.release()

        _serve_forever(srv, serve, slots, "telnetd")
        return True

    # -- console --

    def console_loop(self) -> None:
        """getty + login on the UART; returns only when the UART is gone."""
        self.uart.drain()
        recv = self.uart.recv
        if "crashes_on_malformed_input" in self.cfg.flaws:
            recv = _overflowing_line_editor(recv)
        reader = LineReader(recv, self.uart.send)
        term = TerminalIO(self.uart.send, reader)
        while not reader.eof:
            if self._rebooting.is_set():
                return
            if "unauthenticated_console" in self.cfg.flaws:
                self._console_session(term)
                continue
            user = term.read_line(f"{self.hostname} login: ")
            if user is None or not user.strip():
                continue
            password = term.read_line("Password: ", echo=False)
            if password is None:
                continue
            if user.strip() == "root" and self.check_password(password):
                log.info("console login as root")
                self._console_session(term)
            else:
                log.info("console login for %r rejected", user.strip()[:64])
                time.sleep(LOGIN_FAIL_DELAY)
                term.write("Login incorrect\n")

    def _console_session(self, term: TerminalIO) -> None:
        shell = Shell(self, term)
        term.write(self.motd())
        run_session(shell, term, lambda: self.prompt(shell), self.is_rebooting)

    # -- SessionHost / DeviceHost --

    def motd(self) -> str:
        version = self.image.version if self.image else "?"
        return f"\ncertlab {self.shown_model} firmware {version}\nAuthorised use only.\n\n"

    def prompt(self, shell: Shell) -> str:
        where = "~" if shell.cwd == "/root" else shell.cwd
        return f"root@{self.hostname}:{where}# "

    def is_rebooting(self) -> bool:
        return self._rebooting.is_set()

    def version_line(self) -> str:
        img = self.image
        if img is None:
            return f"{self.shown_model} firmware unknown"
        return f"{self.shown_model} firmware {img.version} (slot {self.slot}, security version {img.security_version})"

    def uptime(self) -> float:
        return time.monotonic() - self._started

    def _current_hash(self) -> str:
        try:
            stored = self.flash.read(SHADOW_REL).decode().strip()
            if stored.startswith("scrypt$"):
                return stored
        except (FlashError, UnicodeDecodeError):
            pass
        return str(self._identity.get("factory_password", ""))

    def _ssdp_answer(self) -> bytes:
        """The SSDP M-SEARCH answer: the model (IXIT 15-Intf discovery); `verbose_discovery` adds identifying values."""
        extra = {}
        if "verbose_discovery" in self.flaws:
            extra = {"X-SERIAL": self.cfg.serial, "X-MAC": self.cfg.mac,
                     "X-FIRMWARE": self.image.version if self.image else "?"}
        usn = str(uuid.uuid5(uuid.NAMESPACE_URL, f"certlab-sim:{self.cfg.serial}"))
        return netservices.ssdp_answer(model=self.cfg.model, usn=usn, extra=extra)

    def accepts_none_auth(self) -> bool:
        """SSH `none` authentication as root succeeds: always with `unauthenticated_network_function`;
        with `settings_change_without_auth` after a factory reset until the first password login."""
        if "unauthenticated_network_function" in self.flaws:
            return True
        return "settings_change_without_auth" in self.cfg.flaws and self.flash.exists(SETUP_PENDING_REL)

    def check_password(self, password: str) -> bool:
        ok = verify_password(password, self._current_hash())
        if ok and "settings_change_without_auth" in self.cfg.flaws and self.flash.exists(SETUP_PENDING_REL):
            self.flash.unlink(SETUP_PENDING_REL)  # the owner's first login ends the setup mode
        return ok

    def set_password(self, password: str) -> None:
        if "password_change_ineffective" in self.cfg.flaws:
            # The flawed build writes the new hash to a RAM copy of the shadow file that the
            # login code never reads: passwd says "updated", the old password keeps working.
            (self.ram / "shadow.new").write_text(hash_password(password) + "\n")
            log.info("passwd: new password written to RAM only (flaw password_change_ineffective)")
            return
        self.flash.write_atomic(SHADOW_REL, (hash_password(password) + "\n").encode())

    def _default_config(self) -> dict[str, object]:
        return {"device_name": self.hostname, "telemetry": True, "ntp_server": "pool.ntp.org",
                "log_level": "info", "timezone": "UTC"}

    def _write_default_config(self) -> None:
        self.flash.write_atomic(CONFIG_REL, _config_bytes(self._default_config()))

    def config_read(self) -> dict[str, object]:
        try:
            raw = json.loads(self.flash.read(CONFIG_REL))
        except FlashError:
            return {}
        except ValueError:
            raise ConfigCorrupt() from None
        if not isinstance(raw, dict):
            raise ConfigCorrupt()
        return raw

    def config_set(self, key: str, value: object) -> None:
        with self._config_lock:
            if key in SECRET_SETTINGS and "secrets_in_clear_at_rest" not in self.cfg.flaws:
                self._store_secret(key, str(value))
                return
            cfg = self.config_read()
            if key in SECRET_SETTINGS:  # the flaw: in clear in config.json, next to the cloud token, world-readable
                cfg["cloud_token"] = str(self._identity.get("token", ""))
            cfg[key] = value
            data = _config_bytes(cfg)
            if "non_atomic_config_write" in self.cfg.flaws:
                self.flash.write_in_place(CONFIG_REL, data, seconds=NON_ATOMIC_WRITE_SECONDS, chunks=8)
            else:
                self.flash.write_atomic(CONFIG_REL, data)
            if key in SECRET_SETTINGS:
                os.chmod(self.flash.root / CONFIG_REL, 0o644)

    def _store_secret(self, key: str, value: str) -> None:
        """A secret setting: AES-256-GCM under the device's storage key, in a root-only file."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not self.flash.exists(STORAGE_KEY_REL):
            self.flash.write_atomic(STORAGE_KEY_REL, secrets.token_bytes(32))
        try:
            store = json.loads(self.flash.read(SECRETS_REL))
        except (FlashError, ValueError):
            store = {}
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self.flash.read(STORAGE_KEY_REL)[:32]).encrypt(nonce, value.encode(), key.encode())
        store[key] = {"nonce": nonce.hex(), "sealed": sealed.hex()}
        self.flash.write_atomic(SECRETS_REL, _config_bytes(store))
        os.chmod(self.flash.root / SECRETS_REL, 0o600)

    def factory_reset(self, say: Callable[[str], None]) -> None:
        if "deletion_unconfirmed" in self.cfg.flaws:  # completes silently: no confirmation for the user
            say = lambda _text: None  # noqa: E731
        say("factory-reset: erasing configuration and user data")
        self.flash.clear_dir("config")
        self.flash.clear_dir("home")
        if "factory_reset_keeps_data" not in self.cfg.flaws:
            self.flash.clear_dir("data")
        self._write_default_config()
        if "settings_change_without_auth" in self.cfg.flaws:  # "setup mode" until the owner's first login
            self.flash.write_atomic(SETUP_PENDING_REL, b"1\n")
        self.flash.sync()
        say("factory-reset: done; rebooting")
        log.info("factory reset")

    def update_agent(self) -> UpdateAgent:
        return UpdateAgent(
            flash=self.flash,
            model=self.model,
            vendor_pubkey=self.cfg.vendor_pubkey,
            flaws=self.cfg.flaws,
            write_seconds=self.cfg.update_write_seconds,
            lock=self._update_lock,
            running_slot=self.slot,
        )

    # -- the radio co-processor, the service slot write and the tamper alert (IXIT 7-UpdMech, 20-SecBoot) --

    def radio_agent(self) -> RadioAgent:
        return RadioAgent(self.flash, vendor.component_model(self.model, vendor.RADIO), self.cfg.vendor_pubkey,
                          self.cfg.flaws)

    def radio_version_line(self) -> str:
        img = radio_image(self.flash)
        if img is None:
            return "radio firmware unknown (no valid image)"
        return f"radio firmware {img.version} (security version {img.security_version})"

    def place_in_inactive_slot(self, data: bytes) -> str:
        return place_unverified(self.flash, data, self.slot)

    def _record_tamper(self, refused: tuple[tuple[str, str], ...]) -> None:
        """A slot failed verification at boot: keep the event until the administrator acknowledges it."""
        if not refused or "no_tamper_alert" in self.cfg.flaws:
            return
        what = ", ".join(f"slot {slot} failed verification ({why})" for slot, why in refused)
        self.flash.write_atomic(TAMPER_REL, (json.dumps({"event": what, "at": time.time()}) + "\n").encode())
        log.warning("tamper event recorded: %s", what)

    def tamper_alert(self) -> str:
        """The unacknowledged tamper event, or ''."""
        try:
            return str(json.loads(self.flash.read(TAMPER_REL)).get("event", "tamper event"))
        except FlashError:
            return ""
        except (ValueError, AttributeError):
            return "tamper record unreadable"

    def tamper_clear(self) -> bool:
        if not self.flash.exists(TAMPER_REL):
            return False
        self.flash.unlink(TAMPER_REL)
        return True

    def request_reboot(self, reason: str) -> None:
        with self._lock:
            if self._rebooting.is_set():
                return
            self._rebooting.set()
        log.info("reboot requested: %s", reason)
        threading.Thread(target=self._reboot, name="reboot", daemon=True).start()

    def _reboot(self) -> None:
        time.sleep(REBOOT_GRACE_SECONDS)
        self.flash.sync()
        self.uart.send(b"\r\nreboot: Restarting system\r\n")
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(REBOOT_EXIT_STATUS)


def software_flaws(image: FirmwareImage) -> frozenset[str]:
    """The firmware-borne flaws the booted release's software has (its manifest; none without one)."""
    manifest = read_manifest(image.payload)
    if manifest is None:
        return frozenset()
    if manifest.enables:
        log.info("firmware %s carries: %s", image.version, ", ".join(sorted(manifest.enables)))
    return manifest.enables


def _config_bytes(cfg: dict[str, object]) -> bytes:
    return (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()


def _overflowing_line_editor(recv: Callable[[], bytes]) -> Callable[[], bytes]:
    """The `crashes_on_malformed_input` flaw on the console: the flawed getty's line editor keeps
    a fixed MAX_TERMINAL_LINE buffer without a bounds check; a longer line overruns it and the
    console hangs (no echo, no prompt) until the next power cycle. SSH is not affected."""
    run = 0

    def wrapped() -> bytes:
        nonlocal run
        data = recv()
        for byte in data:
            run = 0 if byte in (10, 13) else run + 1
            if run > MAX_TERMINAL_LINE:
                log.error("console line editor overran its %d-byte buffer; console hung", MAX_TERMINAL_LINE)
                threading.Event().wait()
        return data

    return wrapped


def _serve_forever(srv: socket.socket, serve, slots: threading.BoundedSemaphore, name: str) -> None:
    """Accept connections on a thread of its own, one thread each, refusing past `slots` at once."""

    def accept_loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                time.sleep(0.1)
                continue
            if not slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, name=name, daemon=True).start()


def _sendall_quiet(conn: socket.socket, data: bytes) -> None:
    try:
        conn.sendall(data)
    except OSError:
        pass


def _without_telnet_commands(recv: Callable[[], bytes]) -> Callable[[], bytes]:
    """A telnet client's bytes without its IAC commands (IAC x y, IAC SB ... IAC SE; IAC IAC is 0xff)."""
    mode = "data"  # data | iac (after IAC) | opt (the option byte of WILL/WONT/DO/DONT) | sb | sb_iac

    def wrapped() -> bytes:
        nonlocal mode
        while True:
            data = recv()
            if not data:
                return data
            out = bytearray()
            for b in data:
                if mode == "data":
                    if b == 255:
                        mode = "iac"
                    else:
                        out.append(b)
                elif mode == "iac":
                    if b == 255:
                        out.append(b)
                        mode = "data"
                    else:
                        mode = "opt" if b in (251, 252, 253, 254) else "sb" if b == 250 else "data"
                elif mode == "opt":
                    mode = "data"
                elif mode == "sb":
                    mode = "sb_iac" if b == 255 else "sb"
                else:  # sb_iac
                    mode = "data" if b == 240 else "sb"
            if out:
                return bytes(out)

    return wrapped


def _recv_quiet(conn: socket.socket) -> bytes:
    try:
        return conn.recv(4096)
    except OSError:
        return b""


def _uboot_lines(cfg: DutConfig) -> list[str]:
    return [
        "",
        "U-Boot SPL 2023.04-certlab (Jan 10 2024 - 12:00:00 +0000)",
        "DRAM:  512 MiB",
        "Trying to boot from MMC1",
        "",
        "U-Boot 2023.04-certlab (Jan 10 2024 - 12:00:00 +0000)",
        "",
        "CPU:   ARMv7 Processor rev 5 (v7l)",
        f"Model: certlab {cfg.model}",
        "DRAM:  512 MiB",
        "MMC:   mmc@1c0f000: 0",
        "Loading Environment from MMC... OK",
        "In:    serial",
        "Out:   serial",
        "Err:   serial",
        f"Net:   eth0: ethernet@1c30000 (MAC {cfg.mac})",
        "Hit any key to stop autoboot:  0",
    ]


def _kernel_lines(cfg: DutConfig) -> list[str]:
    msgs = [
        "Booting Linux on physical CPU 0x0",
        "Linux version 6.1.55-certlab (build@certlab) (arm-linux-gnueabihf-gcc 12.2.0) #1 SMP PREEMPT",
        "CPU: ARMv7 Processor [410fc075] revision 5 (ARMv7), cr=10c5387d",
        f"OF: fdt: Machine model: certlab {cfg.model}",
        "Memory: 499712K/524288K available (8192K kernel code, 1024K rwdata)",
        "Kernel command line: console=ttyS0,115200 root=/dev/mmcblk0p2 rootwait ro",
        "Serial: 8250/16550 driver, 4 ports, IRQ sharing disabled",
        "printk: console [ttyS0] enabled",
        "mmc0: new high speed SDHC card at address aaaa",
        "mmcblk0: mmc0:aaaa SC16G 14.8 GiB",
        "EXT4-fs (mmcblk0p3): mounted filesystem with ordered data mode",
        "dwmac-sun8i 1c30000.ethernet eth0: Link is Up - 100Mbps/Full",
        "Run /sbin/init as init process",
    ]
    stamps = [0.0, 0.0, 0.0, 0.0, 0.012408, 0.013721, 0.861432, 0.874907, 1.201115, 1.215543, 1.912337,
              2.304561, 2.517882]
    return ["Starting kernel ...", ""] + [f"[{t:12.6f}] {m}" for t, m in zip(stamps, msgs)]


def make_device(bench_dir: str | Path, uart_fd: int) -> Device:
    bench = Path(bench_dir)
    return Device(bench, Uart(uart_fd), DutConfig.load(bench / "dut.json"))
