"""The record document (lab/records/record.py): built from a certifying run's conformance.json and
IXIT (a missing IXIT field is written as missing, naming where it belongs, never guessed), changed
by pure functions that leave their argument alone, and its headline figures as of a given day."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from lab.records import record as doc
from lab.records.sbom import SbomError, kept_sbom

ROOT = Path(__file__).resolve().parent.parent
IXIT = (ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml").read_text(encoding="utf-8")
TODAY = date(2026, 12, 7)


def conformance(run_id: str, provisions: dict[str, str], firmware: str = "1.4.0") -> dict:
    return {"report": {"id": f"CL-sim-{run_id}", "issued": "2026-11-02"}, "method": {"edition": "v2"},
            "items": [{"model": "TH-100", "firmware": firmware, "vendor": "Sim"}],
            "summary": {"overall": "FAIL" if "FAIL" in provisions.values() else "PASS"},
            "provisions": [{"id": p, "verdict": v} for p, v in provisions.items()], "run": {"lab": "sim"}}


def certifying(run_id: str = "r1", provisions: dict[str, str] | None = None, ixit: str | None = IXIT,
               firmware: str = "1.4.0") -> doc.Certifying:
    return doc.Certifying(run_id=run_id, conformance=conformance(run_id, provisions or {"5.1-1": "PASS"}, firmware),
                          conformance_sha256="ab" * 32, ixit_text=ixit)


def opened(**kw: object) -> dict:
    return doc.new_record(certifying(**kw), model="TH-100", manufacturer="Acme", product="Thermostat", lab=None)  # type: ignore[arg-type]


def release(version: str, released_on: str, state: str | None = None, **retest: object) -> dict:
    entry = {"version": version, "released_on": released_on, "sha256": "cd" * 32, "sbom": None}
    if state:
        entry["retest"] = {**doc.new_retest(1), "state": state, **retest}
    return entry


def advisory(ident: str, affected: list[str], fixed: list[str], published: str = "2026-11-20T00:00:00Z",
             updated: str | None = None, sha: str = "00") -> dict:
    return {"id": ident, "title": ident, "published": published, "updated": updated or published, "cves": [],
            "affected": affected, "fixed": fixed, "sha256": sha * 32}


def test_a_new_record_takes_its_facts_from_the_report_and_the_ixit() -> None:
    record = opened(provisions={"5.1-1": "PASS", "5.5-1": "FAIL"})
    assert record["certification"] == [{
        "run_id": "r1", "report_id": "CL-sim-r1", "issued": "2026-11-02", "edition": "v2", "verdict": "FAIL",
        "firmware": "1.4.0", "conformance_sha256": "ab" * 32, "report_url": "/reports/r1"}]
    assert record["baseline"] == {"run_id": "r1", "firmware": "1.4.0",
                                  "provisions": {"5.1-1": "PASS", "5.5-1": "FAIL"}}
    assert record["support"]["end"] == "2030-12-31" and "2030" in record["support"]["description"]
    assert record["vulnerability_contact"]["contact"] == "security@sim-devices.certlab.test"
    assert record["vulnerability_contact"]["policy"].endswith("/security/disclosure")
    assert record["lab"] == "sim" and record["releases"] == [] and record["advisories"] == []


@pytest.mark.parametrize("ixit", [None, "", "2-UserInfo: {}\n", "not: [valid yaml", "2-UserInfo:\n  support_period:\n    end: someday\n"])
def test_a_missing_ixit_field_is_written_as_missing_with_its_source(ixit: str | None) -> None:
    record = opened(ixit=ixit)
    assert record["support"] == {"end": None, "description": None, "source": doc.SUPPORT_SOURCE}
    assert record["vulnerability_contact"]["contact"] is None and record["vulnerability_contact"]["policy"] is None
    assert "2-UserInfo.publication" in record["vulnerability_contact"]["source"]
    figures = doc.figures(record, TODAY)
    assert figures["support_end"] is None and figures["support_days_left"] is None


def test_a_report_of_several_models_or_firmware_versions_is_not_guessed() -> None:
    both = {"items": [{"model": "TH-100"}, {"model": "CAM-1"}]}
    with pytest.raises(doc.RecordError, match="TH-100, CAM-1|CAM-1, TH-100"):
        doc.certified_model(both, "conformance.json")
    with pytest.raises(doc.RecordError, match="none"):
        doc.certified_model({"items": []}, "conformance.json")
    assert doc.certified_firmware({"items": [{"firmware": "1.4.0"}, {"firmware": "1.4.1"}]}) is None
    assert doc.certified_firmware({"items": [{"firmware": "unknown"}]}) is None


def test_changes_return_a_new_record_and_leave_the_old_one_alone() -> None:
    record = opened()
    before = copy.deepcopy(record)
    again = doc.add_certification(record, certifying("r2", {"5.1-1": "FAIL"}, firmware="1.4.2"))
    assert [c["run_id"] for c in again["certification"]] == ["r1", "r2"]
    assert again["baseline"] == {"run_id": "r2", "firmware": "1.4.2", "provisions": {"5.1-1": "FAIL"}}
    assert doc.is_certified_by(again, "r2") and not doc.is_certified_by(record, "r2")
    with_release = doc.add_release(again, release("1.5.0", "2026-12-01"))
    with pytest.raises(ValueError):
        doc.add_release(with_release, release("1.5.0", "2026-12-02"))
    retested = doc.set_retest(with_release, "1.5.0", {"state": "running", "run_id": "x"})
    assert doc.release_of(retested, "1.5.0")["retest"]["state"] == "running"
    assert "retest" not in doc.release_of(with_release, "1.5.0")
    with pytest.raises(ValueError):
        doc.set_retest(with_release, "9.9", {})
    assert record == before


def test_an_advisory_is_new_a_newer_revision_the_same_or_not_newer() -> None:
    first = advisory("SA-1", ["1.4.0"], ["1.5.0"], updated="2026-11-20T00:00:00Z", sha="01")
    record = doc.put_advisory(opened(), first, "2026-11-21T00:00:00Z")
    assert doc.advisory_change(record, advisory("SA-2", [], ["1.5.0"])) == "new"
    assert doc.advisory_change(record, first) == "same"
    newer = advisory("SA-1", ["1.4.0", "1.5.0"], ["1.6.0"], updated="2026-12-01T00:00:00Z", sha="02")
    assert doc.advisory_change(record, newer) == "newer"
    assert doc.advisory_change(record, {**newer, "updated": "2026-11-01T00:00:00Z"}) == "not newer"
    replaced = doc.put_advisory(record, newer, "2026-12-02T00:00:00Z")
    assert [(a["id"], a["fixed"], a["registered_at"]) for a in replaced["advisories"]] == [
        ("SA-1", ["1.6.0"], "2026-12-02T00:00:00Z")]


def test_figures_before_any_release_look_at_the_certified_firmware() -> None:
    record = doc.put_advisory(opened(), advisory("SA-1", ["1.4.0"], ["1.5.0"], published="2026-11-27T08:00:00Z"),
                              "2026-11-28T00:00:00Z")
    figures = doc.figures(record, TODAY)
    assert figures == {"as_of": "2026-12-07", "support_end": "2030-12-31", "support_days_left": 1485,
                       "last_security_update": None, "days_since_last_security_update": None,
                       "open_advisories": 1, "open_advisory_ids": ["SA-1"], "oldest_open_days": 10,
                       "last_retest": None}


def test_figures_after_a_fixing_release_and_a_flagged_retest() -> None:
    record = opened()
    record = doc.put_advisory(record, advisory("SA-1", ["1.4.0"], ["1.5.0"]), "x")
    record = doc.put_advisory(record, advisory("SA-2", ["1.5.0", "1.6.0"], ["1.7.0"], published="2026-12-01T00:00:00Z"), "x")
    record = doc.add_release(record, release("1.5.0", "2026-12-03", "done", verdict="PASS", flagged=False,
                                             ended_at="2026-12-03T12:00:00Z"))
    record = doc.add_release(record, release("1.6.0", "2026-12-05", "done", verdict="FAIL", flagged=True,
                                             ended_at="2026-12-05T12:00:00Z"))
    figures = doc.figures(record, TODAY)
    assert figures["last_security_update"] == {"version": "1.5.0", "released_on": "2026-12-03"}
    assert figures["days_since_last_security_update"] == 4
    assert (figures["open_advisories"], figures["open_advisory_ids"], figures["oldest_open_days"]) == (1, ["SA-2"], 6)
    assert figures["last_retest"] == {"version": "1.6.0", "verdict": "FAIL", "flagged": True,
                                      "ended_at": "2026-12-05T12:00:00Z"}
    assert [r["version"] for r in doc.pending_retests(record)] == []
    queued = doc.add_release(record, release("1.6.1", "2026-12-06", "queued"))
    assert [r["version"] for r in doc.pending_retests(queued)] == ["1.6.1"]
    assert doc.figures(queued, TODAY)["last_retest"]["version"] == "1.6.0"  # a queued re-test has no result yet


def test_the_newest_release_is_by_release_date_then_registration() -> None:
    record = doc.add_release(opened(), release("2.0.0", "2026-12-05"))
    record = doc.add_release(record, release("1.9.9", "2026-12-01"))  # an older line's late registration
    assert doc.newest_release(record)["version"] == "2.0.0"
    record = doc.add_release(record, release("2.0.1", "2026-12-05"))
    assert doc.current_version(record) == "2.0.1"


def test_a_release_keeps_its_sbom_as_a_summary_bound_by_hash_and_reads_the_old_whole_shape_too() -> None:
    data = json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": [
        {"type": "library", "name": "busybox", "version": "1.36.1", "purl": "pkg:generic/busybox@1.36.1"},
        {"type": "library", "name": "openssl", "version": "3.0.13"}]}).encode()
    kept = kept_sbom(data)
    assert kept.summary() == {"format": "CycloneDX", "spec_version": "1.5",
                              "sha256": hashlib.sha256(data).hexdigest(), "components": 2}
    assert [c.name for c in kept.components] == ["busybox", "openssl"]
    assert doc.sbom_held_whole(kept.as_json()) and not doc.sbom_held_whole(kept.summary())
    with pytest.raises(SbomError):
        kept_sbom(b'{"bomFormat": "SPDX"}')
