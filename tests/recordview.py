"""A product record as the pages show it, for the record page tests (tests/test_webui_records.py and
tests/test_records_browser.py): a TH-100 certified on firmware 1.4.0, then two advisories and two
releases with their re-tests, the second turning 5.6-1 from PASS to FAIL (flagged).

`history(today)` is the record's revisions as (kind, summary, record) with dates relative to
`today`, so the figures are known: 4 days since the last security update (1.5.0 fixed
TH100-2026-001), 1 open advisory (TH100-2026-002, published 6 days ago), the last re-test FAIL and
flagged. `seed_record` writes them into a store as lab.actions.records does: the record's product
row, then each revision signed with the lab key and chained (lab.records.chain, lab.store.records).
"""

from __future__ import annotations

import copy
import hashlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lab.records.chain import Revision, make_revision, revision_from_json
from lab.store.db import Store
from lab.store.records import append_revision, new_product_record

ROOT = Path(__file__).resolve().parent.parent

MODEL = "TH-100"
PRODUCT_DIR = ROOT / "inventory" / "products" / MODEL
CERT_RUN = "20261101-100000-cert01"
BASELINE = {"5.1-1": "PASS", "5.1-2": "PASS", "5.3-2": "PASS", "5.5-1": "FAIL", "5.6-1": "PASS",
            "5.7-1": "NOT_APPLICABLE"}


def _day(today: date, ago: int) -> str:
    return (today - timedelta(days=ago)).isoformat()


def _stamp(today: date, ago: int, hour: int = 10) -> str:
    return f"{_day(today, ago)}T{hour:02d}:00:00Z"


