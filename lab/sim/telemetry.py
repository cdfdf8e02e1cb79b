"""The device's cloud telemetry: one JSON line per interval to the vendor cloud over TLS.

This is the traffic a tester captures to judge EN 303 645 5.5-1/5.5-6/5.8-1: a conforming
device verifies the cloud's certificate (name `cloud.certlab.test`) against its CA; with the
`cleartext_credentials` flaw it speaks plain TCP and logs in with `LOGIN <serial> <token>`; with
`accepts_any_certificate` it skips the certificate check (5.5-1-2's man in the middle); with
`sensitive_data_cleartext` the occupancy schedule (sensitive personal data, 5.8-2) also leaves
in a plain UDP datagram to the cloud's address.
Failures are logged and retried with the documented back-off (IXIT 11-ComMech telemetry `reconnect`:
0.25 s doubling up to 1 s, each wait shortened by a random share of up to half); a success returns
to the interval. A link that is down (no carrier) counts as a failure. They never affect the device
otherwise. Flaws: `reconnect_storm` retries every 0.05 s, no back-off, no jitter;
`no_reconnect_after_link_loss` stops sending for good after a failure for a link-level reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import random
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("certlab.sim.telemetry")

CLOUD_SERVER_NAME = "cloud.certlab.test"
CONNECT_TIMEOUT = 5.0
MAX_REPLY = 4096
RETRY_INITIAL_S, RETRY_FACTOR, RETRY_MAX_S, RETRY_JITTER = 0.25, 2.0, 1.0, 0.5  # as the TH-100 IXIT documents
STORM_RETRY_S = 0.05  # the `reconnect_storm` flaw: fixed, immediate retries
LINK_ERRNOS = (errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH)
SIOCGIFFLAGS, IFF_RUNNING = 0x8913, 0x40  # linux/sockios.h, linux/if.h: the link is up and has its carrier


@dataclass(frozen=True)
class TelemetryClient:
    host: str
    port: int
    ca_file: str | None
    interval: float
    serial: str
    token: str
    firmware: Callable[[], str]
    cleartext: bool = False
    backoff: bool = True  # False: the `reconnect_storm` flaw
    gives_up_on_link_loss: bool = False  # the `no_reconnect_after_link_loss` flaw
    link_up: Callable[[], bool] = lambda: True  # the carrier of the device's network interface
    source_address: str | None = None
    server_name: str = CLOUD_SERVER_NAME
    enabled: Callable[[], bool] = lambda: True  # the device's `telemetry` config switch
    verify_server: bool = True  # False: the `accepts_any_certificate` flaw (no server authentication)
    occupancy_in_clear: bool = False  # the `sensitive_data_cleartext` flaw: occupancy also sent as plain UDP
    on_settings: Callable[[dict[str, bool]], None] = lambda settings: None  # the settings the cloud's reply carries

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        stop = threading.Event()  # never set: the thread ends with the process
        rng = random.Random(self.serial)
        jitter = random.Random()  # each unit and boot draws its own: units powered on together drift apart
        wait, failures = self.interval, 0
        while not stop.wait(wait):
            if not self.enabled():
                wait, failures = self.interval, 0
                continue
            try:
                if not self.link_up():
                    raise OSError(errno.ENETDOWN, "the network link is down")
                reply = self.send_once(round(21.0 + rng.uniform(-1.5, 1.5), 2))
                log.info("telemetry sent, cloud replied %r", reply[:200])
                if (settings := reply_settings(reply)) is not None:
                    self.on_settings(settings)
                wait, failures = self.interval, 0
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("telemetry to %s:%s failed: %s", self.host, self.port, exc)
                if self.gives_up_on_link_loss and _link_level(exc):
                    log.error("telemetry stops for good after a link-level failure")
                    return
                wait = self.retry_wait(failures, jitter)
                failures += 1

    def retry_wait(self, failures: int, jitter: random.Random) -> float:
        """The wait before the next try after `failures` earlier failures in a row."""
        if not self.backoff:
            return STORM_RETRY_S
        nominal = min(RETRY_MAX_S, RETRY_INITIAL_S * RETRY_FACTOR ** failures)
        return nominal * jitter.uniform(1 - RETRY_JITTER, 1.0)

    def message(self, temperature: float) -> bytes:
        body = {"serial": self.serial, "token": self.token, "temperature": temperature, "firmware": self.firmware(),
                "occupancy": self.occupancy()}
        return (json.dumps(body, sort_keys=True) + "\n").encode()

    def occupancy(self) -> str:
        """Today's occupancy schedule from the presence sensor (sensitive personal data: when the home is empty)."""
        rng = random.Random(f"{self.serial}-occupancy")
        morning, evening = 6 * 60 + rng.randrange(0, 120, 5), 16 * 60 + rng.randrange(0, 180, 5)
        spans = [(morning, morning + 60 + rng.randrange(0, 60, 5)), (evening, 22 * 60 + rng.randrange(0, 90, 5))]
        return ",".join(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in spans)

    def _occupancy_datagram(self) -> None:
        """The flaw: the schedule also goes to the cloud in a plain UDP datagram (no encryption)."""
        line = json.dumps({"serial": self.serial, "occupancy": self.occupancy()}) + "\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            if self.source_address:
                with contextlib.suppress(OSError):
                    udp.bind((self.source_address, 0))
            udp.sendto(line.encode(), (self.host, self.port))

    def _connect(self) -> socket.socket:
        """One TCP connection from the device's own address (a bind that fails falls back to any address;
        a connection that fails is one failed attempt, never tried again at once)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            if self.source_address:
                try:
                    sock.bind((self.source_address, 0))
                except OSError as exc:
                    log.debug("bind to %s failed (%s); connecting without it", self.source_address, exc)
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        return sock

    def send_once(self, temperature: float) -> str:
        """One exchange; returns the cloud's reply line."""
        if self.occupancy_in_clear:
            self._occupancy_datagram()
        sock = self._connect()
        try:
            if self.cleartext:
                stream: socket.socket = sock
                stream.sendall(f"LOGIN {self.serial} {self.token}\n".encode())
                _read_line(stream)  # the cloud acknowledges the login line
                stream.sendall(self.message(temperature))
            else:
                ctx = ssl.create_default_context(cafile=self.ca_file)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                if not self.verify_server:
                    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                stream = ctx.wrap_socket(sock, server_hostname=self.server_name)
                stream.sendall(self.message(temperature))
            return _read_line(stream)
        finally:
            sock.close()


