"""The simulated manufacturer: its release signing key and its published firmware releases.

The key is FAKE and PUBLIC: it is derived from the fixed seed below so that every simulated lab,
every test run and every device agrees on it without any key file. Never use it for anything
but the simulator. Release payloads are deterministic too (SHAKE-256 of model and version used
as a pseudo-random generator), so an image built today hashes the same tomorrow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab import resources
from lab.errors import CertlabError
from lab.firmware import build_image, public_key_hex
from lab.sim.fwmanifest import FirmwareManifest

#: Documented seed of the fake vendor key: SHA-256 of this text is the Ed25519 private key.
VENDOR_KEY_SEED_TEXT = b"certlab simulated vendor release key v1 -- FAKE, PUBLIC, NOT A SECRET"
DEFAULT_SIZE = 256 * 1024


@dataclass(frozen=True)
class Release:
    version: str
    security_version: int
    status: str  # "vulnerable", "current", "newer"


#: The releases every simulated model has (oldest first).
RELEASES: tuple[Release, ...] = (
    Release("1.2.0", 2, "vulnerable"),
    Release("1.4.0", 3, "current"),
    Release("1.5.0", 4, "newer"),
)


#: The radio co-processor firmware: a second updatable component with releases of its own, signed
#: by the same vendor key; its images name the component as their model (`component_model`).
RADIO = "radio"
RADIO_SIZE = 64 * 1024
RADIO_RELEASES: tuple[Release, ...] = (
    Release("2.0.0", 1, "vulnerable"),
    Release("2.1.0", 2, "current"),
    Release("2.2.0", 3, "newer"),
)


def component_model(model: str, component: str) -> str:
    """What a component's images carry as their model: `TH-100-radio` (never installable as the main firmware)."""
    return f"{model}-{component}"


def current_release(releases: tuple[Release, ...]) -> Release:
    return next(r for r in releases if r.status == "current")


def vendor_private_key() -> Ed25519PrivateKey:
    """The fake vendor signing key (deterministic from VENDOR_KEY_SEED_TEXT)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(VENDOR_KEY_SEED_TEXT).digest())


def vendor_public_key_hex() -> str:
    return public_key_hex(vendor_private_key())


def security_version_for(version: str, releases: tuple[Release, ...] = RELEASES) -> int:
    """The anti-rollback counter the vendor assigned to `version` (1 for unknown versions)."""
    for rel in releases:
        if rel.version == version:
            return rel.security_version
    return 1


#: Where every release of a model carries the 64 bytes (Ed25519 seed + public key, the libsodium
#: layout) that the `shared_host_key` build uses as its SSH host key. A conforming build never
#: reads them: to it they are payload like the rest, and without the public half they cannot be
#: told from the pseudo-random bytes around them.
BAKED_KEY_OFFSET = 0x1000


def baked_host_key_seed(model: str) -> bytes:
    """The `shared_host_key` build's host key (raw Ed25519 seed): one for every unit and release of `model`."""
    return hashlib.sha256(f"certlab-baked-host-key/{model}".encode()).digest()


