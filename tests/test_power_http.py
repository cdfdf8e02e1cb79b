"""The `http-pdu` backend against the simulated NETIO PDU (lab.sim.relay.serve_netio) on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab.bench import Bench
from lab.drivers.power_http import NetioJsonPower
from lab.errors import CertlabError, PowerFault
from lab.inventory import load_inventory
from lab.sim.relay import Contacts, NetioApi, RelayConfig, serve_netio
from tests.webserver import make_pki

USER, PASSWORD = "netio", "s3cret-pdu"


class StuckContacts(Contacts):
    """A PDU whose relay welds: every switch is acknowledged, nothing changes."""

    async def set(self, channel: int, on: bool) -> bool:
        return True


@contextmanager
def pdu(*, faults: frozenset[str] = frozenset(), contacts: type[Contacts] = Contacts,
        tls: tuple[Path, Path] | None = None, auth: tuple[str, str] | None = (USER, PASSWORD)) -> Iterator[int]:
    """A simulated 4-output PDU on 127.0.0.1 in a thread (read-only user: viewer/look); yields its port."""
    cfg = RelayConfig(id="pdu1", kind="netio", channels={}, size=4, host="127.0.0.1", port=0, faults=faults,
                      auth=auth, auth_ro=("viewer", "look"), tls=tls)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        box["server"] = await serve_netio(cfg, contacts(cfg))
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10), "the simulated PDU did not start"
    server = box["server"]
    try:
        yield server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        async def stop() -> None:
            server.close()  # type: ignore[attr-defined]
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _driver(port: int, channel: int = 2, **kwargs) -> NetioJsonPower:
    kwargs = {"user": USER, "password": PASSWORD, "timeout": 2.0, "retries": 1, "bench": "b1", **kwargs}
    scheme = "https://localhost" if kwargs.get("ca_file") or kwargs.pop("https", False) else "http://127.0.0.1"
    return NetioJsonPower(f"{scheme}:{port}/netio.json", channel, **kwargs)


def test_switches_an_output_and_reads_it_back():
    with pdu() as port:
        power = _driver(port)
        power.on()
        assert power.is_on()
        power.off()
        assert not power.is_on()
        assert _driver(port, channel=1).is_on() is False  # the other outputs are untouched
        ident = power.identify()
        assert ident.startswith("CERTLAB-SIM-PDU pdu1 serial SIM-pdu1 firmware 3.4.0 (JSON API 2.1, 4 outputs)")


def test_through_the_inventory_with_the_password_from_a_file(tmp_path: Path):
    (tmp_path / "pdu.password").write_text(PASSWORD + "\n")
    with pdu() as port:
        inv = tmp_path / "inv.yaml"
        inv.write_text(textwrap.dedent(f"""\
            all:
              vars: {{certlab: {{lab: thttp}}}}
              hosts:
                b1:
                  certlab:
                    power: {{driver: http-pdu, url: "http://127.0.0.1:{port}/netio.json", channel: 3,
                             user: {USER}, password: {{file: pdu.password}}, timeout: 2}}
                    console: {{url: /tmp/x/b1/console}}
                    network: {{address: 127.0.0.1}}
                    dut: {{model: M, serial: S1, firmware: 1.0.0}}
            """))
        bench = Bench(load_inventory(inv), "b1", evidence_dir=tmp_path / "ev")
        bench.power.cycle(off_time=0)
        assert bench.power.is_on()
        equipment = bench.equipment(identify=True)["power"]
        assert equipment["resource"] == f"http://127.0.0.1:{port}/netio.json" and "SIM-pdu1" in equipment["identification"]
        assert PASSWORD not in json.dumps(bench.equipment())


def test_a_wrong_password_is_a_power_fault_that_names_the_fields():
    with pdu() as port:
        power = _driver(port, password="guess", credential_source="power.user and power.password (file pdu.pw)")
        with pytest.raises(PowerFault) as info:
            power.on()
        message = str(info.value)
        assert "PDU at http://127.0.0.1" in message and "refused user 'netio' (HTTP 401 on POST)" in message
        assert "fix: power.user and power.password (file pdu.pw) must be the JSON API's read-write user" in message
        assert "guess" not in message
        with pytest.raises(PowerFault, match=r"refused no credentials \(HTTP 401 on GET\)"):
            _driver(port, user=None, password=None).is_on()
        viewer = _driver(port, user="viewer", password="look")
        assert viewer.is_on() is False  # a read-only user reads
        with pytest.raises(PowerFault, match=r"forbids POST for user 'viewer' \(HTTP 403: read-only access\); fix: enable READ-WRITE"):
            viewer.on()


def test_a_switch_the_pdu_does_not_carry_out_is_caught_by_the_read_back():
    with pdu(contacts=StuckContacts) as port:
        with pytest.raises(PowerFault, match=r"kept channel 2 off after switching it on \(2 attempts to switch channel 2 on\)"):
            _driver(port).on()


def test_a_silent_pdu_times_out_within_the_bound():
    with pdu(faults=frozenset({"relay_unresponsive"})) as port:
        with pytest.raises(PowerFault, match=r"did not answer GET within 0.3 s \(2 attempts to read the state"):
            _driver(port, timeout=0.3).is_on()


def test_nobody_listening_and_wrong_outputs_and_paths():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(PowerFault, match=r"could not be reached \(.*refused.*\) \(2 attempts"):
        _driver(free).is_on()
    with pdu() as port:
        with pytest.raises(PowerFault, match=r"has no output 9 \(its outputs: \[1, 2, 3, 4\]\); fix: power.channel"):
            _driver(port, channel=9).is_on()
        wrong = NetioJsonPower(f"http://127.0.0.1:{port}/status.json", 1, user=USER, password=PASSWORD, retries=0)
        with pytest.raises(PowerFault, match=r"no such document \(HTTP 404\); fix: power.url ends in /netio.json"):
            wrong.is_on()


def test_https_with_the_pdus_ca_and_without_it(tmp_path: Path):
    ca, cert, key = make_pki(tmp_path / "pki", ["localhost"])
    with pdu(tls=(cert, key)) as port:
        power = _driver(port, ca_file=str(ca))
        power.on()
        assert power.is_on()
        with pytest.raises(PowerFault, match=r"TLS certificate is not trusted .*fix: set power.ca_file"):
            _driver(port, https=True).is_on()


def test_an_unreadable_ca_file_is_bad_input(tmp_path: Path):
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent("""\
        all:
          hosts:
            b1:
              certlab:
                power: {driver: http-pdu, url: "https://pdu.lab:8443/netio.json", channel: 1, ca_file: missing.pem}
                console: {url: /tmp/x/b1/console}
                network: {address: 127.0.0.1}
                dut: {model: M, serial: S1, firmware: 1.0.0}
        """))
    bench = Bench(load_inventory(inv), "b1", evidence_dir=tmp_path / "ev")
    with pytest.raises(CertlabError, match=r"field 'certlab.power.ca_file': .*missing.pem is no readable PEM file"):
        bench.power  # noqa: B018


def test_the_simulated_api_refuses_malformed_commands():
    cfg = RelayConfig(id="p", kind="netio", channels={}, size=4)

    async def ask(method: str, body: bytes) -> int:
        return (await NetioApi(cfg, Contacts(cfg)).handle(method, "/netio.json", {}, body))[0]

    assert asyncio.run(ask("POST", b'{"Outputs": [{"ID": 1, "Action": 9}]}')) == 400
    assert asyncio.run(ask("POST", b'{"Outputs": [{"ID": 5, "Action": 1}]}')) == 400
    assert asyncio.run(ask("POST", b"not json")) == 400
    assert asyncio.run(ask("DELETE", b"")) == 405
    assert asyncio.run(ask("POST", b'{"Outputs": [{"ID": 1, "Action": 4}]}')) == 200  # toggle
