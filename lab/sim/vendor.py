"""The simulated manufacturer: its release signing key and its published firmware releases.

The key is FAKE and PUBLIC: it is derived from the fixed seed below so that every simulated lab,
every test run and every device agrees on it without any key file. Never use it for anything
but the simulator. Release payloads are deterministic too (SHAKE-256 of model and version used
as a pseudo-random generator), so an image built today hashes the same tomorrow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.firmware import build_image, public_key_hex

#: Documented seed of the fake vendor key: SHA-256 of this text is the Ed25519 private key.
VENDOR_KEY_SEED_TEXT = b"certlab simulated vendor release key v1 -- FAKE, PUBLIC, NOT A SECRET"
DEFAULT_SIZE = 256 * 1024


@dataclass(frozen=True)
class Release:
    version: str
    security_version: int
    status: str  # "vulnerable", "current", "newer"


#: The releases every simulated model has (oldest first).
RELEASES: tuple[Release, ...] = (
    Release("1.2.0", 2, "vulnerable"),
    Release("1.4.0", 3, "current"),
    Release("1.5.0", 4, "newer"),
)


def vendor_private_key() -> Ed25519PrivateKey:
    """The fake vendor signing key (deterministic from VENDOR_KEY_SEED_TEXT)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(VENDOR_KEY_SEED_TEXT).digest())


def vendor_public_key_hex() -> str:
    return public_key_hex(vendor_private_key())


def security_version_for(version: str) -> int:
    """The anti-rollback counter the vendor assigned to `version` (1 for unknown versions)."""
    for rel in RELEASES:
        if rel.version == version:
            return rel.security_version
    return 1


#: Where every release of a model carries the 64 bytes (Ed25519 seed + public key, the libsodium
#: layout) that the `shared_host_key` build uses as its SSH host key. A conforming build never
#: reads them: to it they are payload like the rest, and without the public half they cannot be
#: told from the pseudo-random bytes around them.
BAKED_KEY_OFFSET = 0x1000


def baked_host_key_seed(model: str) -> bytes:
    """The `shared_host_key` build's host key (raw Ed25519 seed): one for every unit and release of `model`."""
    return hashlib.sha256(f"certlab-baked-host-key/{model}".encode()).digest()


def baked_host_key_pem(model: str) -> str:
    """That key in OpenSSH format, as the flawed sshd loads it."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key = Ed25519PrivateKey.from_private_bytes(baked_host_key_seed(model))
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()


def release_payload(model: str, version: str, size: int = DEFAULT_SIZE) -> bytes:
    """Deterministic pseudo-random payload keyed by model and version (with the baked key's bytes)."""
    data = hashlib.shake_256(f"certlab-firmware/{model}/{version}".encode()).digest(size)
    if size < BAKED_KEY_OFFSET + 64:
        return data
    seed = baked_host_key_seed(model)
    baked = seed + Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return data[:BAKED_KEY_OFFSET] + baked + data[BAKED_KEY_OFFSET + 64:]


def build_release(model: str, version: str, security_version: int, size: int = DEFAULT_SIZE) -> bytes:
    """A vendor-signed image, identical byte for byte every time it is built."""
    return build_image(
        model=model,
        version=version,
        security_version=security_version,
        payload=release_payload(model, version, size),
        private_key=vendor_private_key(),
    )


def release_filename(model: str, version: str) -> str:
    return f"{model}-{version}.clfw"


def write_releases(directory: str | Path, model: str, size: int = DEFAULT_SIZE) -> Path:
    """Write every release of `model` into `directory` plus a `releases.json` index; returns the index."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for rel in RELEASES:
        data = build_release(model, rel.version, rel.security_version, size)
        name = release_filename(model, rel.version)
        (out / name).write_bytes(data)
        entries.append(
            {
                "model": model,
                "version": rel.version,
                "security_version": rel.security_version,
                "status": rel.status,
                "file": name,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    index = out / "releases.json"
    index.write_text(
        json.dumps({"vendor_pubkey": vendor_public_key_hex(), "releases": entries}, indent=2) + "\n"
    )
    return index
