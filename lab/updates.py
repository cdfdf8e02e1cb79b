"""Which update mechanisms a product has, and the attacks a lab runs against each (5.3-1-2, 5.3-2-2).

Pure logic, no bench: the suites drive the DUT. IXIT 6-SoftComp names each software component and
its 7-UpdMech mechanisms; the lab drives a mechanism it can reach unattended (files over SFTP/SCP
and an apply command). The main firmware's mechanism is described by test_facts.update_images and
version_command; every other component's by test_facts.component_updates[<7-UpdMech id>].

    main_mechanism(ixit, facts)          # the one 5.3-2-2 attacks
    update_targets(ixit, facts)          # every component's mechanism (5.3-1-2)
    ATTACKS                              # unsigned, tampered, wrong key: how each image is made
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.errors import CertlabError
from lab.firmware import FirmwareImage, flip_payload_byte, resign, strip_signature
from lab.ixit import Ixit, UpdMech


@dataclass(frozen=True)
class UpdateTarget:
    """One update mechanism as the lab drives it: how to read the version it changes, its release files."""

    mech: UpdMech
    components: tuple[str, ...]  # 6-SoftComp ids it updates
    version_command: str
    version_pattern: str
    images: dict[str, str]  # role -> release file in firmware_dir
    images_field: str  # where the IXIT gives those files (for messages)
    reboots: bool  # installing reboots the device

    @property
    def name(self) -> str:
        return f"{'/'.join(self.components) or self.mech.id} (7-UpdMech {self.mech.id})"

    def image_file(self, role: str) -> str:
        name = self.images.get(role)
        if not name:
            raise CertlabError(f"ixit: {self.images_field} has no {role!r} image; ask the manufacturer for one "
                               "(roles: newer, older)")
        return name

    def version_in(self, text: str) -> str | None:
        match = re.search(self.version_pattern, text)
        return match.group("version") if match else None


def drivable(mech: UpdMech) -> bool:
    """Files over SFTP/SCP to a documented path, then a documented apply command."""
    d = mech.delivery
    return bool(d and d.method in ("sftp", "scp") and d.upload_path and d.apply_command)


def _components(facts: Any) -> dict[str, Any]:
    return dict(facts.component_updates or {}) if facts is not None else {}


def main_mechanism(ixit: Ixit, facts: Any = None) -> UpdMech:
    """The main firmware's 7-UpdMech entry: the drivable one that test_facts.component_updates does not name."""
    named = _components(facts if facts is not None else ixit.test_facts)
    usable = [m for m in ixit.upd_mech if drivable(m) and m.id not in named]
    if not usable:
        raise CertlabError("ixit: 7-UpdMech: no update mechanism with delivery.method sftp/scp, upload_path and "
                           "apply_command; the lab cannot deliver updates unattended (test this mechanism by hand)")
    if len(usable) > 1:
        raise CertlabError(f"ixit: 7-UpdMech: {len(usable)} mechanisms can be driven ({', '.join(m.id for m in usable)}) "
                           "but test_facts.update_images does not say which one its images are for; name the "
                           "others in test_facts.component_updates")
    return usable[0]


def update_targets(ixit: Ixit, facts: Any) -> list[UpdateTarget]:
    """Every 7-UpdMech entry a 6-SoftComp component names, as the lab drives it (IXIT order).

    A mechanism the lab cannot drive, or whose component facts are missing, is a CertlabError
    naming the field: 5.3-1-2 must attack every component's mechanism, so it cannot skip one.
    """
    named = _components(facts)
    by_mech: dict[str, list[str]] = {}
    for comp in ixit.soft_comp:
        for mech_id in comp.update_mechanisms:
            by_mech.setdefault(mech_id, []).append(comp.id)
    if not by_mech:
        raise CertlabError("ixit: 6-SoftComp names no update mechanism for any component; the ICS puts 5.3-1 in "
                           "scope, so the lab has nothing to test (answer 5.3-1 in the ICS, or list the mechanisms)")
    main: UpdMech | None = None
    targets = []
    for mech_id, comps in by_mech.items():
        mech = ixit.update_mechanism(mech_id)
        if not drivable(mech):
            raise CertlabError(f"ixit: 7-UpdMech {mech_id} (component {', '.join(comps)}): delivery is not sftp/scp with "
                               "upload_path and apply_command; the lab cannot deliver images to it unattended "
                               "(test this component by hand)")
        if mech_id in named:
            cu = named[mech_id]
            targets.append(UpdateTarget(mech, tuple(comps), cu.version_command, cu.version_pattern, dict(cu.images),
                                        f"test_facts.component_updates.{mech_id}.images", cu.reboots))
            continue
        main = main or main_mechanism(ixit, facts)
        if mech.id != main.id:
            raise CertlabError(f"ixit: test_facts.component_updates has no entry {mech_id!r} (component "
                               f"{', '.join(comps)}); the lab needs its version command, version pattern and release "
                               "files to attack it")
        targets.append(UpdateTarget(mech, tuple(comps), facts.version_command, facts.version_pattern,
                                    dict(facts.update_images or {}), "test_facts.update_images", True))
    return targets


# --- the attack images ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """One bad image made from a genuine release: what it is, what accepting it means, how it is made."""

    name: str
    image: str  # "the newer release without its signature"
    accepted_means: str  # "an image with no signature"
    craft: Callable[[bytes, Ed25519PrivateKey], bytes]


ATTACKS: tuple[Attack, ...] = (
    Attack("unsigned", "the newer release without its signature", "an image with no signature",
           lambda data, _key: strip_signature(data)),
    Attack("tampered", "the newer release with one payload byte flipped",
           "an image whose payload no longer matches its signed hash (one byte flipped)",
           lambda data, _key: flip_payload_byte(data)),
    Attack("wrong-key", "the newer release re-signed with a lab-made key", "an image signed with a key that is not the vendor's",
           lambda data, key: resign(data, key)),
)


def attack(name: str) -> Attack:
    return next(a for a in ATTACKS if a.name == name)


def rollback_problem(older: FirmwareImage, newer: FirmwareImage, field: str) -> str | None:
    """Why no rollback attack can be made from these two releases, or None."""
    if older.security_version >= newer.security_version:
        return (f"{field}: older {older.version} has security version {older.security_version}, not below newer "
                f"{newer.version} ({newer.security_version}); no rollback attack can be made")
    return None
