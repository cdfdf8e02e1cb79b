"""The conformance report's data (`conformance.json`): what the lab states about the items it tested.

Built only from the run directory (the spec, the verdicts, the inputs the run kept, the
equipment the benches recorded, an approval if any) plus the lab's profile, so a report can be
rebuilt anywhere, long after the run, and says the same. The HTML and the PDF are renderings of
this document and add nothing to it. Its shape is the typed model of lab/reports/document.py
(schema `certlab.conformance/2`), checked before anything is written; its fields follow
ISO/IEC 17025 7.8.2.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from lab.assessments import Assessments, load_assessments
from lab.catalog import CHAPTER_TITLES, EDITION_LABELS, Catalog, Catalogs, Provision
from lab.errors import CertlabError
from lab.ics import Ics, load_ics
from lab.inventory import Inventory, load_inventory
from lab.orchestrator.inputs import INDEX_FILE, INPUTS_DIR, sha256_file
from lab.reports.document import SCHEMA, DecidedBy, checked
from lab.reports.errors import ReportError
from lab.reports.profile import LabProfile
from lab.verdicts import VERDICTS, ProvisionVerdict, Verdict

JSON_FILE = "conformance.json"
HTML_FILE = "conformance.html"
PDF_FILE = "conformance.pdf"
APPROVAL_FILE = "approval.json"
NOT_ASSESSED = ProvisionVerdict.NOT_ASSESSED
SOFTWARE = ("pytest", "allure-pytest", "paramiko", "pyserial", "pyvisa", "pyvisa-py", "scapy", "ansible-core",
            "cryptography", "sqlalchemy")
_TRANSCRIPT = re.compile(r"^(console|ssh)-.*\.log$")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: not found; {what}") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable ({exc}); {what}") from None


def report_id(lab: str, run_id: str) -> str:
    return f"CL-{lab}-{run_id}"


def build_document(run_dir: Path, profile: LabProfile, *, allure_links: dict[str, str] | None = None,
                   allure_report: str | None = None, tools: dict[str, str] | None = None,
                   pdf: bool = True, today: dt.date | None = None) -> dict[str, Any]:
    """The whole report as data, validated by the ConformanceDocument model (plain JSON data back).
    `allure_links` maps node id -> href of its Allure result."""
    run_dir = Path(run_dir)
    spec = read_json(run_dir / "run.json", "give a run directory made by `certlab run`")
    verdicts = read_json(run_dir / "verdicts.json", "the run has not finished: finish it with `certlab run --resume DIR`")
    edition = _edition_key(spec.get("edition") or verdicts.get("edition") or "v2")
    catalogs = Catalogs()  # parsed once for the document, the ICS and the assessor's record
    try:
        catalog = catalogs.get(edition)
    except CertlabError as exc:
        raise ReportError(f"{run_dir / 'verdicts.json'}: field 'edition': {exc}") from None
    inputs = _read_inputs(run_dir)
    inventory = _inventory(run_dir, spec)
    benches = list(spec.get("benches") or [])
    ics = _ics_by_model(run_dir, inputs, edition, inventory, benches, catalogs)
    results = [_result(r, allure_links or {}) for r in verdicts.get("results", [])]
    approval = _approval(run_dir)
    lab = verdicts.get("lab") or (inventory.lab if inventory else spec.get("lab") or "lab")
    run_id = verdicts.get("run_id") or spec["run_id"]
    today = today or dt.datetime.now(dt.timezone.utc).date()
    issued = approval["at"][:10] if approval else today.isoformat()

    items = _items(benches, inventory, inputs, ics)
    decisions = _decisions(run_dir, inputs, edition, catalogs)
    samples = _samples(items, results)
    results += _performed(run_dir, inputs, decisions, samples, items)
    provisions = _provisions(catalog, results, ics, samples, decisions)
    tied = {id(r) for p in provisions for tc in p["test_cases"] for r in tc["results"]}
    other = [r for r in results if id(r) not in tied]
    models = sorted({i["model"] for i in items})
    vendors = sorted({i["vendor"] for i in items if i.get("vendor")})
    started, ended = _testing_dates(results, spec)
    received = sorted(i["received_on"] for i in items if i.get("received_on"))
    counts = Counter(r["verdict"] for r in results)
    prov_counts = Counter(p["verdict"] for p in provisions)

    return checked({
        "schema": SCHEMA,
        "report": {
            "id": report_id(lab, run_id),
            "title": profile.report.title,
            "subject": f"{catalog.en} conformance assessment of {', '.join(models) or 'the items listed'}",
            "status": "approved" if approval else "draft",
            "issued": issued,
            "generated_at": _now(),
        },
        "laboratory": profile.laboratory.model_dump(mode="json"),
        "customer": {"name": ", ".join(vendors) or "not stated in the ICS", "address": [], "contact": None},
        "method": {
            "standard": catalog.en,
            "test_specification": catalog.ts,
            "edition": edition,
            "edition_label": EDITION_LABELS.get(edition, edition),
            "catalogue_confidence": catalog.confidence,
            "tool": f"certlab {package_version('certlab')}",
            "software": {"python": platform.python_version(), **{n: v for n in SOFTWARE if (v := package_version(n))},
                         **(tools or {})},
            "suites": [_short(s) for s in spec.get("suites", [])],
            "inputs": _input_list(inputs),
        },
        "items": items,
        "dates": {"received": received[0] if received else None, "testing_started": started,
                  "testing_ended": ended, "issued": issued},
        "statement": profile.report.statement,
        "decision_rule": profile.report.decision_rule,
        "summary": {
            "overall": _worst(prov_counts),
            "complete": not prov_counts.get(NOT_ASSESSED),
            "not_assessed": _not_assessed(provisions),
            "counts": {v: counts.get(v, 0) for v in VERDICTS},
            "provision_counts": {v: prov_counts.get(v, 0) for v in (*VERDICTS, NOT_ASSESSED)},
            "chapters": _chapters(provisions),
        },
        "provisions": provisions,
        "other_results": other,
        "inconclusive": [_short_result(r) for r in results if r["verdict"] == Verdict.INCONCLUSIVE],
        "deviations": _deviations(results, provisions, catalog),
        "equipment": _equipment(run_dir, benches, results, inventory),
        "approval": approval,
        "evidence_index": _evidence_index(run_dir),
        "run": {"id": run_id, "lab": lab, "operator": inventory.operator if inventory else None,
                "status": "cancelled" if any(r.get("cause") == "cancelled" for r in results) else "completed",
                "inventory_sha256": (inputs.get("inventory") or {}).get("sha256"), "benches": benches,
                "created": spec.get("created")},
        "links": {"allure_report": allure_report, "verdicts": "verdicts.json", "manifest": "manifest.json",
                  "pdf": PDF_FILE if pdf else None},
    })


def write_document(doc: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# --- inputs ---------------------------------------------------------------------------------

def _read_inputs(run_dir: Path) -> dict[str, Any]:
    path = run_dir / INPUTS_DIR / INDEX_FILE
    return read_json(path, "re-run with this certlab") if path.exists() else {}


def _inventory(run_dir: Path, spec: dict[str, Any]) -> Inventory | None:
    """The inventory as the run had it (its copy), else the file the spec names, else none."""
    for path in (run_dir / "inputs" / "inventory.yaml", Path(spec.get("inventory") or "")):
        if path.is_file():
            try:
                return load_inventory(path)
            except CertlabError:
                continue  # an old copy that no longer validates: describe the run without it
    return None


def _decisions(run_dir: Path, inputs: dict[str, Any], edition: str, catalogs: Catalogs) -> dict[str, Assessments]:
    """The assessor's record each model's run was given (the run's copy), by model."""
    found: dict[str, Assessments] = {}
    for model, files in sorted((inputs.get("products") or {}).items()):
        entry = files.get("assessments")
        if entry:
            try:
                found[model] = load_assessments(run_dir / entry["file"], edition, check_files=False, catalogs=catalogs)
            except CertlabError as exc:
                raise ReportError(f"{run_dir / entry['file']}: the run's copy of the assessor's record does not "
                                  f"load ({exc}); fix: make the report with the certlab that made the run") from None
    return found


def _performed(run_dir: Path, inputs: dict[str, Any], decisions: dict[str, Assessments], samples: list[Sample],
               items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The functional test cases the assessor performed by hand: one result per sample named, linked
    to the evidence the run copied (and hashed) when it started. No bench is involved."""
    copied = inputs.get("assessor_evidence") or {}
    firmware = {i.get("serial"): i.get("firmware") for i in items}
    out = []
    for model, record in decisions.items():
        for case, done in sorted(record.data.performed.items()):
            files = {e["ref"]: e["file"] for e in (copied.get(model) or {}).get(case, [])}
            lacking = [ref for ref in done.evidence if ref not in files or not (run_dir / files[ref]).is_file()]
            if lacking:
                raise ReportError(f"{run_dir / INPUTS_DIR / INDEX_FILE}: the evidence {', '.join(lacking)} of "
                                  f"performed.{case} ({model}) is not in the run; fix: start the run again with "
                                  f"the assessor's record and its evidence files")
            evidence = [files[ref] for ref in done.evidence]
            who = record.performed_by(done)
            tc = record.catalog.test_case(case)
            for serial in done.samples:
                sample = next((s for s in samples if s.serial == serial), None)
                if sample is None:
                    raise ReportError(f"{record.path}: assessments: performed.{case}.samples: {serial!r} is not a "
                                      f"sample of this run; fix: record the case on a sample the run tested")
                out.append({
                    "bench": sample.slot, "executed_on": None, "dut_serial": serial, "firmware": firmware.get(serial),
                    "test_case": case, "test": None, "provision": tc.provision, "verdict": done.verdict,
                    "reason": done.reason, "cause": None, "attempt": 1, "duration": None,
                    "finished": done.date.isoformat(), "nodeid": None, "evidence": evidence, "allure": None,
                    "decided_by": {"how": DecidedBy.ASSESSOR_PERFORMED, "assessor": who.model_dump(),
                                   "date": done.date.isoformat(), "samples": list(done.samples),
                                   "evidence": evidence},
                })
    return out


def _samples(items: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[Sample]:
    """Every item tested: each slot of the run with its serial, and any other bench that reported."""
    samples = {i["bench"]: Sample(i["bench"], i["serial"], i["model"]) for i in items if i.get("bench")}
    for r in results:
        if r["bench"] and r["bench"] not in samples:
            samples[r["bench"]] = Sample(r["bench"], r["dut_serial"] or r["bench"], "unknown")
    return list(samples.values())


def _ics_by_model(run_dir: Path, inputs: dict[str, Any], edition: str, inventory: Inventory | None,
                  benches: list[str], catalogs: Catalogs) -> dict[str, Ics]:
    found: dict[str, Ics] = {}
    for model, files in (inputs.get("products") or {}).items():
        entry = files.get("ics")
        if entry:
            found[model] = load_ics(run_dir / entry["file"], edition, catalogs=catalogs)
    return found


def _input_list(inputs: dict[str, Any]) -> list[dict[str, str]]:
    listed = []
    if inputs.get("inventory"):
        listed.append({"what": "lab inventory", **inputs["inventory"]})
    names = {"ics": "ICS", "ixit": "IXIT", "assessments": "assessor's record (conceptual decisions, hand-performed test cases)"}
    for model, files in sorted((inputs.get("products") or {}).items()):
        for kind, entry in files.items():
            if kind == "ixit_files":  # what the IXIT names beside itself, e.g. security.txt's OpenPGP key
                listed.extend({"what": f"{e['ref']}, named by the IXIT of {model}",
                               **{k: v for k, v in e.items() if k != "ref"}} for e in entry)
            else:
                listed.append({"what": f"{names.get(kind, kind)} of {model}", **entry})
    return listed


# --- results and provisions -------------------------------------------------------------------

class Unit(StrEnum):
    """The part of a test case a result decides: a 'both' case needs one of each."""

    CONCEPTUAL = "conceptual"
    FUNCTIONAL = "functional"


CONCEPTUAL_TEST = "test_conceptual"  # testsuites/en303645/test_conceptual.py: the assessor's decisions


@dataclass(frozen=True)
class Sample:
    """One item tested: the slot (bench) of the run that tests it, its serial and model."""

    slot: str
    serial: str
    model: str


def _result(r: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    test_case = r.get("test_case")
    return {
        "bench": r.get("bench"), "executed_on": r.get("executed_on") or r.get("bench"),
        "dut_serial": r.get("dut_serial"), "firmware": r.get("firmware"),
        "test_case": test_case, "test": r.get("test"), "provision": r.get("provision"),
        "verdict": r.get("verdict") if r.get("verdict") in VERDICTS else Verdict.INCONCLUSIVE,
        "reason": r.get("reason") or "", "cause": r.get("cause"), "attempt": r.get("attempt") or 1,
        "duration": r.get("duration"), "finished": r.get("finished"), "nodeid": r.get("nodeid"),
        "evidence": _own_evidence(r.get("evidence") or [], test_case),
        "allure": links.get(r.get("nodeid") or ""),
        "decided_by": None,  # filled in by _decide once the test case's kind is known
    }


def _own_evidence(paths: list[str], test_case: str | None) -> list[str]:
    """A result's own files (named after its test case) and the bench's transcripts."""
    own = []
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        if (test_case and name.startswith(f"{test_case}-")) or _TRANSCRIPT.match(name):
            own.append(path)
    return own


def _unit(r: dict[str, Any], kind: str) -> Unit:
    if kind == "conceptual" or r.get("test") == CONCEPTUAL_TEST or \
            f"{CONCEPTUAL_TEST}.py::" in str(r.get("nodeid") or ""):
        return Unit.CONCEPTUAL
    return Unit.FUNCTIONAL


def _units(kind: str) -> tuple[Unit, ...]:
    return {"conceptual": (Unit.CONCEPTUAL,), "functional": (Unit.FUNCTIONAL,)}.get(kind, tuple(Unit))


def _decide(r: dict[str, Any], kind: str, decisions: dict[str, Assessments], model: str | None) -> dict[str, Any]:
    """Who or what decided a pytest result: the suite's test (automated) or the assessor's record
    (of the sample's model; of the only record when the model is unknown)."""
    if r["decided_by"] is not None:
        return r["decided_by"]
    if _unit(r, kind) is Unit.CONCEPTUAL:
        mine = decisions.get(model or "") or (next(iter(decisions.values())) if len(decisions) == 1 else None)
        recorded = mine if mine is not None and mine.decision(r["test_case"] or "") else None
        decision = recorded.decision(r["test_case"]) if recorded else None
        return {"how": DecidedBy.CONCEPTUAL_DECISION,
                "assessor": recorded.assessor.model_dump() if recorded else None,
                "date": str(recorded.data.date) if recorded else None,
                "reasoning": decision.reasoning if decision else None,
                "ixit_refs": list(decision.ixit_refs) if decision else []}
    return {"how": DecidedBy.AUTOMATED, "test": r["test"] or r["nodeid"], "nodeid": r["nodeid"],
            "bench": r["executed_on"], "evidence": list(r["evidence"])}


def _provisions(catalog: Catalog, results: list[dict[str, Any]], ics: dict[str, Ics], samples: list[Sample],
                decisions: dict[str, Assessments]) -> list[dict[str, Any]]:
    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if r["test_case"]:
            by_case[r["test_case"]].append(r)
    model_of = {s.slot: s.model for s in samples}
    out = []
    for prov in catalog.provisions:
        cases = []
        for tc in prov.test_cases:
            rows = sorted(by_case.get(tc.id, []), key=lambda r: (r["bench"] or "", r["attempt"]))
            for r in rows:
                r["decided_by"] = _decide(r, tc.kind, decisions, model_of.get(r["bench"]))
            hows = sorted({r["decided_by"]["how"] for r in rows}) or [DecidedBy.NONE]
            cases.append({"id": tc.id, "kind": tc.kind, "coverage": tc.coverage, "title": prov.title or "",
                          "purpose": getattr(tc, "purpose", None), "note": tc.note, "decided_by": hows,
                          "results": rows})
        entry = _ics_entry(ics, prov.id)
        verdict, reason, missing = _provision_verdict(prov, cases, samples, ics)
        out.append({"id": prov.id, "chapter": _chapter(prov.id), "title": prov.title or "",
                    "status": prov.status.code(), "requirement": prov.status.level,
                    "recommendation_not_implemented": _not_implemented(prov, entry),
                    "verdict": verdict, "reason": reason, "missing": missing, "ics": entry, "test_cases": cases})
    return out


def _not_implemented(prov: Provision, entry: dict[str, str] | None) -> bool:
    """A recommendation the ICS answers N: left unmet with a justification (EN 303 645 clause 4)."""
    return prov.status.requirement == "R" and entry is not None and entry["support"] == "N"


def _ics_entry(ics: dict[str, Ics], provision: str) -> dict[str, str] | None:
    """The ICS row for a provision; with several models, the first that answers it."""
    for model in sorted(ics):
        entry = ics[model].entry(provision)
        if entry is not None:
            return {"support": entry.support, "detail": entry.detail}
    return None


def _out_of_scope(prov: Provision, sample: Sample | None, ics: dict[str, Ics]) -> str | None:
    """The ICS justification when the provision does not apply to a sample's model, else None."""
    models = [sample.model] if sample is not None else sorted(ics)
    for model in models:
        found = ics.get(model) or (next(iter(ics.values())) if len(ics) == 1 else None)
        entry = found.entry(prov.id) if found is not None else None
        if entry is None:
            continue
        if entry.support == "N/A":
            return entry.detail
        if prov.status.requirement == "R" and entry.support == "N":
            return f"recommendation not implemented, justified in the ICS (see 4-1-1): {entry.detail}"
    return None


def _provision_verdict(prov: Provision, cases: list[dict[str, Any]], samples: list[Sample],
                       ics: dict[str, Ics]) -> tuple[ProvisionVerdict, str, list[dict[str, Any]]]:
    """The decision rule: FAIL > INCONCLUSIVE > NOT_ASSESSED > PASS; NOT_APPLICABLE only from the ICS.

    PASS needs every in-scope test case (each unit of a conceptual/functional one) decided on
    every sample, all PASS. Returns (verdict, reason, missing) with missing = [{test_case, unit, samples}]."""
    results = [r for c in cases for r in c["results"]]
    first = {v: next((r for r in results if r["verdict"] == v), None) for v in (Verdict.FAIL, Verdict.INCONCLUSIVE)}
    if first[Verdict.FAIL]:
        r = first[Verdict.FAIL]
        return ProvisionVerdict.FAIL, f"{r['test_case']} failed on sample {r['dut_serial']}: {r['reason']}", []
    if first[Verdict.INCONCLUSIVE]:
        r = first[Verdict.INCONCLUSIVE]
        return (ProvisionVerdict.INCONCLUSIVE,
                f"{r['test_case']} undecided on sample {r['dut_serial']}: {r['reason']}", [])
    in_scope = [s for s in samples if _out_of_scope(prov, s, ics) is None]
    if not samples and (why := _out_of_scope(prov, None, ics)):
        return ProvisionVerdict.NOT_APPLICABLE, why, []
    if samples and not in_scope:
        return ProvisionVerdict.NOT_APPLICABLE, _out_of_scope(prov, samples[0], ics) or "", []
    if not cases:
        return (ProvisionVerdict.NOT_ASSESSED, f"the catalogue has no TS 103 701 test case for {prov.id}: it cannot "
                "be assessed by test", [{"test_case": None, "unit": None, "samples": []}])
    missing: list[dict[str, Any]] = []
    stray: list[str] = []
    for case in cases:
        for unit in _units(case["kind"]):
            lacking = []
            for s in in_scope or [None]:
                rows = [r for r in case["results"] if s is not None and r["bench"] == s.slot
                        and _unit(r, case["kind"]) is unit]
                if not rows:
                    lacking.append(s.serial if s is not None else "no sample")
                elif any(r["verdict"] == Verdict.NOT_APPLICABLE for r in rows):
                    stray.append(f"{case['id']} on sample {s.serial}")
            if lacking:
                missing.append({"test_case": case["id"], "unit": unit if case["kind"] == "both" else None,
                                "samples": lacking})
    if stray:
        return (ProvisionVerdict.INCONCLUSIVE, f"{', '.join(stray)} gave NOT_APPLICABLE, but the ICS declares "
                f"{prov.id} applicable (NOT_APPLICABLE comes only from the ICS)", [])
    if missing:
        return ProvisionVerdict.NOT_ASSESSED, "no result for " + "; ".join(_missing_text(m) for m in missing), missing
    passed = sum(1 for r in results if r["verdict"] == Verdict.PASS)
    left = [s.serial for s in samples if s not in in_scope]
    na = f"; not applicable to sample(s) {', '.join(left)} by their ICS" if left else ""
    return (ProvisionVerdict.PASS, f"all {len(cases)} test case(s) passed on {len(in_scope)} sample(s) "
            f"({passed} result(s)){na}", [])


def _missing_text(m: dict[str, Any]) -> str:
    unit = f" ({m['unit']} unit)" if m.get("unit") else ""
    return f"{m['test_case']}{unit} on {', '.join(m['samples'])}"


def _chapter(provision_id: str) -> str:
    return provision_id.split("-", 1)[0]


def _chapters(provisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for p in provisions:
        grouped.setdefault(p["chapter"], []).append(p)
    chapters = []
    for chapter, provs in grouped.items():
        counts = Counter(p["verdict"] for p in provs)
        chapters.append({"chapter": chapter, "title": CHAPTER_TITLES.get(chapter, ""),
                         "counts": {v: counts.get(v, 0) for v in (*VERDICTS, NOT_ASSESSED)},
                         "verdict": _worst(counts)})
    return chapters


def _worst(counts: Counter) -> ProvisionVerdict:
    """FAIL > INCONCLUSIVE > NOT_ASSESSED > PASS > NOT_APPLICABLE: never PASS over a gap."""
    for verdict in (ProvisionVerdict.FAIL, ProvisionVerdict.INCONCLUSIVE, ProvisionVerdict.NOT_ASSESSED,
                    ProvisionVerdict.PASS, ProvisionVerdict.NOT_APPLICABLE):
        if counts.get(verdict):
            return verdict
    return ProvisionVerdict.NOT_ASSESSED


def _not_assessed(provisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What keeps the assessment from being complete: each NOT_ASSESSED provision and its missing cases."""
    return [{"provision": p["id"], "requirement": p["requirement"],
             "missing": [m["test_case"] for m in p["missing"] if m["test_case"]], "reason": p["reason"]}
            for p in provisions if p["verdict"] == ProvisionVerdict.NOT_ASSESSED]


def _short_result(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("provision", "test_case", "test", "bench", "executed_on", "dut_serial", "reason",
                              "cause", "attempt", "nodeid")}


def _deviations(results: list[dict[str, Any]], provisions: list[dict[str, Any]], catalog: Catalog) -> list[str]:
    """What departs from the method as planned: spares, retries, cancellations, scope left out."""
    out = []
    for r in results:
        if r["executed_on"] and r["executed_on"] != r["bench"]:
            out.append(f"{r['test_case'] or r['test']} for slot {r['bench']} ran on spare bench {r['executed_on']} "
                       f"(sample {r['dut_serial']}, attempt {r['attempt']}) after a lab fault on {r['bench']}.")
        elif r["attempt"] > 1:
            out.append(f"{r['test_case'] or r['test']} on {r['bench']} was repeated (attempt {r['attempt']}) "
                       f"after a lab fault.")
    cancelled = sum(1 for r in results if r.get("cause") == "cancelled")
    if cancelled:
        out.append(f"The run was cancelled by the operator: {cancelled} test(s) were not completed.")
    skipped = [p["id"] for p in provisions if p["verdict"] == NOT_ASSESSED]
    if skipped:
        out.append(f"The assessment is incomplete: {len(skipped)} provision(s) of {catalog.en} have test cases "
                   f"without a result and are NOT_ASSESSED: {', '.join(skipped)}.")
    if catalog.confidence != "confirmed":
        out.append(f"certlab's catalogue of {catalog.en} / {catalog.ts} is marked '{catalog.confidence}': "
                   "provision statuses and test case ids are to be confirmed against the published documents.")
    return out


# --- items, equipment, evidence -------------------------------------------------------------

def _items(benches: list[str], inventory: Inventory | None, inputs: dict[str, Any],
           ics: dict[str, Ics]) -> list[dict[str, Any]]:
    releases = inputs.get("firmware") or []
    items = []
    for name in benches:
        cfg = inventory.benches.get(name) if inventory else None
        if cfg is None:
            items.append({"bench": name, "model": "unknown", "serial": "unknown", "firmware": "unknown"})
            continue
        dut = cfg.dut
        release = next((f for f in releases if f.get("model") == dut.model and f.get("version") == dut.firmware), None)
        items.append({
            "model": dut.model, "vendor": ics[dut.model].product.vendor if dut.model in ics else None,
            "serial": dut.serial, "firmware": dut.firmware,
            "firmware_sha256": release["sha256"] if release else None,
            "firmware_file": release["file"] if release else None,
            "mac": dut.mac, "received_on": dut.received_on.isoformat() if dut.received_on else None,
            "condition_on_receipt": dut.condition, "bench": name,
        })
    return items


def _equipment(run_dir: Path, benches: list[str], results: list[dict[str, Any]],
               inventory: Inventory | None) -> list[dict[str, Any]]:
    used = list(dict.fromkeys([*benches, *(r["executed_on"] for r in results if r["executed_on"])]))
    out = []
    for name in used:
        recorded = run_dir / "evidence" / name / "equipment.json"
        if recorded.is_file():
            try:
                out.append(json.loads(recorded.read_text(encoding="utf-8")))
                continue
            except ValueError:
                pass
        cfg = inventory.benches.get(name) if inventory else None
        if cfg is not None:
            out.append({"bench": name, "capabilities": list(cfg.capabilities),
                        "power": {"driver": cfg.power.driver, "channel": cfg.power.channel,
                                  "resource": cfg.power.endpoint,
                                  "identification": None},
                        "console": {"url": cfg.console.url, "baud": cfg.console.baud},
                        "network": {"address": cfg.network.address, "interface": cfg.network.interface},
                        "ssh": {"client": None, "server": None}})
    return out


def _evidence_index(run_dir: Path) -> list[dict[str, Any]]:
    entries = []
    for top in ("evidence", "inputs"):
        root = run_dir / top
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                entries.append({"path": path.relative_to(run_dir).as_posix(), "sha256": sha256_file(path),
                                "size": path.stat().st_size})
    return entries


def _approval(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / APPROVAL_FILE
    if not path.exists():
        return None
    data = read_json(path, "remove it and approve the report again")
    return {"by": data.get("by"), "role": data.get("role"), "at": data.get("at")}


# --- small helpers --------------------------------------------------------------------------

def _testing_dates(results: list[dict[str, Any]], spec: dict[str, Any]) -> tuple[str | None, str | None]:
    finished = sorted(r["finished"] for r in results if r.get("finished"))
    started = spec.get("created") or (finished[0] if finished else None)
    return started, (finished[-1] if finished else None)


def _edition_key(value: str) -> str:
    """'v2' as run.json says it, or the label verdicts.json carries ('EN 303 645 V2.1.1 / ...')."""
    return {label: key for key, label in EDITION_LABELS.items()}.get(value, value)


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _short(path: str) -> str:
    """A suite path as the lab knows it (relative to the project), not this machine's absolute path."""
    parts = Path(path).parts
    return "/".join(parts[parts.index("testsuites"):]) if "testsuites" in parts else path


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
