"""One preflight (lab/preflight.py) for every entry point: bad input is one line before the lab moves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from lab.errors import CertlabError
from lab.inventory import load_inventory
from lab.orchestrator import queued
from lab.preflight import preflight, suites_assess
from lab.sim.genlab import write_sim_inventory
from lab.store import open_store, queued_runs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "inventory" / "products"
BAD_NA = ('"5.3-7":  {support: Y', '"5.3-7":  {support: N/A')  # contradicted by TH-100's 7-UpdMech


def certlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})


def lab(tmp_path: Path, *, ics_change: tuple[str, str] | None = None) -> Path:
    """A two-bench simulated inventory (never brought up) with its own copy of TH-100's files."""
    folder = tmp_path / "inv"
    (folder / "products").mkdir(parents=True)
    shutil.copytree(SHIPPED / "TH-100", folder / "products" / "TH-100")
    if ics_change:
        ics = folder / "products" / "TH-100" / "ics.yaml"
        text = ics.read_text()
        assert ics_change[0] in text
        ics.write_text(text.replace(*ics_change, 1))
    return write_sim_inventory(folder, "tpre", 2, scpi_port=17601, subnet=221, netns=False)


def test_a_good_lab_passes_with_every_product_checked(tmp_path: Path):
    inv = load_inventory(lab(tmp_path))
    checked = preflight(inv, list(inv.benches), "v2", suites=[str(ROOT / "testsuites" / "en303645")])
    assert set(checked.products) == {"TH-100"}
    product = checked.products["TH-100"]
    assert product.ics is not None and product.ixit is not None and product.assessments is not None


def test_a_contradicted_na_stops_the_preflight_in_one_line(tmp_path: Path):
    inv = load_inventory(lab(tmp_path, ics_change=BAD_NA))
    with pytest.raises(CertlabError) as exc:
        preflight(inv, ["b1", "b2"], "v2")
    line = str(exc.value)
    assert "\n" not in line and "ics.yaml: ics: provisions.5.3-7.support" in line and "fix:" in line


def test_examples_need_no_product_files_but_the_assessment_does(tmp_path: Path):
    path = lab(tmp_path)
    shutil.rmtree(path.parent / "products" / "TH-100")
    inv = load_inventory(path)
    examples = [str(ROOT / "testsuites" / "examples")]
    assert not suites_assess(examples) and suites_assess([str(ROOT / "testsuites" / "en303645")])
    preflight(inv, ["b1"], "v2", suites=examples)
    with pytest.raises(CertlabError, match=r"no ICS for model 'TH-100': put the manufacturer's ICS at .*ics\.yaml"):
        preflight(inv, ["b1"], "v2", suites=[str(ROOT / "testsuites" / "en303645")])


def test_the_ics_of_another_model_is_refused(tmp_path: Path):
    inv = load_inventory(lab(tmp_path))
    with pytest.raises(CertlabError, match=r"ics: product.model: 'OTS-1', but the product is 'TH-100'"):
        preflight(inv, ["b1"], "v2", ics=SHIPPED / "OTS-1" / "ics.yaml", ixit=SHIPPED / "TH-100" / "ixit.yaml")


def test_certlab_run_stops_before_any_run_directory(tmp_path: Path):
    """The lab is never brought up here: a run that got past the preflight would fail differently."""
    path = lab(tmp_path, ics_change=BAD_NA)
    proc = certlab("run", "-i", str(path), "--out", str(tmp_path / "reports"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("certlab: error: ") and "provisions.5.3-7.support" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_queue_add_checks_the_files_it_is_given(tmp_path: Path):
    path = lab(tmp_path, ics_change=BAD_NA)
    folder = path.parent / "products" / "TH-100"
    proc = certlab("queue", "add", "--model", "TH-100", "--ics", str(folder / "ics.yaml"), "--ixit",
                   str(folder / "ixit.yaml"), "--out", str(tmp_path / "reports"))
    assert proc.returncode == 2 and "provisions.5.3-7.support" in proc.stderr, proc.stderr


def test_queue_work_refuses_a_bad_entry_before_any_health_check(tmp_path: Path):
    path = lab(tmp_path, ics_change=BAD_NA)
    inv = load_inventory(path)
    with open_store() as store:
        qid = queued.add(store, model="TH-100", capabilities=[], suites=[str(ROOT / "testsuites" / "en303645")],
                         options=["--edition", "v2"], edition="v2", reports_dir=tmp_path / "reports")
        other = queued.add(store, model="OTS-1", capabilities=[], suites=[], options=[], edition="v2",
                           reports_dir=tmp_path / "reports")
        quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
        try:
            assert queued.reject_bad_entries(store, inv, quiet) == 1
        finally:
            quiet.file.close()
        states = {q.id: q.state for q in queued_runs(store, states=("pending", "failed"))}
    assert states[qid] == "failed"
    assert states[other] == "pending", "no bench of this inventory holds an OTS-1: another worker's business"


def test_product_check_uses_the_same_code(tmp_path: Path):
    good = certlab("product", "check", "-i", str(lab(tmp_path / "a")), "--model", "TH-100")
    assert good.returncode == 0 and "N/A answer(s) checked against the IXIT" in good.stdout, good.stdout + good.stderr
    bad = certlab("product", "check", "-i", str(lab(tmp_path / "b", ics_change=BAD_NA)), "--model", "TH-100")
    assert bad.returncode == 2 and "provisions.5.3-7.support" in bad.stderr
    every = certlab("product", "check", "-i", str(tmp_path / "b" / "inv" / "tpre.yaml"))  # every model of the benches
    assert every.returncode == 2 and "provisions.5.3-7.support" in every.stderr


def test_product_facts_lists_each_fact_with_its_tests_and_value():
    proc = certlab("product", "facts", "-i", str(ROOT / "inventory" / "sim-offtheshelf.yaml"), "--model", "OTS-1")
    assert proc.returncode == 0, proc.stderr
    assert "test_facts.telemetry_interval_seconds" in proc.stdout and "5.5-1-2" in proc.stdout
    assert "none: OTS-1 sends no telemetry" in proc.stdout
