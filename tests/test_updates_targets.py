"""lab.updates: which mechanisms 5.3-1-2 attacks, and the attack images (no bench)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab import firmware
from lab.errors import CertlabError
from lab.ixit import Ixit, load_ixit
from lab.sim import vendor
from lab.updates import ATTACKS, attack, main_mechanism, rollback_problem, update_targets

TH100 = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ixit.yaml"


@pytest.fixture(scope="module")
def ixit() -> Ixit:
    return load_ixit(TH100)


def _with(ixit: Ixit, **changes) -> Ixit:
    data = ixit.model_dump(by_alias=True)
    data.update(copy.deepcopy(changes))
    return Ixit.model_validate(data)


def test_every_component_mechanism_is_a_target(ixit):
    targets = update_targets(ixit, ixit.test_facts)
    assert [(t.mech.id, t.components, t.reboots) for t in targets] == [
        ("fw-update", ("firmware",), True), ("radio-update", ("radio-firmware",), False)]
    main, radio = targets
    assert main.images_field == "test_facts.update_images" and main.version_command == "version"
    assert radio.image_file("newer") == "TH-100-radio-2.2.0.clfw"
    assert radio.version_in("radio firmware 2.1.0 (security version 2)") == "2.1.0"
    assert "radio-firmware" in radio.name and "radio-update" in radio.name


def test_main_mechanism_leaves_out_the_components(ixit):
    assert main_mechanism(ixit).id == "fw-update"
    facts = ixit.test_facts.model_copy(update={"component_updates": {}})
    with pytest.raises(CertlabError, match="2 mechanisms can be driven .*component_updates"):
        main_mechanism(ixit, facts)


def test_a_component_without_facts_is_named(ixit):
    facts = ixit.test_facts.model_copy(update={"component_updates": {}})
    with pytest.raises(CertlabError, match="2 mechanisms can be driven"):
        update_targets(ixit, facts)
    comps = [c.model_dump() for c in ixit.soft_comp]
    mechs = [m.model_dump() for m in ixit.upd_mech]
    mechs[1]["delivery"]["method"] = "ota"
    bad = _with(ixit, **{"6-SoftComp": comps, "7-UpdMech": mechs})
    with pytest.raises(CertlabError, match="7-UpdMech radio-update .*cannot deliver images to it unattended"):
        update_targets(bad, bad.test_facts)


def test_a_missing_image_role_names_the_field(ixit):
    radio = update_targets(ixit, ixit.test_facts)[1]
    with pytest.raises(CertlabError, match=r"test_facts.component_updates.radio-update.images has no 'current' image"):
        radio.image_file("current")


def test_no_updatable_component_is_inconclusive(ixit):
    comps = [{"id": "rom", "description": "ROM", "update_mechanisms": [], "justification": "mask ROM"}]
    bare = _with(ixit, **{"6-SoftComp": comps})
    with pytest.raises(CertlabError, match="6-SoftComp names no update mechanism"):
        update_targets(bare, bare.test_facts)


def test_attack_images_are_what_they_say():
    genuine = vendor.build_release("TH-100-radio", "2.2.0", 3, size=512)
    key = Ed25519PrivateKey.generate()
    made = {a.name: firmware.parse_image(a.craft(genuine, key)) for a in ATTACKS}
    pub = vendor.vendor_public_key_hex()
    assert made["unsigned"].signature is None
    assert firmware.verify_signature(made["tampered"], pub) and not firmware.payload_matches(made["tampered"])
    assert not firmware.verify_signature(made["wrong-key"], pub) and firmware.verify_signature(made["wrong-key"],
                                                                                               firmware.public_key_hex(key))
    assert attack("tampered").accepted_means.startswith("an image whose payload")


def test_rollback_needs_a_lower_security_version():
    older = firmware.parse_image(vendor.build_release("M", "1.2.0", 2, size=64))
    newer = firmware.parse_image(vendor.build_release("M", "1.5.0", 4, size=64))
    assert rollback_problem(older, newer, "f") is None
    assert "no rollback attack" in rollback_problem(newer, older, "test_facts.x")
