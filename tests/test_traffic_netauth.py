"""lab.traffic.netauth: which services to try, the judgements, and the line-service probes on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.errors import CertlabError
from loopback import serve_once
from lab.ixit import load_ixit
from lab.traffic.netauth import (AuthTarget, Probe, auth_targets, configuration_interfaces, kind_of, probe_raw,
                                 probe_telnet, right_login_refused, settings_changed, unauthenticated_access)

PRODUCTS = Path(__file__).resolve().parents[1] / "inventory" / "products"
SSH = AuthTarget("tcp", 22, "ssh", "15-Intf ssh", ("root-password",))


def test_open_ports_get_what_the_ixit_documents_about_them() -> None:
    targets = auth_targets(load_ixit(PRODUCTS / "TH-100T" / "ixit.yaml"), [("tcp", 22), ("tcp", 23), ("udp", 1900), ("tcp", 2323)])
    by = {t.where: t for t in targets}
    assert by["tcp/22"].authentication == ("root-password",) and by["tcp/23"].protocol == "telnet"
    assert by["udp/1900"].declared_open and by["tcp/2323"].source == "undocumented" and not by["tcp/2323"].declared_open
    assert kind_of("ssh", "") == "ssh" and kind_of("", "SSH-2.0-x") == "ssh" and kind_of("telnet", "") == "telnet"
    assert kind_of("", "hello") == "raw"


def test_getting_in_without_the_right_credentials_fails_naming_how() -> None:
    ok = Probe(SSH, "ssh", {"none": "rejected", "empty": "rejected", "wrong": "rejected", "right": "accepted"})
    bad = Probe(SSH, "ssh", {"none": "accepted", "empty": "rejected", "wrong": "rejected", "right": "accepted"},
                {"none": "TH-100 firmware 1.4.0"})
    declared = Probe(AuthTarget("udp", 1900, "ssdp", "15-Intf discovery", ()), "raw", {"none": "no login asked"})
    problems = unauthenticated_access([ok, bad, declared])
    assert len(problems) == 1 and "SSH authentication method none" in problems[0] and "root-password" in problems[0]
    assert right_login_refused([ok, bad]) == []
    assert right_login_refused([Probe(SSH, "ssh", {"right": "rejected"})]) == ["tcp/22"]


def test_a_setting_changed_only_counts_when_the_readback_shows_the_marker() -> None:
    bad = Probe(SSH, "ssh", {"none": "accepted"})
    assert settings_changed([bad], "m-1", "pool.ntp.org") == []
    assert settings_changed([bad], "m-1", "m-1\n")[0].startswith("tcp/22 (ssh, 15-Intf ssh) changed the setting with none")


def test_configuration_interfaces_come_from_13_softserv(tmp_path: Path) -> None:
    ixit = load_ixit(PRODUCTS / "TH-100T" / "ixit.yaml")
    assert [(s, t.where) for s, t in configuration_interfaces(ixit)] == [("sshd", "tcp/22"), ("telnetd", "tcp/23")]
    data = yaml.safe_load((PRODUCTS / "TH-100" / "ixit.yaml").read_text())
    data["13-SoftServ"][0].pop("interfaces")
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CertlabError, match=r"13-SoftServ sshd: allows_configuration is true but `interfaces`"):
        configuration_interfaces(load_ixit(path))
    data["13-SoftServ"][0]["interfaces"] = ["nowhere"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CertlabError, match="interfaces"):
        load_ixit(path)


def _lines(conn):
    buf = b""
    while True:
        chunk = conn.recv(1024)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.strip().decode()


def test_a_raw_shell_answering_the_version_command_is_found() -> None:
    def shell(conn):
        conn.sendall(b"debug shell\n# ")
        for line in _lines(conn):
            conn.sendall(b"TH-100 firmware 1.4.0\n# " if line == "version" else b"?\n# ")

    port = serve_once(shell, 1)
    p = probe_raw(AuthTarget("tcp", port, "", "undocumented", ()), "127.0.0.1", command="version",
                  version_pattern=r"firmware (?P<version>[0-9.]+)")
    assert p.outcomes == {"none": "no login asked"} and unauthenticated_access([p])


def test_a_telnet_login_refusing_empty_and_wrong_passwords_passes() -> None:
    def login(conn):
        conn.sendall(b"\xff\xfb\x01box login: ")
        lines = _lines(conn)
        line = next(lines)
        while line == "":
            line = next(lines)
        conn.sendall(b"Password: ")
        if next(lines) == "s3cret":
            conn.sendall(b"\n# ")
            next(lines, None)
        else:
            conn.sendall(b"\nLogin incorrect\n")

    port = serve_once(login, 3)
    p = probe_telnet(AuthTarget("tcp", port, "telnet", "15-Intf telnet", ("pw",)), "127.0.0.1", "root", "s3cret",
                     login=r"login: ?$", password=r"[Pp]assword: ?$", shell=r"# ?$", incorrect="Login incorrect",
                     command="version", timeout=5)
    assert p.outcomes["empty"] == "rejected" and p.outcomes["wrong"] == "rejected" and p.outcomes["right"] == "accepted"
    assert unauthenticated_access([p]) == [] and right_login_refused([p]) == []
