"""Functional test cases the assessor performed by hand: the record, its checks, and its evidence
flowing into a signed conformance report (issue 13, part 2).

Synthetic run directories (lab.reports.synthetic) stand in for runs, so no simulated lab is
needed; the evidence is a small PNG each test writes itself. Keys live in tmp_path.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from lab.assessments import AssessmentsError, for_run, load_assessments
from lab.inventory import load_inventory
from lab.orchestrator.inputs import record_inputs
from lab.reports.conformance import build_document
from lab.reports.profile import load_profile
from lab.reports.synthetic import make_run

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "inventory" / "lab-profile.yaml"
INVENTORY = ROOT / "inventory" / "sim.yaml"
SHIPPED = ROOT / "inventory" / "products" / "TH-100" / "assessments.yaml"
SERIALS = ("TH100-0001", "TH100-0002")  # bench1 and bench2 of inventory/sim.yaml
pytestmark = pytest.mark.usefixtures("key_dir")


def png(path: Path, shade: int = 200) -> Path:
    """A real 2x2 grey PNG: what a photo of the casing or a screenshot would be, only smaller."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([shade, shade]) for _ in range(2))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


PERFORMED = '''
performed:
  "6-1-2":
    verdict: PASS
    reason: The privacy notice on the box and in the app says what personal data is processed, how and why.
    assessor: {name: "Sam Sample", role: "assessor"}
    date: 2026-11-21
    samples: [TH100-0001, TH100-0002]
    evidence: [photos/6-1-2-notice.png]
'''


