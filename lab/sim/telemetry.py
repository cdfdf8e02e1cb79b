"""The device's cloud telemetry: one JSON line per interval to the vendor cloud over TLS.

This is the traffic a tester captures to judge EN 303 645 5.5-1/5.5-6/5.8-1: a conforming
device verifies the cloud's certificate (name `cloud.certlab.test`) against its CA; with the
`cleartext_credentials` flaw it speaks plain TCP and logs in with `LOGIN <serial> <token>`.
Failures are logged and retried at the next interval; they never affect the device otherwise.
"""

from __future__ import annotations

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
        body = {"serial": self.serial, "token": self.token, "temperature": temperature, "firmware": self.firmware()}
        return (json.dumps(body, sort_keys=True) + "\n").encode()

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
