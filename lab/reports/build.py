"""`certlab report DIR` and `certlab report approve DIR`: from a finished run to a signed lab report.

The order matters: Allure first (the conformance report links into it), then the conformance
document, its HTML and PDF, and last the manifest and its signature, so that the signature
covers every file the certifier receives. Approval re-renders the conformance report as
approved and signs again. Every step checks its inputs before it writes anything.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.reports import allure
from lab.reports.approval import check_approval, write_approval
from lab.reports.conformance import (
    APPROVAL_FILE,
    HTML_FILE,
    JSON_FILE,
    PDF_FILE,
    build_document,
    package_version,
    read_json,
    write_document,
)
from lab.reports.errors import ReportError
from lab.reports.keys import load_private_key, load_public_key
from lab.reports.manifest import sign_run, verify_run
from lab.reports.pdf import chromium_command, print_pdf
from lab.reports.profile import LabProfile, load_profile
from lab.reports.render import write_html


@dataclass
class ReportOutcome:
    run_dir: Path
    doc: dict[str, Any]
    allure_report: Path | None = None
    allure_single: Path | None = None
    html: Path | None = None
    pdf: Path | None = None
    signed: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # step -> seconds, for `bench/report.py`


def find_profile(run_dir: Path, explicit: Path | None = None) -> LabProfile:
    """The lab profile: `--lab-profile`, else the one the run's inventory names (`lab_profile:`)."""
    run_dir = _run_dir(run_dir)
    if explicit is not None:
        return load_profile(explicit)
    spec = read_json(run_dir / "run.json", "give a run directory made by `certlab run`")
    inventory = Path(spec.get("inventory") or "")
    from lab.inventory import load_inventory  # the run's own copy first: it is what the run had

    for candidate in (run_dir / "inputs" / "inventory.yaml", inventory):
        if not candidate.is_file():
            continue
        try:
            inv = load_inventory(candidate)
        except Exception:  # noqa: BLE001 - an unreadable copy: try the live file
            continue
        if inv.lab_profile:
            path = Path(inv.lab_profile).expanduser()
            return load_profile(path if path.is_absolute() else inventory.parent / path)
    raise ReportError(f"{run_dir}: no lab profile (the lab's name, address and signatories); fix: pass "
                      f"--lab-profile FILE or set 'lab_profile:' under all.vars.certlab in {inventory} "
                      f"(see inventory/lab-profile.yaml)")


def build_report(run_dir: Path, *, profile: LabProfile, data_dir: Path, with_allure: bool = True,
                 single_file: bool = False, with_pdf: bool = True, sign: bool = True,
                 redo_approved: bool = False) -> ReportOutcome:
    run_dir = _run_dir(run_dir)
    if (run_dir / APPROVAL_FILE).exists() and not redo_approved:
        approved = read_json(run_dir / APPROVAL_FILE, "")
        raise ReportError(f"{run_dir}: the report is approved (by {approved.get('by')}, {approved.get('at')}); "
                          f"a new report needs a new approval: pass --redo to make a new draft")
    key = load_private_key() if sign else None  # before any work: no key, no half-made report
    if with_pdf:
        chromium_command()
    outcome = ReportOutcome(run_dir=run_dir, doc={})
    links: dict[str, str] = {}
    tools: dict[str, str] = {}
    allure_href = None
    if with_allure:
        links, tools, allure_href = _allure(run_dir, outcome, data_dir, single_file)
    (run_dir / APPROVAL_FILE).unlink(missing_ok=True)
    (run_dir / "approval.sig").unlink(missing_ok=True)
    _conformance(run_dir, outcome, profile, links=links, tools=tools, allure_href=allure_href, with_pdf=with_pdf)
    if key is not None:
        started = time.monotonic()
        sign_run(run_dir, key)
        outcome.seconds["sign"] = round(time.monotonic() - started, 3)
        outcome.signed = True
    return outcome


def approve_report(run_dir: Path, *, by: str, role: str, profile: LabProfile, with_pdf: bool = True) -> ReportOutcome:
    """Approve the draft: only an intact, signed run with a conformance report can be approved."""
    run_dir = _run_dir(run_dir)
    person = profile.authoriser(by, role)
    doc = read_json(run_dir / JSON_FILE, f"make the report first with `certlab report {run_dir}`")
    if (run_dir / APPROVAL_FILE).exists():
        raise ReportError(f"{run_dir}: already approved; fix: `certlab report --redo {run_dir}` makes a new draft "
                          f"to approve")
    key = load_private_key()
    result = verify_run(run_dir, load_public_key())
    if not result.intact:
        raise ReportError(f"{run_dir}: refusing to approve a run that does not verify "
                          f"({'; '.join(result.problems()[:3])}); fix: find out why with `certlab verify {run_dir}`")
    write_approval(run_dir, by=person.name, role=person.role, report_id=doc["report"]["id"], key=key)
    outcome = ReportOutcome(run_dir=run_dir, doc={})
    links = _links_from(doc)
    allure_href = (doc.get("links") or {}).get("allure_report")
    _conformance(run_dir, outcome, profile, links=links, tools=_tools_from(doc), allure_href=allure_href,
                 with_pdf=with_pdf)
    sign_run(run_dir, key)
    outcome.signed = True
    return outcome


