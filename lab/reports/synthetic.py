"""A synthetic finished run, as `certlab run` leaves it, for benchmarks and certlab's own tests.

Reports must be measured and tested at sizes no simulated lab produces in a test's time (10,000
results), so this writes a run directory of the same shape: run.json, verdicts.json, the inputs
copy, per-result evidence files and allure-pytest's result files. The verdicts are drawn from a
seeded generator; the product files are the simulated thermostat's, so the ICS is real.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

from lab import resources
from lab.catalog import EDITION_LABELS, load_catalog

STATUS = {"PASS": "passed", "FAIL": "failed", "NOT_APPLICABLE": "skipped", "INCONCLUSIVE": "broken"}
REASONS = {
    "PASS": "",
    "FAIL": "assert 'login accepted' == 'login refused': the DUT accepted password 'admin' for root",
    "NOT_APPLICABLE": "ICS: provision N/A: condition not met",
    "INCONCLUSIVE": "bench {bench}: power relay fault: no answer to OUTP? within 2.0 s (3 tries)",
}


def make_run(root: Path, *, results: int = 100, samples: int = 4, run_id: str = "20261126-000000-synth1",
             seed: int = 1, allure: bool = True, evidence_bytes: int = 600) -> Path:
    """Write a finished run of about `results` results on `samples` benches; returns its directory."""
    rng = random.Random(seed)
    run_dir = root / run_id
    (run_dir / "inputs" / "products" / "TH-100").mkdir(parents=True)
    benches = [f"bench{i + 1}" for i in range(samples)]
    _inputs(run_dir)
    cases = [tc for tc in load_catalog("v2").test_cases]
    rows = []
    allure_dir = run_dir / "allure-results"
    allure_dir.mkdir()
    start = 1_795_600_000_000
    for n in range(results):
        bench = benches[n % samples]
        tc = cases[(n // samples) % len(cases)]
        repeat = n // (samples * len(cases))
        verdict = rng.choices(list(STATUS), weights=(85, 5, 8, 2))[0]
        nodeid = f"testsuites/en303645/test_synthetic.py::test_case[{tc.id}-{repeat}-{bench}]"
        evidence_dir = run_dir / "evidence" / bench
        evidence_dir.mkdir(parents=True, exist_ok=True)
        own = evidence_dir / f"{tc.id}-r{repeat}-measured.json"
        own.write_text(json.dumps({"test_case": tc.id, "bench": bench, "values": "x" * evidence_bytes}),
                       encoding="utf-8")
        finished = start + n * 1000
        rows.append({
            "bench": bench, "dut_serial": f"TH100-{int(bench[5:]):04d}", "firmware": "1.4.0",
            "test_case": tc.id, "test": "test_case", "provision": tc.provision, "verdict": verdict,
            "reason": REASONS[verdict].format(bench=bench), "cause": "lab-fault" if verdict == "INCONCLUSIVE" else None,
            "evidence": [f"evidence/{bench}/{own.name}", f"evidence/{bench}/console-{bench}.log"],
            "nodeid": nodeid, "executed_on": bench, "attempt": 1, "duration": 0.8,
            "finished": _stamp(finished),
        })
        if allure:
            _allure_result(allure_dir, nodeid, tc.id, tc.provision, bench, verdict, finished, own)
    for bench in benches:
        (run_dir / "evidence" / bench / f"console-{bench}.log").write_text(
            "".join(f"[{i:06d}] Starting kernel ...\n" for i in range(200)), encoding="utf-8")
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "inventory": str(resources.sim_inventory()), "benches": benches, "suites": ["testsuites/en303645"],
        "options": [], "edition": "v2", "campaign": None, "store": "sqlite:///synthetic", "created": _stamp(start),
    }, indent=2), encoding="utf-8")
    (run_dir / "verdicts.json").write_text(json.dumps({
        "run_id": run_id, "edition": EDITION_LABELS["v2"], "lab": "sim", "results": rows,
    }, indent=1), encoding="utf-8")
    return run_dir


def _inputs(run_dir: Path) -> None:
    folder = run_dir / "inputs"
    index: dict[str, Any] = {"inventory": _copy(resources.sim_inventory(), folder / "inventory.yaml", run_dir),
                             "products": {"TH-100": {}}, "firmware": []}
    for kind in ("ics", "ixit", "assessments"):
        index["products"]["TH-100"][kind] = _copy(resources.example("products/TH-100") / f"{kind}.yaml",
                                                  folder / "products" / "TH-100" / f"{kind}.yaml", run_dir)
    (folder / "inputs.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


def _copy(source: Path, target: Path, run_dir: Path) -> dict[str, str]:
    shutil.copyfile(source, target)
    return {"source": str(source), "file": target.relative_to(run_dir).as_posix(),
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}


def _allure_result(folder: Path, nodeid: str, test_case: str, provision: str, bench: str, verdict: str,
                   stop: int, evidence: Path) -> None:
    """One result file as allure-pytest writes it, with certlab's labels and one attachment."""
    result_uuid = str(uuid.uuid4())
    attachment = f"{uuid.uuid4()}-attachment.json"
    shutil.copyfile(evidence, folder / attachment)
    status = STATUS[verdict]
    doc = {
        "name": nodeid.rsplit("::", 1)[1], "status": status, "uuid": result_uuid,
        "historyId": hashlib.md5(nodeid.encode()).hexdigest(),
        "testCaseId": hashlib.md5(nodeid.split("[")[0].encode()).hexdigest(),
        "fullName": "testsuites.en303645.test_synthetic#test_case", "start": stop - 800, "stop": stop,
        "steps": [{"name": f"power cycle (bench={bench})", "status": "passed", "start": stop - 800, "stop": stop - 400}],
        "attachments": [{"name": evidence.name, "source": attachment, "type": "application/json"}],
        # allure-pytest names each pytest parameter; without it Allure would take all results for
        # retries of one test (same testCaseId, same parameters)
        "parameters": [{"name": "case", "value": repr(nodeid.split("[", 1)[1][:-1])}, {"name": "bench", "value": bench}, {"name": "DUT serial", "value": f"TH100-{int(bench[5:]):04d}"},
                       {"name": "firmware", "value": "1.4.0"}],
        "labels": [{"name": "epic", "value": EDITION_LABELS["v2"]}, {"name": "feature", "value": provision.split("-")[0]},
                   {"name": "story", "value": provision}, {"name": "test_case", "value": test_case},
                   {"name": "bench", "value": bench}, {"name": "nodeid", "value": nodeid},
                   {"name": "severity", "value": "critical"}, {"name": "framework", "value": "pytest"}],
    }
    if status != "passed":
        doc["statusDetails"] = {"message": REASONS[verdict].format(bench=bench)}
    (folder / f"{result_uuid}-result.json").write_text(json.dumps(doc), encoding="utf-8")


def _stamp(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
