"""The simulated thermostat's telemetry: the occupancy schedule it sends, and the two flaws of 5.5-1-2 / 5.8-2-2.

`accepts_any_certificate`: the TLS client completes a handshake with the lab's interception;
`sensitive_data_cleartext`: the schedule also leaves in a plain UDP datagram. On loopback only.
"""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from lab.sim.telemetry import TelemetryClient
from test_traffic_mitm import _listener, _wait


def client(port: int, **kw) -> TelemetryClient:
    return TelemetryClient(host="127.0.0.1", port=port, ca_file=None, interval=5, serial="TH100-X1", token="t" * 32,
                           firmware=lambda: "1.4.0", **kw)


def test_telemetry_carries_a_stable_occupancy_schedule():
    body = json.loads(client(1).message(21.0))
    assert body["occupancy"] == client(1).occupancy()
    assert body["occupancy"].count("-") == 2 and "," in body["occupancy"]


@pytest.mark.parametrize("flaw", [None, "accepts_any_certificate"])
def test_certificate_check(flaw):
    listener, _ca = _listener()
    try:
        c = client(listener.port, verify_server=flaw is None)
        if flaw is None:
            with pytest.raises(ssl.SSLError):
                c.send_once(21.0)
        else:
            c.send_once(21.0)  # the lab's listener answers nothing and closes
        [seen] = _wait(listener, 1)
        assert seen.outcome == ("refused" if flaw is None else "accepted"), seen
    finally:
        listener.close()


@pytest.mark.parametrize("flaw", [None, "sensitive_data_cleartext"])
def test_occupancy_in_clear(flaw):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(0.5)
        port = udp.getsockname()[1]  # no TCP listener there: the TLS connection is refused afterwards
        with pytest.raises(OSError):
            client(port, occupancy_in_clear=flaw is not None).send_once(21.0)
        if flaw is None:
            with pytest.raises(TimeoutError):
                udp.recv(2048)
        else:
            got = json.loads(udp.recv(2048))
            assert got == {"serial": "TH100-X1", "occupancy": client(1).occupancy()}
