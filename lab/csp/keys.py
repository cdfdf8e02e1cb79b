"""Shared critical security parameters (5.4-3-2): host keys across samples, private keys in release images.

A host key is compared by its SSH public key blob (RFC 4253 6.6) and shown by its OpenSSH
SHA-256 fingerprint. Release images are scanned for private keys in the formats firmware
carries them: PEM / OpenSSH blocks (parsed, their public half derived) and, for the device's
own Ed25519 host keys, the raw 64-byte seed + public key (libsodium, dropbear and OpenSSH keep
an Ed25519 key that way): found by the public key's bytes, confirmed by deriving it from the
32 bytes before it. A raw key is recognisable only with its public half, so raw keys are
searched only for the keys the device shows.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (Encoding, PublicFormat, load_pem_private_key,
                                                          load_ssh_private_key)

RSA_SIGNATURES = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")  # three names, one RSA host key
MAX_KEXINIT = 64 * 1024  # bytes read for the server's identification and KEXINIT
MAX_PEM_BLOCK = 64 * 1024
MAX_RAW_HITS = 100  # occurrences of one public key checked per image

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]{0,40})PRIVATE KEY-----")


@dataclass(frozen=True)
class HostKey:
    algorithm: str  # the key's name, e.g. ssh-ed25519, ssh-rsa
    blob: bytes  # SSH wire encoding of the public key

    @property
    def fingerprint(self) -> str:
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")

    def describe(self) -> str:
        return f"{self.algorithm} {self.fingerprint}"

    @property
    def ed25519_public(self) -> bytes | None:
        """The raw 32-byte public key of an ssh-ed25519 blob, else None."""
        try:
            (n,) = struct.unpack(">I", self.blob[:4])
            name = self.blob[4:4 + n]
            (m,) = struct.unpack(">I", self.blob[4 + n:8 + n])
            pub = self.blob[8 + n:8 + n + m]
        except struct.error:
            return None
        return pub if name == b"ssh-ed25519" and len(pub) == 32 else None

    def to_json(self) -> dict:
        return {"algorithm": self.algorithm, "fingerprint": self.fingerprint, "blob": base64.b64encode(self.blob).decode()}

    @classmethod
    def from_json(cls, raw: object) -> "HostKey | None":
        """A key recorded by a peer; None if the record is not one (half-written, other format)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("blob"), str) or not isinstance(raw.get("algorithm"), str):
            return None
        try:
            return cls(raw["algorithm"], base64.b64decode(raw["blob"], validate=True))
        except ValueError:
            return None


def ed25519_blob(public: bytes) -> bytes:
    name = b"ssh-ed25519"
    return struct.pack(">I", len(name)) + name + struct.pack(">I", len(public)) + public


