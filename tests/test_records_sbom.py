"""A release's SBOM: CycloneDX 1.4-1.6 JSON accepted, every bad one refused with its field path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cyclonedx.validation.json  # noqa: F401  imports jsonschema (a second) at collection, not in a test
import pytest

from lab.records.sbom import Component, Sbom, SbomError, purl_without_version, read_sbom, sbom_diff

DATA = Path(__file__).parent / "data" / "records"
V140 = (DATA / "th100-1.4.0.cdx.json").read_bytes()  # CycloneDX 1.5
V141 = (DATA / "th100-1.4.1.cdx.json").read_bytes()  # CycloneDX 1.6, a nested component


def mutated(change) -> bytes:
    doc = json.loads(V141)
    change(doc)
    return json.dumps(doc).encode()


def refusal(data: bytes) -> SbomError:
    with pytest.raises(SbomError) as caught:
        read_sbom(data)
    return caught.value


def test_reads_a_1_6_sbom_with_nested_components():
    sbom = read_sbom(V141)
    assert sbom.spec_version == "1.6" and sbom.sha256 == hashlib.sha256(V141).hexdigest()
    assert [c.name for c in sbom.components] == ["linux", "busybox", "dropbear", "openssl", "libcrypto",
                                                 "thermostat-app"]
    assert sbom.components[2] == Component("dropbear", "2024.86", "pkg:generic/dropbear@2024.86")
    assert sbom.as_json()["components"][4] == {"name": "libcrypto", "version": "3.0.15", "purl": None}
    assert sbom.as_json()["format"] == "CycloneDX"
    assert Sbom.from_json(sbom.as_json()) == sbom


def test_reads_1_5_and_1_4():
    assert read_sbom(V140).spec_version == "1.5"
    doc = json.loads(V140)
    doc["specVersion"] = "1.4"
    assert read_sbom(json.dumps(doc).encode()).spec_version == "1.4"


@pytest.mark.parametrize("change, loc, words", [
    (lambda d: d["components"][1].pop("name"), ["components", 1, "name"], "required field missing"),
    (lambda d: d["components"][1].pop("version"), ["components", 1, "version"], "required for a firmware SBOM"),
    (lambda d: d["components"][3]["components"][0].pop("version"), ["components", 3, "components", 0, "version"],
     "required"),
    (lambda d: d["components"][2].update(checksum="x"), ["components", 2, "checksum"], "not allowed"),
    (lambda d: d["components"][0].update(type="gadget"), ["components", 0, "type"], "must be one of"),
    (lambda d: d["components"][0].update(version=6), ["components", 0, "version"], "must be of type string"),
    (lambda d: d["metadata"].update(timestamp="last Tuesday"), ["metadata", "timestamp"], "not a valid date-time"),
    (lambda d: d.update(components=[]), ["components"], "lists no component"),
    (lambda d: d.pop("components"), ["components"], "lists no component"),
    (lambda d: d.update(specVersion="1.3"), ["specVersion"], "CycloneDX 1.3 is not accepted"),
    (lambda d: d.pop("specVersion"), ["specVersion"], "not accepted"),
    (lambda d: d.update(bomFormat="SPDX"), ["bomFormat"], "must be \"CycloneDX\""),
])
def test_bad_sboms_name_the_field(change, loc: list, words: str):
    err = refusal(mutated(change))
    assert err.loc == loc and words in err.msg and "fix:" in err.msg
    assert "\n" not in str(err) and len(err.msg) < 300


def test_the_error_line_names_the_path():
    err = refusal(mutated(lambda d: d["components"][1].pop("name")))
    assert str(err).startswith("components[1].name: ")


@pytest.mark.parametrize("data, words", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"bomFormat": "CycloneDX",\n  "specVersion": }', "not JSON (Expecting value at line 2, column 18)"),
    (b"[1, 2]", "not a CycloneDX document"),
])
def test_unreadable_documents(data: bytes, words: str):
    err = refusal(data)
    assert err.loc == [] and words in err.msg


def test_an_oversized_upload_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("lab.records.sbom.MAX_SBOM_BYTES", 100)
    assert "over the" in refusal(V141).msg


def test_diff_against_the_previous_release():
    diff = sbom_diff(read_sbom(V140), read_sbom(V141), against="1.4.0")
    assert diff == {
        "against": "1.4.0",
        "added": [{"name": "libcrypto", "version": "3.0.15"}],
        "removed": [{"name": "debugd", "version": "0.3"}],
        "changed": [{"name": "dropbear", "from": "2022.83", "to": "2024.86"},
                    {"name": "thermostat-app", "from": "1.4.0", "to": "1.4.1"}],
        "unchanged": 3,
    }


def test_diff_accepts_the_stored_form_and_defaults_to_the_previous_hash():
    before, after = read_sbom(V140), read_sbom(V141)
    diff = sbom_diff(before.as_json(), after.as_json())
    assert diff["against"] == before.sha256 and diff["unchanged"] == 3


def test_diff_without_a_previous_sbom_compares_nothing():
    assert sbom_diff(None, read_sbom(V141)) == {"against": None, "added": [], "removed": [], "changed": [],
                                                "unchanged": 0}


def test_components_match_by_purl_without_version_then_by_name():
    before = Sbom("1.6", (Component("libssl", "1.1.1", "pkg:deb/debian/openssl@1.1.1?arch=arm64"),
                          Component("zlib", "1.2", None), Component("zlib", "1.3", None)), "a")
    after = Sbom("1.6", (Component("openssl-libs", "3.0.15", "pkg:deb/debian/openssl@3.0.15?arch=arm64"),
                         Component("zlib", "1.3", None), Component("zlib", "1.3.1", None)), "b")
    diff = sbom_diff(before, after)
    assert diff["changed"] == [{"name": "openssl-libs", "from": "1.1.1", "to": "3.0.15"},
                               {"name": "zlib", "from": "1.2", "to": "1.3.1"}]
    assert diff["unchanged"] == 1 and diff["added"] == diff["removed"] == []


def test_purl_without_version():
    assert purl_without_version("pkg:npm/%40angular/core@17.0.0?x=1#sub") == "pkg:npm/%40angular/core"
    assert purl_without_version("pkg:generic/busybox") == "pkg:generic/busybox"
