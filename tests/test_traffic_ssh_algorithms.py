"""lab.traffic.ssh_algorithms: KEXINIT reading, weak-only negotiation and the 5.1-3-2 judgement.

The negotiations run against paramiko servers on loopback, built as the simulated DUT builds its
SSH server (conforming, and the `weak_auth_crypto` build with the SHA-1 key exchange).
"""

from __future__ import annotations

import socket
import struct
import threading

import paramiko
import pytest

from lab.sim.sshd import DEVICE_ALGORITHMS, _disabled_beyond, _LegacyKexTransport, generate_host_key_pem, load_host_key
from lab.traffic.ssh_algorithms import (LISTS, Probe, ServerOffer, judge, kexinit_lists, probe_weak,
                                        read_server_offer, split_ident)

TIMEOUT = 10.0


def _kexinit(lists: list[str]) -> bytes:
    body = bytes([20]) + b"\0" * 16
    for names in lists:
        raw = names.encode()
        body += struct.pack("!I", len(raw)) + raw
    return body + b"\0" + b"\0\0\0\0"


def test_kexinit_lists_merges_directions_and_drops_pseudo_names():
    payload = _kexinit(["curve25519-sha256,kex-strict-s-v00@openssh.com,kexguess2@matt.ucc.asn.au", "ssh-ed25519",
                        "aes128-ctr", "aes256-ctr", "hmac-sha2-256", "hmac-sha1", "none", "none", "", ""])
    assert kexinit_lists(payload) == {"kex": ["curve25519-sha256"], "host_key": ["ssh-ed25519"],
                                      "ciphers": ["aes128-ctr", "aes256-ctr"], "macs": ["hmac-sha2-256", "hmac-sha1"]}


def test_kexinit_lists_refuses_what_is_not_a_whole_kexinit():
    assert kexinit_lists(b"\x15" + b"\0" * 40) is None
    assert kexinit_lists(_kexinit(["a"] * 10)[:-30]) is None  # cut inside the lists


def test_split_ident_after_other_lines():
    assert split_ident(b"hello\r\nSSH-2.0-x_1 c\r\nREST") == ("SSH-2.0-x_1 c", b"REST")
    assert split_ident(b"SSH-2.0-x") == (None, b"")


def test_judge_names_undocumented_weak_and_accepted():
    documented = {"kex": ("curve25519-sha256@libssh.org",), "host_key": ("ssh-ed25519",), "ciphers": ("aes128-ctr",),
                  "macs": ("hmac-sha2-256",)}
    offer = ServerOffer("SSH-2.0-x", {"kex": ["curve25519-sha256@libssh.org", "diffie-hellman-group14-sha1"],
                                      "host_key": ["ssh-ed25519"], "ciphers": ["aes128-ctr"], "macs": ["hmac-sha2-256"]})
    probes = [Probe("kex", ["diffie-hellman-group14-sha1"], "accepted", agreed="diffie-hellman-group14-sha1")]
    out = judge("ssh (tcp/22)", documented, offer, probes)
    assert out.undocumented == {"kex": ["diffie-hellman-group14-sha1"]}
    assert out.weak_offered == {"kex": ["diffie-hellman-group14-sha1"]}
    assert len(out.problems) == 3 and all(len(p) > 20 for p in out.problems)
    assert "agreed on diffie-hellman-group14-sha1" in out.problems[0]


def test_judge_passes_exactly_the_documented_offer():
    documented = {k: ("a",) for k in LISTS}
    offer = ServerOffer("SSH-2.0-x", {k: ["a"] for k in LISTS})
    assert judge("w", documented, offer, [Probe("kex", ["x"], "refused")]).problems == []


@pytest.fixture
def server():
    """A loopback paramiko SSH server like the simulated DUT's; yields a starter taking (legacy_kex)."""
    key = load_host_key(generate_host_key_pem())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(TIMEOUT)
    state = {"legacy": False, "stop": False}

    def serve():
        while not state["stop"]:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            cls = _LegacyKexTransport if state["legacy"] else paramiko.Transport
            t = cls(conn, disabled_algorithms=_disabled_beyond(DEVICE_ALGORITHMS))
            t.add_server_key(key)
            try:
                t.start_server(server=paramiko.ServerInterface())
            except (paramiko.SSHException, EOFError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state, listener.getsockname()[1]
    state["stop"] = True
    listener.close()


def test_conforming_server_offers_the_device_algorithms_and_refuses_weak_ones(server):
    state, port = server
    offer = read_server_offer("127.0.0.1", port, TIMEOUT)
    assert offer.ident.startswith("SSH-2.0-")
    assert offer.offers["kex"] == list(DEVICE_ALGORITHMS["kex"])
    assert offer.offers["host_key"] == ["ssh-ed25519"]
    assert set(offer.offers["ciphers"]) == set(DEVICE_ALGORITHMS["ciphers"])
    for kind in LISTS:
        probe = probe_weak("127.0.0.1", port, kind, TIMEOUT)
        assert probe.outcome in ("refused", "not tried"), probe


def test_legacy_kex_server_is_seen_accepting_sha1_key_exchange(server):
    state, port = server
    state["legacy"] = True
    assert "diffie-hellman-group14-sha1" in read_server_offer("127.0.0.1", port, TIMEOUT).offers["kex"]
    probe = probe_weak("127.0.0.1", port, "kex", TIMEOUT)
    assert probe.outcome == "accepted" and probe.agreed == "diffie-hellman-group14-sha1", probe


def test_no_server_is_an_oserror():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(OSError):
        read_server_offer("127.0.0.1", port, 2.0)
    with pytest.raises(OSError):
        probe_weak("127.0.0.1", port, "kex", 2.0)