def offered_host_key_algorithms(host: str, port: int, timeout: float) -> list[str]:
    """The host key algorithms the server's KEXINIT lists (read in clear before any key exchange)."""
    from lab.traffic.flows import Flow
    from lab.traffic.ssh import parse_ssh

    client = b"SSH-2.0-certlab_keyscan\r\n"
    data = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(client)
        deadline = time.monotonic() + timeout
        while len(data) < MAX_KEXINIT and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(4096)
            except (socket.timeout, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
            info = parse_ssh(Flow("tcp", ("lab", 0), (host, port), 0.0, c2s=client, s2c=data))
            if "server_offers" in info:
                return list(info["server_offers"]["host_key"])
    raise OSError(f"no SSH key exchange offer from {host}:{port} within {timeout} s ({len(data)} bytes received)")


def fetch_host_keys(host: str, port: int, timeout: float) -> tuple[list[HostKey], dict[str, str]]:
    """The host keys an SSH server offers: one key exchange per offered algorithm, no authentication.

    Returns the distinct keys and, per offered algorithm the lab did not get a key with, why.
    OSError when the server sends no key exchange offer at all.
    """
    import paramiko

    keys: list[HostKey] = []
    missing: dict[str, str] = {}
    for kt in offered_host_key_algorithms(host, port, timeout):
        if kt in RSA_SIGNATURES and any(k.algorithm == "ssh-rsa" for k in keys):
            continue  # one RSA key, whichever signature algorithm names it
        sock = socket.create_connection((host, port), timeout=timeout)
        transport = paramiko.Transport(sock)
        try:
            try:
                transport.get_security_options().key_types = (kt,)
            except ValueError:
                missing[kt] = "the lab's SSH client (paramiko) cannot negotiate it"
                continue
            transport.start_client(timeout=timeout)
            key = transport.get_remote_server_key()
            found = HostKey(key.get_name(), key.asbytes())
            if found not in keys:
                keys.append(found)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            missing[kt] = f"no key exchange ({str(exc)[:120] or type(exc).__name__})"
        finally:
            transport.close()
            sock.close()
    return keys, missing


@dataclass(frozen=True)
class ImageKey:
    """A private key found in a release image."""

    image: str
    offset: int
    kind: str  # e.g. "PEM OPENSSH PRIVATE KEY block", "raw Ed25519 seed + public key"
    public: HostKey | None  # its public half when the lab could derive it
    matches: str | None  # the device host key it is the private half of (describe()), if any
    note: str = ""

    def describe(self) -> str:
        what = f"{self.kind} at offset {self.offset} of {self.image}"
        if self.matches:
            return f"{what}: the private half of the device's host key {self.matches}"
        return what + (f" ({self.note})" if self.note else "")


def _public_blob(private) -> HostKey | None:
    try:
        line = private.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()
        return HostKey(line[0].decode(), base64.b64decode(line[1]))
    except (ValueError, TypeError, AttributeError, IndexError):
        return None


def _pem_blocks(name: str, data: bytes) -> list[tuple[int, str, bytes]]:
    out = []
    for m in _PEM.finditer(data):
        label = m.group(1)
        end_marker = b"-----END " + label + b"PRIVATE KEY-----"
        end = data.find(end_marker, m.end(), m.end() + MAX_PEM_BLOCK)
        block = data[m.start():end + len(end_marker)] if end >= 0 else b""
        out.append((m.start(), f"PEM {label.decode()}PRIVATE KEY block", block))
    return out


def scan_image(name: str, data: bytes, device_keys: list[HostKey]) -> list[ImageKey]:
    """Private keys in one release image, each matched against the device's host keys."""
    by_blob = {k.blob: k for k in device_keys}
    found: list[ImageKey] = []
    for offset, kind, block in _pem_blocks(name, data):
        if not block:
            found.append(ImageKey(name, offset, kind, None, None, "no END line: cut or corrupt, not parsed"))
            continue
        try:
            loader = load_ssh_private_key if b"OPENSSH PRIVATE KEY" in block[:60] else load_pem_private_key
            private = loader(block, password=None)
        except TypeError:
            found.append(ImageKey(name, offset, kind, None, None, "encrypted with a passphrase"))
            continue
        except (ValueError, Exception) as exc:  # cryptography raises ValueError / UnsupportedAlgorithm
            found.append(ImageKey(name, offset, kind, None, None, f"not parsed: {str(exc)[:100]}"))
            continue
        public = _public_blob(private)
        match = by_blob.get(public.blob) if public else None
        found.append(ImageKey(name, offset, kind, public, match.describe() if match else None))
    for key in device_keys:
        pub = key.ed25519_public
        if pub is None:
            continue
        start, hits = 0, 0
        while hits < MAX_RAW_HITS:
            at = data.find(pub, start)
            if at < 0:
                break
            hits += 1
            start = at + 1
            if at >= 32 and _derives(data[at - 32:at], pub):
                found.append(ImageKey(name, at - 32, "raw Ed25519 seed + public key", key, key.describe()))
    return found


def _derives(seed: bytes, pub: bytes) -> bool:
    try:
        return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw() == pub
    except ValueError:
        return False


def shared_with(mine: list[HostKey], peers: dict[str, list[HostKey]]) -> list[tuple[HostKey, str]]:
    """(my key, peer) for every host key a peer sample also has."""
    return [(k, peer) for peer, theirs in sorted(peers.items()) for k in mine if k in theirs]


def image_problems(found: list[ImageKey]) -> list[str]:
    """The image findings that are a hard-coded critical security parameter, in readable lines.

    A private key the device uses as its host key, and any private key stored without a
    passphrase (every unit with that image holds it, and anyone with the image has it). An
    encrypted or unparsable block is evidence, not a finding.
    """
    lines = []
    for f in found:
        if f.matches:
            lines.append(f.describe())
        elif f.public is not None:
            lines.append(f"{f.describe()}: an unencrypted private key ({f.public.describe()}) shipped in the image")
    return lines
