"""CSAF 2.0 advisories: validated offline, the model's affected and fixed versions read, bad ones
refused with the field's path, and status_of's answer for versions the advisory does not list."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import jsonschema  # noqa: F401  imported at collection (a second of format checkers), not in a test
import pytest

from lab.records.csaf import Advisory, CsafError, comparable_versions, read_advisory, status_of

DATA = Path(__file__).parent / "data" / "records"
ADVISORY = (DATA / "csaf-th100-2026-001.json").read_bytes()


def mutated(change) -> bytes:
    doc = json.loads(ADVISORY)
    change(doc)
    return json.dumps(doc).encode()


def refusal(data: bytes, model: str = "TH-100") -> CsafError:
    with pytest.raises(CsafError) as caught:
        read_advisory(data, model=model)
    return caught.value


def test_reads_the_sample_advisory():
    adv = read_advisory(ADVISORY, model="TH-100")
    assert (adv.id, adv.published, adv.updated) == ("DT-2026-001", "2026-12-02T09:00:00Z", "2026-12-02T09:00:00Z")
    assert adv.title.startswith("TH-100: debug service")
    assert adv.cves == ("CVE-2026-40001",) and adv.affected == ("1.4.0",) and adv.fixed == ("1.4.1",)
    assert len(adv.sha256) == 64
    as_json = adv.as_json()
    assert as_json["affected"] == ["1.4.0"] and as_json["cves"] == ["CVE-2026-40001"]
    assert set(as_json) >= {"id", "title", "published", "updated", "cves", "affected", "fixed", "sha256"}


def test_the_model_matches_case_insensitively():
    assert read_advisory(ADVISORY, model="th-100").affected == ("1.4.0",)


def test_validation_never_goes_online(monkeypatch: pytest.MonkeyPatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the CSAF validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)

    def scores(doc: dict) -> None:
        doc["vulnerabilities"][0]["scores"].append({"products": ["TH100-1.4.0"], "cvss_v2": {
            "version": "2.0", "vectorString": "AV:N/AC:L/Au:N/C:P/I:P/A:P", "baseScore": 7.5}})
    assert read_advisory(mutated(scores), model="TH-100").affected == ("1.4.0",)
    bad_v3 = mutated(lambda d: d["vulnerabilities"][0]["scores"][0]["cvss_v3"].update(baseScore=11))
    assert refusal(bad_v3).loc == ["vulnerabilities", 0, "scores", 0, "cvss_v3", "baseScore"]


def test_full_product_names_with_a_version():
    def flat(doc: dict) -> None:
        doc["product_tree"] = {"full_product_names": [
            {"name": "Demo Thermostats TH-100 firmware 1.4.0", "product_id": "TH100-1.4.0"},
            {"name": "TH-100 v1.4.1", "product_id": "TH100-1.4.1"},
            {"name": "TH-1000 2.0", "product_id": "OTHER"}]}
        doc["vulnerabilities"][0]["product_status"]["known_affected"].append("OTHER")
    adv = read_advisory(mutated(flat), model="TH-100")
    assert adv.affected == ("1.4.0",) and adv.fixed == ("1.4.1",)  # TH-1000 is another model


def test_across_vulnerabilities_affected_wins_and_not_affected_is_kept():
    def second(doc: dict) -> None:
        branch = doc["product_tree"]["branches"][0]["branches"][0]["branches"]
        branch.append({"category": "product_version", "name": "1.3.2",
                       "product": {"name": "TH-100 1.3.2", "product_id": "TH100-1.3.2"}})
        doc["vulnerabilities"].append({"cve": "CVE-2026-40002", "notes": [{"category": "description", "text": "x"}],
                                       "product_status": {"known_affected": ["TH100-1.4.1"],
                                                          "known_not_affected": ["TH100-1.3.2"]}})
    adv = read_advisory(mutated(second), model="TH-100")
    assert adv.affected == ("1.4.0", "1.4.1") and adv.fixed == () and adv.not_affected == ("1.3.2",)
    assert adv.cves == ("CVE-2026-40001", "CVE-2026-40002")
    assert status_of(adv, "1.3.2") == "unknown"  # not affected, but not a fix either


def test_tracking_dates_are_normalised_to_utc():
    adv = read_advisory(mutated(lambda d: d["document"]["tracking"].update(
        current_release_date="2026-12-03T10:30:00+01:00")), model="TH-100")
    assert adv.updated == "2026-12-03T09:30:00Z"


def test_a_base_document_without_vulnerabilities_lists_nothing():
    def base(doc: dict) -> None:
        doc["document"]["category"] = "csaf_base"
        del doc["vulnerabilities"]
    adv = read_advisory(mutated(base), model="TH-100")
    assert adv.affected == adv.fixed == adv.cves == ()


def test_version_ranges_are_not_read_as_versions():
    def ranged(doc: dict) -> None:
        doc["product_tree"]["branches"][0]["branches"][0]["branches"][0] = {
            "category": "product_version_range", "name": "vers:generic/<1.4.1",
            "product": {"name": "TH-100 vers:generic/<1.4.1", "product_id": "TH100-1.4.0"}}
    assert read_advisory(mutated(ranged), model="TH-100").affected == ()


def test_an_advisory_for_another_product():
    err = refusal(ADVISORY, model="TH-200")
    assert err.loc == ["product_tree"] and "names no product TH-200" in err.msg and "fix:" in err.msg


@pytest.mark.parametrize("change, loc, words", [
    (lambda d: d["document"].pop("title"), ["document", "title"], "required field missing"),
    (lambda d: d["document"].update(csaf_version="2.1"), ["document", "csaf_version"], 'must be "2.0"'),
    (lambda d: d["document"].update(category="csaf_vex"), ["document", "category"], "not accepted"),
    (lambda d: d["document"]["tracking"].update(initial_release_date="yesterday"),
     ["document", "tracking", "initial_release_date"], "not a valid date-time"),
    (lambda d: d["document"]["tracking"]["revision_history"][0].update(date="2026-12-02"),
     ["document", "tracking", "revision_history", 0, "date"], "date-time"),
    (lambda d: d["vulnerabilities"][0].update(cve="CVE-26-1"), ["vulnerabilities", 0, "cve"], "pattern"),
    (lambda d: d["vulnerabilities"][0]["scores"][0]["cvss_v3"].update(version="2.0"),
     ["vulnerabilities", 0, "scores", 0, "cvss_v3", "version"], 'must be "3.1"'),
    (lambda d: d["product_tree"]["branches"][0].update(extra=1), ["product_tree", "branches", 0], "at most 3 fields"),
    (lambda d: d["vulnerabilities"][0]["product_status"]["fixed"].append("TH100-9.9"),
     ["vulnerabilities", 0, "product_status", "fixed", 1], "not defined in product_tree (CSAF 6.1.1)"),
    (lambda d: d["vulnerabilities"][0]["remediations"][0]["product_ids"].append("NOPE"),
     ["vulnerabilities", 0, "remediations", 0, "product_ids", 1], "6.1.1"),
    (lambda d: d["vulnerabilities"][0]["product_status"]["fixed"].append("TH100-1.4.0"),
     ["vulnerabilities", 0, "product_status", "fixed", 1], "contradicting status, CSAF 6.1.6"),
    (lambda d: d.pop("product_tree"), ["product_tree"], "6.1.27.4"),
    (lambda d: d["vulnerabilities"][0].pop("notes"), ["vulnerabilities", 0, "notes"], "6.1.27.5"),
    (lambda d: d["vulnerabilities"][0].pop("product_status"), ["vulnerabilities", 0, "product_status"], "6.1.27.6"),
])
def test_bad_advisories_name_the_field(change, loc: list, words: str):
    err = refusal(mutated(change))
    assert err.loc == loc and words in err.msg and "fix:" in err.msg
    assert "\n" not in str(err)


@pytest.mark.parametrize("data, words", [
    (b"\xc3\x28", "not UTF-8"),
    (b'{"document": ', "not JSON"),
    (b'"advisory"', "not a CSAF document"),
])
def test_unreadable_documents(data: bytes, words: str):
    err = refusal(data)
    assert err.loc == [] and words in err.msg


def adv(affected=(), fixed=(), not_affected=()) -> Advisory:
    return Advisory("A", "t", "2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z", (), tuple(affected), tuple(fixed),
                    "0" * 64, tuple(not_affected))


@pytest.mark.parametrize("advisory, version, status", [
    (adv(["1.4.0"], ["1.4.2"]), "1.4.0", "affected"),  # listed
    (adv(["1.4.0"], ["1.4.2"]), "1.4.2", "fixed"),
    (adv(["1.4.0"], ["1.4.2"]), "1.3.9", "affected"),  # below the highest affected and the lowest fix
    (adv(["1.4.0"], ["1.4.2"]), "1.4.1", "unknown"),  # between the last affected and the first fix
    (adv(["1.4.0"], ["1.4.2"]), "1.10.0", "fixed"),  # compared as versions, not text
    (adv(["1.4.0"], []), "1.3.0", "affected"),  # nothing fixed yet: earlier versions count as affected
    (adv(["1.4.0"], []), "1.5.0", "unknown"),
    (adv([], ["1.4.2"]), "1.3.0", "unknown"),
    (adv([], ["1.4.2"]), "2.0", "fixed"),
    (adv(["1.4"], ["1.5"]), "1.4.0", "affected"),  # 1.4 == 1.4.0
    (adv(["1.4.0"], ["1.4.2"]), "1.4.2-beta", "unknown"),  # does not compare
    (adv(["r7"], ["r9"]), "r8", "unknown"),
    (adv(["1.4.0"], ["1.4.2"], ["1.3.0"]), "1.3.0", "unknown"),  # said not affected: neither open nor a fix
    (adv([], []), "1.0", "unknown"),
])
def test_status_of(advisory: Advisory, version: str, status: str):
    assert status_of(advisory, version) == status
    assert status_of(advisory.as_json(), version) == status  # the stored form answers the same


def test_status_of_a_stored_advisory_without_not_affected():
    assert status_of({"affected": ["1.4.0"], "fixed": ["1.4.1"]}, "1.4.5") == "fixed"


def test_comparable_versions():
    assert comparable_versions(["1.4", "1.4.0"])[0] == comparable_versions(["1.4", "1.4.0"])[1]
    assert comparable_versions(["1.2.3.4.5", "1.2"]) is not None
    assert comparable_versions(["1.0", "v-two"]) is None
