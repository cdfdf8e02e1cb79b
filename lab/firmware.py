"""The signed firmware image format (CLFW v1): build, parse, verify, and craft attack images.

One neutral library for both sides: the simulated vendor builds releases with it, the simulated
update agent checks them with it, and the test suites use it to forge the bad images a
certifier must see rejected (unsigned, tampered, wrong key, rollback).

Layout (all integers unsigned 32-bit big-endian)::

    b"CLFW\\x01" | header length | header (compact JSON, sorted keys, UTF-8)
    | signature length (0 or 64) | Ed25519 signature | payload

The signature covers magic + header length + header bytes; the header carries the payload's
SHA-256, so the payload is bound to the signature only through that hash (which is exactly what
the `tampered_update_accepted` flaw forgets to check).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lab.errors import FirmwareFormatError

MAGIC = b"CLFW\x01"
SIGNATURE_SIZE = 64
MAX_HEADER_SIZE = 64 * 1024
HEADER_FIELDS = ("model", "version", "security_version", "payload_sha256", "payload_size")


@dataclass(frozen=True)
class FirmwareImage:
    """A parsed image. `signed_bytes` is what the signature covers."""

    model: str
    version: str
    security_version: int
    payload_sha256: str
    payload_size: int
    signed_bytes: bytes
    signature: bytes | None
    payload: bytes

    @property
    def header(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in HEADER_FIELDS}


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _header_bytes(header: dict[str, object]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _assemble(signed_bytes: bytes, signature: bytes | None, payload: bytes) -> bytes:
    sig = signature or b""
    return signed_bytes + _u32(len(sig)) + sig + payload


def build_image(
    *,
    model: str,
    version: str,
    security_version: int,
    payload: bytes,
    private_key: Ed25519PrivateKey | None,
) -> bytes:
    """A complete image; unsigned (signature length 0) when `private_key` is None."""
    header = {
        "model": model,
        "version": version,
        "security_version": int(security_version),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_size": len(payload),
    }
    hbytes = _header_bytes(header)
    signed = MAGIC + _u32(len(hbytes)) + hbytes
    signature = private_key.sign(signed) if private_key is not None else None
    return _assemble(signed, signature, payload)


def _take(data: bytes, pos: int, size: int, what: str) -> tuple[bytes, int]:
    if size < 0 or pos + size > len(data):
        raise FirmwareFormatError(
            f"firmware image truncated: {what} needs {size} bytes at offset {pos}, image has {len(data)}"
        )
    return data[pos : pos + size], pos + size


def parse_image(data: bytes) -> FirmwareImage:
    """Parse and structurally validate an image; any malformation is a FirmwareFormatError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FirmwareFormatError(f"firmware image must be bytes, not {type(data).__name__}")
    data = bytes(data)
    magic, pos = _take(data, 0, len(MAGIC), "magic")
    if magic != MAGIC:
        raise FirmwareFormatError(f"not a CLFW v1 firmware image (magic {magic!r}, expected {MAGIC!r})")
    raw, pos = _take(data, pos, 4, "header length")
    (hlen,) = struct.unpack(">I", raw)
    if hlen == 0 or hlen > MAX_HEADER_SIZE:
        raise FirmwareFormatError(f"firmware header length {hlen} out of range (1..{MAX_HEADER_SIZE})")
    hbytes, pos = _take(data, pos, hlen, "header")
    signed_bytes = data[:pos]
    try:
        header = json.loads(hbytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FirmwareFormatError(f"firmware header is not UTF-8 JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise FirmwareFormatError("firmware header is not a JSON object")
    missing = [name for name in HEADER_FIELDS if name not in header]
    if missing:
        raise FirmwareFormatError(f"firmware header lacks field(s): {', '.join(missing)}")
    for name, kind in (("model", str), ("version", str), ("payload_sha256", str)):
        if not isinstance(header[name], kind) or not header[name]:
            raise FirmwareFormatError(f"firmware header field {name!r} must be a non-empty string")
    for name in ("security_version", "payload_size"):
        value = header[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FirmwareFormatError(f"firmware header field {name!r} must be a non-negative integer")
    sha = header["payload_sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise FirmwareFormatError("firmware header field 'payload_sha256' must be 64 lowercase hex digits")
    raw, pos = _take(data, pos, 4, "signature length")
    (slen,) = struct.unpack(">I", raw)
    if slen not in (0, SIGNATURE_SIZE):
        raise FirmwareFormatError(f"firmware signature length {slen} invalid (0 or {SIGNATURE_SIZE})")
    signature, pos = _take(data, pos, slen, "signature")
    payload = data[pos:]
    if len(payload) != header["payload_size"]:
        raise FirmwareFormatError(
            f"firmware payload is {len(payload)} bytes, header says {header['payload_size']}"
        )
    return FirmwareImage(
        model=header["model"],
        version=header["version"],
        security_version=header["security_version"],
        payload_sha256=sha,
        payload_size=header["payload_size"],
        signed_bytes=signed_bytes,
        signature=signature or None,
        payload=payload,
    )


def _public_key(key: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    raw = bytes.fromhex(key) if isinstance(key, str) else bytes(key)
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(img: FirmwareImage, public_key: bytes | str | Ed25519PublicKey) -> bool:
    """True only if the image carries a signature valid under `public_key` (raw 32 bytes or hex)."""
    if img.signature is None:
        return False
    try:
        _public_key(public_key).verify(img.signature, img.signed_bytes)
    except (InvalidSignature, ValueError):
        return False
    return True


def payload_matches(img: FirmwareImage) -> bool:
    """True if the payload hashes to what the (signed) header promises."""
    return hashlib.sha256(img.payload).hexdigest() == img.payload_sha256


def public_key_hex(private_key: Ed25519PrivateKey) -> str:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


# --- crafting attack images (used by test suites) -------------------------------------------


def resign(data: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The same header and payload, signed with another key (a wrong-key image)."""
    img = parse_image(data)
    return _assemble(img.signed_bytes, private_key.sign(img.signed_bytes), img.payload)


def strip_signature(data: bytes) -> bytes:
    """The same header and payload with no signature (an unsigned image)."""
    img = parse_image(data)
    return _assemble(img.signed_bytes, None, img.payload)


def flip_payload_byte(data: bytes, offset: int | None = None) -> bytes:
    """The same signed header with one payload byte inverted (a tampered image).

    `offset` is relative to the payload; default is its middle.
    """
    img = parse_image(data)
    if not img.payload:
        raise FirmwareFormatError("firmware image has an empty payload; nothing to tamper with")
    at = len(img.payload) // 2 if offset is None else offset
    if not 0 <= at < len(img.payload):
        raise FirmwareFormatError(f"payload offset {at} outside 0..{len(img.payload) - 1}")
    payload = bytearray(img.payload)
    payload[at] ^= 0xFF
    return _assemble(img.signed_bytes, img.signature, bytes(payload))
