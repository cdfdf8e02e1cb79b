"""The simulated manufacturer's release tools: manifest-carrying images, their SBOM, advisories."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import CertlabError
from lab.firmware import parse_image, verify_signature
from lab.flaws import FLAWS, firmware_borne_flaws
from lab.ixit import load_ixit
from lab.sim import publish, vendor
from lab.sim.device import software_flaws
from lab.sim.fwmanifest import MAGIC, FirmwareManifest, check_enables, read_manifest

#: SHA-256 of releases built before manifests existed: they must never change (devices, tests and
#: reports pin them).
PINNED = {
    ("TH-100", "1.4.0", 3): "0bbb9a5e2e1452d36ae7129bd3b57bb3a93d62fdedb272ef7eeb1aa38b2d9946",
}


def test_releases_without_a_manifest_keep_their_bytes():
    for (model, version, sv), digest in PINNED.items():
        data = vendor.build_release(model, version, sv)
        assert hashlib.sha256(data).hexdigest() == digest
        assert read_manifest(parse_image(data).payload) is None
        assert software_flaws(parse_image(data)) == frozenset()


def test_a_manifest_round_trips_and_leaves_the_baked_key_where_it_was():
    manifest = FirmwareManifest(frozenset({"open_debug_service"}), {"openssl": "3.0.16", "busybox": "1.36.1"})
    data = vendor.build_release("TH-100", "1.5.0", 4, manifest=manifest)
    image = parse_image(data)
    assert image.payload.startswith(MAGIC)
    assert read_manifest(image.payload) == manifest
    assert software_flaws(image) == {"open_debug_service"}
    plain = vendor.release_payload("TH-100", "1.5.0")
    at = vendor.BAKED_KEY_OFFSET
    assert image.payload[at:at + 64] == plain[at:at + 64]
    assert len(image.payload) == len(plain)
    assert verify_signature(image, vendor.vendor_public_key_hex())
    assert data == vendor.build_release("TH-100", "1.5.0", 4, manifest=manifest)  # deterministic


def test_a_device_ignores_an_unreadable_manifest_or_a_flaw_that_is_not_software():
    assert read_manifest(MAGIC + b"{not json\n" + b"\0" * 10) is None
    assert read_manifest(MAGIC + b"no newline") is None
    forged = MAGIC + json.dumps({"enables": ["rollback_allowed", "open_debug_service"]}).encode() + b"\n"
    assert read_manifest(forged).enables == {"open_debug_service"}


def test_only_firmware_borne_flaws_can_be_enabled():
    borne = firmware_borne_flaws()
    assert {"open_debug_service", "cleartext_telnet_login", "undocumented_update_service"} <= borne
    assert "rollback_allowed" not in borne and "secure_boot_bypass" not in borne
    assert check_enables(["open_debug_service"]) == {"open_debug_service"}
    with pytest.raises(CertlabError, match="--enable rollback_allowed: .*not the release's software"):
        check_enables(["rollback_allowed"])
    with pytest.raises(CertlabError, match="--enable nope: unknown flaw"):
        check_enables(["nope"])
    assert all(FLAWS[f].firmware_borne for f in borne)


def test_sbom_is_strict_cyclonedx_1_6_listing_the_firmware_components():
    components = vendor.firmware_components("1.5.0")
    assert components[vendor.APP_COMPONENT] == "1.5.0"
    assert vendor.firmware_components("1.4.1")["openssl"] != components["openssl"]  # releases differ
    text = publish.sbom_json("TH-100", "1.5.0", components)
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert {c["name"]: c["version"] for c in doc["components"]} == components
    assert doc["metadata"]["component"]["name"] == "TH-100"
    again = json.loads(publish.sbom_json("TH-100", "1.5.0", components))
    assert again["serialNumber"] == doc["serialNumber"]  # one release, one BOM serial number


def test_component_options_are_name_at_version():
    assert publish.parse_components(["openssl@3.0.16"]) == {"openssl": "3.0.16"}
    with pytest.raises(CertlabError, match="--component openssl: write NAME@VERSION"):
        publish.parse_components(["openssl"])


def _csaf_errors(doc: dict) -> list[str]:
    """Errors of `doc` against the pinned CSAF 2.0 schema (with the CVSS schemas it references)."""
    import jsonschema
    from referencing import Registry, Resource

    folder = Path(__file__).resolve().parents[1] / "lab" / "records" / "schemas"
    registry = Registry()
    for path in folder.glob("*.json"):
        schema = json.loads(path.read_text())
        registry = registry.with_resource(schema.get("$id", path.name), Resource.from_contents(schema))
    schema = json.loads((folder / "csaf_json_schema.json").read_text())
    return [e.message for e in jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(doc)]


def test_advisory_is_valid_csaf_with_the_versions_of_the_model():
    doc = publish.advisory("TH-100", advisory_id="SIMSA-2026-001", title="Debug service re-enabled",
                           cves=["CVE-2026-10001"], affected=["1.4.0"], fixed=["1.4.1"], published=date(2026, 12, 1))
    assert _csaf_errors(doc) == []
    assert doc["document"]["category"] == "csaf_security_advisory"
    model = doc["product_tree"]["branches"][0]["branches"][0]
    assert model["name"] == "TH-100"
    assert [b["name"] for b in model["branches"]] == ["1.4.0", "1.4.1"]
    status = doc["vulnerabilities"][0]["product_status"]
    assert status == {"known_affected": ["TH-100-1.4.0"], "fixed": ["TH-100-1.4.1"]}
    try:
        from lab.records.csaf import read_advisory, status_of
    except ImportError:  # the records package's reader lands separately
        return
    adv = read_advisory(publish.advisory_json(doc).encode(), model="TH-100")
    assert adv.id == "SIMSA-2026-001" and adv.cves == ("CVE-2026-10001",)
    assert status_of(adv, "1.4.0") == "affected" and status_of(adv, "1.4.1") == "fixed"


@pytest.mark.parametrize("kwargs, message", [
    ({"cves": ["CVE-26-1"]}, "--cve CVE-26-1: not a CVE id"),
    ({"cves": []}, "at least one --cve"),
    ({"affected": ["1.4.0"], "fixed": ["1.4.0"]}, "both --affected and --fixed"),
    ({"affected": [], "fixed": []}, "--affected V and/or --fixed V"),
])
def test_advisory_refuses_bad_options_in_one_line(kwargs, message):
    given = {"advisory_id": "A-1", "title": "t", "cves": ["CVE-2026-1000"], "affected": ["1.4.0"], "fixed": ["1.4.1"],
             "published": date(2026, 12, 1), **kwargs}
    with pytest.raises(CertlabError, match=message):
        publish.advisory("TH-100", **given)


def test_sim_release_and_advisory_commands(tmp_path):
    runner = CliRunner()
    got = runner.invoke(app, ["sim", "release", "TH-100", "1.5.0", "--enable", "open_debug_service",
                              "--component", "openssl@3.0.16", "--out", str(tmp_path)])
    assert got.exit_code == 0, got.output
    image_path, sbom_path = (Path(line) for line in got.output.split())
    image = parse_image(image_path.read_bytes())
    # signed by the key the shipped sim products' IXIT names, security version above the current release
    ixit = load_ixit(Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ixit.yaml")
    assert verify_signature(image, ixit.update_mechanism("fw-update").signature.public_key_hex)
    assert image.security_version == vendor.current_release(vendor.RELEASES).security_version + 1
    assert read_manifest(image.payload).enables == {"open_debug_service"}
    sbom = json.loads(sbom_path.read_text())
    assert {c["name"]: c["version"] for c in sbom["components"]}["openssl"] == "3.0.16"

    refused = runner.invoke(app, ["sim", "release", "TH-100", "1.5.1", "--enable", "secure_boot_bypass",
                                  "--out", str(tmp_path)])
    assert isinstance(refused.exception, CertlabError)  # certlab's main prints it as one line, exit 2
    assert str(refused.exception).startswith("--enable secure_boot_bypass: ")
    assert "\n" not in str(refused.exception) and not list(tmp_path.glob("TH-100-1.5.1*"))

    out = tmp_path / "adv.json"
    got = runner.invoke(app, ["sim", "advisory", "TH-100", "--id", "SIMSA-1", "--title", "x", "--cve", "CVE-2026-1234",
                              "--affected", "1.4.0", "--fixed", "1.4.1", "--published", "2026-12-01", "--out", str(out)])
    assert got.exit_code == 0, got.output
    assert _csaf_errors(json.loads(out.read_text())) == []
