"""5.3-10-1's judgement: does the DUT expose a network update mechanism IXIT 7-UpdMech does not declare?

A listener looks like an update or firmware-transfer service by its port (TFTP, the usual way
to push firmware to embedded devices) or by what it says (its banner or web page naming
firmware, update, upgrade, OTA, flashing or an upload). The declared ones are the 15-Intf
interfaces that 7-UpdMech deliveries use (and their 28-ExtAPI ports).
"""

from __future__ import annotations

import re

from lab.ixit import Ixit

#: transport/port of protocols that exist to move firmware onto a device
TRANSFER_PORTS = {("udp", 69): "TFTP", ("tcp", 69): "TFTP", ("udp", 4048): "FOTA (Sierra)",
                  ("tcp", 21): "FTP", ("udp", 3232): "ESP32 ArduinoOTA",
                  ("udp", 8266): "ESP8266 ArduinoOTA"}
# what an update service says of itself; "firmware" alone is not one (a version banner says it too)
UPDATE_WORDS = re.compile(r"\b(fw[-_ ]?(?:up(?:date|grade|load)|upd)|update|upgrade|upload|ota|flash(?:ing)?|"
                          r"fwupd|tftp|swupdate|mender|hawkbit|rauc)\b", re.I)


def update_hint(transport: str, port: int, banner: str) -> str | None:
    """Why this listener looks like an update service, or None. Words count in a TCP service's own
    banner or page only: a discovery answer describes the device, not a service that takes images."""
    known = TRANSFER_PORTS.get((transport, port))
    if known:
        return f"{known} port"
    if transport != "tcp":
        return None
    words = sorted({m.group(0).lower() for m in UPDATE_WORDS.finditer(banner or "")})
    return f"says {', '.join(words)}" if words else None


def declared_update_ports(ixit: Ixit) -> dict[tuple[str, int], str]:
    """(transport, port) -> the 7-UpdMech ids (comma-separated) whose deliveries use that 15-Intf interface."""
    declared: dict[tuple[str, int], str] = {}
    for mech in ixit.upd_mech:
        if mech.delivery is None or mech.delivery.interface is None:
            continue
        intf = ixit.interface(mech.delivery.interface)
        ports = {(intf.transport, intf.port)} if intf.port is not None and intf.transport is not None else set()
        ports |= {(a.transport, a.port) for a in ixit.ext_api
                  if a.interface == intf.id and a.port is not None and a.transport is not None}
        for key in ports:
            declared[key] = f"{declared[key]}, {mech.id}" if key in declared else mech.id
    return declared


def undeclared_update_services(found: list[tuple[str, int]], said: dict[str, str], ixit: Ixit) -> tuple[list[dict], list[str]]:
    """(every listener that looks like an update service, with its hint and declaration; the problems)."""
    declared = declared_update_ports(ixit)
    candidates, problems = [], []
    for transport, port in found:
        where = f"{transport}/{port}"
        banner = next((text for source, text in said.items() if source.split()[0] == where), "")
        hint = update_hint(transport, port, banner)
        if hint is None:
            continue
        mech = declared.get((transport, port))
        candidates.append({"port": where, "banner": banner, "why": hint, "declared_by": mech})
        if mech is None:
            problems.append(f"{where} looks like a network update service ({hint}; banner {banner[:120]!r}) "
                            "but no IXIT 7-UpdMech delivery uses it")
    return candidates, problems