def baked_host_key_pem(model: str) -> str:
    """That key in OpenSSH format, as the flawed sshd loads it."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key = Ed25519PrivateKey.from_private_bytes(baked_host_key_seed(model))
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()


def release_payload(model: str, version: str, size: int = DEFAULT_SIZE,
                    manifest: FirmwareManifest | None = None) -> bytes:
    """Deterministic pseudo-random payload keyed by model and version (with the baked key's bytes);
    a `manifest` (the release's software, lab/sim/fwmanifest.py) replaces the payload's first bytes."""
    data = hashlib.shake_256(f"certlab-firmware/{model}/{version}".encode()).digest(size)
    if manifest is not None:
        head = manifest.encode()
        if len(head) > min(size, BAKED_KEY_OFFSET):
            raise CertlabError(f"release manifest ({len(head)} bytes) does not fit a {size}-byte payload")
        data = head + data[len(head):]
    if size < BAKED_KEY_OFFSET + 64:
        return data
    seed = baked_host_key_seed(model)
    baked = seed + Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return data[:BAKED_KEY_OFFSET] + baked + data[BAKED_KEY_OFFSET + 64:]


def build_release(model: str, version: str, security_version: int, size: int = DEFAULT_SIZE,
                  manifest: FirmwareManifest | None = None) -> bytes:
    """A vendor-signed image, identical byte for byte every time it is built."""
    return build_image(
        model=model,
        version=version,
        security_version=security_version,
        payload=release_payload(model, version, size, manifest),
        private_key=vendor_private_key(),
    )


def next_security_version(releases: tuple[Release, ...] = RELEASES) -> int:
    """What a new release gets unless told otherwise: one above the current release's."""
    return current_release(releases).security_version + 1


#: The simulated firmware's third-party components and the release that first shipped each set
#: (oldest first); the thermostat application's version is the release's own. Deterministic, so
#: two builds of one release list the same components.
COMPONENT_SETS: tuple[tuple[str, dict[str, str]], ...] = (
    ("0.0.0", {"u-boot": "2023.04", "linux": "6.1.55", "busybox": "1.36.1", "openssh": "9.2p1",
               "openssl": "3.0.11", "zlib": "1.2.13"}),
    ("1.4.0", {"u-boot": "2023.04", "linux": "6.1.55", "busybox": "1.36.1", "openssh": "9.2p1",
               "openssl": "3.0.13", "zlib": "1.3"}),
    ("1.5.0", {"u-boot": "2023.04", "linux": "6.1.90", "busybox": "1.36.1", "openssh": "9.6p1",
               "openssl": "3.0.15", "zlib": "1.3.1"}),
)
APP_COMPONENT = "thermostat-app"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.replace("-", ".").split("."))


def firmware_components(version: str) -> dict[str, str]:
    """The components (name -> version) of the release `version` of the simulated firmware."""
    chosen = COMPONENT_SETS[0][1]
    for since, components in COMPONENT_SETS:
        if _version_key(version) >= _version_key(since):
            chosen = components
    return {**chosen, APP_COMPONENT: version}


def release_filename(model: str, version: str) -> str:
    return f"{model}-{version}.clfw"


def write_releases(directory: str | Path, model: str, size: int = DEFAULT_SIZE) -> Path:
    """Write every release of `model` and of its radio co-processor into `directory` plus a `releases.json`
    index (the radio's under `components`); returns the index."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    components: list[dict] = []  # the radio's releases: listed apart, `releases` stays the main firmware's
    radio = component_model(model, RADIO)
    for image_model, rel, rsize in [(model, r, size) for r in RELEASES] + [(radio, r, RADIO_SIZE) for r in RADIO_RELEASES]:
        data = build_release(image_model, rel.version, rel.security_version, rsize)
        name = release_filename(image_model, rel.version)
        (out / name).write_bytes(data)
        (entries if image_model == model else components).append(
            {
                "model": image_model,
                "version": rel.version,
                "security_version": rel.security_version,
                "status": rel.status,
                "file": name,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    index = out / "releases.json"
    index.write_text(
        json.dumps({"vendor_pubkey": vendor_public_key_hex(), "releases": entries, "components": components}, indent=2) + "\n"
    )
    return index


# --- the manufacturer's public web site and app service (issue 17) ----------------------------

#: The manufacturer's site and its companion app's API, as the simulated lab serves them.
SITE_HOST = "sim-devices.certlab.test"
API_HOST = "api.sim-devices.certlab.test"
API_PREFIX = "/v1"
SECURITY_CONTACT = "security@sim-devices.certlab.test"
DISCLOSURE_PATH = "/security/disclosure"
SECURITY_TXT_PATH = "/.well-known/security.txt"
#: What the disclosure policy promises (TH-100's IXIT statements quote these phrases).
DISCLOSURE_TIMELINES = ("within 5 working days", "within 90 days")
#: The FAKE, PUBLIC OpenPGP key that signs security.txt (its public half is beside each product's IXIT).
SECURITY_TXT_KEY = resources.sim_data("security-txt-signing-key.asc")


@dataclass(frozen=True)
class SupportPage:
    """One product support page: which models, until when they get security updates, and for a
    product that cannot be updated, why not and how it is replaced (EN 303 645 5.3-13, 5.3-14)."""

    path: str
    models: tuple[str, ...]
    end: str  # the date as the page states it
    rationale: str | None = None  # non-updatable products only
    replacement: str | None = None


SUPPORT_PAGES: tuple[SupportPage, ...] = (
    SupportPage("/support/th-100", ("TH-100", "TH-100T"), "31 December 2030"),
    SupportPage("/support/th-10", ("TH-10",), "31 December 2029",
                rationale="The TH-10 cannot be updated because its firmware is stored in one-time-programmable "
                          "memory and the unit has no update mechanism.",
                replacement="On request before the end of its support period, we send a TH-100 as a free "
                            "replacement unit; ask support@sim-devices.certlab.test."),
)
#: The `support_period_mismatch` flaw: the page states an earlier end than the IXIT.
MISMATCHED_SUPPORT_END = "30 June 2027"
