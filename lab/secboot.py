"""Judging secure boot (5.7-1-2) and the response to tampering (5.7-2-2) from what the lab saw.

Pure logic, no bench: the suite places the images, reboots the DUT and hands over the boot log, the
versions, the status command's output and the captured flows. Every expectation comes from
IXIT 20-SecBoot (refusal_pattern, tamper_alert) and 11-ComMech.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lab.errors import CertlabError
from lab.firmware import FirmwareImage
from lab.ixit import ComMech, Ixit, SecBoot

ROLE_PREFERENCE = ("older", "newer", "current")


def secure_boot_entry(ixit: Ixit) -> SecBoot:
    """The 20-SecBoot entry that tells the lab how to place an image and what a refusal looks like."""
    usable = [e for e in ixit.sec_boot if e.test_placement and e.refusal_pattern]
    if not usable:
        raise CertlabError("ixit: 20-SecBoot: no entry gives test_placement (how the lab puts an image into the "
                           "inactive slot and boots it) and refusal_pattern (the boot log line of a refused image); "
                           "the lab cannot test secure boot unattended (add them, or test by hand)")
    return usable[0]


def base_release(headers: dict[str, FirmwareImage], running: str) -> str:
    """The release role to forge the bad images from: one whose version differs from the running one, so
    that a DUT booting the forged image shows it by its version."""
    for role in ROLE_PREFERENCE:
        if role in headers and headers[role].version != running:
            return role
    raise CertlabError(f"ixit: test_facts.update_images: every release file has the running version {running}; "
                       "the lab needs one of another version to tell a forged image from the running firmware")


@dataclass(frozen=True)
class BootOutcome:
    """One placement of a forged image and the boot that followed."""

    image: str  # in words
    forged_version: str
    before: str
    after: str
    refusal_lines: tuple[str, ...]  # boot log lines matching the IXIT's refusal_pattern

    def problem(self) -> str | None:
        """What the DUT did wrong, or None (it refused the image as documented and kept its firmware)."""
        if self.after == self.forged_version and self.forged_version != self.before:
            return f"the DUT booted {self.image} (it now runs {self.after}; before it ran {self.before})"
        if self.after != self.before:
            return (f"after booting {self.image} the DUT runs {self.after}, neither its firmware {self.before} nor the "
                    f"forged {self.forged_version}")
        if not self.refusal_lines:
            return (f"after {self.image} was placed and booted, the boot log shows no refusal as 20-SecBoot "
                    "documents it (refusal_pattern)")
        return None


def refusal_lines(boot_log: str, pattern: str) -> tuple[str, ...]:
    return tuple(m.group(0) for m in re.finditer(pattern, boot_log))


@dataclass(frozen=True)
class AlertOutcome:
    """What the DUT showed after the tamper attempt."""

    console_alert: tuple[str, ...]  # console lines matching console_pattern (empty if none or not documented)
    status_output: str | None  # the status command's output (None if not documented)
    status_matches: bool
    suspended_flows: tuple[str, ...] = field(default=())  # flows of mechanisms documented as suspended

    def problems(self, *, console_documented: bool, status_documented: bool) -> list[str]:
        out = []
        if console_documented and not self.console_alert:
            out.append("no tamper alert on the console (20-SecBoot tamper_alert.console_pattern)")
        if status_documented and not self.status_matches:
            out.append(f"the tamper status does not report the event: {(self.status_output or '').strip()[:200]!r}")
        if self.suspended_flows:
            out.append("network use not restricted as documented: " + "; ".join(self.suspended_flows[:5]))
        return out


def suspended_mechanisms(ixit: Ixit, ids: Iterable[str]) -> list[ComMech]:
    """The 11-ComMech entries 20-SecBoot says are suspended, each with the port and transport to match."""
    mechs = []
    known = {m.id: m for m in ixit.com_mech}
    for ident in ids:
        mech = known.get(ident)
        if mech is None:
            raise CertlabError(f"ixit: 20-SecBoot tamper_alert.suspended_mechanisms: {ident!r} is not an id in "
                               f"11-ComMech; use one of: {', '.join(known) or '(none defined)'}")
        if mech.port is None or mech.transport is None:
            raise CertlabError(f"ixit: 11-ComMech {ident!r}: port and transport are needed to see it in a capture")
        mechs.append(mech)
    return mechs


def flows_of(flows, mechs: list[ComMech], dut_address: str) -> tuple[str, ...]:
    """Names of the captured flows the DUT opened to a suspended mechanism's port."""
    hits = []
    for flow in flows:
        for mech in mechs:
            if (flow.transport == mech.transport and flow.server[1] == mech.port and flow.client[0] == dut_address):
                hits.append(f"{mech.id}: {flow.name}")
    return tuple(hits)
