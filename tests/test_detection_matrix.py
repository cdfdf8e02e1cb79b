"""The detection matrix: every automated test case is shown to detect what it checks.

All EN 303 645 suites run on the conforming TH-100 of `inventory/sim-flaws.yaml` (split over two
conforming samples side by side, `conforming` and `conforming_2`, which get only PASS and
NOT_APPLICABLE); each flawed sample runs the test cases of its flaw's provisions
(`certlab run --provision`, a re-test as a lab would do it) and gets a FAIL, with a reason, in
each of them; and every automated test case FAILs on at least one flaw (a test that cannot fail
is a defect). The signed report's document says the same. The runs go side by side, as one lab
runs several re-tests at once; a flawed sample's full run is `certlab run -b <flaw>`. The second
conforming sample, `conforming_fixed`, is the non-updatable TH-10: it runs the provisions about
published information (5.2-1, 5.3-13, and 5.3-14, which only a non-updatable product has).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from lab.flaws import FLAWS
from lab.inventory import load_inventory
from lab.reports.conformance import build_document
from lab.reports.profile import load_profile
from lab.sim.lab import SimLab
from lab.sim.netns import unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventory" / "sim-flaws.yaml"
SUITES = ROOT / "testsuites" / "en303645"

CONFORMING = ("conforming", "conforming_2", "conforming_fixed")
# The conforming TH-100 runs every suite, split over two samples run side by side (a lab tests
# several samples at once): these modules on `conforming`, every other one on `conforming_2`.
FIRST_HALF = ("test_5_9_resilience.py", "test_5_13_input_validation.py", "test_5_11_deletion.py",
              "test_5_7_integrity.py", "test_5_4_secrets.py", "test_5_2_publication.py", "test_conceptual.py",
              "test_5_3_identity.py")
FIXED_PROVISIONS = ("5.2-1", "5.3-13", "5.3-14")

pytestmark = [
    pytest.mark.skipif(unavailable_reason() is not None, reason=f"needs network namespaces: {unavailable_reason()}"),
    pytest.mark.timeout(1800),  # every suite on 16 benches at once
]


def _runs() -> dict[str, list[str]]:
    """One `certlab run` per group of benches: the conforming one with everything, flaws by provisions."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for flaw in sorted(FLAWS):
        groups[FLAWS[flaw].provisions].append(flaw)
    first = [str(SUITES / m) for m in FIRST_HALF]
    rest = [str(m) for m in sorted(SUITES.glob("test_*.py")) if m.name not in FIRST_HALF]
    runs = {"conforming": ["-b", "conforming"] + [a for m in first for a in ("--suite", m)],
            "conforming_2": ["-b", "conforming_2"] + [a for m in rest for a in ("--suite", m)],
            # the non-updatable TH-10: what only such a product has, on its own conforming sample
            "conforming_fixed": ["-b", "conforming_fixed"] + [a for p in FIXED_PROVISIONS for a in ("--provision", p)]}
    for provisions, flaws in groups.items():
        runs["+".join(flaws)] = [arg for f in flaws for arg in ("-b", f)] + \
            [arg for p in provisions for arg in ("--provision", p)]
    return runs


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict:
    inv = load_inventory(INVENTORY)
    lab = SimLab(inv)
    out = tmp_path_factory.mktemp("matrix")
    profile = load_profile(ROOT / "inventory" / "lab-profile.yaml")
    procs: dict[str, subprocess.Popen] = {}
    said: dict[str, str] = {}
    try:
        lab.up()
        for name, args in _runs().items():
            (out / name).mkdir()
            suites = [] if "--suite" in args else ["--suite", str(SUITES)]
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "lab.cli", "run", "-i", str(INVENTORY), *args, *suites,
                 "--out", str(out / name)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
        for name, proc in procs.items():
            said[name] = proc.communicate(timeout=1500)[0]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        lab.down()
    doc: dict = {"results": [], "_exit": {}, "_stdout": said, "_conformance": {}}
    for name, proc in procs.items():
        runs = [p for p in (out / name).iterdir() if p.is_dir()]
        assert len(runs) == 1 and (runs[0] / "verdicts.json").is_file(), f"run {name}: {said[name][-3000:]}"
        verdicts = json.loads((runs[0] / "verdicts.json").read_text())
        doc["edition"] = verdicts["edition"]
        doc["results"] += verdicts["results"]
        doc["_exit"][name] = proc.returncode
        # the conformance report's own document of the run, as `certlab report` builds it
        document = build_document(runs[0], profile, pdf=False)
        for bench in {r["bench"] for r in verdicts["results"]}:
            doc["_conformance"][bench] = document
    doc["_serials"] = {name: bench.dut.serial for name, bench in inv.benches.items()}
    return doc


