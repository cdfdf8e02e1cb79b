"""TLS handshakes read from a flow's clear-text records (record and handshake headers only).

Enough to judge a mechanism: versions offered and chosen, cipher suite, server name.
"""

from __future__ import annotations

import struct

from lab.traffic.flows import Flow

TLS12 = 0x0303
TLS_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
WEAK_CIPHER_WORDS = ("NULL", "EXPORT", "anon", "RC4", "DES", "MD5")  # DES covers 3DES_EDE


def _handshakes(stream: bytes) -> list[tuple[int, bytes, bool]]:
    """Handshake messages (type, body, complete) from the clear-text handshake records at the start of a stream.

    `complete` is False for a message whose declared length runs past the captured bytes (the
    capture ended inside it, or a segment was lost): its body is what there is.
    """
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
        out.append((htype, data[i + 4:i + 4 + hlen], i + 4 + hlen <= len(data)))
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


def _client_hello(body: bytes) -> dict | None:
    """Offered versions and server name of a ClientHello body; None if its inner lengths run past it."""
    if len(body) < 38:
        return None
    legacy = struct.unpack("!H", body[:2])[0]
    pos = 34
    pos += 1 + body[pos]  # session id
    if pos + 2 > len(body):
        return None
    pos += 2 + struct.unpack("!H", body[pos:pos + 2])[0]  # cipher suites
    if pos >= len(body):
        return None
    pos += 1 + body[pos]  # compression methods
    exts = _extensions(body, pos)
    offered = [legacy]
    if 0x002B in exts:
        raw = exts[0x002B][1:]
        offered = [v for v in struct.unpack(f"!{len(raw) // 2}H", raw[: len(raw) // 2 * 2]) if not _grease(v)]
    info: dict = {"offered": [TLS_VERSIONS.get(v, hex(v)) for v in offered], "offered_codes": offered}
    if 0x0000 in exts and len(exts[0x0000]) > 5:
        info["server_name"] = exts[0x0000][5:].decode("ascii", "replace")
    return info


def _server_hello(body: bytes) -> dict | None:
    """Chosen version and cipher suite of a ServerHello body; None if its inner lengths run past it."""
    from scapy.layers.tls.crypto.suites import _tls_cipher_suites

    if len(body) < 38:
        return None
    version = struct.unpack("!H", body[:2])[0]
    pos = 34
    pos += 1 + body[pos]  # session id
    if pos + 2 > len(body):
        return None
    suite = struct.unpack("!H", body[pos:pos + 2])[0]
    exts = _extensions(body, pos + 3)
    if 0x002B in exts and len(exts[0x002B]) == 2:
        version = struct.unpack("!H", exts[0x002B])[0]
    return {"version": TLS_VERSIONS.get(version, hex(version)), "version_code": version,
            "cipher_suite": _tls_cipher_suites.get(suite, hex(suite))}


def parse_tls(flow: Flow) -> dict:
    """What the handshake says: versions offered and chosen, cipher suite, server name.

    A hello too short to read is not counted as seen; if the capture cut it (its declared length
    runs past the captured bytes) its name is listed under "cut", so the caller can tell a
    window's edge from a DUT that sent no hello.
    """
    info: dict = {"client_hello": False, "server_hello": False}
    for side, stream, wanted, read in (("client", flow.c2s, 1, _client_hello), ("server", flow.s2c, 2, _server_hello)):
        for htype, body, complete in _handshakes(stream):
            if htype != wanted:
                continue
            hello = read(body)
            if hello is None:
                if not complete:
                    info.setdefault("cut", []).append("ClientHello" if wanted == 1 else "ServerHello")
                continue
            info[f"{side}_hello"] = True
            info.update(hello)
            break
    return info
