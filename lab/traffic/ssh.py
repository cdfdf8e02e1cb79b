"""SSH identification lines and the server's KEXINIT, read from a flow (both are clear text)."""

from __future__ import annotations

import struct

from lab.traffic.flows import Flow

WEAK_SSH_ALGORITHMS = ("diffie-hellman-group1-sha1", "3des-cbc", "arcfour", "hmac-md5", "ssh-dss", "none", "blowfish-cbc")


MAX_SERVER_PRE_LINES = 32  # RFC 4253 4.2: a server may send other lines before its identification


def _ssh_ident(stream: bytes, *, lines: int = 1) -> tuple[str | None, int]:
    """The identification line among the first `lines` lines, and where the binary packets begin.

    Without an identification line the packets are taken to begin after the first line.
    """
    pos = 0
    for _ in range(lines):
        nl = stream.find(b"\n", pos)
        line = (stream[pos:] if nl < 0 else stream[pos:nl]).rstrip(b"\r")
        if line.startswith(b"SSH-"):
            return line.decode("ascii", "replace"), len(stream) if nl < 0 else nl + 1
        if nl < 0:
            break
        pos = nl + 1
    first = stream.find(b"\n")
    return None, len(stream) if first < 0 else first + 1


def parse_ssh(flow: Flow) -> dict:
    """Both identification lines and the server's offered algorithms (its KEXINIT is clear text).

    The server's identification may follow other lines (RFC 4253 4.2); the client's comes first.
    """
    client_ident, _ = _ssh_ident(flow.c2s)
    server_ident, start = _ssh_ident(flow.s2c, lines=MAX_SERVER_PRE_LINES)
    info: dict = {"client_ident": client_ident, "server_ident": server_ident}
    pkt = flow.s2c[start:]
    if len(pkt) > 6 and pkt[5] == 20:  # SSH_MSG_KEXINIT
        pos, names = 6 + 16, []
        for _ in range(10):
            if pos + 4 > len(pkt):
                break
            n = struct.unpack("!I", pkt[pos:pos + 4])[0]
            names.append(pkt[pos + 4:pos + 4 + n].decode("ascii", "replace").split(","))
            pos += 4 + n
        if len(names) >= 10:
            info["server_offers"] = {"kex": names[0], "host_key": names[1], "ciphers": names[2], "macs": names[4]}
            info["weak_offered"] = sorted({a for group in names[:6] for a in group
                                           if any(a.startswith(w) for w in WEAK_SSH_ALGORITHMS)})
    return info
