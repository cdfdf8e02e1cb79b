"""The simulated TH-100's radio co-processor update, unverified slot placement and boot-time
verification (lab/sim/updater.py), conforming and with the issue-16 flaws of engineer D."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab import firmware
from lab.sim import vendor
from lab.sim.flash import Flash
from lab.sim.updater import (BootState, RadioAgent, place_unverified, radio_image, read_boot_state, select_boot,
                             slot_path, write_boot_state)

MODEL = "TH-100"
RADIO = vendor.component_model(MODEL, vendor.RADIO)


def _radio(tmp_path: Path, flaws=()) -> tuple[RadioAgent, list[str]]:
    flash = Flash(tmp_path)
    said: list[str] = []
    return RadioAgent(flash, RADIO, vendor.vendor_public_key_hex(), frozenset(flaws)), said


@pytest.mark.parametrize("flaws, unsigned_installs", [((), False), (("component_update_unsigned",), True)])
def test_radio_agent_checks_what_it_installs(tmp_path: Path, flaws, unsigned_installs: bool) -> None:
    agent, said = _radio(tmp_path, flaws)
    newer = vendor.build_release(RADIO, "2.2.0", 3, size=512)
    older = vendor.build_release(RADIO, "2.0.0", 1, size=512)
    assert agent.install(firmware.flip_payload_byte(newer), said.append) == 1
    assert agent.install(firmware.resign(newer, Ed25519PrivateKey.generate()), said.append) == 1
    assert agent.install(vendor.build_release(MODEL, "1.5.0", 4, size=512), said.append) == 1  # main firmware: not a radio image
    assert (agent.install(firmware.strip_signature(newer), said.append) == 0) is unsigned_installs
    assert agent.install(newer, said.append) == 0 and radio_image(agent.flash).version == "2.2.0"
    assert agent.install(older, said.append) == 1 and "older than installed 3" in said[-1]  # anti-rollback
    assert json.loads(agent.flash.read("radio/state.json")) == {"security_counter": 3}


def _two_slots(tmp_path: Path) -> Flash:
    flash = Flash(tmp_path)
    flash.mkdir("slots")
    flash.write_atomic(slot_path("a"), vendor.build_release(MODEL, "1.5.0", 4, size=1024))
    write_boot_state(flash, BootState("a", 4))
    return flash


@pytest.mark.parametrize("flaws, boots_forged", [((), False), (("secure_boot_bypass",), True)])
@pytest.mark.parametrize("forge", ["tampered", "foreign"])
def test_an_image_placed_unverified_is_verified_at_boot(tmp_path: Path, flaws, boots_forged: bool, forge: str) -> None:
    flash = _two_slots(tmp_path)
    genuine = vendor.build_release(MODEL, "1.2.0", 2, size=1024)
    bad = firmware.flip_payload_byte(genuine) if forge == "tampered" else firmware.resign(genuine, Ed25519PrivateKey.generate())
    assert place_unverified(flash, bad, running="a") == "b" and read_boot_state(flash).active == "b"
    choice = select_boot(flash, model=MODEL, flaws=flaws, vendor_pubkey=vendor.vendor_public_key_hex())
    if boots_forged:
        assert (choice.slot, choice.image.version, choice.refused) == ("b", "1.2.0", ())
    else:
        why = "payload hash mismatch" if forge == "tampered" else "bad signature"
        assert (choice.slot, choice.image.version, choice.refused) == ("a", "1.5.0", (("b", why),))
        assert f"## Checking image in slot b ... BAD ({why})" in choice.lines


def test_a_torn_slot_is_no_tamper_event(tmp_path: Path) -> None:
    flash = _two_slots(tmp_path)
    place_unverified(flash, vendor.build_release(MODEL, "1.2.0", 2, size=1024)[:300], running="a")
    choice = select_boot(flash, model=MODEL, flaws=(), vendor_pubkey=vendor.vendor_public_key_hex())
    assert choice.slot == "a" and choice.refused == ()


def test_the_vendor_publishes_the_radio_releases(tmp_path: Path) -> None:
    index = json.loads(vendor.write_releases(tmp_path, MODEL, size=1024).read_text())
    assert [r["file"] for r in index["components"]] == [f"{RADIO}-2.0.0.clfw", f"{RADIO}-2.1.0.clfw", f"{RADIO}-2.2.0.clfw"]
    img = firmware.parse_image((tmp_path / f"{RADIO}-2.2.0.clfw").read_bytes())
    assert img.model == RADIO and firmware.verify_signature(img, index["vendor_pubkey"])