def _digest(text: str) -> str:
    """A SHA-256 that looks like one (of a name: the sample documents are not on disk)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _sbom(spec: str, components: list[tuple[str, str]]) -> dict[str, Any]:
    return {"format": "CycloneDX", "spec_version": spec, "sha256": _digest(repr(components)),
            "components": [{"name": n, "version": v, "purl": f"pkg:generic/{n}@{v}"} for n, v in components]}


def _retest(queued_id: int, **done: Any) -> dict[str, Any]:
    return {"state": "queued", "queued_id": queued_id, "run_id": None, "verdict": None, "delta": None, "flagged": False,
            "report_url": None, "conformance_sha256": None, "reason": None, "ended_at": None, **done}


def _release(today: date, version: str, ago: int, sbom: dict[str, Any], diff: dict[str, Any], queued_id: int) -> dict:
    return {"version": version, "released_on": _day(today, ago), "registered_at": _stamp(today, ago, 9),
            "filename": f"{MODEL}-{version}.clfw", "sha256": _digest(f"{MODEL}-{version}.clfw"),
            "size": 40960, "signature": "valid", "signature_detail": "Ed25519 under the IXIT 7-UpdMech update key",
            "sbom": sbom, "sbom_diff": diff, "retest": _retest(queued_id)}


def _advisory(today: date, ident: str, title: str, ago: int, cves: list[str], affected: list[str],
              fixed: list[str]) -> dict[str, Any]:
    return {"id": ident, "title": title, "published": _stamp(today, ago, 0), "updated": _stamp(today, ago, 0),
            "cves": cves, "affected": affected, "fixed": fixed, "sha256": _digest(ident),
            "registered_at": _stamp(today, ago, 12)}


def history(today: date, manufacturer: str = "Acme") -> list[tuple[str, str, dict[str, Any], str]]:
    """The record's revisions, oldest first: (kind, summary, the whole record as of then, when)."""
    record: dict[str, Any] = {
        "model": MODEL, "manufacturer": manufacturer, "product": "Smart thermostat", "lab": "certlab demo lab",
        "certification": [{"run_id": CERT_RUN, "report_id": "CL-2026-0042", "issued": _day(today, 30),
                           "edition": "v2", "verdict": "PASS", "firmware": "1.4.0",
                           "conformance_sha256": _digest(f"{CERT_RUN}/conformance.json"),
                           "report_url": f"/reports/{CERT_RUN}"}],
        "baseline": {"run_id": CERT_RUN, "firmware": "1.4.0", "provisions": dict(BASELINE)},
        "support": {"end": _day(today, -1120), "description": "Security updates for at least three years",
                    "source": "IXIT 2-UserInfo.support_period"},
        "vulnerability_contact": {"contact": "security@acme.example", "policy": "https://acme.example/security",
                                  "source": "IXIT 2-UserInfo.publication"},
        "releases": [], "advisories": []}
    steps: list[tuple[str, str, dict[str, Any], str]] = [
        ("opened", f"record opened from report CL-2026-0042 (run {CERT_RUN})", copy.deepcopy(record),
         _stamp(today, 29))]

    def step(kind: str, summary: str, at: str) -> None:
        steps.append((kind, summary, copy.deepcopy(record), at))

    record["advisories"].append(_advisory(today, "TH100-2026-001", "Weak session tokens in the local API", 12,
                                          ["CVE-2026-11111"], ["1.4.0"], ["1.5.0"]))
    step("advisory", "advisory TH100-2026-001: Weak session tokens in the local API", _stamp(today, 12, 12))
    sbom_15 = _sbom("1.6", [("busybox", "1.36.1"), ("openssl", "3.0.13"), ("thermo-app", "1.5.0")])
    record["releases"].append(_release(today, "1.5.0", 4, sbom_15, {
        "against": None, "added": [{"name": n["name"], "version": n["version"]} for n in sbom_15["components"]],
        "removed": [], "changed": [], "unchanged": 0}, 1))
    step("release", "release 1.5.0 registered; re-test queued (queued run 1)", _stamp(today, 4, 9))
    record["releases"][0]["retest"] = _retest(1, state="done", run_id="20261203-100000-rt0001", verdict="PASS",
                                              delta={"newly_failing": [], "newly_passing": ["5.5-1"],
                                                     "unchanged": ["5.1-1", "5.1-2", "5.3-2", "5.6-1"], "changed": [],
                                                     "not_retested": ["5.7-1"], "flagged": False},
                                              report_url="/reports/20261203-100000-rt0001",
                                              conformance_sha256=_digest("rt0001/conformance.json"),
                                              ended_at=_stamp(today, 4, 11))
    step("retest", "re-test of 1.5.0: PASS (1 newly passing, none newly failing)", _stamp(today, 4, 11))
    sbom_16 = _sbom("1.6", [("busybox", "1.37.0"), ("openssl", "3.0.13"), ("thermo-app", "1.6.0"), ("debugd", "0.9")])
    record["releases"].append(_release(today, "1.6.0", 2, sbom_16, {
        "against": "1.6", "added": [{"name": "debugd", "version": "0.9"}], "removed": [],
        "changed": [{"name": "busybox", "from": "1.36.1", "to": "1.37.0"},
                    {"name": "thermo-app", "from": "1.5.0", "to": "1.6.0"}], "unchanged": 1}, 2))
    step("release", "release 1.6.0 registered; re-test queued (queued run 2)", _stamp(today, 2, 9))
    record["releases"][1]["retest"] = _retest(2, state="done", run_id="20261205-100000-rt0002", verdict="FAIL",
                                              delta={"newly_failing": ["5.6-1"], "newly_passing": ["5.5-1"],
                                                     "unchanged": ["5.1-1", "5.1-2"],
                                                     "changed": [{"provision": "5.3-2", "from": "PASS",
                                                                  "to": "INCONCLUSIVE"}],
                                                     "not_retested": ["5.7-1"], "flagged": True},
                                              flagged=True, report_url="/reports/20261205-100000-rt0002",
                                              conformance_sha256=_digest("rt0002/conformance.json"),
                                              ended_at=_stamp(today, 2, 11))
    step("retest", "re-test of 1.6.0: FAIL, FLAGGED: 5.6-1 PASS -> FAIL", _stamp(today, 2, 11))
    record["advisories"].append(_advisory(today, "TH100-2026-002", "Debug service reachable on the network", 6,
                                          ["CVE-2026-22222", "CVE-2026-22223"], ["1.4.0", "1.5.0", "1.6.0"], []))
    record["advisories"][-1]["registered_at"] = _stamp(today, 1, 12)  # published 6 days ago, registered later
    step("advisory", "advisory TH100-2026-002: Debug service reachable on the network", _stamp(today, 1, 12))
    return steps


def seed_record(store: Store, *, org_id: int, product_id: int, key: Any, today: date, manufacturer: str = "Acme",
                inputs_dir: str = "/nonexistent/inputs") -> list[Revision]:
    """Write `history(today)` as `MODEL`'s signed chain (its product row with the first revision)."""
    made: list[Revision] = []
    for n, (kind, summary, record, stamp) in enumerate(history(today, manufacturer)):
        at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

        def make(last: dict[str, Any] | None, kind: str = kind, summary: str = summary, record: dict = record,
                 at: datetime = at) -> dict[str, Any]:
            previous = revision_from_json(last, "the last revision") if last is not None else None
            return make_revision(previous, kind=kind, summary=summary, by="lab", record=record, at=at,
                                 key=key).as_json()

        def before(session: Any, revision: dict[str, Any]) -> None:
            new_product_record(session, model=MODEL, org_id=org_id, product_id=product_id,
                               baseline_run_id=CERT_RUN, inputs_dir=inputs_dir)

        made.append(revision_from_json(append_revision(store, MODEL, make, before=before if n == 0 else None),
                                       "seeded"))
    return made

