"""Open ports against the IXIT: which (transport, port) pairs it documents, and which open ones it does not.

5.6-1-2 judges a scan by this comparison; kept apart from the scan itself so the judgement is
unit-tested on an IXIT and a list of ports, without a network.
"""

from __future__ import annotations

from lab.ixit import Ixit


def documented_ports(ixit: Ixit) -> dict[tuple[str, int], dict]:
    """(transport, port) -> what the IXIT says about it (15-Intf network entries, 28-ExtAPI)."""
    docs: dict[tuple[str, int], dict] = {}
    for intf in ixit.intf:
        if intf.port is not None and intf.transport is not None:
            docs[(intf.transport, intf.port)] = {"id": intf.id, "status": intf.status, "protocol": intf.protocol}
    for api in ixit.ext_api:
        if api.port is not None and api.transport is not None and (api.transport, api.port) not in docs:
            status = ixit.interface(api.interface).status
            docs[(api.transport, api.port)] = {"id": f"28-ExtAPI {api.id}", "status": status, "protocol": api.protocol}
    return docs


def undocumented_open(found: list[tuple[str, int]], docs: dict[tuple[str, int], dict],
                      banners: dict[str, str]) -> list[str]:
    """One problem per open port the IXIT does not document, or documents as disabled, named by its banner."""
    problems: list[str] = []
    for key in found:
        doc = docs.get(key)
        where = f"{key[0]}/{key[1]}"
        banner = banners.get(where, "")
        said = f", banner {banner!r}" if banner and not banner.startswith("(") else ""
        if doc is None:
            problems.append(f"undocumented open port {where}{said} (not in IXIT 15-Intf)")
        elif doc["status"] == "disabled":
            problems.append(f"{where} is open but IXIT 15-Intf {doc['id']} says it is disabled{said}")
    return problems