def _by_bench(doc: dict) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for r in doc["results"]:
        grouped[r["bench"]].append(r)
    return grouped


def test_runs_exit_0_on_the_conforming_sample_and_1_where_flaws_fail(matrix):
    for name in CONFORMING:
        assert matrix["_exit"][name] == 0, matrix["_stdout"][name][-3000:]
    wrong = {name: code for name, code in matrix["_exit"].items() if name not in CONFORMING and code != 1}
    assert not wrong, {name: matrix["_stdout"][name][-1500:] for name in wrong}
    assert matrix["edition"].startswith("EN 303 645 V2.1.1")


@pytest.mark.parametrize("sample", CONFORMING)
def test_conforming_sample_only_passes_or_is_not_applicable(matrix, sample):
    results = _by_bench(matrix)[sample]
    assert results, f"no result for the conforming bench {sample}"
    bad = [(r["test_case"], r["verdict"], r["reason"][:200]) for r in results if r["verdict"] not in ("PASS", "NOT_APPLICABLE")]
    assert not bad, bad


@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_each_flaw_fails_in_its_provision(matrix, flaw):
    results = _by_bench(matrix)[flaw]
    assert results, f"no result for bench {flaw}"
    wanted = {p for p in FLAWS[flaw].provisions}
    fails = [r for r in results if r["verdict"] == "FAIL"]
    hits = [r for r in fails if r["provision"] in wanted or (r["provision"] or "").rstrip("AB") in wanted]
    assert hits, f"{flaw}: no FAIL in {sorted(wanted)}; got {[(r['test_case'], r['verdict']) for r in results]}"
    for r in hits:
        assert len(r["reason"]) > 20, f"{flaw}: {r['test_case']} fails without a readable reason: {r['reason']!r}"
    # Only a sample that an earlier test bricked (a found defect) may leave later tests undecided.
    undecided = [r for r in results if r["verdict"] == "INCONCLUSIVE" and "no longer boots" not in r["reason"]]
    assert not undecided, f"{flaw}: INCONCLUSIVE results: {[(r['test_case'], r['reason'][:150]) for r in undecided]}"


def test_every_automated_test_case_can_fail(matrix):
    functional = {r["test_case"] for r in matrix["results"] if r["test_case"] and r["bench"] in CONFORMING
                  and r["verdict"] == "PASS" and not r["nodeid"].split("::")[0].endswith("test_conceptual.py")}
    failed = {r["test_case"] for r in matrix["results"] if r["verdict"] == "FAIL"}
    assert functional, "no functional test ran"
    assert functional <= failed, f"test cases that no flaw makes fail: {sorted(functional - failed)}"


# --- the signed report's view: what a certifier reads must say the same ---------------------------

def _provision_rows(matrix: dict, bench: str, provision: str, serial: str) -> tuple[dict, list[dict]]:
    entry = next(p for p in matrix["_conformance"][bench]["provisions"] if p["id"] == provision)
    return entry, [r for c in entry["test_cases"] for r in c["results"] if r["dut_serial"] == serial]


@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_the_conformance_document_fails_each_flaw_in_its_provisions(matrix, flaw):
    serial = matrix["_serials"][flaw]
    for provision in FLAWS[flaw].provisions:
        entry, mine = _provision_rows(matrix, flaw, provision, serial)
        assert entry["verdict"] == "FAIL", f"{flaw}: {provision} is {entry['verdict']} in the report: {entry['reason']}"
        assert any(r["verdict"] == "FAIL" for r in mine), \
            f"{flaw}: sample {serial} shows no FAIL in {provision}: {[(r['test_case'], r['verdict']) for r in mine]}"
        assert not mine or any(r["verdict"] != "PASS" for r in mine), f"{flaw}: {provision} all PASS on {serial}"


@pytest.mark.parametrize("sample", CONFORMING)
def test_the_conformance_document_has_no_fail_on_the_conforming_sample_and_names_what_is_missing(matrix, sample):
    doc = matrix["_conformance"][sample]
    serial = matrix["_serials"][sample]
    wrong = [(p["id"], r["test_case"], r["verdict"]) for p in doc["provisions"] for c in p["test_cases"]
             for r in c["results"] if r["dut_serial"] == serial and r["verdict"] in ("FAIL", "INCONCLUSIVE")]
    assert not wrong, f"the conforming sample is not clean in the report: {wrong}"
    for p in doc["provisions"]:
        if p["verdict"] == "NOT_ASSESSED":
            assert p["missing"] and p["reason"], f"{p['id']} is NOT_ASSESSED without naming what is missing"
            assert any(m["test_case"] for m in p["missing"]) or "no TS 103 701 test case" in p["reason"], p
    assert doc["summary"]["overall"] != "PASS" or doc["summary"]["complete"]
