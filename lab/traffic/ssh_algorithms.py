"""What an SSH server offers and accepts, judged against the algorithms its IXIT documents (5.1-3-2).

An SSH server states every algorithm it will use in its KEXINIT (RFC 4253 7.1): the lab reads
it on a connection of its own, then tries to negotiate with weak algorithms only, one list at a
time, so a server that accepts one is shown doing so. The weak lists are the lab's knowledge
(RFC 9142 for key exchange, OpenSSH 8.8's release notes for SHA-1 host key signatures, RFC 8758
for RC4, SP 800-131A for 3DES), not the product's: the product's facts are the documented names.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import asdict, dataclass, field
from hashlib import sha1

import paramiko
from paramiko.kex_group14 import KexGroup14SHA256
from paramiko.ssh_exception import IncompatiblePeer

LISTS = ("kex", "host_key", "ciphers", "macs")
#: KEXINIT name-list index (RFC 4253 7.1) -> our list; client-to-server and server-to-client merge
_KEXINIT_INDEX = {0: "kex", 1: "host_key", 2: "ciphers", 3: "ciphers", 4: "macs", 5: "macs"}
#: names in a KEXINIT that signal extensions, not algorithms (RFC 8308, OpenSSH strict kex, dropbear's guess)
PSEUDO_ALGORITHMS = frozenset({"ext-info-c", "ext-info-s", "kex-strict-c-v00@openssh.com",
                               "kex-strict-s-v00@openssh.com", "kexguess2@matt.ucc.asn.au"})

#: per list: the weak algorithms the lab tries, each with why it is weak
WEAK: dict[str, dict[str, str]] = {
    "kex": {"diffie-hellman-group1-sha1": "1024-bit MODP group and SHA-1; RFC 9142: SHOULD NOT",
            "diffie-hellman-group14-sha1": "SHA-1 exchange hash; RFC 9142 keeps it only for interoperability",
            "diffie-hellman-group-exchange-sha1": "SHA-1 exchange hash; RFC 9142: SHOULD NOT"},
    "host_key": {"ssh-rsa": "RSA signatures with SHA-1 (RFC 8332; disabled since OpenSSH 8.8)",
                 "ssh-dss": "1024-bit DSA with SHA-1 (disabled since OpenSSH 7.0)"},
    "ciphers": {"3des-cbc": "64-bit block cipher (Sweet32; SP 800-131A)", "arcfour": "RC4 (RFC 8758)",
                "arcfour128": "RC4 (RFC 8758)", "arcfour256": "RC4 (RFC 8758)",
                "blowfish-cbc": "64-bit block cipher (Sweet32)", "cast128-cbc": "64-bit block cipher (Sweet32)",
                "des-cbc": "56-bit key", "none": "no encryption"},
    "macs": {"hmac-md5": "MD5", "hmac-md5-96": "MD5, truncated to 96 bits",
             "hmac-sha1-96": "SHA-1 truncated to 96 bits", "none": "no integrity protection"},
}

MAX_KEXINIT_BYTES = 35000  # RFC 4253 6.1: a packet is at most 35000 bytes
MAX_PRE_LINES = 32  # RFC 4253 4.2: a server may send other lines before its identification


def kexinit_lists(payload: bytes) -> dict[str, list[str]] | None:
    """The offered names per list from a KEXINIT payload (message byte 20 first); None if it is not one."""
    if len(payload) < 17 or payload[0] != 20:
        return None
    pos, names = 17, []
    for _ in range(10):
        if pos + 4 > len(payload):
            return None
        n = struct.unpack("!I", payload[pos:pos + 4])[0]
        if pos + 4 + n > len(payload):
            return None
        raw = payload[pos + 4:pos + 4 + n].decode("ascii", "replace")
        names.append([a for a in raw.split(",") if a])
        pos += 4 + n
    out: dict[str, list[str]] = {k: [] for k in LISTS}
    for i, key in _KEXINIT_INDEX.items():
        for name in names[i]:
            if name not in out[key] and name not in PSEUDO_ALGORITHMS:
                out[key].append(name)
    return out


@dataclass
class ServerOffer:
    """The server's identification line and what its KEXINIT offers."""

    ident: str
    offers: dict[str, list[str]]


def read_server_offer(address: str, port: int, timeout: float) -> ServerOffer:
    """Connect, send an identification, read the server's identification and KEXINIT.

    Bounded by `timeout` overall and MAX_KEXINIT_BYTES; OSError when the server does not give both.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((address, port), timeout=timeout) as s:
        s.sendall(b"SSH-2.0-certlab_algorithm_probe\r\n")
        data, ident = b"", None
        while time.monotonic() < deadline and len(data) < MAX_KEXINIT_BYTES:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(4096)
            except (TimeoutError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
            ident, rest = split_ident(data)
            if ident is not None and len(rest) >= 5:
                length = struct.unpack("!I", rest[:4])[0]
                if len(rest) >= 4 + length:
                    offers = kexinit_lists(rest[5:4 + length])
                    if offers is None:
                        raise OSError(f"the server's first packet is not a KEXINIT (identification {ident!r})")
                    return ServerOffer(ident, offers)
    raise OSError(f"no SSH identification and KEXINIT within {timeout:g} s (got {len(data)} bytes: {data[:60]!r})")


def split_ident(data: bytes) -> tuple[str | None, bytes]:
    """The server's identification line (after up to MAX_PRE_LINES other lines) and the bytes after it."""
    pos = 0
    for _ in range(MAX_PRE_LINES):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return None, b""
        line = data[pos:nl].rstrip(b"\r")
        if line.startswith(b"SSH-"):
            return line.decode("ascii", "replace"), data[nl + 1:]
        pos = nl + 1
    return None, b""


