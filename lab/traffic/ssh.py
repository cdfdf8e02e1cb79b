"""SSH identification lines and the server's KEXINIT, read from a flow (both are clear text)."""

from __future__ import annotations

import struct

from lab.traffic.flows import Flow

WEAK_SSH_ALGORITHMS = ("diffie-hellman-group1-sha1", "3des-cbc", "arcfour", "hmac-md5", "ssh-dss", "none", "blowfish-cbc")


def _ssh_ident(stream: bytes) -> str | None:
    line = stream.split(b"\n", 1)[0].rstrip(b"\r")
    return line.decode("ascii", "replace") if line.startswith(b"SSH-") else None


def parse_ssh(flow: Flow) -> dict:
    """Both identification lines and the server's offered algorithms (its KEXINIT is clear text)."""
    info: dict = {"client_ident": _ssh_ident(flow.c2s), "server_ident": _ssh_ident(flow.s2c)}
    nl = flow.s2c.find(b"\n")
    pkt = flow.s2c[nl + 1:] if nl >= 0 else b""
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
