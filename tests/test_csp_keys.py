"""lab.csp.keys: host key identity, private keys in release images, comparison across samples."""

from __future__ import annotations

import base64
import hashlib
import io
import os

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (BestAvailableEncryption, Encoding, NoEncryption,
                                                          PrivateFormat, PublicFormat)

from lab.csp import keys
from lab.csp.keys import HostKey


def _ed25519() -> tuple[Ed25519PrivateKey, HostKey]:
    private = Ed25519PrivateKey.generate()
    return private, HostKey("ssh-ed25519", keys.ed25519_blob(private.public_key().public_bytes_raw()))


def test_host_key_fingerprint_is_openssh_sha256_and_round_trips() -> None:
    private, key = _ed25519()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    pk = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    assert key.blob == pk.asbytes()
    assert key.fingerprint == pk.fingerprint  # paramiko: "SHA256:<base64 without padding>"
    assert key.fingerprint == "SHA256:" + base64.b64encode(hashlib.sha256(key.blob).digest()).decode().rstrip("=")
    assert key.ed25519_public == private.public_key().public_bytes_raw()
    assert HostKey.from_json(key.to_json()) == key
    assert HostKey.from_json({"algorithm": "ssh-ed25519", "blob": "not base64!"}) is None
    assert HostKey.from_json("garbage") is None


def test_ecdsa_key_has_no_raw_ed25519_half() -> None:
    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    key = HostKey("ecdsa-sha2-nistp256", base64.b64decode(pub.split()[1]))
    assert key.ed25519_public is None


def _image(*parts: bytes) -> bytes:
    return b"CLFW\x01" + os.urandom(3000) + b"".join(p + os.urandom(500) for p in parts)


def test_random_image_holds_no_key() -> None:
    _, key = _ed25519()
    assert keys.scan_image("fw.bin", _image(), [key]) == []


def test_raw_seed_and_public_key_of_the_device_key_is_found() -> None:
    private, key = _ed25519()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    data = _image(seed + key.ed25519_public)
    (hit,) = keys.scan_image("fw.bin", data, [key])
    assert hit.matches == key.describe() and hit.offset == data.find(seed)
    assert "private half of the device's host key" in keys.image_problems([hit])[0]


def test_public_key_alone_in_the_image_is_no_private_key() -> None:
    _, key = _ed25519()
    assert keys.scan_image("fw.bin", _image(key.ed25519_public), [key]) == []  # e.g. an authorized_keys entry


def test_openssh_block_matching_the_device_key() -> None:
    private, key = _ed25519()
    block = private.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    (hit,) = keys.scan_image("fw.bin", _image(block), [key])
    assert hit.kind == "PEM OPENSSH PRIVATE KEY block" and hit.matches == key.describe()


def test_unencrypted_private_key_of_another_key_is_a_problem_encrypted_is_evidence() -> None:
    _, device = _ed25519()
    other = ec.generate_private_key(ec.SECP256R1())
    plain = other.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    sealed = other.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"passphrase"))
    found = keys.scan_image("fw.bin", _image(plain, sealed, b"-----BEGIN RSA PRIVATE KEY-----\ncut"), [device])
    assert [f.kind for f in found] == ["PEM PRIVATE KEY block", "PEM ENCRYPTED PRIVATE KEY block", "PEM RSA PRIVATE KEY block"]
    problems = keys.image_problems(found)
    assert len(problems) == 1 and "an unencrypted private key (ecdsa-sha2-nistp256 SHA256:" in problems[0]
    assert found[1].note == "encrypted with a passphrase"
    assert found[2].note.startswith("no END line")


def test_shared_with_peers() -> None:
    _, a = _ed25519()
    _, b = _ed25519()
    assert keys.shared_with([a], {"SN2 (bench p2)": [b]}) == []
    assert keys.shared_with([a, b], {"SN2 (bench p2)": [b], "SN3 (bench p3)": [a]}) == [
        (b, "SN2 (bench p2)"), (a, "SN3 (bench p3)")]


def test_a_server_that_sends_no_key_exchange_offer_is_an_oserror() -> None:
    import socket
    import threading

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)

        def answer() -> None:
            conn, _ = srv.accept()
            conn.sendall(b"SSH-2.0-mute\r\n")
            conn.recv(100)
            conn.close()

        threading.Thread(target=answer, daemon=True).start()
        with pytest.raises(OSError, match="no SSH key exchange offer"):
            keys.offered_host_key_algorithms("127.0.0.1", srv.getsockname()[1], 2)
