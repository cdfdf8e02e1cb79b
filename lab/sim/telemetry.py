"""The device's cloud telemetry: one JSON line per interval to the vendor cloud over TLS.

This is the traffic a tester captures to judge EN 303 645 5.5-1/5.5-6/5.8-1: a conforming
device verifies the cloud's certificate (name `cloud.certlab.test`) against its CA; with the
`cleartext_credentials` flaw it speaks plain TCP and logs in with `LOGIN <serial> <token>`; with
`accepts_any_certificate` it skips the certificate check (5.5-1-2's man in the middle); with
`sensitive_data_cleartext` the occupancy schedule (sensitive personal data, 5.8-2) also leaves
in a plain UDP datagram to the cloud's address.
Failures are logged and retried at the next interval; they never affect the device otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("certlab.sim.telemetry")

CLOUD_SERVER_NAME = "cloud.certlab.test"
CONNECT_TIMEOUT = 5.0
MAX_REPLY = 4096


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
    source_address: str | None = None
    server_name: str = CLOUD_SERVER_NAME
    enabled: Callable[[], bool] = lambda: True  # the device's `telemetry` config switch
    verify_server: bool = True  # False: the `accepts_any_certificate` flaw (no server authentication)
    occupancy_in_clear: bool = False  # the `sensitive_data_cleartext` flaw: occupancy also sent as plain UDP

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        stop = threading.Event()  # never set: the thread ends with the process
        rng = random.Random(self.serial)
        while not stop.wait(self.interval):
            if not self.enabled():
                continue
            try:
                reply = self.send_once(round(21.0 + rng.uniform(-1.5, 1.5), 2))
                log.info("telemetry sent, cloud replied %r", reply[:200])
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("telemetry to %s:%s failed: %s", self.host, self.port, exc)

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
        if self.source_address:
            try:
                return socket.create_connection(
                    (self.host, self.port), timeout=CONNECT_TIMEOUT, source_address=(self.source_address, 0)
                )
            except OSError as exc:
                log.debug("bind to %s failed (%s); connecting without it", self.source_address, exc)
        return socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)

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
