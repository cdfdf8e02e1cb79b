"""The device's update agent and A/B boot selection.

Both live here because they must agree on what a valid slot is: the agent installs an image into
the inactive slot and switches `boot.json` only once the image is safely on flash; the boot
loader verifies the active slot (signature under the vendor key, payload hash) and falls back to
the other one. Flaws weaken exactly the check
they name (lab/flaws.py); everything else stays as a conforming device does it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lab.errors import FirmwareFormatError
from lab.firmware import FirmwareImage, parse_image, payload_matches, verify_signature
from lab.sim.flash import Flash, FlashError

SLOTS = ("a", "b")
BOOT_JSON = "boot.json"
WRITE_CHUNKS = 32


@dataclass(frozen=True)
class BootState:
    """What `boot.json` says: the slot to boot and the anti-rollback counter."""

    active: str = "a"
    security_counter: int = 0


def slot_path(slot: str) -> str:
    return f"slots/{slot}.img"


def other_slot(slot: str) -> str:
    return "b" if slot == "a" else "a"


def read_boot_state(flash: Flash) -> BootState:
    try:
        raw = json.loads(flash.read(BOOT_JSON))
        active = raw.get("active", "a")
        return BootState(active if active in SLOTS else "a", int(raw.get("security_counter", 0)))
    except (FlashError, ValueError, TypeError, AttributeError):
        return BootState()


def write_boot_state(flash: Flash, state: BootState) -> None:
    body = {"active": state.active, "security_counter": state.security_counter}
    flash.write_atomic(BOOT_JSON, (json.dumps(body, sort_keys=True) + "\n").encode())


def load_slot(flash: Flash, slot: str, *, model: str, public_key: str | None,
              check_payload: bool = True) -> tuple[FirmwareImage | None, str]:
    """(image, "") if `slot` holds a bootable image, else (None, reason).

    Bootable: parses, is for this model, carries a signature valid under `public_key` (the vendor
    release key built into the loader; None skips the check) and its payload matches the signed hash.
    """
    try:
        img = parse_image(flash.read(slot_path(slot)))
    except FlashError:
        return None, "empty"
    except FirmwareFormatError as exc:
        return None, f"corrupt ({exc})"
    if img.model != model:
        return None, f"wrong model {img.model}"
    if public_key is not None and not verify_signature(img, public_key):
        return None, "unsigned" if img.signature is None else "bad signature"
    if check_payload and not payload_matches(img):
        return None, "payload hash mismatch"
    return img, ""


#: Why a well-formed image failed verification: an unauthorised change (5.7-2), not a torn write.
VERIFICATION_FAILURES = ("unsigned", "bad signature", "payload hash mismatch")


@dataclass(frozen=True)
class BootChoice:
    """What the loader decided: the slot and image to boot (None: halted), its log lines, and the
    slots it refused because their image failed verification (slot, why)."""

    slot: str | None
    image: FirmwareImage | None
    lines: list[str]
    refused: tuple[tuple[str, str], ...] = ()


def select_boot(flash: Flash, *, model: str, flaws: Iterable[str], vendor_pubkey: str) -> BootChoice:
    """The boot loader. It verifies the slot's signature under the vendor key and its payload hash,
    as TH-100's IXIT (20-SecBoot) says, and falls back to the other slot (boot.json is left as it
    is: the running system knows its booted slot and never writes over it).

    With `unsigned_update_accepted` the product checks no signature anywhere, with
    `tampered_update_accepted` it trusts the header and never hashes the payload; with
    `secure_boot_bypass` the loader boots any image for this model unverified; with
    `update_bricks_on_power_loss` it has a single slot: no fallback.
    """
    flaws = set(flaws)
    state = read_boot_state(flash)
    bypass = "secure_boot_bypass" in flaws
    key = None if "unsigned_update_accepted" in flaws or bypass else vendor_pubkey
    check = "tampered_update_accepted" not in flaws and not bypass
    order = [state.active] if "update_bricks_on_power_loss" in flaws else [state.active, other_slot(state.active)]
    lines: list[str] = []
    refused: list[tuple[str, str]] = []
    for slot in order:
        img, why = load_slot(flash, slot, model=model, public_key=key, check_payload=check)
        if img is not None:
            lines.append(f"## Checking image in slot {slot} ... OK ({img.version})")
            if slot != state.active:
                lines.append(f"## Warning: slot {state.active} is not bootable, falling back to slot {slot}")
            lines.append(f"Booting slot {slot}")
            return BootChoice(slot, img, lines, tuple(refused))
        lines.append(f"## Checking image in slot {slot} ... BAD ({why})")
        if why in VERIFICATION_FAILURES:
            refused.append((slot, why))
    lines.append("## Error: no bootable image found, halting")
    return BootChoice(None, None, lines, tuple(refused))


def choose_boot_slot(
    flash: Flash, *, model: str, flaws: Iterable[str], vendor_pubkey: str
) -> tuple[str | None, FirmwareImage | None, list[str]]:
    """(slot, image, boot-loader lines) of `select_boot`; slot is None when nothing is bootable."""
    choice = select_boot(flash, model=model, flaws=flaws, vendor_pubkey=vendor_pubkey)
    return choice.slot, choice.image, choice.lines


def place_unverified(flash: Flash, data: bytes, running: str | None) -> str:
    """The documented service write (IXIT 20-SecBoot test_placement): `data` goes as it is into the
    slot the device is not running, which is selected for the next boot; the loader decides whether
    it runs."""
    state = read_boot_state(flash)
    slot = other_slot(running or state.active)
    flash.mkdir("slots", exist_ok=True)
    flash.write_atomic(slot_path(slot), data)
    write_boot_state(flash, BootState(slot, state.security_counter))
    return slot


@dataclass(frozen=True)
class UpdateAgent:
    """Checks and installs one image. `say` prints a line to whoever ran `update`."""

    flash: Flash
    model: str
    vendor_pubkey: str
    flaws: frozenset[str]
    write_seconds: float = 1.0
    lock: threading.Lock = field(default_factory=threading.Lock)  # one update at a time
    running_slot: str | None = None  # the slot the loader booted (after a fallback not boot.json's)

    def install(self, data: bytes, say: Callable[[str], None]) -> int:
        """0 if installed (the caller reboots), 1 if rejected."""
        if not self.lock.acquire(blocking=False):
            say("update: rejected: another update is in progress")
            return 1
        try:
            return self._install(data, say)
        finally:
            self.lock.release()

    def _install(self, data: bytes, say: Callable[[str], None]) -> int:
        try:
            img = parse_image(data)
        except FirmwareFormatError:
            say("update: rejected: not a firmware image")
            return 1
        if img.model != self.model:
            say(f"update: rejected: image is for model {img.model}, this device is {self.model}")
            return 1
        if "unsigned_update_accepted" not in self.flaws and not verify_signature(img, self.vendor_pubkey):
            say("update: rejected: bad signature")
            return 1
        if "tampered_update_accepted" not in self.flaws and not payload_matches(img):
            say("update: rejected: payload does not match its signed hash")
            return 1
        state = read_boot_state(self.flash)
        if "rollback_allowed" not in self.flaws and img.security_version < state.security_counter:
            say(
                f"update: rejected: security version {img.security_version} is older than "
                f"installed {state.security_counter} (rollback)"
            )
            return 1
        in_place = "update_bricks_on_power_loss" in self.flaws
        running = self.running_slot or state.active
        slot = running if in_place else other_slot(running)
        say(f"update: writing {img.version} to slot {slot} ...")
        self.flash.mkdir("slots", exist_ok=True)
        # Open(O_TRUNC) + chunked writes + fsync: a cut before the fsync leaves this slot unusable.
        self.flash.write_in_place(
            slot_path(slot), data, seconds=self.write_seconds, chunks=WRITE_CHUNKS, fsync=True
        )
        write_boot_state(
            self.flash, BootState(slot, max(state.security_counter, img.security_version))
        )
        say(f"update: installed {img.version} in slot {slot}; rebooting")
        return 0


# --- the radio co-processor: a second updatable component (IXIT 7-UpdMech radio-update) ----------

RADIO_IMAGE = "radio/firmware.img"
RADIO_STATE = "radio/state.json"


def radio_image(flash: Flash) -> FirmwareImage | None:
    try:
        return parse_image(flash.read(RADIO_IMAGE))
    except (FlashError, FirmwareFormatError):
        return None


@dataclass(frozen=True)
class RadioAgent:
    """Checks and installs a radio firmware image in place (written atomically); the co-processor
    restarts on its own, the device does not reboot. Its images carry `model` = `<device>-radio`.

    With `component_update_unsigned` the agent checks a signature only when the image has one: an
    image without any installs.
    """

    flash: Flash
    model: str
    vendor_pubkey: str
    flaws: frozenset[str]

    def install(self, data: bytes, say: Callable[[str], None]) -> int:
        """0 if installed, 1 if rejected."""
        try:
            img = parse_image(data)
        except FirmwareFormatError:
            say("radio-update: rejected: not a firmware image")
            return 1
        if img.model != self.model:
            say(f"radio-update: rejected: image is for {img.model}, this radio is {self.model}")
            return 1
        lax = "component_update_unsigned" in self.flaws and img.signature is None
        if not lax and not verify_signature(img, self.vendor_pubkey):
            say("radio-update: rejected: bad signature")
            return 1
        if not payload_matches(img):
            say("radio-update: rejected: payload does not match its signed hash")
            return 1
        counter = self.security_counter()
        if img.security_version < counter:
            say(f"radio-update: rejected: security version {img.security_version} is older than installed {counter}")
            return 1
        self.flash.mkdir("radio", exist_ok=True)
        self.flash.write_atomic(RADIO_IMAGE, data)
        self.flash.write_atomic(RADIO_STATE, (json.dumps({"security_counter": max(counter, img.security_version)}) + "\n").encode())
        say(f"radio-update: installed {img.version}; radio co-processor restarted")
        return 0

    def security_counter(self) -> int:
        try:
            return int(json.loads(self.flash.read(RADIO_STATE)).get("security_counter", 0))
        except (FlashError, ValueError, TypeError, AttributeError):
            return 0