# --- weak-only negotiation -------------------------------------------------------------------


class _NamedKex(KexGroup14SHA256):
    """Leaves its name on the transport (paramiko drops its kex engine once the exchange is done)."""

    def __init__(self, transport):
        super().__init__(transport)
        transport.certlab_agreed_kex = self.name


class _KexGroup1Sha1(_NamedKex):
    """diffie-hellman-group1-sha1 (RFC 4253 8.1, Oakley group 2), which paramiko no longer offers."""

    P = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF"
            "9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB"
            "5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)
    name = "diffie-hellman-group1-sha1"
    hash_algo = sha1


class _KexGroup14Sha1(_NamedKex):
    """diffie-hellman-group14-sha1 (RFC 4253 8.2), which paramiko no longer offers."""

    name = "diffie-hellman-group14-sha1"
    hash_algo = sha1


class _ProbeTransport(paramiko.Transport):
    """A client that can also speak the SHA-1 key exchanges, so a server accepting one is seen doing so."""

    _kex_info = {**paramiko.Transport._kex_info, _KexGroup1Sha1.name: _KexGroup1Sha1,
                 _KexGroup14Sha1.name: _KexGroup14Sha1}


def _speakable(kind: str) -> list[str]:
    info = {"kex": _ProbeTransport._kex_info, "host_key": _ProbeTransport._key_info,
            "ciphers": _ProbeTransport._cipher_info, "macs": _ProbeTransport._mac_info}[kind]
    return [a for a in WEAK[kind] if a in info]


@dataclass
class Probe:
    """One weak-only negotiation: what the lab offered for one list, and what came of it."""

    list: str
    offered: list[str]
    outcome: str  # accepted | refused | not tried (the lab's client cannot speak these: judged from the offer)
    agreed: str | None = None
    detail: str = ""


def probe_weak(address: str, port: int, kind: str, timeout: float) -> Probe:
    """Negotiate with only the weak algorithms of `kind` the lab's client can speak (others at their defaults).

    accepted: the key exchange completed with one of them (`agreed` names it); refused: the server's
    offer holds none of them (the client stops, as RFC 4253 7.1 says) or it closed the connection.
    OSError when the server cannot be reached or does not answer within `timeout`.
    """
    offered = _speakable(kind)
    if not offered:
        return Probe(kind, [], "not tried", detail="the lab's SSH client speaks none of the weak algorithms of this list")
    sock = socket.create_connection((address, port), timeout=timeout)
    transport = _ProbeTransport(sock)
    try:
        opts = transport.get_security_options()
        if kind == "kex":
            opts.kex = tuple(offered)
        elif kind == "host_key":
            opts.key_types = tuple(offered)
        elif kind == "ciphers":
            opts.ciphers = tuple(offered)
        else:
            opts.digests = tuple(offered)
        try:
            transport.start_client(timeout=timeout)
        except IncompatiblePeer as exc:
            return Probe(kind, offered, "refused", detail=f"the server's offer holds none of them ({exc})")
        except (paramiko.SSHException, EOFError) as exc:
            if transport.remote_version:
                return Probe(kind, offered, "refused", detail=f"the server ended the key exchange ({exc or type(exc).__name__})")
            raise OSError(f"no SSH answer within {timeout:g} s: {exc}") from None
        agreed = {"kex": getattr(transport, "certlab_agreed_kex", None), "host_key": transport.host_key_type,
                  "ciphers": transport.remote_cipher, "macs": transport.remote_mac}[kind]
        return Probe(kind, offered, "accepted", agreed=agreed,
                     detail=f"key exchange completed with {agreed} (identification {transport.remote_version})")
    finally:
        transport.close()
        sock.close()


# --- the judgement ----------------------------------------------------------------------------


@dataclass
class AlgorithmJudgement:
    problems: list[str] = field(default_factory=list)
    undocumented: dict[str, list[str]] = field(default_factory=dict)
    weak_offered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def judge(where: str, documented: dict[str, tuple[str, ...]], offer: ServerOffer, probes: list[Probe]) -> AlgorithmJudgement:
    """Problems: an offered algorithm outside the documented list, a weak one offered, a weak-only negotiation accepted.

    `documented` maps each of LISTS to the IXIT's names; `where` names the interface in the reasons.
    """
    out = AlgorithmJudgement()
    for p in probes:
        if p.outcome == "accepted":
            why = WEAK[p.list].get(p.agreed or "", "weak")
            out.problems.append(f"{where} accepted a key exchange offering only weak {p.list} and agreed on "
                                f"{p.agreed} ({why})")
    for kind in LISTS:
        allowed = set(documented.get(kind, ()))
        extra = [a for a in offer.offers.get(kind, []) if a not in allowed]
        weak = [a for a in offer.offers.get(kind, []) if a in WEAK[kind]]
        if extra:
            out.undocumented[kind] = extra
            out.problems.append(f"{where} offers {kind} {', '.join(extra)}, not among the documented "
                                f"{', '.join(sorted(allowed)) or '(none)'}")
        if weak:
            out.weak_offered[kind] = weak
            out.problems.append(f"{where} offers weak {kind} " + ", ".join(f"{a} ({WEAK[kind][a]})" for a in weak))
    return out
