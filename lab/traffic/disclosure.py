"""5.6-2-2's judgement: which identifying values of the sample appear in what the DUT says without
authentication, and whether IXIT 15-Intf `discloses` allows them on that interface.

The values are the ones the lab knows from the inventory (serial, MAC, firmware version, model),
looked for in the forms devices print them (MAC with or without separators, any case), bounded
so that "1.4.0" is not found inside "11.4.01" nor the model "TH-100" inside "TH-1000".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.errors import CertlabError
from lab.ixit import Ixit


def identifying_values(*, serial: str | None, mac: str | None, firmware: str | None, model: str | None) -> dict[str, str]:
    """kind (a 15-Intf `discloses` word) -> the sample's value; unknown values left out."""
    values = {"serial": serial, "mac": mac, "firmware_version": firmware, "model": model}
    return {k: v for k, v in values.items() if v}


def value_pattern(kind: str, value: str) -> re.Pattern[str]:
    """How `value` shows in text: MACs in any separator or none; the rest as a whole token, any case."""
    if kind == "mac":
        octets = re.findall(r"[0-9A-Fa-f]{2}", value)
        body = r"[:.\-]?".join(octets)
        return re.compile(rf"(?<![0-9A-Fa-f]){body}(?![0-9A-Fa-f])", re.I)
    if kind == "firmware_version":
        return re.compile(rf"(?<![\w.]){re.escape(value)}(?!\.?\d)", re.I)
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", re.I)


def find_values(text: str, values: dict[str, str]) -> list[str]:
    """The kinds of `values` that appear in `text`, in a stable order."""
    return [k for k, v in sorted(values.items()) if value_pattern(k, v).search(text)]


def source_port(source: str) -> tuple[str, int]:
    """"tcp/22" or "udp/1900 ssdp" -> ("tcp", 22)."""
    transport, rest = source.split("/", 1)
    return transport, int(rest.split()[0])


@dataclass
class DisclosureJudgement:
    found: dict[str, list[str]] = field(default_factory=dict)  # source -> kinds found
    allowed: dict[str, list[str]] = field(default_factory=dict)  # source -> kinds its interface may disclose
    problems: list[str] = field(default_factory=list)


def judge_disclosures(said: dict[str, str], values: dict[str, str], ixit: Ixit) -> DisclosureJudgement:
    """One problem per source that reveals a value its 15-Intf entry does not allow (an undocumented
    listener may reveal nothing). CertlabError if a value was found on an interface whose
    `discloses` the IXIT does not state: the lab cannot judge without it."""
    by_port = {(i.transport, i.port): i for i in ixit.intf if i.port is not None and i.transport is not None}
    for api in ixit.ext_api:
        if api.port is not None and api.transport is not None:
            by_port.setdefault((api.transport, api.port), ixit.interface(api.interface))
    judged = DisclosureJudgement()
    unstated: list[str] = []
    for source, text in sorted(said.items()):
        kinds = find_values(text, values)
        if not kinds:
            continue
        judged.found[source] = kinds
        intf = by_port.get(source_port(source))
        if intf is not None and intf.discloses is None:
            unstated.append(intf.id)
            continue
        allowed = set(intf.discloses) if intf is not None else set()
        judged.allowed[source] = sorted(allowed)
        extra = [k for k in kinds if k not in allowed]
        if extra:
            where = f"15-Intf {intf.id}" if intf is not None else "an interface IXIT 15-Intf does not document"
            shown = ", ".join(f"{k} {values[k]!r}" for k in extra)
            judged.problems.append(f"{source} ({where}) discloses {shown} before authentication: {text[:160]!r}")
    if unstated:
        ids = ", ".join(sorted(set(unstated)))
        raise CertlabError(f"ixit: 15-Intf {ids}: `discloses` is not stated, but the interface reveals "
                           f"{', '.join(sorted({k for s in judged.found.values() for k in s}))} without authentication; "
                           "add discloses: [model, serial, mac, firmware_version ...] (the values it may reveal; [] for none)")
    return judged
