"""`certlab report` / `report approve` / `verify` as a lab engineer and a certifier use them.

A synthetic finished run (lab.reports.synthetic: the shape `certlab run` leaves, with the
simulated thermostat's real ICS) stands in for a run, so these tests need no simulated lab.
The Allure CLI and Chromium are the real ones. Keys live in tmp_path, never the user's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.orchestrator.inputs import explicit_files, record_inputs
from lab.inventory import load_inventory
from lab.reports.conformance import build_document
from lab.reports.manifest import verify_run
from lab.reports.profile import load_profile
from lab.reports.synthetic import make_run

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "inventory" / "lab-profile.yaml"
pytestmark = pytest.mark.usefixtures("key_dir")  # tests/conftest.py: keys in tmp_path, never the user's


def certlab(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})


def flip(path: Path, offset: int = 10) -> bytes:
    data = path.read_bytes()
    changed = bytearray(data)
    changed[min(offset, len(data) - 1)] ^= 0x01
    path.write_bytes(bytes(changed))
    return data


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One run reported once with everything (Allure, PDF, signature), shared by the read-only tests."""
    root = tmp_path_factory.mktemp("reported")
    keys = root / "keys"
    env = {**os.environ, "CERTLAB_KEY_DIR": str(keys), "CERTLAB_DATA_DIR": str(root / "data"), "COLUMNS": "200"}
    run_dir = make_run(root / "reports", results=60, samples=3)
    for args in (["keys", "init"], ["report", str(run_dir), "--lab-profile", str(PROFILE), "--single-file"]):
        proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, env=env,
                              timeout=180, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir, keys


def test_report_writes_every_part_and_names_them(reported: tuple[Path, Path]) -> None:
    run_dir, _ = reported
    for part in ("allure-report/index.html", "allure-report.html", "conformance.html", "conformance.json",
                 "conformance.pdf", "manifest.json", "manifest.sig"):
        assert (run_dir / part).is_file(), part
    assert (run_dir / "conformance.pdf").read_bytes().startswith(b"%PDF")
    doc = json.loads((run_dir / "conformance.json").read_text())
    assert doc["report"]["status"] == "draft" and doc["approval"] is None
    assert doc["report"]["id"] == f"CL-sim-{run_dir.name}"
    results = [r for p in doc["provisions"] for tc in p["test_cases"] for r in tc["results"]]
    assert len(results) == 60
    linked = [r for r in results if r["allure"]]
    assert linked and all(r["allure"].startswith("allure-report/index.html#") for r in linked)
    assert doc["method"]["software"]["allure"] == "3.18.0"
    assert doc["items"][0]["condition_on_receipt"] and doc["items"][0]["received_on"] == "2026-11-20"


VICTIMS = ["evidence/bench1/console-bench1.log", "verdicts.json", "conformance.html", "conformance.pdf",
           "conformance.json", "allure-report/index.html", "allure-report.html", "inputs/products/TH-100/ics.yaml"]


