"""The man-in-the-middle unit's judgement: did the DUT accept a certificate from an untrusted CA?

Input: what the lab's interception saw per connection (`lab.drivers.intercept.Interception`
as dicts: port, outcome, detail). A DUT that completed the handshake and then sent application
data trusted the lab's certificate: FAIL. One that aborted the handshake (alert, reset, close)
or closed right after it without data refused it. Anything else (no connection reached the
interception, a connection that sent no ClientHello or nothing after the handshake, plain
text on a TLS port) shows nothing about certificate checking: the unit is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REFUSED = ("refused", "closed_after_handshake")


@dataclass
class MitmJudgement:
    """One mechanism's MITM unit: what was seen, the DUT's defects, or why it could not be judged."""

    mechanism: str
    port: int
    connections: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_judged: str | None = None

    def as_dict(self) -> dict:
        return {"mechanism": self.mechanism, "port": self.port, "connections": self.connections,
                "problems": self.problems, "not_judged": self.not_judged}


def judge_mitm(mechanism: str, peer: str, port: int, seen: list[dict], window_s: float,
               server_names: tuple[str, ...]) -> MitmJudgement:
    """Judge the DUT's connections to `port` that the lab answered with its untrusted certificate."""
    mine = [c for c in seen if c.get("port") == port]
    out = MitmJudgement(mechanism, port, mine)
    cert_for = f"for {', '.join(server_names)}" if server_names else "without a server name"
    accepted = [c for c in mine if c.get("outcome") == "accepted"]
    if accepted:
        c = accepted[0]
        out.problems.append(
            f"{mechanism} ({peer}:{port}) accepted a certificate from an untrusted CA: the lab's gateway answered its "
            f"connection {c.get('client')} with a certificate {cert_for} signed by a CA made for the test, and the DUT "
            f"completed the TLS handshake ({c.get('tls_version')}) and sent {c.get('app_bytes')} bytes of application "
            f"data ({len(accepted)} of {len(mine)} intercepted connection(s)); it does not authenticate its peer")
        return out
    if any(c.get("outcome") in REFUSED for c in mine):
        return out
    if not mine:
        out.not_judged = (f"no connection of the DUT to port {port} reached the lab's interception in {window_s:.0f} s")
    else:
        out.not_judged = ("no intercepted connection shows whether the DUT checks the certificate: "
                          + "; ".join(f"{c.get('client')}: {c.get('outcome')} ({c.get('detail')})" for c in mine[:3]))
    return out