def record(folder: Path, performed: str = PERFORMED) -> Path:
    """The shipped decisions plus a performed section, with its photo beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    png(folder / "photos" / "6-1-2-notice.png")
    path = folder / "assessments.yaml"
    path.write_text(SHIPPED.read_text() + performed)
    return path


def certlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})


def complete_but(run_dir: Path, provision: str, missing: str) -> None:
    """verdicts.json with every case of `provision` passed on both samples, except `missing`."""
    from lab.catalog import load_catalog

    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    row = dict(verdicts["results"][0])
    rows = []
    for tc in load_catalog("v2").provision(provision).test_cases:
        if tc.id == missing:
            continue
        for bench, serial in zip(("bench1", "bench2"), SERIALS):
            test = "test_conceptual" if tc.kind == "conceptual" else "test_f"
            rows.append({**row, "test_case": tc.id, "provision": provision, "bench": bench, "executed_on": bench,
                         "dut_serial": serial, "verdict": "PASS", "reason": "", "test": test,
                         "nodeid": f"t::{test}[{tc.id}-{bench}]", "evidence": []})
    verdicts["results"] = rows
    (run_dir / "verdicts.json").write_text(json.dumps(verdicts))


# --- the record ------------------------------------------------------------------------------

def test_a_performed_case_loads_with_its_assessor_samples_and_evidence(tmp_path: Path) -> None:
    a = load_assessments(record(tmp_path), "v2", model="TH-100")
    done = a.performed("6-1-2")
    assert done.verdict == "PASS" and done.samples == SERIALS and a.performed_by(done).name == "Sam Sample"
    assert a.evidence_path(done.evidence[0]).read_bytes().startswith(b"\x89PNG")
    plain = load_assessments(record(tmp_path / "b", PERFORMED.replace('    assessor: {name: "Sam Sample", role: "assessor"}\n', "")), "v2")
    assert plain.performed_by(plain.performed("6-1-2")).name == "Dana Reuter"  # the file's assessor


@pytest.mark.parametrize("change, expected", [
    (("6-1-2", "6-1-9"), "performed.6-1-9: test case '6-1-9' is not in"),
    (("6-1-2", "6-1-1"), "performed.6-1-1: 6-1-1 is a conceptual test case"),
    (("6-1-2", "5.1-1-2"), "performed.5.1-1-2: 5.1-1-2 is automated by certlab "
                             "(testsuites/en303645/test_5_1_passwords.py::test_5_1_1_2_no_universal_default_password)"),
    (("photos/6-1-2-notice.png", "photos/missing.png"), "performed.6-1-2.evidence[0]: file not found"),
    (("photos/6-1-2-notice.png", "../outside.png"), "performed.6-1-2.evidence: '../outside.png': give a path relative"),
    (("verdict: PASS", "verdict: MAYBE"), "performed.6-1-2.verdict: Input should be"),
    (("samples: [TH100-0001, TH100-0002]", "samples: []"), "performed.6-1-2.samples"),
    (("    date: 2026-11-21\n", ""), "performed.6-1-2.date: Field required"),
])
def test_bad_performed_records_give_one_line(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = record(tmp_path, PERFORMED.replace(*change))
    with pytest.raises(AssessmentsError) as exc:
        load_assessments(path, "v2", model="TH-100")
    text = str(exc.value)
    assert "\n" not in text and text.startswith(str(path)) and expected in text, text


def test_a_sample_not_in_the_run_is_refused_before_the_lab_moves(tmp_path: Path) -> None:
    inv = load_inventory(INVENTORY)
    path = record(tmp_path)
    assert set(for_run(inv, ["bench1", "bench2"], "v2", path)) == {"TH-100"}
    with pytest.raises(AssessmentsError, match=r"performed\.6-1-2\.samples\[1\]: 'TH100-0002' is not a sample of "
                                               r"this run \(TH-100 on bench1\); use the DUT serial"):
        for_run(inv, ["bench1"], "v2", path)
    # the command line: exit 2, one line, no traceback, before any bench is touched
    proc = certlab("run", "-i", str(INVENTORY), "--bench", "bench1", "--assessments", str(path))
    assert proc.returncode == 2 and "'TH100-0002' is not a sample of this run" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# --- into the report -------------------------------------------------------------------------

def made_run(tmp_path: Path, assessments: Path | None) -> Path:
    run_dir = make_run(tmp_path / "reports", results=4, samples=2, allure=False)
    options = ["--assessments", str(assessments)] if assessments else []
    record_inputs(run_dir, load_inventory(INVENTORY), benches=["bench1", "bench2"], edition="v2", options=options)
    complete_but(run_dir, "6-1", "6-1-2")
    return run_dir


def test_a_performed_result_turns_its_provision_from_not_assessed_to_pass(tmp_path: Path) -> None:
    before = build_document(made_run(tmp_path / "before", None), load_profile(PROFILE), pdf=False)
    p = next(p for p in before["provisions"] if p["id"] == "6-1")
    assert p["verdict"] == "NOT_ASSESSED" and p["missing"][0]["test_case"] == "6-1-2"
    assert {"provision": "6-1", "missing": ["6-1-2"]}.items() <= next(
        n for n in before["summary"]["not_assessed"] if n["provision"] == "6-1").items()

    run_dir = made_run(tmp_path / "after", record(tmp_path / "record"))
    after = build_document(run_dir, load_profile(PROFILE), pdf=False)
    p = next(p for p in after["provisions"] if p["id"] == "6-1")
    assert p["verdict"] == "PASS", p["reason"]
    assert "6-1" not in {n["provision"] for n in after["summary"]["not_assessed"]}
    case = next(tc for tc in p["test_cases"] if tc["id"] == "6-1-2")
    assert case["decided_by"] == ["assessor-performed"] and [r["dut_serial"] for r in case["results"]] == list(SERIALS)
    how = case["results"][0]["decided_by"]
    photo = "evidence/assessor/TH-100/6-1-2/6-1-2-notice.png"
    assert how["how"] == "assessor-performed" and how["assessor"] == {"name": "Sam Sample", "role": "assessor"}
    assert how["date"] == "2026-11-21" and how["samples"] == list(SERIALS) and how["evidence"] == [photo]
    assert case["results"][0]["evidence"] == [photo] and (run_dir / photo).read_bytes().startswith(b"\x89PNG")
    assert photo in {e["path"] for e in after["evidence_index"]}


def test_a_performed_result_with_its_photo_is_signed_and_a_changed_photo_fails_verify(tmp_path: Path) -> None:
    source = record(tmp_path / "record")
    run_dir = made_run(tmp_path, source)
    (source.parent / "photos" / "6-1-2-notice.png").write_bytes(b"changed after the run")  # the run kept its copy
    assert certlab("keys", "init").returncode == 0
    made = certlab("report", str(run_dir), "--lab-profile", str(PROFILE), "--no-allure", "--no-pdf")
    assert made.returncode == 0, made.stderr
    photo = "evidence/assessor/TH-100/6-1-2/6-1-2-notice.png"
    html = (run_dir / "conformance.html").read_text()
    assert f'href="{photo}"' in html and "performed by Sam Sample (assessor), 2026-11-21" in html
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert photo in manifest["files"]
    assert certlab("verify", str(run_dir)).returncode == 0
    png(run_dir / photo, shade=10)
    proc = certlab("verify", str(run_dir))
    assert proc.returncode == 1 and f"changed: {photo}" in proc.stdout, proc.stdout + proc.stderr
