"""The man-in-the-middle unit: its judgement, the lab's certificate, the redirect rule and the listener.

The listener is exercised on loopback with Python TLS clients that do and do not verify the
server (the two behaviours the unit tells apart); no rule is installed here.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from cryptography import x509

from lab.drivers.intercept import _Listener, lab_certificate, nft_ruleset, nft_table
from lab.errors import NetworkFault
from lab.traffic.mitm import judge_mitm

NAMES = ("cloud.example.test",)


def conn(outcome: str, port: int = 8883, **extra) -> dict:
    return {"port": port, "client": "10.0.0.2:40000", "outcome": outcome, "detail": "d", "tls_version": "TLSv1.3",
            "app_bytes": 0, **extra}


def test_accepted_certificate_fails_with_a_readable_reason():
    j = judge_mitm("telemetry", "cloud.example.test", 8883, [conn("refused"), conn("accepted", app_bytes=120)], 12, NAMES)
    assert j.not_judged is None
    assert len(j.problems) == 1
    assert "accepted a certificate from an untrusted CA" in j.problems[0]
    assert "120 bytes" in j.problems[0] and "cloud.example.test" in j.problems[0]


@pytest.mark.parametrize("outcome", ["refused", "closed_after_handshake"])
def test_refusal_passes_the_unit(outcome):
    j = judge_mitm("telemetry", "peer", 8883, [conn(outcome)], 12, NAMES)
    assert j.problems == [] and j.not_judged is None


@pytest.mark.parametrize("seen", [[], [conn("no_hello")], [conn("silent_after_handshake")], [conn("not_tls")],
                                  [conn("accepted", port=443)]])
def test_nothing_telling_is_not_judged_never_passed(seen):
    j = judge_mitm("telemetry", "peer", 8883, seen, 12, NAMES)
    assert j.problems == []
    assert j.not_judged


def test_lab_certificate_names_the_documented_host_only():
    cert = lab_certificate(["cloud.example.test", "administrator's SSH client", "cloud.example.test"])
    assert cert.server_names == NAMES
    leaf = x509.load_pem_x509_certificate(cert.cert_pem)
    ca = x509.load_pem_x509_certificate(cert.ca_pem)
    assert leaf.issuer == ca.subject
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["cloud.example.test"]


def test_redirect_rule_is_confined_to_the_bench_interface_and_dut():
    rules = nft_ruleset(nft_table("clh-flaws-34"), "clh-flaws-34", "10.203.74.2", {8883: 40001, 443: 40001})
    assert "table ip certlab_mitm_clh_flaws_34" in rules
    assert 'iifname "clh-flaws-34" ip saddr 10.203.74.2 tcp dport 443 redirect to :40001' in rules
    assert 'iifname "clh-flaws-34" ip saddr 10.203.74.2 tcp dport 8883 redirect to :40001' in rules
    with pytest.raises(NetworkFault):
        nft_ruleset("t", 'eth0" accept; #', "10.0.0.2", {1: 2})
    with pytest.raises(ValueError):
        nft_ruleset("t", "eth0", "not-an-ip", {1: 2})


def _listener(window: float = 10.0) -> tuple[_Listener, bytes]:
    cert = lab_certificate(list(NAMES))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        cf, kf = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        cf.write_bytes(cert.cert_pem + cert.ca_pem)
        kf.write_bytes(cert.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cf, kf)
    return _Listener("127.0.0.1", ctx, time.monotonic() + window), cert.ca_pem


def _wait(listener: _Listener, n: int) -> list:
    with listener.changed:
        listener.changed.wait_for(lambda: len(listener.results) >= n, timeout=10)
        return list(listener.results)


def test_listener_sees_a_verifying_client_refuse():
    listener, _ca = _listener()
    try:
        ctx = ssl.create_default_context()  # the system CAs: the lab's CA is not among them
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                ctx.wrap_socket(raw, server_hostname=NAMES[0])
        [seen] = _wait(listener, 1)
        assert seen.outcome == "refused", seen
    finally:
        listener.close()


def test_listener_sees_a_non_verifying_client_send_data():
    listener, _ca = _listener()
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=NAMES[0]) as tls:
                tls.sendall(b'{"secret": "not kept"}\n')
                [seen] = _wait(listener, 1)
        assert seen.outcome == "accepted" and seen.app_bytes == 23 and seen.tls_version, seen
        assert "not kept" not in str(seen.as_dict())
    finally:
        listener.close()


def test_listener_tells_plain_text_from_tls():
    listener, _ca = _listener()
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw:
            raw.sendall(b"LOGIN x y\n")
            [seen] = _wait(listener, 1)
        assert seen.outcome == "not_tls", seen
    finally:
        listener.close()
