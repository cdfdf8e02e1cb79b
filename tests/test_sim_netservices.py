"""The simulated TH-100's unauthenticated services and the flaws of 5.5-4 / 5.5-5 / 5.6-2 / 5.3-10.

In process for the SSDP responder and the firmware-upload page (free loopback ports); the SSH
`none` flaws on a real simulated DUT process (tests/test_sim_dut.py's harness).
"""

from __future__ import annotations

import socket
from pathlib import Path

import paramiko
import pytest

from lab.sim.netservices import ssdp_answer, start_fwupload, start_ssdp
from lab.traffic.survey import ask_udp, http_head, ssdp_search
from lab.traffic.update_surface import update_hint
from test_sim_dut import LABEL, booted, make_dut  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


def _free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("extra", [{}, {"X-SERIAL": "SN0001", "X-FIRMWARE": "1.4.0"}])
def test_the_ssdp_responder_answers_m_search_only(extra: dict) -> None:
    port = _free(socket.SOCK_DGRAM)
    assert start_ssdp("127.0.0.1", lambda: ssdp_answer(model="TH-100", usn="u-1", extra=extra), port)
    assert ask_udp("127.0.0.1", port, b"\r\n", timeout=0.5) is None
    answer = ask_udp("127.0.0.1", port, ssdp_search(), timeout=2.0).decode()
    assert answer.startswith("HTTP/1.1 200 OK\r\n") and "SERVER: Linux UPnP/1.1 TH-100" in answer
    assert ("SN0001" in answer) == bool(extra)


def test_the_firmware_upload_page_looks_like_an_update_service() -> None:
    port = _free(socket.SOCK_STREAM)
    assert start_fwupload("127.0.0.1", port)
    head = http_head("127.0.0.1", port, timeout=2.0)
    assert head.startswith("HTTP/1.0 200 OK") and update_hint("tcp", port, head)


def _none_auth(port: int) -> bool:
    t = paramiko.Transport(socket.create_connection(("127.0.0.1", port), timeout=5))
    try:
        t.start_client(timeout=5)
        try:
            t.auth_none("root")
        except paramiko.BadAuthenticationType:
            return False
        return t.is_authenticated()
    finally:
        t.close()


@pytest.mark.parametrize("flaw", [None, "unauthenticated_network_function"])
def test_ssh_method_none_is_refused_unless_flawed(make_dut, flaw: str | None) -> None:  # noqa: F811
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    assert _none_auth(dut.ssh_port) == bool(flaw)


@pytest.mark.parametrize("flaw", [None, "settings_change_without_auth"])
def test_after_a_factory_reset_none_works_until_the_first_login_only_if_flawed(make_dut, flaw: str | None) -> None:  # noqa: F811
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    assert not _none_auth(dut.ssh_port)
    status, out, _ = dut.run("factory-reset")
    assert status == 0
    dut.respawn_after_reboot()
    dut.expect(r"login: $", 15)
    assert _none_auth(dut.ssh_port) == bool(flaw)
    assert dut.try_password(LABEL)
    assert not _none_auth(dut.ssh_port)
