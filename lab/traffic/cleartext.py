"""Confidential data in clear text: what to look for, where it shows, and readable masked excerpts.

Used by the 5.5/5.8 test cases on the flows of one capture; secrets never reach the evidence
unmasked.
"""

from __future__ import annotations

import re
from pathlib import Path

from lab.traffic.flows import Flow, Traffic

CREDENTIAL_WORDS = (rb"\bLOGIN\b", rb"(?i)token", rb"(?i)passw(or)?d")
STOP_WORDS = {"number", "device", "version", "images", "image", "value", "values", "about", "their"}


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)


def excerpt(data: bytes, at: int, secrets: list[str]) -> str:
    """A short readable piece of `data` around `at`, with secrets and long tokens masked."""
    text = _printable(data[max(0, at - 40):at + 80])
    for s in secrets:
        if s:
            text = text.replace(s, "********")
    return re.sub(r"[A-Za-z0-9+/=_]{16,}", lambda m: f"{m[0][:4]}...({len(m[0])} chars)", text)


def csp_markers(password: str | None) -> list[tuple[str, re.Pattern[bytes]]]:
    """Critical security parameters a capture can show: the lab's login password, credential words."""
    markers = [("the device's login password", re.compile(re.escape(password.encode())))] if password else []
    return markers + [(f"credential word /{w.decode()}/", re.compile(w)) for w in CREDENTIAL_WORDS]


def leak_markers(ixit, serial: str, password: str | None) -> list[tuple[str, re.Pattern[bytes]]]:
    """What must never travel in clear text: serial, the lab password, credential words, carried data."""
    markers = [(f"the serial number {serial!r}", re.compile(re.escape(serial.encode())))]
    markers += csp_markers(password)
    words: set[str] = set()
    for mech in ixit.com_mech:
        for phrase in mech.carries.what:
            words |= {w.lower() for w in re.findall(r"[A-Za-z]{5,}", phrase) if w.lower() not in STOP_WORDS}
    words |= {t.id.lower() for t in ixit.tel_data if len(t.id) >= 5}
    markers += [(f"carried data {w!r} (IXIT 11/24)", re.compile(re.escape(w.encode()), re.IGNORECASE)) for w in sorted(words)]
    return markers


def scan_clear_text(traffic: Traffic, markers, secrets: list[str], flows: list[Flow] | None = None
                    ) -> tuple[list[dict], list[str]]:
    """Confidential data in clear text (every flow, or `flows`). The login password is looked for in all bytes."""
    findings, problems = [], []
    for flow in traffic.flows if flows is None else flows:
        clear = flow.kind == "clear"
        for direction, data in (("client->server", flow.c2s), ("server->client", flow.s2c)):
            if not data:
                continue
            hits = []
            for what, rx in markers:
                if not clear and what != "the device's login password":
                    continue  # inside TLS/SSH only the password could show up by mistake
                m = rx.search(data)
                if m:
                    hits.append((what, m.start()))
            if hits:
                text = excerpt(data, hits[0][1], secrets)
                findings.append({"flow": flow.name, "direction": direction, "found": [h[0] for h in hits], "excerpt": text})
                problems.append(f"clear text in {flow.name} ({direction}) carries {', '.join(h[0] for h in hits)}: {text!r}")
    return findings, problems


def clear_logins(mechs, traffic: Traffic, dut: str, secrets: list[str]) -> list[str]:
    """A login the lab made in clear text and the DUT accepted: the credentials crossed the network unprotected."""
    problems = []
    for mech in mechs:
        ex = traffic.logins.get(mech.id)
        if ex is None or ex.outcome != "accepted":
            continue
        flows = [f for f in traffic.flows if f.server == (dut, ex.port) and f.kind == "clear"
                 and any(s.encode() in f.c2s for s in secrets)]
        seen = (f"flow {flows[0].name}, the password in the client's bytes" if flows
                else "the exchange is in clear-text-logins.json")
        problems.append(f"{ex.protocol} on port {ex.port} accepted the login of user {ex.user} in clear text "
                        f"(captured in {Path(traffic.pcap).name}: {seen}; IXIT {mech.id}: {mech.protocol}, "
                        f"encrypted: {str(mech.encrypted).lower()}): best practice protects credentials in transit")
    return problems
