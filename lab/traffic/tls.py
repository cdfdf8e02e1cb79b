"""TLS handshakes read from a flow's clear-text records (record and handshake headers only).

Enough to judge a mechanism: versions offered and chosen, cipher suite, server name.
"""

from __future__ import annotations

import struct

from lab.traffic.flows import Flow

TLS12 = 0x0303
TLS_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
WEAK_CIPHER_WORDS = ("NULL", "EXPORT", "anon", "RC4", "DES", "MD5")  # DES covers 3DES_EDE


def _handshakes(stream: bytes) -> list[tuple[int, bytes]]:
    """Handshake messages (type, body) from the clear-text handshake records at the start of a stream."""
    data, pos = b"", 0
    while pos + 5 <= len(stream):
        ctype, _ver, length = stream[pos], stream[pos + 1:pos + 3], struct.unpack("!H", stream[pos + 3:pos + 5])[0]
        if ctype != 0x16:
            break
        data += stream[pos + 5:pos + 5 + length]
        pos += 5 + length
    out, i = [], 0
    while i + 4 <= len(data):
        htype, hlen = data[i], int.from_bytes(data[i + 1:i + 4], "big")
        out.append((htype, data[i + 4:i + 4 + hlen]))
        if htype == 2:  # after the ServerHello the rest may be encrypted (TLS 1.3)
            break
        i += 4 + hlen
    return out


def _extensions(body: bytes, pos: int) -> dict[int, bytes]:
    exts: dict[int, bytes] = {}
    if pos + 2 > len(body):
        return exts
    end = min(len(body), pos + 2 + struct.unpack("!H", body[pos:pos + 2])[0])
    pos += 2
    while pos + 4 <= end:
        etype, elen = struct.unpack("!HH", body[pos:pos + 4])
        exts[etype] = body[pos + 4:pos + 4 + elen]
        pos += 4 + elen
    return exts


def _grease(v: int) -> bool:
    return (v & 0x0F0F) == 0x0A0A


def parse_tls(flow: Flow) -> dict:
    """What the handshake says: versions offered and chosen, cipher suite, server name."""
    from scapy.layers.tls.crypto.suites import _tls_cipher_suites

    info: dict = {"client_hello": False, "server_hello": False}
    for htype, body in _handshakes(flow.c2s):
        if htype != 1 or len(body) < 38:
            continue
        info["client_hello"] = True
        legacy = struct.unpack("!H", body[:2])[0]
        pos = 34
        pos += 1 + body[pos]
        pos += 2 + struct.unpack("!H", body[pos:pos + 2])[0]
        pos += 1 + body[pos]
        exts = _extensions(body, pos)
        offered = [legacy]
        if 0x002B in exts:
            raw = exts[0x002B][1:]
            offered = [v for v in struct.unpack(f"!{len(raw) // 2}H", raw[: len(raw) // 2 * 2]) if not _grease(v)]
        info["offered"] = [TLS_VERSIONS.get(v, hex(v)) for v in offered]
        info["offered_codes"] = offered
        if 0x0000 in exts and len(exts[0x0000]) > 5:
            info["server_name"] = exts[0x0000][5:].decode("ascii", "replace")
        break
    for htype, body in _handshakes(flow.s2c):
        if htype != 2 or len(body) < 38:
            continue
        info["server_hello"] = True
        version = struct.unpack("!H", body[:2])[0]
        pos = 34
        pos += 1 + body[pos]
        suite = struct.unpack("!H", body[pos:pos + 2])[0]
        exts = _extensions(body, pos + 3)
        if 0x002B in exts and len(exts[0x002B]) == 2:
            version = struct.unpack("!H", exts[0x002B])[0]
        info["version"] = TLS_VERSIONS.get(version, hex(version))
        info["version_code"] = version
        info["cipher_suite"] = _tls_cipher_suites.get(suite, hex(suite))
        break
    return info
