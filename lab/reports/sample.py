"""A synthetic conformance document (document.SCHEMA), for renderer tests and benchmarks.

Deterministic for a given (results, samples, seed): benchmarks compare like with like, and tests
can rely on the shape. Provisions, titles and test cases come from the real V2 catalogue so the
rendered report looks like one of a real run; the verdicts, reasons and evidence are invented.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from lab.catalog import CHAPTER_TITLES, load_catalog
from lab.reports.document import SCHEMA, DecidedBy
from lab.verdicts import ProvisionVerdict

VERDICTS = tuple(v.value for v in ProvisionVerdict)  # test case verdicts first, NOT_ASSESSED last

# provisions the synthetic ICS declares not applicable, with the manufacturer's justification
_NOT_APPLICABLE = {
    "5.3-14": "All software components are updatable (condition 3 not met).",
    "5.3-15": "All software components are updatable (condition 3 not met).",
    "5.6-4": "No debug interface is physically accessible: the PCB has no header or test pads (condition 13 not met).",
    "5.10-1": "The device collects no telemetry data (condition 6 not met).",
    "6-4": "The device collects no telemetry data (condition 6 not met).",
    "6-5": "The device collects no telemetry data (condition 6 not met).",
}
_FAIL_REASONS = (
    "telnet (23/tcp) accepted the factory password 'admin' on a second sample: passwords are not unique per device",
    "TLS 1.0 offered by the management interface on 8443/tcp",
    "54 consecutive wrong logins over SSH were accepted without delay or lock-out",
    "UART console gives a root shell without authentication",
)
_LAB_FAULTS = (
    "power relay did not confirm channel state within 5 s (SCPI timeout)",
    "console line silent for 60 s after power-on; the serial adapter re-enumerated",
    "bench network interface lost carrier during the capture",
)
_PASS_REASONS = (
    "all checks passed",
    "login with the documented default refused; per-device password accepted",
    "firmware image signature verified; tampered image refused",
    "no unauthenticated service answered on the scanned ports",
)


def synthetic_doc(results: int = 100, samples: int = 2, seed: int = 1, *, approved: bool = False) -> dict[str, Any]:
    """A complete document with `results` test results spread over `samples` items tested."""
    rng = random.Random(seed)
    cat = load_catalog("v2")
    t0 = datetime(2026, 11, 26, 2, 23, 41, tzinfo=timezone.utc)
    run_id = f"20261126-022341-{hashlib.sha256(str(seed).encode()).hexdigest()[:6]}"
    report_id = f"CL-sim-{run_id}"
    items = [_item(i, rng) for i in range(samples)]

    # every test case of an applicable provision gets results, round-robin over samples
    slots = [(p.id, tc.id) for p in cat.provisions if p.id not in _NOT_APPLICABLE for tc in p.test_cases]
    kinds = {tc.id: tc.kind for tc in cat.test_cases}
    by_case: dict[str, list[dict[str, Any]]] = {}
    evidence_index: list[dict[str, Any]] = []
    inconclusive: list[dict[str, Any]] = []
    counts = dict.fromkeys(VERDICTS[:4], 0)
    # a few test cases find a flaw (FAIL on every sample), two run on a flaky bench (some INCONCLUSIVE)
    picked = rng.sample(range(len(slots)), min(len(slots), len(_FAIL_REASONS) + 2))
    flawed = {slots[i][1]: _FAIL_REASONS[k] for k, i in enumerate(picked[:len(_FAIL_REASONS)])}
    flaky = {slots[i][1] for i in picked[len(_FAIL_REASONS):]}
    clock = t0
    for n in range(results):
        prov_id, case_id = slots[n % len(slots)]
        item = items[(n // len(slots)) % samples]
        attempt, cause = 1, None
        if case_id in flawed:
            verdict, reason = "FAIL", flawed[case_id]
        elif case_id in flaky and rng.random() < 0.3:
            verdict, reason, cause, attempt = "INCONCLUSIVE", f"lab fault: {rng.choice(_LAB_FAULTS)}", "lab-fault", 2
        else:
            verdict, reason = "PASS", rng.choice(_PASS_REASONS)
        duration = round(rng.uniform(0.4, 40.0), 1)
        clock += timedelta(seconds=duration + 0.3)
        bench = item["bench"]
        evidence = [f"evidence/{bench}/{case_id}-{n:05d}-transcript.json"]
        if rng.random() < 0.4:
            evidence.append(f"evidence/{bench}/{case_id}-{n:05d}-capture.pcap")
        for path in evidence:
            evidence_index.append({"path": path, "sha256": hashlib.sha256(path.encode()).hexdigest(),
                                   "size": rng.randint(300, 3_000_000)})
        nodeid = f"testsuites/en303645/test_{prov_id.replace('.', '_').replace('-', '_')}.py::test_{case_id.replace('.', '_').replace('-', '_')}[{bench}]"
        by_case.setdefault(case_id, []).append({
            "bench": bench, "executed_on": bench, "dut_serial": item["serial"], "firmware": item["firmware"],
            "verdict": verdict, "reason": reason, "cause": cause, "attempt": attempt, "duration": duration,
            "finished": _z(clock), "nodeid": nodeid, "evidence": evidence, "test_case": case_id, "provision": prov_id,
            "test": nodeid.split("::")[1].split("[")[0],
            "decided_by": {"how": DecidedBy.AUTOMATED.value, "test": nodeid.split("::")[1].split("[")[0], "nodeid": nodeid,
                           "bench": bench, "evidence": evidence} if kinds[case_id] == "functional" else
                          {"how": DecidedBy.CONCEPTUAL_DECISION.value, "assessor": {"name": "Dana Reuter", "role": "lead assessor"},
                           "date": "2026-11-19", "reasoning": "the design in the IXIT meets the provision",
                           "ixit_refs": []},
            "allure": None if n % 17 == 16 else f"allure-report/index.html#suites/{hashlib.md5(nodeid.encode() + bytes([n % 251])).hexdigest()}",
        })
        counts[verdict] += 1
        if verdict == "INCONCLUSIVE":
            inconclusive.append({"provision": prov_id, "test_case": case_id, "bench": bench,
                                 "dut_serial": item["serial"], "reason": reason, "cause": cause})

    provisions = []
    for p in cat.provisions:
        cases = [{"id": tc.id, "kind": tc.kind, "coverage": tc.coverage, "note": tc.note,
                  "title": f"{'Functional' if tc.kind == 'functional' else 'Conceptual'} assessment of {p.id}",
                  "decided_by": sorted({r["decided_by"]["how"] for r in by_case.get(tc.id, [])}) or [DecidedBy.NONE.value],
                  "results": by_case.get(tc.id, [])} for tc in p.test_cases]
        verdicts = {r["verdict"] for c in cases for r in c["results"]}
        if p.id in _NOT_APPLICABLE:
            verdict, reason = "NOT_APPLICABLE", _NOT_APPLICABLE[p.id]
            ics = {"support": "N/A", "detail": _NOT_APPLICABLE[p.id]}
        else:
            ics = {"support": "Y", "detail": "Supported; see the manufacturer's IXIT."}
            if "FAIL" in verdicts:
                verdict = "FAIL"
                reason = next(r["reason"] for c in cases for r in c["results"] if r["verdict"] == "FAIL")
            elif "INCONCLUSIVE" in verdicts:
                verdict, reason = "INCONCLUSIVE", "a test result is inconclusive (lab fault); the test must be repeated"
            elif missing := _missing(cases, items):
                verdict = "NOT_ASSESSED"
                reason = "no result for " + "; ".join(f"{m['test_case']} on {', '.join(m['samples'])}" for m in missing)
            else:
                verdict, reason = "PASS", "every test case passed on every sample"
        provisions.append({"id": p.id, "chapter": p.chapter, "title": p.title or "", "status": p.status.code(),
                           "requirement": p.status.level, "recommendation_not_implemented": False,
                           "verdict": verdict, "reason": reason,
                           "missing": _missing(cases, items) if verdict == "NOT_ASSESSED" else [],
                           "ics": ics, "test_cases": cases})

    chapters = []
    for ch in dict.fromkeys(p["chapter"] for p in provisions):
        c = dict.fromkeys(VERDICTS, 0)
        for p in provisions:
            if p["chapter"] == ch:
                c[p["verdict"]] += 1
        chapters.append({"chapter": ch, "title": CHAPTER_TITLES.get(ch, ""), "counts": c, "verdict": _worst(c)})
    provision_counts = dict.fromkeys(VERDICTS, 0)
    for p in provisions:
        provision_counts[p["verdict"]] += 1

    evidence_index += [
        {"path": f"evidence/{it['bench']}/console-{it['bench']}.log", "sha256": hashlib.sha256(it["bench"].encode()).hexdigest(),
         "size": 48_213 + i} for i, it in enumerate(items)]
    evidence_index.sort(key=lambda e: e["path"])
    ended = clock + timedelta(seconds=12)
    issued = "2026-11-26"
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "report": {"id": report_id, "title": "Test report",
                   "subject": f"ETSI EN 303 645 V2.1.1 conformance assessment of {items[0]['model']}",
                   "status": "approved" if approved else "draft", "issued": issued, "generated_at": _z(ended + timedelta(minutes=3))},
        "laboratory": {"name": "Simulated Test Lab", "address": ["Unit 4, Example Science Park", "1000 Brussels", "Belgium"],
                       "accreditation": {"body": "BELAC", "number": "999-TEST", "scope": "ETSI EN 303 645 (consumer IoT cyber security)"},
                       "contact": {"email": "lab@example.org", "phone": "+32 2 000 00 00", "web": "https://lab.example.org"}},
        "customer": {"name": "Certlab Sim Devices Ltd", "address": ["12 Sample Street", "Springfield", "Neverland"],
                     "contact": "Product Security Office <psirt@example.com>"},
        "method": {"standard": "ETSI EN 303 645 V2.1.1 (2020-06)", "test_specification": "ETSI TS 103 701 V1.1.1 (2021-08)",
                   "edition": "v2", "tool": "certlab 0.1.0",
                   "software": {"python": "3.11.2", "pytest": "9.0.1", "allure-pytest": "2.15.0", "paramiko": "3.5.0",
                                "scapy": "2.6.1", "ansible-core": "2.18.1", "chromium": "156.0.8078.108"},
                   "suites": ["testsuites/en303645"]},
        "items": items,
        "dates": {"received": "2026-11-20", "testing_started": _z(t0), "testing_ended": _z(ended), "issued": issued},
        "statement": ("The results relate only to the items tested, as received. This report shall not be reproduced "
                      "except in full without the written approval of the laboratory."),
        "decision_rule": ("A provision is reported PASS when every test result of its test cases on every sample is PASS, "
                          "FAIL when any result is FAIL, and INCONCLUSIVE when a result could not be obtained because of "
                          "a lab fault. Measurement uncertainty is not taken into account: test outcomes are binary."),
        "summary": {"overall": _worst(provision_counts), "complete": not provision_counts["NOT_ASSESSED"],
                    "not_assessed": [{"provision": p["id"], "requirement": p["requirement"],
                                      "missing": [m["test_case"] for m in p["missing"]], "reason": p["reason"]}
                                     for p in provisions if p["verdict"] == "NOT_ASSESSED"],
                    "counts": counts, "provision_counts": provision_counts, "chapters": chapters},
        "provisions": provisions,
        "other_results": [{
            "test": "lab self-check: bench power cycle", "bench": it["bench"], "executed_on": it["bench"],
            "dut_serial": it["serial"], "firmware": it["firmware"], "verdict": "PASS", "reason": "relay toggled and confirmed",
            "cause": None, "attempt": 1, "duration": 3.1, "finished": _z(t0 + timedelta(seconds=5)),
            "nodeid": f"testsuites/en303645/test_selfcheck.py::test_power[{it['bench']}]",
            "evidence": [f"evidence/{it['bench']}/console-{it['bench']}.log"], "allure": None} for it in items],
        "inconclusive": inconclusive,
        "deviations": ["Test case 5.1-5-2 was run with 50 login attempts instead of the 100 given in the IXIT, "
                       "agreed with the customer on 2026-11-19."],
        "equipment": [{
            "bench": it["bench"], "capabilities": ["capture", "console", "power"],
            "power": {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{15025 + i}::SOCKET", "channel": i + 1,
                      "identification": "CERTLAB,SIM-SWITCH-8,sw0,1.0"},
            "console": {"url": f"socket://127.0.0.1:{16000 + i}", "baud": 115200},
            "network": {"address": f"10.203.{i + 1}.2", "interface": f"clh-sim-b{i + 1}"},
            "ssh": {"client": "paramiko 3.5.0", "server": "SSH-2.0-dropbear_2022.83"}} for i, it in enumerate(items)],
        "approval": ({"by": "Dr A. Example", "role": "Technical Manager", "at": _z(ended + timedelta(hours=1))}
                     if approved else None),
        "evidence_index": evidence_index,
        "run": {"id": run_id, "lab": "sim", "operator": "Simulated Test Lab", "status": "completed",
                "inventory_sha256": hashlib.sha256(b"inventory").hexdigest(), "benches": [it["bench"] for it in items]},
        "links": {"allure_report": "allure-report/index.html", "verdicts": "verdicts.json",
                  "manifest": "manifest.json", "pdf": "conformance.pdf"},
    }
    return doc


def _item(i: int, rng: random.Random) -> dict[str, Any]:
    return {"model": "TH-100", "vendor": "Certlab Sim Devices", "serial": f"TH100-{i + 1:04d}", "firmware": "1.4.0",
            "firmware_sha256": hashlib.sha256(b"TH-100-1.4.0").hexdigest(), "firmware_file": "TH-100-1.4.0.clfw",
            "mac": "02:00:5e:%02x:%02x:%02x" % (rng.randrange(256), rng.randrange(256), i + 1),
            "received_on": "2026-11-20", "condition_on_receipt": "new, sealed retail packaging, no visible damage",
            "bench": f"bench{i + 1}"}


def _missing(cases: list[dict[str, Any]], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The document's rule: each test case needs a result on every sample."""
    out = []
    for c in cases:
        have = {r["dut_serial"] for r in c["results"]}
        lacking = [i["serial"] for i in items if i["serial"] not in have]
        if lacking:
            out.append({"test_case": c["id"], "unit": None, "samples": lacking})
    return out


def _worst(counts: dict[str, int]) -> str:
    """The document's own order: FAIL > INCONCLUSIVE > NOT_ASSESSED > PASS > NOT_APPLICABLE."""
    for v in ("FAIL", "INCONCLUSIVE", "NOT_ASSESSED", "PASS"):
        if counts.get(v):
            return v
    return "NOT_APPLICABLE"


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
