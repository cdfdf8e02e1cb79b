"""What a simulated release's software is: the manifest at the head of its payload.

A real update changes the device's software, so a release can carry behaviour the inventory
never gave the unit (a build that starts a debug service again). A release built with a manifest
starts its payload with one line, b"CLRFS1 " + compact JSON + b"\\n", naming the flaws its
software has and its components; the deterministic filler follows, so the baked-key bytes stay
where lab/sim/vendor.py puts them. Releases without a manifest (every one before issue 20) keep
their bytes and hashes: to the device their payload simply has no manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lab.errors import CertlabError
from lab.flaws import FLAWS, firmware_borne_flaws

MAGIC = b"CLRFS1 "
MAX_MANIFEST_BYTES = 2048  # ends well before the baked key's offset (lab/sim/vendor.py BAKED_KEY_OFFSET)


@dataclass(frozen=True)
class FirmwareManifest:
    """The software a release carries: the firmware-borne flaws it enables and its components (name -> version)."""

    enables: frozenset[str] = frozenset()
    components: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        body = json.dumps({"enables": sorted(self.enables), "components": dict(sorted(self.components.items()))},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        line = MAGIC + body + b"\n"
        if len(line) > MAX_MANIFEST_BYTES:
            raise CertlabError(f"release manifest is {len(line)} bytes, at most {MAX_MANIFEST_BYTES}; "
                               "list fewer or shorter components")
        return line


def check_enables(flaws: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """The flaws a release may carry: firmware-borne ones only (CertlabError naming the first other)."""
    borne = firmware_borne_flaws()
    for flaw in flaws:
        if flaw not in FLAWS:
            raise CertlabError(f"--enable {flaw}: unknown flaw; a release can carry: {', '.join(sorted(borne))}")
        if flaw not in borne:
            raise CertlabError(f"--enable {flaw}: {FLAWS[flaw].what!r} is not the release's software (hardware, boot "
                               f"loader or service side); a release can carry: {', '.join(sorted(borne))}")
    return frozenset(flaws)


def read_manifest(payload: bytes) -> FirmwareManifest | None:
    """The manifest at the head of `payload`, or None (no manifest, or one the device cannot read).

    Read as the device's software would: a malformed manifest starts nothing, and a flaw id that
    is not firmware-borne is ignored rather than trusted.
    """
    if not payload.startswith(MAGIC):
        return None
    end = payload.find(b"\n", 0, MAX_MANIFEST_BYTES)
    if end < 0:
        return None
    try:
        raw = json.loads(payload[len(MAGIC):end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    enables = raw.get("enables") or []
    components = raw.get("components") or {}
    if not isinstance(enables, list) or not isinstance(components, dict):
        return None
    borne = firmware_borne_flaws()
    return FirmwareManifest(frozenset(f for f in enables if isinstance(f, str) and f in borne),
                            {str(k): str(v) for k, v in components.items()})