def test_one_flipped_byte_anywhere_fails_verify_naming_the_file(reported: tuple[Path, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, keys = reported
    monkeypatch.setenv("CERTLAB_KEY_DIR", str(keys))
    for victim in VICTIMS:  # the library call for each file; the command line once, below
        original = flip(run_dir / victim, offset=200)
        try:
            result = verify_run(run_dir, keys / "public_key.pem")
            assert not result.intact and result.changed == [victim], (victim, result.problems())
        finally:
            (run_dir / victim).write_bytes(original)
    original = flip(run_dir / "verdicts.json", offset=200)
    try:
        proc = certlab("verify", str(run_dir))
        assert proc.returncode == 1 and "changed: verdicts.json" in proc.stdout and "TAMPERED" in proc.stderr
    finally:
        (run_dir / "verdicts.json").write_bytes(original)
    assert certlab("verify", str(run_dir)).returncode == 0


def test_approve_signs_the_authoriser_and_the_report_says_approved(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "reports", results=20, samples=2, allure=False)
    assert certlab("keys", "init").returncode == 0
    made = certlab("report", str(run_dir), "--lab-profile", str(PROFILE), "--no-allure", "--no-pdf")
    assert made.returncode == 0, made.stderr
    assert "draft" in (run_dir / "conformance.html").read_text().lower()
    doc = json.loads((run_dir / "conformance.json").read_text())
    n = len(doc["summary"]["not_assessed"])
    assert n and f"incomplete assessment: {n} provision(s) NOT_ASSESSED" in made.stdout
    assert doc["summary"]["overall"] != "PASS" and "Incomplete assessment" in (run_dir / "conformance.html").read_text()

    wrong = certlab("report", "approve", str(run_dir), "--by", "Mallory", "--role", "Intern",
                    "--lab-profile", str(PROFILE), "--no-pdf")
    assert wrong.returncode == 2 and "not an authorised signatory" in wrong.stderr and "Alex Example" in wrong.stderr
    role = certlab("report", "approve", str(run_dir), "--by", "Alex Example", "--role", "Intern",
                   "--lab-profile", str(PROFILE), "--no-pdf")
    assert role.returncode == 2 and "--role 'Technical Manager'" in role.stderr

    ok = certlab("report", "approve", str(run_dir), "--by", "alex example", "--role", "technical manager",
                 "--lab-profile", str(PROFILE), "--no-pdf")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads((run_dir / "conformance.json").read_text())
    assert doc["report"]["status"] == "approved"
    assert doc["approval"]["by"] == "Alex Example" and doc["approval"]["role"] == "Technical Manager"
    html = (run_dir / "conformance.html").read_text()
    assert "Alex Example" in html and "Technical Manager" in html
    verified = certlab("verify", str(run_dir))
    assert verified.returncode == 0 and "approved by Alex Example (Technical Manager)" in verified.stdout

    again = certlab("report", "approve", str(run_dir), "--by", "Alex Example", "--role", "Technical Manager",
                    "--lab-profile", str(PROFILE), "--no-pdf")
    assert again.returncode == 2 and "already approved" in again.stderr
    remake = certlab("report", str(run_dir), "--lab-profile", str(PROFILE), "--no-allure", "--no-pdf")
    assert remake.returncode == 2 and "--redo" in remake.stderr
    redo = certlab("report", str(run_dir), "--lab-profile", str(PROFILE), "--no-allure", "--no-pdf", "--redo")
    assert redo.returncode == 0
    assert json.loads((run_dir / "conformance.json").read_text())["report"]["status"] == "draft"
    assert not (run_dir / "approval.json").exists()


def test_approval_refused_for_a_tampered_run_and_broken_by_a_later_change(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "reports", results=12, samples=2, allure=False)
    certlab("keys", "init")
    assert certlab("report", str(run_dir), "--lab-profile", str(PROFILE), "--no-allure", "--no-pdf").returncode == 0
    original = flip(run_dir / "verdicts.json")
    refused = certlab("report", "approve", str(run_dir), "--by", "Sam Sample", "--role", "Quality Manager",
                      "--lab-profile", str(PROFILE), "--no-pdf")
    assert refused.returncode == 2 and "does not verify" in refused.stderr and "verdicts.json" in refused.stderr
    (run_dir / "verdicts.json").write_bytes(original)
    assert certlab("report", "approve", str(run_dir), "--by", "Sam Sample", "--role", "Quality Manager",
                   "--lab-profile", str(PROFILE), "--no-pdf").returncode == 0
    forged = json.loads((run_dir / "approval.json").read_text())
    forged["by"] = "Someone Else"
    (run_dir / "approval.json").write_text(json.dumps(forged, sort_keys=True, separators=(",", ":")) + "\n")
    proc = certlab("verify", str(run_dir))
    assert proc.returncode == 1 and "bad approval" in proc.stdout and "changed: approval.json" in proc.stdout


def test_bad_or_missing_lab_profile_is_one_line_naming_the_field(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "reports", results=4, samples=1, allure=False)
    bad = tmp_path / "profile.yaml"
    bad.write_text("laboratory:\n  nme: Typo Lab\n  address: [1 Street]\n")
    proc = certlab("report", str(run_dir), "--lab-profile", str(bad), "--no-sign")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "laboratory.nme" in proc.stderr and "did you mean 'name'" in proc.stderr
    bad.write_text("laboratory:\n  name: Lab\n  address: []\n")
    proc = certlab("report", str(run_dir), "--lab-profile", str(bad), "--no-sign")
    assert proc.returncode == 2 and "laboratory.address" in proc.stderr
    proc = certlab("report", str(tmp_path), "--no-sign")
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
    no_key = certlab("report", str(run_dir), "--lab-profile", str(PROFILE), "--no-allure", "--no-pdf")
    assert no_key.returncode == 2 and "certlab keys init" in no_key.stderr
    assert not (run_dir / "conformance.html").exists()  # nothing half made


def test_provision_verdicts_follow_the_decision_rule(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "reports", results=8, samples=2, allure=False)
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    rows = verdicts["results"]
    row = dict(rows[0])

    def result(test_case: str, provision: str, bench: str, verdict: str, reason: str = "", cause=None,
               test: str = "test_x") -> dict:
        return {**row, "test_case": test_case, "provision": provision, "bench": bench, "executed_on": bench,
                "dut_serial": f"S-{bench}", "verdict": verdict, "reason": reason, "cause": cause, "test": test,
                "nodeid": f"t::{test}[{test_case}-{bench}]"}

    concept = "test_conceptual"
    verdicts["results"] = [
        result("5.1-1-2", "5.1-1", "bench1", "PASS"), result("5.1-1-2", "5.1-1", "bench2", "FAIL", "admin/admin works"),
        result("5.1-2-2", "5.1-2", "bench1", "PASS"), result("5.1-2-2", "5.1-2", "bench2", "INCONCLUSIVE",
                                                             "power relay fault", "lab-fault"),
        result("5.4-2-1", "5.4-2", "bench1", "NOT_APPLICABLE", "ICS N/A"),
        # 5.1-5: every case on every sample, one of them on a spare -> PASS
        result("5.1-5-1", "5.1-5", "bench1", "PASS", test=concept), result("5.1-5-1", "5.1-5", "bench2", "PASS", test=concept),
        result("5.1-5-2", "5.1-5", "bench1", "PASS"),
        {**result("5.1-5-2", "5.1-5", "bench2", "PASS"), "executed_on": "bench9", "attempt": 2},
        # 5.1-4: the conceptual decision alone never passes the provision
        result("5.1-4-1", "5.1-4", "bench1", "PASS", test=concept), result("5.1-4-1", "5.1-4", "bench2", "PASS", test=concept),
        # 5.1-3: functional case only on one sample
        result("5.1-3-1", "5.1-3", "bench1", "PASS", test=concept), result("5.1-3-1", "5.1-3", "bench2", "PASS", test=concept),
        result("5.1-3-2", "5.1-3", "bench1", "PASS"),
        # 5.2-1: a NOT_APPLICABLE the ICS does not give is not a pass
        result("5.2-1-1", "5.2-1", "bench1", "PASS", test=concept), result("5.2-1-1", "5.2-1", "bench2", "PASS", test=concept),
        result("5.2-1-2", "5.2-1", "bench1", "NOT_APPLICABLE", "skipped"), result("5.2-1-2", "5.2-1", "bench2", "PASS"),
    ]
    (run_dir / "verdicts.json").write_text(json.dumps(verdicts))
    doc = build_document(run_dir, load_profile(PROFILE), pdf=False)
    by_id = {p["id"]: p for p in doc["provisions"]}
    serials = [i["serial"] for i in doc["items"]]
    assert by_id["5.1-1"]["verdict"] == "FAIL" and "admin/admin works" in by_id["5.1-1"]["reason"]
    assert "S-bench2" in by_id["5.1-1"]["reason"]
    assert by_id["5.1-2"]["verdict"] == "INCONCLUSIVE"
    assert by_id["5.4-2"]["verdict"] == "NOT_APPLICABLE"
    assert by_id["5.4-2"]["reason"] == by_id["5.4-2"]["ics"]["detail"] and by_id["5.4-2"]["ics"]["support"] == "N/A"
    assert by_id["5.1-5"]["verdict"] == "PASS", by_id["5.1-5"]["reason"]
    assert by_id["5.1-4"]["verdict"] == "NOT_ASSESSED"
    assert by_id["5.1-4"]["missing"] == [{"test_case": "5.1-4-2", "unit": None, "samples": serials}]
    assert by_id["5.1-4"]["reason"] == f"no result for 5.1-4-2 on {', '.join(serials)}"
    assert by_id["5.1-3"]["verdict"] == "NOT_ASSESSED" and by_id["5.1-3"]["missing"][0]["samples"] == serials[1:]
    assert by_id["5.2-1"]["verdict"] == "INCONCLUSIVE" and "comes only from the ICS" in by_id["5.2-1"]["reason"]
    # the ICS's N/A and the recommendations it answers N, whether or not anything ran
    assert by_id["5.3-14"]["verdict"] == "NOT_APPLICABLE" and by_id["5.3-14"]["reason"] == by_id["5.3-14"]["ics"]["detail"]
    assert by_id["5.10-1"]["verdict"] == "NOT_APPLICABLE" and by_id["5.10-1"]["recommendation_not_implemented"]
    assert by_id["5.10-1"]["requirement"] == "recommended" and "not implemented, justified" in by_id["5.10-1"]["reason"]
    assert by_id["5.1-1"]["requirement"] == "mandatory" and not by_id["5.1-1"]["recommendation_not_implemented"]
    assert by_id["5.5-1"]["verdict"] == "NOT_ASSESSED"
    assert doc["summary"]["overall"] == "FAIL" and doc["summary"]["complete"] is False
    listed = {n["provision"]: n["missing"] for n in doc["summary"]["not_assessed"]}
    assert listed["5.1-4"] == ["5.1-4-2"] and "5.1-5" not in listed and "5.3-14" not in listed
    assert [r["test_case"] for r in doc["inconclusive"]] == ["5.1-2-2"]
    assert any("spare bench bench9" in d for d in doc["deviations"])
    assert any(d.startswith("The assessment is incomplete") for d in doc["deviations"])
    chapter = next(c for c in doc["summary"]["chapters"] if c["chapter"] == "5.1")
    assert chapter["verdict"] == "FAIL" and chapter["counts"]["FAIL"] == 1 and chapter["counts"]["INCONCLUSIVE"] == 1
    # how each test case was decided
    cases = {tc["id"]: tc for p in doc["provisions"] for tc in p["test_cases"]}
    assert cases["5.1-5-2"]["decided_by"] == ["automated"] and cases["5.1-4-2"]["decided_by"] == ["none"]
    auto = cases["5.1-5-2"]["results"][1]["decided_by"]
    assert auto["how"] == "automated" and auto["bench"] == "bench9" and auto["test"] == "test_x"
    concept_row = cases["5.1-5-1"]["results"][0]["decided_by"]
    assert concept_row["how"] == "conceptual decision" and concept_row["assessor"]["name"] == "Dana Reuter"
    assert "lock" in concept_row["reasoning"]


def test_no_provision_passes_on_gaps_and_a_complete_run_passes(tmp_path: Path) -> None:
    """Overall never PASS while a provision is NOT_ASSESSED; every case on every sample PASS -> complete."""
    from lab.catalog import load_catalog
    from lab.ics import load_ics

    run_dir = make_run(tmp_path / "reports", results=4, samples=2, allure=False)
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    row = dict(verdicts["results"][0])
    ics = load_ics(run_dir / "inputs" / "products" / "TH-100" / "ics.yaml", "v2")
    rows = []
    for tc in load_catalog("v2").test_cases:
        entry = ics.entry(tc.provision)
        if entry is not None and (entry.support == "N/A" or entry.support == "N"):
            continue
        for bench in ("bench1", "bench2"):
            for test in ({"conceptual": ["test_conceptual"], "functional": ["test_f"]}.get(tc.kind)
                         or ["test_conceptual", "test_f"]):
                rows.append({**row, "test_case": tc.id, "provision": tc.provision, "bench": bench, "executed_on": bench,
                             "verdict": "PASS", "reason": "", "test": test, "nodeid": f"t::{test}[{tc.id}-{bench}]"})
    verdicts["results"] = rows
    (run_dir / "verdicts.json").write_text(json.dumps(verdicts))
    doc = build_document(run_dir, load_profile(PROFILE), pdf=False)
    assert doc["summary"]["complete"] is True and doc["summary"]["not_assessed"] == []
    assert doc["summary"]["overall"] == "PASS"
    verdicts["results"] = [r for r in rows if r["test_case"] != "5.5-4-2" or r["bench"] != "bench2"]
    (run_dir / "verdicts.json").write_text(json.dumps(verdicts))
    doc = build_document(run_dir, load_profile(PROFILE), pdf=False)
    assert doc["summary"]["complete"] is False and doc["summary"]["overall"] == "NOT_ASSESSED"
    assert doc["summary"]["not_assessed"][0]["provision"] == "5.5-4"
    assert doc["summary"]["not_assessed"][0]["missing"] == ["5.5-4-2"]


def test_a_run_keeps_a_copy_of_its_inputs(tmp_path: Path) -> None:
    inv = load_inventory(ROOT / "inventory" / "sim.yaml")
    ics = tmp_path / "my-ics.yaml"
    ics.write_text((ROOT / "inventory" / "products" / "TH-100" / "ics.yaml").read_text())
    options = ["--edition", "v2", "--ics", str(ics)]
    assert explicit_files(options) == {"ics": str(ics)}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    index = record_inputs(run_dir, inv, benches=["bench1", "bench2"], edition="v2", options=options)
    assert index["products"]["TH-100"]["ics"]["source"] == str(ics.resolve())
    assert set(index["products"]["TH-100"]) == {"ics", "ixit", "ixit_files", "assessments"}
    # the file the IXIT names beside itself (security.txt's OpenPGP key) is kept beside its copy
    [key] = index["products"]["TH-100"]["ixit_files"]
    assert key["ref"] == "security-txt-key.asc" and key["file"] == "inputs/products/TH-100/security-txt-key.asc"
    assert (run_dir / key["file"]).read_bytes() == (ROOT / "inventory" / "products" / "TH-100" / key["ref"]).read_bytes()
    kept = load_inventory(run_dir / "inputs" / "inventory.yaml")  # the run's benches only (tests/test_run_confidentiality.py)
    assert set(kept.benches) == {"bench1", "bench2"} and kept.lab == inv.lab and kept.lab_profile == inv.lab_profile
    ics.write_text("changed after the run")  # the run's copy is what the report describes
    assert "provisions" in (run_dir / "inputs" / "products" / "TH-100" / "ics.yaml").read_text()


def test_an_inventory_names_a_lab_profile_that_is_checked_up_front(tmp_path: Path) -> None:
    text = (ROOT / "inventory" / "sim.yaml").read_text()
    (tmp_path / "secrets").symlink_to(ROOT / "inventory" / "secrets")
    inv = tmp_path / "lab.yaml"
    inv.write_text(text.replace("lab_profile: lab-profile.yaml", "lab_profile: profile.yaml"))
    (tmp_path / "profile.yaml").write_text("laboratory:\n  name: Lab\n  address: [1 Street]\n"
                                           "signatories:\n  - {name: A, rle: Manager}\n")
    proc = certlab("inventory", "check", "-i", str(inv))
    assert proc.returncode == 2 and "signatories[0].rle: unknown field; did you mean 'role'" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "profile.yaml").unlink()
    proc = certlab("inventory", "check", "-i", str(inv))
    assert proc.returncode == 2 and "profile.yaml: file not found" in proc.stderr


def test_a_conceptual_and_functional_case_needs_both_units(tmp_path: Path) -> None:
    """5.3-10-1 is both: the assessor's decision alone leaves its functional unit without a result."""
    run_dir = make_run(tmp_path / "reports", results=4, samples=2, allure=False)
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    row = dict(verdicts["results"][0])
    verdicts["results"] = [{**row, "test_case": "5.3-10-1", "provision": "5.3-10", "bench": b, "executed_on": b,
                            "verdict": "PASS", "reason": "", "test": "test_conceptual",
                            "nodeid": f"testsuites/en303645/test_conceptual.py::test_conceptual[5.3-10-1-{b}]"}
                           for b in ("bench1", "bench2")]
    (run_dir / "verdicts.json").write_text(json.dumps(verdicts))
    doc = build_document(run_dir, load_profile(PROFILE), pdf=False)
    p = next(p for p in doc["provisions"] if p["id"] == "5.3-10")
    assert p["verdict"] == "NOT_ASSESSED" and [m["unit"] for m in p["missing"]] == ["functional"], p
    assert "5.3-10-1 (functional unit) on" in p["reason"]
    assert p["test_cases"][0]["decided_by"] == ["conceptual decision"]


def test_a_runs_option_is_read_in_either_form_and_the_last_one_counts() -> None:
    from lab.orchestrator.rundir import option_value

    assert option_value(["--ics", "a.yaml", "-k", "x"], "--ics") == "a.yaml"
    assert option_value(["--ics=b.yaml"], "--ics") == "b.yaml"
    assert option_value(["--ics", "a.yaml", "--ics=b.yaml"], "--ics") == "b.yaml"  # as pytest takes it
    assert option_value(["--ics"], "--ics") is None and option_value(["--icsx", "c"], "--ics") is None
    assert explicit_files(["--ixit=i.yaml", "--assessments", "d.yaml"]) == {"ixit": "i.yaml", "assessments": "d.yaml"}