def approval_status(run_dir: Path, public_key_path: Path | None = None):
    return check_approval(_run_dir(run_dir), load_public_key(public_key_path))


# --- steps ----------------------------------------------------------------------------------

def _allure(run_dir: Path, outcome: ReportOutcome, data_dir: Path, single_file: bool) -> tuple[dict, dict, str | None]:
    spec = read_json(run_dir / "run.json", "")
    verdicts = read_json(run_dir / "verdicts.json", "")
    inputs = _inputs(run_dir)
    models = sorted((inputs.get("products") or {}).keys()) or ["unknown"]
    lab = verdicts.get("lab") or "lab"
    run_id = spec["run_id"]
    results_dir = run_dir / "allure-results"
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir}: no Allure results; fix: run the tests with `certlab run` "
                          f"(or pass --no-allure)")
    allure.write_metadata(results_dir, environment={
        "lab": lab, "operator": _operator(run_dir) or "", "certlab": package_version("certlab") or "",
        "run id": run_id, "inventory sha256": (inputs.get("inventory") or {}).get("sha256", ""),
        "edition": str(verdicts.get("edition") or spec.get("edition")), "benches": ", ".join(spec.get("benches", [])),
        "models": ", ".join(models),
    }, executor={"name": "certlab", "type": "certlab", "buildName": f"{lab} run {run_id}",
                 "reportName": f"certlab {lab} {run_id}"})
    history = allure.history_path(data_dir, lab, "+".join(models))
    started = time.monotonic()
    out = allure.generate(run_dir, report_name=f"{lab}: {', '.join(models)} ({run_id})", history_file=history)
    outcome.allure_report = out.path
    outcome.seconds["allure"] = round(time.monotonic() - started, 3)
    if single_file:
        started = time.monotonic()
        single = allure.generate(run_dir, report_name=f"{lab}: {', '.join(models)} ({run_id})", history_file=history,
                                 single_file=True)
        outcome.allure_single = single.path
        outcome.seconds["allure_single"] = round(time.monotonic() - started, 3)
    return out.links, {"allure": out.version}, os.path.relpath(out.path / "index.html", run_dir)


def _conformance(run_dir: Path, outcome: ReportOutcome, profile: LabProfile, *, links: dict[str, str],
                 tools: dict[str, str], allure_href: str | None, with_pdf: bool) -> None:
    started = time.monotonic()
    if with_pdf:
        tools = {**tools, "chromium": _chromium_version()}
    doc = build_document(run_dir, profile, allure_links=links, allure_report=allure_href, tools=tools, pdf=with_pdf)
    outcome.seconds["document"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    write_document(doc, run_dir / JSON_FILE)
    outcome.html = write_html(doc, run_dir / HTML_FILE)
    outcome.seconds["html"] = round(time.monotonic() - started, 3)
    outcome.doc = doc
    if with_pdf:
        results = doc["summary"]["counts"]
        timeout = 120 + 0.05 * sum(results.values())  # Chromium lays out ~100 results a second; 10,000 take ~2 min
        outcome.seconds["pdf"] = round(print_pdf(run_dir / HTML_FILE, run_dir / PDF_FILE, timeout=timeout), 3)
        outcome.pdf = run_dir / PDF_FILE
    else:
        (run_dir / PDF_FILE).unlink(missing_ok=True)  # an old PDF would disagree with the new HTML


def _links_from(doc: dict[str, Any]) -> dict[str, str]:
    links = {}
    for prov in doc.get("provisions", []):
        for tc in prov.get("test_cases", []):
            for r in tc.get("results", []):
                if r.get("allure") and r.get("nodeid"):
                    links[r["nodeid"]] = r["allure"]
    for r in doc.get("other_results", []):
        if r.get("allure") and r.get("nodeid"):
            links[r["nodeid"]] = r["allure"]
    return links


def _tools_from(doc: dict[str, Any]) -> dict[str, str]:
    software = (doc.get("method") or {}).get("software") or {}
    return {k: v for k, v in software.items() if k in ("allure", "chromium")}


def _chromium_version() -> str:
    try:
        proc = subprocess.run([*chromium_command(), "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        words = proc.stdout.split()
        return next((w for w in words if w[:1].isdigit()), proc.stdout.strip()[:60])
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _inputs(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "inputs" / "inputs.json"
    return read_json(path, "") if path.is_file() else {}


def _operator(run_dir: Path) -> str | None:
    from lab.inventory import load_inventory

    copy = run_dir / "inputs" / "inventory.yaml"
    try:
        return load_inventory(copy).operator if copy.is_file() else None
    except Exception:  # noqa: BLE001 - the operator is a courtesy in the Allure environment
        return None


def _run_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise ReportError(f"{run_dir}: not a run directory (no run.json); fix: give the directory `certlab run` "
                          f"printed (reports/<run-id>)")
    if not (run_dir / "verdicts.json").is_file():
        raise ReportError(f"{run_dir}: the run has not finished (no verdicts.json); fix: finish it with "
                          f"`certlab run --resume {run_dir}`")
    return run_dir.resolve()