def _read_line(stream: socket.socket) -> str:
    data = b""
    while b"\n" not in data and len(data) < MAX_REPLY:
        chunk = stream.recv(MAX_REPLY - len(data))
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")


def reply_settings(reply: str) -> dict[str, bool] | None:
    """The update settings in the cloud's reply line ({"ok": true, "settings": {...}}), or None."""
    try:
        settings = json.loads(reply).get("settings")
    except (ValueError, AttributeError):
        return None
    if not isinstance(settings, dict):
        return None
    return {str(k): v for k, v in settings.items() if isinstance(v, bool)}


def settings_lines(settings: dict[str, bool] | None) -> list[str]:
    """What the device's `update-settings` prints: each setting on, off, or unknown (no reply yet)."""
    word = {True: "on", False: "off"}
    got = settings or {}
    return [f"auto-update: {word.get(got.get('auto_update'), 'unknown')}",  # type: ignore[arg-type]
            f"notifications: {word.get(got.get('update_notifications'), 'unknown')}"]  # type: ignore[arg-type]


def _link_level(exc: BaseException) -> bool:
    """A failure because the network itself is gone (no link, no route, no answer), not a refusal."""
    return isinstance(exc, TimeoutError) or getattr(exc, "errno", None) in LINK_ERRNOS


def carrier_up(interface: str = "eth0") -> bool:
    """Whether `interface` of this network namespace has its link (IFF_RUNNING); one it lacks counts as up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return True
    return bool(struct.unpack_from("H", raw, 16)[0] & IFF_RUNNING)
